/* ----------------------------------------------------------------------
   ScaleLink: pair_style scalelink, set-up (keywords, model, species, units, device).
   The per-step work is in pair_scalelink_compute.cpp.
------------------------------------------------------------------------- */

#include "pair_scalelink.h"

#include "model/scalelink_model.h"
#include "model/scalelink_units.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"
#include "utils.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <thread>

#ifdef __linux__
#include <sched.h>
#endif

#ifdef __GLIBC__
#include <dlfcn.h>
#include <malloc.h>
#endif

using namespace LAMMPS_NS;

/* ---------------------------------------------------------------------- */

PairScaleLink::PairScaleLink(LAMMPS *lmp) :
    Pair(lmp), cutoff(0.0), num_layers(0), device_request("cpu"), share_gpu(false),
    ghost_request("exchange"), heap_request("auto"), ghost_given(false), exchange(false), check_results(true),
    time_check(false), check_seconds(0.0), check_calls(0), cutghostuser_before(-1.0),
    cutghostuser_set(0.0), n_local_nodes(0), ghost_stride(0), num_features(0),
    deviation_timestep(-1), comm_rows(nullptr), comm_stride(0)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  // The model returns the virial itself; f.r would also miss the ghost forces that are kept
  // outside atom->f when newton_pair is off.
  no_virial_fdotr_compute = 1;
  centroidstressflag = CENTROID_AVAIL;
  // With newton_pair off we sum ghost contributions ourselves: force (3), per-atom virial (6)
  // and centroid virial (9) at most. Node features (forward) and their gradients (reverse)
  // add F per atom once the model is known.
  comm_forward = 0;
  comm_reverse = 0;
  comm_reverse_off = 18;
}

/* ---------------------------------------------------------------------- */

PairScaleLink::~PairScaleLink()
{
  if (copymode) return;
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
    memory->destroy(cutghost);
  }
}

/* ---------------------------------------------------------------------- */

void PairScaleLink::allocate()
{
  allocated = 1;
  const int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  memory->create(cutghost, n, n, "pair:cutghost");
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) setflag[i][j] = 0;
}

/* ---------------------------------------------------------------------- */

void PairScaleLink::settings(int narg, char **arg)
{
  std::string device = "cpu", ghost = "exchange", heap = "auto";
  bool share = false, ghost_keyword = false;
  for (int iarg = 0; iarg < narg; iarg += 2) {
    const std::string keyword = arg[iarg];
    const char *allowed = keyword == "device"      ? "cpu, cuda or auto"
                          : keyword == "share_gpu" ? "yes or no"
                          : keyword == "ghost"     ? "exchange or full"
                          : keyword == "heap"      ? "auto, keep or release"
                                                   : nullptr;
    if (!allowed)
      error->all(FLERR,
                 "Unknown pair_style scalelink keyword '{}': allowed keywords are device "
                 "(cpu, cuda, auto), share_gpu (yes, no), ghost (exchange, full) and heap "
                 "(auto, keep, release)",
                 keyword);
    if (iarg + 1 >= narg)
      error->all(FLERR, "pair_style scalelink keyword {} needs a value: {}", keyword, allowed);
    const std::string value = arg[iarg + 1];
    bool known = false;
    if (keyword == "device") {
      known = value == "cpu" || value == "cuda" || value == "auto";
      device = value;
    } else if (keyword == "share_gpu") {
      known = value == "yes" || value == "no";
      share = value == "yes";
    } else if (keyword == "ghost") {
      known = value == "exchange" || value == "full";
      ghost = value;
      ghost_keyword = true;
    } else {
      known = value == "auto" || value == "keep" || value == "release";
      heap = value;
    }
    if (!known)
      error->all(FLERR, "pair_style scalelink {} '{}' is not known: use {}", keyword, value, allowed);
  }

  // The model sits on the device chosen when it was loaded: another device needs pair_coeff.
  if (model && (device != device_request || share != share_gpu)) model.reset();
  device_request = device;
  share_gpu = share;
  // for timing the check of the model's results only; read by every pair_style command
  const char *skip = std::getenv("SCALELINK_SKIP_FINITE_CHECK");
  check_results = !(skip && *skip && std::strcmp(skip, "0") != 0);
  if (time_check && check_calls > 0 && comm->me == 0)
    utils::logmesg(lmp, "ScaleLink: finite check: {:.9f} s over {} model calls\n", check_seconds, check_calls);
  check_seconds = 0.0;
  check_calls = 0;
  const char *timing = std::getenv("SCALELINK_TIME_FINITE_CHECK");
  time_check = timing && *timing && std::strcmp(timing, "0") != 0;
  ghost_request = ghost;
  ghost_given = ghost_keyword;
  heap_request = heap;
}

