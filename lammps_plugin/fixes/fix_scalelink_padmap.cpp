/* ----------------------------------------------------------------------
   ScaleLink: fix scalelink/padmap (see fix_scalelink_padmap.h).
------------------------------------------------------------------------- */

#include "fix_scalelink_padmap.h"

#include "fix_scalelink_args.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "update.h"
#include "utils.h"

#include <algorithm>
#include <cmath>
#include <mpi.h>

using namespace LAMMPS_NS;
using namespace FixConst;
using ScaleLink::strip_prefix;

/* ---------------------------------------------------------------------- */

FixScaleLinkPadMap::FixScaleLinkPadMap(LAMMPS *lmp, int narg, char **arg) :
    Fix(lmp, narg, arg), nodes(-1), reference_index(-1), node_index(-1), weight_index(-1), map_index(-1),
    slots(0), map_columns(0), evaluations(0.0), work_seconds(0.0)
{
  const std::string usage = fmt::format(
      "expected: fix {} {} scalelink/padmap nodes E reference d2_REF fit i2_NODE d2_WEIGHT map d2_MAP", id,
      arg[1]);
  for (int iarg = 3; iarg < narg; iarg += 2) {
    const std::string key = arg[iarg];
    if (iarg + 1 >= narg) error->all(FLERR, "fix {} scalelink/padmap: keyword {} needs a value; {}", id, key, usage);
    if (key == "nodes") {
      nodes = utils::inumeric(FLERR, arg[iarg + 1], false, lmp);
      if (nodes < 1) error->all(FLERR, "fix {} scalelink/padmap: nodes must be positive, got {}", id, nodes);
    } else if (key == "reference") {
      reference_name = strip_prefix(arg[iarg + 1], "d2_");
    } else if (key == "fit") {
      if (iarg + 2 >= narg) error->all(FLERR, "fix {} scalelink/padmap: fit needs i2_NODE and d2_WEIGHT; {}", id, usage);
      node_name = strip_prefix(arg[iarg + 1], "i2_");
      weight_name = strip_prefix(arg[iarg + 2], "d2_");
      ++iarg;
    } else if (key == "map") {
      map_name = strip_prefix(arg[iarg + 1], "d2_");
    } else {
      error->all(FLERR, "fix {} scalelink/padmap: unknown keyword {}; {}", id, key, usage);
    }
  }
  if (nodes < 1 || reference_name.empty() || node_name.empty() || map_name.empty())
    error->all(FLERR, "fix {} scalelink/padmap: nodes, reference, fit and map are all required; {}", id, usage);
  const int d = domain->dimension;
  map_columns = d + d * nodes * d;
  local_g.assign(static_cast<size_t>(nodes) * d, 0.0);
  global_g.assign(local_g.size(), 0.0);

  vector_flag = 1;
  size_vector = 2;
  extvector = 0;
  global_freq = 1;
}

/* ---------------------------------------------------------------------- */

int FixScaleLinkPadMap::setmask()
{
  return PRE_FORCE | POST_FORCE | MIN_PRE_FORCE | MIN_POST_FORCE;
}

/* ---------------------------------------------------------------------- */

void FixScaleLinkPadMap::init()
{
  lookup();
}

/* ----------------------------------------------------------------------
   The custom per-atom properties, checked for type and width.
------------------------------------------------------------------------- */

void FixScaleLinkPadMap::lookup()
{
  int flag = -1, cols = -1;
  reference_index = atom->find_custom(reference_name.c_str(), flag, cols);
  if (reference_index < 0 || flag != 1 || cols != 3)
    error->all(FLERR,
               "fix {} scalelink/padmap: no per-atom array d2_{} with 3 columns; create it with fix "
               "property/atom d2_{} 3 and set the reference positions",
               id, reference_name, reference_name);
  node_index = atom->find_custom(node_name.c_str(), flag, cols);
  if (node_index < 0 || flag != 0 || cols < 1)
    error->all(FLERR,
               "fix {} scalelink/padmap: no per-atom integer array i2_{}; create it with fix property/atom "
               "i2_{} K and set the node of each slot (-1 for none)",
               id, node_name, node_name);
  slots = cols;
  weight_index = atom->find_custom(weight_name.c_str(), flag, cols);
  if (weight_index < 0 || flag != 1 || cols != slots)
    error->all(FLERR,
               "fix {} scalelink/padmap: no per-atom array d2_{} with {} columns (as many as i2_{}); create it "
               "with fix property/atom d2_{} {}",
               id, weight_name, slots, node_name, weight_name, slots);
  map_index = atom->find_custom(map_name.c_str(), flag, cols);
  if (map_index < 0 || flag != 1 || cols != map_columns)
    error->all(FLERR,
               "fix {} scalelink/padmap: no per-atom array d2_{} with {} columns (d + d E d for d = {}, E = {} "
               "nodes); found {}; create it with fix property/atom d2_{} {}",
               id, map_name, map_columns, domain->dimension, nodes, map_index < 0 ? 0 : cols, map_name,
               map_columns);
}

