/* -*- c++ -*- ----------------------------------------------------------
   ScaleLink: a deployed potential (TorchScript file + metadata) seen from C++.

   This header deliberately includes neither torch nor LAMMPS: libtorch stays inside
   scalelink_model.cpp, so the pair style compiles against LAMMPS headers alone and the two
   bundled copies of {fmt} never meet in one translation unit.
------------------------------------------------------------------------- */

#ifndef SCALELINK_MODEL_H
#define SCALELINK_MODEL_H

#include <cstdint>
#include <functional>
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
  int committee_size = 0;               // > 1: outputs include member_energy, member_forces
  std::vector<std::string> outputs;

  bool returns(const std::string &key) const;    // is `key` listed in outputs?
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

// Results of one call, in model units; the arrays stay valid until the next evaluation.
//   atomic_energy [n_nodes] ([n_local] from evaluate_layers), forces [3 * n_nodes] (-dE/dr
//   for every node, ghosts included),
//   virial xx yy zz xy xz yz of W = -sum_e r_e (x) dE/dr_e for this graph,
//   atomic_virial [9 * n_nodes] xx yy zz xy xz yz yx zx zy per node (each edge's virial split
//   half to each end), only when asked for; nullptr otherwise.
// A committee of M > 1 members gives the members' mean in the fields above, and
//   member_energy [M], each member's energy of nodes 0..n_local-1, and
//   member_forces [M * n_nodes * 3], member m's force on node k at (m * n_nodes + k) * 3;
// both nullptr for a single model.
struct ModelResult {
  double energy = 0.0;    // sum of the atomic energies of nodes 0..n_local-1
  double virial[6] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  const double *atomic_energy = nullptr;
  const double *forces = nullptr;
  const double *atomic_virial = nullptr;
  const double *member_energy = nullptr;
  const double *member_forces = nullptr;
};

// Moves node features between the ranks that share atoms, for evaluate_layers(). Rows are
// float64, num_features() values per node, in node order; ghost rows are those of nodes
// n_local..n_nodes-1 of the graph.
//   forward(local_rows [n_local * F], ghost_rows [n_ghost * F]): ghost_rows <- the rows
//     their owners hold for the same atoms (the owners' local_rows);
//   reverse(ghost_rows [n_ghost * F], local_rows [n_local * F]): local_rows += the sum of
//     the ghost_rows of every copy of these atoms on every rank.
// Both are collective over the ranks: see evaluate_layers().
struct FeatureExchange {
  std::function<void(const double *local_rows, double *ghost_rows)> forward;
  std::function<void(const double *ghost_rows, double *local_rows)> reverse;
};

class Model {
 public:
  // Reads and validates `path` and puts the weights on `device` ("cpu", "cuda:0", ...);
  // throws ModelError naming the file and the reason. The metadata's cutoff and number of
  // layers must agree with the `cutoff` and `num_layers` attributes of the network inside
  // (the wrapper, its `potential` or each of its `members`) where it has them.
  explicit Model(const std::string &path, const std::string &device = "cpu");
  ~Model();
  Model(const Model &) = delete;
  Model &operator=(const Model &) = delete;

  const ModelMetadata &metadata() const;

  const std::string &device() const;

  // Runs the model on its device; inputs and results are float64 host arrays. The per-node
  // virial is copied out only when `atomic_virial` is true. Throws ModelError on any failure.
  ModelResult evaluate(const GraphView &graph, bool atomic_virial = false);

  // Width F of the node features passed between layers; 0 when the model file lacks the
  // per-layer methods (num_features, embed, layer, readout, derivatives).
  int num_features() const;

  // The same results from a graph whose edges all have local centres (edge_index[0] <
  // n_local): one layer at a time on the local nodes, the ghost nodes' features taken from
  // their owners through exchange.forward after every layer but the last, and the gradients
  // of the energy with respect to them returned through exchange.reverse, layer by layer
  // down. The energy, forces and virial are then those of the whole system's energy, as if
  // every rank saw all atoms its local atoms depend on. exchange.forward and then
  // exchange.reverse are each called num_layers - 1 times, also for an empty graph (no
  // model call then) and when the model fails on this rank (with zero rows from the
  // failure on, before ModelError is thrown), so that all ranks take part in the same
  // communications.
  ModelResult evaluate_layers(const GraphView &graph, const FeatureExchange &exchange,
                              bool atomic_virial = false);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl;
  // Points `result` at the outputs kept alive in impl, forces excepted.
  void point_into(ModelResult &result, bool atomic_virial) const;
};

// Intra-op threads of libtorch in this process.
int torch_num_threads();
void set_torch_num_threads(int nthreads);

// Whether the plugin was built with the CUDA libraries of torch (CMake SCALELINK_WITH_CUDA).
bool built_with_cuda();

// CUDA devices torch can use in this process (0 without CUDA support, driver or device).
int cuda_device_count();

}    // namespace ScaleLink

#endif
