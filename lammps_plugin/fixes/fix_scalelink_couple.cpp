/* ----------------------------------------------------------------------
   ScaleLink: fix scalelink/couple (see fix_scalelink_couple.h).
------------------------------------------------------------------------- */

#include "fix_scalelink_couple.h"

#include "fix_scalelink_args.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "modify.h"
#include "output.h"
#include "update.h"
#include "utils.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>
#include <sched.h>

using namespace LAMMPS_NS;
using namespace FixConst;
using ScaleLink::strip_prefix;

namespace {
constexpr int TAG_KINEMATICS = 7311, TAG_FORCES = 7312, TAG_REPLY = 7313;
}    // namespace

/* ---------------------------------------------------------------------- */

FixScaleLinkCouple::FixScaleLinkCouple(LAMMPS *lmp, int narg, char **arg) :
    Fix(lmp, narg, arg), partner_comm(MPI_COMM_NULL), first_partner(0), partner_count(0), route_index(-1),
    reference_index(-1), pad_type(-1), spin(1e-4), stale(true), work_seconds(0.0), wait_seconds(0.0),
    exchanges(0), rebuilds(0), deferred(0), partners_given(false), defer(false), pending(false),
    integrate_groupbit(0)
{
  const std::string usage = fmt::format(
      "expected: fix {} {} scalelink/couple comm F [partners R N] route i_NAME reference d2_NAME pad T "
      "[spin S] [defer yes|no]",
      id, arg[1]);
  bool have_comm = false, have_partners = false;
  std::string comm_text;
  for (int iarg = 3; iarg < narg; iarg += 2) {
    const std::string key = arg[iarg];
    if (iarg + 1 >= narg) error->all(FLERR, "fix {} scalelink/couple: keyword {} needs a value; {}", id, key, usage);
    const char *value = arg[iarg + 1];
    if (key == "comm") {
      comm_text = value;
      partner_comm = MPI_Comm_f2c(static_cast<MPI_Fint>(utils::inumeric(FLERR, value, false, lmp)));
      have_comm = true;
    } else if (key == "partners") {
      if (iarg + 2 >= narg) error->all(FLERR, "fix {} scalelink/couple: partners needs R and N; {}", id, usage);
      first_partner = utils::inumeric(FLERR, arg[iarg + 1], false, lmp);
      partner_count = utils::inumeric(FLERR, arg[iarg + 2], false, lmp);
      have_partners = true;
      ++iarg;
    } else if (key == "route") {
      route_name = strip_prefix(value, "i_");
    } else if (key == "reference") {
      reference_name = strip_prefix(value, "d2_");
    } else if (key == "pad") {
      pad_type = utils::inumeric(FLERR, value, false, lmp);
    } else if (key == "defer") {
      defer = utils::logical(FLERR, value, false, lmp) == 1;
    } else if (key == "spin") {
      spin = utils::numeric(FLERR, value, false, lmp);
      if (spin < 0.0) error->all(FLERR, "fix {} scalelink/couple: spin must not be negative, got {}", id, spin);
    } else {
      error->all(FLERR, "fix {} scalelink/couple: unknown keyword {}; {}", id, key, usage);
    }
  }
  comm_given = comm_text;
  partners_given = have_partners;
  if (!have_comm || route_name.empty() || reference_name.empty() || pad_type < 0)
    error->all(FLERR, "fix {} scalelink/couple: comm, route, reference and pad are all required; {}", id, usage);
  if (pad_type < 1 || pad_type > atom->ntypes)
    error->all(FLERR, "fix {} scalelink/couple: pad type {} is not an atom type (1..{})", id, pad_type,
               atom->ntypes);
  if (!atom->tag_enable) error->all(FLERR, "fix {} scalelink/couple needs atom IDs", id);

  vector_flag = 1;
  size_vector = 5;
  extvector = 0;
  global_freq = 1;
}

/* ---------------------------------------------------------------------- */

int FixScaleLinkCouple::setmask()
{
  return PRE_NEIGHBOR | PRE_FORCE | POST_FORCE | POST_RUN | (defer ? POST_INTEGRATE : 0);
}

/* ---------------------------------------------------------------------- */

