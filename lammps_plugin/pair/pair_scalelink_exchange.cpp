/* ----------------------------------------------------------------------
   ScaleLink: pair_style scalelink, ghost atoms between message-passing layers: the choice
   of ghost mode, and the forward and reverse communications of node features, their
   gradients and (newton_pair off) the ghost atoms' forces and virials.
------------------------------------------------------------------------- */

#include "pair_scalelink.h"

#include "model/scalelink_model.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "utils.h"

#include <algorithm>

using namespace LAMMPS_NS;

/* ----------------------------------------------------------------------
   ghost exchange needs the per-layer methods of the model file. Committees have none by
   design: they run ghost full, which the log says. A single model without them was
   exported before they existed: the default falls back to ghost full with a warning. An
   explicit `ghost exchange` is an error in both cases.
------------------------------------------------------------------------- */

void PairScaleLink::choose_ghost_mode()
{
  const int committee = model->metadata().committee_size;
  exchange = num_layers > 1 && ghost_request == "exchange";
  if (exchange && num_features == 0) {
    if (ghost_given && committee > 1)
      error->all(FLERR,
                 "pair_style scalelink ghost exchange: {} is a committee of {} models, which "
                 "runs in ghost full mode only: use ghost full or leave the keyword out",
                 model_file, committee);
    if (ghost_given)
      error->all(FLERR,
                 "pair_style scalelink ghost exchange: {} has no per-layer methods (embed, "
                 "layer, readout, derivatives): re-export it with `scalelink deploy`, or use "
                 "ghost full",
                 model_file);
    if (comm->me == 0 && ghost_logged != "full" && committee == 1)
      error->warning(FLERR,
                     "pair_style scalelink: {} has no per-layer methods: using ghost full "
                     "(ghost atoms out to {} x cutoff); re-export it with `scalelink deploy` "
                     "for ghost exchange",
                     model_file, num_layers);
    exchange = false;
  }

  const std::string mode = num_layers == 1 ? "one layer" : exchange ? "exchange" : "full";
  if (comm->me == 0 && mode != ghost_logged) {
    if (mode == "one layer")
      utils::logmesg(lmp, "ScaleLink: one message-passing layer: ghost atoms out to the cutoff, "
                          "nothing exchanged between layers\n");
    else if (mode == "exchange")
      utils::logmesg(lmp,
                     "ScaleLink: ghost exchange: ghost atoms out to the cutoff {} + skin; {} node "
                     "features per atom sent to ghost atoms after each of the first {} layers, "
                     "their gradients returned\n",
                     cutoff, num_features, num_layers - 1);
    else
      utils::logmesg(lmp,
                     "ScaleLink: ghost full{}: ghost atoms out to {} layers x cutoff {} + skin, "
                     "layers evaluated on ghost atoms\n",
                     committee > 1 ? fmt::format(" (committee of {} models)", committee) : "",
                     num_layers, cutoff);
  }
  ghost_logged = mode;
}

/* ----------------------------------------------------------------------
   Undo what ghost full did to comm->cutghostuser, unless someone changed it since.
------------------------------------------------------------------------- */

void PairScaleLink::restore_ghost_cutoff()
{
  if (cutghostuser_before < 0.0) return;
  if (comm->cutghostuser == cutghostuser_set) comm->cutghostuser = cutghostuser_before;
  cutghostuser_before = -1.0;
}

/* ----------------------------------------------------------------------
   exchange.forward of ScaleLink::Model::evaluate_layers: local rows into feature_rows, a
   forward communication, ghost rows out. Atoms not in the graph carry values nobody reads.
------------------------------------------------------------------------- */

void PairScaleLink::send_features(const double *local_rows, double *ghost_rows)
{
  const std::size_t width = num_features;
  for (int k = 0; k < n_local_nodes; k++)
    std::copy_n(local_rows + width * k, width, &feature_rows[width * node_atom[k]]);

  comm_rows = feature_rows.data();
  comm_stride = num_features;
  comm->forward_comm(this);

  const int n_nodes = static_cast<int>(node_atom.size());
  for (int k = n_local_nodes; k < n_nodes; k++)
    std::copy_n(&feature_rows[width * node_atom[k]], width, ghost_rows + width * (k - n_local_nodes));
}

/* ----------------------------------------------------------------------
   exchange.reverse: ghost rows into an otherwise zero feature_rows, a reverse
   communication that sums them onto the owners, the owners' sums added to local rows.
------------------------------------------------------------------------- */

void PairScaleLink::return_feature_gradients(const double *ghost_rows, double *local_rows)
{
  const std::size_t width = num_features;
  const std::size_t nall = atom->nlocal + atom->nghost;
  std::fill_n(feature_rows.begin(), width * nall, 0.0);
  const int n_nodes = static_cast<int>(node_atom.size());
  for (int k = n_local_nodes; k < n_nodes; k++)
    std::copy_n(ghost_rows + width * (k - n_local_nodes), width, &feature_rows[width * node_atom[k]]);

  comm_rows = feature_rows.data();
  comm_stride = num_features;
  comm->reverse_comm(this);

  for (int k = 0; k < n_local_nodes; k++) {
    const double *from = &feature_rows[width * node_atom[k]];
    double *to = local_rows + width * k;
    for (std::size_t c = 0; c < width; c++) to[c] += from[c];
  }
}

/* ----------------------------------------------------------------------
   Forward comm of comm_rows. The send list of a later swap may hold ghost atoms that an
   earlier swap filled: packing from comm_rows passes their owners' values on.
------------------------------------------------------------------------- */

int PairScaleLink::pack_forward_comm(int n, int *list, double *buf, int /*pbc_flag*/, int * /*pbc*/)
{
  const std::size_t stride = comm_stride;
  for (int i = 0; i < n; i++) std::copy_n(comm_rows + stride * list[i], stride, buf + stride * i);
  return n * comm_stride;
}

void PairScaleLink::unpack_forward_comm(int n, int first, double *buf)
{
  std::copy_n(buf, n * comm_stride, comm_rows + static_cast<std::size_t>(comm_stride) * first);
}

/* ----------------------------------------------------------------------
   Reverse comm of comm_rows. Unpacking adds (never assigns) because the receiving atom may
   itself be a ghost that is passed on in a later swap, or receive from several swaps.
------------------------------------------------------------------------- */

int PairScaleLink::pack_reverse_comm(int n, int first, double *buf)
{
  std::copy_n(comm_rows + static_cast<std::size_t>(comm_stride) * first, n * comm_stride, buf);
  return n * comm_stride;
}

void PairScaleLink::unpack_reverse_comm(int n, int *list, double *buf)
{
  for (int i = 0; i < n; i++) {
    double *to = comm_rows + static_cast<std::size_t>(comm_stride) * list[i];
    for (int c = 0; c < comm_stride; c++) to[c] += buf[comm_stride * i + c];
  }
}
