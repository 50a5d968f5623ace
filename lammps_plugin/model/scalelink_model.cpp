/* ----------------------------------------------------------------------
   ScaleLink: loading, validating and calling a deployed TorchScript potential.
------------------------------------------------------------------------- */

#include "scalelink_model.h"

#include "scalelink_keys.h"
#include "scalelink_model_impl.h"

#include "json.h"    // LAMMPS's bundled nlohmann::json, header only

#include <ATen/Parallel.h>
#include <c10/core/DeviceGuard.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <utility>

using LAMMPS_NS::json;

namespace ScaleLink {

namespace detail {

  std::string first_line(const std::string &text)
  {
    const auto end = text.find('\n');
    return end == std::string::npos ? text : text.substr(0, end);
  }

  at::Tensor output(const c10::impl::GenericDict &out, const char *key, std::int64_t numel)
  {
    const auto it = out.find(key);
    if (it == out.end() || !it->value().isTensor())
      throw ModelError(std::string("the model returned no tensor '") + key + "'");
    at::Tensor value = it->value().toTensor().detach().to(torch::kCPU, torch::kFloat64).contiguous();
    if (value.numel() != numel)
      throw ModelError(std::string("the model returned '") + key + "' with " +
                       std::to_string(value.numel()) + " values, expected " + std::to_string(numel));
    return value;
  }

  // An exception raised inside TorchScript reads "The following operation failed in the
  // TorchScript interpreter.", then the TorchScript traceback, and the exception itself on
  // the last line ("builtins.RuntimeError: ..."): that line is the one that says what went wrong.
  std::string model_message(const std::string &text)
  {
    if (text.rfind("The following operation failed in the TorchScript interpreter", 0) != 0)
      return first_line(text);
    std::string last;
    std::size_t begin = 0;
    while (begin < text.size()) {
      const auto end = std::min(text.find('\n', begin), text.size());
      if (text.find_first_not_of(" \t\r", begin) < end) last = text.substr(begin, end - begin);
      begin = end + 1;
    }
    const std::string prefix = "builtins.";
    if (last.rfind(prefix, 0) == 0) last.erase(0, prefix.size());
    return last.empty() ? first_line(text) : last;
  }

  void rethrow_as_model_error()
  {
    try {
      throw;
    } catch (const ModelError &) {
      throw;
    } catch (const c10::Error &e) {
      throw ModelError(model_message(e.what_without_backtrace()));
    } catch (const std::exception &e) {
      throw ModelError(model_message(e.what()));
    }
  }

}    // namespace detail

void Model::point_into(ModelResult &result, bool atomic_virial) const
{
  result.atomic_energy = impl->atomic_energy.data_ptr<double>();
  if (atomic_virial) result.atomic_virial = impl->atomic_virial.data_ptr<double>();
  if (impl->metadata.committee_size > 1) {
    result.member_energy = impl->member_energy.data_ptr<double>();
    result.member_forces = impl->member_forces.data_ptr<double>();
  }
}

using detail::first_line;
using detail::output;

namespace {

  // A metadata field that must be present; the message names the field and the fix.
  const json &require(const json &meta, const char *key, const std::string &path)
  {
    if (!meta.contains(key))
      throw ModelError(path + ": model metadata has no '" + key +
                       "' field: re-export the model with `scalelink deploy`");
    return meta.at(key);
  }

  [[noreturn]] void bad_field(const std::string &path, const char *key, const std::string &expected,
                              const json &value)
  {
    throw ModelError(path + ": model metadata field '" + key + "' must be " + expected +
                     ", got " + value.dump());
  }

  std::vector<std::string> string_list(const json &meta, const char *key, const std::string &path)
  {
    const json &value = require(meta, key, path);
    if (!value.is_array() || value.empty()) bad_field(path, key, "a non-empty list of strings", value);
    std::vector<std::string> items;
    for (const auto &item : value) {
      if (!item.is_string()) bad_field(path, key, "a non-empty list of strings", value);
      items.push_back(item.get<std::string>());
    }
    return items;
  }

  int positive_int(const json &meta, const char *key, const std::string &path)
  {
    const json &value = require(meta, key, path);
    if (!value.is_number_integer() || value.get<long long>() < 1)
      bad_field(path, key, "a positive integer", value);
    return value.get<int>();
  }

