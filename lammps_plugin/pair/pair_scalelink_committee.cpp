/* ----------------------------------------------------------------------
   ScaleLink: pair_style scalelink with a committee model: the members' forces summed onto
   the owning atoms and the per-atom deviation that compute scalelink/deviation reports.
------------------------------------------------------------------------- */

#include "pair_scalelink.h"

#include "model/scalelink_model.h"

#include "atom.h"
#include "comm.h"
#include "update.h"

#include <algorithm>
#include <cmath>

using namespace LAMMPS_NS;

/* ---------------------------------------------------------------------- */

int PairScaleLink::committee_size() const
{
  return model ? model->metadata().committee_size : 0;
}

/* ---------------------------------------------------------------------- */

std::vector<std::string> PairScaleLink::type_species_names() const
{
  std::vector<std::string> names(type_species.size(), "NULL");
  if (!model) return names;
  const auto &species = model->metadata().species;
  for (std::size_t t = 1; t < type_species.size(); t++)
    if (type_species[t] >= 0) names[t] = species[type_species[t]];
  return names;
}

/* ----------------------------------------------------------------------
   Called on every rank after every force evaluation; `result` is null on a rank whose
   graph is empty. A ghost atom's member forces belong to its owner: they are summed there
   by a reverse communication (whatever newton_pair is, since the members' forces are ours
   alone), and only then compared, so that the deviation is that of the whole force on the
   atom, as a single-process evaluation of the committee would give it.
------------------------------------------------------------------------- */

void PairScaleLink::committee_deviation(const ScaleLink::ModelResult *result)
{
  const int members = committee_size();
  const int stride = 3 * members;
  const int nlocal = atom->nlocal;
  const std::size_t nall = nlocal + atom->nghost;
  const double to_force = units.force_to_lammps, to_energy = units.energy_to_lammps;

  member_rows.assign(stride * nall, 0.0);
  std::fill(local_member_energy.begin(), local_member_energy.end(), 0.0);
  if (result) {
    const int n_nodes = static_cast<int>(node_atom.size());
    for (int m = 0; m < members; m++) {
      local_member_energy[m] = to_energy * result->member_energy[m];
      const double *forces = result->member_forces + 3 * static_cast<std::size_t>(m) * n_nodes;
      for (int k = 0; k < n_nodes; k++) {
        double *row = &member_rows[stride * static_cast<std::size_t>(node_atom[k]) + 3 * m];
        for (int c = 0; c < 3; c++) row[c] += to_force * forces[3 * k + c];
      }
    }
  }

  comm_rows = member_rows.data();
  comm_stride = stride;
  comm->reverse_comm(this);

  if (deviation.size() < static_cast<std::size_t>(atom->nmax)) deviation.resize(atom->nmax);
  for (int i = 0; i < nlocal; i++) {
    const double *row = &member_rows[stride * static_cast<std::size_t>(i)];
    double mean[3] = {0.0, 0.0, 0.0};
    for (int m = 0; m < members; m++)
      for (int c = 0; c < 3; c++) mean[c] += row[3 * m + c];
    for (int c = 0; c < 3; c++) mean[c] /= members;
    double spread = 0.0;
    for (int m = 0; m < members; m++)
      for (int c = 0; c < 3; c++) {
        const double d = row[3 * m + c] - mean[c];
        spread += d * d;
      }
    deviation[i] = std::sqrt(spread / members);
  }
  deviation_timestep = update->ntimestep;
}

/* ---------------------------------------------------------------------- */

double PairScaleLink::memory_usage()
{
  const std::size_t doubles = ghost_buffer.capacity() + feature_rows.capacity() + edge_vectors.capacity() +
                              member_rows.capacity() + deviation.capacity();
  const std::size_t int64s = node_species.capacity() + edge_centre.capacity() + edge_neighbour.capacity() +
                             edge_index.capacity();
  const std::size_t ints = node_of_atom.capacity() + node_atom.capacity();
  return Pair::memory_usage() + 8.0 * (doubles + int64s) + 4.0 * ints;
}
