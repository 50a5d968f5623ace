"""Names of the tensors and metadata fields that cross the TorchScript boundary.

Every key a deployed model reads or writes is defined here once. The C++ plugin mirrors
these names in ``lammps_plugin/model/scalelink_keys.h``; ``tests/test_keys.py`` checks that the
two agree.

Graph convention: an edge ``e`` points from a centre atom ``i = edge_index[0, e]`` to a
neighbour ``j = edge_index[1, e]`` and carries ``edge_vectors[e] = r_j - r_i`` (periodic
images already applied). Messages are aggregated at ``edge_index[0]``. From the ASE side both
directions of every pair are present; in LAMMPS, edges of atoms near the outer edge of the
ghost shell may appear in one direction only, so a model must not rely on reverse edges.
"""

from __future__ import annotations

from typing import Final

# ---- model inputs ---------------------------------------------------------------------
EDGE_INDEX: Final = "edge_index"  # [2, n_edges] int64: (centre i, neighbour j)
EDGE_VECTORS: Final = "edge_vectors"  # [n_edges, 3] float64, r_j - r_i in model length units
SPECIES: Final = "species"  # [n_nodes] int64, index into the model's species list
N_LOCAL: Final = "n_local"  # [] int64: nodes 0..n_local-1 count towards the energy

# ---- model outputs --------------------------------------------------------------------
ENERGY: Final = "energy"  # [] float64: sum of the local atomic energies
ATOMIC_ENERGY: Final = "atomic_energy"  # [n_nodes] float64
FORCES: Final = "forces"  # [n_nodes, 3] float64, -dE/dr for every node (ghosts included)
VIRIAL: Final = "virial"  # [6] float64: xx yy zz xy xz yz of W = -sum_e r_e (x) dE/dr_e
ATOMIC_VIRIAL: Final = "atomic_virial"  # [n_nodes, 9] float64: per-node W, xx yy zz xy xz yz yx zx zy
# committees (committee_size M > 1) return the members' mean under the keys above, and also
MEMBER_ENERGY: Final = "member_energy"  # [M] float64: each member's energy of the local nodes
MEMBER_FORCES: Final = "member_forces"  # [M, n_nodes, 3] float64: each member's -dE/dr

MODEL_INPUTS: Final = (EDGE_INDEX, EDGE_VECTORS, SPECIES, N_LOCAL)
MODEL_OUTPUTS: Final = (ENERGY, ATOMIC_ENERGY, FORCES, VIRIAL, ATOMIC_VIRIAL)
COMMITTEE_OUTPUTS: Final = (MEMBER_ENERGY, MEMBER_FORCES)

# ---- constitutive models (kind "constitutive"): forward(strain) -> (stress, tangent) -------
STRAIN: Final = "strain"  # [n, m] float64, Mandel strain of n quadrature points (m = 3 or 6)
STRESS: Final = "stress"  # [n, m] float64, Mandel stress in the model's stress unit
TANGENT: Final = "tangent"  # [n, m, m] float64, d stress / d strain (Mandel)
CONSTITUTIVE_OUTPUTS: Final = (STRESS, TANGENT)

# ---- free energies (kind "free_energy"): forward(composition, temperature) -> (f, df/dc) ---
COMPOSITION: Final = "composition"  # [n] float64, mole fraction c of the second species, in (0, 1)
TEMPERATURE: Final = "temperature"  # [n] float64, K
FREE_ENERGY_DENSITY: Final = "free_energy_density"  # [n] float64, f(c, T) in eV/atom
CHEMICAL_POTENTIAL: Final = "chemical_potential"  # [n] float64, df/dc = mu_B - mu_A in eV/atom
FREE_ENERGY_OUTPUTS: Final = (FREE_ENERGY_DENSITY, CHEMICAL_POTENTIAL)

# ---- image generators (kind "generator"): forward(latent) -> phase probability ------------
LATENT: Final = "latent"  # [n, latent_size] standard-normal latent vectors, the weights' dtype
PHASE_PROBABILITY: Final = "phase_probability"  # [n, N, N] probability of phase 1 per pixel
GENERATOR_OUTPUTS: Final = (PHASE_PROBABILITY,)

# ---- metadata stored in the model file (_extra_files) ---------------------------------
METADATA_FILE: Final = "scalelink_metadata.json"  # the one extra file, a JSON object
FORMAT_VERSION: Final = "format_version"  # int, see bridge.model_file.FORMAT_VERSION
KIND: Final = "kind"  # "potential" | "constitutive" | "free_energy" | "generator"
SPECIES_NAMES: Final = "species"  # list[str], chemical symbols in model order
CUTOFF: Final = "cutoff"  # float, radial cutoff in model length units
NUM_LAYERS: Final = "num_layers"  # int, message-passing layers (receptive field / cutoff)
UNITS: Final = "units"  # LAMMPS unit style of the model: "metal"
DTYPE: Final = "dtype"  # "float32" | "float64": the precision of the weights
COMMITTEE_SIZE: Final = "committee_size"  # int, 1 for a single model
OUTPUTS: Final = "outputs"  # list[str], keys the model returns
VERSIONS: Final = "versions"  # dict[str, str], package versions at export
CONSTITUTIVE: Final = "constitutive"  # dict, only in constitutive models: strain size, scaling...
FREE_ENERGY: Final = "free_energy"  # dict, only in free energies: closed form, ranges, units
GENERATOR: Final = "generator"  # dict, only in generators: latent and image size, threshold...

REQUIRED_METADATA: Final = (
    FORMAT_VERSION,
    KIND,
    SPECIES_NAMES,
    CUTOFF,
    NUM_LAYERS,
    UNITS,
    DTYPE,
    COMMITTEE_SIZE,
    OUTPUTS,
    VERSIONS,
)
OPTIONAL_METADATA: Final = (CONSTITUTIVE, FREE_ENERGY, GENERATOR)

__all__ = [
    "ATOMIC_ENERGY",
    "ATOMIC_VIRIAL",
    "CHEMICAL_POTENTIAL",
    "COMMITTEE_OUTPUTS",
    "COMMITTEE_SIZE",
    "COMPOSITION",
    "CONSTITUTIVE",
    "CONSTITUTIVE_OUTPUTS",
    "CUTOFF",
    "DTYPE",
    "EDGE_INDEX",
    "EDGE_VECTORS",
    "ENERGY",
    "FORCES",
    "FORMAT_VERSION",
    "FREE_ENERGY",
    "FREE_ENERGY_DENSITY",
    "FREE_ENERGY_OUTPUTS",
    "GENERATOR",
    "GENERATOR_OUTPUTS",
    "KIND",
    "LATENT",
    "MEMBER_ENERGY",
    "MEMBER_FORCES",
    "METADATA_FILE",
    "MODEL_INPUTS",
    "MODEL_OUTPUTS",
    "NUM_LAYERS",
    "N_LOCAL",
    "OPTIONAL_METADATA",
    "OUTPUTS",
    "PHASE_PROBABILITY",
    "REQUIRED_METADATA",
    "SPECIES",
    "SPECIES_NAMES",
    "STRAIN",
    "STRESS",
    "TANGENT",
    "TEMPERATURE",
    "UNITS",
    "VERSIONS",
    "VIRIAL",
]
