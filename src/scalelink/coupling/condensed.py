"""Quasi-static coupling in one LAMMPS minimisation: the linear continuum condensed onto the pad.

The alternating Schwarz loop of :mod:`scalelink.coupling.quasistatic` relaxes the atoms once per
iteration. Its fixed point is: the free atoms are in equilibrium with the pad held at the FE
displacement, and the FE field takes, on the hole's edge, the affine fits of the atoms'
displacements. The continuum is linear, so the pad displacement at that fixed point is an affine
function of the displacements of the atoms that feed the fits::

    u_pad = c + P S (W u_fit)

with ``W`` the fit weights (atoms → hole-edge nodes), ``S`` the FE solution for unit data on each
hole-edge node (everything else held at zero), ``P`` the P1 interpolation at the pad atoms and
``c`` the pad displacement for the far-field data alone. This module computes those pieces on the
FE ranks (one FE solve per hole-edge degree of freedom, reusing the factorisation) and hands them,
by atom ID, to the MD ranks, where ``fix scalelink/padmap`` moves the pad atoms by this map before
every force evaluation of one LAMMPS minimisation. The minimiser then finds the Schwarz fixed
point directly: same answer, one minimisation instead of one per iteration, and the FE ranks
are idle meanwhile. Afterwards the FE field is solved once from the atoms' final fits.

Each MD rank holds only the rows of its own atoms (custom per-atom properties that migrate with
them); the map's columns are the E active hole-edge nodes (those sharing an element with an
unconstrained node: the others cannot affect the FE solution).

The pad forces in the minimisation are not the gradient of an energy (the map is not symmetric:
it is the continuum's response, not an energy term), so the relaxation must use forces only:
Anderson-accelerated steps (``fix scalelink/relax``, the default: GMRES-like) or LAMMPS FIRE.
Conjugate gradients stop after a few iterations: their line search needs an energy consistent
with the forces.

Plain Anderson steps need many force evaluations (144–494 here, growing with the region), most
of them for the smooth modes in which the atoms and the continuum around them move together.
The steps are therefore preconditioned by a coarse grid with the continuum's own law over the
whole square (:mod:`scalelink.coupling.coarse`), which solves for those modes directly: 40–64
evaluations over the same sizes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from mpi4py import MPI

from scalelink.bridge.errors import ConfigError
from .atomistic2d import AtomisticRegion
from .coarse import CoarseGrid
from .coarse import coarse_spacing as default_spacing
from .exchange import CouplingLink, idle_barrier, transfer_by_id
from .lattice import HexLattice
from .quasistatic import ContinuumRegion, CouplingGeometry, CouplingResult, pad_mismatch, send_band_displacements

__all__ = ["CondensedContinuum", "active_edge", "condense", "fit_rows_by_atom", "solve_condensed"]

_METHODS = ("anderson", "fire")


@dataclass(frozen=True)
class CondensedContinuum:
    """This FE rank's part of the continuum condensed onto the atoms (see the module docstring).

    Attributes:
        nodes: number E of active hole-edge nodes, over all FE ranks.
        slots: largest number K of active hole-edge nodes one atom feeds, over all FE ranks.
        fit_ids: IDs ``(m,)`` of the fit atoms whose rows this rank offers.
        fit_rows: ``(m, 2K)``: the nodes an atom feeds (as floats, -1 for an empty slot), then
            the weights.
        pad_ids: IDs ``(p,)`` of the pad atoms in this rank's cells.
        pad_rows: ``(p, 2 + 4E)``: the far-field pad displacement ``c`` (2), then the rows of
            ``P S`` for the x and the y component (2E each, node-major, component-minor).
        solves: FE solves done to build it.
        fields: ``(num_local_nodes * 2, 2E)``: the FE field (owned and ghost values) for unit data
            on each active hole-edge degree of freedom, so that the coupled field is
            ``offset_field + fields @ g`` for hole-edge data ``g``.
        offset_field: ``(num_local_nodes * 2,)``: the FE field of the far-field data alone.
    """

    nodes: int
    slots: int
    fit_ids: np.ndarray
    fit_rows: np.ndarray
    pad_ids: np.ndarray
    pad_rows: np.ndarray
    solves: int
    fields: np.ndarray
    offset_field: np.ndarray


def active_edge(continuum: Any) -> tuple[np.ndarray, int, int]:
    """Positions in ``continuum.edge_nodes`` of this rank's owned active edge nodes, the global
    index of the first of them, and the number E over all ranks."""
    from dolfinx import la

    index_map = continuum.V.dofmap.index_map
    size = index_map.size_local + index_map.num_ghosts
    constrained = np.zeros(size, dtype=bool)
    constrained[continuum.constrained_nodes] = True
    cells = continuum.V.dofmap.list
    touched = la.vector(index_map, bs=1)
    touched.array[:] = 0.0
    np.add.at(touched.array, cells[~constrained[cells].all(axis=1)].ravel(), 1.0)
    # a node's cells may live on other ranks: sum onto the owner
    touched.scatter_reverse(la.InsertMode.add)
    edge = continuum.edge_nodes
    owned_active = np.flatnonzero((edge < index_map.size_local) & (touched.array[edge] > 0.0))
    comm = continuum.mesh.comm
    first = comm.exscan(len(owned_active)) or 0
    return owned_active, int(first), int(comm.allreduce(len(owned_active)))


def fit_rows_by_atom(comm: MPI.Comm, continuum: Any, positions: np.ndarray,
                     first: int) -> tuple[int, np.ndarray, np.ndarray]:
    """The fits of the owned active hole-edge nodes ``positions`` (numbered from ``first``) as rows
    per atom, gathered for each atom on FE rank ``id % size`` (collective on ``comm``).

    Returns ``(K, ids (m,), rows (m, 2K))``: the most nodes one atom feeds (over all ranks), the
    atoms of this rank, and for each the nodes it feeds (as floats, -1 for an empty slot), then
    the weights.
    """
    # fit rows: (atom, node, weight) of the owned active nodes, gathered per atom on rank id % size
    rows, weights = continuum.fit_rows[positions], continuum.fit_weights[positions]
    used = weights != 0.0
    atom = continuum.fit_ids[rows[used]]
    node = np.broadcast_to((first + np.arange(len(positions)))[:, None], rows.shape)[used]
    weight = weights[used]
    dest = atom % comm.size
    outgoing = [(atom[dest == r], node[dest == r], weight[dest == r]) for r in range(comm.size)]
    incoming = comm.alltoall(outgoing)
    atom = np.concatenate([p[0] for p in incoming]).astype(np.int64)
    node = np.concatenate([p[1] for p in incoming]).astype(np.int64)
    weight = np.concatenate([p[2] for p in incoming])
    order = np.lexsort((node, atom))
    atom, node, weight = atom[order], node[order], weight[order]
    fit_ids, start, count = np.unique(atom, return_index=True, return_counts=True)
    slots = int(comm.allreduce(int(count.max(initial=0)), op=MPI.MAX))
    slot = np.arange(len(atom)) - np.repeat(start, count)
    fit_rows = np.concatenate([np.full((len(fit_ids), slots), -1.0), np.zeros((len(fit_ids), slots))], axis=1)
    row = np.repeat(np.arange(len(fit_ids)), count)
    fit_rows[row, slot] = node
    fit_rows[row, slots + slot] = weight
    return slots, fit_ids, fit_rows


def condense(continuum: ContinuumRegion) -> CondensedContinuum:
    """Build the condensed continuum (collective on the FE communicator).

    One FE solve per active hole-edge degree of freedom plus one for the far field; the
    Dirichlet data of ``continuum`` are restored afterwards.
    """
    comm = continuum.mesh.comm
    positions, first, nodes = active_edge(continuum)
    edge = continuum.edge_nodes
    values = continuum.bc_values.x.array.reshape(-1, 2)
    saved = continuum.bc_values.x.array.copy()
    n_pad = len(continuum.pad_map.ids)
    response = np.empty((n_pad, 2, 2 * nodes))
    fields = np.empty((len(saved), 2 * nodes))
    owner = np.searchsorted(np.cumsum(comm.allgather(len(positions))), np.arange(nodes), side="right")
    for j in range(nodes):
        for c in range(2):
            values[:] = 0.0
            if owner[j] == comm.rank:
                values[edge[positions[j - first]], c] = 1.0
            continuum.bc_values.x.scatter_forward()
            continuum.solve()
            response[:, :, 2 * j + c] = continuum.pad_map.interpolate(continuum.nodal())
            fields[:, 2 * j + c] = continuum.u.x.array
    # the far field alone: the outer data, zero on the hole
    continuum.bc_values.x.array[:] = saved
    values[edge] = 0.0
    continuum.solve()
    offset = continuum.pad_map.interpolate(continuum.nodal())
    offset_field = continuum.u.x.array.copy()
    continuum.bc_values.x.array[:] = saved
    continuum.solve()

    slots, fit_ids, fit_rows = fit_rows_by_atom(comm, continuum, positions, first)
    pad_rows = np.concatenate([offset, response.reshape(n_pad, 4 * nodes)], axis=1)
    return CondensedContinuum(nodes, slots, fit_ids, fit_rows, continuum.pad_map.ids, pad_rows, 2 * nodes + 2,
                              fields, offset_field)


def solve_condensed(link: CouplingLink, geometry: CouplingGeometry, lattice: HexLattice,
                    *, continuum: ContinuumRegion | None, atoms: AtomisticRegion | None,
                    minimizer: str = "anderson", max_iterations: int = 100000,
                    coarse_spacing: float | None = None, precondition: bool = True) -> CouplingResult:
    """The coupled equilibrium in one LAMMPS minimisation (collective on ``link.world``).

    FE ranks pass ``continuum``, MD ranks ``atoms``. Set-up (:func:`condense` and handing its
    rows to the atoms) is timed apart, in ``setup_seconds``; ``seconds`` is the minimisation
    plus the FE field, which is the superposition ``offset_field + fields @ g`` of the stored
    unit solutions with the hole-edge data ``g`` that the atoms' fits give (no FE solve). The
    atoms start where they are (for instance on the far-field affine field). The answer is that
    of :func:`~scalelink.coupling.quasistatic.solve_coupled` with ``tol -> 0``. Afterwards, untimed,
    it is checked: the hole-edge data are fitted again from the atoms' displacements (sent by
    ID) and the FE problem solved with them; ``solve_check`` is the largest difference of that
    field from the superposed one on the unconstrained nodes, and ``pad_mismatch`` how far the
    pad atoms in LAMMPS are from the solved field.

    Args:
        link: communicators from :func:`~scalelink.coupling.exchange.split_world`.
        geometry: the regions (the same on every rank).
        lattice: the lattice (the same on every rank).
        continuum: the FE model (FE ranks) or ``None``.
        atoms: the atomistic region (MD ranks) or ``None``.
        minimizer: ``"anderson"`` (``fix scalelink/relax``: Anderson-accelerated steps) or
            ``"fire"`` (LAMMPS FIRE); both need forces only and stop at ``atoms.force_tol`` on the
            force norm of the free atoms.
        max_iterations: minimiser iterations at most.
        coarse_spacing: spacing (Å) of the coarse grid that preconditions ``"anderson"``
            (:mod:`scalelink.coupling.coarse`: the continuum's own Cauchy–Born law on a grid
            over the whole square, held at its outer edge); ``None`` picks one with
            :func:`~scalelink.coupling.coarse.coarse_spacing`.
        precondition: ``False`` relaxes by plain Anderson steps (no coarse grid).

    Returns:
        The :class:`~scalelink.coupling.quasistatic.CouplingResult` (the same on every rank);
        ``increments`` is empty (there are no iterations between the two groups).
    """
    _check_arguments(link, lattice, continuum, atoms, minimizer, coarse_spacing)
    band = geometry.band(lattice.spacing)
    idle_barrier(link.world)
    start = time.perf_counter()
    condensed = _hand_over(link, geometry, lattice, band, continuum, atoms, minimizer=minimizer,
                           coarse_spacing=coarse_spacing, precondition=precondition)
    idle_barrier(link.world)
    setup = time.perf_counter() - start

    start = time.perf_counter()
    evaluations = _relax_and_superpose(link, condensed, continuum, atoms, minimizer, max_iterations)
    seconds = time.perf_counter() - start

    difference = _superposition_check(link, band, continuum, atoms)
    return _result(link, continuum, atoms, seconds=seconds, setup=setup, evaluations=evaluations,
                   solves=condensed.solves if condensed is not None else 0, difference=difference)


def _check_arguments(link: CouplingLink, lattice: HexLattice, continuum: ContinuumRegion | None,
                     atoms: AtomisticRegion | None, minimizer: str, coarse_spacing: float | None) -> None:
    """Refuse a rank given the other group's model, an unknown minimiser or a coarse grid finer than the lattice."""
    if (continuum is None) == link.is_fe or (atoms is None) == link.is_md:
        raise ConfigError(
            f"solve_condensed on a {link.role!r} rank got continuum={continuum is not None}, "
            f"atoms={atoms is not None}; FE ranks must pass `continuum` only and MD ranks `atoms` only"
        )
    if minimizer not in _METHODS:
        raise ConfigError(f"minimizer={minimizer!r}; expected one of {_METHODS}")
    if coarse_spacing is not None and not coarse_spacing >= lattice.spacing:
        raise ConfigError(f"coarse_spacing={coarse_spacing} Å; expected at least one lattice spacing "
                          f"({lattice.spacing:.4f} Å), or None to choose one")


