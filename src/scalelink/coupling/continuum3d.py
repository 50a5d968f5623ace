"""The continuum side of 3D coupling: Cauchy–Born linear elasticity on a cube of P1 tetrahedra.

The FE domain is ``|X|∞ <= L`` with a graded tensor-product grid (finest over the atomistic
region, :meth:`~scalelink.coupling.geometry.CouplingGeometry.grid_nodes`), each hexahedron split
into six tetrahedra by :func:`dolfinx.mesh.create_box`. The far-field displacement ``u = ε X`` is
prescribed on the outer faces; every node of the hole ``|X|∞ <= R_h`` is prescribed too, those of
its boundary layer by affine least-squares fits of the atoms around them (exact for affine
fields), the deeper ones at 0 (their elements have only prescribed nodes). Lengths in Å, the
stiffness in eV/Å³ (Mandel), nodal residuals in eV/Å.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from .edge_solve import EdgeDirichletSolve
from .fcc import FccLattice
from .geometry import CouplingGeometry

__all__ = ["AtomCellMap", "ContinuumRegion3D", "affine_fit", "affine_field"]

# affine fit at a hole node: every site within 1.8 nearest-neighbour distances (~30 sites), room for 64
_FIT_RADIUS = 1.8
_FIT_SLOTS = 64


def affine_field(strain: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Displacements ``(n, 3)`` (Å) of ``u = ε X`` for the Mandel strain ``strain`` ``(6,)`` at ``positions`` ``(n, 3)``."""
    from scalelink.fe2.tensors import tensor_from_mandel

    return np.asarray(positions) @ tensor_from_mandel(np.asarray(strain, dtype=float)).T


