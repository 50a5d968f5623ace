/* -*- c++ -*- ----------------------------------------------------------
   ScaleLink: fix scalelink/collect, writes out the configurations a committee is unsure of.

     fix ID group scalelink/collect N threshold FILE.extxyz

   Every N steps, when the largest per-atom force deviation of the committee over the
   group (compute scalelink/deviation, force units of the run) exceeds threshold, rank 0
   appends the whole configuration, all atoms ordered by atom ID, to FILE as one extended
   XYZ frame that ase.io.read understands: species names from pair_coeff (X for types
   mapped to NULL), the cell (rows a = (xprd, 0, 0), b = (xy, yprd, 0), c = (xz, yz, zprd)),
   positions relative to the box origin, periodicity, a per-atom column force_deviation
   and, in the frame's info, the timestep and max_force_deviation. Lengths are in Angstrom
   and deviations in eV/Angstrom whatever the run's units. The file is created (empty) when
   a run starts if it does not exist, and appended to, never truncated. The fix's global
   scalar is the number of frames written so far. The check costs one MPI_Allreduce; the
   gather of all atoms on rank 0 happens only for frames written. A NaN deviation counts
   as above the threshold (the frame is written, with nan in it). A frame that cannot be
   written whole (open, write or close failing: a full disk, say) stops the run on every
   rank with an error naming the file and the reason, and is not counted.
------------------------------------------------------------------------- */

#ifndef LMP_FIX_SCALELINK_COLLECT_H
#define LMP_FIX_SCALELINK_COLLECT_H

#include "fix.h"

#include <string>
#include <vector>

namespace LAMMPS_NS {

class PairScaleLink;

class FixScaleLinkCollect : public Fix {
 public:
  FixScaleLinkCollect(class LAMMPS *, int, char **);
  ~FixScaleLinkCollect() override;

  int setmask() override;
  void init() override;
  void end_of_step() override;
  double compute_scalar() override;

 private:
  std::string path;
  double threshold;             // force units of the run
  std::string deviation_id;     // the compute scalelink/deviation this fix made
  class Compute *deviation;
  PairScaleLink *pair;
  int frames;

  void write_frame(double max_deviation);
  int append_frame(const std::vector<double> &rows, double max_deviation);
  std::vector<double> gather_atoms();
};

}    // namespace LAMMPS_NS

#endif