/* ---------------------------------------------------------------------- */

void FixScaleLinkPadMap::setup_pre_force(int /*vflag*/)
{
  move_pads();
}

/* ---------------------------------------------------------------------- */

void FixScaleLinkPadMap::setup(int vflag)
{
  post_force(vflag);
}

/* ---------------------------------------------------------------------- */

void FixScaleLinkPadMap::min_setup(int vflag)
{
  min_post_force(vflag);
}

/* ---------------------------------------------------------------------- */

void FixScaleLinkPadMap::pre_force(int /*vflag*/)
{
  move_pads();
}

/* ---------------------------------------------------------------------- */

void FixScaleLinkPadMap::post_force(int vflag)
{
  min_post_force(vflag);
}

/* ---------------------------------------------------------------------- */

void FixScaleLinkPadMap::min_pre_force(int /*vflag*/)
{
  move_pads();
}

/* ----------------------------------------------------------------------
   g from the fit atoms, then the pad atoms from g.
------------------------------------------------------------------------- */

void FixScaleLinkPadMap::move_pads()
{
  const double start = MPI_Wtime();
  const int d = domain->dimension;
  const int nlocal = atom->nlocal;
  double **x = atom->x;
  const int *mask = atom->mask;
  double **ref = atom->darray[reference_index];
  int **node = atom->iarray[node_index];
  double **weight = atom->darray[weight_index];
  double **map = atom->darray[map_index];
  const int periodic[3] = {domain->xperiodic, domain->yperiodic, domain->zperiodic};
  const double period[3] = {domain->xprd, domain->yprd, domain->zprd};
  auto displacement = [&](int i, int c) {
    double u = x[i][c] - ref[i][c];
    if (periodic[c]) u -= period[c] * std::nearbyint(u / period[c]);
    return u;
  };

  std::fill(local_g.begin(), local_g.end(), 0.0);
  for (int i = 0; i < nlocal; ++i) {
    for (int k = 0; k < slots; ++k) {
      const int n = node[i][k];
      if (n < 0) continue;
      if (n >= nodes)
        error->one(FLERR, "fix {} scalelink/padmap: atom {} names node {}, but there are {} nodes (0..{})", id,
                   atom->tag[i], n, nodes, nodes - 1);
      for (int c = 0; c < d; ++c) local_g[n * d + c] += weight[i][k] * displacement(i, c);
    }
  }
  MPI_Allreduce(local_g.data(), global_g.data(), static_cast<int>(global_g.size()), MPI_DOUBLE, MPI_SUM, world);

  const int width = nodes * d;
  const double *g = global_g.data();
  for (int i = 0; i < nlocal; ++i) {
    if (!(mask[i] & groupbit)) continue;
    const double *row = map[i];
    for (int c = 0; c < d; ++c) {
      const double *coefficients = row + d + c * width;
      // four independent sums, so the additions need not wait for each other
      double s[4] = {0.0, 0.0, 0.0, 0.0};
      int j = 0;
      for (; j + 4 <= width; j += 4)
        for (int l = 0; l < 4; ++l) s[l] += coefficients[j + l] * g[j + l];
      for (; j < width; ++j) s[0] += coefficients[j] * g[j];
      const double u = row[c] + ((s[0] + s[1]) + (s[2] + s[3]));
      x[i][c] += u - displacement(i, c);
    }
  }
  // the ghost copies of the pad atoms follow
  comm->forward_comm();
  evaluations += 1.0;
  work_seconds += MPI_Wtime() - start;
}

/* ---------------------------------------------------------------------- */

void FixScaleLinkPadMap::min_post_force(int /*vflag*/)
{
  double **f = atom->f;
  const int *mask = atom->mask;
  const int nlocal = atom->nlocal;
  for (int i = 0; i < nlocal; ++i)
    if (mask[i] & groupbit) f[i][0] = f[i][1] = f[i][2] = 0.0;
}

/* ---------------------------------------------------------------------- */

double FixScaleLinkPadMap::compute_vector(int n)
{
  return n == 0 ? evaluations : work_seconds;
}