/* ----------------------------------------------------------------------
   pair_coeff * * model.pt Cu NULL Ni ...
------------------------------------------------------------------------- */

void PairScaleLink::coeff(int narg, char **arg)
{
  if (narg < 3 || strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR,
               "pair_style scalelink needs `pair_coeff * * <model file> <species or NULL per "
               "atom type>`");
  if (!allocated) allocate();

  load_model(arg[2]);
  map_species(narg, arg);
  ghost_logged.clear();    // the next run says which ghost mode this model runs in

  const auto &meta = model->metadata();
  if (comm->me == 0) {
    std::string mapping, species;
    for (const auto &name : meta.species) species += " " + name;
    for (int t = 1; t <= atom->ntypes; t++)
      mapping += fmt::format(" {}={}", t, type_species[t] < 0 ? "NULL" : meta.species[type_species[t]]);
    utils::logmesg(lmp,
                   "ScaleLink model {}: species{}, cutoff {} ({} units), {} message-passing "
                   "layer(s), {} weights, committee of {}, on {}\n  type mapping:{}\n",
                   model_file, species, meta.cutoff, meta.units, num_layers, meta.dtype,
                   meta.committee_size, model->device(), mapping);
    if (!units.identity())
      utils::logmesg(lmp,
                     "ScaleLink: converting model units {} to LAMMPS units {}: lengths x {:.10g} "
                     "into the model, energies and virials x {:.10g}, forces x {:.10g} out of "
                     "it (cutoff {:.10g} in LAMMPS units)\n",
                     units.model_units, units.lammps_units, units.length_to_model,
                     units.energy_to_lammps, units.force_to_lammps, cutoff);
    if (!check_results)
      utils::logmesg(lmp, "ScaleLink: SCALELINK_SKIP_FINITE_CHECK is set: energies, forces and "
                          "virials are not checked for NaN or Inf (meant for timing the check only)\n");
  }
}

/* ----------------------------------------------------------------------
   Every rank reads the file. A failure on any rank (a file missing on one node, say) must
   stop all ranks with the same message, never leave some waiting in the next collective.
------------------------------------------------------------------------- */

void PairScaleLink::load_model(const std::string &file)
{
  const std::string device = select_device();
  std::unique_ptr<ScaleLink::Model> loaded;
  std::string message;
  try {
    loaded = std::make_unique<ScaleLink::Model>(file, device);
  } catch (const std::exception &e) {
    message = *e.what() ? e.what() : "unknown error while reading " + file;
  }

  int failed_rank = 0;
  message = first_failure(message, failed_rank);
  if (!message.empty()) error->all(FLERR, message);

  // Every rank reads the same metadata, so a units problem stops all ranks alike.
  try {
    units = ScaleLink::unit_conversion(loaded->metadata().units, update->unit_style,
                                       utils::get_conversion_factor(utils::ENERGY, utils::METAL2REAL));
  } catch (const std::invalid_argument &e) {
    error->all(FLERR, e.what());
  }

  model = std::move(loaded);
  model_file = file;
  cutoff = model->metadata().cutoff / units.length_to_model;
  num_layers = model->metadata().num_layers;
  // Comm::init sizes its buffers from these, so they must be known before the first run
  // (see init_style for pair_style hybrid). A committee's member forces go back to their
  // owners whatever newton_pair is.
  num_features = model->num_features();
  const int members = model->metadata().committee_size;
  const int member_values = members > 1 ? 3 * members : 0;
  comm_forward = num_features;
  comm_reverse = std::max(num_features, member_values);
  comm_reverse_off = std::max({18, num_features, member_values});
  local_member_energy.assign(members > 1 ? members : 0, 0.0);
  deviation_timestep = -1;

  set_torch_threads();
  if (device == "cpu") manage_heap();
}

