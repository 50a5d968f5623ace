/* -*- c++ -*- ----------------------------------------------------------
   ScaleLink: names of the tensors and metadata fields that cross the TorchScript boundary.

   Mirror of src/scalelink/bridge/keys.py, which is the contract; tests/test_keys.py parses this header
   (one constant per line, in the form written below) and checks that both agree.

   Graph convention: edge e points from centre atom i = edge_index[0, e] to neighbour
   j = edge_index[1, e] and carries edge_vectors[e] = r_j - r_i (periodic images applied).
------------------------------------------------------------------------- */

#ifndef SCALELINK_KEYS_H
#define SCALELINK_KEYS_H

namespace ScaleLink::Keys {

// ---- model inputs ----
constexpr const char *EDGE_INDEX = "edge_index";        // [2, n_edges] int64: (centre i, neighbour j)
constexpr const char *EDGE_VECTORS = "edge_vectors";    // [n_edges, 3] float64, r_j - r_i
constexpr const char *SPECIES = "species";              // [n_nodes] int64, model species index
constexpr const char *N_LOCAL = "n_local";              // [] int64: nodes 0..n_local-1 count

// ---- model outputs ----
constexpr const char *ENERGY = "energy";                // [] float64: sum of local atomic energies
constexpr const char *ATOMIC_ENERGY = "atomic_energy";  // [n_nodes] float64
constexpr const char *FORCES = "forces";                // [n_nodes, 3] float64, -dE/dr
constexpr const char *VIRIAL = "virial";                // [6] float64: xx yy zz xy xz yz
constexpr const char *ATOMIC_VIRIAL = "atomic_virial";  // [n_nodes, 9] float64: xx yy zz xy xz yz yx zx zy
// committees (committee_size M > 1): the keys above hold the members' mean, and also
constexpr const char *MEMBER_ENERGY = "member_energy";  // [M] float64: each member's local energy
constexpr const char *MEMBER_FORCES = "member_forces";  // [M, n_nodes, 3] float64: each member's -dE/dr

// ---- constitutive models (kind "constitutive"; not run by the pair style) ----
constexpr const char *STRAIN = "strain";    // [n, m] float64, Mandel strain
constexpr const char *STRESS = "stress";    // [n, m] float64, Mandel stress
constexpr const char *TANGENT = "tangent";  // [n, m, m] float64, d stress / d strain

// ---- free energies (kind "free_energy"; not run by the pair style) ----
constexpr const char *COMPOSITION = "composition";                  // [n] float64, mole fraction of species 2
constexpr const char *TEMPERATURE = "temperature";                  // [n] float64, K
constexpr const char *FREE_ENERGY_DENSITY = "free_energy_density";  // [n] float64, f(c, T) in eV/atom
constexpr const char *CHEMICAL_POTENTIAL = "chemical_potential";    // [n] float64, df/dc in eV/atom

// ---- image generators (kind "generator"; not run by the pair style) ----
constexpr const char *LATENT = "latent";                        // [n, latent_size] latent vectors
constexpr const char *PHASE_PROBABILITY = "phase_probability";  // [n, N, N] probability of phase 1

// ---- metadata stored in the model file ----
constexpr const char *METADATA_FILE = "scalelink_metadata.json";    // the one extra file
constexpr const char *FORMAT_VERSION = "format_version";            // int
constexpr const char *KIND = "kind";                                // "potential" | "constitutive" | ...
constexpr const char *SPECIES_NAMES = "species";                    // list of chemical symbols
constexpr const char *CUTOFF = "cutoff";                            // float, model length units
constexpr const char *NUM_LAYERS = "num_layers";                    // int, message-passing layers
constexpr const char *UNITS = "units";                              // LAMMPS unit style
constexpr const char *DTYPE = "dtype";                              // "float32" | "float64"
constexpr const char *COMMITTEE_SIZE = "committee_size";            // int, 1 for a single model
constexpr const char *OUTPUTS = "outputs";                          // list of output keys
constexpr const char *VERSIONS = "versions";                        // package versions at export
constexpr const char *CONSTITUTIVE = "constitutive";                // constitutive models only
constexpr const char *FREE_ENERGY = "free_energy";                  // free energies only
constexpr const char *GENERATOR = "generator";                      // image generators only

}    // namespace ScaleLink::Keys

#endif