void FixScaleLinkCouple::init()
{
  if (update->whichflag != 1)
    error->all(FLERR, "fix {} scalelink/couple couples time integration (run), not minimize", id);
  if (utils::strmatch(update->integrate_style, "^respa"))
    error->all(FLERR, "fix {} scalelink/couple does not support run_style respa", id);
  int flag = -1, cols = -1;
  route_index = atom->find_custom(route_name.c_str(), flag, cols);
  if (route_index < 0 || flag != 0 || cols != 0)
    error->all(FLERR,
               "fix {} scalelink/couple: no per-atom integer i_{}; create it with fix property/atom i_{} "
               "and set it (continuum rank, or -1 outside the band)",
               id, route_name, route_name);
  reference_index = atom->find_custom(reference_name.c_str(), flag, cols);
  if (reference_index < 0 || flag != 1 || cols != 3)
    error->all(FLERR,
               "fix {} scalelink/couple: no per-atom array d2_{} with 3 columns; create it with fix "
               "property/atom d2_{} 3 and set the reference positions",
               id, reference_name, reference_name);
  if (defer) check_integrators();
  check_partners();
  stale = true;
}

/* ----------------------------------------------------------------------
   defer yes corrects the band atoms' velocity and position for a force that came late, which
   is exact for velocity Verlet: every integrating fix must be fix nve.
------------------------------------------------------------------------- */

void FixScaleLinkCouple::check_integrators()
{
  integrate_groupbit = 0;
  observers.clear();
  const int mask = INITIAL_INTEGRATE | FINAL_INTEGRATE;
  for (int i = 0; i < modify->nfix; ++i) {
    Fix *other = modify->fix[i];
    if (other == this) continue;
    if (modify->fmask[i] & mask) {
      if (std::string(other->style) != "nve")
        error->all(FLERR,
                   "fix {} scalelink/couple defer yes: fix {} integrates with style {}, but a late coupling "
                   "force is only exact for fix nve (velocity Verlet); use defer no",
                   id, other->id, other->style);
      integrate_groupbit |= other->groupbit;
    }
    if (modify->fmask[i] & END_OF_STEP) observers.push_back(other);
  }
}

/* ----------------------------------------------------------------------
   Whether anything looks at the atoms between this step's post_force and the next step's
   post_integrate: output, an end-of-step fix, or the end of the run.
------------------------------------------------------------------------- */

bool FixScaleLinkCouple::observed_now() const
{
  const bigint step = update->ntimestep;
  if (step >= update->laststep || step == output->next) return true;
  for (const Fix *other : observers)
    if (other->nevery > 0 && step % other->nevery == 0) return true;
  return false;
}

/* ----------------------------------------------------------------------
   The communicator and which of its ranks are the continuum's.
------------------------------------------------------------------------- */

void FixScaleLinkCouple::check_partners()
{
  int is_inter = 0;
  if (partner_comm == MPI_COMM_NULL || MPI_Comm_test_inter(partner_comm, &is_inter) != MPI_SUCCESS)
    error->all(FLERR,
               "fix {} scalelink/couple: comm {} is not a communicator; pass the Fortran handle (mpi4py: "
               "Comm.py2f()) of one that holds the LAMMPS ranks and the continuum ranks",
               id, comm_given);
  if (is_inter) {
    // the continuum ranks are the remote group
    int local_size = 0;
    MPI_Comm_size(partner_comm, &local_size);
    if (local_size != comm->nprocs)
      error->all(FLERR,
                 "fix {} scalelink/couple: the inter-communicator's local group has {} ranks but LAMMPS "
                 "runs on {}; its local group must be the LAMMPS ranks",
                 id, local_size, comm->nprocs);
    if (partners_given)
      error->all(FLERR, "fix {} scalelink/couple: partners is for an intra-communicator; with an "
                 "inter-communicator the continuum ranks are its remote group", id);
    first_partner = 0;
    MPI_Comm_remote_size(partner_comm, &partner_count);
  } else {
    int size = 0, rank = 0;
    MPI_Comm_size(partner_comm, &size);
    MPI_Comm_rank(partner_comm, &rank);
    if (!partners_given)
      error->all(FLERR, "fix {} scalelink/couple: with an intra-communicator, say which of its ranks are "
                 "the continuum's (partners R N: continuum rank r is rank R + r)", id);
    if (partner_count < 1 || first_partner < 0 || first_partner + partner_count > size)
      error->all(FLERR, "fix {} scalelink/couple: partners {} {} do not fit a communicator of {} ranks", id,
                 first_partner, partner_count, size);
    int inside = (rank >= first_partner && rank < first_partner + partner_count) ? 1 : 0, any = 0;
    MPI_Allreduce(&inside, &any, 1, MPI_INT, MPI_MAX, world);
    if (any)
      error->all(FLERR, "fix {} scalelink/couple: partners {} {} include LAMMPS ranks of the communicator",
                 id, first_partner, partner_count);
  }
}

