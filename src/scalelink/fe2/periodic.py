"""Periodic unit-cell meshes, phase markers and the periodic FE operator behind the RVE solvers.

Periodicity is imposed by *elimination*: every node on a face ``x_i = L_i`` of the cell is
identified with its image on ``x_i = 0`` (matched by position), which defines a prolongation
``P`` (a 0/1 matrix) from the reduced periodic unknowns to the full nodal unknowns. Because ``P``
only renames indices, ``Pᵀ K P`` and ``Pᵀ f`` are assembled directly by scattering element
matrices and vectors into the reduced numbering, and one periodic node is fixed to remove the
rigid translation. This needs no multi-point-constraint library, is exact (no penalty), keeps
the reduced matrix symmetric positive definite for elastic phases, and lets one sparse
structure be reused by every solve on the mesh. The reduced matrix is factorised with SuperLU
under a symmetric minimum-degree ordering, cheap for the small RVE meshes this is meant for.

Element kernels are evaluated with numpy on all cells and quadrature points at once (affine
simplices, Lagrange elements from basix); dolfinx supplies the mesh, the dofmap and the node
coordinates. The mesh lives on ``MPI.COMM_SELF``: one RVE is solved by the rank that asks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import basix
import mpi4py.MPI as MPI
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.spatial import cKDTree
from dolfinx import fem, mesh as dmesh

from scalelink.bridge.errors import ConfigError

from .tensors import SQRT2

__all__ = [
    "PeriodicOperator",
    "checkerboard",
    "circular_inclusion",
    "hexagonal_array",
    "laminate",
    "unit_cell_mesh",
]

Marker = Callable[[np.ndarray], npt.ArrayLike]


def unit_cell_mesh(
    dim: int,
    cells: int | Sequence[int],
    *,
    size: float | Sequence[float] = 1.0,
    diagonal: str = "right",
) -> dmesh.Mesh:
    """A structured simplex mesh of the box cell ``[0, L_1]×…×[0, L_dim]`` on ``MPI.COMM_SELF``.

    Args:
        dim: 2 (triangles) or 3 (tetrahedra).
        cells: cells per edge (one number or one per axis); make it even (or a multiple of the
            layer count) so that phase boundaries of the markers below fall on element faces.
        size: edge length(s) ``L_i`` of the cell (length unit of the problem).
        diagonal: triangle diagonal direction for 2D (a ``dolfinx.mesh.DiagonalType`` name).
    """
    if dim not in (2, 3):
        raise ConfigError(f"unit cell mesh needs dim 2 or 3, got dim={dim!r}")
    n = np.broadcast_to(np.asarray(cells, dtype=int), (dim,))
    lengths = np.broadcast_to(np.asarray(size, dtype=float), (dim,))
    if np.any(n < 1) or np.any(lengths <= 0):
        raise ConfigError(
            f"unit cell mesh needs cells >= 1 and size > 0 per axis; got cells={cells!r}, "
            f"size={size!r}"
        )
    box = [[0.0] * dim, lengths.tolist()]
    if dim == 2:
        return dmesh.create_rectangle(MPI.COMM_SELF, box, n.tolist(), dmesh.CellType.triangle,
                                      diagonal=dmesh.DiagonalType[diagonal])
    return dmesh.create_box(MPI.COMM_SELF, box, n.tolist(), dmesh.CellType.tetrahedron)


def laminate(fraction: float, axis: int = 0) -> Marker:
    """Marker of a two-phase laminate with layer normal along ``axis``: tag 1 where
    ``x[axis] < fraction`` (in unit-cell coordinates), tag 0 elsewhere."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"laminate fraction {fraction!r} must lie strictly between 0 and 1")
    return lambda x: (x[:, axis] < fraction).astype(np.int32)


def circular_inclusion(radius: float, center: npt.ArrayLike | None = None) -> Marker:
    """Marker of a centred disc (2D) or sphere (3D) inclusion: tag 1 inside, 0 in the matrix.
    ``radius`` and ``center`` are in unit-cell coordinates (default centre: the cell centre)."""
    if not 0.0 < radius <= 0.5:
        raise ConfigError(f"inclusion radius {radius!r} must lie in (0, 0.5] of the cell size")

    def marker(x: np.ndarray) -> np.ndarray:
        c = np.full(x.shape[1], 0.5) if center is None else np.asarray(center, dtype=float)
        return (np.linalg.norm(x - c, axis=1) < radius).astype(np.int32)

    return marker