/* ----------------------------------------------------------------------
   The MPI job's ranks on this node, from the launcher's environment (Hydra: MPICH, Intel
   MPI; Open MPI; MVAPICH2; Cray PALS), else all ranks of MPI_COMM_WORLD (a local query, no
   collective: instances on MPI_COMM_SELF are created by some ranks only). The same list is
   in scalelink.bridge.inference.
------------------------------------------------------------------------- */

static int job_ranks_on_node()
{
  for (const char *name : {"MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE",
                           "PALS_LOCAL_SIZE"}) {
    const char *value = std::getenv(name);
    if (value && std::atoi(value) > 0) return std::atoi(value);
  }
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

/* ----------------------------------------------------------------------
   The CPUs this process may run on (its affinity mask, as the launcher bound it).
------------------------------------------------------------------------- */

static int usable_cpus()
{
  const int machine = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
#ifdef __linux__
  cpu_set_t mask;
  if (sched_getaffinity(0, sizeof(mask), &mask) == 0) return std::max(1, std::min(machine, CPU_COUNT(&mask)));
#endif
  return machine;
}

/* ----------------------------------------------------------------------
   Torch threads of this rank. torch's thread count is process-wide, shared with whatever
   else in the process uses torch, so it is only ever lowered, and only where it would
   oversubscribe the cores; OMP_NUM_THREADS, the user's explicit choice, is kept as it is.
   Several ranks in this instance: 1 thread each (the ranks are LAMMPS' parallelism). One
   rank, but N ranks of the MPI job on this node (an instance on MPI_COMM_SELF in every rank
   of an FE² mpirun): at most the rank's share of the node's cores.
------------------------------------------------------------------------- */

void PairScaleLink::set_torch_threads()
{
  const int before = ScaleLink::torch_num_threads();
  std::string why;
  if (std::getenv("OMP_NUM_THREADS")) {
    why = "OMP_NUM_THREADS is set";
  } else if (comm->nprocs > 1) {
    ScaleLink::set_torch_num_threads(1);
    why = fmt::format("one per MPI rank of this LAMMPS instance ({} ranks); set OMP_NUM_THREADS to "
                      "choose", comm->nprocs);
  } else if (const int ranks = job_ranks_on_node(); ranks > 1) {
    const int cpus = usable_cpus(), machine = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    const int share = std::max(1, std::min(cpus, machine / ranks));
    if (before > share) ScaleLink::set_torch_num_threads(share);
    why = fmt::format("at most this rank's share of the node: {} MPI ranks of the job on {} cores, "
                      "{} usable by this rank, torch had {}; set OMP_NUM_THREADS to choose",
                      ranks, machine, cpus, before);
  } else {
    why = "torch's default for a serial run; set OMP_NUM_THREADS to choose";
  }
  if (comm->me == 0)
    utils::logmesg(lmp, "ScaleLink: torch uses {} thread(s) per MPI rank ({})\n",
                   ScaleLink::torch_num_threads(), why);
}

/* ----------------------------------------------------------------------
   True when a Python interpreter runs in this process: LAMMPS was created by the lammps
   module (a FEniCSx, FE² or ASE script), not by the lmp executable.
------------------------------------------------------------------------- */

#ifdef __GLIBC__
static bool inside_python()
{
  using IsInitialized = int (*)();
  auto is_initialized = reinterpret_cast<IsInitialized>(dlsym(RTLD_DEFAULT, "Py_IsInitialized"));
  return is_initialized && is_initialized() != 0;
}
#endif

/* ----------------------------------------------------------------------
   Every step the model allocates and frees the same large tensors (tens of MB at a few
   thousand atoms). glibc returns such blocks to the system on free and the next step
   faults them in again, page by page, which cost as much as the model's arithmetic. Kept
   on the heap instead (pair_style ... heap keep), they are reused: blocks up to 32 MB
   (glibc's largest allowed threshold) come from the heap, and freed memory is not trimmed.
   The process keeps its peak memory, whatever else runs in it: so heap auto keeps only when
   LAMMPS is its own program, not inside a Python interpreter (e.g. a dolfinx process that
   holds its own large, short-lived arrays). A user's own malloc settings (environment) take
   precedence over everything.
------------------------------------------------------------------------- */

void PairScaleLink::manage_heap()
{
  std::string said;
#ifdef __GLIBC__
  const char *tunables = std::getenv("GLIBC_TUNABLES");
  const bool keep = heap_request == "keep" || (heap_request == "auto" && !inside_python());
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("MALLOC_TRIM_THRESHOLD_") ||
      (tunables && std::strstr(tunables, "glibc.malloc."))) {
    said = "the environment sets malloc options: they are used as they are";
  } else if (!keep) {
    said = heap_request == "release"
        ? "heap release: malloc's settings are left as they are"
        : "heap auto inside a Python process: malloc's settings are left as they are (add `heap "
          "keep` to pair_style to keep freed memory on the heap for reuse, process-wide)";
  } else if (mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1 &&
             mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max()) == 1) {
    said = fmt::format("heap {}: freed memory stays on the heap for reuse, process-wide (malloc mmap "
                       "threshold 32 MB, no trimming; `heap release` leaves malloc alone)",
                       heap_request);
  } else {
    said = "glibc refused the malloc settings (mallopt): they are left as they are";
  }
