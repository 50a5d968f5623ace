/* -*- c++ -*- ----------------------------------------------------------
   ScaleLink: a deployed potential (TorchScript file + metadata) seen from C++.

   This header deliberately includes neither torch nor LAMMPS: libtorch stays inside
   scalelink_model.cpp, so the pair style compiles against LAMMPS headers alone and the two
   bundled copies of {fmt} never meet in one translation unit.
------------------------------------------------------------------------- */

#ifndef SCALELINK_MODEL_H
#define SCALELINK_MODEL_H

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace ScaleLink {

// The one format version of the model file this code reads (bridge.model_file.FORMAT_VERSION).
constexpr int SUPPORTED_FORMAT_VERSION = 1;

// A problem with the model file or a model call; what() is one line meant for the user.
class ModelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The metadata fields the pair style relies on, validated at load time.
struct ModelMetadata {
  int format_version = 0;
  std::string kind;                    // "potential"
  std::vector<std::string> species;    // chemical symbols in model order
  double cutoff = 0.0;                 // model length units
  int num_layers = 0;                  // message-passing layers
  std::string units;                   // LAMMPS unit style, e.g. "metal"
  std::string dtype;                   // "float32" | "float64"
  int committee_size = 0;
  std::vector<std::string> outputs;
};

// A graph held in caller-owned buffers; the model only reads them.
//   edge_index    [2 * n_edges]  centres (row 0) then neighbours (row 1), node indices
//   edge_vectors  [3 * n_edges]  r_j - r_i, model length units
//   species       [n_nodes]      model species index
// Nodes 0..n_local-1 are the atoms whose energies count.
struct GraphView {
  std::int64_t n_nodes = 0;
  std::int64_t n_local = 0;
  std::int64_t n_edges = 0;
  const std::int64_t *edge_index = nullptr;
  const double *edge_vectors = nullptr;
  const std::int64_t *species = nullptr;
};

// Results of one call; the arrays stay valid until the next evaluate().
//   atomic_energy [n_nodes], forces [3 * n_nodes] (-dE/dr for every node, ghosts included),
//   virial xx yy zz xy xz yz of W = -sum_e r_e (x) dE/dr_e for this graph.
struct ModelResult {
  double energy = 0.0;
  double virial[6] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  const double *atomic_energy = nullptr;
  const double *forces = nullptr;
};

class Model {
 public:
  // Reads and validates `path`; throws ModelError naming the file and the reason.
  explicit Model(const std::string &path);
  ~Model();
  Model(const Model &) = delete;
  Model &operator=(const Model &) = delete;

  const ModelMetadata &metadata() const;

  // Runs the model on CPU in float64 inputs; throws ModelError on any failure.
  ModelResult evaluate(const GraphView &graph);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl;
};

// Intra-op threads of libtorch in this process.
int torch_num_threads();
void set_torch_num_threads(int nthreads);

}    // namespace ScaleLink

#endif
