/* -*- c++ -*- ----------------------------------------------------------
   ScaleLink: pair_style scalelink, graph-neural-network potentials exported to TorchScript.

     pair_style scalelink
     pair_coeff * * model.pt Cu Ni      (one species name or NULL per atom type)

   Each rank builds a graph from its full neighbour list (local atoms first, then the ghost
   atoms the local energies depend on), runs the model once, and writes forces on local and
   ghost atoms; ghost forces travel back to their owners by reverse communication.
------------------------------------------------------------------------- */

#ifndef LMP_PAIR_SCALELINK_H
#define LMP_PAIR_SCALELINK_H

#include "pair.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ScaleLink {
class Model;
}

namespace LAMMPS_NS {

class PairScaleLink : public Pair {
 public:
  PairScaleLink(class LAMMPS *);
  ~PairScaleLink() override;

  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;

  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;

 private:
  std::unique_ptr<ScaleLink::Model> model;
  std::string model_file;
  double cutoff;     // model cutoff, LAMMPS length units
  int num_layers;    // message-passing layers: local energies see num_layers * cutoff

  // type_species[t] = model species index of LAMMPS type t, -1 for NULL (t = 1..ntypes)
  std::vector<int> type_species;

  // Graph buffers, kept between steps so that steady state does not allocate.
  std::vector<int> node_of_atom;    // [nlocal + nghost] node index or -1
  std::vector<int> node_atom;       // [n_nodes] LAMMPS atom index of each node
  std::vector<std::int64_t> node_species;
  std::vector<std::int64_t> edge_centre, edge_neighbour, edge_index;
  std::vector<double> edge_vectors;
  int n_local_nodes;

  // Forces on ghost atoms when newton_pair is off, summed onto owners by reverse comm.
  std::vector<double> ghost_force;

  void allocate();
  void load_model(const std::string &file);
  void map_species(int narg, char **arg);
  void build_graph();
};

}    // namespace LAMMPS_NS

#endif
