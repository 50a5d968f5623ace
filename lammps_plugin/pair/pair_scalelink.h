/* -*- c++ -*- ----------------------------------------------------------
   ScaleLink: pair_style scalelink, graph-neural-network potentials exported to TorchScript.

     pair_style scalelink [device cpu|cuda|auto] [share_gpu no|yes] [ghost exchange|full]
                          [heap auto|keep|release]
     pair_coeff * * model.pt Cu Ni      (one species name or NULL per atom type)

   device: where the model runs (default cpu). With cuda every MPI rank takes the GPU of its
   node-local rank; more ranks on a node than visible GPUs is an error unless share_gpu yes.
   auto picks cuda when every rank sees a GPU, else cpu.

   ghost: how a model with several message-passing layers sees atoms of other ranks.
   exchange (default): ghost atoms out to one cutoff (+ skin), as for any short-ranged pair
   style; the model runs one layer at a time on the local atoms, and after every layer but
   the last the ghost atoms receive their owners' node features (forward communication);
   the gradients with respect to them go back the same way (reverse communication).
   full: ghost atoms out to num_layers x cutoff (+ skin), every layer but the last also
   evaluated on ghost atoms, one model call and no communication between layers. With one
   layer both are the same.

   Each rank builds a graph from its full neighbour list (local atoms first, then the ghost
   atoms the local energies depend on) and writes forces (and per-atom virials when a
   compute asks for them) on local and ghost atoms; ghost contributions travel back to
   their owners by reverse communication.

   On CPU the model runs as plain inference: weights frozen, TorchScript's graph optimiser
   off (it has no CPU fuser, and its differentiable subgraphs keep more activations alive).

   heap: what happens to the memory the model frees every step. keep: it stays on the heap
   for the next step (glibc mallopt, process-wide, for the rest of the process): the model
   allocates and frees the same large tensors every step, and faulting them in afresh cost
   as much as its arithmetic. release: malloc's settings are left alone. auto (default):
   keep when LAMMPS is its own program (the lmp executable), release when it runs inside a
   Python interpreter (the lammps module in a FEniCSx, FE² or ASE script), whose memory
   belongs to the host program. Malloc options in the environment always win.

   Torch threads per MPI rank (CPU), unless OMP_NUM_THREADS is set: 1 when this LAMMPS
   instance has several ranks; when it has one rank but the MPI job has N ranks on the
   node (an instance on MPI_COMM_SELF in each rank of an FE² mpirun), at most cores / N,
   never raised above what the process had; torch's default for a serial run.

   Units: the model declares its own (metal); runs in units real or si are converted
   automatically, other unit styles are refused.

   Committees (a model file with committee_size M > 1) run in ghost full mode: forces,
   energies and virials are the members' mean, and on every step each member's forces are
   summed onto the owning atoms as well (a reverse communication of 3 M values per atom),
   giving every local atom the deviation of the member forces that compute
   scalelink/deviation reports.

   After every model call the ranks agree, in one MPI_Allreduce, that it succeeded on every
   rank and that the energy, forces and virials (per-atom ones when computed) are finite;
   otherwise every rank stops with the same error, naming the step and either the failing
   rank's message or the first IDs of the atoms whose forces are not finite. A NaN would
   otherwise run on silently (NaN positions never trigger a reneighbouring, so LAMMPS' own
   checks never see them) or leave minimize looping forever. The check is one pass over
   the forces; SCALELINK_SKIP_FINITE_CHECK=1 in the environment when pair_style is issued
   switches it off (a model error then stops the failing rank alone, with error->one), for
   timing it only.

   Restart files do not hold the model: after read_restart, issue pair_style and pair_coeff
   again.
------------------------------------------------------------------------- */

#ifndef LMP_PAIR_SCALELINK_H
#define LMP_PAIR_SCALELINK_H

#include "pair.h"

