/* -*- c++ -*- ----------------------------------------------------------
   ScaleLink: fix scalelink/couple, the atomistic side of a concurrent LAMMPS–continuum coupling.

     fix ID group scalelink/couple comm F [partners R N] route i_NAME reference d2_NAME pad T [spin S]
                                    [defer yes|no]

   The LAMMPS ranks are one group of an MPI job whose other group runs the continuum (for
   instance scalelink.coupling.md); F is the Fortran handle (mpi4py: Comm.py2f()) of a
   communicator holding both groups. Either an intra-communicator, with partners R N saying
   that continuum rank r (0 <= r < N) is its rank R + r, or an inter-communicator whose remote
   group is the continuum. The intra-communicator is the one to use with MPICH: there a
   message on an inter-communicator is delivered only when its sender next enters MPI, so the
   kinematics sent before the forces would reach the continuum only after them. Each atom of the group
   whose per-atom integer i_NAME is >= 0 is a coupling-band atom handled by continuum rank
   i_NAME; d2_NAME (3 columns) holds its reference position. Both are custom per-atom
   properties (fix property/atom i_NAME d2_NAME 3) and migrate with the atoms.

   Every step, twice:
     pre_force   sends [id, u, v] of the band atoms (u = x - reference, nearest image in the
                 periodic directions; v the half-step velocity), grouped by continuum rank and
                 ordered by atom ID, so the continuum can do its atom-dependent work while LAMMPS
                 computes forces;
     post_force  sends the forces f of the same atoms, waits for the reply (one row of
                 dimension values per atom, in the order sent) and applies it: atoms of type T
                 ("pad" atoms, not integrated) are moved to reference + reply (their position at
                 the next step), every other band atom gets reply added to its force.
   The step-0 exchange happens in setup. After a run the pad atoms are put back where they were
   at its last step, so a following run or analysis starts from a consistent state.

   Messages (doubles, tags 7311 [id, u, v], 7312 f, 7313 reply) go only to
   continuum ranks that handle some of this rank's atoms. A waiting rank spins (yielding the
   core) for S seconds (default 1e-4) and then naps 20 microseconds between tests, so a
   continuum rank sharing its core is not starved.

   defer yes lets LAMMPS go on while the continuum answers: post_force sends the forces and
   returns; the reply is applied in the next step's post_integrate, before the positions are
   communicated. A non-pad band atom then gets what velocity Verlet would have done with the
   force F it missed: v += dt F/m (the two half kicks) and x += dt² F/m, so the trajectory is the
   same. This is exact only for fix nve, so every integrating fix must be fix nve (checked). On
   steps where something looks at the atoms in between (output, a fix with end_of_step on that
   step, the last step of the run) the reply is waited for and applied in post_force as with
   defer no. The default is defer no.

   Global vector (5): wall seconds of the fix's own work (packing, applying), wall seconds
   waiting for the continuum, exchanges done, rebuilds of the band-atom list (once per
   reneighboring), replies deferred to the next step.
------------------------------------------------------------------------- */

#ifndef LMP_FIX_SCALELINK_COUPLE_H
#define LMP_FIX_SCALELINK_COUPLE_H

#include "fix.h"

#include <mpi.h>
#include <string>
#include <vector>

namespace LAMMPS_NS {

class FixScaleLinkCouple : public Fix {
 public:
  FixScaleLinkCouple(class LAMMPS *, int, char **);

  int setmask() override;
  void init() override;
  void setup_pre_neighbor() override;
  void setup(int) override;
  void pre_neighbor() override;
  void pre_force(int) override;
  void post_force(int) override;
  void post_integrate() override;
  void post_run() override;
  double compute_vector(int) override;

 private:
  MPI_Comm partner_comm;       // holds the LAMMPS ranks and the continuum ranks
  int first_partner;           // continuum rank r is rank first_partner + r of partner_comm
  int partner_count;
  std::string route_name, reference_name;
  int route_index, reference_index;
  int pad_type;
  double spin;

  bool stale;                      // the local atom list changed since the band list was built
  std::vector<int> band;           // local indices of the band atoms, by (continuum rank, ID)
  std::vector<int> counts;         // band atoms per continuum rank
  std::vector<double> kinematics;  // [id, u, v] per band atom, in band order
  std::vector<double> forces;      // f per band atom
  std::vector<double> reply;
  std::vector<double> pad_last;    // pad atoms' positions before the last reply moved them
  std::vector<MPI_Request> sends;  // kinematics sends still open
  std::vector<MPI_Request> requests;  // this step's force send and reply receive

  bool defer;                      // apply the reply in the next step's post_integrate when unobserved
  bool pending;                    // a reply is out that is applied later
  int integrate_groupbit;          // atoms integrated by fix nve
  std::vector<class Fix *> observers;  // fixes with end_of_step

  double work_seconds, wait_seconds;
  long exchanges, rebuilds, deferred;

  std::string comm_given;       // the comm argument as written
  bool partners_given;

  void check_partners();
  void rebuild();
  void send_kinematics();
  void exchange_forces();
  void wait_reply();
  enum class Applied { NOW, NEXT_STEP, AT_END };
  void apply_reply(Applied);
  void check_integrators();
  bool observed_now() const;
  void wait_all(std::vector<MPI_Request> &);
};

}    // namespace LAMMPS_NS

#endif
