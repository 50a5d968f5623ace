/* ----------------------------------------------------------------------
   ScaleLink: fix scalelink/relax (see fix_scalelink_relax.h).
------------------------------------------------------------------------- */

#include "fix_scalelink_relax.h"

#include "fix_scalelink_args.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "group.h"
#include "memory.h"
#include "modify.h"
#include "timer.h"
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

FixScaleLinkRelax::FixScaleLinkRelax(LAMMPS *lmp, int narg, char **arg) :
    Fix(lmp, narg, arg), ftol(-1.0), beta(-1.0), dmax(0.1), depth(40), dim(domain->dimension), width(0),
    store(nullptr), allocated(0), next_slot(0), have_previous(false), converged(false), stopped_run(false), fnorm(0.0),
    best_fnorm(0.0), evaluations(0.0), restarts(0.0), coarse_dofs(0), node_index(-1), weight_index(-1), slots(0),
    coarse_first(0), coarse_count(-1)
{
  const std::string usage = fmt::format(
      "expected: fix {} {} scalelink/relax ftol F step B [memory M] [dmax D] [coarse N i2_NODE d2_WEIGHT]", id,
      arg[1]);
  for (int iarg = 3; iarg < narg; iarg += 2) {
    const std::string key = arg[iarg];
    if (iarg + 1 >= narg) error->all(FLERR, "fix {} scalelink/relax: keyword {} needs a value; {}", id, key, usage);
    if (key == "ftol") {
      ftol = utils::numeric(FLERR, arg[iarg + 1], false, lmp);
    } else if (key == "step") {
      beta = utils::numeric(FLERR, arg[iarg + 1], false, lmp);
    } else if (key == "memory") {
      depth = utils::inumeric(FLERR, arg[iarg + 1], false, lmp);
    } else if (key == "dmax") {
      dmax = utils::numeric(FLERR, arg[iarg + 1], false, lmp);
    } else if (key == "coarse") {
      if (iarg + 3 >= narg)
        error->all(FLERR, "fix {} scalelink/relax: coarse needs N, i2_NODE and d2_WEIGHT; {}", id, usage);
      coarse_dofs = utils::inumeric(FLERR, arg[iarg + 1], false, lmp);
      node_name = strip_prefix(arg[iarg + 2], "i2_");
      weight_name = strip_prefix(arg[iarg + 3], "d2_");
      if (coarse_dofs < 1 || coarse_dofs % domain->dimension != 0)
        error->all(FLERR,
                   "fix {} scalelink/relax: coarse N must be a positive multiple of the dimension {} (N = "
                   "dimension x coarse nodes), got {}",
                   id, domain->dimension, coarse_dofs);
      iarg += 2;
    } else {
      error->all(FLERR, "fix {} scalelink/relax: unknown keyword {}; {}", id, key, usage);
    }
  }
  if (ftol <= 0.0 || beta <= 0.0)
    error->all(FLERR, "fix {} scalelink/relax: ftol and step are required and must be positive (got {} and {}); {}",
               id, ftol, beta, usage);
  if (depth < 0 || depth > 200)
    error->all(FLERR, "fix {} scalelink/relax: memory must lie in 0..200, got {}", id, depth);
  if (dmax <= 0.0) error->all(FLERR, "fix {} scalelink/relax: dmax must be positive, got {}", id, dmax);

  width = 2 * dim + 2 * depth * dim;
  gram.assign(static_cast<size_t>(depth) * depth, 0.0);
  FixScaleLinkRelax::grow_arrays(atom->nmax);
  atom->add_callback(Atom::GROW);

  vector_flag = 1;
  size_vector = 4;
  extvector = 0;
  global_freq = 1;
  time_integrate = 1;
  create_attribute = 1;
}

/* ---------------------------------------------------------------------- */

FixScaleLinkRelax::~FixScaleLinkRelax()
{
  if (copymode) return;
  atom->delete_callback(id, Atom::GROW);
  memory->destroy(store);
}

/* ---------------------------------------------------------------------- */

