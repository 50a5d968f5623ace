"""A coarse Cauchy–Born grid that preconditions the relaxation of a 2D atomistic region.

Relaxing atoms by forces alone (``fix scalelink/relax``) takes a number of steps that grows with
the region's size: the smooth, long-wavelength modes are the softest, and a step that is stable
for the stiffest bond barely moves them. Those modes are exactly what linear elasticity gets
right. So the relaxation is preconditioned by two levels,

    P f = B f + Φ S Φᵀ f

with ``Φ`` the bilinear interpolation from the nodes of a coarse grid (spacing H of a few
lattice spacings) to the free atoms and ``S`` the inverse of the grid's stiffness for the
Cauchy–Born elasticity of the same potential: the coarse grid solves for the smooth part of the
displacement, the plain step ``B f`` and Anderson mixing for the rest.

For a region coupled to a continuum (``scalelink.coupling.condensed``) the grid covers
the whole continuum, held where the continuum's far-field data are, so the coarse problem also
carries the compliance of the continuum around the atoms: the mode that makes the coupled
relaxation slower than the region alone. For a region alone the grid is held where the pad is.

``S`` is dense on the coarse nodes that touch free atoms (``N`` degrees of freedom); each MD rank
holds a block of its rows, computed from one sparse factorisation of the grid's stiffness, and
each atom carries its own 4 (node, weight) pairs, so nothing per atom is replicated.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from mpi4py import MPI

from scalelink.bridge.errors import ConfigError

from .geometry import CouplingGeometry

__all__ = ["CoarseGrid", "CoarseRows", "coarse_rows", "coarse_spacing"]

_GAUSS = np.array([-1.0, 1.0]) / np.sqrt(3.0)
# bilinear shape functions of the reference square, nodes counter-clockwise from (-1, -1)
_XI = np.array([-1.0, 1.0, 1.0, -1.0])
_ETA = np.array([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class CoarseGrid:
    """A tensor grid of bilinear (Q1) elements with a linear-elastic law.

    Attributes:
        nodes: node coordinates ``(k,)`` along x and along y (Å, increasing); the grid has k² nodes.
        held_half_width: nodes with ``|X|∞ >= held_half_width`` (up to 1e-9 Å) are held at zero.
        stiffness: Mandel stiffness ``(3, 3)`` (eV/Å²) of the 2D law, e.g. the Cauchy–Born
            tangent of the potential.
    """

    nodes: np.ndarray
    held_half_width: float
    stiffness: np.ndarray

    def __post_init__(self) -> None:
        nodes = np.asarray(self.nodes, dtype=float)
        if nodes.ndim != 1 or len(nodes) < 3 or not np.all(np.diff(nodes) > 0.0):
            raise ConfigError(f"CoarseGrid: nodes must be at least 3 increasing coordinates; got {nodes!r}")
        if np.asarray(self.stiffness).shape != (3, 3):
            raise ConfigError(f"CoarseGrid: stiffness must be 3×3 (Mandel); got shape {np.shape(self.stiffness)}")
        if not self.held_half_width > 0.0:
            raise ConfigError(f"CoarseGrid: held_half_width must be positive; got {self.held_half_width}")

    @classmethod
    def for_coupling(cls, geometry: CouplingGeometry, stiffness: np.ndarray, spacing: float) -> CoarseGrid:
        """The grid of a coupled problem: spacing ``spacing`` (Å) over the atoms, growing like the
        FE mesh beyond, held at the continuum's outer edge ``|X|∞ = L``."""
        nodes = replace(geometry, mesh_size=spacing).grid_nodes()
        return cls(nodes, geometry.half_width, np.asarray(stiffness, dtype=float))

    @classmethod
    def for_region(cls, free_half_width: float, stiffness: np.ndarray, spacing: float) -> CoarseGrid:
        """The grid of an atomistic region alone: uniform spacing (Å), held from ``free_half_width``
        out (where the pad is)."""
        count = int(np.ceil(free_half_width / spacing))
        nodes = spacing * np.arange(-count, count + 1)
        return cls(nodes, free_half_width, np.asarray(stiffness, dtype=float))

    @property
    def size(self) -> int:
        """Number of nodes along one axis."""
        return len(self.nodes)

    @property
    def dim(self) -> int:
        """Number of displacement components per node (2)."""
        return 2

    def held(self) -> np.ndarray:
        """Mask ``(k²,)`` of the held nodes (node index ``i * k + j`` for ``(x_i, y_j)``)."""
        x = np.asarray(self.nodes)
        norm = np.maximum(np.abs(x)[:, None], np.abs(x)[None, :]).ravel()
        return norm >= self.held_half_width - 1e-9

    def stiffness_matrix(self):
        """Sparse stiffness ``(2k², 2k²)`` (eV/Å², CSC), degrees of freedom node-major."""
        import scipy.sparse as sp

        x = np.asarray(self.nodes, dtype=float)
        k = len(x)
        hx = np.diff(x)
        ex, ey = np.meshgrid(np.arange(k - 1), np.arange(k - 1), indexing="ij")
        ex, ey = ex.ravel(), ey.ravel()
        a, b = hx[ex], hx[ey]  # element widths in x and y
        c = np.asarray(self.stiffness, dtype=float)
        local = np.zeros((len(ex), 8, 8))
        for xi in _GAUSS:
            for eta in _GAUSS:
                dx = 0.25 * _XI * (1.0 + eta * _ETA) * (2.0 / a)[:, None]
                dy = 0.25 * _ETA * (1.0 + xi * _XI) * (2.0 / b)[:, None]
                strain = np.zeros((len(ex), 3, 8))
                strain[:, 0, 0::2] = dx
                strain[:, 1, 1::2] = dy
                strain[:, 2, 0::2] = dy / np.sqrt(2.0)
                strain[:, 2, 1::2] = dx / np.sqrt(2.0)
                local += np.einsum("eip,ij,ejq->epq", strain, c, strain) * (0.25 * a * b)[:, None, None]
        corners = np.stack([ex * k + ey, (ex + 1) * k + ey, (ex + 1) * k + ey + 1, ex * k + ey + 1], axis=1)
        dofs = np.stack([2 * corners, 2 * corners + 1], axis=2).reshape(len(ex), 8)
        rows = np.repeat(dofs, 8, axis=1).ravel()
        cols = np.tile(dofs, (1, 8)).ravel()
        return sp.csc_matrix((local.ravel(), (rows, cols)), shape=(2 * k * k, 2 * k * k))

    def interpolation(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grid nodes ``(n, 4)`` and bilinear weights ``(n, 4)`` of points ``(n, 2)`` (Å).

        Raises:
            ConfigError: if a point lies outside the grid.
        """
        x = np.asarray(self.nodes, dtype=float)
        p = np.asarray(positions, dtype=float).reshape(-1, 2)
        outside = (p < x[0] - 1e-9) | (p > x[-1] + 1e-9)
        if outside.any():
            row = int(np.flatnonzero(outside.any(axis=1))[0])
            raise ConfigError(f"CoarseGrid: point {p[row].tolist()} Å lies outside the grid [{x[0]}, {x[-1]}]²")
        k = len(x)
        i = np.clip(np.searchsorted(x, p[:, 0], side="right") - 1, 0, k - 2)
        j = np.clip(np.searchsorted(x, p[:, 1], side="right") - 1, 0, k - 2)
        sx = (p[:, 0] - x[i]) / (x[i + 1] - x[i])
        sy = (p[:, 1] - x[j]) / (x[j + 1] - x[j])
        nodes = np.stack([i * k + j, (i + 1) * k + j, (i + 1) * k + j + 1, i * k + j + 1], axis=1)
        weights = np.stack([(1 - sx) * (1 - sy), sx * (1 - sy), sx * sy, (1 - sx) * sy], axis=1)
        return nodes, weights


@dataclass(frozen=True)
class CoarseRows:
    """This rank's part of the coarse preconditioner (see the module docstring).

    Attributes:
        dofs: N, the coarse degrees of freedom over all ranks (2 per coarse node).
        node: ``(n, 4)`` coarse node (0..N/2-1, -1 for none) of each of the given atoms' slots.
        weight: ``(n, 4)`` their weights.
        first: first row of ``S`` this rank holds.
        rows: ``(m, N)`` this rank's rows of ``S`` (Å²/eV).
    """

    dofs: int
    node: np.ndarray
    weight: np.ndarray
    first: int
    rows: np.ndarray


def coarse_rows(comm: MPI.Comm, grid: Any, positions: np.ndarray) -> CoarseRows:
    """The coarse preconditioner for the free atoms at reference ``positions`` ``(n, d)`` (Å)
    owned by this rank. Collective on ``comm``. ``grid``: a :class:`CoarseGrid` (d = 2) or a
    :class:`~scalelink.coupling.coarse3d.CoarseGrid3D` (d = 3).

    Coarse nodes are the grid's free nodes that carry weight at some free atom on some rank;
    each rank takes a contiguous block of them (rows of ``S``, in rank order) and solves the
    grid's stiffness for their unit loads (one sparse factorisation per rank, the grid is small).
    """
    from scipy.sparse.linalg import splu

    grid_node, weight = grid.interpolation(positions)
    held = grid.held()
    weight = np.where(held[grid_node], 0.0, weight)
    touched = np.zeros(len(held), dtype=np.int32)
    touched[grid_node[weight > 0.0]] = 1
    comm.Allreduce(MPI.IN_PLACE, touched, op=MPI.MAX)
    used = np.flatnonzero(touched)
    index = np.full(len(held), -1, dtype=np.int64)
    index[used] = np.arange(len(used))
    node = np.where(weight > 0.0, index[grid_node], -1)
    weight = np.where(node >= 0, weight, 0.0)
    d = grid.dim
    dofs = d * len(used)

    # S = (K⁻¹) on the used nodes; K is symmetric, so this rank's rows are its columns
    free = np.flatnonzero(~held)
    free_dofs = (d * free[:, None] + np.arange(d)).ravel()
    position = np.full(d * len(held), -1, dtype=np.int64)
    position[free_dofs] = np.arange(len(free_dofs))
    used_dofs = position[(d * used[:, None] + np.arange(d)).ravel()]
    bounds = np.linspace(0, len(used), comm.size + 1).astype(int)
    first, last = d * bounds[comm.rank], d * bounds[comm.rank + 1]
    stiffness = grid.stiffness_matrix()[free_dofs][:, free_dofs].tocsc()
    unit = np.zeros((len(free_dofs), last - first))
    unit[used_dofs[first:last], np.arange(last - first)] = 1.0
    rows = splu(stiffness).solve(unit)[used_dofs].T.copy() if last > first else np.zeros((0, dofs))
    return CoarseRows(dofs, node, weight, first, np.ascontiguousarray(rows))


def coarse_spacing(spacing: float, free_half_width: float, max_dofs: int = 512, dim: int = 2) -> float:
    """Coarse grid spacing (Å): 2 lattice spacings, widened in steps of half a spacing until the
    coarse nodes over a region of half-width ``free_half_width`` give at most ``max_dofs``
    degrees of freedom in ``dim`` dimensions (the dense coarse matrix then costs at most about as
    much per step as short-ranged forces on a few thousand atoms)."""
    h = 2.0 * spacing
    while dim * (2 * int(np.ceil(free_half_width / h)) + 1) ** dim > max_dofs:
        h += 0.5 * spacing
    return h
