/* ----------------------------------------------------------------------
   ScaleLink: fix scalelink/collect (see fix_scalelink_collect.h).
------------------------------------------------------------------------- */

#include "fix_scalelink_collect.h"

#include "pair/pair_scalelink.h"

#include "atom.h"
#include "comm.h"
#include "compute.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "group.h"
#include "modify.h"
#include "update.h"
#include "utils.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <numeric>

using namespace LAMMPS_NS;
using namespace FixConst;

namespace {
// values gathered per atom: id, type, x, y, z, force deviation
constexpr int PER_ATOM = 6;
}    // namespace

/* ---------------------------------------------------------------------- */

FixScaleLinkCollect::FixScaleLinkCollect(LAMMPS *lmp, int narg, char **arg) :
    Fix(lmp, narg, arg), threshold(0.0), deviation(nullptr), pair(nullptr), frames(0)
{
  if (narg != 6)
    error->all(FLERR,
               "fix scalelink/collect needs 3 arguments: fix {} {} scalelink/collect N "
               "threshold FILE.extxyz",
               id, arg[1]);
  nevery = utils::inumeric(FLERR, arg[3], false, lmp);
  if (nevery < 1) error->all(FLERR, "fix {} scalelink/collect: N must be a positive step count, got {}", id, nevery);
  threshold = utils::numeric(FLERR, arg[4], false, lmp);
  if (threshold < 0.0)
    error->all(FLERR, "fix {} scalelink/collect: threshold must not be negative, got {}", id, threshold);
  path = arg[5];
  if (!atom->tag_enable)
    error->all(FLERR, "fix {} scalelink/collect needs atom IDs to order the atoms it writes", id);

  scalar_flag = 1;
  extscalar = 0;
  global_freq = 1;

  deviation_id = std::string(id) + "_deviation";
  modify->add_compute(fmt::format("{} {} scalelink/deviation", deviation_id, group->names[igroup]));
}

/* ---------------------------------------------------------------------- */

FixScaleLinkCollect::~FixScaleLinkCollect()
{
  if (copymode) return;
  if (modify->get_compute_by_id(deviation_id)) modify->delete_compute(deviation_id);
}

/* ---------------------------------------------------------------------- */

int FixScaleLinkCollect::setmask()
{
  return END_OF_STEP;
}

/* ----------------------------------------------------------------------
   The compute checks pair style and model; here only the file, opened on rank 0 alone
   but refused on every rank alike.
------------------------------------------------------------------------- */

void FixScaleLinkCollect::init()
{
  deviation = modify->get_compute_by_id(deviation_id);
  if (!deviation) error->all(FLERR, "fix {} scalelink/collect: its compute {} was deleted", id, deviation_id);
  pair = dynamic_cast<PairScaleLink *>(force->pair_match("scalelink", 0));

  int opened = 1;
  if (comm->me == 0) {
    FILE *file = std::fopen(path.c_str(), "a");
    opened = file != nullptr;
    if (file) std::fclose(file);
  }
  MPI_Bcast(&opened, 1, MPI_INT, 0, world);
  if (!opened)
    error->all(FLERR, "fix {} scalelink/collect cannot open {} for appending: {}", id, path,
               utils::getsyserror());
}

/* ---------------------------------------------------------------------- */

void FixScaleLinkCollect::end_of_step()
{
  // an intensive scalar, reduced over all ranks: every rank takes the same branch
  const double largest = deviation->compute_scalar();
  // NaN (a deviation the committee cannot give) counts as above the threshold
  if (!(largest <= threshold)) write_frame(largest);
}

/* ---------------------------------------------------------------------- */

double FixScaleLinkCollect::compute_scalar()
{
  return frames;
}

/* ----------------------------------------------------------------------
   On rank 0: PER_ATOM values of every atom, ordered by atom ID; elsewhere empty.
------------------------------------------------------------------------- */