int FixScaleLinkRelax::setmask()
{
  return INITIAL_INTEGRATE | POST_FORCE | POST_RUN;
}

/* ---------------------------------------------------------------------- */

void FixScaleLinkRelax::init()
{
  if (update->whichflag != 1)
    error->all(FLERR, "fix {} scalelink/relax relaxes during a run; use run N (N: most steps), not minimize", id);
  const int *mask = atom->mask;
  for (int i = 0; i < modify->nfix; ++i) {
    Fix *other = modify->fix[i];
    if (other == this || !(modify->fmask[i] & INITIAL_INTEGRATE)) continue;
    int shared = 0, any = 0;
    for (int j = 0; j < atom->nlocal && !shared; ++j) shared = (mask[j] & groupbit) && (mask[j] & other->groupbit);
    MPI_Allreduce(&shared, &any, 1, MPI_INT, MPI_MAX, world);
    if (any)
      error->all(FLERR, "fix {} scalelink/relax: fix {} ({}) also integrates atoms of group {}; unfix it first",
                 id, other->id, other->style, group->names[igroup]);
  }
  if (coarse_dofs > 0) lookup_coarse();
}

/* ----------------------------------------------------------------------
   The coarse preconditioner's per-atom arrays and matrix rows, checked on all ranks.
------------------------------------------------------------------------- */

void FixScaleLinkRelax::lookup_coarse()
{
  int flag = -1, cols = -1;
  node_index = atom->find_custom(node_name.c_str(), flag, cols);
  if (node_index < 0 || flag != 0 || cols < 1)
    error->all(FLERR,
               "fix {} scalelink/relax: no per-atom integer array i2_{}; create it with fix property/atom i2_{} K "
               "and set the coarse nodes of each atom (-1 for an empty slot)",
               id, node_name, node_name);
  slots = cols;
  weight_index = atom->find_custom(weight_name.c_str(), flag, cols);
  if (weight_index < 0 || flag != 1 || cols != slots)
    error->all(FLERR,
               "fix {} scalelink/relax: no per-atom array d2_{} with {} columns (as many as i2_{}); create it with "
               "fix property/atom d2_{} {}",
               id, weight_name, slots, node_name, weight_name, slots);

  // the row blocks of all ranks must tile 0..N-1
  const std::string problem = ScaleLink::tile_row_blocks(world, coarse_first, coarse_count, coarse_dofs,
                                                         "coarse matrix", "N", "scalelink_relax_set_coarse",
                                                         row_counts, row_displs);
  if (!problem.empty()) error->all(FLERR, "fix {} scalelink/relax: {}", id, problem);

  // coarse nodes of the group's atoms in range
  const int *mask = atom->mask;
  int **node = atom->iarray[node_index];
  const int nodes = coarse_dofs / dim;
  int bad = -1;
  for (int i = 0; i < atom->nlocal && bad < 0; ++i)
    if (mask[i] & groupbit)
      for (int k = 0; k < slots; ++k)
        if (node[i][k] >= nodes || node[i][k] < -1) bad = static_cast<int>(atom->tag[i]);
  int any = -1;
  MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, world);
  if (any >= 0)
    error->all(FLERR, "fix {} scalelink/relax: atom {} has a coarse node outside -1..{} in i2_{} (N = {} gives {} "
                      "nodes)",
               id, any, nodes - 1, node_name, coarse_dofs, nodes);
}

/* ---------------------------------------------------------------------- */

std::string FixScaleLinkRelax::set_coarse(long first, long count, long columns, const double *values)
{
  if (coarse_dofs == 0) return fmt::format("fix {} was defined without the coarse keyword", id);
  if (columns != coarse_dofs)
    return fmt::format("the coarse matrix has {} columns; fix {} was defined with N = {}", columns, id, coarse_dofs);
  if (first < 0 || count < 0 || first + count > coarse_dofs)
    return fmt::format("rows {}..{} lie outside 0..{}", first, first + count - 1, coarse_dofs - 1);
  if (count > 0 && values == nullptr) return "no values given";
  coarse_first = first;
  coarse_count = count;
  coarse_rows.assign(values, values + static_cast<size_t>(count) * columns);
  return "";
}

