"""Elastic constants of random substitutional fcc alloys from the atomistic RVE.

A binary alloy ``A₁₋ₓBₓ`` is a cubic fcc supercell with Vegard's lattice constant
``a = (1 − x) a_A + x a_B`` and ``round(x N)`` B atoms on random sites. Its cubic constants come
from the tangent of an :class:`~scalelink.fe2.atomistic_rve.AtomisticRVE` at zero strain,
averaged over the three cube axes (a random alloy is cubic only on average):

* relaxed (high fidelity): the reference cell relaxes to zero stress, then the atoms relax at
  every strained cell;
* unrelaxed (low fidelity): the Vegard cell as given and affine atoms (the Cauchy–Born rule
  without internal relaxation), a handful of force calls.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.build import bulk

from scalelink.bridge.errors import ConfigError

from .atomistic_rve import AtomisticRVE

__all__ = ["cubic_constants", "random_alloy"]


def random_alloy(
    species: Sequence[str],
    fraction: float,
    lattice_constants: Sequence[float],
    *,
    cells: int = 3,
    seed: int = 0,
) -> Atoms:
    """A random fcc ``species[0]``–``species[1]`` supercell with ``fraction`` of ``species[1]``.

    Args:
        species: the two chemical symbols, e.g. ``("Cu", "Ni")``.
        fraction: atomic fraction of ``species[1]`` in ``[0, 1]`` (rounded to whole atoms).
        lattice_constants: fcc lattice constants (Å) of the pure elements, for Vegard's law.
        cells: conventional cubic cells per edge (``4 cells³`` atoms).
        seed: seed of the site occupation.
    """
    if len(species) != 2 or len(lattice_constants) != 2:
        raise ConfigError(f"a binary alloy needs two species and two lattice constants, got {species!r}, {lattice_constants!r}")
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"alloy fraction {fraction!r} must lie in [0, 1]")
    if cells < 1:
        raise ConfigError(f"cells must be at least 1, got {cells!r}")
    a = (1.0 - fraction) * lattice_constants[0] + fraction * lattice_constants[1]
    atoms = bulk(species[0], "fcc", a=a, cubic=True).repeat(cells)
    n = len(atoms)
    symbols = np.array([species[0]] * n, dtype=object)
    symbols[np.random.default_rng(seed).permutation(n)[: int(round(fraction * n))]] = species[1]
    atoms.symbols = list(symbols)
    return atoms


def cubic_constants(
    atoms: Atoms, pair_commands: Sequence[str], *, species: Sequence[str], relax: bool
) -> np.ndarray:
    """``(C11, C12, C44)`` in GPa of a cubic cell, axis-averaged, relaxed or unrelaxed (module docstring)."""
    with AtomisticRVE(atoms, list(pair_commands), relax=relax, reference_relax=relax, species=list(species)) as rve:
        _, tangent = rve.evaluate(np.zeros((1, 6)))
    c = tangent[0]
    upper = np.triu_indices(3, 1)
    return np.array([np.diag(c)[:3].mean(), c[:3, :3][upper].mean(), np.diag(c)[3:].mean() / 2.0])
