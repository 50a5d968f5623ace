/* ----------------------------------------------------------------------
   ScaleLink: fix scalelink/padmap (see fix_scalelink_padmap.h).
------------------------------------------------------------------------- */

#include "fix_scalelink_padmap.h"

#include "fix_scalelink_args.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "modify.h"
#include "update.h"
#include "utils.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mpi.h>

using namespace LAMMPS_NS;
using namespace FixConst;
using ScaleLink::strip_prefix;

/* ---------------------------------------------------------------------- */

FixScaleLinkPadMap::FixScaleLinkPadMap(LAMMPS *lmp, int narg, char **arg) :
    Fix(lmp, narg, arg), nodes(-1), reference_index(-1), node_index(-1), weight_index(-1), map_index(-1),
    slots(0), map_columns(0), field_dofs(0), pnode_index(-1), pweight_index(-1), pslots(0), field_first(0),
    field_count(-1), evaluations(0.0), work_seconds(0.0)
{
  const std::string usage = fmt::format(
      "expected: fix {} {} scalelink/padmap nodes E reference d2_REF fit i2_NODE d2_WEIGHT map d2_MAP "
      "[field Q i2_PNODE d2_PWEIGHT]",
      id, arg[1]);
  int field_nodes = 0;
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
    } else if (key == "field") {
      if (iarg + 3 >= narg)
        error->all(FLERR, "fix {} scalelink/padmap: field needs Q, i2_PNODE and d2_PWEIGHT; {}", id, usage);
      field_nodes = utils::inumeric(FLERR, arg[iarg + 1], false, lmp);
      if (field_nodes < 1)
        error->all(FLERR, "fix {} scalelink/padmap: field Q must be positive, got {}", id, field_nodes);
      pnode_name = strip_prefix(arg[iarg + 2], "i2_");
      pweight_name = strip_prefix(arg[iarg + 3], "d2_");
      iarg += 2;
    } else {
      error->all(FLERR, "fix {} scalelink/padmap: unknown keyword {}; {}", id, key, usage);
    }
  }
  if (nodes < 1 || reference_name.empty() || node_name.empty() || map_name.empty())
    error->all(FLERR, "fix {} scalelink/padmap: nodes, reference, fit and map are all required; {}", id, usage);
  const int d = domain->dimension;
  field_dofs = field_nodes * d;
  map_columns = field_dofs > 0 ? d : d + d * nodes * d;
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
  if (field_dofs > 0) lookup_field();
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
               "fix {} scalelink/padmap: no per-atom array d2_{} with {} columns ({} for d = {}, E = {} "
               "nodes); found {}; create it with fix property/atom d2_{} {}",
               id, map_name, map_columns, field_dofs > 0 ? "d, with field" : "d + d E d", domain->dimension, nodes,
               map_index < 0 ? 0 : cols, map_name, map_columns);
}

/* ----------------------------------------------------------------------
   The field mode's per-atom arrays and matrix rows, checked on all ranks.
------------------------------------------------------------------------- */

void FixScaleLinkPadMap::lookup_field()
{
  int flag = -1, cols = -1;
  pnode_index = atom->find_custom(pnode_name.c_str(), flag, cols);
  if (pnode_index < 0 || flag != 0 || cols < 1)
    error->all(FLERR,
               "fix {} scalelink/padmap: no per-atom integer array i2_{}; create it with fix property/atom i2_{} K "
               "and set the field nodes of each pad atom (-1 for an empty slot)",
               id, pnode_name, pnode_name);
  pslots = cols;
  pweight_index = atom->find_custom(pweight_name.c_str(), flag, cols);
  if (pweight_index < 0 || flag != 1 || cols != pslots)
    error->all(FLERR,
               "fix {} scalelink/padmap: no per-atom array d2_{} with {} columns (as many as i2_{}); create it "
               "with fix property/atom d2_{} {}",
               id, pweight_name, pslots, pnode_name, pweight_name, pslots);

  // the row blocks of all ranks must tile 0 .. Q d - 1
  const std::string problem = ScaleLink::tile_row_blocks(world, field_first, field_count, field_dofs,
                                                         "field matrix", "Q d", "scalelink_padmap_set_field",
                                                         row_counts, row_displs);
  if (!problem.empty()) error->all(FLERR, "fix {} scalelink/padmap: {}", id, problem);
  local_z.assign(std::max<long>(field_count, 1), 0.0);
  global_z.assign(field_dofs, 0.0);

  const int *mask = atom->mask;
  int **pnode = atom->iarray[pnode_index];
  const int qnodes = field_dofs / domain->dimension;
  int bad = -1;
  for (int i = 0; i < atom->nlocal && bad < 0; ++i)
    if (mask[i] & groupbit)
      for (int k = 0; k < pslots; ++k)
        if (pnode[i][k] >= qnodes || pnode[i][k] < -1) bad = static_cast<int>(atom->tag[i]);
  int any = -1;
  MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, world);
  if (any >= 0)
    error->all(FLERR, "fix {} scalelink/padmap: pad atom {} has a field node outside -1..{} in i2_{}", id, any,
               qnodes - 1, pnode_name);
}