def affine_fit(points: np.ndarray, lattice: FccLattice, band: tuple[float, float],
               removed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights of the affine least-squares fit of atom data at ``points`` ``(n, 3)``.

    Uses every present site with ``|X|∞`` in ``band`` within ``_FIT_RADIUS`` nearest-neighbour
    distances of the point (a radius, not "k nearest": no distance ties, so a node shared by
    two FE ranks gets the same value on both).

    Returns:
        ``(ids (m,), rows (n, slots), weights (n, slots))``: the value at point ``i`` is
        ``sum_k weights[i, k] * data[rows[i, k]]`` with ``data`` ordered as ``ids``.
    """
    from scipy.spatial import cKDTree

    slots = _FIT_SLOTS
    if len(points) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, slots), dtype=np.int64), np.zeros((0, slots))
    reach = (_FIT_RADIUS + 1.0) * lattice.spacing
    site_ids, site_x = lattice.sites(points.min(axis=0) - reach, points.max(axis=0) + reach)
    norm = np.max(np.abs(site_x), axis=1)
    keep = (norm >= band[0]) & (norm <= band[1]) & ~np.isin(site_ids, removed)
    site_ids, site_x = site_ids[keep], site_x[keep]
    dist, nearest = cKDTree(site_x).query(points, k=slots, distance_upper_bound=_FIT_RADIUS * lattice.spacing)
    inside = np.isfinite(dist)
    nearest = np.where(inside, nearest, 0)
    w = inside.astype(float)[:, :, None]
    design = np.concatenate([np.ones((len(points), slots, 1)), site_x[nearest] - points[:, None, :]], axis=2)
    weights = np.linalg.pinv(w * design)[:, 0, :] * w[:, :, 0]
    ids, inverse = np.unique(site_ids[nearest], return_inverse=True)
    return ids, inverse.reshape(nearest.shape), weights


@dataclass(frozen=True)
class AtomCellMap:
    """Atoms inside the locally owned tetrahedra, with P1 interpolation weights (built once).

    Attributes:
        ids: atom IDs ``(n,)``.
        weights: barycentric coordinates ``(n, 4)`` of the reference positions in their cells.
        nodes: local (block) DOF indices of the cells' vertices ``(n, 4)``.
    """

    ids: np.ndarray
    weights: np.ndarray
    nodes: np.ndarray

    def interpolate(self, nodal: np.ndarray) -> np.ndarray:
        """Field ``(n, 3)`` at the atoms from nodal values ``(num_local_nodes, 3)``."""
        return np.einsum("nk,nkc->nc", self.weights, nodal[self.nodes])


class ContinuumRegion3D(EdgeDirichletSolve):
    """Linear elasticity with the lab-frame Cauchy–Born stiffness on ``[-L, L]³`` (P1 tetrahedra).

    Args:
        comm: the FE group's communicator.
        lattice: the lattice naming the atoms.
        stiffness: Mandel stiffness ``(6, 6)`` in eV/Å³ (lab frame).
        geometry: the regions (cubes centred at the origin).
        strain: far-field Mandel strain ``(6,)``.
        removed: IDs of vacant sites ``(k,)``.

    Attributes:
        mesh, V, u, bc_values: the dolfinx mesh, vector P1 space, displacement (Å) and Dirichlet data.
        edge_nodes: local (block) DOFs on the hole's boundary layer, fed by the atoms.
        constrained_nodes: local (block) DOFs with Dirichlet data, sorted.
        fit_ids, fit_rows, fit_weights: the affine fits of :func:`affine_fit` at ``edge_nodes``.
        pad_map: the pad atoms in this rank's owned cells (:class:`AtomCellMap`).
    """

    def __init__(self, comm: MPI.Comm, lattice: FccLattice, stiffness: np.ndarray, geometry: CouplingGeometry,
                 strain: np.ndarray, removed: np.ndarray) -> None:
        import dolfinx.fem.petsc
        import ufl
        from dolfinx import fem, mesh
        from petsc4py import PETSc

        g = geometry
        self.stiffness = np.asarray(stiffness, dtype=float)
        grid = g.grid_nodes()
        n = len(grid) - 1
        self.mesh = mesh.create_box(comm, [[0.0, 0.0, 0.0], [float(n)] * 3], [n, n, n], mesh.CellType.tetrahedron)
        x = self.mesh.geometry.x
        x[:] = np.interp(x, np.arange(n + 1, dtype=float), grid)
        self.V = fem.functionspace(self.mesh, ("Lagrange", 1, (3,)))
        self.u = fem.Function(self.V)
        self.bc_values = fem.Function(self.V)
        c = ufl.as_matrix(self.stiffness.tolist())
        r2 = float(np.sqrt(2.0))

        def mandel(w: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
            e = ufl.sym(ufl.grad(w))
            return ufl.as_vector([e[0, 0], e[1, 1], e[2, 2], r2 * e[1, 2], r2 * e[0, 2], r2 * e[0, 1]])

        du, v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
        self._a = fem.form(ufl.inner(c * mandel(du), mandel(v)) * ufl.dx)
        self._residual = fem.form(ufl.inner(c * mandel(self.u), mandel(v)) * ufl.dx)
        tol = 1e-8 * g.half_width
        outer = fem.locate_dofs_geometrical(self.V, lambda p: np.max(np.abs(p), axis=0) >= g.half_width - tol)
        hole = fem.locate_dofs_geometrical(self.V, lambda p: np.max(np.abs(p), axis=0) <= g.hole_half_width + tol)
        nodes_x = self.V.tabulate_dof_coordinates()
        self.bc_values.x.array.reshape(-1, 3)[outer] = affine_field(strain, nodes_x[outer])
        self.constrained_nodes = np.unique(np.concatenate([outer, hole]))
        self._bc = fem.dirichletbc(self.bc_values, self.constrained_nodes)
        self._bc_zero = fem.dirichletbc(fem.Function(self.V), self.constrained_nodes)

        self._A = dolfinx.fem.petsc.assemble_matrix(self._a, bcs=[self._bc])
        self._A.assemble()
        self._ksp = PETSc.KSP().create(comm)
        self._ksp.setOperators(self._A)
        self._ksp.setType("preonly")
        self._ksp.getPC().setType("cholesky")
        self._ksp.getPC().setFactorSolverType("mumps")
        self._b = dolfinx.fem.petsc.create_vector(self.V)

        self.edge_nodes = hole[np.max(np.abs(nodes_x[hole]), axis=1) >= g.hole_half_width - 1.5 * g.mesh_size]
        self._edge_owned = self.edge_nodes < self.V.dofmap.index_map.size_local
        self._omega: float = 1.0
        self._last_r: np.ndarray | None = None
        self.fit_ids, self.fit_rows, self.fit_weights = affine_fit(
            nodes_x[self.edge_nodes], lattice, g.band(lattice.spacing), removed)
        self.pad_map = self._locate(lattice, g, removed)

    def _locate(self, lattice: FccLattice, g: CouplingGeometry, removed: np.ndarray) -> AtomCellMap:
        """Map the pad atoms in locally owned cells to their cells and barycentric weights."""
        from dolfinx import geometry

        from .atomistic3d import free_mask

        tdim = self.mesh.topology.dim
        owned = np.arange(self.mesh.topology.index_map(tdim).size_local, dtype=np.int32)
        x_geo = self.mesh.geometry.x
        corners_all = x_geo[self.mesh.geometry.dofmap[owned]].reshape(-1, 3)
        ids, x = lattice.sites(corners_all.min(axis=0) - 1e-9, corners_all.max(axis=0) + 1e-9)
        keep = ~free_mask(x, g.free_half_width) & (np.max(np.abs(x), axis=1) < g.free_half_width + g.pad_width)
        keep &= ~np.isin(ids, removed)
        ids, x = ids[keep], x[keep]
        tree = geometry.bb_tree(self.mesh, tdim, entities=owned)
        hits = geometry.compute_colliding_cells(self.mesh, geometry.compute_collisions_points(tree, x), x)
        found = np.diff(hits.offsets) > 0
        cells = hits.array[hits.offsets[:-1][found]]
        ids, x = ids[found], x[found]
        corners = x_geo[self.mesh.geometry.dofmap[cells]]
        edges = np.swapaxes(corners[:, 1:] - corners[:, :1], 1, 2)
        lam = np.linalg.solve(edges, (x - corners[:, 0])[:, :, None])[:, :, 0] if len(x) else np.zeros((0, 3))
        weights = np.column_stack([1.0 - lam.sum(axis=1), lam])
        return AtomCellMap(ids, weights, self.V.dofmap.list[cells])

    def nodal(self) -> np.ndarray:
        """Nodal displacements ``(num_local_nodes, 3)`` in Å (owned and ghost)."""
        return self.u.x.array.reshape(-1, 3)

    def update_hole_edge(self, atom_u: np.ndarray, omega: float | None) -> float:
        """Move the hole-boundary values towards the fit of the atom displacements ``atom_u``
        ``(m, 3)`` (ordered as :attr:`fit_ids`) by ``ω r`` (``r``: fit minus current values); ``ω``
        fixed, or Aitken's (``None``). Returns ``max |r|`` over all FE ranks, Å. Collective."""
        return self._relax_edge(atom_u, omega)[0]