/* ----------------------------------------------------------------------
   precond = P f for the owned atoms of the group: B f, plus Phi S Phi^T f with coarse.
------------------------------------------------------------------------- */

void FixScaleLinkRelax::precondition()
{
  double **f = atom->f;
  const int *mask = atom->mask;
  const int nlocal = atom->nlocal;
  precond.assign(static_cast<size_t>(nlocal) * dim, 0.0);
  for (int i = 0; i < nlocal; ++i)
    if (mask[i] & groupbit)
      for (int c = 0; c < dim; ++c) precond[i * dim + c] = beta * f[i][c];
  if (coarse_dofs == 0) return;

  int **node = atom->iarray[node_index];
  double **weight = atom->darray[weight_index];
  std::vector<double> local(coarse_dofs, 0.0), coarse_f(coarse_dofs, 0.0), coarse_u(coarse_dofs, 0.0);
  for (int i = 0; i < nlocal; ++i) {
    if (!(mask[i] & groupbit)) continue;
    for (int k = 0; k < slots; ++k) {
      const int q = node[i][k];
      if (q < 0) continue;
      for (int c = 0; c < dim; ++c) local[q * dim + c] += weight[i][k] * f[i][c];
    }
  }
  MPI_Allreduce(local.data(), coarse_f.data(), coarse_dofs, MPI_DOUBLE, MPI_SUM, world);
  std::vector<double> mine(std::max<long>(coarse_count, 1), 0.0);
  for (long r = 0; r < coarse_count; ++r) {
    const double *row = coarse_rows.data() + r * coarse_dofs;
    double sum[4] = {0.0, 0.0, 0.0, 0.0};
    int j = 0;
    for (; j + 4 <= coarse_dofs; j += 4)
      for (int l = 0; l < 4; ++l) sum[l] += row[j + l] * coarse_f[j + l];
    for (; j < coarse_dofs; ++j) sum[0] += row[j] * coarse_f[j];
    mine[r] = (sum[0] + sum[1]) + (sum[2] + sum[3]);
  }
  MPI_Allgatherv(mine.data(), static_cast<int>(coarse_count), MPI_DOUBLE, coarse_u.data(), row_counts.data(),
                 row_displs.data(), MPI_DOUBLE, world);
  for (int i = 0; i < nlocal; ++i) {
    if (!(mask[i] & groupbit)) continue;
    for (int k = 0; k < slots; ++k) {
      const int q = node[i][k];
      if (q < 0) continue;
      for (int c = 0; c < dim; ++c) precond[i * dim + c] += weight[i][k] * coarse_u[q * dim + c];
    }
  }
}

/* ---------------------------------------------------------------------- */

void FixScaleLinkRelax::setup(int /*vflag*/)
{
  // a new run starts a new relaxation
  for (int i = 0; i < atom->nlocal; ++i) std::fill(store[i], store[i] + width, 0.0);
  clear_history();
  have_previous = false;
  converged = stopped_run = false;
  best_fnorm = 0.0;
  check_forces();
}

/* ---------------------------------------------------------------------- */

void FixScaleLinkRelax::post_force(int /*vflag*/)
{
  check_forces();
}

/* ----------------------------------------------------------------------
   Force norm of the group now; at or below ftol the run stops after this step.
------------------------------------------------------------------------- */

void FixScaleLinkRelax::check_forces()
{
  double **f = atom->f;
  const int *mask = atom->mask;
  double local = 0.0;
  for (int i = 0; i < atom->nlocal; ++i)
    if (mask[i] & groupbit)
      for (int c = 0; c < dim; ++c) local += f[i][c] * f[i][c];
  double total = 0.0;
  MPI_Allreduce(&local, &total, 1, MPI_DOUBLE, MPI_SUM, world);
  fnorm = std::sqrt(total);
  evaluations += 1.0;
  if (best_fnorm == 0.0 || fnorm < best_fnorm) best_fnorm = fnorm;
  if (fnorm <= ftol) {
    converged = true;
    if (!stopped_run) timer->force_timeout();
    stopped_run = true;
  }
}

