/* -*- c++ -*- ----------------------------------------------------------
   ScaleLink: fix scalelink/padmap, a continuum condensed onto the boundary of an atomistic region.

     fix ID group scalelink/padmap nodes E reference d2_REF fit i2_NODE d2_WEIGHT map d2_MAP
         [field Q i2_PNODE d2_PWEIGHT]

   For the relaxation of an atomistic region whose surrounding continuum is linear: the
   continuum's displacement at the pad atoms (the group, d = 2 or 3 components) is then an
   affine function of its Dirichlet data on the E nodes where the atoms feed it, and those data
   are linear in the displacements of the "fit" atoms. Every force evaluation of the minimiser,
   before the forces, with u = x - REF (nearest image in periodic directions):

     g[n d + c] = sum over fit atoms i, slots k with NODE[i][k] = n of WEIGHT[i][k] u_i[c]
                  (summed over all ranks; NODE < 0 marks an empty slot)
     u_p[c]     = MAP[p][c] + sum_j MAP[p][d + c E d + j] g[j]      for every pad atom p

   and the pad atoms are moved to REF + u_p (their periodic image kept). Their forces are zeroed
   after each evaluation, so no minimiser or integrator moves them itself. The minimum found is the fixed
   point of alternating Schwarz between the atoms and the continuum, reached in one minimisation.

   REF (3 columns), NODE and WEIGHT (the same number K of columns) and MAP (d + d E d columns,
   or d with field; PNODE and PWEIGHT have the same number of columns)
   are custom per-atom properties (fix property/atom d2_REF 3 i2_NODE K d2_WEIGHT K d2_MAP M),
   so they migrate with the atoms. The pad rows of MAP are only read for atoms of the group.

   With the keyword field, the continuum is instead given at Q field nodes (the FE nodes of the
   elements holding pad atoms): their displacements z = M g (Q d values) come from a dense
   matrix M (Q d rows, E d columns) whose rows are spread over the ranks in consecutive blocks
   (handed over with the C entry point scalelink_padmap_set_field after the fix is defined),
   and each pad atom interpolates them:

     u_p[c]     = MAP[p][c] + sum over slots k of PWEIGHT[p][k] z[PNODE[p][k] d + c]

   MAP then has d columns (the offset alone). This costs Q d × E d per evaluation over all
   ranks instead of (pad atoms) × d × E d, and holds M once instead of a row per pad atom.
   Every rank computes its block of z; the blocks are then gathered on all ranks.

   The forces this gives are not the gradient of an energy (the map is not symmetric), so relax
   with a method that follows forces only: fix scalelink/relax during a run (Anderson-accelerated,
   the fastest), or min_style fire. Line-search minimisers (cg, sd) stop early or stall. The fix
   acts the same way in minimize and in run (before every force evaluation).

   Global vector (2): force evaluations done, wall seconds of the fix's work (including the
   reduction of g over the ranks).
------------------------------------------------------------------------- */

#ifndef LMP_FIX_SCALELINK_PADMAP_H
#define LMP_FIX_SCALELINK_PADMAP_H

#include "fix.h"

#include <string>
#include <vector>

namespace LAMMPS_NS {

class FixScaleLinkPadMap : public Fix {
 public:
  FixScaleLinkPadMap(class LAMMPS *, int, char **);

  int setmask() override;
  void init() override;
  void setup(int) override;
  void min_setup(int) override;
  void setup_pre_force(int) override;
  void pre_force(int) override;
  void post_force(int) override;
  void min_pre_force(int) override;
  void min_post_force(int) override;
  double compute_vector(int) override;

  // rows first .. first + count - 1 (columns each, row-major) of the field matrix M on this
  // rank; returns "" or why they were refused
  std::string set_field(long first, long count, long columns, const double *values);

 private:
  int nodes;                         // E
  std::string reference_name, node_name, weight_name, map_name;
  int reference_index, node_index, weight_index, map_index;
  int slots, map_columns;            // K, d + d E d
  std::vector<double> local_g, global_g;
  int field_dofs;                    // Q d, 0 without the field keyword
  std::string pnode_name, pweight_name;
  int pnode_index, pweight_index, pslots;
  long field_first, field_count;     // this rank's block of rows of M (count -1: not handed over)
  std::vector<double> field_rows, local_z, global_z;
  std::vector<int> row_counts, row_displs;
  double evaluations, work_seconds;

  void lookup();
  void lookup_field();
  void move_pads();
};

}    // namespace LAMMPS_NS

#endif
