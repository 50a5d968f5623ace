"""Quasi-static 3D coupling in one relaxation: the linear continuum condensed onto the pad.

The 3D counterpart of :mod:`scalelink.coupling.condensed`. The fixed point of the alternating
Schwarz iteration of :mod:`scalelink.coupling.schwarz3d` (free atoms in equilibrium with the pad
held at the FE displacement; the FE field taking the atoms' affine fits on the hole's edge) is
found in one relaxation of the atoms, because the continuum is linear: with ``g`` the hole-edge
data (``W u_fit``, the fits of the atoms' displacements on the E active edge nodes),

    u_pad = c + P (M g)

where ``M`` (3Q × 3E) gives the FE displacement at the Q *field nodes* (the vertices of the
tetrahedra that hold pad atoms) for unit data on each hole-edge degree of freedom, ``P`` is the
P1 interpolation of those nodes at the pad atoms (4 per atom) and ``c`` the pad displacement of
the far-field data alone. ``fix scalelink/padmap ... field`` applies this before every force
evaluation: each MD rank holds a block of rows of ``M``, every pad atom its offset and its 4
(node, weight) pairs. In 3D the dense row per pad atom of the 2D map would cost
(pad atoms × 3) × 3E per evaluation (361 MB for the void example's 8,314 pad atoms and 1,812
hole-edge degrees of freedom); through the field nodes it costs 3Q × 3E.

``M`` is built on the FE ranks by 3E solves with the factorised operator, in blocks of
right-hand sides (``KSPMatSolve``). The atoms relax by forces only (the map is the continuum's
response, not an energy term): ``fix scalelink/relax`` (Anderson-accelerated steps),
preconditioned by the coarse grid of :mod:`scalelink.coupling.coarse3d`, which carries the
Cauchy–Born law over the whole continuum and so the compliance of the continuum around the
atoms. Afterwards the FE field is solved once from the atoms' fits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from scalelink.bridge.errors import ConfigError, ScaleLinkError
from scalelink.bridge.units import MVV2E

from .atomistic3d import AtomisticRegion3D
from .cauchy_born import Potential
from .coarse import coarse_spacing as default_spacing
from .coarse3d import CoarseGrid3D
from .condensed import active_edge, fit_rows_by_atom
from .continuum3d import ContinuumRegion3D
from .exchange import CouplingLink, idle_barrier, transfer_by_id
from .fcc import FccLattice
from .geometry import CouplingGeometry
from .quasistatic import CouplingResult
from .schwarz3d import record_equilibrium_3d, send_band_3d
from .wave_bar import fcc_force_constants

__all__ = ["CondensedField3D", "CondensedSolveError", "anderson_step", "condense_3d", "raise_on_every_rank",
           "solve_condensed_3d"]

_SLOTS = 4  # P1 tetrahedra: 4 field nodes per pad atom


@dataclass(frozen=True)
class CondensedField3D:
    """This FE rank's part of the continuum condensed onto the atoms (see the module docstring).

    Attributes:
        nodes: number E of active hole-edge nodes, over all FE ranks.
        slots: largest number K of active hole-edge nodes one atom feeds.
        fit_ids, fit_rows: the fit atoms whose rows this rank offers, and the rows ``(m, 2K)``
            (nodes as floats, -1 for an empty slot, then the weights).
        field_nodes: number Q of field nodes over all FE ranks.
        pad_ids: IDs ``(p,)`` of the pad atoms in this rank's cells.
        pad_rows: ``(p, 3 + 8)``: the far-field offset ``c``, the 4 field nodes (as floats), their weights.
        field_first: first row of ``M`` this rank holds (``3 q + c`` for field node q, component c).
        field_rows: ``(m, 3E)`` this rank's rows of ``M`` (those of its owned field nodes).
        solves: FE solves done to build it.
    """

    nodes: int
    slots: int
    fit_ids: np.ndarray
    fit_rows: np.ndarray
    field_nodes: int
    pad_ids: np.ndarray
    pad_rows: np.ndarray
    field_first: int
    field_rows: np.ndarray
    solves: int


def condense_3d(continuum: ContinuumRegion3D, block: int = 96) -> CondensedField3D:
    """Build the condensed continuum (collective on the FE communicator).

    Solves for unit data on each active hole-edge degree of freedom, ``block`` right-hand sides
    at a time, plus once for the far field; the Dirichlet data of ``continuum`` are left as they were.
    """
    import dolfinx.fem.petsc
    import scipy.sparse as sp
    from petsc4py import PETSc

    comm = continuum.mesh.comm
    index_map = continuum.V.dofmap.index_map
    owned_nodes = index_map.size_local
    start_node = index_map.local_range[0]
    positions, first, nodes = active_edge(continuum)
    edge_global = np.concatenate(comm.allgather(
        index_map.local_to_global(continuum.edge_nodes[positions].astype(np.int32)).astype(np.int64)))
    # field nodes: the vertices of the cells holding pad atoms, numbered by their global index
    pad = continuum.pad_map
    pad_global = index_map.local_to_global(pad.nodes.ravel().astype(np.int32)).astype(np.int64).reshape(pad.nodes.shape)
    field_global = np.unique(np.concatenate(comm.allgather(np.unique(pad_global))))
    owned_field = field_global[(field_global >= start_node) & (field_global < start_node + owned_nodes)]
    field_first = 3 * int(np.searchsorted(field_global, start_node))
    field_local_dofs = (3 * (owned_field - start_node)[:, None] + np.arange(3)).ravel()

    # right-hand sides of unit data on the edge DOFs: -A[:, j] on the free rows, 1 on row j
    a0 = dolfinx.fem.petsc.assemble_matrix(continuum._a)
    a0.assemble()
    indptr, indices, data = a0.getValuesCSR()
    rows_local = 3 * owned_nodes
    csr = sp.csr_matrix((data, indices, indptr), shape=(rows_local, 3 * index_map.size_global))
    a0.destroy()
    constrained = continuum.constrained_nodes[continuum.constrained_nodes < owned_nodes]
    constrained_dofs = (3 * constrained[:, None] + np.arange(3)).ravel()
    edge_dofs = (3 * edge_global[:, None] + np.arange(3)).ravel()
    csc = csr.tocsc()
    field_rows = np.empty((len(field_local_dofs), len(edge_dofs)))
    ksp = continuum._ksp
    for lo in range(0, len(edge_dofs), block):
        cols = edge_dofs[lo:lo + block]
        rhs = -csc[:, cols].toarray()
        rhs[constrained_dofs] = 0.0
        mine = (cols >= 3 * start_node) & (cols < 3 * (start_node + owned_nodes))
        rhs[cols[mine] - 3 * start_node, np.flatnonzero(mine)] = 1.0
        b = PETSc.Mat().createDense([(rows_local, PETSc.DECIDE), (PETSc.DECIDE, len(cols))], comm=comm)
        b.setUp()
        b.getDenseArray()[:] = rhs
        b.assemble()
        x = b.duplicate()
        ksp.matSolve(b, x)
        field_rows[:, lo:lo + len(cols)] = x.getDenseArray()[field_local_dofs]
        b.destroy()
        x.destroy()

    # the far field alone: the outer data, zero on the hole's edge
    values = continuum.bc_values.x.array.reshape(-1, 3)
    saved = continuum.bc_values.x.array.copy()
    values[continuum.edge_nodes] = 0.0
    continuum.solve()
    offset = pad.interpolate(continuum.nodal())
    continuum.bc_values.x.array[:] = saved

    slots, fit_ids, fit_rows = fit_rows_by_atom(comm, continuum, positions, first)
    pad_nodes = np.searchsorted(field_global, pad_global).astype(float)
    pad_rows = np.concatenate([offset, pad_nodes, pad.weights], axis=1)
    return CondensedField3D(nodes, slots, fit_ids, fit_rows, len(field_global), pad.ids, pad_rows, field_first,
                            np.ascontiguousarray(field_rows), len(edge_dofs) + 1)


def anderson_step(potential: Potential, constant: float, comm: MPI.Comm) -> float:
    """The plain step (Å²/eV) of the relaxation: 1.9 over the largest force constant of the fcc
    crystal (``m ω_max²``, from LAMMPS force constants: six force evaluations of a periodic
    cell), just inside the plain iteration's stability limit of 2 over it. Collective on ``comm``."""
    constants = fcc_force_constants(potential, constant, comm)
    top = constants.max_frequency(constant)
    return float(1.9 / (MVV2E * potential.mass * top**2))


