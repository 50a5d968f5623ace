/* -*- c++ -*- ----------------------------------------------------------
   ScaleLink: fix scalelink/relax, relaxation to zero force by Anderson-accelerated steps.

     fix ID group scalelink/relax ftol F step B [memory M] [dmax D]

   Moves the atoms of the group, one force evaluation per step of a `run`, until the 2-norm of
   their forces (over all ranks) is at most F; the run then ends early. It needs forces only,
   not an energy whose gradient they are, so it also finds the equilibrium of force fields that
   are not conservative, such as atoms whose boundary follows a condensed continuum (fix
   scalelink/padmap), where conjugate gradients fail.

   Each step, with r = f the forces now and x the positions (Anderson mixing, depth M):
     dR_i, dX_i   the last M changes of r and x between steps
     gamma        minimises |r - sum_i gamma_i dR_i| (normal equations, over all ranks)
     x           += B r - sum_i gamma_i (dX_i + B dR_i)
   For a linear force field this is GMRES with memory M; B (distance^2/energy) is the step of
   the plain iteration x += B r, stable for B below 2 over the largest force constant.
   Steps longer than D (default 0.1 distance units) for some atom are scaled down as a whole;
   the history is cleared if the force norm grows 1000-fold over the best seen or the
   least-squares system is singular. Defaults: M = 40.

   The history is stored per atom and migrates with the atoms. No other fix may integrate the
   group; pad atoms (held, or moved by fix scalelink/padmap) belong outside it.

   Global vector (4): force evaluations, force norm at the last, history restarts, 1 if
   converged.
------------------------------------------------------------------------- */

#ifndef LMP_FIX_SCALELINK_RELAX_H
#define LMP_FIX_SCALELINK_RELAX_H

#include "fix.h"

#include <vector>

namespace LAMMPS_NS {

class FixScaleLinkRelax : public Fix {
 public:
  FixScaleLinkRelax(class LAMMPS *, int, char **);
  ~FixScaleLinkRelax() override;

  int setmask() override;
  void init() override;
  void setup(int) override;
  void initial_integrate(int) override;
  void post_force(int) override;
  void post_run() override;
  double compute_vector(int) override;
  double memory_usage() override;

  void grow_arrays(int) override;
  void copy_arrays(int, int, int) override;
  int pack_exchange(int, double *) override;
  int unpack_exchange(int, double *) override;

 private:
  double ftol, beta, dmax;
  int depth, dim, width;
  double **store;                 // per atom: x_prev, r_prev, Y (dim x depth), dR (dim x depth)
  int allocated;                  // rows of store
  std::vector<double> gram;       // depth x depth, dR_i . dR_j over all ranks
  std::vector<int> order;         // stored slots, oldest first
  int next_slot;
  bool have_previous, converged, stopped_run;
  double fnorm, best_fnorm, evaluations, restarts;

  void check_forces();
  void clear_history();
  bool solve(const std::vector<double> &, std::vector<double> &) const;
};

}    // namespace LAMMPS_NS

#endif
