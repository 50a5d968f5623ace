"""A crack front in a LAMMPS region inside a dolfinx continuum, loaded by the anisotropic K-field.

The atoms are a :class:`~scalelink.coupling.crack.KTest` square prism (``|x|, |y| < R_a`` free, a
held ring of one potential reach around them, periodic along the front ``z``) run by the MD ranks.
The continuum, on the FE ranks, is the square ``|x|, |y| ≤ L`` in generalised plane strain: P1
triangles carrying all three displacement components as functions of ``(x, y)`` (``ε_zz = 0``),
with the Cauchy–Born stiffness of the same potential in the crack frame. This is the exact
continuum of a straight front periodic along ``z``: its fields do not depend on ``z``, so
tetrahedra through the thickness would add unknowns and change nothing. The crack is a slit of
the mesh: the nodes on ``y = 0, x < 0`` are doubled, one copy for the cells above and one for
those below. The outer boundary takes the K-field of :class:`~scalelink.coupling.kfield.CrackTipField`
(each copy of a slit node its own face's value).

Each load step is solved by alternating Schwarz iterations as in :mod:`~scalelink.coupling.schwarz3d`:
the FE problem is solved with the hole ``|x|, |y| ≤ R_h`` taking Dirichlet values from the atoms →
the ring atoms take the FE displacement at their ``(x, y)`` → the free atoms relax → every node on
the hole's edge moves towards the affine fit (in ``x, y``, over all ``z``) of the displacements of
the atoms within ``fit_radius`` of it, on its own side of the crack behind the tip, by Aitken's
factor (near the load at which the tip jumps the plain iteration contracts slowly). A uniform strain and the
linear K-field are exact fixed points of the continuum side; the K-field is not one of the atoms
(the tip region is non-linear), which is the point of the coupling.

Units: Å, eV, ``K`` in eV/Å^2.5.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from mpi4py import MPI

from scalelink.bridge.errors import ConfigError, ScaleLinkError

from .cauchy_born import Potential
from .crack import KTest, KTestStep
from .edge_solve import EdgeDirichletSolve
from .exchange import CouplingLink, idle_barrier, transfer_by_id
from .kfield import CrackTipField
from .md_mesh import lu_solver

__all__ = ["CoupledKStep", "CrackContinuum", "CrackGeometry", "build_crack_coupling", "solve_crack_step"]


@dataclass(frozen=True)
class CrackGeometry:
    """Regions of the coupled crack (Å; squares in ``x, y`` centred on the tip).

    Attributes:
        half_width: continuum half-width L (K-field prescribed at ``max(|x|, |y|) = L``).
        free_half_width: free atoms ``max(|x|, |y|) < R_a``.
        ring: width of the held ring of atoms outside R_a (at least the potential's reach).
        hole_half_width: nodes with ``max(|x|, |y|) ≤ R_h`` take the atoms' displacements.
        mesh_size: element size h over the atoms.
        growth: size ratio of neighbouring elements outside them.
        fit_radius: atoms within this distance (in ``x, y``) of a hole-edge node feed its fit.
    """

    half_width: float
    free_half_width: float
    ring: float
    hole_half_width: float
    mesh_size: float = 2.0
    growth: float = 1.2
    fit_radius: float = 4.0

    def validate(self) -> None:
        if not 0.0 < self.hole_half_width + self.fit_radius < self.free_half_width:
            raise ConfigError(
                f"the hole edge and its fits reach {self.hole_half_width + self.fit_radius:.2f} Å, beyond the free atoms "
                f"(R_a = {self.free_half_width} Å); use hole_half_width + fit_radius < free_half_width")
        if not self.free_half_width + self.ring + self.mesh_size < self.half_width:
            raise ConfigError(
                f"the atoms reach {self.free_half_width + self.ring:.2f} Å, not inside the continuum (L = {self.half_width} Å "
                "less one element); enlarge half_width")
        if not 1.0 <= self.growth <= 2.0 or not self.mesh_size > 0.0:
            raise ConfigError(f"mesh_size={self.mesh_size}, growth={self.growth}; expected h > 0 and 1 <= growth <= 2")

    def grid(self) -> np.ndarray:
        """Node coordinates ``(k,)`` along x (and y), symmetric about 0, fine over the atoms."""
        h, half = self.mesh_size, self.half_width
        n_fine = int(np.ceil((self.free_half_width + self.ring + h) / h))
        steps = [h] * n_fine
        while sum(steps) < half:
            steps.append(steps[-1] * self.growth)
        nodes = np.cumsum([0.0, *steps])
        nodes = nodes[nodes < half - 0.5 * steps[-1]]
        positive = np.append(nodes, half)
        return np.concatenate([-positive[:0:-1], positive])


def _slit_mesh(comm: MPI.Comm, grid: np.ndarray):  # noqa: ANN202  (dolfinx Mesh)
    """Triangles on the tensor grid, the nodes on ``y = 0, x < 0`` doubled for the cells above.
    Returns the mesh and the number of input nodes before the copies (copies have larger indices)."""
    import basix.ufl
    import ufl
    from dolfinx import mesh as dmesh

    n = grid.size
    nodes = np.zeros((0, 2))
    cells = np.zeros((0, 3), dtype=np.int64)
    count = n * n
    if comm.rank == 0:
        gx, gy = np.meshgrid(grid, grid, indexing="ij")
        nodes = np.column_stack([gx.ravel(), gy.ravel()])
        index = np.arange(count).reshape(n, n)
        a, b = index[:-1, :-1].ravel(), index[1:, :-1].ravel()
        c, d = index[1:, 1:].ravel(), index[:-1, 1:].ravel()
        # split each square along the diagonal that points away from the origin, so no triangle spans the tip badly
        cells = np.vstack([np.column_stack([a, b, c]), np.column_stack([a, c, d])])
        on_slit = np.flatnonzero((np.abs(nodes[:, 1]) < 1e-9) & (nodes[:, 0] < -1e-9))
        copy = np.full(count, -1, dtype=np.int64)
        copy[on_slit] = count + np.arange(on_slit.size)
        above = nodes[cells].mean(axis=1)[:, 1] > 0.0
        upper = cells[above]
        moved = copy[upper] >= 0
        upper[moved] = copy[upper][moved]
        cells[above] = upper
        nodes = np.vstack([nodes, nodes[on_slit]])
    element = ufl.Mesh(basix.ufl.element("Lagrange", "triangle", 1, shape=(2,)))
    return dmesh.create_mesh(comm, cells, element, nodes), comm.bcast(count, root=0)


class CrackContinuum(EdgeDirichletSolve):
    """The FE side (see the module docstring). Collective on ``comm`` (the FE ranks).

    Args:
        comm: the FE group's communicator.
        stiffness: Cauchy–Born Mandel stiffness ``(6, 6)`` in the crack frame, eV/Å³.
        geometry: the regions.
        ring_ids, ring_xy: LAMMPS IDs ``(r,)`` and reference ``(x, y)`` ``(r, 2)`` of all ring atoms.
        fit_ids, fit_xy: IDs and reference ``(x, y)`` of the atoms that may feed hole-edge fits.
    """

    def __init__(self, comm: MPI.Comm, stiffness: np.ndarray, geometry: CrackGeometry, ring_ids: np.ndarray,
                 ring_xy: np.ndarray, fit_ids: np.ndarray, fit_xy: np.ndarray) -> None:
        import dolfinx.fem.petsc
        import ufl
        from dolfinx import fem

        geometry.validate()
        self.geometry = g = geometry
        self.field = CrackTipField(stiffness)
        self.mesh, count = _slit_mesh(comm, g.grid())
        self.V = fem.functionspace(self.mesh, ("Lagrange", 1, (3,)))
        self.u = fem.Function(self.V)
        self.bc_values = fem.Function(self.V)
        c = ufl.as_matrix(np.asarray(stiffness, dtype=float).tolist())
        r2 = float(np.sqrt(2.0))

        def mandel(w):  # noqa: ANN001, ANN202
            gr = ufl.grad(w)  # (3, 2): ∂u_i/∂x, ∂u_i/∂y
            return ufl.as_vector([gr[0, 0], gr[1, 1], 0.0, r2 * 0.5 * gr[2, 1], r2 * 0.5 * gr[2, 0],
                                  r2 * 0.5 * (gr[0, 1] + gr[1, 0])])

        du, v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
        self._a = fem.form(ufl.inner(c * mandel(du), mandel(v)) * ufl.dx)
        self._residual = fem.form(ufl.inner(c * mandel(self.u), mandel(v)) * ufl.dx)
        # each P1 dof's node, and which face a slit node belongs to (+1 the copy above, −1 below, 0 elsewhere)
        num_cells = self.mesh.topology.index_map(2).size_local + self.mesh.topology.index_map(2).num_ghosts
        geo = self.mesh.geometry.dofmaps[0][:num_cells]
        dofs = self.V.dofmap.list[:num_cells]
        num_nodes = self.V.dofmap.index_map.size_local + self.V.dofmap.index_map.num_ghosts
        node_of = np.empty(num_nodes, dtype=np.int64)
        node_of[dofs.ravel()] = geo.ravel()
        self.xy = self.mesh.geometry.x[node_of, :2]
        original = np.asarray(self.mesh.geometry.input_global_indices, dtype=np.int64)[node_of]
        on_slit = (np.abs(self.xy[:, 1]) < 1e-9) & (self.xy[:, 0] < -1e-9)
        self.side = np.where(on_slit, np.where(original >= count, 1, -1), 0)
        norm = np.max(np.abs(self.xy), axis=1)
        tol = 1e-8 * g.half_width
        self.outer = np.flatnonzero(norm >= g.half_width - tol).astype(np.int32)
        hole = np.flatnonzero(norm <= g.hole_half_width + tol).astype(np.int32)
        self.constrained = np.unique(np.concatenate([self.outer, hole])).astype(np.int32)
        self._bc = fem.dirichletbc(self.bc_values, self.constrained)
        self._bc_zero = fem.dirichletbc(fem.Function(self.V), self.constrained)
        self._unit_outer = self.field.displacement(self._nudged(self.outer), [0.0, 1.0, 0.0])
        self._A = dolfinx.fem.petsc.assemble_matrix(self._a, bcs=[self._bc])
        self._A.assemble()
        self._ksp = lu_solver(self._A)
        self._b = dolfinx.fem.petsc.create_vector(self.V)
        # hole-edge nodes (within 1.5 h inside the hole's boundary) and their affine fits
        self.edge = self.edge_nodes = hole[norm[hole] >= g.hole_half_width - 1.5 * g.mesh_size]
        self._edge_owned = self.edge < self.V.dofmap.index_map.size_local
        self._omega: float = 1.0
        self._last_r: np.ndarray | None = None
        self.fit_ids, self.fit_rows, self.fit_weights = self._fits(np.asarray(fit_ids), np.asarray(fit_xy, dtype=float))
        self.ring_ids, self.ring_cells, self.ring_weights = self._locate(np.asarray(ring_ids), np.asarray(ring_xy, dtype=float))

    def _nudged(self, nodes: np.ndarray) -> np.ndarray:
        """Node positions, slit copies moved off the plane to their own face (for the K-field's branch)."""
        xy = self.xy[nodes].copy()
        xy[:, 1] += self.side[nodes] * 1e-9 * self.geometry.half_width
        return xy

    def _fits(self, ids: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For every edge node, the atoms within ``fit_radius`` on its side of the crack and the
        weights whose sum over their displacements is the affine fit's value at the node."""
        from scipy.spatial import cKDTree

        g = self.geometry
        tree = cKDTree(xy)
        rows: list[np.ndarray] = []
        weights: list[np.ndarray] = []
        for node in self.edge:
            p = self.xy[node]
            near = np.asarray(tree.query_ball_point(p, g.fit_radius), dtype=np.int64)
            side = self.side[node] if self.side[node] != 0 else np.sign(p[1])
            if p[0] < g.fit_radius and abs(p[1]) < g.fit_radius:
                # behind (or at) the tip the faces are apart: fit from this node's side only
                if p[0] < 0.0 or side != 0:
                    near = near[np.sign(xy[near, 1]) == (side if side != 0 else 1)]
            if near.size < 4:
                raise ConfigError(f"hole-edge node at {p.round(3).tolist()} has {near.size} atoms within fit_radius="
                                  f"{g.fit_radius} Å on its side of the crack; enlarge fit_radius")
            m = np.column_stack([np.ones(near.size), xy[near] - p])
            w = np.linalg.pinv(m)[0]
            rows.append(near)
            weights.append(w)
        width = max((r.size for r in rows), default=1)
        fit_rows = np.zeros((len(rows), width), dtype=np.int64)
        fit_weights = np.zeros((len(rows), width))
        for i, (r, w) in enumerate(zip(rows, weights)):
            fit_rows[i, :r.size], fit_weights[i, :r.size] = r, w
        used = np.unique(fit_rows[fit_weights != 0.0]) if rows else np.zeros(0, dtype=np.int64)
        remap = np.zeros(ids.size, dtype=np.int64)
        remap[used] = np.arange(used.size)
        return ids[used], remap[fit_rows], fit_weights

    def _locate(self, ids: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ring atoms in this rank's owned cells: their IDs, the cells' dofs and barycentric weights."""
        from dolfinx import geometry

        owned = np.arange(self.mesh.topology.index_map(2).size_local, dtype=np.int32)
        points = np.column_stack([xy, np.zeros(len(xy))])
        tree = geometry.bb_tree(self.mesh, 2, entities=owned)
        hits = geometry.compute_colliding_cells(self.mesh, geometry.compute_collisions_points(tree, points), points)
        found = np.diff(hits.offsets) > 0
        cells = hits.array[hits.offsets[:-1][found]]
        corners = self.mesh.geometry.x[self.mesh.geometry.dofmaps[0][cells]][:, :, :2]
        edges = np.swapaxes(corners[:, 1:] - corners[:, :1], 1, 2)
        lam = np.linalg.solve(edges, (xy[found] - corners[:, 0])[:, :, None])[:, :, 0] if found.any() else np.zeros((0, 2))
        return ids[found], self.V.dofmap.list[cells], np.column_stack([1.0 - lam.sum(axis=1), lam])

    # ---------------------------------------------------------------- one Schwarz half-step

    def set_load(self, k: float) -> None:
        """The K-field of mode-I ``k`` on the outer boundary."""
        values = self.bc_values.x.array.reshape(-1, 3)
        values[self.outer] = k * self._unit_outer
        self._omega, self._last_r = 1.0, None  # Aitken's sequence starts again at every load step

    def ring_displacements(self) -> np.ndarray:
        """FE displacements ``(r_local, 3)`` at this rank's ring atoms (:attr:`ring_ids`)."""
        nodal = self.u.x.array.reshape(-1, 3)
        return np.einsum("nk,nkc->nc", self.ring_weights, nodal[self.ring_cells])

    def update_hole_edge(self, atom_u: np.ndarray, omega: float | None = None) -> float:
        """Move the edge values towards the fits of ``atom_u`` (rows of :attr:`fit_ids`) by ``ω r``
        (``r``: fit minus current value; ``ω`` fixed, or Aitken's when ``None``); returns the
        largest ``|r|`` over all FE ranks, Å."""
        return self._relax_edge(atom_u, omega)[0]


def build_crack_coupling(link: CouplingLink, potential: Potential, lattice_constant: float, stiffness: np.ndarray,
                         orientation: object, geometry: CrackGeometry, *, periods: int = 3,
                         **ktest: object) -> tuple[CrackContinuum | None, KTest | None]:
    """The two sides of a coupled crack: the MD ranks build the atoms (a square
    :class:`~scalelink.coupling.crack.KTest` of half-width ``R_a + ring``, ring held), then hand the
    FE ranks the reference ``(x, y)`` of the ring atoms and of the atoms around the hole's edge,
    from which they build the :class:`CrackContinuum`. Collective on ``link.world``; returns
    ``(continuum, None)`` on FE ranks and ``(None, atoms)`` on MD ranks.

    Raises:
        ConfigError: (on every rank) the geometry or the atoms' set-up is invalid.
    """
    geometry.validate()
    atoms, problem, shared = None, "", None
    if link.is_md:
        try:
            atoms = KTest(link.comm, potential, lattice_constant, stiffness, orientation,
                          geometry.free_half_width + geometry.ring, periods=periods, ring=geometry.ring,
                          shape="square", **ktest)  # type: ignore[arg-type]
            reach = geometry.fit_radius + 2.0 * geometry.mesh_size
            shared = (*atoms.ring_sites(), *atoms.free_sites(geometry.hole_half_width - reach, geometry.hole_half_width + reach))
        except ConfigError as err:
            problem = str(err)
    idle_barrier(link.world)
    problem = link.world.bcast(problem if link.is_md and link.comm.rank == 0 else None, root=link.md_root)
    if problem:
        raise ConfigError(problem)
    shared = link.world.bcast(shared if link.is_md and link.comm.rank == 0 else None, root=link.md_root)
    continuum, problem = None, ""
    if link.is_fe:
        try:
            continuum = CrackContinuum(link.comm, stiffness, geometry, *shared)
        except ConfigError as err:
            problem = str(err)
    # an FE rank that refuses the set-up must stop the MD ranks too, not leave them waiting
    problems = [p for p in link.world.allgather(problem) if p]
    if problems:
        if atoms is not None:
            atoms.close()
        raise ConfigError(problems[0])
    return continuum, atoms


@dataclass
class CoupledKStep:
    """One load step of the coupled K-test: the atoms' classification and the Schwarz history."""

    step: KTestStep
    iterations: int = 0
    evaluations: int = 0
    increments: list[float] = field(default_factory=list)
    converged: bool = False
    seconds: float = 0.0


def solve_crack_step(link: CouplingLink, k: float, *, continuum: CrackContinuum | None, atoms: KTest | None,
                     tol: float = 1e-4, max_iterations: int = 200) -> CoupledKStep:
    """Load the coupled crack to ``k`` (eV/Å^2.5) and iterate to the coupled equilibrium.

    Collective on ``link.world``; FE ranks pass ``continuum``, MD ranks ``atoms``. The free atoms
    are first moved by the K-field's increment (as in the fully atomistic K-test), then the FE and
    MD sides alternate until the ring displacements and the hole-edge values change by less than
    ``tol`` Å. Returns the same :class:`CoupledKStep` on every rank.

    Raises:
        ScaleLinkError: (on every rank) the Schwarz iterations did not converge, or a relaxation failed.
    """
    if (continuum is None) == link.is_fe or (atoms is None) == link.is_md:
        raise ConfigError("solve_crack_step: FE ranks pass `continuum` only, MD ranks `atoms` only")
    idle_barrier(link.world)
    start = time.perf_counter()
    result = CoupledKStep(step=KTestStep(k, 0.0, 0.0, 0, 0, 0.0))
    if continuum is not None:
        continuum.set_load(k)
    else:
        assert atoms is not None
        atoms.advance_field(k, ring=False)
    previous: tuple[np.ndarray, np.ndarray] | None = None
    for _ in range(max_iterations):
        change, failure = 0.0, ""
        if continuum is not None:
            continuum.solve()
            ring_u = continuum.ring_displacements()
            transfer_by_id(link, source="fe", width=3, ids=continuum.ring_ids, values=ring_u)
            atom_u = transfer_by_id(link, source="md", width=3, wanted=continuum.fit_ids)
            change = continuum.update_hole_edge(atom_u)
        else:
            assert atoms is not None
            ring_ids = atoms.local_ring_ids()
            ring_u = transfer_by_id(link, source="fe", width=3, wanted=ring_ids)
            order = np.argsort(ring_ids)
            current = (ring_ids[order], ring_u[order])
            if previous is not None:
                # ring atoms that changed MD rank since the last exchange: one more iteration
                same = np.array_equal(previous[0], current[0])
                change = float(np.max(np.abs(current[1] - previous[1]), initial=0.0)) if same else np.inf
            previous = current
            try:
                atoms.set_ring(ring_ids, ring_u)
                result.evaluations += atoms.relax()
            except Exception as err:  # noqa: BLE001  (re-raised on every rank below)
                failure = f"{type(err).__name__}: {err}"
            ids, u = atoms.displacements()
            transfer_by_id(link, source="md", width=3, ids=ids, values=u)
        change = link.world.allreduce(change, op=MPI.MAX)
        failures = [f for f in link.world.allgather(failure) if f]
        if failures:
            raise ScaleLinkError(f"solve_crack_step: the atomistic relaxation failed on an MD rank: {failures[0]}")
        result.increments.append(change)
        result.iterations += 1
        if change < tol and result.iterations > 1:
            result.converged = True
            break
    if not result.converged:
        raise ScaleLinkError(f"solve_crack_step at K = {k}: no convergence in {max_iterations} Schwarz iterations "
                             f"(last changes {result.increments[-3:]} Å); lower K's step or raise max_iterations")
    step = atoms.record(k, result.evaluations) if atoms is not None else None
    result.step = link.world.bcast(step, root=link.md_root)
    result.seconds = time.perf_counter() - start
    result.evaluations = link.world.allreduce(result.evaluations if link.is_md else 0, op=MPI.MAX)
    return result