def _hand_over(link: CouplingLink, geometry: CouplingGeometry, lattice: FccLattice, band: tuple[float, float],
               continuum: ContinuumRegion3D | None, atoms: AtomisticRegion3D | None, *,
               coarse_spacing: float | None, precondition: bool) -> CondensedField3D | None:
    """Set-up: condense the continuum (FE ranks), hand every MD rank its rows and blocks, and
    give the MD ranks the coarse grid. Returns the condensed continuum on FE ranks."""
    condensed, failure = None, ""
    if continuum is not None:
        try:
            condensed = condense_3d(continuum)
        except Exception as err:  # noqa: BLE001  (re-raised on every rank)
            failure = f"{type(err).__name__}: {err}"
    raise_on_every_rank(link, failure, "building the condensed continuum on an FE rank")
    shape = (np.array([condensed.nodes, condensed.slots, condensed.field_nodes], dtype=np.int64)
             if condensed is not None else np.zeros(3, dtype=np.int64))
    idle_barrier(link.world)
    link.world.Bcast(shape, root=link.fe_root)
    nodes, slots, field_nodes = (int(v) for v in shape)
    stiffness = link.world.bcast(continuum.stiffness if link.world.rank == link.fe_root else None, root=link.fe_root)
    width = 3 + 2 * _SLOTS

    # M: gathered on the FE root, then each MD rank gets its block of rows (node-aligned)
    bounds = 3 * np.linspace(0, field_nodes, link.num_md + 1).astype(int)
    if condensed is not None:
        transfer_by_id(link, source="fe", width=2 * slots, ids=condensed.fit_ids, values=condensed.fit_rows)
        transfer_by_id(link, source="fe", width=width, ids=condensed.pad_ids, values=condensed.pad_rows)
        blocks = link.comm.gather(condensed.field_rows, root=0)
        if link.comm.rank == 0:
            matrix = np.concatenate(blocks, axis=0)
            for r in range(link.num_md):
                link.world.Send(np.ascontiguousarray(matrix[bounds[r]:bounds[r + 1]]), dest=link.num_fe + r, tag=71)
        return condensed
    assert atoms is not None
    ids = atoms.local_ids(prescribed=False)
    norm = np.max(np.abs(lattice.positions(ids)), axis=1)
    fit_ids = ids[(norm >= band[0]) & (norm <= band[1])]
    empty = np.concatenate([np.full(slots, -1.0), np.zeros(slots)])
    fit_rows = transfer_by_id(link, source="fe", width=2 * slots, wanted=fit_ids, default=empty)
    pad_ids = atoms.local_ids(prescribed=True)
    pad_rows = transfer_by_id(link, source="fe", width=width, wanted=pad_ids)
    r = link.comm.rank
    rows = np.empty((bounds[r + 1] - bounds[r], 3 * nodes))
    link.world.Recv(rows, source=link.fe_root, tag=71)
    atoms.follow_field_map(nodes, field_nodes, (fit_ids, fit_rows), (pad_ids, pad_rows), int(bounds[r]), rows)
    grid = None
    if precondition:
        spacing = coarse_spacing or default_spacing(lattice.spacing, geometry.free_half_width, max_dofs=1536, dim=3)
        grid = CoarseGrid3D.for_coupling(geometry, stiffness, spacing)
    atoms.precondition(grid)
    return None