#include "model/scalelink_model.h"
#include "model/scalelink_units.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

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

  int pack_forward_comm(int, int *, double *, int, int *) override;
  void unpack_forward_comm(int, int, double *) override;
  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;
  double memory_usage() override;

  // For compute scalelink/deviation, in LAMMPS units; valid on the step deviation_step().
  int committee_size() const;               // M, 1 for a single model, 0 before pair_coeff
  const std::string &model_path() const { return model_file; }
  bigint deviation_step() const { return deviation_timestep; }    // -1: never computed
  // [nlocal] sqrt(mean_m |F_m,i - mean_m F_m,i|^2) of each local atom (force units)
  const double *force_deviation() const { return deviation.data(); }
  // [M] each member's energy of this rank's local atoms (energy units)
  const std::vector<double> &member_energy() const { return local_member_energy; }
  // Species name of each atom type, "NULL" for unmapped types (index 1..ntypes).
  std::vector<std::string> type_species_names() const;
  // Factors between the model's units and the run's.
  const ScaleLink::UnitConversion &unit_conversion() const { return units; }

 private:
  std::unique_ptr<ScaleLink::Model> model;
  std::string model_file;
  double cutoff;     // model cutoff, LAMMPS length units
  int num_layers;    // message-passing layers: local energies see num_layers * cutoff
  ScaleLink::UnitConversion units;

  std::string device_request;    // "cpu" | "cuda" | "auto", from pair_style
  bool share_gpu;
  std::string ghost_request;    // "exchange" | "full", from pair_style
  std::string heap_request;     // "auto" | "keep" | "release", from pair_style
  bool ghost_given;             // ... or the default
  bool exchange;                // features exchanged between layers in this run
  std::string ghost_logged;     // the mode last written to the log
  bool check_results;           // false: SCALELINK_SKIP_FINITE_CHECK is set (timing only)
  // SCALELINK_TIME_FINITE_CHECK set: the check's wall time and calls since the last
  // pair_style command, which writes them to the log (for benchmarks/bench_pair.py)
  bool time_check;
  double check_seconds;
  long check_calls;
  // comm->cutghostuser before "ghost full" raised it (negative: not raised), and the value set
  double cutghostuser_before, cutghostuser_set;

  // type_species[t] = model species index of LAMMPS type t, -1 for NULL (t = 1..ntypes)
  std::vector<int> type_species;

  // Graph buffers, kept between steps so that steady state does not allocate.
  std::vector<int> node_of_atom;    // [nlocal + nghost] node index or -1
  std::vector<int> node_atom;       // [n_nodes] LAMMPS atom index of each node
  std::vector<std::int64_t> node_species;
  std::vector<std::int64_t> edge_centre, edge_neighbour, edge_index;
  std::vector<double> edge_vectors;    // model length units
  int n_local_nodes;

  // With newton_pair off, what the model gives ghost atoms (force, then the per-atom virial
  // and centroid virial when requested), ghost_stride doubles per atom, summed onto the
  // owners by our own reverse communication.
  std::vector<double> ghost_buffer;
  int ghost_stride;

  // With ghost exchange, node features of each layer and then their gradients, F doubles
  // per LAMMPS atom ([atom->nmax * F], grown with nmax): local rows are sent to the ghost
  // copies by forward communication; ghost rows are summed onto the owners by reverse.
  std::vector<double> feature_rows;
  int num_features;

  // Committees: each member's forces, 3 M doubles per LAMMPS atom ([(nlocal + nghost) *
  // 3 M], member m's force at 3 m), ghost rows summed onto the owners by reverse
  // communication; then the per-atom force deviation ([nmax]) and this rank's member
  // energies ([M]), from the step deviation_timestep.
  std::vector<double> member_rows;
  std::vector<double> deviation;
  std::vector<double> local_member_energy;
  bigint deviation_timestep;

  // What the pack/unpack functions move: comm_stride doubles per atom from comm_rows
  // (ghost_buffer, feature_rows or member_rows).
  double *comm_rows;
  int comm_stride;

  void allocate();
  void load_model(const std::string &file);
  std::string select_device();
  void set_torch_threads();
  void manage_heap();
  void map_species(int narg, char **arg);
  void choose_ghost_mode();
  void restore_ghost_cutoff();
  void build_graph(int hops);
  std::string evaluate(bool atomic_virial, ScaleLink::ModelResult &result);
  std::string first_failure(const std::string &mine, int &rank);
  bool finite(const ScaleLink::ModelResult &result, bool atomic_virial) const;
  void check_result(const std::string &failure, const ScaleLink::ModelResult *result, bool atomic_virial);
  void report_not_finite(const ScaleLink::ModelResult *result, bool atomic_virial);
  void send_features(const double *local_rows, double *ghost_rows);
  void return_feature_gradients(const double *ghost_rows, double *local_rows);
  void tally(const ScaleLink::ModelResult &result);
  void fold_ghosts();
  void committee_deviation(const ScaleLink::ModelResult *result);
};

}    // namespace LAMMPS_NS

#endif
