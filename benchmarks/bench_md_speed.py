"""MD speed and memory of a deployed ScaleLink model in LAMMPS against SNAP and EAM, in one run.

    python benchmarks/bench_md_speed.py --model mo.pt [--steps 50] [--repeats 3] [--threads 1] [--reference snap]

System: 4,096 atoms of bcc Mo (16 × 16 × 8 cubic cells, a = 3.16 Å), velocities drawn at
300 K, NVE, metal units, timestep 1 fs. Each potential runs a warm-up ``run`` (``--warmup``
steps) and then a timed ``run`` of ``--steps`` steps, serially and on 2 MPI ranks
(``OMP_NUM_THREADS=--threads`` on every rank):

* ``pair_style scalelink`` with the model file, type 1 as Mo;
* SNAP: ``Ta06A.snap`` as LAMMPS ships it (``hybrid/overlay`` of ZBL and SNAP, twojmax 6), on
  the same bcc lattice with Ta's lattice constant 3.316 Å and mass 180.88. It is a Ta
  potential: this row measures speed only, not accuracy for Mo;
* SNAP Mo and qSNAP Mo: ``Mo_Zuo_JPCA2020.snap`` (linear, twojmax 6, cutoff 4.6 Å) and
  ``Mo_Zuo_JPCA2020.quadratic.snap`` (quadratic, twojmax 6, cutoff 5.2 Å), plain ``pair_style
  snap`` as LAMMPS ships them, fitted by Zuo et al., J. Phys. Chem. A 124, 731 (2020) to the
  mlearn Mo data: the element-matched SNAP rows, on the same lattice and mass as ScaleLink
  (a = 3.16 Å, 95.95); ``bench_mlearn_snap.py`` gives their errors on the mlearn Mo test set;
* EAM: ``W_zhou.eam.alloy`` (Zhou et al. 2001, bcc W; the LAMMPS potentials folder has no Mo
  EAM), on the same lattice with the file's lattice constant 3.157 Å and mass 183.84.

µs/atom/step comes from LAMMPS' "Loop time" of the timed run. Memory per atom is given three
ways: the peak resident set of each rank's ``lmp`` process (``/usr/bin/time``, summed over the
ranks); the same above a baseline run of the same input with ``pair_style zero`` (every
``lmp`` loads the ScaleLink plugin and so libtorch at start-up: about 0.5 GB a rank that is
no potential's cost); and LAMMPS' own "Per MPI rank memory allocation" of the timed run
(average × ranks), which counts only the arrays LAMMPS and the pair styles report (not
libtorch's tensors). Each repeat runs the baseline and then every potential once at each rank
count, the potentials in an order rotated from repeat to repeat, so all rows see the same
machine state; the table gives min and median over the repeats and the time ratio to the
``--reference`` potential (ratio of medians, range of the per-repeat ratios). The default
reference is ``snap`` (Ta06A), so ratios stay comparable with earlier runs; ``--reference
snap_mo`` sets them against the element-matched SNAP. The load average at start and end and the
CPU model go into the output and the JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pair import BIN, POTENTIALS  # noqa: E402

CELLS = (16, 16, 8)
TIME = "/usr/bin/time"

SYSTEM = """\
units metal
atom_style atomic
atom_modify map array
boundary p p p
lattice bcc {a}
region box block 0 {nx} 0 {ny} 0 {nz}
create_box 1 box
create_atoms 1 box
mass 1 {mass}
{pair}
velocity all create 300.0 4928459 mom yes rot yes dist gaussian
timestep 0.001
thermo {steps}
fix nve all nve
run {warmup}
run {steps}
"""

# name: (lattice constant Å, mass, pair lines); {model} is filled in with the model file
PAIRS = {
    "scalelink": (3.16, 95.95, "pair_style scalelink\npair_coeff * * {model} Mo"),
    "snap": (3.316, 180.88, f"include {POTENTIALS / 'Ta06A.snap'}"),
    "snap_mo": (3.16, 95.95, f"include {POTENTIALS / 'Mo_Zuo_JPCA2020.snap'}"),
    "qsnap_mo": (3.16, 95.95, f"include {POTENTIALS / 'Mo_Zuo_JPCA2020.quadratic.snap'}"),
    "eam": (3.157, 183.84, f"pair_style eam/alloy\npair_coeff * * {POTENTIALS / 'W_zhou.eam.alloy'} W"),
    # no forces: the memory of the program itself (LAMMPS loads the ScaleLink plugin, hence
    # libtorch, at start-up in every run) and of the atoms
    "baseline": (3.16, 95.95, "pair_style zero 5.0\npair_coeff * *"),
}
MEASURED = ("scalelink", "snap", "snap_mo", "qsnap_mo", "eam")
LABELS = {"scalelink": "ScaleLink", "snap": "SNAP Ta06A (+ZBL)", "snap_mo": "SNAP Mo (Zuo 2020)",
          "qsnap_mo": "qSNAP Mo (Zuo 2020)", "eam": "EAM W_zhou"}


def run_lammps(kind: str, *, model: str, ranks: int, steps: int, warmup: int, threads: int,
               workdir: Path) -> dict[str, float]:
    """One LAMMPS run: loop time of the timed run, LAMMPS' memory estimate and the ranks' peak RSS.

    Returns µs/atom/step, atoms, the summed peak RSS of the ranks (kB) and LAMMPS' per-rank
    memory allocation of the timed run (average × ranks, kB).
    """
    a, mass, pair = PAIRS[kind]
    nx, ny, nz = CELLS
    text = SYSTEM.format(a=a, nx=nx, ny=ny, nz=nz, mass=mass, pair=pair.format(model=model),
                         steps=steps, warmup=warmup)
    (workdir / f"in.{kind}").write_text(text)
    # /usr/bin/time wraps each rank, so every rank reports its own peak; each appends its one
    # line to a file (appends are atomic), where lines on a shared stderr could interleave
    rss_file = workdir / f"rss.{kind}.{ranks}"
    rss_file.unlink(missing_ok=True)
    command = [TIME, "-a", "-o", str(rss_file), "-f", "MAXRSS_KB %M", str(BIN / "lmp"), "-in", f"in.{kind}", "-log", "none"]
    if ranks > 1:
        command = [str(BIN / "mpirun"), "-n", str(ranks), *command]
    # the .snap files name their coefficient files without a folder: LAMMPS looks them up here
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), LAMMPS_POTENTIALS=str(POTENTIALS))
    proc = subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=env)
    output = proc.stdout + proc.stderr
    loops = re.findall(r"Loop time of ([0-9.eE+-]+) on \d+ procs for (\d+) steps with (\d+) atoms", output)
    memory = re.findall(r"Per MPI rank memory allocation \(min/avg/max\) = [0-9.eE+-]+ \| ([0-9.eE+-]+) \|", output)
    peaks = [int(kb) for kb in re.findall(r"MAXRSS_KB (\d+)", rss_file.read_text() if rss_file.exists() else "")]
    if proc.returncode != 0 or len(loops) < 2 or not memory or len(peaks) != ranks:
        raise RuntimeError(
            f"{kind} on {ranks} rank(s) failed (exit {proc.returncode}, {len(loops)} loop-time lines, "
            f"{len(peaks)} of {ranks} peak-RSS lines); the end of its output:\n{output[-3000:]}")
    seconds, nsteps, natoms = float(loops[-1][0]), int(loops[-1][1]), int(loops[-1][2])
    return {
        "us_per_atom_step": 1e6 * seconds / (natoms * nsteps),
        "natoms": natoms,
        "peak_rss_kB": float(sum(peaks)),
        "peak_rss_kB_per_rank": peaks,
        "lammps_memory_kB": 1024 * float(memory[-1]) * ranks,
    }


def machine() -> dict[str, object]:
    """CPU model, core count and the current load average."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count()}