def _hand_over(link: CouplingLink, geometry: CouplingGeometry, lattice: HexLattice, band: tuple[float, float],
               continuum: ContinuumRegion | None, atoms: AtomisticRegion | None, *, minimizer: str,
               coarse_spacing: float | None, precondition: bool) -> CondensedContinuum | None:
    """Set-up: condense the continuum (FE ranks) and hand every MD rank the rows of its atoms.

    The MD ranks then follow the map (``fix scalelink/padmap``) and, for a preconditioned
    ``"anderson"`` relaxation, take a coarse grid with the continuum's own law. Returns the
    condensed continuum on FE ranks, ``None`` on MD ranks.
    """
    condensed = None
    if continuum is not None:
        condensed = condense(continuum)
        shape = np.array([condensed.nodes, condensed.slots], dtype=np.int64)
    else:
        shape = np.zeros(2, dtype=np.int64)
    idle_barrier(link.world)
    link.world.Bcast(shape, root=link.fe_root)
    nodes, slots = int(shape[0]), int(shape[1])
    # the coarse grid takes the continuum's own law
    stiffness = link.world.bcast(continuum.stiffness if link.world.rank == link.fe_root else None,
                                 root=link.fe_root)
    if condensed is not None:
        transfer_by_id(link, source="fe", width=2 * slots, ids=condensed.fit_ids, values=condensed.fit_rows)
        transfer_by_id(link, source="fe", width=2 + 4 * nodes, ids=condensed.pad_ids, values=condensed.pad_rows)
    else:
        assert atoms is not None
        ids = atoms.local_ids(prescribed=False)
        norm = np.max(np.abs(lattice.positions(ids)), axis=1)
        fit_ids = ids[(norm >= band[0]) & (norm <= band[1])]
        empty = np.concatenate([np.full(slots, -1.0), np.zeros(slots)])
        fit_rows = transfer_by_id(link, source="fe", width=2 * slots, wanted=fit_ids, default=empty)
        pad_ids = atoms.local_ids(prescribed=True)
        pad_rows = transfer_by_id(link, source="fe", width=2 + 4 * nodes, wanted=pad_ids)
        atoms.follow_map(nodes, (fit_ids, fit_rows), (pad_ids, pad_rows))
        grid = None
        if precondition and minimizer == "anderson":
            spacing = coarse_spacing or default_spacing(lattice.spacing, geometry.free_half_width)
            grid = CoarseGrid.for_coupling(geometry, stiffness, spacing)
        atoms.precondition(grid)
    return condensed