#else
  said = "not glibc: malloc's settings are left as they are";
#endif
  if (comm->me == 0) utils::logmesg(lmp, "ScaleLink: {}\n", said);
}

/* ----------------------------------------------------------------------
   The torch device of this rank, agreed on collectively: every rank reaches the same
   decision or the same error. With cuda, rank k of a node takes GPU k (modulo the GPUs it
   sees when share_gpu allows several ranks per GPU).
------------------------------------------------------------------------- */

std::string PairScaleLink::select_device()
{
  if (device_request == "cpu") return "cpu";

  MPI_Comm node;
  MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, comm->me, MPI_INFO_NULL, &node);
  int node_rank = 0, node_size = 1;
  MPI_Comm_rank(node, &node_rank);
  MPI_Comm_size(node, &node_size);
  MPI_Comm_free(&node);

  const int gpus = ScaleLink::cuda_device_count();
  int fewest_gpus = 0, most_ranks = 0;
  MPI_Allreduce(&gpus, &fewest_gpus, 1, MPI_INT, MPI_MIN, world);
  MPI_Allreduce(&node_size, &most_ranks, 1, MPI_INT, MPI_MAX, world);

  if (fewest_gpus == 0) {
    const char *why = ScaleLink::built_with_cuda() ? "" : " (the plugin was built without CUDA support)";
    if (device_request == "cuda")
      error->all(FLERR,
                 "pair_style scalelink: device cuda requested but torch sees no CUDA device on "
                 "this node{}: use device cpu or auto",
                 why);
    if (comm->me == 0)
      utils::logmesg(lmp, "ScaleLink: device auto: torch sees no CUDA device{}, running on cpu\n", why);
    return "cpu";
  }

  int crowded = node_size > gpus ? 1 : 0, any_crowded = 0;
  MPI_Allreduce(&crowded, &any_crowded, 1, MPI_INT, MPI_MAX, world);
  if (any_crowded && !share_gpu)
    error->all(FLERR,
               "pair_style scalelink device {}: up to {} MPI ranks per node but only {} visible "
               "GPU(s) on some node: run one rank per GPU or add `share_gpu yes` (also when "
               "the launcher already binds each rank to its own GPU)",
               device_request, most_ranks, fewest_gpus);

  if (comm->me == 0)
    utils::logmesg(lmp,
                   "ScaleLink: device {}: running on cuda, {} rank(s) per node, {} GPU(s) per "
                   "node at least; node-local rank k uses cuda:(k mod GPUs)\n",
                   device_request, most_ranks, fewest_gpus);
  return "cuda:" + std::to_string(node_rank % gpus);
}

/* ---------------------------------------------------------------------- */