/* ---------------------------------------------------------------------- */

void FixScaleLinkRelax::clear_history()
{
  order.clear();
  next_slot = 0;
}

/* ----------------------------------------------------------------------
   Solve (G + eps I) gamma = b over the stored slots by Gaussian elimination with partial
   pivoting; false if singular. eps is tiny: the Gram matrix of nearly dependent changes is
   close to singular but still gives good coefficients, which a larger shift (or a Cholesky
   factorisation, which fails on the slightest indefiniteness from rounding) would spoil.
------------------------------------------------------------------------- */

bool FixScaleLinkRelax::solve(const std::vector<double> &b, std::vector<double> &gamma) const
{
  const int k = static_cast<int>(order.size());
  const int w = k + 1;
  std::vector<double> a(static_cast<size_t>(k) * w);
  double trace = 0.0;
  for (int i = 0; i < k; ++i) trace += gram[order[i] * depth + order[i]];
  const double eps = 1e-18 * trace / std::max(k, 1);
  for (int i = 0; i < k; ++i) {
    for (int j = 0; j < k; ++j) a[i * w + j] = gram[order[i] * depth + order[j]] + (i == j ? eps : 0.0);
    a[i * w + k] = b[i];
  }
  for (int j = 0; j < k; ++j) {
    int pivot = j;
    for (int i = j + 1; i < k; ++i)
      if (std::fabs(a[i * w + j]) > std::fabs(a[pivot * w + j])) pivot = i;
    if (!(std::fabs(a[pivot * w + j]) > 0.0)) return false;
    if (pivot != j)
      for (int l = j; l < w; ++l) std::swap(a[j * w + l], a[pivot * w + l]);
    for (int i = j + 1; i < k; ++i) {
      const double factor = a[i * w + j] / a[j * w + j];
      for (int l = j; l < w; ++l) a[i * w + l] -= factor * a[j * w + l];
    }
  }
  gamma.assign(k, 0.0);
  for (int i = k - 1; i >= 0; --i) {
    double s = a[i * w + k];
    for (int l = i + 1; l < k; ++l) s -= a[i * w + l] * gamma[l];
    gamma[i] = s / a[i * w + i];
    if (!std::isfinite(gamma[i])) return false;
  }
  return true;
}

/* ---------------------------------------------------------------------- */

void FixScaleLinkRelax::initial_integrate(int /*vflag*/)
{
  if (stopped_run) return;
  precondition();
  if (fnorm > 1e3 * best_fnorm) {
    clear_history();
    restarts += 1.0;
  }
  const int slot = record_change();
  const std::vector<double> coefficient = mixing_coefficients(slot);

  // the step, limited to dmax for every atom
  const double longest = park_steps(coefficient);
  double global_longest = 0.0;
  MPI_Allreduce(&longest, &global_longest, 1, MPI_DOUBLE, MPI_MAX, world);
  const double scale = std::sqrt(global_longest) > dmax ? dmax / std::sqrt(global_longest) : 1.0;
  take_parked_steps(scale);
  have_previous = true;
}

/* ----------------------------------------------------------------------
   Store the changes dX + dR and dR of every atom of the group since the last step in the next
   history slot (the oldest is dropped when all are in use); returns the slot, or -1 when there
   is no previous step (or no history).
   Per atom, store holds x_prev (dim), r_prev (dim), then Y and dR, each dim rows of depth slots.
------------------------------------------------------------------------- */

