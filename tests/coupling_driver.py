"""MPI driver for tests/test_coupling.py: ``mpirun -n N python coupling_driver.py OUT.json [condensed]``.

Runs (1) the patch test of the Schwarz coupling, or with ``condensed`` of the condensed one
(uniform strain, perfect lattice, atoms start at their reference sites) and, with two MD ranks, (2) a check that FE data reach the right atoms by
ID after the atoms have moved between MD ranks. Writes the numbers to OUT.json on world rank 0.
"""

from __future__ import annotations

import json
import sys
import traceback

import mpi4py.MPI as MPI

import dolfinx.fem.petsc  # noqa: F401  (PETSc start-up is collective on COMM_WORLD)
import numpy as np

from scalelink.bridge.errors import DataError
from scalelink.coupling.exchange import split_world, transfer_by_id
from scalelink.coupling.atomistic2d import AtomisticRegion
from scalelink.coupling.lattice import HexLattice, LennardJones2D
from scalelink.coupling.quasistatic import (
    ContinuumRegion,
    CouplingGeometry,
    affine_displacement,
    lattice_constants,
    solve_coupled,
)
from scalelink.coupling.condensed import solve_condensed

STRAIN = np.array([0.012, -0.005, 0.007 * np.sqrt(2.0)])


def main(out: str, method: str) -> None:
    world = MPI.COMM_WORLD
    link = split_world(world.size // 2)
    potential = LennardJones2D()
    a, stiffness = lattice_constants(link, potential)
    geometry = CouplingGeometry(half_width=14 * a, free_half_width=6 * a, pad_width=potential.cutoff + 0.1,
                                hole_half_width=3.5 * a, mesh_size=a)
    lattice = HexLattice.covering(a, geometry.half_width + geometry.pad_width)
    none = np.zeros(0, dtype=np.int64)
    continuum = atoms = None
    if link.is_fe:
        continuum = ContinuumRegion(link.comm, lattice, stiffness, geometry, STRAIN, none)
    else:
        atoms = AtomisticRegion(link.comm, potential, lattice, free_half_width=geometry.free_half_width,
                                pad_width=geometry.pad_width, removed=none)
    if method == "condensed":
        result = solve_condensed(link, geometry, lattice, continuum=continuum, atoms=atoms)
    else:
        result = solve_coupled(link, geometry, lattice, continuum=continuum, atoms=atoms, tol=1e-9)
    numbers: dict[str, object] = {
        "iterations": len(result.increments), "converged": result.converged,
        "first_increment": result.increments[0] if result.increments else None,
        "max_atom_force": result.max_atom_force, "max_fe_residual": result.max_fe_residual,
        "evaluations": result.evaluations, "pad_mismatch": result.pad_mismatch, "solve_check": result.solve_check,
    }

    # deviation from the affine field: atoms (MD ranks) and FE nodes outside the hole (FE ranks)
    deviation = 0.0
    if atoms is not None:
        ids, u = atoms.displacements()
        deviation = float(np.max(np.abs(u - affine_displacement(STRAIN, lattice.positions(ids))), initial=0.0))
    else:
        assert continuum is not None
        x = continuum.V.tabulate_dof_coordinates()[:, :2]
        outside = np.max(np.abs(x), axis=1) > geometry.hole_half_width + 1e-6
        diff = continuum.nodal() - affine_displacement(STRAIN, x)
        deviation = float(np.max(np.abs(diff[outside]), initial=0.0))
    numbers["max_atom_affine_error"] = world.allreduce(deviation if link.is_md else 0.0, op=MPI.MAX)
    numbers["max_node_affine_error"] = world.allreduce(deviation if link.is_fe else 0.0, op=MPI.MAX)

    if link.num_md > 1:
        numbers.update(migration_check(link, lattice, continuum, atoms))
    if world.rank == 0:
        with open(out, "w", encoding="utf-8") as stream:
            json.dump(numbers, stream, indent=1)


def migration_check(link, lattice, continuum, atoms) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Rotate the atoms by 90° so about half change MD rank, then send FE data to the pad by ID.

    The FE side offers the P1 interpolant, at the pad atoms' reference positions, of a nodal field
    ``w(X) = A X + c`` (exact for P1); each MD rank compares what it receives for the pad atoms
    it owns *now* with ``w`` evaluated at ``lattice.positions(id)``.
    """
    gradient = np.array([[0.3, -0.7], [1.1, 0.2]])
    offset = np.array([0.5, -0.25])
    moved = error = 0.0
    pad = np.zeros(0, dtype=np.int64)
    if continuum is not None:
        x = continuum.V.tabulate_dof_coordinates()[:, :2]
        values = continuum.pad_map.interpolate(x @ gradient.T + offset)
        transfer_by_id(link, source="fe", width=2, ids=continuum.pad_map.ids, values=values)
    else:
        before = set(atoms.local_ids(prescribed=True).tolist())
        atoms.lmp.command("displace_atoms all rotate 0.0 0.0 0.0 0.0 0.0 1.0 90.0 units box")
        atoms.lmp.command("run 0")
        pad = atoms.local_ids(prescribed=True)
        received = transfer_by_id(link, source="fe", width=2, wanted=pad)
        moved = float(len(set(pad.tolist()) - before))
        expected = lattice.positions(pad) @ gradient.T + offset
        error = float(np.max(np.abs(received - expected), initial=0.0))
    # an ID no FE rank offers must raise on every rank of both groups, not hang
    raised = 0
    try:
        transfer_by_id(link, source="fe", width=2, ids=np.zeros(0, dtype=np.int64), values=np.zeros((0, 2)),
                       wanted=None if continuum is not None else pad)
    except DataError:
        raised = 1
    return {"pad_atoms_changed_rank": link.world.allreduce(moved, op=MPI.SUM),
            "migrated_lookup_error": link.world.allreduce(error, op=MPI.MAX),
            "ranks_raising_missing_id": link.world.allreduce(raised, op=MPI.SUM)}


if __name__ == "__main__":
    try:
        main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "schwarz")
    except BaseException:
        # an error on one group must end the run, not leave the other group waiting
        traceback.print_exc()
        sys.stdout.flush()
        MPI.COMM_WORLD.Abort(1)