/* ---------------------------------------------------------------------- */

void FixScaleLinkCouple::setup_pre_neighbor()
{
  stale = true;
}

void FixScaleLinkCouple::pre_neighbor()
{
  stale = true;
}

/* ----------------------------------------------------------------------
   The exchange of step 0: the forces of the set-up are in, nothing has moved yet.
------------------------------------------------------------------------- */

void FixScaleLinkCouple::setup(int /*vflag*/)
{
  stale = true;
  pending = false;
  send_kinematics();
  exchange_forces();
  wait_reply();
  apply_reply(Applied::NOW);
}

void FixScaleLinkCouple::pre_force(int /*vflag*/)
{
  send_kinematics();
}

void FixScaleLinkCouple::post_force(int /*vflag*/)
{
  exchange_forces();
  if (defer && !observed_now()) {
    pending = true;    // LAMMPS integrates meanwhile; post_integrate of the next step applies it
    ++deferred;
    return;
  }
  wait_reply();
  apply_reply(Applied::NOW);
}

void FixScaleLinkCouple::post_integrate()
{
  if (!pending) return;
  wait_reply();
  apply_reply(Applied::NEXT_STEP);
}

/* ----------------------------------------------------------------------
   The pad atoms back at the last step's positions. Nothing has reordered the atoms since
   the last post_force, so the band list still holds.
------------------------------------------------------------------------- */

void FixScaleLinkCouple::post_run()
{
  if (pending) {    // a run stopped early (fix halt) with a reply still out
    wait_reply();
    apply_reply(Applied::AT_END);
  }
  wait_all(sends);
  const int dim = domain->dimension;
  double **x = atom->x;
  const int *type = atom->type;
  for (std::size_t k = 0; k < band.size(); ++k) {
    const int i = band[k];
    if (type[i] != pad_type) continue;
    for (int d = 0; d < dim; ++d) x[i][d] = pad_last[k * dim + d];
  }
}

/* ---------------------------------------------------------------------- */

double FixScaleLinkCouple::compute_vector(int n)
{
  switch (n) {
    case 0:
      return work_seconds;
    case 1:
      return wait_seconds;
    case 2:
      return static_cast<double>(exchanges);
    case 3:
      return static_cast<double>(rebuilds);
    default:
      return static_cast<double>(deferred);
  }
}

/* ----------------------------------------------------------------------
   The band atoms among the local ones, grouped by continuum rank, by ID within a group.
------------------------------------------------------------------------- */

void FixScaleLinkCouple::rebuild()
{
  const int nlocal = atom->nlocal;
  const int *route = atom->ivector[route_index];
  const int *mask = atom->mask;
  const tagint *tag = atom->tag;
  band.clear();
  counts.assign(partner_count, 0);
  for (int i = 0; i < nlocal; ++i) {
    if (!(mask[i] & groupbit) || route[i] < 0) continue;
    if (route[i] >= partner_count)
      error->one(FLERR, "fix {} scalelink/couple: atom {} is routed to continuum rank {} of {}", id,
                 static_cast<long>(tag[i]), route[i], partner_count);
    band.push_back(i);
    ++counts[route[i]];
  }
  std::sort(band.begin(), band.end(), [&](int a, int b) {
    return route[a] != route[b] ? route[a] < route[b] : tag[a] < tag[b];
  });
  const std::size_t dim = domain->dimension;
  kinematics.resize(band.size() * (1 + 2 * dim));
  forces.resize(band.size() * dim);
  reply.resize(band.size() * dim);
  pad_last.resize(band.size() * dim);
  stale = false;
  ++rebuilds;
}

/* ---------------------------------------------------------------------- */

void FixScaleLinkCouple::send_kinematics()
{
  wait_all(sends);    // the previous step's sends (long done: their reply has come back)
  const double start = MPI_Wtime();
  if (stale) rebuild();
  const int dim = domain->dimension;
  const int width = 1 + 2 * dim;
  double **x = atom->x, **v = atom->v;
  double **reference = atom->darray[reference_index];
  const tagint *tag = atom->tag;
  const int periodic[3] = {domain->xperiodic, domain->yperiodic, domain->zperiodic};
  const double period[3] = {domain->xprd, domain->yprd, domain->zprd};
  for (std::size_t k = 0; k < band.size(); ++k) {
    const int i = band[k];
    double *row = &kinematics[k * width];
    row[0] = static_cast<double>(tag[i]);
    for (int d = 0; d < dim; ++d) {
      double u = x[i][d] - reference[i][d];
      if (periodic[d]) u -= period[d] * std::nearbyint(u / period[d]);
      row[1 + d] = u;
      row[1 + dim + d] = v[i][d];
    }
  }
  int first = 0;
  for (int rank = 0; rank < partner_count; ++rank) {
    if (counts[rank]) {
      sends.emplace_back();
      MPI_Isend(&kinematics[first * width], counts[rank] * width, MPI_DOUBLE, first_partner + rank,
                TAG_KINEMATICS, partner_comm, &sends.back());
    }
    first += counts[rank];
  }
  work_seconds += MPI_Wtime() - start;
}