int FixScaleLinkRelax::record_change()
{
  if (!have_previous || depth == 0) return -1;
  double **x = atom->x;
  const double *r = precond.data();
  const int *mask = atom->mask;
  const int periodic[3] = {domain->xperiodic, domain->yperiodic, domain->zperiodic};
  const double period[3] = {domain->xprd, domain->yprd, domain->zprd};
  const int offset_y = 2 * dim, offset_r = 2 * dim + depth * dim;
  const int slot = next_slot;
  next_slot = (next_slot + 1) % depth;
  if (static_cast<int>(order.size()) == depth) order.erase(order.begin());
  for (int i = 0; i < atom->nlocal; ++i) {
    if (!(mask[i] & groupbit)) continue;
    double *s = store[i];
    for (int c = 0; c < dim; ++c) {
      double dx = x[i][c] - s[c];
      if (periodic[c]) dx -= period[c] * std::nearbyint(dx / period[c]);
      const double dr = r[i * dim + c] - s[dim + c];
      s[offset_r + c * depth + slot] = dr;
      s[offset_y + c * depth + slot] = dx + dr;
    }
  }
  return slot;
}

/* ----------------------------------------------------------------------
   The Anderson coefficients gamma, one per history slot (0 for slots not in use): the Gram
   matrix is extended by the new slot and gamma minimises |r - sum_i gamma_i dR_i|. A singular
   system clears the history (all coefficients 0: a plain preconditioned step).
------------------------------------------------------------------------- */

std::vector<double> FixScaleLinkRelax::mixing_coefficients(int slot)
{
  const double *r = precond.data();
  const int *mask = atom->mask;
  const int offset_r = 2 * dim + depth * dim;
  // dots of every slot's dR with the new dR and with r, over all ranks (slots not in use are
  // finite and ignored)
  std::vector<double> local(2 * depth + 1, 0.0), total(2 * depth + 1, 0.0);
  double *with_new = local.data(), *with_r = local.data() + depth;
  for (int i = 0; i < atom->nlocal; ++i) {
    if (!(mask[i] & groupbit)) continue;
    const double *s = store[i];
    for (int c = 0; c < dim; ++c) {
      const double *row = s + offset_r + c * depth;
      const double fresh = slot >= 0 ? row[slot] : 0.0, force = r[i * dim + c];
      for (int p = 0; p < depth; ++p) {
        with_new[p] += row[p] * fresh;
        with_r[p] += row[p] * force;
      }
    }
  }
  MPI_Allreduce(local.data(), total.data(), 2 * depth, MPI_DOUBLE, MPI_SUM, world);
  if (slot >= 0) {
    for (int q : order) gram[slot * depth + q] = gram[q * depth + slot] = total[q];
    gram[slot * depth + slot] = total[slot];
    order.push_back(slot);
  }
  std::vector<double> b, gamma, coefficient(depth, 0.0);
  for (int q : order) b.push_back(total[depth + q]);
  if (!order.empty()) {
    if (solve(b, gamma)) {
      for (size_t j = 0; j < order.size(); ++j) coefficient[order[j]] = gamma[j];
    } else {
      clear_history();
      restarts += 1.0;
    }
  }
  return coefficient;
}

/* ----------------------------------------------------------------------
   The unscaled step r - sum_i gamma_i Y_i of every atom of the group, parked in its x_prev
   until the scale is known; returns the largest squared step length on this rank.
------------------------------------------------------------------------- */

double FixScaleLinkRelax::park_steps(const std::vector<double> &coefficient)
{
  const double *r = precond.data();
  const int *mask = atom->mask;
  const int offset_y = 2 * dim;
  double longest = 0.0;
  for (int i = 0; i < atom->nlocal; ++i) {
    if (!(mask[i] & groupbit)) continue;
    double *s = store[i];
    double length = 0.0;
    for (int c = 0; c < dim; ++c) {
      const double *row = s + offset_y + c * depth;
      double sum[4] = {0.0, 0.0, 0.0, 0.0};
      int p = 0;
      for (; p + 4 <= depth; p += 4)
        for (int l = 0; l < 4; ++l) sum[l] += coefficient[p + l] * row[p + l];
      for (; p < depth; ++p) sum[0] += coefficient[p] * row[p];
      const double step = r[i * dim + c] - ((sum[0] + sum[1]) + (sum[2] + sum[3]));
      s[c] = step;
      length += step * step;
    }
    longest = std::max(longest, length);
  }
  return longest;
}