def summarise(runs: list[dict], kind: str, ranks: int, reference: str) -> dict[str, object]:
    """Min and median over the repeats of one potential at one rank count, time ratios to ``reference``."""
    own = [r for r in runs if r["potential"] == kind and r["ranks"] == ranks]
    ref = {r["repeat"]: r for r in runs if r["potential"] == reference and r["ranks"] == ranks}
    times = [r["us_per_atom_step"] for r in own]
    natoms = own[0]["natoms"]
    baseline = {r["repeat"]: r for r in runs if r["potential"] == "baseline" and r["ranks"] == ranks}
    ratios = [r["us_per_atom_step"] / ref[r["repeat"]]["us_per_atom_step"] for r in own]
    return {
        "potential": kind,
        "ranks": ranks,
        "natoms": natoms,
        "us_per_atom_step_min": min(times),
        "us_per_atom_step_median": statistics.median(times),
        "peak_rss_kB_per_atom": statistics.median(r["peak_rss_kB"] for r in own) / natoms,
        "peak_rss_above_baseline_kB_per_atom": statistics.median(
            r["peak_rss_kB"] - baseline[r["repeat"]]["peak_rss_kB"] for r in own) / natoms,
        "lammps_memory_kB_per_atom": statistics.median(r["lammps_memory_kB"] for r in own) / natoms,
        "reference": reference,
        "ratio_to_reference_of_medians": statistics.median(times)
        / statistics.median(r["us_per_atom_step"] for r in ref.values()),
        "ratio_to_reference_per_repeat": ratios,
    }


