/* ----------------------------------------------------------------------
   ScaleLink: a deployed potential evaluated one message-passing layer at a time, with the
   ghost atoms' features coming from the ranks that own them.

   Stage k maps the features h_k of all graph nodes to h_{k+1} of the local nodes; the
   ghost rows of h_{k+1} are copies of their owners' rows. Every stage starts from a fresh
   leaf, so its autograd graph is separate, and the backward pass runs stage by stage:
   dE/dh_k of a local atom is its own row of the stage's input gradient plus the ghost rows
   that belong to it on every rank (exchange.reverse). E is the energy of the whole system,
   so each edge (held once, by the owner of its centre) gets the full dE/dr_e, and forces
   and virials follow as from one evaluation of the whole graph.
------------------------------------------------------------------------- */

#include "scalelink_model.h"

#include "scalelink_keys.h"
#include "scalelink_model_impl.h"

#include <c10/core/DeviceGuard.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/jit/runtime/graph_executor.h>

#include <algorithm>
#include <sstream>
#include <vector>

namespace ScaleLink {

using detail::output;

namespace {

  // Adds an autograd result to `sum`; an undefined one (the input was not used) is zero.
  void add_gradient(at::Tensor &sum, const at::Tensor &gradient)
  {
    if (gradient.defined()) sum += gradient.to(sum.scalar_type());
  }

  // forces [3 * n_nodes] and virial xx yy zz xy xz yz from dE/dr_e [3 * n_edges] (float64,
  // model units): with r_e = r_j - r_i, F_i += dE/dr_e, F_j -= dE/dr_e and
  // W = -sum_e r_e (x) dE/dr_e.
  void edge_forces_and_virial(const GraphView &graph, const double *gradient,
                              std::vector<double> &forces, double virial[6])
  {
    forces.assign(3 * graph.n_nodes, 0.0);
    const std::int64_t *centre = graph.edge_index, *neighbour = graph.edge_index + graph.n_edges;
    double w[6] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    for (std::int64_t e = 0; e < graph.n_edges; e++) {
      const double *g = gradient + 3 * e, *r = graph.edge_vectors + 3 * e;
      double *fi = &forces[3 * centre[e]], *fj = &forces[3 * neighbour[e]];
      for (int c = 0; c < 3; c++) {
        fi[c] += g[c];
        fj[c] -= g[c];
      }
      w[0] -= r[0] * g[0];
      w[1] -= r[1] * g[1];
      w[2] -= r[2] * g[2];
      w[3] -= r[0] * g[1];
      w[4] -= r[0] * g[2];
      w[5] -= r[1] * g[2];
    }
    std::copy_n(w, 6, virial);
  }

  std::string shape(const at::Tensor &tensor)
  {
    std::ostringstream text;
    text << tensor.sizes();
    return text.str();
  }

  // The feature exchanges of one evaluation between the ranks that share atoms. Counts those
  // made, so that a rank that fails can take part in the rest (complete_with_zeros).
  class GhostExchanges {
   public:
    GhostExchanges(const FeatureExchange &exchange, std::int64_t n_local, std::int64_t n_ghost,
                   std::int64_t width, torch::Device device, torch::Dtype dtype) :
        exchange(exchange), n_local(n_local), n_ghost(n_ghost), width(width), device(device),
        dtype(dtype)
    {
    }

    // Local rows [n_local, F] (model dtype, on the device) -> all rows, ghosts from their owners.
    at::Tensor complete_with_ghosts(const at::Tensor &local)
    {
      const at::Tensor rows = local.detach().to(torch::kCPU, torch::kFloat64).contiguous();
      at::Tensor ghosts = torch::empty({n_ghost, width}, torch::TensorOptions().dtype(torch::kFloat64));
      exchange.forward(rows.data_ptr<double>(), ghosts.data_ptr<double>());
      forwarded++;
      return torch::cat({local.detach(), ghosts.to(device, dtype)});
    }

    // Gradient rows of all nodes -> those of the local nodes with their ghost copies' added.
    at::Tensor sum_onto_owners(const at::Tensor &all)
    {
      const at::Tensor ghosts =
          all.narrow(0, n_local, n_ghost).to(torch::kCPU, torch::kFloat64).contiguous();
      at::Tensor owned = torch::zeros({n_local, width}, torch::TensorOptions().dtype(torch::kFloat64));
      exchange.reverse(ghosts.data_ptr<double>(), owned.data_ptr<double>());
      reversed++;
      return all.narrow(0, 0, n_local) + owned.to(device, dtype);
    }