/* ----------------------------------------------------------------------
   Move every atom of the group by `scale` times its parked step; x_prev and r_prev become
   the positions and preconditioned forces before the move.
------------------------------------------------------------------------- */

void FixScaleLinkRelax::take_parked_steps(double scale)
{
  double **x = atom->x;
  const double *r = precond.data();
  const int *mask = atom->mask;
  for (int i = 0; i < atom->nlocal; ++i) {
    if (!(mask[i] & groupbit)) continue;
    double *s = store[i];
    for (int c = 0; c < dim; ++c) {
      const double step = scale * s[c];
      s[c] = x[i][c];
      s[dim + c] = r[i * dim + c];
      x[i][c] += step;
    }
  }
}

/* ---------------------------------------------------------------------- */

void FixScaleLinkRelax::post_run()
{
  // let later runs go their full length
  if (stopped_run) timer->reset_timeout();
  stopped_run = false;
}

/* ---------------------------------------------------------------------- */

double FixScaleLinkRelax::compute_vector(int n)
{
  switch (n) {
    case 0: return evaluations;
    case 1: return fnorm;
    case 2: return restarts;
    default: return converged ? 1.0 : 0.0;
  }
}

/* ---------------------------------------------------------------------- */

double FixScaleLinkRelax::memory_usage()
{
  return static_cast<double>(atom->nmax) * width * sizeof(double);
}

/* ---------------------------------------------------------------------- */

void FixScaleLinkRelax::grow_arrays(int nmax)
{
  // not zeroed here: LAMMPS sizes per-atom arrays for at least 16384 atoms, and filling them
  // would cost more than a short relaxation. Every slot is read (unused ones with weight 0), so
  // the rows of owned atoms are zeroed when a run starts (setup), rows of atoms that arrive are
  // copied whole, and rows of atoms created later are zeroed by set_arrays.
  memory->grow(store, nmax, width, "scalelink/relax:store");
  allocated = nmax;
}

/* ---------------------------------------------------------------------- */

void FixScaleLinkRelax::set_arrays(int i)
{
  std::fill(store[i], store[i] + width, 0.0);
}

/* ---------------------------------------------------------------------- */

void FixScaleLinkRelax::copy_arrays(int i, int j, int /*delflag*/)
{
  std::memcpy(store[j], store[i], sizeof(double) * width);
}

/* ---------------------------------------------------------------------- */

int FixScaleLinkRelax::pack_exchange(int i, double *buf)
{
  std::memcpy(buf, store[i], sizeof(double) * width);
  return width;
}

/* ---------------------------------------------------------------------- */

int FixScaleLinkRelax::unpack_exchange(int nlocal, double *buf)
{
  std::memcpy(store[nlocal], buf, sizeof(double) * width);
  return width;
}

/* ----------------------------------------------------------------------
   C entry point: hand this rank's rows of the coarse matrix to fix `fix_id` of LAMMPS instance
   `handle` (the pointer lammps_open gives). Returns 0, or 1 with the reason in `message`.
------------------------------------------------------------------------- */

extern "C" __attribute__((visibility("default"))) int scalelink_relax_set_coarse(void *handle, const char *fix_id,
                                                                                  long first, long count,
                                                                                  long columns, const double *values,
                                                                                  char *message, int length)
{
  std::string problem;
  auto *lmp = static_cast<LAMMPS *>(handle);
  Fix *fix = (lmp && fix_id) ? lmp->modify->get_fix_by_id(fix_id) : nullptr;
  if (!fix)
    problem = fmt::format("no fix with ID {}", fix_id ? fix_id : "(null)");
  else if (std::string(fix->style) != "scalelink/relax")
    problem = fmt::format("fix {} is {}, not scalelink/relax", fix_id, fix->style);
  else
    problem = static_cast<FixScaleLinkRelax *>(fix)->set_coarse(first, count, columns, values);
  if (message && length > 0) {
    std::strncpy(message, problem.c_str(), static_cast<size_t>(length) - 1);
    message[length - 1] = '\0';
  }
  return problem.empty() ? 0 : 1;
}
