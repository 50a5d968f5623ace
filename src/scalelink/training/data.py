"""Data sets of labelled structures: reading ASE files, building graphs, splitting, batching.

Any file ASE can read (extxyz first) works if its frames carry an energy and forces; a
stress is used where present. ``atoms.info["weight"]`` is a per-structure loss weight
(default 1).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from scalelink.bridge.ase import neighbor_graph, species_indices
from scalelink.bridge.errors import DataError

from .formats import read_any, validate_frames

__all__ = [
    "Labels",
    "labels_of",
    "Split",
    "atoms_to_data",
    "infer_species",
    "make_loader",
    "read_structures",
    "reference_energies",
    "split_indices",
]


@dataclass(frozen=True)
class Labels:
    """Reference labels of one structure (eV, eV/Å, eV/Å³ in ASE's sign convention)."""

    energy: float
    forces: np.ndarray
    stress: np.ndarray | None
    weight: float


def labels_of(atoms: Atoms, where: str) -> Labels:
    calc = atoms.calc
    if calc is None or "energy" not in calc.results:
        raise DataError(f"{where}: no energy label; each frame needs an energy and forces (e.g. extxyz with energy=...)")
    if "forces" not in calc.results:
        raise DataError(f"{where}: no forces label; each frame needs per-atom forces")
    stress = calc.results.get("stress")
    if stress is not None:
        stress = np.asarray(stress, dtype=np.float64)
        if stress.shape == (6,):
            xx, yy, zz, yz, xz, xy = stress
            stress = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
        elif stress.shape != (3, 3):
            raise DataError(f"{where}: stress has shape {stress.shape}, expected (6,) or (3, 3)")
    weight = float(atoms.info.get("weight", 1.0))
    if not weight >= 0.0:
        raise DataError(f"{where}: weight must be non-negative, got {weight}")
    return Labels(
        energy=float(calc.results["energy"]),
        forces=np.asarray(calc.results["forces"], dtype=np.float64),
        stress=stress,
        weight=weight,
    )


def read_structures(paths: Sequence[str | os.PathLike[str]], species: Sequence[str] | None = None) -> list[Atoms]:
    """Read every frame of every source and check its labels.

    A source is a file ASE reads (extxyz, VASP ``vasprun.xml`` or ``OUTCAR``, ...), a DeePMD-kit
    npy system folder, or an mlearn JSON file (:mod:`scalelink.training.formats`, which states
    the units and stress signs of each).

    Args:
        paths: the sources.
        species: if given, every atom's species must be in it.

    Raises:
        DataError: a source is missing or unreadable, or a frame lacks energy or forces, has
            labels of the wrong shape, NaN or Inf anywhere, a species not in ``species`` or a
            periodic cell of zero volume; the message names the source and the frame.
    """
    frames: list[Atoms] = []
    for path in paths:
        chunk = read_any(path)
        validate_frames(chunk, os.fspath(path), species)
        frames.extend(chunk)
    if not frames:
        raise DataError(f"no structures found in {list(map(os.fspath, paths))}")
    return frames


def infer_species(frames: Sequence[Atoms]) -> list[str]:
    """Chemical symbols present in ``frames``, in order of atomic number."""
    numbers = sorted({int(z) for atoms in frames for z in atoms.numbers})
    from ase.data import chemical_symbols

    return [chemical_symbols[z] for z in numbers]


def atoms_to_data(atoms: Atoms, species: list[str], cutoff: float, dtype: torch.dtype) -> Data:
    """One labelled structure as a graph.

    Shapes: ``species`` [N], ``edge_index`` [2, E], ``edge_vectors`` [E, 3], ``forces``
    [N, 3], ``energy`` [1], ``stress`` [1, 3, 3], ``has_stress`` [1], ``volume`` [1],
    ``weight`` [1], ``natoms`` [1].
    """
    labels = labels_of(atoms, "structure")
    edge_index, edge_vectors = neighbor_graph(atoms, cutoff)
    has_stress = labels.stress is not None and bool(atoms.pbc.all())
    volume = float(atoms.get_volume()) if atoms.pbc.all() else 1.0
    stress = labels.stress if has_stress else np.zeros((3, 3))
    return Data(
        species=torch.from_numpy(species_indices(list(atoms.get_chemical_symbols()), species, "the species list")),
        edge_index=torch.from_numpy(edge_index),
        edge_vectors=torch.from_numpy(edge_vectors).to(dtype),
        forces=torch.from_numpy(labels.forces).to(dtype),
        energy=torch.tensor([labels.energy], dtype=dtype),
        stress=torch.from_numpy(stress).to(dtype).unsqueeze(0),
        has_stress=torch.tensor([has_stress]),
        volume=torch.tensor([volume], dtype=dtype),
        weight=torch.tensor([labels.weight], dtype=dtype),
        natoms=torch.tensor([len(atoms)], dtype=torch.int64),
        num_nodes=len(atoms),
    )


@dataclass(frozen=True)
class Split:
    """Indices of the training, validation and test structures."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def split_indices(n: int, validation: float, test: float, seed: int) -> Split:
    """Random train/validation/test split of ``n`` structures by fractions.

    Raises:
        DataError: fractions outside [0, 1) or leaving no training structure.
    """
    if not (0.0 <= validation < 1.0 and 0.0 <= test < 1.0 and validation + test < 1.0):
        raise DataError(f"validation ({validation}) and test ({test}) fractions must be in [0, 1) and sum below 1")
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(test * n))
    n_val = int(round(validation * n))
    if n - n_test - n_val < 1:
        raise DataError(f"{n} structures leave none for training with validation={validation}, test={test}")
    return Split(train=order[n_test + n_val :], validation=order[n_test : n_test + n_val], test=order[:n_test])


def reference_energies(frames: Sequence[Atoms], species: list[str]) -> np.ndarray:
    """Per-species atomic energies that best explain the total energies (least squares).

    Returns:
        [len(species)] energies in eV; the network learns what is left.
    """
    counts = np.zeros((len(frames), len(species)))
    lookup = {s: k for k, s in enumerate(species)}
    for row, atoms in enumerate(frames):
        for symbol in atoms.get_chemical_symbols():
            counts[row, lookup[symbol]] += 1
    energies = np.array([labels_of(a, "structure").energy for a in frames])
    solution, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return solution


def make_loader(data: Sequence[Data], batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    """A PyG loader that concatenates graphs into one disjoint batch graph."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(list(data), batch_size=batch_size, shuffle=shuffle, generator=generator)
