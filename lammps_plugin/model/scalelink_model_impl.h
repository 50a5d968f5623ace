/* -*- c++ -*- ----------------------------------------------------------
   ScaleLink: what the two translation units of Model share (scalelink_model.cpp loads and
   calls the whole model, scalelink_model_layers.cpp drives it layer by layer). Includes
   torch: never include it from a file that includes LAMMPS headers.
------------------------------------------------------------------------- */

#ifndef SCALELINK_MODEL_IMPL_H
#define SCALELINK_MODEL_IMPL_H

#include "scalelink_model.h"

#include <torch/script.h>

#include <string>
#include <vector>

namespace ScaleLink {

struct Model::Impl {
  torch::jit::Module module;
  ModelMetadata metadata;
  std::string device_name;
  torch::Device device{torch::kCPU};
  torch::Dtype dtype = torch::kFloat64;    // of the weights and node features
  int num_features = 0;                    // 0: no per-layer methods in the file
  // Keep the last outputs alive: ModelResult points into them.
  at::Tensor atomic_energy, forces, atomic_virial, member_energy, member_forces;
  // evaluate_layers() sums the forces here itself, [3 * n_nodes], reused from step to step.
  std::vector<double> node_forces;
};

namespace detail {

  // torch messages run over many lines (context, backtrace); LAMMPS errors are one line.
  std::string first_line(const std::string &text);

  // Tensor `key` of a Dict[str, Tensor] returned by the model as a contiguous float64 CPU
  // tensor with `numel` elements; ModelError when missing or of another size.
  at::Tensor output(const c10::impl::GenericDict &out, const char *key, std::int64_t numel);

  // Call from inside a catch block: rethrows the current exception as a one-line ModelError.
  [[noreturn]] void rethrow_as_model_error();

}    // namespace detail

}    // namespace ScaleLink

#endif
