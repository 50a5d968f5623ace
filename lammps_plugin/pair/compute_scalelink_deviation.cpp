/* ----------------------------------------------------------------------
   ScaleLink: compute scalelink/deviation (see compute_scalelink_deviation.h).
------------------------------------------------------------------------- */

#include "compute_scalelink_deviation.h"

#include "pair_scalelink.h"

#include "atom.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "update.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

using namespace LAMMPS_NS;

/* ---------------------------------------------------------------------- */

ComputeScaleLinkDeviation::ComputeScaleLinkDeviation(LAMMPS *lmp, int narg, char **arg) :
    Compute(lmp, narg, arg), pair(nullptr), values{0.0, 0.0}, per_atom(nullptr), nmax(0)
{
  if (narg != 3)
    error->all(FLERR, "compute scalelink/deviation takes no arguments: compute {} {} scalelink/deviation",
               id, arg[1]);
  scalar_flag = 1;
  vector_flag = 1;
  size_vector = 2;
  extscalar = 0;
  extvector = 0;
  peratom_flag = 1;
  size_peratom_cols = 0;
  vector = values;
}

/* ---------------------------------------------------------------------- */

ComputeScaleLinkDeviation::~ComputeScaleLinkDeviation()
{
  memory->destroy(per_atom);
}

/* ----------------------------------------------------------------------
   Every rank sees the same pair style and model, so every rank stops alike.
------------------------------------------------------------------------- */

void ComputeScaleLinkDeviation::init()
{
  pair = dynamic_cast<PairScaleLink *>(force->pair_match("scalelink", 0));
  if (!pair)
    error->all(FLERR,
               "compute {} scalelink/deviation needs pair_style scalelink, alone or as the only "
               "scalelink sub-style of pair_style hybrid or hybrid/overlay; pair_style is {}",
               id, force->pair_style ? force->pair_style : "none");
  if (pair->committee_size() < 2)
    error->all(FLERR,
               "compute {} scalelink/deviation needs a committee model, but {} holds a single "
               "model (committee_size {}): deploy several training runs as one file with "
               "`scalelink deploy RUN_DIR RUN_DIR ... -o committee.pt`",
               id, pair->model_path(), pair->committee_size());
}

/* ----------------------------------------------------------------------
   The values are those of the last force evaluation: refuse them on another step (after
   displace_atoms between runs, say), as LAMMPS' own computes refuse stale energies.
------------------------------------------------------------------------- */

void ComputeScaleLinkDeviation::require_current(const char *what)
{
  if (pair->deviation_step() != update->ntimestep)
    error->all(FLERR,
               "compute {} scalelink/deviation: {} asked for on step {}, but pair_style "
               "scalelink last computed forces on step {}: use it on steps where forces are "
               "computed (during a run: every step; between runs: after `run 0`)",
               id, what, update->ntimestep, pair->deviation_step());
}

/* ----------------------------------------------------------------------
   NaN counts as above any threshold: one NaN deviation in the group makes the maximum NaN,
   which std::max and MPI_MAX would drop, so that fix halt and fix scalelink/collect act on
   exactly the configurations the committee cannot judge.
------------------------------------------------------------------------- */

double ComputeScaleLinkDeviation::group_max()
{
  const double *deviation = pair->force_deviation();
  const int *mask = atom->mask;
  const int nlocal = atom->nlocal;
  double mine[2] = {0.0, 0.0}, all[2] = {0.0, 0.0};    // largest deviation, 1 if any is NaN
  for (int i = 0; i < nlocal; i++) {
    if (!(mask[i] & groupbit)) continue;
    if (std::isnan(deviation[i]))
      mine[1] = 1.0;
    else
      mine[0] = std::max(mine[0], deviation[i]);
  }
  MPI_Allreduce(mine, all, 2, MPI_DOUBLE, MPI_MAX, world);
  return all[1] > 0.0 ? std::numeric_limits<double>::quiet_NaN() : all[0];
}

/* ---------------------------------------------------------------------- */

double ComputeScaleLinkDeviation::energy_deviation()
{
  const std::vector<double> &mine = pair->member_energy();
  const int members = static_cast<int>(mine.size());
  std::vector<double> total(members, 0.0);
  MPI_Allreduce(mine.data(), total.data(), members, MPI_DOUBLE, MPI_SUM, world);
  double mean = 0.0, spread = 0.0;
  for (double e : total) mean += e;
  mean /= members;
  for (double e : total) spread += (e - mean) * (e - mean);
  return std::sqrt(spread / members);
}

/* ---------------------------------------------------------------------- */

double ComputeScaleLinkDeviation::compute_scalar()
{
  invoked_scalar = update->ntimestep;
  require_current("the largest force deviation");
  scalar = group_max();
  return scalar;
}

/* ---------------------------------------------------------------------- */

void ComputeScaleLinkDeviation::compute_vector()
{
  invoked_vector = update->ntimestep;
  require_current("the force and energy deviations");
  values[0] = group_max();
  values[1] = energy_deviation();
}

/* ---------------------------------------------------------------------- */

void ComputeScaleLinkDeviation::compute_peratom()
{
  invoked_peratom = update->ntimestep;
  require_current("the per-atom force deviation");
  if (atom->nmax > nmax) {
    memory->destroy(per_atom);
    nmax = atom->nmax;
    memory->create(per_atom, nmax, "scalelink/deviation:per_atom");
    vector_atom = per_atom;
  }
  const double *deviation = pair->force_deviation();
  const int *mask = atom->mask;
  const int nlocal = atom->nlocal;
  for (int i = 0; i < nlocal; i++) per_atom[i] = (mask[i] & groupbit) ? deviation[i] : 0.0;
}

/* ---------------------------------------------------------------------- */

double ComputeScaleLinkDeviation::memory_usage()
{
  return 8.0 * nmax;
}