def table(summary: list[dict]) -> str:
    """The Markdown table of the summary rows."""
    reference = LABELS[summary[0]["reference"]]
    lines = [
        "| potential | ranks | µs/atom/step (min, median) | peak RSS kB/atom (sum of ranks) "
        f"| RSS above baseline kB/atom | LAMMPS memory kB/atom | ratio to {reference} (medians; per-repeat range) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in summary:
        low, high = min(row["ratio_to_reference_per_repeat"]), max(row["ratio_to_reference_per_repeat"])
        lines.append(
            f"| {LABELS[row['potential']]} | {row['ranks']} "
            f"| {row['us_per_atom_step_min']:.2f}, {row['us_per_atom_step_median']:.2f} "
            f"| {row['peak_rss_kB_per_atom']:.1f} | {row['peak_rss_above_baseline_kB_per_atom']:.1f} "
            f"| {row['lammps_memory_kB_per_atom']:.2f} "
            f"| {row['ratio_to_reference_of_medians']:.3g} ({low:.3g}–{high:.3g}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="deployed ScaleLink model file with species Mo")
    parser.add_argument("--steps", type=int, default=50, help="timed MD steps per run")
    parser.add_argument("--warmup", type=int, default=5, help="MD steps of the warm-up run before the timed one")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each potential, alternated")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every rank")
    parser.add_argument("--reference", default="snap", choices=MEASURED,
                        help="potential the time ratios are taken to (default: snap, the Ta06A SNAP)")
    parser.add_argument("--out", default="benchmarks/results_md_speed.json", help="JSON file for the results")
    args = parser.parse_args()
    for name in ("steps", "repeats", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be 0 or more, got {args.warmup}")
    model = os.path.abspath(args.model)
    if not os.path.isfile(model):
        parser.error(f"--model {args.model}: no such file; pass a model deployed with `scalelink deploy`")
    if not os.access(TIME, os.X_OK):
        sys.exit(f"{TIME} is missing; it measures each rank's peak memory (install GNU time)")

    conditions = {**machine(), "load_start": os.getloadavg(), "command": sys.argv, "model": model,
                  "cells": CELLS, "steps": args.steps, "warmup": args.warmup, "threads": args.threads,
                  "reference": args.reference}
    print(f"{conditions['cpu']}, {conditions['cores']} cores; load average at start "
          f"{' '.join(f'{x:.2f}' for x in conditions['load_start'])}", flush=True)

    kinds = list(MEASURED)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            order = kinds[repeat % len(kinds):] + kinds[:repeat % len(kinds)]
            for ranks in (1, 2):
                for kind in ("baseline", *order):
                    result = run_lammps(kind, model=model, ranks=ranks, steps=args.steps, warmup=args.warmup,
                                        threads=args.threads, workdir=Path(tmp))
                    runs.append({"potential": kind, "ranks": ranks, "repeat": repeat, **result})
                    print(json.dumps(runs[-1]), flush=True)

    conditions["load_end"] = os.getloadavg()
    summary = [summarise(runs, kind, ranks, args.reference) for kind in kinds for ranks in (1, 2)]
    print()
    print(f"{conditions['cpu']}, {conditions['cores']} cores; load average "
          f"{conditions['load_start'][0]:.2f} at start, {conditions['load_end'][0]:.2f} at end; "
          f"{summary[0]['natoms']} atoms, {args.steps} timed steps, {args.repeats} repeats, "
          f"OMP_NUM_THREADS={args.threads}; model {args.model}")
    print(table(summary))
    Path(args.out).write_text(json.dumps({"conditions": conditions, "summary": summary, "runs": runs}, indent=1))
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
