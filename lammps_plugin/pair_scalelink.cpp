/* ----------------------------------------------------------------------
   ScaleLink: pair_style scalelink.
------------------------------------------------------------------------- */

#include "pair_scalelink.h"

#include "scalelink_model.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"
#include "utils.h"

#include <cstdlib>
#include <algorithm>
#include <cstring>

using namespace LAMMPS_NS;

/* ---------------------------------------------------------------------- */

PairScaleLink::PairScaleLink(LAMMPS *lmp) :
    Pair(lmp), cutoff(0.0), num_layers(0), n_local_nodes(0)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  // The model returns the virial itself; f.r would also miss the ghost forces that are kept
  // outside atom->f when newton_pair is off.
  no_virial_fdotr_compute = 1;
  centroidstressflag = CENTROID_NOTAVAIL;
  // Ghost forces: 3 doubles per atom, also when newton_pair is off (we then sum them ourselves).
  comm_reverse = 3;
  comm_reverse_off = 3;
}

/* ---------------------------------------------------------------------- */

PairScaleLink::~PairScaleLink()
{
  if (copymode) return;
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
    memory->destroy(cutghost);
  }
}

/* ---------------------------------------------------------------------- */

void PairScaleLink::allocate()
{
  allocated = 1;
  const int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  memory->create(cutghost, n, n, "pair:cutghost");
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) setflag[i][j] = 0;
}

/* ---------------------------------------------------------------------- */

void PairScaleLink::settings(int narg, char **arg)
{
  if (narg > 0)
    error->all(FLERR, "Unknown pair_style scalelink keyword '{}': the style takes no arguments",
               arg[0]);
}

/* ----------------------------------------------------------------------
   pair_coeff * * model.pt Cu NULL Ni ...
------------------------------------------------------------------------- */

void PairScaleLink::coeff(int narg, char **arg)
{
  if (narg < 3 || strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR,
               "pair_style scalelink needs `pair_coeff * * <model file> <species or NULL per "
               "atom type>`");
  if (!allocated) allocate();

  load_model(arg[2]);
  map_species(narg, arg);

  const auto &meta = model->metadata();
  if (comm->me == 0) {
    std::string mapping, species;
    for (const auto &name : meta.species) species += " " + name;
    for (int t = 1; t <= atom->ntypes; t++)
      mapping += fmt::format(" {}={}", t, type_species[t] < 0 ? "NULL" : meta.species[type_species[t]]);
    utils::logmesg(lmp,
                   "ScaleLink model {}: species{}, cutoff {} ({} units), {} message-passing "
                   "layer(s), {} weights, committee of {}\n  type mapping:{}\n",
                   model_file, species, cutoff, meta.units, num_layers, meta.dtype,
                   meta.committee_size, mapping);
  }
}

/* ----------------------------------------------------------------------
   Every rank reads the file. A failure on any rank (a file missing on one node, say) must
   stop all ranks with the same message, never leave some waiting in the next collective.
------------------------------------------------------------------------- */

void PairScaleLink::load_model(const std::string &file)
{
  std::unique_ptr<ScaleLink::Model> loaded;
  std::string message;
  try {
    loaded = std::make_unique<ScaleLink::Model>(file);
  } catch (const std::exception &e) {
    message = *e.what() ? e.what() : "unknown error while reading " + file;
  }

  int mine = message.empty() ? comm->nprocs : comm->me, first_failed = 0;
  MPI_Allreduce(&mine, &first_failed, 1, MPI_INT, MPI_MIN, world);
  if (first_failed < comm->nprocs) {
    int length = static_cast<int>(message.size());
    MPI_Bcast(&length, 1, MPI_INT, first_failed, world);
    message.resize(length);
    MPI_Bcast(message.data(), length, MPI_CHAR, first_failed, world);
    error->all(FLERR, message);
  }

  model = std::move(loaded);
  model_file = file;
  cutoff = model->metadata().cutoff;
  num_layers = model->metadata().num_layers;
  // With more than one layer, ghost atoms are graph nodes with neighbours of their own.
  ghostneigh = num_layers > 1 ? 1 : 0;

  // One torch thread pool per rank oversubscribes the cores under mpirun unless the user
  // chose a thread count.
  if (!std::getenv("OMP_NUM_THREADS") && comm->nprocs > 1) ScaleLink::set_torch_num_threads(1);
  if (comm->me == 0)
    utils::logmesg(lmp, "ScaleLink: torch uses {} thread(s) per MPI rank\n",
                   ScaleLink::torch_num_threads());
}