/* ---------------------------------------------------------------------- */

std::string FixScaleLinkPadMap::set_field(long first, long count, long columns, const double *values)
{
  const long width = static_cast<long>(nodes) * domain->dimension;
  if (field_dofs == 0) return fmt::format("fix {} was defined without the field keyword", id);
  if (columns != width)
    return fmt::format("the field matrix has {} columns; fix {} was defined with E d = {}", columns, id, width);
  if (first < 0 || count < 0 || first + count > field_dofs)
    return fmt::format("rows {}..{} lie outside 0..{}", first, first + count - 1, field_dofs - 1);
  if (count > 0 && values == nullptr) return "no values given";
  field_first = first;
  field_count = count;
  field_rows.assign(values, values + static_cast<size_t>(count) * columns);
  return "";
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
  // four independent sums, so the additions need not wait for each other
  auto dot = [width, g](const double *coefficients) {
    double s[4] = {0.0, 0.0, 0.0, 0.0};
    int j = 0;
    for (; j + 4 <= width; j += 4)
      for (int l = 0; l < 4; ++l) s[l] += coefficients[j + l] * g[j + l];
    for (; j < width; ++j) s[0] += coefficients[j] * g[j];
    return (s[0] + s[1]) + (s[2] + s[3]);
  };
  if (field_dofs > 0) {
    for (long r = 0; r < field_count; ++r) local_z[r] = dot(field_rows.data() + r * width);
    MPI_Allgatherv(local_z.data(), static_cast<int>(field_count), MPI_DOUBLE, global_z.data(), row_counts.data(),
                   row_displs.data(), MPI_DOUBLE, world);
    int **pnode = atom->iarray[pnode_index];
    double **pweight = atom->darray[pweight_index];
    const double *z = global_z.data();
    for (int i = 0; i < nlocal; ++i) {
      if (!(mask[i] & groupbit)) continue;
      for (int c = 0; c < d; ++c) {
        double u = map[i][c];
        for (int k = 0; k < pslots; ++k)
          if (pnode[i][k] >= 0) u += pweight[i][k] * z[pnode[i][k] * d + c];
        x[i][c] += u - displacement(i, c);
      }
    }
  }
  for (int i = 0; i < nlocal && field_dofs == 0; ++i) {
    if (!(mask[i] & groupbit)) continue;
    const double *row = map[i];
    for (int c = 0; c < d; ++c) {
      const double u = row[c] + dot(row + d + c * width);
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

/* ----------------------------------------------------------------------
   C entry point: hand this rank's block of rows of the field matrix to fix `fix_id` of the
   LAMMPS instance `handle` (the pointer lammps_open gives). Returns 0, or 1 with the reason in
   `message`.
------------------------------------------------------------------------- */

extern "C" __attribute__((visibility("default"))) int scalelink_padmap_set_field(void *handle, const char *fix_id,
                                                                                  long first, long count,
                                                                                  long columns, const double *values,
                                                                                  char *message, int length)
{
  std::string problem;
  auto *lmp = static_cast<LAMMPS *>(handle);
  Fix *fix = (lmp && fix_id) ? lmp->modify->get_fix_by_id(fix_id) : nullptr;
  if (!fix)
    problem = fmt::format("no fix with ID {}", fix_id ? fix_id : "(null)");
  else if (std::string(fix->style) != "scalelink/padmap")
    problem = fmt::format("fix {} is {}, not scalelink/padmap", fix_id, fix->style);
  else
    problem = static_cast<FixScaleLinkPadMap *>(fix)->set_field(first, count, columns, values);
  if (message && length > 0) {
    std::strncpy(message, problem.c_str(), static_cast<size_t>(length) - 1);
    message[length - 1] = '\0';
  }
  return problem.empty() ? 0 : 1;
}