void PairScaleLink::map_species(int narg, char **arg)
{
  const int ntypes = atom->ntypes;
  const auto &species = model->metadata().species;
  if (narg != 3 + ntypes)
    error->all(FLERR,
               "pair_coeff * * {} needs one species name (or NULL) per atom type: got {} for {} "
               "atom type(s)",
               model_file, narg - 3, ntypes);

  type_species.assign(ntypes + 1, -1);
  for (int t = 1; t <= ntypes; t++) {
    const std::string name = arg[2 + t];
    if (name == "NULL") continue;
    for (int s = 0; s < static_cast<int>(species.size()); s++)
      if (species[s] == name) type_species[t] = s;
    if (type_species[t] < 0) {
      std::string known;
      for (const auto &known_name : species) known += " " + known_name;
      error->all(FLERR, "species '{}' for type {} is not in {}, which has species{}", name, t,
                 model_file, known);
    }
  }

  int count = 0;
  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++) {
      const int both = type_species[i] >= 0 && type_species[j] >= 0;
      setflag[i][j] = setflag[j][i] = both;
      count += both;
    }
  if (count == 0) error->all(FLERR, "pair_coeff * * {} maps no atom type to a species", model_file);
}

/* ---------------------------------------------------------------------- */

void PairScaleLink::init_style()
{
  if (!model) error->all(FLERR, "pair_style scalelink needs a pair_coeff line with a model file");

  // A skin far beyond the cutoff is a unit mix-up (units si default to 0.001 m) that would
  // fill the ghost shell with copies of the box rather than run.
  if (neighbor->skin > 10.0 * cutoff)
    error->all(FLERR,
               "pair_style scalelink: neighbor skin {:.6g} is more than 10 times the model "
               "cutoff {:.6g} (units {}): set one that fits, e.g. `neighbor {:.3g} bin`",
               neighbor->skin, cutoff, update->unit_style, 0.5 * cutoff);

  choose_ghost_mode();
  // ghost full: ghost atoms are graph nodes with neighbours of their own
  ghostneigh = num_layers > 1 && !exchange ? 1 : 0;
  neighbor->add_request(this, NeighConst::REQ_FULL | (ghostneigh ? NeighConst::REQ_GHOST : 0));

  // pair_style hybrid copies its sub-styles' communication sizes and ghostneigh when it is
  // created, before pair_coeff has loaded the model: pass ours up before Comm::init sizes
  // its buffers and Neighbor::init its ghost cutoffs from them.
  if (force->pair != this) {
    Pair *top = force->pair;
    top->comm_forward = std::max(top->comm_forward, comm_forward);
    top->comm_reverse = std::max(top->comm_reverse, comm_reverse);
    top->comm_reverse_off = std::max(top->comm_reverse_off, comm_reverse_off);
    if (ghostneigh) top->ghostneigh = 1;
  }
  if (!ghostneigh) {
    restore_ghost_cutoff();
    return;
  }

  // Local energies depend on atoms num_layers * cutoff away, whose neighbour lists must be
  // complete: the ghost shell has to cover that distance (plus the skin, as lists persist).
  const double needed = num_layers * cutoff + neighbor->skin;
  if (comm->mode != Comm::SINGLE)
    error->all(FLERR,
               "pair_style scalelink ghost full with a {}-layer model needs `comm_modify mode "
               "single`",
               num_layers);
  if (comm->cutghostuser < needed) {
    if (cutghostuser_before < 0.0) cutghostuser_before = comm->cutghostuser;
    comm->cutghostuser = cutghostuser_set = needed;
    if (comm->me == 0)
      utils::logmesg(lmp, "ScaleLink: ghost cutoff set to {:.6g} ({} layers x cutoff {} + skin {})\n",
                     needed, num_layers, cutoff, neighbor->skin);
  }
}

/* ---------------------------------------------------------------------- */

double PairScaleLink::init_one(int i, int j)
{
  if (setflag[i][j] == 0) error->all(FLERR, "All pair coeffs are not set");
  if (ghostneigh) cutghost[i][j] = cutghost[j][i] = cutoff;
  return cutoff;
}

