/* -*- c++ -*- ----------------------------------------------------------
   ScaleLink: argument helpers shared by the ScaleLink fixes.
------------------------------------------------------------------------- */

#ifndef SCALELINK_FIX_ARGS_H
#define SCALELINK_FIX_ARGS_H

#include <mpi.h>
#include <string>
#include <vector>

namespace ScaleLink {

// "d2_map" -> "map" for prefix "d2_" (the name of a custom per-atom property as find_custom
// wants it); a name without the prefix is taken as it is
inline std::string strip_prefix(const std::string &name, const std::string &prefix)
{
  return name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name;
}

// Every rank holds rows first .. first + count - 1 of a matrix with `total` rows (count < 0: none
// handed over yet); the blocks must follow each other in rank order and tile 0 .. total - 1.
// Fills the row counts and displacements of MPI_Allgatherv; returns "" or what is wrong
// (`what`: the matrix's name, `total_name`: how the fix names `total`, `entry`: the C entry point
// that hands the rows over). Collective.
inline std::string tile_row_blocks(MPI_Comm world, long first, long count, long total, const std::string &what,
                                   const std::string &total_name, const std::string &entry,
                                   std::vector<int> &counts, std::vector<int> &displs)
{
  int nprocs = 1;
  MPI_Comm_size(world, &nprocs);
  long mine[2] = {first, count};
  std::vector<long> all(2 * static_cast<size_t>(nprocs));
  MPI_Allgather(mine, 2, MPI_LONG, all.data(), 2, MPI_LONG, world);
  counts.assign(nprocs, 0);
  displs.assign(nprocs, 0);
  long next = 0;
  for (int p = 0; p < nprocs; ++p) {
    if (all[2 * p + 1] < 0)
      return "rank " + std::to_string(p) + " has no rows of the " + what + "; hand them over with " + entry +
          " after defining the fix";
    if (all[2 * p] != next)
      return "rank " + std::to_string(p) + " holds rows from " + std::to_string(all[2 * p]) + ", expected " +
          std::to_string(next) + " (the blocks must follow each other in rank order)";
    counts[p] = static_cast<int>(all[2 * p + 1]);
    displs[p] = static_cast<int>(next);
    next += all[2 * p + 1];
  }
  if (next != total)
    return "the ranks hold " + std::to_string(next) + " rows of the " + what + " together, expected " +
        total_name + " = " + std::to_string(total);
  return "";
}

}    // namespace ScaleLink

#endif