std::vector<double> FixScaleLinkCollect::gather_atoms()
{
  const int nlocal = atom->nlocal;
  const double *force_deviation = pair->force_deviation();
  std::vector<double> mine(static_cast<std::size_t>(PER_ATOM) * nlocal);
  for (int i = 0; i < nlocal; i++) {
    double *row = &mine[static_cast<std::size_t>(PER_ATOM) * i];
    row[0] = static_cast<double>(atom->tag[i]);
    row[1] = atom->type[i];
    for (int c = 0; c < 3; c++) row[2 + c] = atom->x[i][c] - domain->boxlo[c];
    row[5] = force_deviation[i];
  }

  const int count = static_cast<int>(mine.size());
  std::vector<int> counts(comm->me == 0 ? comm->nprocs : 0), offsets(counts.size());
  MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, world);
  std::vector<double> all;
  if (comm->me == 0) {
    std::exclusive_scan(counts.begin(), counts.end(), offsets.begin(), 0);
    all.resize(offsets.empty() ? 0 : offsets.back() + counts.back());
  }
  MPI_Gatherv(mine.data(), count, MPI_DOUBLE, all.data(), counts.data(), offsets.data(), MPI_DOUBLE, 0, world);
  if (comm->me != 0) return all;

  const std::size_t natoms = all.size() / PER_ATOM;
  std::vector<std::size_t> order(natoms);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&all](std::size_t a, std::size_t b) {
    return all[PER_ATOM * a] < all[PER_ATOM * b];
  });
  std::vector<double> sorted(all.size());
  for (std::size_t k = 0; k < natoms; k++)
    std::copy_n(&all[PER_ATOM * order[k]], PER_ATOM, &sorted[PER_ATOM * k]);
  return sorted;
}

/* ---------------------------------------------------------------------- */

void FixScaleLinkCollect::write_frame(double max_deviation)
{
  const std::vector<double> rows = gather_atoms();
  int failed = comm->me == 0 ? append_frame(rows, max_deviation) : 0;
  MPI_Bcast(&failed, 1, MPI_INT, 0, world);
  if (failed)
    error->all(FLERR,
               "fix {} scalelink/collect cannot append the frame of step {} to {}: {} ({} frame(s) "
               "written before): check the free space and permissions there, or choose another file",
               id, update->ntimestep, path, std::strerror(failed), frames);
  frames++;
}

/* ----------------------------------------------------------------------
   On rank 0: appends one frame of the gathered rows to the file; returns 0, or the errno
   of the open, write or close that failed (a full disk often shows only at fclose).
------------------------------------------------------------------------- */

int FixScaleLinkCollect::append_frame(const std::vector<double> &rows, double max_deviation)
{
  // extxyz is read as Angstrom and eV/Angstrom: undo the run's unit conversion
  const ScaleLink::UnitConversion &units = pair->unit_conversion();
  const double length = units.length_to_model, force = 1.0 / units.force_to_lammps;
  const std::vector<std::string> species = pair->type_species_names();
  const double cell[9] = {domain->xprd, 0.0, 0.0, domain->xy, domain->yprd, 0.0,
                          domain->xz, domain->yz, domain->zprd};
  std::string lattice;
  for (double value : cell) lattice += fmt::format("{}{:.17g}", lattice.empty() ? "" : " ", length * value);
  const char *flag[2] = {"F", "T"};

  const std::size_t natoms = rows.size() / PER_ATOM;
  std::string text = fmt::format(
      "{}\nLattice=\"{}\" Properties=species:S:1:pos:R:3:force_deviation:R:1 timestep={} "
      "max_force_deviation={:.17g} pbc=\"{} {} {}\"\n",
      natoms, lattice, update->ntimestep, force * max_deviation, flag[domain->xperiodic],
      flag[domain->yperiodic], flag[domain->zperiodic]);
  for (std::size_t k = 0; k < natoms; k++) {
    const double *row = &rows[PER_ATOM * k];
    const std::string &name = species[static_cast<int>(row[1])];
    text += fmt::format("{} {:.17g} {:.17g} {:.17g} {:.17g}\n", name == "NULL" ? "X" : name,
                        length * row[2], length * row[3], length * row[4], force * row[5]);
  }

  auto error_code = [] { return errno != 0 ? errno : EIO; };
  errno = 0;
  FILE *file = std::fopen(path.c_str(), "a");
  if (!file) return error_code();
  int failed = std::fwrite(text.data(), 1, text.size(), file) == text.size() ? 0 : error_code();
  if (std::fclose(file) != 0 && !failed) failed = error_code();
  return failed;
}
