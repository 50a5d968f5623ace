"""Quasi-static 3D atomistic–continuum coupling: alternating Schwarz iterations between a LAMMPS
fcc region (:class:`~scalelink.coupling.atomistic3d.AtomisticRegion3D`) and a dolfinx continuum
(:class:`~scalelink.coupling.continuum3d.ContinuumRegion3D`), two groups of one ``mpirun``.

The method is that of :mod:`scalelink.coupling.quasistatic` in three dimensions: the pad atoms
take the FE displacement at their reference sites, the free atoms relax, the hole-edge nodes
take affine fits of the atoms around them, the FE problem is solved again; repeat until neither
changes by more than ``tol``. It needs only an energy minimiser on the atomistic side, so it
works for any pair style. A uniform strain is an exact fixed point: the perfect fcc crystal
under affine pad positions is in equilibrium (every site is a centre of inversion), the affine
fits and P1 elements reproduce affine fields, and the continuum is the Cauchy–Born tangent of
the same potential (:func:`~scalelink.coupling.cauchy_born.crystal_constants`), so that the
two agree to first order in the strain everywhere in the overlap. Units: Å, eV.
"""

from __future__ import annotations

import time

import numpy as np
from mpi4py import MPI

from scalelink.bridge.errors import ConfigError, ScaleLinkError

from .atomistic3d import AtomisticRegion3D
from .continuum3d import ContinuumRegion3D
from .exchange import CouplingLink, idle_barrier, transfer_by_id
from .fcc import FccLattice
from .geometry import CouplingGeometry
from .quasistatic import CouplingResult

__all__ = ["pad_mismatch_3d", "record_equilibrium_3d", "send_band_3d", "solve_coupled_3d",
           "validate_geometry_3d"]


def validate_geometry_3d(geometry: CouplingGeometry, lattice: FccLattice, pad_reach: float) -> None:
    """Raise :class:`~scalelink.bridge.errors.ConfigError` unless the regions nest: the hole two
    nearest-neighbour distances inside the free cube, the pad (at least ``pad_reach`` Å thick)
    and one element inside the FE cube, and the lattice's IDs covering the atoms."""
    geometry.validate(lattice)  # type: ignore[arg-type]  # needs only .spacing
    if geometry.pad_width < pad_reach:
        raise ConfigError(f"pad_width={geometry.pad_width} Å is thinner than the potential's reach {pad_reach} Å; "
                          "use pad_width >= potential.reach")
    outer = geometry.free_half_width + geometry.pad_width
    if lattice.cells * lattice.constant < np.sqrt(3.0) * outer:
        raise ConfigError(f"the lattice names sites up to {lattice.cells * lattice.constant:.2f} Å along its cube "
                          f"axes but the atoms reach |X|∞ = {outer:.2f} Å; build it with "
                          f"FccLattice.covering(a, {outer:.2f}, orientation)")


