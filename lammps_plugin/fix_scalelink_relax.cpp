/* ----------------------------------------------------------------------
   ScaleLink: fix scalelink/relax (see fix_scalelink_relax.h).
------------------------------------------------------------------------- */

#include "fix_scalelink_relax.h"

#include "atom.h"
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

/* ---------------------------------------------------------------------- */

FixScaleLinkRelax::FixScaleLinkRelax(LAMMPS *lmp, int narg, char **arg) :
    Fix(lmp, narg, arg), ftol(-1.0), beta(-1.0), dmax(0.1), depth(40), dim(domain->dimension), width(0),
    store(nullptr), allocated(0), next_slot(0), have_previous(false), converged(false), stopped_run(false), fnorm(0.0),
    best_fnorm(0.0), evaluations(0.0), restarts(0.0)
{
  const std::string usage =
      fmt::format("expected: fix {} {} scalelink/relax ftol F step B [memory M] [dmax D]", id, arg[1]);
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
}

/* ---------------------------------------------------------------------- */

void FixScaleLinkRelax::setup(int /*vflag*/)
{
  // a new run starts a new relaxation
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
   Solve (G + eps I) gamma = b over the stored slots by Cholesky; false if not positive definite.
------------------------------------------------------------------------- */

bool FixScaleLinkRelax::solve(const std::vector<double> &b, std::vector<double> &gamma) const
{
  const int k = static_cast<int>(order.size());
  std::vector<double> a(static_cast<size_t>(k) * k);
  double trace = 0.0;
  for (int i = 0; i < k; ++i) trace += gram[order[i] * depth + order[i]];
  const double eps = 1e-13 * trace / std::max(k, 1);
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < k; ++j) a[i * k + j] = gram[order[i] * depth + order[j]] + (i == j ? eps : 0.0);
  for (int j = 0; j < k; ++j) {
    double d = a[j * k + j];
    for (int l = 0; l < j; ++l) d -= a[j * k + l] * a[j * k + l];
    if (!(d > 0.0)) return false;
    d = std::sqrt(d);
    a[j * k + j] = d;
    for (int i = j + 1; i < k; ++i) {
      double s = a[i * k + j];
      for (int l = 0; l < j; ++l) s -= a[i * k + l] * a[j * k + l];
      a[i * k + j] = s / d;
    }
  }
  gamma.assign(k, 0.0);
  for (int i = 0; i < k; ++i) {
    double s = b[i];
    for (int l = 0; l < i; ++l) s -= a[i * k + l] * gamma[l];
    gamma[i] = s / a[i * k + i];
  }
  for (int i = k - 1; i >= 0; --i) {
    double s = gamma[i];
    for (int l = i + 1; l < k; ++l) s -= a[l * k + i] * gamma[l];
    gamma[i] = s / a[i * k + i];
  }
  return true;
}

/* ---------------------------------------------------------------------- */

void FixScaleLinkRelax::initial_integrate(int /*vflag*/)
{
  if (stopped_run) return;
  double **x = atom->x, **f = atom->f;
  const int *mask = atom->mask;
  const int nlocal = atom->nlocal;
  const int periodic[3] = {domain->xperiodic, domain->yperiodic, domain->zperiodic};
  const double period[3] = {domain->xprd, domain->yprd, domain->zprd};
  // per atom: x_prev (dim), r_prev (dim), then Y and dR, each dim rows of depth slots
  const int offset_y = 2 * dim, offset_r = 2 * dim + depth * dim;

  if (fnorm > 1e3 * best_fnorm) {
    clear_history();
    restarts += 1.0;
  }
  int slot = -1;
  if (have_previous && depth > 0) {
    slot = next_slot;
    next_slot = (next_slot + 1) % depth;
    if (static_cast<int>(order.size()) == depth) order.erase(order.begin());
    for (int i = 0; i < nlocal; ++i) {
      if (!(mask[i] & groupbit)) continue;
      double *s = store[i];
      for (int c = 0; c < dim; ++c) {
        double dx = x[i][c] - s[c];
        if (periodic[c]) dx -= period[c] * std::nearbyint(dx / period[c]);
        const double dr = f[i][c] - s[dim + c];
        s[offset_r + c * depth + slot] = dr;
        s[offset_y + c * depth + slot] = dx + beta * dr;
      }
    }
  }
  // dots of every slot's dR with the new dR and with r, over all ranks (slots not in use are
  // finite and ignored)
  std::vector<double> local(2 * depth + 1, 0.0), total(2 * depth + 1, 0.0);
  double *with_new = local.data(), *with_r = local.data() + depth;
  for (int i = 0; i < nlocal; ++i) {
    if (!(mask[i] & groupbit)) continue;
    const double *s = store[i];
    for (int c = 0; c < dim; ++c) {
      const double *row = s + offset_r + c * depth;
      const double fresh = slot >= 0 ? row[slot] : 0.0, force = f[i][c];
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

  // the step, limited to dmax for every atom
  double longest = 0.0;
  for (int i = 0; i < nlocal; ++i) {
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
      const double step = beta * f[i][c] - ((sum[0] + sum[1]) + (sum[2] + sum[3]));
      s[c] = step;    // parked in x_prev until the scale is known
      length += step * step;
    }
    longest = std::max(longest, length);
  }
  double global_longest = 0.0;
  MPI_Allreduce(&longest, &global_longest, 1, MPI_DOUBLE, MPI_MAX, world);
  const double scale = std::sqrt(global_longest) > dmax ? dmax / std::sqrt(global_longest) : 1.0;
  for (int i = 0; i < nlocal; ++i) {
    if (!(mask[i] & groupbit)) continue;
    double *s = store[i];
    for (int c = 0; c < dim; ++c) {
      const double step = scale * s[c];
      s[c] = x[i][c];
      s[dim + c] = f[i][c];
      x[i][c] += step;
    }
  }
  have_previous = true;
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
  const int old = store ? allocated : 0;
  memory->grow(store, nmax, width, "scalelink/relax:store");
  // every slot is read (unused ones with weight 0), so none may hold garbage
  for (int i = old; i < nmax; ++i) std::fill(store[i], store[i] + width, 0.0);
  allocated = nmax;
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
