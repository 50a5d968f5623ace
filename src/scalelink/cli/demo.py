"""The main demo: reference data → trained GNN potential → model file → LAMMPS MD.

Everything runs on built-in defaults: EMT labels a Cu–Ni fcc alloy data set, a small GNN is
trained for a fixed time budget, deployed, checked on held-out data, and run in LAMMPS with
``pair_style scalelink`` serially and under ``mpirun -n 2``. LAMMPS runs as a separate
program (``lmp``), exactly as a user runs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
from ase.io import read, write

from scalelink.training.config import load_config
from scalelink.training.evaluate import evaluate_model_file
from scalelink.training.export import export_potential
from scalelink.training.reference import write_fcc_alloy_dataset
from scalelink.training.trainer import load_checkpoint, train

__all__ = ["MD_INPUT", "nve_drift", "parse_thermo", "run_demo", "run_lammps"]

MD_INPUT = """\
# NVE molecular dynamics of a random Cu-Ni fcc alloy with a ScaleLink potential
units           metal
atom_style      atomic
atom_modify     map array
boundary        p p p
lattice         fcc 3.565
region          box block 0 {cells} 0 {cells} 0 {cells}
create_box      2 box
create_atoms    1 box
set             type 1 type/fraction 2 0.5 12345
mass            1 63.546
mass            2 58.693

pair_style      scalelink
pair_coeff      * * {model} Cu Ni