def hexagonal_array(radius: float) -> Marker:
    """Marker of a hexagonal array of fibres (tag 1, matrix 0) for the 2D cell
    ``[0, 1]×[0, √3]`` (``unit_cell_mesh(2, (n, m), size=(1, √3))``): fibres of ``radius`` (in
    units of the fibre spacing) at the corners and the centre. A hexagonal array is transversely
    isotropic, so its plane-strain moduli obey the isotropic bounds."""
    if not 0.0 < radius < 0.5:
        raise ConfigError(f"fibre radius {radius!r} must lie in (0, 0.5) of the fibre spacing")
    h = np.sqrt(3.0)
    centres = np.array([[0, 0], [1, 0], [0, h], [1, h], [0.5, 0.5 * h]])

    def marker(x: np.ndarray) -> np.ndarray:
        physical = x[:, :2] * np.array([1.0, h])
        distance = np.linalg.norm(physical[:, None, :] - centres[None], axis=-1).min(axis=1)
        return (distance < radius).astype(np.int32)

    return marker


def checkerboard() -> Marker:
    """Marker of the 2×2 checkerboard: tag ``(⌊2x⌋ + ⌊2y⌋) mod 2``."""
    return lambda x: (np.floor(2 * x[:, 0]) + np.floor(2 * x[:, 1])).astype(np.int32) % 2


