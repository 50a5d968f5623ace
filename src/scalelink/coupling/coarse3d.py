"""The coarse Cauchy–Born grid of :mod:`scalelink.coupling.coarse` in three dimensions.

Trilinear (Q1) hexahedra on a tensor grid with the same node coordinates along x, y and z, the
lab-frame Mandel stiffness ``(6, 6)`` of the potential, nodes with ``|X|∞ >= held_half_width``
held at zero. :func:`~scalelink.coupling.coarse.coarse_rows` turns it into the preconditioner
``P f = B f + Φ S Φᵀ f`` of ``fix scalelink/relax`` (8 coarse nodes per atom).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np

from scalelink.bridge.errors import ConfigError

from .geometry import CouplingGeometry

__all__ = ["CoarseGrid3D"]

_GAUSS = np.array([-1.0, 1.0]) / np.sqrt(3.0)
# the reference cube's corners (-1 or +1 along each axis), in the order (i, j, k) = 000, 001, 010, ...
_CORNERS = np.array(list(itertools.product((0, 1), repeat=3)))
_SIGN = 2.0 * _CORNERS - 1.0
_R2 = float(np.sqrt(2.0))


@dataclass(frozen=True)
class CoarseGrid3D:
    """A tensor grid of trilinear elements with a linear-elastic law.

    Attributes:
        nodes: node coordinates ``(k,)`` along each axis (Å, increasing); the grid has k³ nodes,
            node ``(i k + j) k + l`` at ``(x_i, x_j, x_l)``.
        held_half_width: nodes with ``|X|∞ >= held_half_width`` (up to 1e-9 Å) are held at zero.
        stiffness: Mandel stiffness ``(6, 6)`` (eV/Å³), order xx, yy, zz, yz, xz, xy.
    """

    nodes: np.ndarray
    held_half_width: float
    stiffness: np.ndarray

    def __post_init__(self) -> None:
        nodes = np.asarray(self.nodes, dtype=float)
        if nodes.ndim != 1 or len(nodes) < 3 or not np.all(np.diff(nodes) > 0.0):
            raise ConfigError(f"CoarseGrid3D: nodes must be at least 3 increasing coordinates; got {nodes!r}")
        if np.asarray(self.stiffness).shape != (6, 6):
            raise ConfigError(f"CoarseGrid3D: stiffness must be 6×6 (Mandel); got shape {np.shape(self.stiffness)}")
        if not self.held_half_width > 0.0:
            raise ConfigError(f"CoarseGrid3D: held_half_width must be positive; got {self.held_half_width}")

    @classmethod
    def for_coupling(cls, geometry: CouplingGeometry, stiffness: np.ndarray, spacing: float) -> CoarseGrid3D:
        """The grid of a coupled problem: spacing ``spacing`` (Å) over the atoms, growing like the
        FE mesh beyond, held at the continuum's outer faces ``|X|∞ = L``."""
        nodes = replace(geometry, mesh_size=spacing).grid_nodes()
        return cls(nodes, geometry.half_width, np.asarray(stiffness, dtype=float))

    @property
    def dim(self) -> int:
        """Number of displacement components per node (3)."""
        return 3

    def held(self) -> np.ndarray:
        """Mask ``(k³,)`` of the held nodes."""
        a = np.abs(np.asarray(self.nodes, dtype=float))
        norm = np.maximum(np.maximum(a[:, None, None], a[None, :, None]), a[None, None, :]).ravel()
        return norm >= self.held_half_width - 1e-9

    def stiffness_matrix(self):
        """Sparse stiffness ``(3k³, 3k³)`` (eV/Å², CSC), degrees of freedom node-major."""
        import scipy.sparse as sp

        x = np.asarray(self.nodes, dtype=float)
        k = len(x)
        h = np.diff(x)
        e = np.stack(np.meshgrid(*[np.arange(k - 1)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
        size = h[e]  # (elements, 3) widths along x, y, z
        c = np.asarray(self.stiffness, dtype=float)
        local = np.zeros((len(e), 24, 24))
        for xi in itertools.product(_GAUSS, repeat=3):
            xi = np.asarray(xi)
            # dN/dξ_a for the 8 corners: ⅛ s_a Π_{b≠a} (1 + s_b ξ_b)
            factors = 1.0 + _SIGN * xi
            grad = np.empty((8, 3))
            for a in range(3):
                others = [b for b in range(3) if b != a]
                grad[:, a] = 0.125 * _SIGN[:, a] * factors[:, others[0]] * factors[:, others[1]]
            dn = grad[None, :, :] * (2.0 / size)[:, None, :]  # (elements, 8, 3) physical gradients
            b = np.zeros((len(e), 6, 24))
            for a in range(3):
                b[:, a, a::3] = dn[:, :, a]
            b[:, 3, 1::3], b[:, 3, 2::3] = dn[:, :, 2] / _R2, dn[:, :, 1] / _R2
            b[:, 4, 0::3], b[:, 4, 2::3] = dn[:, :, 2] / _R2, dn[:, :, 0] / _R2
            b[:, 5, 0::3], b[:, 5, 1::3] = dn[:, :, 1] / _R2, dn[:, :, 0] / _R2
            volume = np.prod(size, axis=1) / 8.0
            local += np.einsum("eip,ij,ejq->epq", b, c, b) * volume[:, None, None]
        corner = e[:, None, :] + _CORNERS[None, :, :]
        node = (corner[:, :, 0] * k + corner[:, :, 1]) * k + corner[:, :, 2]
        dofs = (3 * node[:, :, None] + np.arange(3)).reshape(len(e), 24)
        rows = np.repeat(dofs, 24, axis=1).ravel()
        cols = np.tile(dofs, (1, 24)).ravel()
        return sp.csc_matrix((local.ravel(), (rows, cols)), shape=(3 * k**3, 3 * k**3))

    def interpolation(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grid nodes ``(n, 8)`` and trilinear weights ``(n, 8)`` of points ``(n, 3)`` (Å).

        Raises:
            ConfigError: if a point lies outside the grid.
        """
        x = np.asarray(self.nodes, dtype=float)
        p = np.asarray(positions, dtype=float).reshape(-1, 3)
        outside = (p < x[0] - 1e-9) | (p > x[-1] + 1e-9)
        if outside.any():
            row = int(np.flatnonzero(outside.any(axis=1))[0])
            raise ConfigError(f"CoarseGrid3D: point {p[row].tolist()} Å lies outside the grid [{x[0]}, {x[-1]}]³")
        k = len(x)
        cell = np.clip(np.searchsorted(x, p, side="right") - 1, 0, k - 2)
        s = (p - x[cell]) / (x[cell + 1] - x[cell])
        corner = cell[:, None, :] + _CORNERS[None, :, :]
        nodes = (corner[:, :, 0] * k + corner[:, :, 1]) * k + corner[:, :, 2]
        weights = np.prod(np.where(_CORNERS[None, :, :] == 1, s[:, None, :], 1.0 - s[:, None, :]), axis=2)
        return nodes, weights
