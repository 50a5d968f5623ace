"""A vacancy cluster under far-field strain: LAMMPS atoms inside a dolfinx continuum.

Run with one line (2 FE ranks + 2 MD ranks; ``-n 2`` gives 1 + 1)::

    mpirun -n 4 python examples/coupled_vacancy.py

The problem is a 2D hexagonal Lennard-Jones crystal, ~100 Å across, with a three-site vacancy
cluster at the centre and a homogeneous strain imposed on its outer edge. Only a ~45 Å square
around the defect is atomistic; the rest is a linear-elastic continuum whose stiffness is the
Cauchy–Born tangent of the same potential. The two are coupled over an overlap (see
:mod:`scalelink.coupling.quasistatic`): by default the linear continuum is condensed onto the pad
atoms and one LAMMPS relaxation finds the coupled equilibrium
(:mod:`scalelink.coupling.condensed`); ``--method schwarz`` iterates between the two
solvers instead and lands on the same answer. Both are picked by name: the problem is described
once (:class:`~scalelink.coupling.methods.StaticProblem`) and handed to
:func:`~scalelink.coupling.methods.couple` with the method's name, so any static coupling method
of :mod:`scalelink.coupling.methods` can take its place.

The script prints how the solve went, then checks the answer against a fully atomistic model of
the whole square (same potential, same edge displacement) and against the atomistic region alone
with its pad held at the far-field displacement (no continuum), and compares wall times.
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

from scalelink.coupling.exchange import idle_barrier, split_world
from scalelink.coupling.atomistic2d import AtomisticRegion
from scalelink.coupling.lattice import HexLattice, LennardJones2D
from scalelink.coupling.coarse import CoarseGrid, coarse_spacing
from scalelink.coupling.methods import StaticProblem, couple, coupling_methods
from scalelink.coupling.quasistatic import (
    ContinuumRegion,
    CouplingGeometry,
    affine_displacement,
    lattice_constants,
)


def vacancy_cluster(lattice: HexLattice, size: int) -> np.ndarray:
    """IDs of the ``size`` (1–3) sites of a compact cluster at the origin (a triangle for 3)."""
    a = lattice.spacing
    ids, x = lattice.sites(np.array([-0.1, -0.1]), np.array([a + 0.1, a]))
    corners = np.array([[0.0, 0.0], [a, 0.0], [0.5 * a, 0.5 * np.sqrt(3.0) * a]])[:size]
    match = np.linalg.norm(x[:, None, :] - corners[None], axis=2) < 1e-6 * a
    return ids[match.any(axis=1)]


def relaxed_displacements(comm: MPI.Comm, potential: LennardJones2D, lattice: HexLattice, strain: np.ndarray,
                          free_half_width: float, pad_width: float, removed: np.ndarray, method: str = "cg",
                          coarse: CoarseGrid | None = None) -> tuple[AtomisticRegion, float, int]:
    """A purely atomistic model: free atoms inside, pad held at the far-field displacement.

    Returns the region, the wall time of its relaxation (``method`` of
    :meth:`AtomisticRegion.relax`, preconditioned by ``coarse`` for ``"anderson"``), set-up
    (including the coarse grid's rows) excluded, and the number of relaxation steps.

    Every atom starts on the far-field (affine) field: starting from the undeformed lattice would
    put a jump of ε·L at the pad, large enough in a big cell to nucleate defects at the edge.
    """
    region = AtomisticRegion(comm, potential, lattice, free_half_width=free_half_width,
                             pad_width=pad_width, removed=removed)
    ids, _ = region.displacements()
    region.set_displacements(ids, affine_displacement(strain, lattice.positions(ids)))
    region.precondition(coarse)
    idle_barrier(comm)
    start = time.perf_counter()
    steps = region.relax(method=method)
    return region, time.perf_counter() - start, steps


def near_defect_error(comm: MPI.Comm, test: AtomisticRegion, reference: AtomisticRegion,
                      lattice: HexLattice, radius: float) -> tuple[float, float, int]:
    """Max and RMS displacement difference (Å) of the atoms within ``radius`` of the origin."""
    rows = []
    for region in (test, reference):
        ids, u = region.displacements()
        near = np.linalg.norm(lattice.positions(ids), axis=1) < radius
        gathered = comm.gather((ids[near], u[near]), root=0)
        rows.append(None if gathered is None else
                    (np.concatenate([g[0] for g in gathered]), np.concatenate([g[1] for g in gathered])))
    if comm.rank != 0:
        return 0.0, 0.0, 0
    (ids_t, u_t), (ids_r, u_r) = rows
    u_t, u_r = u_t[np.argsort(ids_t)], u_r[np.argsort(ids_r)]
    diff = np.linalg.norm(u_t - u_r, axis=1)
    return float(diff.max()), float(np.sqrt(np.mean(diff**2))), len(diff)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fe-ranks", type=int, default=max(1, MPI.COMM_WORLD.size // 2))
    parser.add_argument("--strain", type=float, nargs=3, default=[0.01, -0.004, 0.006 * np.sqrt(2.0)],
                        help="far-field Mandel strain [exx, eyy, sqrt2*exy]")
    parser.add_argument("--vacancies", type=int, default=3, choices=(1, 2, 3))
    parser.add_argument("--atoms", type=float, default=7.0,
                        help="half-width of the free atoms' square in lattice spacings")
    parser.add_argument("--hole", type=float, default=4.0,
                        help="half-width of the FE hole fed by the atoms, in lattice spacings (< atoms - 2)")
    parser.add_argument("--size", type=float, default=20.0,
                        help="half-width of the whole square in lattice spacings")
    parser.add_argument("--growth", type=float, default=1.2,
                        help="size ratio of neighbouring elements away from the atoms (1: uniform mesh)")
    parser.add_argument("--method", choices=[m.name for m in coupling_methods("static")], default="condensed",
                        help="the static coupling method: "
                             + "; ".join(f"{m.name}: {m.summary}" for m in coupling_methods("static")))
    parser.add_argument("--minimizer", choices=("anderson", "fire"), default="anderson",
                        help="relaxation of the condensed method (forces only)")
    parser.add_argument("--coarse", type=float, default=None,
                        help="spacing of the coarse grid that preconditions the anderson relaxation, in lattice "
                             "spacings (default: chosen from the region's size; 0: no coarse grid)")
    parser.add_argument("--json", default=None, help="write the numbers to this file (world rank 0)")
    args = parser.parse_args(argv)
    strain = np.asarray(args.strain)

    # 1. Two groups in one mpirun: the first ranks run dolfinx, the others LAMMPS.
    link = split_world(args.fe_ranks)
    world = link.world

    # 2. The lattice and its continuum law: zero-stress spacing and Cauchy–Born stiffness,
    #    computed by LAMMPS on the MD ranks and shared with the FE ranks.
    potential = LennardJones2D()
    a, stiffness = lattice_constants(link, potential)

    # 3. Geometry: FE square of half-width 20a (--size) with a hole of 4a (--hole) fed by the atoms; the free atoms
    #    fill 7a, and a pad one cutoff wide takes the FE displacement. Elements are one lattice
    #    spacing where the atoms are and grow by --growth per element beyond.
    geometry = CouplingGeometry(half_width=args.size * a, free_half_width=args.atoms * a,
                                pad_width=potential.cutoff + 0.1, hole_half_width=args.hole * a, mesh_size=a, growth=args.growth)
    lattice = HexLattice.covering(a, geometry.half_width + geometry.pad_width)
    geometry.validate(lattice)
    removed = vacancy_cluster(lattice, args.vacancies)

    # 4. Each group builds its own model: nothing is shared but the problem description.
    start = time.perf_counter()
    continuum = atoms = None
    if link.is_fe:
        continuum = ContinuumRegion(link.comm, lattice, stiffness, geometry, strain, removed)
    else:
        atoms = AtomisticRegion(link.comm, potential, lattice, free_half_width=geometry.free_half_width,
                                pad_width=geometry.pad_width, removed=removed)
    setup = time.perf_counter() - start

    # 5. Solve: every atom starts on the far-field (affine) field
    if atoms is not None:
        ids, _ = atoms.displacements()
        atoms.set_displacements(ids, affine_displacement(strain, lattice.positions(ids)))
    # the coarse grid (spacing H) of the preconditioner: Cauchy–Born elasticity over the whole square
    spacing = coarse_spacing(a, geometry.free_half_width) if args.coarse is None else args.coarse * a
    precondition = args.minimizer == "anderson" and spacing > 0.0
    # the method by name; each takes its own options (the others keep their defaults)
    options = {
        "condensed": {"minimizer": args.minimizer, "coarse_spacing": spacing if precondition else None,
                      "precondition": precondition},
        "schwarz": {"tol": 1e-7},
    }
    problem = StaticProblem(link, geometry, lattice, continuum=continuum, atoms=atoms)
    result = couple(problem, method=args.method, **options.get(args.method, {})).record
    if world.rank == 0:
        print(f"lattice spacing {a:.6f} Å, C11 {stiffness[0, 0]:.5f} C12 {stiffness[0, 1]:.5f} eV/Å²")
        if args.method == "schwarz":
            print("Schwarz iteration   max change of exchanged displacements (Å)")
            for k, change in enumerate(result.increments, 1):
                print(f"  {k:3d}               {change:.3e}")
        else:
            print(f"continuum condensed onto the pad: {result.fe_solves} FE solves, {result.setup_seconds:.2f} s; "
                  f"one relaxation ({args.minimizer}"
                  + (f", coarse grid H = {spacing / a:g}a" if precondition else "")
                  + f"): {result.evaluations} force evaluations; the FE field by superposition")
        print(f"pad atoms vs final FE field: {result.pad_mismatch:.1e} Å"
              + (f"; superposed FE field vs a fresh FE solve: {result.solve_check:.1e} Å"
                 if args.method == "condensed" else ""))
        print(f"converged={result.converged}  max free-atom force {result.max_atom_force:.2e} eV/Å  "
              f"max FE residual {result.max_fe_residual:.2e} eV/Å")

    # 6. References, on the MD ranks: the whole square atomistic, and the atomistic region alone.
    numbers: dict[str, object] = {}
    if link.is_md:
        assert atoms is not None
        radius = 3.0 * a
        full, t_full, _ = relaxed_displacements(link.comm, potential, lattice, strain, geometry.half_width,
                                                geometry.pad_width, removed)
        alone, t_alone, steps_alone = relaxed_displacements(link.comm, potential, lattice, strain,
                                                            geometry.free_half_width, geometry.pad_width, removed)
        # the same region relaxed by the same method as the coupled one (with its own coarse grid,
        # held where its pad is)
        grid = CoarseGrid.for_region(geometry.free_half_width, stiffness, spacing) if precondition else None
        same, t_same, steps_same = relaxed_displacements(link.comm, potential, lattice, strain,
                                                         geometry.free_half_width, geometry.pad_width, removed,
                                                         method=args.minimizer, coarse=grid)
        same.close()
        coupled_err = near_defect_error(link.comm, atoms, full, lattice, radius)
        alone_err = near_defect_error(link.comm, alone, full, lattice, radius)
        defect_u = near_defect_error(link.comm, atoms, atoms, lattice, radius)[2]
        ids, u = full.displacements()
        dev = np.linalg.norm(u - affine_displacement(strain, lattice.positions(ids)), axis=1)
        near = np.linalg.norm(lattice.positions(ids), axis=1) < radius
        defect_field = link.comm.allreduce(float(dev[near].max(initial=0.0)), op=MPI.MAX)
        numbers = {
            "atoms_coupled": atoms.lmp.get_natoms(), "atoms_full": full.lmp.get_natoms(),
            "near_atoms": defect_u, "defect_field_max": defect_field,
            "coupled_max": coupled_err[0], "coupled_rms": coupled_err[1],
            "alone_max": alone_err[0], "alone_rms": alone_err[1],
            "time_full": t_full, "time_alone": t_alone, "time_alone_same_method": t_same,
            "steps_alone": steps_alone, "steps_alone_same_method": steps_same,
            "force_full": full.max_free_force(), "force_alone": alone.max_free_force(),
        }
        for region in (full, alone, atoms):
            region.close()
    idle_barrier(world)  # the FE ranks sleep, not spin, while the MD ranks run the references
    numbers = world.bcast(numbers, root=link.md_root)
    numbers.update(iterations=len(result.increments), converged=result.converged,
                   max_atom_force=result.max_atom_force, max_fe_residual=result.max_fe_residual,
                   time_coupled=result.seconds, time_setup=world.allreduce(setup, op=MPI.MAX),
                   time_condense=result.setup_seconds, evaluations=result.evaluations,
                   fe_solves=result.fe_solves, pad_mismatch=result.pad_mismatch, method=args.method,
                   coarse_spacing=spacing / a if precondition else 0.0,
                   solve_check=result.solve_check,
                   fe_ranks=link.num_fe, md_ranks=link.num_md)
    if world.rank == 0:
        print(f"\nAtoms within 3a of the defect ({numbers['near_atoms']}), displacement vs fully atomistic "
              f"({numbers['atoms_full']} atoms); largest deviation from the affine field there "
              f"{numbers['defect_field_max']:.4f} Å:")
        print(f"  coupled ({numbers['atoms_coupled']} atoms + FE)   max {numbers['coupled_max']:.2e} Å   "
              f"RMS {numbers['coupled_rms']:.2e} Å")
        print(f"  atomistic region alone, pad at far field   max {numbers['alone_max']:.2e} Å   "
              f"RMS {numbers['alone_rms']:.2e} Å")
        print(f"Wall time ({link.num_fe} FE + {link.num_md} MD ranks), set-up excluded: coupled "
              f"{numbers['time_coupled'] * 1e3:.1f} ms ({args.method}); atomistic region alone "
              f"{numbers['time_alone'] * 1e3:.1f} ms (LAMMPS cg, {numbers['steps_alone']} iterations), "
              f"{numbers['time_alone_same_method'] * 1e3:.1f} ms ({args.minimizer}"
              + (", its own coarse grid" if precondition else "")
              + f", {numbers['steps_alone_same_method']} steps); fully atomistic {numbers['time_full'] * 1e3:.1f} ms (cg)")
        if args.json:
            with open(args.json, "w", encoding="utf-8") as stream:
                json.dump(numbers, stream, indent=1)
    return numbers


if __name__ == "__main__":
    try:
        main()
    except BaseException:
        # an error on one group must end the run, not leave the other group waiting
        traceback.print_exc()
        sys.stdout.flush()
        MPI.COMM_WORLD.Abort(1)
