"""Reference data for a binary fcc alloy labelled by ASE's EMT calculator.

Structures are random Cu–Ni solid solutions on an fcc lattice (Vegard lattice constant),
homogeneously strained and thermally rattled, so that the data cover the configurations a
few-hundred-kelvin MD run visits. EMT needs nothing outside ASE, so the demo runs on a fresh
machine.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from scalelink.bridge.errors import DataError

__all__ = ["LATTICE_CONSTANTS", "fcc_alloy_structures", "write_fcc_alloy_dataset"]

LATTICE_CONSTANTS = {"Cu": 3.61, "Ni": 3.52, "Al": 4.05, "Ag": 4.09, "Au": 4.08, "Pd": 3.89, "Pt": 3.92}


def _labelled(atoms: Atoms) -> Atoms:
    atoms.calc = EMT()
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    stress = atoms.get_stress()
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces, stress=stress)
    return atoms


def fcc_alloy_structures(
    n_structures: int,
    species: Sequence[str] = ("Cu", "Ni"),
    *,
    repeats: Sequence[tuple[int, int, int]] = ((2, 2, 2), (3, 2, 2)),
    max_strain: float = 0.03,
    rattle: tuple[float, float] = (0.01, 0.10),
    seed: int = 0,
) -> list[Atoms]:
    """Random labelled fcc alloy structures.

    Args:
        n_structures: how many.
        species: two or more EMT elements (Al Cu Ag Au Ni Pd Pt).
        repeats: supercells of the 4-atom cubic cell to draw from.
        max_strain: bound of the random symmetric strain components.
        rattle: range of the Gaussian displacement width (Å), drawn per structure.
        seed: random seed.

    Returns:
        Structures with energy, forces and stress in a :class:`SinglePointCalculator`.
    """
    unknown = [s for s in species if s not in LATTICE_CONSTANTS]
    if unknown:
        raise DataError(f"EMT reference data supports {sorted(LATTICE_CONSTANTS)}, got {unknown}")
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n_structures):
        fractions = rng.dirichlet(np.ones(len(species)))
        a0 = float(sum(f * LATTICE_CONSTANTS[s] for f, s in zip(fractions, species)))
        reps = repeats[int(rng.integers(len(repeats)))]
        atoms = bulk(species[0], "fcc", a=a0, cubic=True).repeat(reps)
        atoms.symbols = list(rng.choice(list(species), size=len(atoms), p=fractions))
        strain = rng.uniform(-max_strain, max_strain, size=(3, 3))
        strain = 0.5 * (strain + strain.T)
        atoms.set_cell(atoms.cell[:] @ (np.eye(3) + strain), scale_atoms=True)
        atoms.positions += rng.normal(scale=rng.uniform(*rattle), size=atoms.positions.shape)
        frames.append(_labelled(atoms))
    return frames


def write_fcc_alloy_dataset(path: str | os.PathLike[str], n_structures: int, **kwargs: object) -> list[Atoms]:
    """Generate :func:`fcc_alloy_structures` and write them as extxyz to ``path``."""
    frames = fcc_alloy_structures(n_structures, **kwargs)  # type: ignore[arg-type]
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    write(os.fspath(path), frames, format="extxyz", parallel=False)
    return frames
