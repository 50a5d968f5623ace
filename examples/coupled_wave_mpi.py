"""A wave packet leaving LAMMPS atoms for a dolfinx continuum, in one ``mpirun``: reflected energy
against wavenumber with and without the dispersion surrogate, the dynamic patch test, and the cost
of coupling against LAMMPS alone.

Run with one line (1 FE rank + 1 MD rank; ``-n 3`` gives 1 + 2, ``-n 4 ... --fe-ranks 2`` 2 + 2)::

    mpirun -n 2 python examples/coupled_wave_mpi.py            # add --json out.json to keep the numbers

The atoms are a 2D hexagonal Lennard-Jones crystal (``lj/smooth/linear`` in LAMMPS), a strip
periodic in y and about 250 lattice spacings long; the continuum is a strip of P1 triangles two
lattice spacings wide carrying the Cauchy–Born stiffness of the same potential, so the mesh
carries wavenumbers up to ``k a = π/2``. They overlap over 16 elements, where a bridging-domain
handshake ties the motion the mesh can carry and damps the rest (see
:mod:`scalelink.coupling.md`). A longitudinal Gaussian packet of central wavenumber k
starts in the atoms and runs into the handshake; once it has gone we measure the energy back in the
purely atomistic region (R, reflected) and in the elements beyond the handshake (T). The runs of
:mod:`scalelink.coupling.md_runs` step the strip with
:func:`~scalelink.coupling.md.run_coupled`, the dynamic coupling method that
:func:`scalelink.coupling.methods.couple` calls ``"bridging_strip"``.

The dispersion surrogate: LAMMPS force constants give the lattice's ω(k) along the strip at the
13 wavenumbers of a 24-spacing periodic cell; a Gaussian process trained on them is the
continuum's target ω(k), and the FE mass is the lumped/consistent blend β whose plane-wave
dispersion matches it on the mesh's wavenumbers; the handshake's constraint blend is matched to it,
θ = (1 − β)/2, so that waves carry their energy across. Without the surrogate the mass is lumped
and the constraint is the plain L2 projection (β = θ = 0).

The cost: the same atoms, 16 cells high (8320 atoms), run coupled and by LAMMPS alone for the
same steps on the same MD ranks, in alternating stretches (``--time-chunks``) so that both see the
same machine; besides wall times the script prints per-step times — LAMMPS alone, the coupling
fix's own work, the FE step split into the part the MD ranks wait for and the part done while
LAMMPS computes forces, and the MD ranks' wait. On one FE rank the part the MD ranks wait for is
compiled (:mod:`scalelink.coupling.md_kernel`), and the MD ranks integrate while it runs
(``defer``); ``--no-compiled`` and ``--no-defer`` switch these off.
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

from scalelink.coupling.exchange import split_world
from scalelink.coupling.lattice import LennardJones2D
from scalelink.coupling.quasistatic import lattice_constants
from scalelink.coupling.md_runs import (
    dispersion_samples,
    matched_gram_blend,
    run_patch_test,
    run_wave_packet,
    surrogate_mass_blend,
    wave_speed,
)
from scalelink.coupling.wave_strip import StripConfig, WaveStrip

WAVENUMBERS = (0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 2.0, 2.5)  # k a; the mesh carries k a <= π/2


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fe-ranks", type=int, default=1)
    parser.add_argument("--rows", type=int, default=4, help="strip height in rectangular cells (2 atom rows each)")
    parser.add_argument("--wavenumbers", type=float, nargs="*", default=list(WAVENUMBERS), help="k a of the packets")
    parser.add_argument("--time-rows", type=int, default=16,
                        help="strip height of the timing run (coupled vs LAMMPS alone); 0 skips it")
    parser.add_argument("--time-lead", type=float, default=0.0,
                        help="extra atomistic length (lattice spacings) of the timing run: more atoms, same handshake")
    parser.add_argument("--spin", type=float, default=1e-4,
                        help="seconds a waiting rank spins before napping (long if every rank has its own core)")
    parser.add_argument("--time-chunks", type=int, default=10,
                        help="the timing run alternates this many coupled and LAMMPS-alone stretches")
    parser.add_argument("--no-compiled", action="store_true",
                        help="FE side of each step through PETSc from Python, not the compiled critical path")
    parser.add_argument("--no-defer", action="store_true",
                        help="MD ranks wait for the FE reply in post_force instead of integrating meanwhile")
    parser.add_argument("--json", default=None, help="write the numbers to this file (world rank 0)")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    # 1. Two groups in one mpirun; the lattice constants come from LAMMPS on the MD ranks.
    link = split_world(args.fe_ranks)
    world = link.world
    potential = LennardJones2D()
    a, stiffness = lattice_constants(link, potential)
    speed = wave_speed(stiffness, a, potential.mass)
    config = StripConfig(rows=args.rows)
    h = config.element_spacings * a

    # 2. The dispersion surrogate: LAMMPS samples of ω(k) → Gaussian process → mass blend β.
    k, omega = dispersion_samples(link, potential, a)
    beta, held_out = surrogate_mass_blend(k, omega, h, speed)
    theta = matched_gram_blend(beta)
    report(world, f"lattice a = {a:.4f} Å, C11 = {stiffness[0, 0]:.4f} eV/Å², c = {speed:.2f} Å/ps; "
                  f"{link.num_fe} FE + {link.num_md} MD ranks")
    report(world, f"GP on 7 of 13 LAMMPS samples: max held-out error {held_out:.1e} rad/ps (ω_max {omega.max():.1f}); "
                  f"mass blend β = {beta:.4f}, constraint blend θ = {theta:.4f}; "
                  f"mesh cutoff k a = {np.pi / config.element_spacings:.3f}")

    # 3. Patch test in dynamics: u = H X everywhere, at rest, must stay so (H e_y = 0 keeps y periodic).
    gradient = np.array([[0.01, 0.0], [0.006, 0.0]])
    strip = WaveStrip.for_packet(config, potential, a, 0.5 / a, speed)
    patch = run_patch_test(link, strip, stiffness, gradient, mass_blend=beta, gram_blend=theta, steps=20,
                           rebalance=0.9 if link.num_md > 1 else None)
    report(world, f"patch test (uniform strain, 20 steps): max force atoms {patch.atom_force:.1e} / nodes "
                  f"{patch.node_force:.1e} eV/Å, drift {max(patch.atom_drift, patch.node_drift):.1e} Å, "
                  f"speed {max(patch.atom_speed, patch.node_speed):.1e} Å/ps; band atoms moved to another MD rank "
                  f"mid-run: {patch.migrated}")

    # 4. R(k) with the surrogate's mass and with a lumped mass.
    rows = []
    report(world, f"\n{'k a':>5} {'kh/π':>5} | {'R (GP)':>9} {'T (GP)':>7} | {'R (lumped)':>10} {'T':>6} | steps")
    for ka in args.wavenumbers:
        strip = WaveStrip.for_packet(config, potential, a, ka / a, speed)
        with_gp = run_wave_packet(link, strip, stiffness, mass_blend=beta, gram_blend=theta, spin_seconds=args.spin)
        lumped = run_wave_packet(link, strip, stiffness, mass_blend=0.0, spin_seconds=args.spin)
        rows.append({"ka": ka, "gp": {"reflected": with_gp.reflected, "transmitted": with_gp.transmitted},
                     "lumped": {"reflected": lumped.reflected, "transmitted": lumped.transmitted},
                     "steps": strip.steps})
        report(world, f"{ka:5.2f} {ka * config.element_spacings / np.pi:5.2f} | {with_gp.reflected:9.2e} "
                      f"{with_gp.transmitted:7.3f} | {lumped.reflected:10.2e} {lumped.transmitted:6.3f} | "
                      f"{strip.steps}")

    # 5. Cost: the coupled run against LAMMPS alone on the same atoms, same steps, same MD ranks.
    timing: dict[str, float] = {}
    if args.time_rows:
        timed = StripConfig(rows=args.time_rows, lead=args.time_lead)
        strip = WaveStrip.for_packet(timed, potential, a, 0.6 / a, speed)
        r = run_wave_packet(link, strip, stiffness, mass_blend=beta, gram_blend=theta, time_alone=True,
                            chunks=args.time_chunks, spin_seconds=args.spin, compiled=not args.no_compiled,
                            defer=not args.no_defer)
        n = r.run.steps
        timing = {"atoms": len(strip.sites(0.0, strip.x_b + strip.pad_width)[0]), "steps": n,
                  "coupled_s": r.run.seconds, "alone_s": r.alone_seconds, "alone_cpu_s": r.alone_cpu,
                  "md_work_ms": 1e3 * r.run.md_work / n,
                  "fe_critical_cpu_ms": 1e3 * r.run.fe_critical_cpu / n,
                  "fe_cpu_ms": 1e3 * r.run.fe_cpu / n, "md_wait_ms": 1e3 * r.run.md_wait / n,
                  "fe_compute_ms": 1e3 * r.run.fe_compute / n, "fe_wait_ms": 1e3 * r.run.fe_wait / n,
                  "fe_force_wait_ms": 1e3 * r.run.fe_force_wait / n,
                  "alone_cpu_ms": 1e3 * r.alone_cpu / n, "reflected": r.reflected}
        report(world, f"\ncost, {timing['atoms']} atoms, {n} steps: coupled {r.run.seconds:.2f} s, LAMMPS alone "
                      f"{r.alone_seconds:.2f} s (×{r.run.seconds / r.alone_seconds:.2f}); per step: LAMMPS alone "
                      f"{timing['alone_cpu_ms']:.3f} ms CPU, coupling fix {timing['md_work_ms']:.3f} ms, "
                      f"FE on the critical path {timing['fe_critical_cpu_ms']:.3f} ms CPU, FE stepping "
                      f"{timing['fe_compute_ms']:.3f} ms and waiting {timing['fe_wait_ms']:.3f} ms, MD waiting "
                      f"{timing['md_wait_ms']:.3f} ms")
    numbers: dict[str, object] = {
        "spacing": a, "mass_blend": beta, "gram_blend": theta, "gp_held_out_error": held_out, "fe_ranks": link.num_fe,
        "md_ranks": link.num_md, "patch": vars(patch) | {"stats": vars(patch.stats)}, "rows": rows,
        "timing": timing, "seconds": time.perf_counter() - start,
    }
    report(world, f"\ntotal {numbers['seconds']:.1f} s")
    if world.rank == 0 and args.json:
        with open(args.json, "w", encoding="utf-8") as stream:
            json.dump(numbers, stream, indent=1)
    return numbers


def report(world: MPI.Comm, line: str) -> None:
    """Print on world rank 0."""
    if world.rank == 0:
        print(line, flush=True)


if __name__ == "__main__":
    try:
        main()
    except BaseException:
        # an error on one group must end the run, not leave the other group waiting
        traceback.print_exc()
        sys.stdout.flush()
        MPI.COMM_WORLD.Abort(1)