  ModelMetadata parse_metadata(const std::string &text, const std::string &path)
  {
    json meta;
    try {
      meta = json::parse(text);
    } catch (const std::exception &e) {
      throw ModelError(path + ": model metadata is not valid JSON (" + first_line(e.what()) +
                       "): re-export the model with `scalelink deploy`");
    }
    if (!meta.is_object()) bad_field(path, Keys::METADATA_FILE, "a JSON object", meta);

    ModelMetadata md;
    // The format version decides what the other fields mean, so it is checked first.
    const json &version = require(meta, Keys::FORMAT_VERSION, path);
    if (!version.is_number_integer()) bad_field(path, Keys::FORMAT_VERSION, "an integer", version);
    md.format_version = version.get<int>();
    if (md.format_version != SUPPORTED_FORMAT_VERSION)
      throw ModelError(path + ": model file format version " + std::to_string(md.format_version) +
                       " is not supported by this pair style (supports " +
                       std::to_string(SUPPORTED_FORMAT_VERSION) +
                       "): re-export the model with `scalelink deploy` from a matching "
                       "ScaleLink version");

    const json &kind = require(meta, Keys::KIND, path);
    if (!kind.is_string()) bad_field(path, Keys::KIND, "a string", kind);
    md.kind = kind.get<std::string>();
    if (md.kind != "potential")
      throw ModelError(path + " holds a '" + md.kind +
                       "' model, not an interatomic potential: pair_style scalelink needs a "
                       "model of kind 'potential'");

    md.species = string_list(meta, Keys::SPECIES_NAMES, path);
    // a repeated symbol would make pair_coeff's species-to-type mapping ambiguous
    for (auto it = md.species.begin(); it != md.species.end(); ++it)
      if (std::find(md.species.begin(), it, *it) != it)
        bad_field(path, Keys::SPECIES_NAMES, "a list of distinct chemical symbols ('" + *it + "' is repeated)",
                  meta.at(Keys::SPECIES_NAMES));

    const json &cutoff = require(meta, Keys::CUTOFF, path);
    if (!cutoff.is_number() || !(cutoff.get<double>() > 0.0))
      bad_field(path, Keys::CUTOFF, "a positive number", cutoff);
    md.cutoff = cutoff.get<double>();

    md.num_layers = positive_int(meta, Keys::NUM_LAYERS, path);

    const json &units = require(meta, Keys::UNITS, path);
    if (!units.is_string()) bad_field(path, Keys::UNITS, "a LAMMPS unit style name", units);
    md.units = units.get<std::string>();

    const json &dtype = require(meta, Keys::DTYPE, path);
    if (!dtype.is_string() || (dtype != "float32" && dtype != "float64"))
      bad_field(path, Keys::DTYPE, "\"float32\" or \"float64\"", dtype);
    md.dtype = dtype.get<std::string>();

    md.committee_size = positive_int(meta, Keys::COMMITTEE_SIZE, path);

    md.outputs = string_list(meta, Keys::OUTPUTS, path);
    std::vector<const char *> needed = {Keys::ENERGY, Keys::ATOMIC_ENERGY, Keys::FORCES, Keys::VIRIAL};
    if (md.committee_size > 1) needed.insert(needed.end(), {Keys::MEMBER_ENERGY, Keys::MEMBER_FORCES});
    for (const char *key : needed)
      if (!md.returns(key))
        throw ModelError(path + ": the model" +
                         (md.committee_size > 1 ? ", a committee of " + std::to_string(md.committee_size) + "," : "") +
                         " does not return '" + key +
                         "' (metadata 'outputs'), which pair_style scalelink needs");

    const json &versions = require(meta, Keys::VERSIONS, path);
    if (!versions.is_object()) bad_field(path, Keys::VERSIONS, "an object of package versions", versions);
    return md;
  }

  // The per-layer methods are optional: files written before they existed still run whole.
  int layer_interface_width(torch::jit::Module &module)
  {
    for (const char *name : {"num_features", "embed", "layer", "readout", "derivatives"})
      if (!module.find_method(name)) return 0;
    return static_cast<int>(module.run_method("num_features").toInt());
  }

