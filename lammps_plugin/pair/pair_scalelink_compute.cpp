/* ----------------------------------------------------------------------
   ScaleLink: pair_style scalelink, the per-step work: graph, model call and tallies. The
   communications between ranks are in pair_scalelink_exchange.cpp.
------------------------------------------------------------------------- */

#include "pair_scalelink.h"

#include "model/scalelink_keys.h"
#include "model/scalelink_model.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "neigh_list.h"
#include "update.h"

#include <algorithm>

using namespace LAMMPS_NS;

/* ----------------------------------------------------------------------
   Graph of this rank: local atoms are nodes 0..n_local-1 (in neighbour-list order), then
   every atom up to `hops` hops away, found breadth first. Only atoms within hops - 1 hops
   are centres: the layer-l features of an atom l hops out need only its own edges, so the
   outermost nodes enter as neighbours alone. One hop (ghost exchange, or a one-layer
   model) gives the usual "local centres and their neighbours"; more (ghost full) need the
   ghost neighbour list.
------------------------------------------------------------------------- */

void PairScaleLink::build_graph(int hops)
{
  const int nall = atom->nlocal + atom->nghost;
  double **x = atom->x;
  const int *type = atom->type;
  const int *numneigh = list->numneigh;
  int **firstneigh = list->firstneigh;
  const double cutoff_sq = cutoff * cutoff;
  const double to_model = units.length_to_model;

  node_of_atom.assign(nall, -1);
  node_atom.clear();
  node_species.clear();
  edge_centre.clear();
  edge_neighbour.clear();
  edge_vectors.clear();

  auto add_node = [&](int i, int species) {
    node_of_atom[i] = static_cast<int>(node_atom.size());
    node_atom.push_back(i);
    node_species.push_back(species);
  };

  for (int ii = 0; ii < list->inum; ii++) {
    const int i = list->ilist[ii];
    if (type_species[type[i]] >= 0) add_node(i, type_species[type[i]]);
  }
  n_local_nodes = static_cast<int>(node_atom.size());

  std::size_t begin = 0;
  for (int hop = 0; hop < hops; hop++) {
    const std::size_t end = node_atom.size();
    for (std::size_t k = begin; k < end; k++) {
      const int i = node_atom[k];
      const double xi = x[i][0], yi = x[i][1], zi = x[i][2];
      const int *neighbours = firstneigh[i];
      const int count = numneigh[i];
      for (int jj = 0; jj < count; jj++) {
        const int j = neighbours[jj] & NEIGHMASK;
        // most of the list lies in the skin: test the distance first
        const double dx = x[j][0] - xi, dy = x[j][1] - yi, dz = x[j][2] - zi;
        if (dx * dx + dy * dy + dz * dz >= cutoff_sq) continue;
        const int species = type_species[type[j]];
        if (species < 0) continue;
        if (node_of_atom[j] < 0) add_node(j, species);
        edge_centre.push_back(static_cast<std::int64_t>(k));
        edge_neighbour.push_back(node_of_atom[j]);
        edge_vectors.push_back(dx * to_model);
        edge_vectors.push_back(dy * to_model);
        edge_vectors.push_back(dz * to_model);
      }
    }
    begin = end;
  }

  edge_index.resize(2 * edge_centre.size());
  std::copy(edge_centre.begin(), edge_centre.end(), edge_index.begin());
  std::copy(edge_neighbour.begin(), edge_neighbour.end(), edge_index.begin() + edge_centre.size());
}

/* ---------------------------------------------------------------------- */

void PairScaleLink::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  const bool atomic_virial = vflag_atom || cvflag_atom;
  if (atomic_virial && !model->metadata().returns(ScaleLink::Keys::ATOMIC_VIRIAL))
    error->all(FLERR,
               "a compute asks pair_style scalelink for per-atom virials, but {} does not return "
               "'{}' (metadata 'outputs'): re-export the model with `scalelink deploy`",
               model_file, ScaleLink::Keys::ATOMIC_VIRIAL);

  build_graph(exchange ? 1 : num_layers);

  // With newton_pair on, LAMMPS sums ghost forces (and, in the stress computes, ghost
  // per-atom virials) onto their owners itself; with it off we do, from ghost_buffer.
  const bool newton = force->newton_pair != 0;
  ghost_stride = newton ? 0 : 3 + (vflag_atom ? 6 : 0) + (cvflag_atom ? 9 : 0);
  if (!newton) ghost_buffer.assign(static_cast<std::size_t>(ghost_stride) * (atom->nlocal + atom->nghost), 0.0);

  // A rank whose subdomain holds no atoms of mapped types has nothing to evaluate, but must
  // still take part in the communications: those between layers (evaluate_layers sees to
  // that) and the reverse communications below.
  ScaleLink::ModelResult result;
  std::string failure;
  if (exchange || !node_atom.empty()) failure = evaluate(atomic_virial, result);
  const bool evaluated = failure.empty() && !node_atom.empty();
  check_result(failure, evaluated ? &result : nullptr, atomic_virial);
  if (evaluated) tally(result);

  if (!newton) fold_ghosts();
  if (committee_size() > 1) committee_deviation(node_atom.empty() ? nullptr : &result);
}

