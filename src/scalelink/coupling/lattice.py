"""The 2D hexagonal lattice of the atomistic–continuum coupling and its pair potential.

Pure geometry and parameters (no LAMMPS): the atomistic region (:mod:`.atomistic2d`), the
continuum side and the coupling geometry (:mod:`.geometry`) all name sites through it.

Atom IDs are a function of the lattice indices (:class:`HexLattice`), so every rank of either
group can name a site and recover its reference position without any stored table. Units are
LAMMPS ``metal`` (eV, Å).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["HexLattice", "LennardJones2D"]

_SQRT3 = float(np.sqrt(3.0))


@dataclass(frozen=True)
class LennardJones2D:
    """A Lennard-Jones solid with energy and force going smoothly to zero at the cutoff
    (LAMMPS ``pair_style lj/smooth/linear``), in metal units.

    Attributes:
        epsilon: well depth, eV.
        sigma: zero-crossing distance, Å.
        cutoff: cutoff radius, Å.
        mass: atomic mass, g/mol.
    """

    epsilon: float = 0.2
    sigma: float = 2.2
    cutoff: float = 5.5
    mass: float = 63.55

    def commands(self) -> str:
        """LAMMPS commands defining the potential for all atom types."""
        return (
            f"mass * {self.mass}\n"
            f"pair_style lj/smooth/linear {self.cutoff}\n"
            f"pair_coeff * * {self.epsilon} {self.sigma}\n"
        )


@dataclass(frozen=True)
class HexLattice:
    """A finite hexagonal (triangular) lattice of spacing ``spacing`` centred on a site at 0.

    Sites are ``(i a + b a/2, j √3 a + b √3 a/2)`` for ``|i| <= ni``, ``|j| <= nj``,
    ``b ∈ {0, 1}``; the ID of a site is ``1 + b + 2 (i + ni + (2 ni + 1)(j + nj))``.

    Attributes:
        spacing: nearest-neighbour distance a, Å.
        ni: half the number of rectangular cells along x.
        nj: half the number of rectangular cells along y.
    """

    spacing: float
    ni: int
    nj: int

    @classmethod
    def covering(cls, spacing: float, half_width: float) -> HexLattice:
        """The smallest lattice holding every site with ``|x|, |y| <= half_width`` (Å)."""
        return cls(spacing, int(np.ceil(half_width / spacing)) + 1,
                   int(np.ceil(half_width / (_SQRT3 * spacing))) + 1)

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Reference positions ``(n, 2)`` in Å of the sites with IDs ``ids`` ``(n,)``."""
        k = np.asarray(ids, dtype=np.int64) - 1
        b = k % 2
        cell = k // 2
        i = cell % (2 * self.ni + 1) - self.ni
        j = cell // (2 * self.ni + 1) - self.nj
        a = self.spacing
        return np.column_stack([(i + 0.5 * b) * a, (j + 0.5 * b) * _SQRT3 * a])

    def sites(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """IDs ``(n,)`` and positions ``(n, 2)`` of the sites with ``lo <= x < hi`` (Å)."""
        a = self.spacing
        i = np.arange(max(-self.ni, int(np.floor(lo[0] / a)) - 1),
                      min(self.ni, int(np.ceil(hi[0] / a)) + 1) + 1)
        j = np.arange(max(-self.nj, int(np.floor(lo[1] / (_SQRT3 * a))) - 1),
                      min(self.nj, int(np.ceil(hi[1] / (_SQRT3 * a))) + 1) + 1)
        jj, ii, bb = np.meshgrid(j, i, [0, 1], indexing="ij")
        ids = 1 + bb + 2 * (ii + self.ni + (2 * self.ni + 1) * (jj + self.nj))
        ids = ids.ravel()
        x = self.positions(ids)
        inside = np.all((x >= lo) & (x < hi), axis=1)
        return ids[inside], x[inside]