class PeriodicOperator:
    """Periodic FE discretisation of a gradient field on a unit cell.

    The cell is the box ``[0, L_1]×…×[0, L_d]`` spanned by the mesh; cell markers receive cell
    midpoints in cell units ``x_i / L_i`` ``(num_cells, d)``.

    ``kind == "elastic"``: vector field, strain = Mandel symmetric gradient (``m = 3`` or 6);
    ``kind == "scalar"``: scalar field, "strain" = gradient (``m = d``). Fields at quadrature
    points are flat arrays ``(num_quadrature_points, ...)`` ordered cell-major.

    Attributes:
        num_free: number of reduced (periodic, translation-fixed) unknowns.
        weights: quadrature weights times ``|det J|`` ``(num_quadrature_points,)``.
        volume: cell volume (sum of ``weights``).
        size: cell edge lengths ``(d,)``.
        cell_tags: tag of every cell ``(num_cells,)``.
        point_tags: tag of every quadrature point ``(num_quadrature_points,)``.
    """

    def __init__(
        self,
        mesh: dmesh.Mesh,
        *,
        kind: str,
        cell_tags: npt.ArrayLike | Marker | None = None,
        degree: int = 1,
        quadrature_degree: int | None = None,
    ) -> None:
        if kind not in ("elastic", "scalar"):
            raise ConfigError(f"kind {kind!r} is not known; use 'elastic' or 'scalar'")
        if degree < 1 or (quadrature_degree is not None and quadrature_degree < 0):
            raise ConfigError(
                f"need a Lagrange degree >= 1 and a quadrature degree >= 0, got degree="
                f"{degree!r}, quadrature_degree={quadrature_degree!r}"
            )
        if mesh.comm.size != 1:
            raise ConfigError(
                f"an RVE mesh must live on MPI.COMM_SELF, got a communicator of size "
                f"{mesh.comm.size}; create it with unit_cell_mesh or comm=MPI.COMM_SELF"
            )
        cell_name = mesh.topology.cell_type.name
        if cell_name not in ("triangle", "tetrahedron") or mesh.geometry.cmaps[0].degree != 1:
            raise ConfigError(
                f"periodic RVEs need affine simplices (triangle/tetrahedron, degree-1 geometry), "
                f"got {cell_name} of geometry degree {mesh.geometry.cmaps[0].degree}"
            )
        d = mesh.topology.dim
        space = fem.functionspace(mesh, ("Lagrange", degree))
        element = space.ufl_element().basix_element
        qdeg = 2 * (degree - 1) if quadrature_degree is None else quadrature_degree
        points, qweights = basix.make_quadrature(basix.CellType[cell_name], qdeg)
        ref_grad = np.moveaxis(element.tabulate(1, points)[1:, :, :, 0], 0, -1)  # (q, e, d)

        x = mesh.geometry.x[:, :d]
        cell_vertices = x[mesh.geometry.dofmaps[0]]  # (c, d+1, d)
        jac = np.swapaxes(cell_vertices[:, 1:] - cell_vertices[:, :1], 1, 2)
        det = np.abs(np.linalg.det(jac))
        grad = np.einsum("qea,cai->cqei", ref_grad, np.linalg.inv(jac))  # (c, q, e, d)
        nc, nq, ne = grad.shape[:3]
        self.dim = d
        self.num_quadrature_points = nc * nq
        self.weights = (det[:, None] * qweights[None, :]).ravel()
        self.volume = float(self.weights.sum())
        self.block_size = d if kind == "elastic" else 1
        self.strain_size = {2: 3, 3: 6}[d] if kind == "elastic" else d
        self._b = self._gradient_operator(grad, kind).reshape(nc * nq, self.strain_size, -1)
        self._bt = np.ascontiguousarray(np.swapaxes(self._b, 1, 2))
        self._q_cell = np.repeat(np.arange(nc), nq)

        midpoints = cell_vertices.mean(axis=1)
        size = x.max(axis=0)
        if np.abs(x.min(axis=0)).max() > 1e-10 * size.max():
            raise ConfigError(
                f"the RVE mesh must fill a box with a corner at the origin; its bounding box is "
                f"{x.min(axis=0).tolist()} to {size.tolist()}"
            )
        self.size = size
        self.cell_tags = self._tags(cell_tags, midpoints / size, nc)
        self.point_tags = np.repeat(self.cell_tags, nq)
        self._element_dofs = self._periodic_dofs(space, size)
        self._structure()

    @staticmethod
    def _gradient_operator(grad: np.ndarray, kind: str) -> np.ndarray:
        nc, nq, ne, d = grad.shape
        if kind == "scalar":
            return np.swapaxes(grad, 2, 3).copy()
        pairs = ((0, 0), (1, 1), (0, 1)) if d == 2 else (
            (0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
        b = np.zeros((nc, nq, len(pairs), ne, d))
        for k, (i, j) in enumerate(pairs):
            if i == j:
                b[:, :, k, :, i] = grad[..., i]
            else:
                b[:, :, k, :, i] = grad[..., j] / SQRT2
                b[:, :, k, :, j] = grad[..., i] / SQRT2
        return b.reshape(nc, nq, len(pairs), ne * d)

    @staticmethod
    def _tags(cell_tags: npt.ArrayLike | Marker | None, unit_x: np.ndarray, nc: int) -> np.ndarray:
        if cell_tags is None:
            return np.zeros(nc, dtype=np.int32)
        if callable(cell_tags):
            tags = np.asarray(cell_tags(unit_x))
        elif hasattr(cell_tags, "indices") and hasattr(cell_tags, "values"):
            tags = np.full(nc, -1, dtype=np.int64)
            tags[np.asarray(cell_tags.indices)] = np.asarray(cell_tags.values)
        else:
            tags = np.asarray(cell_tags)
        if tags.shape != (nc,) or not np.issubdtype(tags.dtype, np.integer):
            raise ConfigError(
                f"cell tags must be {nc} integers (one per cell), got shape {tags.shape} of "
                f"dtype {tags.dtype}; give a marker function, an array or dolfinx MeshTags"
            )
        return tags.astype(np.int64)

    def _periodic_dofs(self, space: fem.FunctionSpace, size: np.ndarray) -> np.ndarray:
        """Element dofs in the reduced numbering, ``-1`` for the fixed node."""
        x = space.tabulate_dof_coordinates()[:, : self.dim]
        tol = 1e-8 * size.max()
        tree = cKDTree(x)
        image = np.arange(x.shape[0])
        for axis in range(self.dim):
            low = np.flatnonzero(np.abs(x[:, axis]) < tol)
            high = np.flatnonzero(np.abs(x[:, axis] - size[axis]) < tol)
            distance, partner = tree.query(x[high] - size[axis] * np.eye(self.dim)[axis],
                                           distance_upper_bound=tol)
            if low.size != high.size or np.any(np.isinf(distance)):
                raise ConfigError(
                    f"the mesh is not periodic along axis {axis}: {low.size} nodes on the face "
                    f"x=0, {high.size} on x=L, {int(np.isinf(distance).sum())} of them without "
                    "an image; use a mesh whose opposite faces match node for node"
                )
            image[high] = partner
        # Edge and corner nodes reach their representative through up to `dim` face images.
        for _ in range(self.dim):
            image = image[image]
        _, node_map = np.unique(image, return_inverse=True)
        fixed = node_map[np.argmin(np.linalg.norm(x / size, axis=1))]
        free_node = np.where(np.arange(node_map.max() + 1) == fixed, -1, 0)
        free_node[free_node == 0] = np.arange(node_map.max())
        self.num_free = int(node_map.max()) * self.block_size
        nodes = free_node[node_map[space.dofmap.list]]  # (c, e)
        bs = self.block_size
        dofs = nodes[:, :, None] * bs + np.arange(bs)
        return np.where(nodes[:, :, None] < 0, -1, dofs).reshape(nodes.shape[0], -1)

    def _structure(self) -> None:
        """Sparsity of the reduced matrix and the scatter map of element-matrix entries."""
        e = self._element_dofs
        rows = np.broadcast_to(e[:, :, None], e.shape + e.shape[1:])
        cols = np.broadcast_to(e[:, None, :], rows.shape)
        self._matrix_mask = ((rows >= 0) & (cols >= 0)).ravel()
        keys = (rows.ravel() * self.num_free + cols.ravel())[self._matrix_mask]
        unique, self._matrix_slot = np.unique(keys, return_inverse=True)
        self._indices = (unique % self.num_free).astype(np.int32)
        self._indptr = np.searchsorted(unique // self.num_free, np.arange(self.num_free + 1))
        self._vector_mask = (e >= 0).ravel()

    def gradient(self, values: np.ndarray) -> np.ndarray:
        """Strain (gradient) ``(num_quadrature_points, m)`` of reduced unknowns ``(num_free,)``."""
        ue = np.where(self._element_dofs >= 0, values[self._element_dofs], 0.0)
        return np.einsum("pai,pi->pa", self._b, ue[self._q_cell])

    def _scatter(self, element_values: np.ndarray) -> np.ndarray:
        flat = element_values.reshape(-1, *element_values.shape[2:])[self._vector_mask]
        slots = self._element_dofs.ravel()[self._vector_mask]
        if flat.ndim == 1:
            return np.bincount(slots, flat, minlength=self.num_free)
        return np.stack(
            [np.bincount(slots, flat[:, k], minlength=self.num_free) for k in range(flat.shape[1])],
            axis=1,
        )

    def _per_cell(self, point_values: np.ndarray) -> np.ndarray:
        nc = self._element_dofs.shape[0]
        return point_values.reshape(nc, -1, *point_values.shape[1:]).sum(axis=1)

    def vector(self, flux: np.ndarray, *, absolute: bool = False) -> np.ndarray:
        """``Pᵀ ∫ Bᵀ σ`` ``(num_free,)`` of a flux/stress field ``(num_quadrature_points, m)``;
        with ``absolute`` the same with ``|B|`` and ``|σ|`` (a scale for residual norms)."""
        b = np.abs(self._b) if absolute else self._b
        s = np.abs(flux) if absolute else flux
        return self._scatter(self._per_cell(np.einsum("pai,pa,p->pi", b, s, self.weights)))

    def coupling(self, tangent: np.ndarray) -> np.ndarray:
        """``Pᵀ ∫ Bᵀ C`` ``(num_free, m)`` of a tangent field ``(num_quadrature_points, m, m)``."""
        return self._scatter(self._per_cell(self._bt @ (tangent * self.weights[:, None, None])))

    def matrix(self, tangent: np.ndarray) -> sp.csc_matrix:
        """``Pᵀ (∫ Bᵀ C B) P`` as a CSC matrix ``(num_free, num_free)``."""
        ke = self._per_cell(self._bt @ (tangent * self.weights[:, None, None]) @ self._b)
        data = np.bincount(self._matrix_slot, ke.ravel()[self._matrix_mask],
                           minlength=self._indices.size)
        n = self.num_free
        return sp.csr_matrix((data, self._indices, self._indptr), shape=(n, n)).tocsc()

    @staticmethod
    def factorize(matrix: sp.csc_matrix) -> spla.SuperLU:
        """Sparse LU of a reduced matrix. A minimum-degree ordering of ``Aᵀ + A`` with symmetric
        mode suits these (structurally) symmetric FE matrices: a few times less fill and time
        than the default column ordering."""
        return spla.splu(matrix, permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True})

    def average(self, field: np.ndarray) -> np.ndarray:
        """Volume average of a quadrature field ``(num_quadrature_points, ...)``."""
        return np.tensordot(self.weights, field, axes=(0, 0)) / self.volume
