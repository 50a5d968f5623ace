"""Speed and memory of pair_style scalelink against its peers, measured in one run.

    python benchmarks/bench_pair.py --model demo_out/cuni.pt [--sizes 500 4000 32000] [--steps 20]

For each system size (random Cu-Ni fcc alloy, 600 K, NVE) it measures µs/atom/step and
peak resident memory of:

* ``pair_style scalelink`` in LAMMPS, serial and on 2 MPI ranks;
* the same model file driven from Python through the ASE calculator (one force call a step);
* the raw TorchScript forward+backward on the periodic graph of the structure the serial
  LAMMPS run ended with (same atoms, same edges), twice: as loaded, and with the runtime
  settings the pair style applies on CPU (weights frozen, no TorchScript graph
  optimisation, freed memory kept on the heap), which isolates the pair style's overhead;
* LAMMPS' EAM (CuNi.eam.alloy) and SNAP (Ta06A, bcc Ta of the same size) as context.

It prints a Markdown table and writes the numbers as JSON (``--out``).

    python benchmarks/bench_pair.py --model demo_out/cuni.pt --sizes 4000 --finite-check 4

measures instead what the pair style's check of the model's results (NaN/Inf in energy,
forces, virial) costs: in one serial LAMMPS process, timed runs with and without the check
(``SCALELINK_SKIP_FINITE_CHECK=1``) in the order with, without, without, with, ..., so that
a drift of the machine's load falls on both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BIN = Path(sys.executable).parent
POTENTIALS = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages" / "lammps" / "share" / "lammps" / "potentials"

SYSTEM = """\
units metal
atom_style atomic
atom_modify map array
boundary p p p
lattice {lattice} {a}
region box block 0 {cells} 0 {cells} 0 {cells}
create_box 2 box
create_atoms 1 box
set type 1 type/fraction 2 0.5 12345
mass * 60.0
{pair}
velocity all create 600.0 4928459 mom yes rot yes dist gaussian
timestep 0.001
thermo {steps}
fix nve all nve
run 5
run {steps}
{final}
"""

PAIRS = {
    "scalelink": ("fcc", 3.565, 4, "pair_style scalelink\npair_coeff * * {model} Cu Ni"),
    "eam": ("fcc", 3.565, 4, f"pair_style eam/alloy\npair_coeff * * {POTENTIALS / 'CuNi.eam.alloy'} Cu Ni"),
    "snap": ("bcc", 3.316, 2, f"pair_style snap\npair_coeff * * {POTENTIALS / 'Ta06A.snapcoeff'} "
             f"{POTENTIALS / 'Ta06A.snapparam'} Ta Ta"),
}

FINAL_DUMP = "final.dump"

_MEASURE = """
import resource, subprocess, sys
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stdout.write(proc.stdout[-20000:])
print("MAXRSS_KB", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(proc.returncode)
"""


def lammps(
    kind: str, model: str, cells: int, steps: int, ranks: int, workdir: Path, extra_env: dict[str, str] | None = None
) -> dict[str, float]:
    """Loop time per atom and step of the second `run`, peak RSS of the largest process."""
    lattice, a, per_cell, pair = PAIRS[kind]
    # the serial scalelink run leaves its final structure for the Python-side measurements
    final = f"write_dump all custom {FINAL_DUMP} id type x y z modify sort id" if kind == "scalelink" and ranks == 1 else ""
    text = SYSTEM.format(lattice=lattice, a=a, cells=cells, pair=pair.format(model=model), steps=steps, final=final)
    (workdir / f"in.{kind}").write_text(text)
    command = [str(BIN / "lmp"), "-in", f"in.{kind}", "-log", "none"]
    if ranks > 1:
        command = [str(BIN / "mpirun"), "-n", str(ranks), *command]
    env = dict(os.environ, OMP_NUM_THREADS="1" if ranks > 1 else os.environ.get("OMP_NUM_THREADS", "2"))
    env.update(extra_env or {})
    proc = subprocess.run([sys.executable, "-c", _MEASURE, *command], cwd=workdir, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    loops = re.findall(r"Loop time of ([0-9.eE+-]+) on \d+ procs for (\d+) steps with (\d+) atoms", proc.stdout)
    seconds, nsteps, natoms = float(loops[-1][0]), int(loops[-1][1]), int(loops[-1][2])
    ghosts = re.findall(r"Nghost:\s+([0-9.eE+-]+) ave", proc.stdout)
    rss = int(re.findall(r"MAXRSS_KB (\d+)", proc.stdout)[-1])
    return {
        "us_per_atom_step": 1e6 * seconds / (natoms * nsteps),
        "natoms": natoms,
        "ghosts_per_rank": float(ghosts[-1]) if ghosts else float("nan"),
        "peak_rss_MB": rss / 1024,
    }


def final_structure(workdir: Path):
    """The structure the serial scalelink run ended with, types 1, 2 as Cu, Ni."""
    from ase.io import read

    atoms = read(workdir / FINAL_DUMP, format="lammps-dump-text")
    atoms.symbols = ["Cu" if z == 1 else "Ni" for z in atoms.numbers]
    return atoms


# The raw call as the pair style runs it on CPU (see lammps_plugin/model/scalelink_model.cpp and
# pair_scalelink.cpp), in a process of its own because the malloc settings are process-wide.
_RAW_AS_PLUGIN = """
import ctypes, sys, time
import torch
from ase.io import read
from scalelink.bridge import keys
from scalelink.bridge.ase import neighbor_graph, species_indices
from scalelink.bridge.model_file import load_model
model, dump, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
libc = ctypes.CDLL(None)
libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD
libc.mallopt(-1, 2**31 - 1)  # M_TRIM_THRESHOLD
module, metadata = load_model(model)
for parameter in module.parameters():
    parameter.requires_grad_(False)
atoms = read(dump, format="lammps-dump-text")
symbols = ["Cu" if z == 1 else "Ni" for z in atoms.numbers]
edge_index, edge_vectors = neighbor_graph(atoms, metadata.cutoff)
inputs = {
    keys.EDGE_INDEX: torch.from_numpy(edge_index),
    keys.EDGE_VECTORS: torch.from_numpy(edge_vectors),
    keys.SPECIES: torch.from_numpy(species_indices(symbols, metadata.species)),
    keys.N_LOCAL: torch.tensor(len(atoms)),
}
with torch.jit.optimized_execution(False):
    for _ in range(3):
        module(inputs)
    start = time.perf_counter()
    for _ in range(steps):
        module(inputs)
print("RAW_US", 1e6 * (time.perf_counter() - start) / (len(atoms) * steps))
"""


def python_side(model: str, workdir: Path, steps: int) -> dict[str, float]:
    """The ASE calculator and the raw TorchScript call on the serial LAMMPS run's last structure."""
    import torch

    from scalelink.bridge import keys
    from scalelink.bridge.ase import ScaleLinkCalculator, neighbor_graph, species_indices

    rng = np.random.default_rng(0)
    atoms = final_structure(workdir)
    calc = ScaleLinkCalculator(model)
    atoms.calc = calc
    atoms.get_forces()
    start = time.perf_counter()
    for _ in range(steps):
        atoms.positions += rng.normal(scale=1e-3, size=atoms.positions.shape)
        atoms.get_forces()
    ase_us = 1e6 * (time.perf_counter() - start) / (len(atoms) * steps)

    atoms = final_structure(workdir)
    edge_index, edge_vectors = neighbor_graph(atoms, calc.metadata.cutoff)
    inputs = {
        keys.EDGE_INDEX: torch.from_numpy(edge_index),
        keys.EDGE_VECTORS: torch.from_numpy(edge_vectors),
        keys.SPECIES: torch.from_numpy(species_indices(list(atoms.get_chemical_symbols()), calc.metadata.species)),
        keys.N_LOCAL: torch.tensor(len(atoms)),
    }
    # the profiling executor optimises on the second call: time from the fourth
    for _ in range(3):
        calc.module(inputs)
    start = time.perf_counter()
    for _ in range(steps):
        calc.module(inputs)
    raw_us = 1e6 * (time.perf_counter() - start) / (len(atoms) * steps)

    proc = subprocess.run([sys.executable, "-c", _RAW_AS_PLUGIN, model, str(workdir / FINAL_DUMP), str(steps)],
                          capture_output=True, text=True)
    found = re.findall(r"RAW_US ([0-9.eE+-]+)", proc.stdout)
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"raw TorchScript with the plugin's settings failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return {
        "ase_us_per_atom_step": ase_us,
        "raw_torchscript_us_per_atom_step": raw_us,
        "raw_torchscript_plugin_settings_us_per_atom_step": float(found[-1]),
        "edges": int(edge_index.shape[1]),
    }


