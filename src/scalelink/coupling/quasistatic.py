"""Concurrent atomistic–continuum coupling (quasi-static, 2D): LAMMPS inside dolfinx, one ``mpirun``.

Method: overlapping-domain displacement coupling solved by alternating Schwarz iterations.

* The MD group (LAMMPS) owns the free atoms ``|X|∞ < R_a`` and a pad of held atoms
  ``R_a <= |X|∞ < R_a + pad`` (pad ≥ cutoff, so every free atom has a full neighbour shell). The
  pad positions are the FE displacement interpolated at the pad atoms' reference positions; then
  the free atoms are relaxed (conjugate gradients, pad held by ``fix setforce 0 0 0``).
* The FE group (dolfinx) owns the whole square ``|X|∞ <= L`` with the far-field displacement
  ``u = ε X`` on its outer edge and Dirichlet data on every node of the hole ``|X|∞ <= R_h``
  (``R_h < R_a``). Values on the hole's boundary layer are affine least-squares fits of the atom
  displacements around each node; the deeper hole nodes are held at 0 — they belong to elements
  with only constrained nodes, which cannot affect the free solution.
* The handshake is the overlap ``R_h < |X|∞ < R_a + pad``. Iterate until neither the pad
  displacements nor the hole-boundary values change by more than ``tol``.

Why this method: displacement-only transfer needs no Lagrange multipliers or blending weights, the
atomistic and continuum solvers are used unchanged (an energy minimiser and a linear solve whose
factorisation is reused every iteration), and the coupling is free of ghost forces: a uniform
strain is an exact fixed point (patch test) because a Bravais lattice under affine pad positions
relaxes to the affine state, the affine fits are exact for affine fields, and the continuum is the
Cauchy–Born tangent of the same potential (:func:`~scalelink.coupling.atomistic2d.cauchy_born_stiffness`),
so FE and atoms agree to first order in the strain everywhere in the overlap. Its cost is linear
convergence at a rate set by the overlap width; Aitken's dynamic relaxation of the hole-edge
values (default) roughly halves the number of iterations without changing the fixed point.

Units: Å, eV; the 2D stiffness and stresses are per unit area (eV/Å²), FE nodal residuals eV/Å.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from mpi4py import MPI

from scalelink.bridge.errors import ConfigError
from .atomistic2d import AtomisticRegion, cauchy_born_stiffness, relaxed_spacing
from .edge_solve import EdgeDirichletSolve
from .exchange import CouplingLink, idle_barrier, transfer_by_id
from .geometry import CouplingGeometry, affine_displacement
from .lattice import HexLattice, LennardJones2D

__all__ = [
    "AtomElementMap",
    "ContinuumRegion",
    "CouplingGeometry",
    "CouplingResult",
    "affine_displacement",
    "lattice_constants",
    "pad_mismatch",
    "send_band_displacements",
    "solve_coupled",
]

# affine fit at a hole node: all sites within 1.8 a (between the 2nd and 3rd neighbour shells of
# a site, ~12 sites), room for up to 24
_FIT_RADIUS = 1.8
_FIT_SLOTS = 24


def _affine_fit(points: np.ndarray, lattice: HexLattice, band: tuple[float, float],
                removed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights of the affine least-squares fit of atom data at ``points`` ``(n, 2)``.

    Uses every present site with ``|X|∞`` in ``band`` within ``_FIT_RADIUS`` lattice spacings of
    the point. A radius, not "k nearest", keeps the stencil free of distance ties, so a node
    shared by two FE ranks gets the same value on both.

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
    inside = np.isfinite(dist)  # empty slots (distance inf) get weight 0
    nearest = np.where(inside, nearest, 0)
    w = inside.astype(float)[:, :, None]
    design = np.concatenate([np.ones((len(points), slots, 1)), site_x[nearest] - points[:, None, :]], axis=2)
    # row 0 of the (0/1-)weighted pseudo-inverse gives the fitted value at the point
    weights = np.linalg.pinv(w * design)[:, 0, :] * w[:, :, 0]
    ids, inverse = np.unique(site_ids[nearest], return_inverse=True)
    return ids, inverse.reshape(nearest.shape), weights


@dataclass(frozen=True)
class AtomElementMap:
    """Atoms inside the locally owned FE cells, with P1 interpolation weights (built once).

    Attributes:
        ids: atom IDs ``(n,)``.
        cells: local index of the containing cell ``(n,)``.
        weights: barycentric coordinates ``(n, 3)`` of the reference positions in their cells.
        nodes: local (block) DOF indices of the cells' vertices ``(n, 3)``.
    """

    ids: np.ndarray
    cells: np.ndarray
    weights: np.ndarray
    nodes: np.ndarray

    def interpolate(self, nodal: np.ndarray) -> np.ndarray:
        """Field ``(n, 2)`` at the atoms from nodal values ``(num_local_nodes, 2)``."""
        return np.einsum("nk,nkc->nc", self.weights, nodal[self.nodes])


class ContinuumRegion(EdgeDirichletSolve):
    """The FE side: linear (Cauchy–Born) elasticity on ``[-L, L]²`` with P1 triangles.

    Args:
        comm: the FE group's communicator.
        lattice: the lattice naming the atoms.
        stiffness: 2D Mandel stiffness ``(3, 3)`` in eV/Å².
        geometry: the regions.
        strain: far-field Mandel strain ``(3,)``.
        removed: IDs of vacant sites ``(k,)``.

    Attributes:
        mesh: the dolfinx mesh (distributed over ``comm``).
        V: vector P1 space; ``u`` the displacement (Å), ``bc_values`` the Dirichlet data.
        edge_nodes: local (block) DOFs on the hole's boundary layer, fed by the atoms.
        constrained_nodes: local (block) DOFs with Dirichlet data (outer edge and hole), sorted.
        fit_ids: IDs of the atoms whose displacements the hole-edge fits need on this rank.
        fit_rows, fit_weights: ``(len(edge_nodes), slots)``: the value fitted at edge node ``e``
            is ``sum_k fit_weights[e, k] * u[fit_rows[e, k]]``, ``u`` ordered as ``fit_ids``.
        pad_map: the pad atoms in this rank's owned cells (:class:`AtomElementMap`).
    """

    def __init__(self, comm: MPI.Comm, lattice: HexLattice, stiffness: np.ndarray,
                 geometry: CouplingGeometry, strain: np.ndarray, removed: np.ndarray) -> None:
        import dolfinx.fem.petsc
        import ufl
        from dolfinx import fem, mesh
        from petsc4py import PETSc

        g = geometry
        self.stiffness = np.asarray(stiffness, dtype=float)
        grid = g.grid_nodes()
        n = len(grid) - 1
        # a unit-spaced grid mapped node by node onto the (possibly graded) one
        self.mesh = mesh.create_rectangle(comm, [[0.0, 0.0], [float(n), float(n)]], [n, n], mesh.CellType.triangle)
        x = self.mesh.geometry.x
        x[:, :2] = np.interp(x[:, :2], np.arange(n + 1, dtype=float), grid)
        self.V = fem.functionspace(self.mesh, ("Lagrange", 1, (2,)))
        self.u = fem.Function(self.V)
        self.bc_values = fem.Function(self.V)
        c = ufl.as_matrix(np.asarray(stiffness, dtype=float).tolist())
        r2 = 1.0 / np.sqrt(2.0)

        def mandel(w: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
            e = ufl.sym(ufl.grad(w))
            return ufl.as_vector([e[0, 0], e[1, 1], 2.0 * r2 * e[0, 1]])

        du, v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
        self._a = fem.form(ufl.inner(c * mandel(du), mandel(v)) * ufl.dx)
        self._residual = fem.form(ufl.inner(c * mandel(self.u), mandel(v)) * ufl.dx)
        tol = 1e-8 * g.half_width
        outer = fem.locate_dofs_geometrical(
            self.V, lambda x: np.max(np.abs(x[:2]), axis=0) >= g.half_width - tol)
        hole = fem.locate_dofs_geometrical(
            self.V, lambda x: np.max(np.abs(x[:2]), axis=0) <= g.hole_half_width + tol)
        nodes_x = self.V.tabulate_dof_coordinates()[:, :2]
        values = self.bc_values.x.array.reshape(-1, 2)
        values[outer] = affine_displacement(strain, nodes_x[outer])
        dofs = np.unique(np.concatenate([outer, hole]))  # dirichletbc needs sorted DOFs (owned, then ghosts)
        self.constrained_nodes = dofs
        self._bc = fem.dirichletbc(self.bc_values, dofs)
        self._bc_zero = fem.dirichletbc(fem.Function(self.V), dofs)

        self._A = dolfinx.fem.petsc.assemble_matrix(self._a, bcs=[self._bc])
        self._A.assemble()
        self._ksp = PETSc.KSP().create(comm)
        self._ksp.setOperators(self._A)
        self._ksp.setType("preonly")
        self._ksp.getPC().setType("lu")
        self._ksp.getPC().setFactorSolverType("mumps")
        self._b = dolfinx.fem.petsc.create_vector(self.V)

        # hole-boundary nodes: affine least-squares fit of the nearby atoms (exact for affine fields)
        self.edge_nodes = hole[np.max(np.abs(nodes_x[hole]), axis=1) >= g.hole_half_width - 1.5 * g.mesh_size]
        self._edge_owned = self.edge_nodes < self.V.dofmap.index_map.size_local
        self._omega, self._last_r = 1.0, None
        self.fit_ids, self.fit_rows, self.fit_weights = _affine_fit(
            nodes_x[self.edge_nodes], lattice, g.band(lattice.spacing), removed)
        self.pad_map = self._locate(lattice, g, removed)

    def _locate(self, lattice: HexLattice, g: CouplingGeometry, removed: np.ndarray) -> AtomElementMap:
        """Map the pad atoms in locally owned cells to their cells and barycentric weights."""
        from dolfinx import geometry

        tdim = self.mesh.topology.dim
        owned = np.arange(self.mesh.topology.index_map(tdim).size_local, dtype=np.int32)
        x_geo = self.mesh.geometry.x[:, :2]
        cell_geo = self.mesh.geometry.dofmap[owned]
        lo, hi = x_geo[cell_geo].reshape(-1, 2).min(axis=0), x_geo[cell_geo].reshape(-1, 2).max(axis=0)
        ids, x = lattice.sites(lo - 1e-9, hi + 1e-9)
        norm = np.max(np.abs(x), axis=1)
        keep = (norm >= g.free_half_width) & (norm < g.free_half_width + g.pad_width) & ~np.isin(ids, removed)
        ids, x = ids[keep], x[keep]
        points = np.column_stack([x, np.zeros(len(x))])
        tree = geometry.bb_tree(self.mesh, tdim, entities=owned)
        hits = geometry.compute_colliding_cells(self.mesh, geometry.compute_collisions_points(tree, points), points)
        counts = np.diff(hits.offsets)
        found = counts > 0
        cells = hits.array[hits.offsets[:-1][found]]
        ids, x = ids[found], x[found]
        corners = x_geo[self.mesh.geometry.dofmap[cells]]
        edges = np.stack([corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]], axis=2)
        lam = np.linalg.solve(edges, (x - corners[:, 0])[:, :, None])[:, :, 0] if len(x) else np.zeros((0, 2))
        weights = np.column_stack([1.0 - lam.sum(axis=1), lam])
        return AtomElementMap(ids, cells, weights, self.V.dofmap.list[cells])

    def nodal(self) -> np.ndarray:
        """Nodal displacements ``(num_local_nodes, 2)`` in Å (owned and ghost)."""
        return self.u.x.array.reshape(-1, 2)

    def update_hole_edge(self, atom_u: np.ndarray, omega: float | None) -> tuple[float, float]:
        """Move the hole-boundary Dirichlet values towards the fit of the atom displacements.

        With ``r`` the fit minus the current values, the values become ``current + ω r``. When
        ``omega`` is ``None``, ω follows Aitken's rule (Irons–Tuck form) from the last two ``r``:
        ``ω ← −ω (r_old · (r − r_old)) / |r − r_old|²``, which estimates the contraction of the
        Schwarz map along its slowest mode. Collective on the FE communicator.

        Args:
            atom_u: displacements ``(m, 2)`` in Å of the atoms :attr:`fit_ids`.
            omega: fixed relaxation factor, or ``None`` for Aitken's.

        Returns:
            ``(max |r|`` over all FE ranks in Å, ``ω`` used).
        """
        return self._relax_edge(atom_u, omega)


@dataclass
class CouplingResult:
    """Outcome of :func:`solve_coupled`, identical on every rank.

    Attributes:
        converged: the increment fell below ``tol`` (Schwarz), or the minimiser reached its force
            tolerance (condensed).
        increments: max change (Å) of the exchanged displacements at each Schwarz iteration.
        max_atom_force: largest force on a free atom at the end, eV/Å.
        max_fe_residual: largest FE nodal residual on unconstrained DOFs at the end, eV/Å.
        seconds: wall time of the Schwarz loop (or of the condensed minimisation and the final FE solve).
        setup_seconds: wall time of the set-up of :func:`~scalelink.coupling.condensed.solve_condensed`
            (0 for the Schwarz loop, which has none).
        evaluations: force evaluations of the condensed minimisation (0 for the Schwarz loop).
        fe_solves: FE solves with the factorised operator (set-up included).
        pad_mismatch: largest distance (Å) between a pad atom in LAMMPS and the final FE field at its site.
        solve_check: (condensed) largest difference (Å) between the superposed FE field and an FE
            solve with the hole-edge data fitted afresh from the atoms.
    """

    converged: bool
    increments: list[float] = field(default_factory=list)
    max_atom_force: float = 0.0
    max_fe_residual: float = 0.0
    seconds: float = 0.0
    setup_seconds: float = 0.0
    evaluations: int = 0
    fe_solves: int = 0
    pad_mismatch: float = 0.0
    solve_check: float = 0.0


def solve_coupled(link: CouplingLink, geometry: CouplingGeometry, lattice: HexLattice,
                  *, continuum: ContinuumRegion | None, atoms: AtomisticRegion | None,
                  tol: float = 1e-8, max_iterations: int = 100, relaxation: float | None = None) -> CouplingResult:
    """Alternating Schwarz iterations between the FE ranks and the MD ranks.

    Each iteration: FE solve → pad displacements to the MD ranks (by atom ID) → relax the free
    atoms → displacements of the atoms around the hole's edge to the FE ranks (by atom ID) →
    new hole-edge Dirichlet values. Collective on ``link.world``; FE ranks pass ``continuum``,
    MD ranks pass ``atoms``.

    Args:
        link: communicators from :func:`~scalelink.coupling.exchange.split_world`.
        geometry: the regions (the same on every rank).
        lattice: the lattice (the same on every rank).
        continuum: the FE model (FE ranks) or ``None``.
        atoms: the atomistic region (MD ranks) or ``None``.
        tol: stop when the pad displacements change, and the hole-edge values miss their fit,
            by less than this, Å.
        max_iterations: Schwarz iterations at most.
        relaxation: fixed relaxation factor in ``(0, 1]`` of the hole-edge values, or ``None``
            for Aitken's dynamic factor (fewer iterations; the fixed point is the same).

    Returns:
        The :class:`CouplingResult` (the same on every rank).
    """
    if (continuum is None) == link.is_fe or (atoms is None) == link.is_md:
        raise ConfigError(
            f"solve_coupled on a {link.role!r} rank got continuum={continuum is not None}, atoms={atoms is not None}; "
            "FE ranks must pass `continuum` only and MD ranks `atoms` only"
        )
    if relaxation is not None and not 0.0 < relaxation <= 1.0:
        raise ConfigError(f"relaxation={relaxation} is outside (0, 1]; pass a factor such as 0.5, or None for Aitken's")
    band = geometry.band(lattice.spacing)
    result = CouplingResult(converged=False)
    idle_barrier(link.world)  # both groups done with their set-up: time the loop alone
    start = time.perf_counter()
    previous_pad: np.ndarray | None = None
    for _ in range(max_iterations):
        change = 0.0
        if continuum is not None:
            continuum.solve()
            pad_u = continuum.pad_map.interpolate(continuum.nodal())
            if previous_pad is not None:
                change = float(np.max(np.abs(pad_u - previous_pad), initial=0.0))
            previous_pad = pad_u
            transfer_by_id(link, source="fe", width=2, ids=continuum.pad_map.ids, values=pad_u)
            atom_u = transfer_by_id(link, source="md", width=2, wanted=continuum.fit_ids)
            change = max(change, continuum.update_hole_edge(atom_u, relaxation)[0])
        elif atoms is not None:
            pad_ids = atoms.local_ids(prescribed=True)
            atoms.set_displacements(pad_ids, transfer_by_id(link, source="fe", width=2, wanted=pad_ids))
            atoms.relax()
            send_band_displacements(link, atoms, band)
        change = link.world.allreduce(change, op=MPI.MAX)
        result.increments.append(change)
        if change < tol and len(result.increments) > 1:
            result.converged = True
            break
    if continuum is not None:
        continuum.solve()
    result.seconds = time.perf_counter() - start
    result.fe_solves = len(result.increments) + 1
    result.pad_mismatch = pad_mismatch(link, continuum, atoms)
    force = atoms.max_free_force() if atoms is not None else 0.0
    residual = continuum.max_free_residual() if continuum is not None else 0.0
    result.max_atom_force = link.world.allreduce(force, op=MPI.MAX)
    result.max_fe_residual = link.world.allreduce(residual, op=MPI.MAX)
    return result


def send_band_displacements(link: CouplingLink, atoms: AtomisticRegion, band: tuple[float, float]) -> None:
    """MD side of the transfer of the displacements of this rank's atoms with ``|X|∞`` in ``band``
    (Å) to the FE ranks, by atom ID (the FE side asks with ``wanted=continuum.fit_ids``)."""
    ids, u = atoms.displacements()
    norm = np.max(np.abs(atoms.lattice.positions(ids)), axis=1)
    in_band = (norm >= band[0]) & (norm <= band[1])
    transfer_by_id(link, source="md", width=2, ids=ids[in_band], values=u[in_band])


def pad_mismatch(link: CouplingLink, continuum: ContinuumRegion | None, atoms: AtomisticRegion | None) -> float:
    """Largest distance (Å) between a pad atom's displacement in LAMMPS and the FE field at its site.

    Collective on ``link.world``; zero at an exact coupled equilibrium.
    """
    mismatch = 0.0
    if continuum is not None:
        in_lammps = transfer_by_id(link, source="md", width=2, wanted=continuum.pad_map.ids)
        fe = continuum.pad_map.interpolate(continuum.nodal())
        mismatch = float(np.max(np.linalg.norm(in_lammps - fe, axis=1), initial=0.0))
    else:
        assert atoms is not None
        ids, u = atoms.displacements(atoms.local_ids(prescribed=True))
        transfer_by_id(link, source="md", width=2, ids=ids, values=u)
    return float(link.world.allreduce(mismatch, op=MPI.MAX))


def lattice_constants(link: CouplingLink, potential: LennardJones2D) -> tuple[float, np.ndarray]:
    """Zero-stress spacing (Å) and Cauchy–Born stiffness ``(3, 3)`` (eV/Å²), on every rank.

    Collective on ``link.world``: the MD group computes them with LAMMPS, then they are
    broadcast (two numbers and a 3×3 matrix) so both groups use the same continuum law.
    """
    if link.is_md:
        spacing = relaxed_spacing(potential, link.comm)
        constants = (spacing, cauchy_born_stiffness(potential, spacing, link.comm))
    else:
        constants = None
    idle_barrier(link.world)
    spacing, stiffness = link.world.bcast(constants, root=link.md_root)
    return float(spacing), np.asarray(stiffness)
