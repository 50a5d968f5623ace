/* -*- c++ -*- ----------------------------------------------------------
   ScaleLink: fix scalelink/relax, relaxation to zero force by Anderson-accelerated steps.

     fix ID group scalelink/relax ftol F step B [memory M] [dmax D] [coarse N i2_NODE d2_WEIGHT]

   Moves the atoms of the group, one force evaluation per step of a `run`, until the 2-norm of
   their forces (over all ranks) is at most F; the run then ends early. It needs forces only,
   not an energy whose gradient they are, so it also finds the equilibrium of force fields that
   are not conservative, such as atoms whose boundary follows a condensed continuum (fix
   scalelink/padmap), where conjugate gradients fail.

   Each step, with f the forces now, x the positions and r = P f the preconditioned forces
   (Anderson mixing, depth M):
     dR_i, dX_i   the last M changes of r and x between steps
     gamma        minimises |r - sum_i gamma_i dR_i| (normal equations over all ranks, solved
                  with pivoting and a tiny shift)
     x           += r - sum_i gamma_i (dX_i + dR_i)
   For a linear force field this is GMRES with memory M on the preconditioned system. Without
   `coarse`, P = B: the plain iteration x += B f, stable for B (distance^2/energy) below 2 over
   the largest force constant.

   With `coarse`, P = B + Phi S Phi^T, a two-level preconditioner: Phi interpolates N coarse
   degrees of freedom (N / dim coarse nodes) to the atoms, from the per-atom integer array
   i2_NODE (K coarse nodes per atom, -1 for an empty slot) and the per-atom array d2_WEIGHT
   (their K weights); S (N x N, distance^2/energy) is the inverse of a coarse stiffness, e.g. the
   Cauchy-Born elasticity of the lattice on a coarse grid. The smooth, soft modes that make
   plain Anderson steps slow (their number of steps grows with the size of the region) are then
   solved for directly. Each rank holds a block of rows of S, handed over after the fix is
   defined (and before the run) by the C function scalelink_relax_set_coarse of the plugin
   library; the blocks of all ranks must tile 0..N-1. Cost per step: one allreduce and one
   allgather of N doubles, and (rows of S) x N multiply-adds.
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

#include <string>
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
  void set_arrays(int) override;
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

  // the steps of initial_integrate
  int record_change();
  std::vector<double> mixing_coefficients(int slot);
  double park_steps(const std::vector<double> &coefficient);
  void take_parked_steps(double scale);

  // two-level preconditioner (keyword coarse)
  int coarse_dofs;                  // N, 0 without coarse
  std::string node_name, weight_name;
  int node_index, weight_index, slots;
  std::vector<double> coarse_rows;  // this rank's rows of S, row-major
  long coarse_first, coarse_count;  // its first row and number of rows; count < 0 until set
  std::vector<int> row_counts, row_displs;
  std::vector<double> precond;      // P f of the owned atoms of the group, nlocal x dim
  void lookup_coarse();
  void precondition();

 public:
  // the rows [first, first + count) of S on this rank (count x N, row-major); "" or the reason
  std::string set_coarse(long first, long count, long columns, const double *values);
};

}    // namespace LAMMPS_NS

#endif