    // An empty graph: every exchange with no rows.
    void take_part_without_rows(int num_layers) const
    {
      for (int k = 1; k < num_layers; k++) exchange.forward(nullptr, nullptr);
      for (int k = 1; k < num_layers; k++) exchange.reverse(nullptr, nullptr);
    }

    // After a failure on this rank: the exchanges not made yet, with zero rows, because the
    // other ranks wait in them.
    void complete_with_zeros(int num_layers)
    {
      std::vector<double> local_rows(n_local * width, 0.0), ghost_rows(n_ghost * width, 0.0);
      for (; forwarded < num_layers - 1; forwarded++) exchange.forward(local_rows.data(), ghost_rows.data());
      std::fill(ghost_rows.begin(), ghost_rows.end(), 0.0);
      for (; reversed < num_layers - 1; reversed++) exchange.reverse(ghost_rows.data(), local_rows.data());
    }

   private:
    const FeatureExchange &exchange;
    const std::int64_t n_local, n_ghost, width;
    const torch::Device device;
    const torch::Dtype dtype;
    int forwarded = 0, reversed = 0;
  };

  // The graph's arrays as tensors on the device; `vectors` (model dtype) is the leaf that the
  // edge gradient is taken with respect to.
  struct GraphTensors {
    at::Tensor edge_index, vectors64, species, vectors;
  };

  GraphTensors graph_on_device(const GraphView &graph, torch::Device device, torch::Dtype dtype)
  {
    const auto int64 = torch::TensorOptions().dtype(torch::kInt64);
    const auto float64 = torch::TensorOptions().dtype(torch::kFloat64);
    auto view = [device](const void *data, at::IntArrayRef shape, const torch::TensorOptions &options) {
      return torch::from_blob(const_cast<void *>(data), shape, options).to(device);
    };
    GraphTensors tensors;
    const std::int64_t n_edges = graph.n_edges;
    tensors.edge_index = n_edges ? view(graph.edge_index, {2, n_edges}, int64)
                                 : torch::empty({2, 0}, int64.device(device));
    tensors.vectors64 = n_edges ? view(graph.edge_vectors, {n_edges, 3}, float64)
                                : torch::empty({0, 3}, float64.device(device));
    tensors.species = view(graph.species, {graph.n_nodes}, int64);
    tensors.vectors = tensors.vectors64.to(dtype).detach().requires_grad_(true);
    return tensors;
  }

  // Each stage's input (features of all nodes) and output (of the local nodes), kept for the
  // backward pass.
  struct Stages {
    std::vector<at::Tensor> inputs, outputs;
  };

  // embed(), then layer(k) for every k, the ghost rows filled from their owners in between.
  Stages run_stages(torch::jit::Module &module, const GraphTensors &tensors, int num_layers,
                    const GraphView &graph, std::int64_t width, GhostExchanges &ghosts)
  {
    Stages stages;
    at::Tensor h = module.run_method("embed", tensors.species).toTensor().detach();
    if (h.dim() != 2 || h.size(0) != graph.n_nodes || h.size(1) != width)
      throw ModelError("embed() returned features of shape " + shape(h) + ", expected [" +
                       std::to_string(graph.n_nodes) + ", " + std::to_string(width) + "]");
    for (int k = 0; k < num_layers; k++) {
      // stage 0 needs no gradient with respect to the embedding
      const at::Tensor input = k == 0 ? h : h.requires_grad_(true);
      stages.outputs.push_back(module.run_method("layer", static_cast<std::int64_t>(k), input,
                                                 tensors.vectors, tensors.edge_index, graph.n_local)
                                   .toTensor());
      stages.inputs.push_back(input);
      if (k + 1 < num_layers) h = ghosts.complete_with_ghosts(stages.outputs.back());
    }
    return stages;
  }

  // readout() of the last stage's output: the atomic energies [n_local], and dE/d(that output)
  // in `gradient`.
  at::Tensor read_out(torch::jit::Module &module, const Stages &stages, const GraphTensors &tensors,
                      std::int64_t n_local, at::Tensor &gradient)
  {
    const at::Tensor last = stages.outputs.back().detach().requires_grad_(true);
    const at::Tensor atomic =
        module.run_method("readout", last, tensors.species.narrow(0, 0, n_local)).toTensor();
    gradient = torch::zeros_like(last);
    add_gradient(gradient, torch::autograd::grad({atomic.sum()}, {last}, {}, false, false, true)[0]);
    return atomic;
  }