  // The networks inside a deployed wrapper that may say what they were built with: the
  // wrapper itself, its `potential` (a single model) and each of its `members` (a committee),
  // named by their attribute paths.
  std::vector<std::pair<std::string, torch::jit::Module>> networks(const torch::jit::Module &module)
  {
    std::vector<std::pair<std::string, torch::jit::Module>> found{{"", module}};
    if (module.hasattr("potential") && module.attr("potential").isModule())
      found.emplace_back("potential", module.attr("potential").toModule());
    if (module.hasattr("members") && module.attr("members").isModule())
      for (const auto &member : module.attr("members").toModule().named_children())
        found.emplace_back("members." + member.name, member.value);
    return found;
  }

  std::string number(double value)
  {
    std::ostringstream text;
    text << std::setprecision(10) << value;
    return text.str();
  }

  // The pair style builds its graphs from the metadata. Metadata edited after export, or
  // written for another network, would give it graphs the network was not made for: a
  // smaller cutoff silently drops neighbours, a larger one or more layers fill the ghost
  // shell far beyond what the network reads. Where a network carries its own `cutoff` and
  // `num_layers` attributes, the metadata must agree with them.
  void check_against_network(const torch::jit::Module &module, const ModelMetadata &md, const std::string &path)
  {
    for (const auto &[name, network] : networks(module)) {
      const std::string which = name.empty() ? "the network" : "the network '" + name + "'";
      const c10::IValue cutoff = network.hasattr("cutoff") ? network.attr("cutoff") : c10::IValue();
      if (cutoff.isDouble() || cutoff.isInt()) {
        const double built = cutoff.isDouble() ? cutoff.toDouble() : static_cast<double>(cutoff.toInt());
        if (std::abs(built - md.cutoff) > 1e-9 * std::max(1.0, std::abs(built)))
          throw ModelError(path + ": metadata 'cutoff' is " + number(md.cutoff) + ", but " + which +
                           " was built with cutoff " + number(built) +
                           ": the metadata was edited or belongs to another network; re-export "
                           "the model with `scalelink deploy`");
      }
      const c10::IValue layers = network.hasattr("num_layers") ? network.attr("num_layers") : c10::IValue();
      if (layers.isInt() && layers.toInt() != md.num_layers)
        throw ModelError(path + ": metadata 'num_layers' is " + std::to_string(md.num_layers) + ", but " +
                         which + " has " + std::to_string(layers.toInt()) +
                         " message-passing layer(s): the metadata was edited or belongs to another "
                         "network; re-export the model with `scalelink deploy`");
    }
  }

}    // namespace

bool ModelMetadata::returns(const std::string &key) const
{
  for (const auto &name : outputs)
    if (name == key) return true;
  return false;
}

Model::Model(const std::string &path, const std::string &device) : impl(std::make_unique<Impl>())
{
  // torch's own message for a missing file is a multi-line stack dump; check first.
  {
    std::ifstream probe(path, std::ios::binary);
    if (!probe) throw ModelError("cannot open model file " + path + ": " + std::strerror(errno));
  }

  try {
    impl->device = torch::Device(device);
  } catch (const c10::Error &e) {
    throw ModelError("'" + device + "' is not a torch device: " + first_line(e.what_without_backtrace()));
  }
  impl->device_name = device;

  torch::jit::ExtraFilesMap extra{{Keys::METADATA_FILE, ""}};
  try {
    impl->module = torch::jit::load(path, impl->device, extra);
  } catch (const c10::Error &e) {
    throw ModelError("cannot read model file " + path +
                     " as TorchScript: " + first_line(e.what_without_backtrace()));
  } catch (const std::exception &e) {
    throw ModelError("cannot read model file " + path + " as TorchScript: " + first_line(e.what()));
  }
  impl->module.eval();
  // Inference only: with no weight asking for gradients, autograd records no weight
  // gradients and frees activations that only those would have needed.
  for (const at::Tensor &parameter : impl->module.parameters()) parameter.requires_grad_(false);

  const std::string &text = extra[Keys::METADATA_FILE];
  if (text.empty())
    throw ModelError(path + " has no " + std::string(Keys::METADATA_FILE) +
                     " inside: it is not a ScaleLink model; export it with `scalelink deploy`");
  impl->metadata = parse_metadata(text, path);
  check_against_network(impl->module, impl->metadata, path);
  impl->dtype = impl->metadata.dtype == "float32" ? torch::kFloat32 : torch::kFloat64;
  try {
    impl->num_features = layer_interface_width(impl->module);
  } catch (const std::exception &e) {
    throw ModelError(path + ": calling num_features() failed: " + first_line(e.what()));
  }
}

Model::~Model() = default;

const ModelMetadata &Model::metadata() const
{
  return impl->metadata;
}

const std::string &Model::device() const
{
  return impl->device_name;
}

int Model::num_features() const
{
  return impl->num_features;
}

ModelResult Model::evaluate(const GraphView &graph, bool atomic_virial)
{
  const torch::Device device = impl->device;
  const auto int64 = torch::TensorOptions().dtype(torch::kInt64);
  const auto float64 = torch::TensorOptions().dtype(torch::kFloat64);
  const std::int64_t n_nodes = graph.n_nodes, n_edges = graph.n_edges;

  // Views of the caller's buffers, copied only when the model lives on another device. The
  // model never writes its inputs; from_blob only needs a non-const pointer.
  auto view = [device](const void *data, at::IntArrayRef shape, const torch::TensorOptions &options) {
    return torch::from_blob(const_cast<void *>(data), shape, options).to(device);
  };

  ModelResult result;
  try {
    // anything the model allocates without naming a device lands on the model's own GPU
    const c10::DeviceGuard guard(device);
    // On CPU the profiling executor's differentiable subgraphs are no faster than plain
    // autograd and keep more activations alive; it has no CPU fuser to make up for that.
    const torch::jit::GraphOptimizerEnabledGuard optimizer(device.is_cuda());
    c10::Dict<std::string, at::Tensor> inputs;
    inputs.insert(Keys::EDGE_INDEX, n_edges ? view(graph.edge_index, {2, n_edges}, int64)
                                            : torch::empty({2, 0}, int64.device(device)));
    inputs.insert(Keys::EDGE_VECTORS, n_edges ? view(graph.edge_vectors, {n_edges, 3}, float64)
                                              : torch::empty({0, 3}, float64.device(device)));
    inputs.insert(Keys::SPECIES, view(graph.species, {n_nodes}, int64));
    inputs.insert(Keys::N_LOCAL, torch::scalar_tensor(graph.n_local, int64.device(device)));

    const c10::IValue returned = impl->module.forward({inputs});
    if (!returned.isGenericDict()) throw ModelError("the model did not return a Dict[str, Tensor]");
    const auto out = returned.toGenericDict();

    result.energy = output(out, Keys::ENERGY, 1).item<double>();
    impl->atomic_energy = output(out, Keys::ATOMIC_ENERGY, n_nodes);
    impl->forces = output(out, Keys::FORCES, 3 * n_nodes);
    const at::Tensor virial = output(out, Keys::VIRIAL, 6);
    std::memcpy(result.virial, virial.data_ptr<double>(), 6 * sizeof(double));
    impl->atomic_virial = atomic_virial ? output(out, Keys::ATOMIC_VIRIAL, 9 * n_nodes) : at::Tensor();
    const std::int64_t members = impl->metadata.committee_size;
    if (members > 1) {
      impl->member_energy = output(out, Keys::MEMBER_ENERGY, members);
      impl->member_forces = output(out, Keys::MEMBER_FORCES, members * n_nodes * 3);
    }
  } catch (...) {
    detail::rethrow_as_model_error();
  }
  point_into(result, atomic_virial);
  result.forces = impl->forces.data_ptr<double>();
  return result;
}

int torch_num_threads()
{
  return at::get_num_threads();
}

void set_torch_num_threads(int nthreads)
{
  at::set_num_threads(nthreads);
}

bool built_with_cuda()
{
#ifdef SCALELINK_TORCH_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_device_count()
{
  // libtorch_cuda (linked in CUDA builds, see cmake/ScaleLinkTorch.cmake) registers the hooks
  // that answer here; without it, a driver or a device the count is 0.
  return torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
}

}    // namespace ScaleLink