/* ---------------------------------------------------------------------- */

void FixScaleLinkCouple::exchange_forces()
{
  double start = MPI_Wtime();
  if (stale)
    error->one(FLERR, "fix {} scalelink/couple: atoms were reordered between pre_force and post_force", id);
  const int dim = domain->dimension;
  double **f = atom->f;
  for (std::size_t k = 0; k < band.size(); ++k)
    for (int d = 0; d < dim; ++d) forces[k * dim + d] = f[band[k]][d];
  requests.clear();
  int first = 0;
  for (int rank = 0; rank < partner_count; ++rank) {
    if (counts[rank]) {
      requests.emplace_back();
      MPI_Isend(&forces[first * dim], counts[rank] * dim, MPI_DOUBLE, first_partner + rank, TAG_FORCES,
                partner_comm, &requests.back());
      requests.emplace_back();
      MPI_Irecv(&reply[first * dim], counts[rank] * dim, MPI_DOUBLE, first_partner + rank, TAG_REPLY,
                partner_comm, &requests.back());
    }
    first += counts[rank];
  }
  work_seconds += MPI_Wtime() - start;
}

void FixScaleLinkCouple::wait_reply()
{
  wait_all(requests);
  pending = false;
}

/* ----------------------------------------------------------------------
   The reply: pad atoms move to their next position, the other band atoms get the coupling
   force. NOW (in post_force) adds it to f. NEXT_STEP (in the next step's post_integrate) adds
   what velocity Verlet would have done with it: dt/m f to v (two half kicks) and dt²/m f to x.
   AT_END (post_run after an early stop) adds the missing half kick to v and f to f.
------------------------------------------------------------------------- */

void FixScaleLinkCouple::apply_reply(Applied when)
{
  const double start = MPI_Wtime();
  const int dim = domain->dimension;
  const int width = 1 + 2 * dim;
  double **x = atom->x, **v = atom->v, **f = atom->f;
  const int *type = atom->type;
  const int *mask = atom->mask;
  const double *rmass = atom->rmass, *mass = atom->mass;
  const double kick = (when == Applied::AT_END ? 0.5 : 1.0) * update->dt * force->ftm2v;
  for (std::size_t k = 0; k < band.size(); ++k) {
    const int i = band[k];
    const double *value = &reply[k * dim];
    if (type[i] == pad_type) {
      // keep the atom's periodic image: move it by (new displacement - current displacement)
      for (int d = 0; d < dim; ++d) {
        pad_last[k * dim + d] = x[i][d];
        x[i][d] += value[d] - kinematics[k * width + 1 + d];
      }
    } else if (when == Applied::NOW) {
      for (int d = 0; d < dim; ++d) f[i][d] += value[d];
    } else if (mask[i] & integrate_groupbit) {
      const double dv = kick / (rmass ? rmass[i] : mass[type[i]]);
      for (int d = 0; d < dim; ++d) {
        v[i][d] += dv * value[d];
        if (when == Applied::NEXT_STEP)
          x[i][d] += update->dt * dv * value[d];
        else
          f[i][d] += value[d];
      }
    }
  }
  ++exchanges;
  work_seconds += MPI_Wtime() - start;
}

/* ----------------------------------------------------------------------
   Wait for requests: spin (yielding the core) for `spin` seconds, then nap between tests.
------------------------------------------------------------------------- */

void FixScaleLinkCouple::wait_all(std::vector<MPI_Request> &requests)
{
  if (requests.empty()) return;
  const double start = MPI_Wtime();
  int done = 0;
  while (true) {
    MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE);
    if (done) break;
    if (MPI_Wtime() - start < spin) {
      sched_yield();
    } else {
      timespec nap{0, 20000};
      nanosleep(&nap, nullptr);
    }
  }
  wait_seconds += MPI_Wtime() - start;
  requests.clear();
}