def finite_check_cost(model: str, sizes: list[int], steps: int, repeats: int) -> None:
    """µs/atom/step of the serial pair style with and without its finite check, alternated.

    One LAMMPS process per size: after the warm-up, 2 x ``repeats`` timed runs of ``steps``
    steps, the check switched by ``shell putenv SCALELINK_SKIP_FINITE_CHECK=...`` and a new
    ``pair_style`` (which reads the variable) in the order with, without, without, with, ...

    The alternation cannot resolve a cost far below the machine's run-to-run scatter, so the
    check is also timed from inside: with ``SCALELINK_TIME_FINITE_CHECK=1`` the pair style sums
    the wall time of the check (the pass over energy, forces and virial and its
    ``MPI_Allreduce``) and writes it to the log at the next ``pair_style``; per model call,
    against the same run's loop time per step, that is the check's share of the step.
    """
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f} at the start; model {model}; {steps} steps a run; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '2')}")
    print("| atoms | with check | without | with / without |")
    print("|---|---|---|---|")
    _, a, _, pair = PAIRS["scalelink"]
    pair = pair.format(model=model)
    order = [[True, False, False, True][k % 4] for k in range(2 * repeats)]
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            cells = max(2, round((size / 4) ** (1 / 3)))
            runs = "".join(
                f"shell putenv SCALELINK_SKIP_FINITE_CHECK={0 if checked else 1}\n{pair}\nrun {steps}\n"
                for checked in order
            ) + f"{pair}\n"  # writes the last run's check time
            text = SYSTEM.format(lattice="fcc", a=a, cells=cells, pair=pair, steps=steps, final=runs)
            text = text.replace(f"run 5\nrun {steps}\n", "run 5\n", 1)
            (Path(tmp) / "in.check").write_text(text)
            env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"),
                       SCALELINK_TIME_FINITE_CHECK="1")
            proc = subprocess.run([str(BIN / "lmp"), "-in", "in.check", "-log", "none"], cwd=tmp,
                                  capture_output=True, text=True, env=env)
            loops = re.findall(r"Loop time of ([0-9.eE+-]+) on \d+ procs for (\d+) steps with (\d+) atoms", proc.stdout)
            if proc.returncode != 0 or len(loops) != 1 + len(order):
                raise RuntimeError(f"finite check timing failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
            natoms = int(loops[0][2])
            rates = [1e6 * float(seconds) / (natoms * int(n)) for seconds, n, _ in loops[1:]]
            times = {checked: [r for r, c in zip(rates, order) if c == checked] for checked in (True, False)}
            for on, off in zip(times[True], times[False]):
                print(f"| {natoms} | {on:.2f} | {off:.2f} | {on / off:.3f} |")
            on, off = float(np.median(times[True])), float(np.median(times[False]))
            ratio = float(np.median(np.array(times[True]) / np.array(times[False])))
            print(f"| {natoms}, medians of {repeats} | **{on:.2f}** | **{off:.2f}** | **{ratio:.3f}** (median of the ratios) |")
            # the warm-up's check time first, then one line per checked run
            checks = re.findall(r"ScaleLink: finite check: ([0-9.eE+-]+) s over (\d+) model calls", proc.stdout)
            if len(checks) != 1 + sum(order):
                raise RuntimeError(f"expected {1 + sum(order)} finite-check timings, found {len(checks)}")
            checked_loops = [loop for loop, checked in zip(loops[1:], order) if checked]
            shares = [(float(sec) / int(calls)) / (float(loop_s) / int(n))
                      for (sec, calls), (loop_s, n, _) in zip(checks[1:], checked_loops)]
            per_call = [1e6 * float(sec) / int(calls) for sec, calls in checks[1:]]
            print(f"| {natoms}, timed inside | check: median {np.median(per_call):.1f} µs a model call | | "
                  f"**{100 * np.median(shares):.4f} %** of the step (max {100 * max(shares):.4f} %) |")
    print(f"(µs/atom/step; load average {os.getloadavg()[0]:.2f} at the end)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 4000, 32000])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--python-max-atoms", type=int, default=4000, help="skip the ASE/raw measurements above this")
    parser.add_argument("--out", default="benchmarks/results_pair.json")
    parser.add_argument("--finite-check", type=int, default=0, metavar="REPEATS",
                        help="only time the serial pair style with and without its finite check, REPEATS times each")
    args = parser.parse_args()
    model = os.path.abspath(args.model)
    if args.finite_check:
        finite_check_cost(model, args.sizes, args.steps, args.finite_check)
        return

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for size in args.sizes:
            row: dict[str, object] = {"target_atoms": size}
            cells = max(2, round((size / 4) ** (1 / 3)))
            for ranks in (1, 2):
                row[f"scalelink_{ranks}"] = lammps("scalelink", model, cells, args.steps, ranks, work)
                row[f"eam_{ranks}"] = lammps("eam", model, cells, args.steps * 5, ranks, work)
            snap_cells = max(2, round((size / 2) ** (1 / 3)))
            row["snap_1"] = lammps("snap", model, snap_cells, args.steps, 1, work)
            if 4 * cells**3 <= args.python_max_atoms:
                row.update(python_side(model, work, max(3, args.steps // 4)))
            rows.append(row)
            print(json.dumps(row), flush=True)

    print()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; model {args.model}")
    print("| atoms | scalelink 1 rank | scalelink 2 ranks | 2-rank efficiency | ghosts/rank (2 ranks) | peak RSS 1 rank (MB) "
          "| ASE calculator | raw TorchScript | raw TorchScript, plugin settings | EAM 1 / 2 ranks | SNAP 1 rank |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        s1, s2 = row["scalelink_1"], row["scalelink_2"]
        eff = s1["us_per_atom_step"] / (2 * s2["us_per_atom_step"])
        ase = row.get("ase_us_per_atom_step")
        raw = row.get("raw_torchscript_us_per_atom_step")
        raw_plugin = row.get("raw_torchscript_plugin_settings_us_per_atom_step")
        print(
            f"| {s1['natoms']} | {s1['us_per_atom_step']:.1f} | {s2['us_per_atom_step']:.1f} | {100 * eff:.0f} % "
            f"| {s2['ghosts_per_rank']:.0f} | {s1['peak_rss_MB']:.0f} "
            f"| {'-' if ase is None else f'{ase:.1f}'} | {'-' if raw is None else f'{raw:.1f}'} "
            f"| {'-' if raw_plugin is None else f'{raw_plugin:.1f}'} "
            f"| {row['eam_1']['us_per_atom_step']:.2f} / {row['eam_2']['us_per_atom_step']:.2f} "
            f"| {row['snap_1']['us_per_atom_step']:.1f} |"
        )
    print("(µs/atom/step unless stated)")
    for row in rows:
        s1 = row["scalelink_1"]["us_per_atom_step"]
        if "raw_torchscript_us_per_atom_step" in row:
            print(f"{row['scalelink_1']['natoms']} atoms, scalelink 1 rank over raw TorchScript: "
                  f"{s1 / row['raw_torchscript_us_per_atom_step']:.2f} (as loaded), "
                  f"{s1 / row['raw_torchscript_plugin_settings_us_per_atom_step']:.2f} (plugin settings); "
                  f"ASE calculator over scalelink: {row['ase_us_per_atom_step'] / s1:.1f}x")
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump({"model": args.model, "steps": args.steps, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
