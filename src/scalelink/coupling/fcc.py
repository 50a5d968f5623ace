"""A face-centred cubic lattice in any orientation, with atom IDs that are a function of the site.

The crystal's cube axes are rotated relative to the lab frame (the frame of the FE mesh and of
the LAMMPS box) by :attr:`FccLattice.rotation`: lab coordinates are ``rotation @ crystal``. A
site is named by its conventional-cell indices ``(i, j, k)`` (each in ``-cells .. cells-1``) and
its basis atom ``b`` (0..3); its ID is ``1 + b + 4 (i' + n (j' + n k'))`` with ``i' = i + cells``
and ``n = 2 cells``. Every rank of either group of a coupled run can therefore name a site and
recover its reference position without a stored table. Lengths in Å.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from scalelink.bridge.errors import ConfigError

__all__ = ["FccLattice", "orientation_matrix"]

_BASIS = np.array([[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])
# IDs must fit LAMMPS's default 32-bit tagint
_MAX_ID = 2**31 - 1


def orientation_matrix(orientation: Sequence[Sequence[float]] | None) -> np.ndarray:
    """The rotation ``(3, 3)`` whose rows are the crystal directions of the lab x, y, z axes.

    Args:
        orientation: three mutually orthogonal crystal directions (Miller indices such as
            ``[[1, -1, 0], [1, 1, -2], [1, 1, 1]]``) forming a right-handed set, or ``None``
            for the cube axes.
    """
    if orientation is None:
        return np.eye(3)
    r = np.asarray(orientation, dtype=float)
    if r.shape != (3, 3) or not np.all(np.isfinite(r)) or np.any(np.linalg.norm(r, axis=1) == 0.0):
        raise ConfigError(f"orientation={orientation!r}; expected three non-zero crystal directions "
                          "(3 × 3), e.g. [[1, -1, 0], [1, 1, -2], [1, 1, 1]]")
    r = r / np.linalg.norm(r, axis=1, keepdims=True)
    if not np.allclose(r @ r.T, np.eye(3), atol=1e-9):
        raise ConfigError(f"orientation={orientation!r}: the directions are not mutually orthogonal; "
                          "give three orthogonal directions such as [1 -1 0], [1 1 -2], [1 1 1]")
    if np.linalg.det(r) < 0.0:
        raise ConfigError(f"orientation={orientation!r} is left-handed; reverse one direction "
                          "(x × y must point along z)")
    return r


@dataclass(frozen=True)
class FccLattice:
    """The perfect fcc crystal: conventional lattice constant, orientation and ID range.

    Attributes:
        constant: cube edge ``a`` of the conventional cell, Å.
        rotation: ``(3, 3)``, lab = ``rotation @`` crystal (rows: crystal directions of x, y, z).
        cells: conventional-cell indices run over ``-cells .. cells-1`` along each cube axis.
    """

    constant: float
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    cells: int = 8

    def __post_init__(self) -> None:
        if not self.constant > 0.0:
            raise ConfigError(f"lattice constant {self.constant!r} Å; expected a positive length")
        if 4 * (2 * self.cells) ** 3 > _MAX_ID:
            raise ConfigError(f"cells={self.cells}: site IDs would exceed LAMMPS's 32-bit limit; "
                              "use a smaller region")

    @classmethod
    def covering(cls, constant: float, half_width: float,
                 orientation: Sequence[Sequence[float]] | None = None) -> FccLattice:
        """The lattice whose IDs name every site with ``|X|∞ <= half_width`` (Å), in any orientation."""
        cells = int(np.ceil(np.sqrt(3.0) * half_width / constant)) + 2
        return cls(float(constant), orientation_matrix(orientation), cells)

    @property
    def spacing(self) -> float:
        """Nearest-neighbour distance ``a / √2``, Å."""
        return self.constant / np.sqrt(2.0)

    @property
    def density(self) -> float:
        """Sites per Å³."""
        return 4.0 / self.constant**3

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Reference lab positions ``(n, 3)`` (Å) of sites ``ids`` ``(n,)``."""
        index = np.asarray(ids, dtype=np.int64) - 1
        n = 2 * self.cells
        basis = index % 4
        cell = index // 4
        ijk = np.column_stack([cell % n, (cell // n) % n, cell // (n * n)]) - self.cells
        return (self.constant * (ijk + _BASIS[basis])) @ self.rotation.T

    def sites(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """IDs ``(m,)`` and lab positions ``(m, 3)`` of the sites with ``lo <= X < hi`` (Å, per axis)."""
        lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
        corners = np.array(np.meshgrid(*zip(lo, hi), indexing="ij")).reshape(3, -1).T
        crystal = corners @ self.rotation / self.constant  # rotation is orthogonal: inverse = transpose
        first = np.maximum(np.floor(crystal.min(axis=0)).astype(np.int64) - 1, -self.cells)
        last = np.minimum(np.ceil(crystal.max(axis=0)).astype(np.int64) + 1, self.cells - 1)
        if np.any(last < first):
            return np.zeros(0, dtype=np.int64), np.zeros((0, 3))
        n = 2 * self.cells
        i, j, k, b = np.meshgrid(*(np.arange(f, l + 1) for f, l in zip(first, last)), np.arange(4), indexing="ij")
        ids = 1 + b.ravel() + 4 * ((i.ravel() + self.cells) + n * ((j.ravel() + self.cells) + n * (k.ravel() + self.cells)))
        x = self.positions(ids)
        inside = np.all((x >= lo) & (x < hi), axis=1)
        return ids[inside].astype(np.int64), x[inside]