/* ----------------------------------------------------------------------
   One model call on this rank's graph into `result`; returns what went wrong, empty when
   nothing did. Never stops on its own: the ranks agree on failures in check_result.
------------------------------------------------------------------------- */

std::string PairScaleLink::evaluate(bool atomic_virial, ScaleLink::ModelResult &result)
{
  ScaleLink::GraphView graph;
  graph.n_nodes = static_cast<std::int64_t>(node_atom.size());
  graph.n_local = n_local_nodes;
  graph.n_edges = static_cast<std::int64_t>(edge_centre.size());
  graph.edge_index = edge_index.data();
  graph.edge_vectors = edge_vectors.data();
  graph.species = node_species.data();

  ScaleLink::FeatureExchange features;
  if (exchange) {
    const std::size_t needed = static_cast<std::size_t>(num_features) * atom->nmax;
    if (feature_rows.size() < needed) feature_rows.resize(needed);
    features.forward = [this](const double *local, double *ghost) { send_features(local, ghost); };
    features.reverse = [this](const double *ghost, double *local) { return_feature_gradients(ghost, local); };
  }

  try {
    result = exchange ? model->evaluate_layers(graph, features, atomic_virial)
                      : model->evaluate(graph, atomic_virial);
  } catch (const std::exception &e) {
    return *e.what() ? e.what() : "an exception without a message";
  }
  return {};
}

/* ----------------------------------------------------------------------
   Adds the model's results, converted to LAMMPS units, to f, the energy and virial tallies
   and the per-atom arrays; what belongs to ghost atoms goes to ghost_buffer when newton_pair
   is off. Per-atom virials: vatom gets the symmetric part (xx yy zz xy xz yz), cvatom all
   nine components in LAMMPS' centroid order xx yy zz xy xz yz yx zx zy, the model's own.
------------------------------------------------------------------------- */

void PairScaleLink::tally(const ScaleLink::ModelResult &result)
{
  const int nlocal = atom->nlocal;
  const int n_nodes = static_cast<int>(node_atom.size());
  const double to_energy = units.energy_to_lammps, to_force = units.force_to_lammps;
  double **f = atom->f;

  for (int k = 0; k < n_nodes; k++) {
    const int i = node_atom[k];
    const double *fk = result.forces + 3 * k;
    double *target = (ghost_stride == 0 || i < nlocal) ? f[i] : &ghost_buffer[ghost_stride * i];
    for (int c = 0; c < 3; c++) target[c] += to_force * fk[c];
  }
  if (eflag_global) eng_vdwl += to_energy * result.energy;
  if (eflag_atom)
    for (int k = 0; k < n_local_nodes; k++) eatom[node_atom[k]] += to_energy * result.atomic_energy[k];
  if (vflag_global)
    for (int c = 0; c < 6; c++) virial[c] += to_energy * result.virial[c];

  if (!(vflag_atom || cvflag_atom)) return;
  for (int k = 0; k < n_nodes; k++) {
    const int i = node_atom[k];
    const bool owned_here = ghost_stride == 0 || i < nlocal;
    double w[9];
    for (int c = 0; c < 9; c++) w[c] = to_energy * result.atomic_virial[9 * k + c];
    double *slot = owned_here ? nullptr : &ghost_buffer[ghost_stride * i + 3];
    if (vflag_atom) {
      double *target = owned_here ? vatom[i] : slot;
      for (int c = 0; c < 3; c++) target[c] += w[c];
      for (int c = 3; c < 6; c++) target[c] += 0.5 * (w[c] + w[c + 3]);
      if (slot) slot += 6;
    }
    if (cvflag_atom) {
      double *target = owned_here ? cvatom[i] : slot;
      for (int c = 0; c < 9; c++) target[c] += w[c];
    }
  }
}

/* ----------------------------------------------------------------------
   newton_pair off: sum ghost_buffer onto the owning atoms, then into f / vatom / cvatom.
------------------------------------------------------------------------- */

void PairScaleLink::fold_ghosts()
{
  comm_rows = ghost_buffer.data();
  comm_stride = ghost_stride;
  comm->reverse_comm(this);
  const int nlocal = atom->nlocal;
  double **f = atom->f;
  for (int i = 0; i < nlocal; i++) {
    const double *from = &ghost_buffer[ghost_stride * i];
    for (int c = 0; c < 3; c++) f[i][c] += from[c];
    from += 3;
    if (vflag_atom) {
      for (int c = 0; c < 6; c++) vatom[i][c] += from[c];
      from += 6;
    }
    if (cvflag_atom)
      for (int c = 0; c < 9; c++) cvatom[i][c] += from[c];
  }
}
