/* ----------------------------------------------------------------------
   ScaleLink: pair_style scalelink, what all ranks agree on after every model call: that it
   succeeded on every rank, and that energy, forces and virials are finite. Any other
   outcome stops every rank with the same error, never one rank while the others wait in
   the next collective.
------------------------------------------------------------------------- */

#include "pair_scalelink.h"

#include "model/scalelink_model.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "update.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

using namespace LAMMPS_NS;

namespace {

// bits of the flag the ranks reduce after every model call
constexpr int MODEL_FAILED = 1, NOT_FINITE = 2;

// IDs of atoms with non-finite forces named in the error
constexpr std::size_t IDS_NAMED = 5;

// Whether all `count` values are finite. NaN and Inf carry through a running sum, so one
// sum decides; only when it is not finite (which the overflow of huge finite values could
// also cause) are the values looked at one by one.
bool all_finite(const double *values, std::size_t count)
{
  double sum = 0.0;
  for (std::size_t i = 0; i < count; i++) sum += values[i];
  if (std::isfinite(sum)) return true;
  for (std::size_t i = 0; i < count; i++)
    if (!std::isfinite(values[i])) return false;
  return true;
}

}    // namespace

/* ----------------------------------------------------------------------
   Collective. The message of the lowest rank whose `mine` is not empty, on every rank, and
   that rank in `rank`; empty (rank = nprocs) when every rank's is.
------------------------------------------------------------------------- */

std::string PairScaleLink::first_failure(const std::string &mine, int &rank)
{
  const int candidate = mine.empty() ? comm->nprocs : comm->me;
  MPI_Allreduce(&candidate, &rank, 1, MPI_INT, MPI_MIN, world);
  if (rank == comm->nprocs) return {};
  std::string message = mine;
  int length = static_cast<int>(message.size());
  MPI_Bcast(&length, 1, MPI_INT, rank, world);
  message.resize(length);
  MPI_Bcast(message.data(), length, MPI_CHAR, rank, world);
  return message;
}

/* ---------------------------------------------------------------------- */

bool PairScaleLink::finite(const ScaleLink::ModelResult &result, bool atomic_virial) const
{
  const std::size_t n_nodes = node_atom.size();
  return std::isfinite(result.energy) && all_finite(result.virial, 6) &&
      all_finite(result.forces, 3 * n_nodes) && (!atomic_virial || all_finite(result.atomic_virial, 9 * n_nodes));
}

/* ----------------------------------------------------------------------
   Called on every rank after every model call: `failure` is this rank's error message
   (empty when the call succeeded or was not made), `result` null unless this rank has
   results to check. One MPI_Allreduce of a flag when all is well.
------------------------------------------------------------------------- */

void PairScaleLink::check_result(const std::string &failure, const ScaleLink::ModelResult *result,
                                 bool atomic_virial)
{
  if (!check_results) {
    if (!failure.empty())
      error->one(FLERR, "pair_style scalelink: evaluating {} failed on step {}: {}", model_file,
                 update->ntimestep, failure);
    return;
  }

  const double start = time_check ? MPI_Wtime() : 0.0;
  int mine = failure.empty() ? 0 : MODEL_FAILED, any = 0;
  if (result && !finite(*result, atomic_virial)) mine |= NOT_FINITE;
  MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_BOR, world);
  if (time_check) {
    check_seconds += MPI_Wtime() - start;
    check_calls++;
  }
  if (any & MODEL_FAILED) {
    int rank = 0;
    const std::string message = first_failure(failure, rank);
    error->all(FLERR, "pair_style scalelink: evaluating {} failed on step {}{}: {}", model_file,
               update->ntimestep, comm->nprocs > 1 ? fmt::format(" on MPI rank {}", rank) : "", message);
  }
  if (any & NOT_FINITE) report_not_finite(result, atomic_virial);
}

/* ----------------------------------------------------------------------
   Collective, on the step some rank found a non-finite value: gathers the IDs of the atoms
   whose forces are not finite (ghost atoms by their owners' IDs) and what else is not
   finite, and stops every rank with the same error.
------------------------------------------------------------------------- */

void PairScaleLink::report_not_finite(const ScaleLink::ModelResult *result, bool atomic_virial)
{
  std::vector<tagint> ids;
  int mine[3] = {0, 0, 0}, any[3] = {0, 0, 0};    // energy, virial, per-atom virials
  if (result) {
    const std::size_t n_nodes = node_atom.size();
    for (std::size_t k = 0; k < n_nodes; k++)
      if (!all_finite(result->forces + 3 * k, 3)) ids.push_back(atom->tag_enable ? atom->tag[node_atom[k]] : 0);
    mine[0] = !std::isfinite(result->energy);
    mine[1] = !all_finite(result->virial, 6);
    mine[2] = atomic_virial && !all_finite(result->atomic_virial, 9 * n_nodes);
  }
  MPI_Allreduce(mine, any, 3, MPI_INT, MPI_MAX, world);

  const int count = static_cast<int>(ids.size());
  std::vector<int> counts(comm->nprocs), offsets(comm->nprocs);
  MPI_Allgather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, world);
  std::exclusive_scan(counts.begin(), counts.end(), offsets.begin(), 0);
  std::vector<tagint> all(offsets.back() + counts.back());
  MPI_Allgatherv(ids.data(), count, MPI_LMP_TAGINT, all.data(), counts.data(), offsets.data(), MPI_LMP_TAGINT,
                 world);
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());

  std::vector<std::string> parts;
  if (!all.empty()) {
    if (atom->tag_enable) {
      std::string named;
      for (std::size_t k = 0; k < std::min(all.size(), IDS_NAMED); k++) named += fmt::format(" {}", all[k]);
      const std::string more = all.size() > IDS_NAMED ? fmt::format(" and {} more", all.size() - IDS_NAMED) : "";
      parts.push_back(fmt::format("the forces on {} atom(s) (IDs{}{})", all.size(), named, more));
    } else {
      parts.emplace_back("forces (no atom IDs to name the atoms: atom_modify id no)");
    }
  }
  const char *other[3] = {"the energy", "the virial", "per-atom virials"};
  for (int c = 0; c < 3; c++)
    if (any[c]) parts.emplace_back(other[c]);
  std::string what = parts.empty() ? "its results" : parts[0];
  for (std::size_t k = 1; k < parts.size(); k++) what += (k + 1 < parts.size() ? ", " : " and ") + parts[k];

  error->all(FLERR,
             "pair_style scalelink: {} gave NaN or Inf for {} on step {}: atoms too close "
             "together or far outside the training data (check the structure, e.g. overlapping "
             "atoms from create_atoms or read_data, and the time step), or a model file with "
             "non-finite weights",
             model_file, what, update->ntimestep);
}
