/* -*- c++ -*- ----------------------------------------------------------
   ScaleLink: compute scalelink/deviation, how far the members of a committee disagree.

     compute ID group scalelink/deviation

   Needs pair_style scalelink (alone, or as the one scalelink sub-style of pair_style hybrid
   or hybrid/overlay) with a committee model file (committee_size > 1). It reads what the
   pair style computed with the forces of the same step and triggers no model call: it
   can be used on any step where forces were computed, which during a run is every step,
   so thermo, dump, variables and fix halt may use it at any interval.

   Per-atom vector: the force deviation of each atom in the group (0 outside it),
   sqrt(1/M sum_m |F_m,i - Fbar_i|^2) over the M members, where F_m,i is member m's force
   on atom i and Fbar_i their mean (force units: eV/Angstrom in metal).
   Global scalar: the largest per-atom force deviation in the group.
   Global vector [2]: (largest per-atom force deviation in the group, energy deviation),
   the energy deviation being the standard deviation of the members' total energies over
   all atoms, whatever the group (energy units). Both intensive.

   NaN counts as above any threshold: a NaN force deviation of any atom in the group makes
   the largest deviation NaN (and a NaN member energy the energy deviation), so that
   `fix halt ... v_dev > x` stops and fix scalelink/collect writes the frame.
------------------------------------------------------------------------- */

#ifndef LMP_COMPUTE_SCALELINK_DEVIATION_H
#define LMP_COMPUTE_SCALELINK_DEVIATION_H

#include "compute.h"

namespace LAMMPS_NS {

class PairScaleLink;

class ComputeScaleLinkDeviation : public Compute {
 public:
  ComputeScaleLinkDeviation(class LAMMPS *, int, char **);
  ~ComputeScaleLinkDeviation() override;

  void init() override;
  double compute_scalar() override;
  void compute_vector() override;
  void compute_peratom() override;
  double memory_usage() override;

 private:
  PairScaleLink *pair;
  double values[2];    // the global vector
  double *per_atom;    // [nmax]
  int nmax;

  void require_current(const char *what);
  double group_max();
  double energy_deviation();
};

}    // namespace LAMMPS_NS

#endif