velocity        all create 600.0 4928459 mom yes rot yes dist gaussian
timestep        0.001
thermo_style    custom step time temp pe ke etotal press
thermo_modify   format float %.10g
thermo          {thermo}
fix             nve all nve
run             {steps}
"""


def _executable(name: str) -> str:
    # prefer the programs of the environment running this interpreter (the venv's MPI)
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    return candidate if os.path.isfile(candidate) else (shutil.which(name) or name)


def run_lammps(input_file: str, log_file: str, ranks: int = 1, cwd: str | None = None) -> str:
    """Run ``lmp -in input_file`` (under ``mpirun -n ranks`` if ranks > 1); return the log text.

    Raises:
        RuntimeError: LAMMPS exited with an error; the message carries its last lines.
    """
    command = [_executable("lmp"), "-in", input_file, "-log", log_file, "-screen", "none"]
    if ranks > 1:
        command = [_executable("mpirun"), "-n", str(ranks), *command]
    env = dict(os.environ)
    if ranks > 1:
        env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    log_path = os.path.join(cwd or ".", log_file)
    log = open(log_path, encoding="utf-8").read() if os.path.isfile(log_path) else ""
    if proc.returncode != 0:
        tail = "\n".join((log or proc.stdout + proc.stderr).strip().splitlines()[-8:])
        raise RuntimeError(f"LAMMPS failed ({' '.join(command)}):\n{tail}")
    return log


def parse_thermo(log: str) -> dict[str, np.ndarray]:
    """Columns of the (last) thermo table of a LAMMPS log."""
    blocks = re.findall(r"^\s*Step .*?\n(?:.*?\n)*?(?=Loop time)", log, flags=re.M)
    if not blocks:
        raise RuntimeError("no thermo table found in the LAMMPS log")
    lines = blocks[-1].strip().splitlines()
    header = lines[0].split()
    rows = [ln.split() for ln in lines[1:] if ln.split() and ln.split()[0].lstrip("-").isdigit()]
    data = np.array(rows, dtype=float)
    return {name: data[:, k] for k, name in enumerate(header)}


def loop_seconds(log: str) -> float:
    """Wall time of the last ``run`` from its "Loop time" line."""
    found = re.findall(r"Loop time of ([0-9.eE+-]+) on", log)
    if not found:
        raise RuntimeError("no 'Loop time' line in the LAMMPS log")
    return float(found[-1])


def nve_drift(thermo: dict[str, np.ndarray], natoms: int) -> float:
    """Slope of the total energy against time, in eV/atom/ps (least-squares line)."""
    slope = np.polyfit(thermo["Time"], thermo["TotEng"], 1)[0]
    return float(slope / natoms)


def run_demo(out: str = "demo_out", *, train_seconds: float = 240.0, md_steps: int = 1000, cells: int = 5) -> int:
    """Run the whole chain in ``out`` and print what it reached."""
    t0 = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    data = os.path.join(out, "cuni_emt.extxyz")
    print(f"[1/5] reference data: 400 EMT-labelled Cu-Ni fcc structures -> {data}", flush=True)
    write_fcc_alloy_dataset(data, 400, species=("Cu", "Ni"), seed=0)

    print(f"[2/5] training an ACE potential (budget {train_seconds:.0f} s)", flush=True)
    # the ACE training defaults (one structure per step at 2e-3) are set for DFT cells of 50 to
    # 110 atoms; on these cells of 32 and 48 atoms, four per step at 5e-3 reach about three
    # times lower energy errors in the same four minutes (benchmarks/RESULTS.md, demo section)
    config = load_config(
        None, data=[data], species=["Cu", "Ni"], out=os.path.join(out, "run"), epochs=400, time_limit=train_seconds,
        batch_size=4, learning_rate=5e-3,
    )
    result = train(config, progress=sys.stderr.isatty(), overwrite=True)  # a repeated demo starts afresh

    model_file = os.path.abspath(os.path.join(out, "cuni.pt"))
    print(f"[3/5] deploying -> {model_file}", flush=True)
    network, species = load_checkpoint(result.run_dir, "best")
    # single precision: about 3x faster MD on CPU, and well inside the fitting error
    export_potential(network, species, model_file, dtype="float32")

    print("[4/5] held-out accuracy of the deployed file (ASE calculator)", flush=True)
    split = json.load(open(os.path.join(result.run_dir, "split.json")))
    frames = read(data, index=":", parallel=False)
    test_file = os.path.join(out, "cuni_test.extxyz")
    write(test_file, [frames[i] for i in split["test"]], format="extxyz", parallel=False)
    metrics, _ = evaluate_model_file(model_file, [test_file])
    print(f"      {metrics.summary()}", flush=True)

    natoms = 4 * cells**3
    print(f"[5/5] LAMMPS NVE MD, {natoms} atoms, {md_steps} steps, pair_style scalelink", flush=True)
    with open(os.path.join(out, "md.in"), "w", encoding="utf-8") as handle:
        handle.write(MD_INPUT.format(cells=cells, model=model_file, steps=md_steps, thermo=max(md_steps // 50, 1)))
    rows = []
    for ranks in (1, 2):
        log = run_lammps("md.in", f"log.md.{ranks}", ranks=ranks, cwd=out)
        thermo = parse_thermo(log)
        seconds = loop_seconds(log)
        rows.append((ranks, seconds, 1e6 * seconds / (natoms * md_steps), nve_drift(thermo, natoms), thermo))

    print()
    print("=" * 78)
    print("ScaleLink demo: Cu-Ni EMT data -> ACE potential -> LAMMPS pair_style scalelink")
    print(f"held-out test ({metrics.n_structures} structures): energy RMSE {1e3 * metrics.energy_rmse:.2f} meV/atom, "
          f"force RMSE {1e3 * metrics.force_rmse:.1f} meV/Å")
    print(f"{'ranks':>5} {'loop time (s)':>14} {'µs/atom/step':>13} {'NVE drift (eV/atom/ps)':>23} {'final PE (eV)':>14}")
    for ranks, seconds, us, drift, thermo in rows:
        print(f"{ranks:>5} {seconds:>14.2f} {us:>13.1f} {drift:>23.2e} {thermo['PotEng'][-1]:>14.6f}")
    step0 = abs(rows[0][4]["PotEng"][0] - rows[1][4]["PotEng"][0])
    print(f"step-0 potential energy, serial vs 2 ranks: |difference| = {step0:.2e} eV "
          "(later steps part ways: MD is chaotic)")
    summary = {
        "test_energy_rmse_eV_per_atom": metrics.energy_rmse,
        "test_force_rmse_eV_per_A": metrics.force_rmse,
        "test_structures": metrics.n_structures,
        "md_atoms": natoms,
        "md_steps": md_steps,
        "step0_pe_difference_eV": step0,
        "md": [
            {"ranks": r, "loop_seconds": sec, "us_per_atom_step": us, "nve_drift_eV_per_atom_ps": drift}
            for r, sec, us, drift, _ in rows
        ],
        "seconds": time.perf_counter() - t0,
    }
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    print(f"total demo time {summary['seconds']:.0f} s; everything is in {os.path.abspath(out)} (summary.json)")
    print("=" * 78)
    return 0