def _relax_and_superpose(link: CouplingLink, condensed: CondensedContinuum | None, continuum: ContinuumRegion | None,
                         atoms: AtomisticRegion | None, minimizer: str, max_iterations: int) -> int:
    """The timed part: one relaxation of the atoms with the map, then the FE field by superposition.

    Returns the relaxation's force evaluations (0 on FE ranks).
    """
    evaluations = 0
    edge_data = None
    if atoms is not None:
        evaluations = atoms.relax_with_map(minimizer, max_iterations)
        edge_data = atoms.map_nodes()
    # the FE ranks sleep while the atoms relax, then take the hole-edge data from the MD root
    idle_barrier(link.world, poll_seconds=1e-4)
    edge_data = link.world.bcast(edge_data, root=link.md_root)
    if continuum is not None:
        assert condensed is not None
        continuum.u.x.array[:] = condensed.offset_field + condensed.fields @ edge_data
    return evaluations


def _superposition_check(link: CouplingLink, band: tuple[float, float], continuum: ContinuumRegion | None,
                         atoms: AtomisticRegion | None) -> float:
    """Untimed: the Schwarz update from the atoms' displacements and a real FE solve; the largest
    difference (Å, this FE rank; 0 on MD ranks) of that field from the superposed one on the
    unconstrained nodes."""
    superposed = continuum.u.x.array.copy() if continuum is not None else None
    _refit_and_solve(link, band, continuum, atoms)
    difference = 0.0
    if continuum is not None:
        assert superposed is not None
        # on the unconstrained nodes: the hole's nodes other than the active edge are not data of the map
        free = np.ones(len(superposed) // 2, dtype=bool)
        free[continuum.constrained_nodes] = False
        diff = (continuum.u.x.array - superposed).reshape(-1, 2)[free]
        difference = float(np.max(np.abs(diff), initial=0.0))
    return difference


def _result(link: CouplingLink, continuum: ContinuumRegion | None, atoms: AtomisticRegion | None, *,
            seconds: float, setup: float, evaluations: int, solves: int, difference: float) -> CouplingResult:
    """The :class:`CouplingResult` of every rank: maxima over the ranks, and converged when the
    largest free-atom force is within the atoms' force tolerance."""
    force = atoms.max_free_force() if atoms is not None else 0.0
    residual = continuum.max_free_residual() if continuum is not None else 0.0
    result = CouplingResult(converged=False)
    result.seconds = seconds
    result.setup_seconds = link.world.allreduce(setup, op=MPI.MAX)
    result.max_atom_force = link.world.allreduce(force, op=MPI.MAX)
    result.max_fe_residual = link.world.allreduce(residual, op=MPI.MAX)
    result.evaluations = link.world.allreduce(evaluations, op=MPI.MAX)
    result.fe_solves = link.world.allreduce(solves, op=MPI.MAX)
    result.pad_mismatch = pad_mismatch(link, continuum, atoms)
    result.solve_check = link.world.allreduce(difference, op=MPI.MAX)
    tol = link.world.bcast(atoms.force_tol if atoms is not None else None, root=link.md_root)
    result.converged = result.max_atom_force <= tol
    return result


def _refit_and_solve(link: CouplingLink, band: tuple[float, float], continuum: ContinuumRegion | None,
                     atoms: AtomisticRegion | None) -> None:
    """The hole-edge data fitted from the atoms' displacements (sent by ID), then one FE solve."""
    if continuum is not None:
        atom_u = transfer_by_id(link, source="md", width=2, wanted=continuum.fit_ids)
        continuum.update_hole_edge(atom_u, 1.0)
        continuum.solve()
    else:
        assert atoms is not None
        send_band_displacements(link, atoms, band)