/* ---------------------------------------------------------------------- */

void PairScaleLink::map_species(int narg, char **arg)
{
  const int ntypes = atom->ntypes;
  const auto &species = model->metadata().species;
  if (narg != 3 + ntypes)
    error->all(FLERR,
               "pair_coeff * * {} needs one species name (or NULL) per atom type: got {} for {} "
               "atom type(s)",
               model_file, narg - 3, ntypes);

  type_species.assign(ntypes + 1, -1);
  for (int t = 1; t <= ntypes; t++) {
    const std::string name = arg[2 + t];
    if (name == "NULL") continue;
    for (int s = 0; s < static_cast<int>(species.size()); s++)
      if (species[s] == name) type_species[t] = s;
    if (type_species[t] < 0) {
      std::string known;
      for (const auto &known_name : species) known += " " + known_name;
      error->all(FLERR, "species '{}' for type {} is not in {}, which has species{}", name, t,
                 model_file, known);
    }
  }

  int count = 0;
  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++) {
      const int both = type_species[i] >= 0 && type_species[j] >= 0;
      setflag[i][j] = setflag[j][i] = both;
      count += both;
    }
  if (count == 0) error->all(FLERR, "pair_coeff * * {} maps no atom type to a species", model_file);
}

/* ---------------------------------------------------------------------- */

void PairScaleLink::init_style()
{
  if (!model) error->all(FLERR, "pair_style scalelink needs a pair_coeff line with a model file");

  const std::string &units = model->metadata().units;
  if (units != update->unit_style)
    error->all(FLERR, "{} was trained in units '{}' but LAMMPS runs in units '{}': use `units {}`",
               model_file, units, update->unit_style, units);

  int request = NeighConst::REQ_FULL;
  if (num_layers > 1) request |= NeighConst::REQ_GHOST;
  neighbor->add_request(this, request);

  // Local energies depend on atoms num_layers * cutoff away, whose neighbour lists must be
  // complete: the ghost shell has to cover that distance (plus the skin, as lists persist).
  if (num_layers > 1) {
    const double needed = num_layers * cutoff + neighbor->skin;
    if (comm->mode != Comm::SINGLE)
      error->all(FLERR,
                 "pair_style scalelink with a {}-layer model needs `comm_modify mode single`",
                 num_layers);
    if (comm->cutghostuser < needed) {
      comm->cutghostuser = needed;
      if (comm->me == 0)
        utils::logmesg(lmp,
                       "ScaleLink: ghost cutoff set to {:.6g} ({} layers x cutoff {} + skin {})\n",
                       needed, num_layers, cutoff, neighbor->skin);
    }
  }
}

/* ---------------------------------------------------------------------- */

double PairScaleLink::init_one(int i, int j)
{
  if (setflag[i][j] == 0) error->all(FLERR, "All pair coeffs are not set");
  if (ghostneigh) cutghost[i][j] = cutghost[j][i] = cutoff;
  return cutoff;
}

/* ----------------------------------------------------------------------
   Graph of this rank: local atoms are nodes 0..n_local-1 (in neighbour-list order), then
   every atom up to num_layers hops away, found breadth first. Only atoms within
   num_layers - 1 hops are centres: the layer-l features of an atom l hops out need only its
   own edges, so the outermost nodes enter as neighbours alone. With one layer this is the
   usual "local centres and their neighbours"; with more it needs the ghost neighbour list.
------------------------------------------------------------------------- */

