"""Helpers for tests that run LAMMPS as users do: a data file and an `mpirun` subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write

DRIVER = Path(__file__).with_name("lammps_driver.py")
BIN = Path(sys.executable).parent


def write_data(atoms: Atoms, path: Path, species: list[str], *, units: str = "metal") -> Atoms:
    """Write a LAMMPS data file in ``units``; return the structure as LAMMPS sees it (rotated frame, Å)."""
    write(path, atoms, format="lammps-data", specorder=species, masses=True, units=units)
    back = read(path, format="lammps-data", atom_style="atomic", units=units)
    # lammps-data stores types, not symbols: map them back in specorder
    back.symbols = [species[t - 1] for t in back.arrays["type"]]
    return back


def run_driver(
    data: Path, model: str, species: list[str], out: Path, *, ranks: int = 1, newton: str = "on",
    extra: list[str] | None = None, timeout: float = 240.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``lammps_driver.py`` under ``mpirun -n ranks``; never hangs past ``timeout``."""
    command = [
        str(BIN / "mpirun"), "-n", str(ranks), sys.executable, str(DRIVER),
        "--data", str(data), "--model", model, "--species", *species, "--newton", newton, "--out", str(out),
        *(extra or []),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def ase_reference(atoms: Atoms, model: str) -> dict[str, np.ndarray | float]:
    """Energy, forces, per-atom energies, virial (xx yy zz xy xz yz) and per-atom virials.

    ``atomic_virial`` [N, 6] (xx yy zz xy xz yz, symmetrised) comes from the calculator's
    per-atom ``stresses``; all in eV and Å.
    """
    from scalelink.bridge.ase import ScaleLinkCalculator

    atoms = atoms.copy()
    atoms.calc = ScaleLinkCalculator(model)
    volume = atoms.get_volume()
    stress = atoms.get_stress(voigt=False)
    w = -stress * volume
    return {
        "energy": atoms.get_potential_energy(),
        "forces": atoms.get_forces(),
        "pe_atom": atoms.get_potential_energies(),
        "virial": np.array([w[0, 0], w[1, 1], w[2, 2], w[0, 1], w[0, 2], w[1, 2]]),
        # Voigt xx yy zz yz xz xy of -W_i / V
        "atomic_virial": -atoms.get_stresses()[:, [0, 1, 2, 5, 4, 3]] * volume,
    }


def model_atomic_virial(atoms: Atoms, model: str) -> np.ndarray:
    """Per-atom virials [N, 9] (xx yy zz xy xz yz yx zx zy, eV) straight from the model file."""
    import torch

    from scalelink.bridge import keys
    from scalelink.bridge.ase import neighbor_graph, species_indices
    from scalelink.bridge.model_file import load_model

    module, metadata = load_model(model)
    edge_index, edge_vectors = neighbor_graph(atoms, metadata.cutoff)
    inputs = {
        keys.EDGE_INDEX: torch.from_numpy(edge_index),
        keys.EDGE_VECTORS: torch.from_numpy(edge_vectors),
        keys.SPECIES: torch.from_numpy(species_indices(list(atoms.get_chemical_symbols()), metadata.species)),
        keys.N_LOCAL: torch.tensor(len(atoms)),
    }
    return module(inputs)[keys.ATOMIC_VIRIAL].detach().numpy()


def export_random_potential(
    path: Path, species: list[str], *, num_layers: int, cutoff: float = 4.0, features: int = 16,
    dtype: str = "float64", seed: int = 0,
) -> str:
    """Deploy an untrained :class:`GNNPotential` with seeded random weights to ``path``.

    Random weights with the energy scaled up to forces of order 0.1-1 eV/Å on a distorted
    fcc crystal: enough for comparisons that do not need physical weights (parallel
    bookkeeping, speed).
    """
    import torch

    from scalelink.training.export import export_potential
    from scalelink.potentials.gnn import GNNPotential

    torch.manual_seed(seed)
    potential = GNNPotential(
        len(species), cutoff, num_layers, features, 6, avg_num_neighbors=12.0, energy_scale=200.0
    )
    export_potential(potential, species, path, dtype=dtype)
    return str(path)