class CondensedSolveError(ScaleLinkError):
    """A step of :func:`solve_condensed_3d` failed on some rank; raised on every rank."""


def raise_on_every_rank(link: CouplingLink, failure: str, what: str) -> None:
    """Raise :class:`CondensedSolveError` on every rank of ``link.world`` if any rank passes a
    non-empty ``failure`` (collective; the ranks that arrive first wait idle)."""
    idle_barrier(link.world, poll_seconds=1e-4)
    failures = [f for f in link.world.allgather(failure) if f]
    if failures:
        raise CondensedSolveError(f"solve_condensed_3d: {what} failed: {failures[0]}")


def solve_condensed_3d(link: CouplingLink, geometry: CouplingGeometry, lattice: FccLattice, *,
                       continuum: ContinuumRegion3D | None, atoms: AtomisticRegion3D | None,
                       max_iterations: int = 20000, step: float | None = None, memory: int = 40,
                       coarse_spacing: float | None = None, precondition: bool = True) -> CouplingResult:
    """The coupled equilibrium of :func:`~scalelink.coupling.schwarz3d.solve_coupled_3d` in one
    relaxation of the atoms (collective on ``link.world``).

    FE ranks pass ``continuum``, MD ranks ``atoms``. The set-up (:func:`condense_3d`, handing the
    rows over, the coarse grid) is timed apart in ``setup_seconds``; ``seconds`` is the
    relaxation plus the FE solve from the atoms' fits. The atoms start where they are (for
    instance on the far-field affine field). ``pad_mismatch`` then measures how far the pad
    atoms, placed by the map, are from the solved FE field: zero up to round-off when the map is
    the continuum's response.

    Args:
        link: communicators from :func:`~scalelink.coupling.exchange.split_world`.
        geometry: the regions (cubes; the same on every rank).
        lattice: the lattice (the same on every rank).
        continuum: the FE model (FE ranks) or ``None``.
        atoms: the atomistic region (MD ranks) or ``None``; it stops at its ``force_tol``.
        max_iterations: relaxation steps (force evaluations) at most.
        step: the plain step of the Anderson iteration, Å²/eV (stable below 2 over the largest
            force constant of the lattice); ``None``: :func:`anderson_step` of the atoms' potential
            (0.12 for Mishin's copper), computed in the set-up.
        memory: Anderson's number of past steps.
        coarse_spacing: spacing (Å) of the coarse grid; ``None`` picks one with
            :func:`~scalelink.coupling.coarse.coarse_spacing`.
        precondition: ``False`` relaxes by plain Anderson steps.

    Raises:
        CondensedSolveError: (on every rank of both groups) the set-up or the relaxation failed on
            some rank.
    """
    if (continuum is None) == link.is_fe or (atoms is None) == link.is_md:
        raise ConfigError(
            f"solve_condensed_3d on a {link.role!r} rank got continuum={continuum is not None}, "
            f"atoms={atoms is not None}; FE ranks must pass `continuum` only and MD ranks `atoms` only")
    if coarse_spacing is not None and not coarse_spacing >= lattice.spacing:
        raise ConfigError(f"coarse_spacing={coarse_spacing} Å; expected at least one nearest-neighbour distance "
                          f"({lattice.spacing:.4f} Å), or None to choose one")
    if step is not None and not step > 0.0:
        raise ConfigError(f"step={step} Å²/eV; expected a positive step (below 2 over the largest force constant)")
    band = geometry.band(lattice.spacing)
    idle_barrier(link.world)
    start = time.perf_counter()
    failure = ""
    try:
        condensed = _hand_over(link, geometry, lattice, band, continuum, atoms, coarse_spacing=coarse_spacing,
                               precondition=precondition)
        if atoms is not None and step is None:
            step = anderson_step(atoms.potential, lattice.constant, atoms.comm)
    except CondensedSolveError:
        raise  # already on every rank
    except Exception as err:  # noqa: BLE001  (an MD rank's set-up: re-raised on every rank below)
        if atoms is None:
            raise
        condensed, failure = None, f"{type(err).__name__}: {err}"
    raise_on_every_rank(link, failure, "the set-up on an MD rank")
    setup = time.perf_counter() - start

    result = CouplingResult(converged=False)
    start = time.perf_counter()
    failure = ""
    if atoms is not None:
        try:
            result.evaluations = atoms.relax_anderson(max_iterations, step=step, memory=memory)
        except Exception as err:  # noqa: BLE001  (re-raised on every rank below)
            failure = f"{type(err).__name__}: {err}"
    # the FE ranks sleep while the atoms relax
    raise_on_every_rank(link, failure, "the atomistic relaxation on an MD rank")
    # the FE field from the atoms' fits: one solve
    if continuum is not None:
        continuum.update_hole_edge(transfer_by_id(link, source="md", width=3, wanted=continuum.fit_ids), 1.0)
        continuum.solve()
    else:
        assert atoms is not None
        send_band_3d(link, atoms, band)
    result.seconds = link.world.allreduce(time.perf_counter() - start, op=MPI.MAX)
    result.setup_seconds = link.world.allreduce(setup, op=MPI.MAX)
    result.fe_solves = link.world.allreduce(condensed.solves + 1 if condensed is not None else 0, op=MPI.MAX)
    result.evaluations = link.world.allreduce(result.evaluations, op=MPI.MAX)
    record_equilibrium_3d(link, result, continuum, atoms)
    tol = link.world.bcast(atoms.force_tol if atoms is not None else None, root=link.md_root)
    result.converged = link.world.bcast(atoms.last_fnorm if atoms is not None else None, root=link.md_root) <= tol
    return result