  // The backward pass stage by stage from dE/d(last output) down: dE/dr_e [n_edges, 3]
  // (float64, on the device), the input gradients of the local nodes summed with their ghost
  // copies' between stages.
  at::Tensor edge_gradient_by_stages(const Stages &stages, const GraphTensors &tensors,
                                     at::Tensor gradient, GhostExchanges &ghosts,
                                     std::int64_t n_edges, torch::Device device)
  {
    const int num_layers = static_cast<int>(stages.outputs.size());
    at::Tensor edge_gradient =
        torch::zeros({n_edges, 3}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
    for (int k = num_layers - 1; k >= 0; k--) {
      const bool below = k > 0;
      std::vector<at::Tensor> grads(2);
      if (stages.outputs[k].requires_grad()) {
        const auto wanted = below ? std::vector<at::Tensor>{tensors.vectors, stages.inputs[k]}
                                  : std::vector<at::Tensor>{tensors.vectors};
        const auto found =
            torch::autograd::grad({stages.outputs[k]}, wanted, {gradient}, false, false, true);
        std::copy(found.begin(), found.end(), grads.begin());
      }
      add_gradient(edge_gradient, grads[0]);
      if (!below) break;
      at::Tensor input_gradient = torch::zeros_like(stages.inputs[k]);
      add_gradient(input_gradient, grads[1]);
      gradient = ghosts.sum_onto_owners(input_gradient);
    }
    return edge_gradient;
  }

}    // namespace

ModelResult Model::evaluate_layers(const GraphView &graph, const FeatureExchange &exchange,
                                   bool atomic_virial)
{
  const int num_layers = impl->metadata.num_layers;
  const std::int64_t width = impl->num_features;
  if (width == 0)
    throw ModelError("the model file has no per-layer methods (embed, layer, readout, "
                     "derivatives): re-export it with `scalelink deploy`");

  const std::int64_t n_nodes = graph.n_nodes, n_local = graph.n_local;
  GhostExchanges ghosts(exchange, n_local, n_nodes - n_local, width, impl->device, impl->dtype);
  if (n_nodes == 0) {
    ghosts.take_part_without_rows(num_layers);
    return ModelResult{};
  }

  ModelResult result;
  try {
    const c10::DeviceGuard guard(impl->device);
    // On CPU the profiling executor's differentiable subgraphs are no faster than plain
    // autograd and keep more activations alive; it has no CPU fuser to make up for that.
    const torch::jit::GraphOptimizerEnabledGuard optimizer(impl->device.is_cuda());
    const torch::AutoGradMode grad_mode(true);
    const GraphTensors tensors = graph_on_device(graph, impl->device, impl->dtype);

    Stages stages = run_stages(impl->module, tensors, num_layers, graph, width, ghosts);
    at::Tensor gradient;
    const at::Tensor atomic = read_out(impl->module, stages, tensors, n_local, gradient);
    const at::Tensor edge_gradient =
        edge_gradient_by_stages(stages, tensors, gradient, ghosts, graph.n_edges, impl->device);
    // release the stages' features before the last call
    stages.inputs.clear();
    stages.outputs.clear();

    // Forces and the virial follow from dE/dr_e by the graph convention alone; derivatives()
    // is called only for what it adds, the per-node virials.
    const at::Tensor dE_dr = edge_gradient.to(torch::kCPU).contiguous();
    edge_forces_and_virial(graph, dE_dr.data_ptr<double>(), impl->node_forces, result.virial);
    if (atomic_virial) {
      const c10::IValue returned = impl->module.run_method("derivatives", edge_gradient, tensors.vectors64,
                                                           tensors.edge_index, n_nodes);
      if (!returned.isGenericDict()) throw ModelError("derivatives() did not return a Dict[str, Tensor]");
      impl->atomic_virial = output(returned.toGenericDict(), Keys::ATOMIC_VIRIAL, 9 * n_nodes);
    } else {
      impl->atomic_virial = at::Tensor();
    }
    impl->atomic_energy = atomic.detach().to(torch::kCPU, torch::kFloat64).contiguous();
    if (impl->atomic_energy.numel() != n_local)
      throw ModelError("readout() returned " + std::to_string(impl->atomic_energy.numel()) +
                       " energies for " + std::to_string(n_local) + " atoms");
    result.energy = impl->atomic_energy.sum().item<double>();
  } catch (...) {
    // The other ranks wait in the communications this rank has not reached: it takes part
    // in them with zero rows, so that every rank returns and the caller can agree on the
    // failure with the others instead of leaving them waiting.
    ghosts.complete_with_zeros(num_layers);
    detail::rethrow_as_model_error();
  }
  point_into(result, atomic_virial);
  result.forces = impl->node_forces.data();
  return result;
}

}    // namespace ScaleLink