void PairScaleLink::build_graph()
{
  const int nall = atom->nlocal + atom->nghost;
  double **x = atom->x;
  const int *type = atom->type;
  const int *numneigh = list->numneigh;
  int **firstneigh = list->firstneigh;
  const double cutoff_sq = cutoff * cutoff;

  node_of_atom.assign(nall, -1);
  node_atom.clear();
  node_species.clear();
  edge_centre.clear();
  edge_neighbour.clear();
  edge_vectors.clear();

  auto add_node = [&](int i, int species) {
    node_of_atom[i] = static_cast<int>(node_atom.size());
    node_atom.push_back(i);
    node_species.push_back(species);
  };

  for (int ii = 0; ii < list->inum; ii++) {
    const int i = list->ilist[ii];
    if (type_species[type[i]] >= 0) add_node(i, type_species[type[i]]);
  }
  n_local_nodes = static_cast<int>(node_atom.size());

  std::size_t begin = 0;
  for (int hop = 0; hop < num_layers; hop++) {
    const std::size_t end = node_atom.size();
    for (std::size_t k = begin; k < end; k++) {
      const int i = node_atom[k];
      const int *neighbours = firstneigh[i];
      for (int jj = 0; jj < numneigh[i]; jj++) {
        const int j = neighbours[jj] & NEIGHMASK;
        const int species = type_species[type[j]];
        if (species < 0) continue;
        const double dx = x[j][0] - x[i][0];
        const double dy = x[j][1] - x[i][1];
        const double dz = x[j][2] - x[i][2];
        if (dx * dx + dy * dy + dz * dz >= cutoff_sq) continue;
        if (node_of_atom[j] < 0) add_node(j, species);
        edge_centre.push_back(static_cast<std::int64_t>(k));
        edge_neighbour.push_back(node_of_atom[j]);
        edge_vectors.insert(edge_vectors.end(), {dx, dy, dz});
      }
    }
    begin = end;
  }

  edge_index.resize(2 * edge_centre.size());
  std::copy(edge_centre.begin(), edge_centre.end(), edge_index.begin());
  std::copy(edge_neighbour.begin(), edge_neighbour.end(), edge_index.begin() + edge_centre.size());
}

/* ---------------------------------------------------------------------- */

void PairScaleLink::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  if (vflag_atom || cvflag_atom)
    error->all(FLERR, "per-atom virial is not available yet in pair_style scalelink");

  build_graph();

  const int nlocal = atom->nlocal;
  const bool newton = force->newton_pair != 0;
  double **f = atom->f;
  if (!newton) ghost_force.assign(3 * static_cast<std::size_t>(nlocal + atom->nghost), 0.0);

  // A rank whose subdomain holds no atoms of mapped types has nothing to evaluate, but must
  // still take part in the reverse communication below.
  const int n_nodes = static_cast<int>(node_atom.size());
  if (n_nodes > 0) {
    ScaleLink::GraphView graph;
    graph.n_nodes = n_nodes;
    graph.n_local = n_local_nodes;
    graph.n_edges = static_cast<std::int64_t>(edge_centre.size());
    graph.edge_index = edge_index.data();
    graph.edge_vectors = edge_vectors.data();
    graph.species = node_species.data();

    ScaleLink::ModelResult result;
    try {
      result = model->evaluate(graph);
    } catch (const std::exception &e) {
      error->one(FLERR, "pair_style scalelink: evaluating {} failed on step {}: {}", model_file,
                 update->ntimestep, e.what());
    }

    for (int k = 0; k < n_nodes; k++) {
      const int i = node_atom[k];
      const double *fk = result.forces + 3 * k;
      double *target = (newton || i < nlocal) ? f[i] : &ghost_force[3 * i];
      target[0] += fk[0];
      target[1] += fk[1];
      target[2] += fk[2];
    }
    if (eflag_global) eng_vdwl += result.energy;
    if (eflag_atom)
      for (int k = 0; k < n_local_nodes; k++) eatom[node_atom[k]] += result.atomic_energy[k];
    if (vflag_global)
      for (int c = 0; c < 6; c++) virial[c] += result.virial[c];
  }

  // With newton_pair on, LAMMPS sums ghost forces onto their owners itself; with it off we do.
  if (!newton) {
    comm->reverse_comm(this);
    for (int i = 0; i < nlocal; i++) {
      f[i][0] += ghost_force[3 * i];
      f[i][1] += ghost_force[3 * i + 1];
      f[i][2] += ghost_force[3 * i + 2];
    }
  }
}

/* ----------------------------------------------------------------------
   Reverse comm of ghost_force. Unpacking adds into ghost_force (not f) because the receiving
   atom may itself be a ghost that is passed on in a later swap.
------------------------------------------------------------------------- */

int PairScaleLink::pack_reverse_comm(int n, int first, double *buf)
{
  int m = 0;
  for (int i = first; i < first + n; i++) {
    buf[m++] = ghost_force[3 * i];
    buf[m++] = ghost_force[3 * i + 1];
    buf[m++] = ghost_force[3 * i + 2];
  }
  return m;
}

void PairScaleLink::unpack_reverse_comm(int n, int *list, double *buf)
{
  int m = 0;
  for (int i = 0; i < n; i++) {
    const int j = list[i];
    ghost_force[3 * j] += buf[m++];
    ghost_force[3 * j + 1] += buf[m++];
    ghost_force[3 * j + 2] += buf[m++];
  }
}