def solve_coupled_3d(link: CouplingLink, geometry: CouplingGeometry, lattice: FccLattice, *,
                     continuum: ContinuumRegion3D | None, atoms: AtomisticRegion3D | None,
                     tol: float = 1e-7, max_iterations: int = 100, relaxation: float | None = None,
                     relax_iterations: int = 20000) -> CouplingResult:
    """Alternating Schwarz iterations between the FE ranks and the MD ranks (3D).

    The hole-edge values start as the fits of the atoms' displacements as they are. Each
    iteration: FE solve → pad displacements to the MD ranks (by atom ID) → relax the free
    atoms → displacements of the atoms around the hole's edge to the FE ranks (by atom ID) →
    new hole-edge values. Collective on ``link.world``; FE ranks pass ``continuum``, MD ranks
    ``atoms``.

    Args:
        link: communicators from :func:`~scalelink.coupling.exchange.split_world`.
        geometry: the regions (cubes; the same on every rank).
        lattice: the lattice (the same on every rank).
        continuum: the FE model (FE ranks) or ``None``.
        atoms: the atomistic region (MD ranks) or ``None``.
        tol: stop when the pad displacements change, and the hole-edge values miss their fit, by
            less than this, Å.
        max_iterations: Schwarz iterations at most.
        relaxation: fixed factor in ``(0, 1]`` for the hole-edge values, or ``None`` for Aitken's.
        relax_iterations: minimiser iterations at most per relaxation of the atoms.

    Returns:
        The :class:`~scalelink.coupling.quasistatic.CouplingResult` (the same on every rank).

    Raises:
        ScaleLinkError: (on every rank of both groups) a relaxation failed on the MD ranks (its
            tolerance not reached, or LAMMPS stopped, e.g. with atoms lost from the region).
    """
    if (continuum is None) == link.is_fe or (atoms is None) == link.is_md:
        raise ConfigError(
            f"solve_coupled_3d on a {link.role!r} rank got continuum={continuum is not None}, "
            f"atoms={atoms is not None}; FE ranks must pass `continuum` only and MD ranks `atoms` only")
    if relaxation is not None and not 0.0 < relaxation <= 1.0:
        raise ConfigError(f"relaxation={relaxation} is outside (0, 1]; pass a factor such as 0.5, or None for Aitken's")
    band = geometry.band(lattice.spacing)
    result = CouplingResult(converged=False)
    idle_barrier(link.world)
    start = time.perf_counter()
    # the hole-edge values start from the atoms as they are (a good first guess when they are placed well)
    if continuum is not None:
        continuum.update_hole_edge(transfer_by_id(link, source="md", width=3, wanted=continuum.fit_ids), 1.0)
    else:
        assert atoms is not None
        send_band_3d(link, atoms, band)
    previous_pad: np.ndarray | None = None
    for _ in range(max_iterations):
        change, failure = 0.0, ""
        if continuum is not None:
            continuum.solve()
            pad_u = continuum.pad_map.interpolate(continuum.nodal())
            if previous_pad is not None:
                change = float(np.max(np.abs(pad_u - previous_pad), initial=0.0))
            previous_pad = pad_u
            transfer_by_id(link, source="fe", width=3, ids=continuum.pad_map.ids, values=pad_u)
            atom_u = transfer_by_id(link, source="md", width=3, wanted=continuum.fit_ids)
            change = max(change, continuum.update_hole_edge(atom_u, relaxation))
        elif atoms is not None:
            pad_ids = atoms.local_ids(prescribed=True)
            atoms.set_displacements(pad_ids, transfer_by_id(link, source="fe", width=3, wanted=pad_ids))
            try:
                result.evaluations += atoms.relax(relax_iterations)
            except Exception as err:  # noqa: BLE001  (LAMMPS raises plain exceptions; re-raised on every rank below)
                failure = f"{type(err).__name__}: {err}"
            send_band_3d(link, atoms, band)
        change = link.world.allreduce(change, op=MPI.MAX)
        # a failed relaxation must stop both groups, not leave the FE ranks waiting for the next exchange
        failures = [f for f in link.world.allgather(failure) if f]
        if failures:
            raise ScaleLinkError(f"solve_coupled_3d: the atomistic relaxation failed on an MD rank: {failures[0]}")
        result.increments.append(change)
        if change < tol and len(result.increments) > 1:
            result.converged = True
            break
    if continuum is not None:
        continuum.solve()
    result.seconds = time.perf_counter() - start
    result.fe_solves = len(result.increments) + 1
    result.evaluations = link.world.allreduce(result.evaluations, op=MPI.MAX)
    record_equilibrium_3d(link, result, continuum, atoms)
    return result


def record_equilibrium_3d(link: CouplingLink, result: CouplingResult, continuum: ContinuumRegion3D | None,
                          atoms: AtomisticRegion3D | None) -> None:
    """Fill ``result``'s ``pad_mismatch``, ``max_atom_force`` and ``max_fe_residual`` (the same on
    every rank). Collective on ``link.world``."""
    result.pad_mismatch = pad_mismatch_3d(link, continuum, atoms)
    force = atoms.max_free_force() if atoms is not None else 0.0
    residual = continuum.max_free_residual() if continuum is not None else 0.0
    result.max_atom_force = link.world.allreduce(force, op=MPI.MAX)
    result.max_fe_residual = link.world.allreduce(residual, op=MPI.MAX)


def send_band_3d(link: CouplingLink, atoms: AtomisticRegion3D, band: tuple[float, float]) -> None:
    """MD side: the displacements of this rank's atoms with ``|X|∞`` in ``band`` to the FE ranks, by ID."""
    ids, u = atoms.displacements()
    norm = np.max(np.abs(atoms.lattice.positions(ids)), axis=1)
    in_band = (norm >= band[0]) & (norm <= band[1])
    transfer_by_id(link, source="md", width=3, ids=ids[in_band], values=u[in_band])


def pad_mismatch_3d(link: CouplingLink, continuum: ContinuumRegion3D | None, atoms: AtomisticRegion3D | None) -> float:
    """Largest distance (Å) between a pad atom's displacement in LAMMPS and the FE field at its
    site (zero at a coupled equilibrium). Collective on ``link.world``."""
    mismatch = 0.0
    if continuum is not None:
        in_lammps = transfer_by_id(link, source="md", width=3, wanted=continuum.pad_map.ids)
        fe = continuum.pad_map.interpolate(continuum.nodal())
        mismatch = float(np.max(np.linalg.norm(in_lammps - fe, axis=1), initial=0.0))
    else:
        assert atoms is not None
        ids, u = atoms.displacements(atoms.local_ids(prescribed=True))
        transfer_by_id(link, source="md", width=3, ids=ids, values=u)
    return float(link.world.allreduce(mismatch, op=MPI.MAX))
