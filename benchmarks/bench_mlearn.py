"""ScaleLink against MACE on the mlearn Cu / Mo / Si DFT sets, both trained for the same wall-clock time.

    python benchmarks/bench_mlearn.py [--elements Cu Mo Si] [--budget 3600] [--threads 2]
    python benchmarks/bench_mlearn.py --elements Si --budget 120 --threads 1 --skip-scalelink   # MACE alone
    python benchmarks/bench_mlearn.py --skip-mace --scalelink-args "--cutoff 5.5 --seed 1"      # extra train flags

Data: ``shared/data/mlearn/<El>/{train,test}.extxyz`` (``--data``), the training and test sets of Zuo et al.,
J. Phys. Chem. A 124, 731 (2020); see the README there. For each element, everything lands in
``--work``/<El>/, and the trainings run one after the other, never two at once:

1. ScaleLink, through its command line as a user runs it (the ``scalelink`` next to this Python):
   ``scalelink train --data train.extxyz --species El --time-limit BUDGET --epochs 100000 --test-fraction 0``
   (the whole file for training and validation: test.extxyz is the test set), then
   ``scalelink deploy RUN -o model.pt`` (best checkpoint, float64) and ``scalelink evaluate model.pt
   test.extxyz``, whose metrics JSON gives the errors.
2. MACE (pip ``mace-torch``) in its own virtual environment ``--mace-venv``, created if missing:
   ``mace_run_train`` with a small CPU model (32 channels, max_L 1, 2 interactions, correlation 3,
   r_max 5 Å), E0s by least squares (``--E0s average``), MACE's default loss and weights (energy 1,
   forces 100), its default training precision float64, batch 5, validation fraction 0.1, stopped by
   SIGTERM when the budget is spent. MACE writes a checkpoint whenever the validation loss improves;
   MACE itself turns the newest into a model (``mace_run_train --restart_latest`` with
   ``--max_num_epochs`` at that checkpoint's epoch: it loads it, trains no further and saves the
   model), which ``MACECalculator`` then scores on test.extxyz inside the MACE venv.
3. Errors as published: energy MAE per atom over structures (meV/atom) and force MAE over all Cartesian
   components (meV/Å); the table sets them beside the published MTP and GAP errors, with training
   seconds and epochs. ``--out`` (JSON) also holds RMSEs, the commands, versions and the machine's load.

Each training and scoring gets ``--threads`` threads (OMP_NUM_THREADS, MKL_NUM_THREADS; torch sizes its
intra-op pool from them). The budget is wall-clock time from the start of the training process, data
loading included; ScaleLink checks its ``--time-limit`` at the end of each epoch, so it may overrun by
up to one epoch (the JSON holds the real wall time of both).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MAIN_BIN = Path(sys.executable).parent

# Zuo et al., J. Phys. Chem. A 124, 731 (2020): test-set MAE, as tabulated in ACEsuit/ACEpotentials.jl
# examples/zuobench/error_table.jl (copied in shared/data/mlearn/README.md).
# method -> element -> (energy MAE meV/atom, force MAE meV/Å)
PUBLISHED = {
    "MTP": {"Cu": (0.41, 10.0), "Mo": (2.83, 90.0), "Si": (2.21, 60.0)},
    "GAP": {"Cu": (0.46, 10.0), "Mo": (2.24, 90.0), "Si": (2.91, 70.0)},
}
PUBLISHED_SOURCE = ("Zuo et al., J. Phys. Chem. A 124, 731 (2020), as tabulated in ACEsuit/ACEpotentials.jl "
                    "examples/zuobench/error_table.jl")

# the model a MACE user would pick for a few hundred structures on a CPU; everything else at MACE's defaults
MACE_MODEL = ["--model=MACE", "--num_channels=32", "--max_L=1", "--num_interactions=2", "--correlation=3",
              "--r_max=5.0"]
MACE_SEED = 123  # MACE's default; the checkpoint tag is NAME_run-SEED

_MACE_SCORE = """
import sys
import numpy as np
import torch
from ase.io import read
from mace.calculators import MACECalculator
model, data, dtype, threads, out = sys.argv[1:6]
torch.set_num_threads(int(threads))
calc = MACECalculator(model_paths=model, device="cpu", default_dtype=dtype)
energy, forces = [], []
for atoms in read(data, index=":"):
    atoms.calc = calc
    energy.append(atoms.get_potential_energy())
    forces.append(atoms.get_forces())
np.savez(out, energy=np.array(energy), forces=np.concatenate(forces))
"""

_VERSIONS = """
import importlib.metadata, json
print(json.dumps({p: importlib.metadata.version(p) for p in ("mace-torch", "torch", "e3nn", "ase")}))
"""


def log(message: str) -> None:
    print(f"[bench_mlearn] {message}", flush=True)


def thread_env(threads: int, drop_pythonpath: bool = False) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if drop_pythonpath:
        env.pop("PYTHONPATH", None)
    return env


def run_checked(command: list[str], cwd: Path, env: dict[str, str], what: str) -> str:
    """Run ``command``; returns its standard output; on failure raises with its last output lines."""
    log(f"{what}: {' '.join(part if len(part) < 200 else '<script>' for part in command)}")
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout


def score_errors(energy: np.ndarray, forces: np.ndarray, test_file: Path) -> dict[str, float]:
    """Energy-per-atom and force-component errors of predictions against the labels of ``test_file``.

    ``energy`` [S] total energies (eV), ``forces`` [N, 3] (eV/Å), in the file's frame and atom order.
    """
    from ase.io import read

    frames = read(test_file, index=":")
    natoms = np.array([len(a) for a in frames])
    e_error = (np.asarray(energy) - np.array([a.get_potential_energy() for a in frames])) / natoms
    f_error = np.asarray(forces) - np.concatenate([a.get_forces() for a in frames])
    return {"energy_mae_meV_per_atom": 1e3 * float(np.mean(np.abs(e_error))),
            "force_mae_meV_per_A": 1e3 * float(np.mean(np.abs(f_error))),
            "energy_rmse_meV_per_atom": 1e3 * float(np.sqrt(np.mean(e_error**2))),
            "force_rmse_meV_per_A": 1e3 * float(np.sqrt(np.mean(f_error**2))),
            "n_structures": len(frames), "n_atoms": int(natoms.sum())}


# ---------------------------------------------------------------- ScaleLink


def run_scalelink(element: str, data: Path, folder: Path, budget: float, threads: int, extra: list[str]) -> dict:
    """Train, deploy and evaluate through the ``scalelink`` command; returns errors, seconds and epochs."""
    scalelink = MAIN_BIN / "scalelink"
    if not scalelink.is_file():
        raise RuntimeError(f"no `scalelink` console script next to {sys.executable}; install the package "
                           f"(pip install -e .) into this environment or run with its python")
    folder.mkdir(parents=True, exist_ok=True)
    run_dir, model = folder / "scalelink", folder / "model.pt"
    shutil.rmtree(run_dir, ignore_errors=True)
    env = thread_env(threads)
    # the whole training file for training and validation: test.extxyz is the test set
    command = [str(scalelink), "train", "--data", str(data / "train.extxyz"), "--species", element,
               "--time-limit", f"{budget:g}", "--epochs", "100000", "--test-fraction", "0", "--out", str(run_dir),
               "--quiet"]
    command += extra
    start = time.perf_counter()
    output = run_checked(command, folder, env, f"{element}: ScaleLink training (budget {budget:.0f} s)")
    seconds = time.perf_counter() - start
    (folder / "scalelink_train.log").write_text(output)
    run_checked([str(scalelink), "deploy", str(run_dir), "-o", str(model)], folder, env, f"{element}: deploy")
    metrics_file = folder / "model_test_metrics.json"
    run_checked([str(scalelink), "evaluate", str(model), str(data / "test.extxyz"), "-o", str(metrics_file)],
                folder, env, f"{element}: evaluate")
    metrics = json.loads(metrics_file.read_text())
    run_metrics = json.loads((run_dir / "metrics.json").read_text())
    run_config = (run_dir / "config.yaml").read_text()
    settings = {key: found.group(1) for key in ("architecture", "dtype", "cutoff")
                if (found := re.search(rf"^{key}: *(\S+)", run_config, re.M))}
    return {"test": {key: metrics[key] for key in ("energy_mae_meV_per_atom", "force_mae_meV_per_A",
                                                   "energy_rmse_meV_per_atom", "force_rmse_meV_per_A",
                                                   "n_structures", "n_atoms")},
            "train_seconds": seconds, "trainer_seconds": run_metrics.get("seconds"),
            "epochs": run_metrics.get("epochs_run"), "best_epoch": run_metrics.get("best_epoch"),
            "train_command": command, "run_config": settings, "deployed_dtype": "float64"}


# ---------------------------------------------------------------- MACE


def base_python312() -> str:
    """The Python 3.12 behind this environment if there is one (a pyenv shim may not offer python3.12)."""
    candidate = Path(sys.base_prefix) / "bin" / "python3.12"
    return str(candidate) if candidate.is_file() else "python3.12"


def ensure_mace_venv(venv: Path) -> float | None:
    """Create the MACE venv if ``mace_run_train`` is missing; returns the seconds it took (None: it existed).

    pip runs with its cache on (~/.cache/pip), so whatever it has cached is not fetched again.
    """
    if (venv / "bin" / "mace_run_train").is_file():
        return None
    start = time.perf_counter()
    for command in ([base_python312(), "-m", "venv", str(venv)], [str(venv / "bin" / "pip"), "install", "mace-torch"]):
        log("setting up MACE: " + " ".join(command))
        subprocess.run(command, check=True)
    return time.perf_counter() - start


def mace_command(venv: Path, train_file: Path, dtype: str, max_epochs: int) -> list[str]:
    return [str(venv / "bin" / "mace_run_train"), "--name=mace", f"--train_file={train_file}",
            "--valid_fraction=0.1", "--energy_key=energy", "--forces_key=forces", "--E0s=average", *MACE_MODEL,
            "--batch_size=5", f"--max_num_epochs={max_epochs}", "--device=cpu", f"--default_dtype={dtype}",
            f"--seed={MACE_SEED}", "--keep_checkpoints", "--checkpoints_dir=checkpoints", "--model_dir=.",
            "--log_dir=logs", "--results_dir=results"]


def checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """MACE's checkpoints in ``folder``/checkpoints as (epoch, path), newest first."""
    pattern = re.compile(rf"^mace_run-{MACE_SEED}_epoch-(\d+)\.pt$")
    return sorted(((int(m.group(1)), p) for p in (folder / "checkpoints").glob("*.pt") if (m := pattern.match(p.name))),
                  reverse=True)


def newest_loadable_checkpoint(folder: Path, venv: Path, env: dict[str, str]) -> tuple[Path, int]:
    """The newest checkpoint that loads, the others removed: the stop may have cut a write short.

    MACE keeps every checkpoint (``--keep_checkpoints``) and the training loop prunes all but the two
    newest, so that a complete one is left in that case.
    """
    keep = None
    for epoch, path in checkpoints(folder):
        if keep is None:
            load = "import sys, torch; torch.load(sys.argv[1], map_location='cpu', weights_only=False)"
            probe = subprocess.run([str(venv / "bin" / "python"), "-c", load, str(path)], env=env, capture_output=True)
            if probe.returncode == 0:
                keep = (path, epoch)
                continue
            log(f"checkpoint {path.name} does not load (cut short by the stop?): removed")
        path.unlink()
    if keep is None:
        raise RuntimeError(f"MACE wrote no loadable checkpoint in {folder / 'checkpoints'} (it writes one at the end "
                           f"of an epoch that improves the validation loss: is the budget shorter than one epoch?); "
                           f"see {folder / 'train.log'}")
    return keep


def train_until(command: list[str], folder: Path, env: dict[str, str], budget: float) -> tuple[float, bool, int]:
    """Run MACE's training until it ends or ``budget`` seconds have passed; returns (seconds, stopped, code).

    Every 30 s the checkpoints but the two newest are deleted (a checkpoint is ~10 MB, written at each
    improvement).
    """
    start = time.perf_counter()
    with open(folder / "train.log", "w") as out:
        # its own session, so that the stop reaches any process it started too
        proc = subprocess.Popen(command, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        while (left := budget - (time.perf_counter() - start)) > 0:
            try:
                proc.wait(timeout=min(30.0, left))
                return time.perf_counter() - start, False, proc.returncode
            except subprocess.TimeoutExpired:
                for _, old in checkpoints(folder)[2:]:
                    old.unlink()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return time.perf_counter() - start, True, proc.returncode


def run_mace(element: str, data: Path, folder: Path, venv: Path, budget: float, threads: int, dtype: str) -> dict:
    """Train MACE for ``budget`` seconds, make a model of its newest checkpoint and score it on test.extxyz."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    env = thread_env(threads, drop_pythonpath=True) | {"CUDA_VISIBLE_DEVICES": "", "MPLBACKEND": "Agg"}
    command = mace_command(venv, data / "train.extxyz", dtype, 100000)
    log(f"{element}: MACE training (budget {budget:.0f} s): {' '.join(command)}")
    seconds, stopped, code = train_until(command, folder, env, budget)
    text = (folder / "train.log").read_text()
    logged = [int(n) for n in re.findall(r"Epoch (\d+): head", text)]
    epochs = max(logged) + 1 if logged else 0  # MACE counts epochs from 0
    if not stopped and code != 0:
        raise RuntimeError(f"mace_run_train failed ({code}):\n{text[-3000:]}")
    log(f"{element}: MACE {'stopped' if stopped else 'finished'} after {seconds:.0f} s, {epochs} epochs")
    result = {"train_seconds": seconds, "epochs": epochs, "train_command": command, "precision": dtype,
              "stopped_at_budget": stopped}
    if stopped:
        checkpoint, result["checkpoint_epoch"] = newest_loadable_checkpoint(folder, venv, env)
        start = time.perf_counter()
        # --plot=False: the plots of the final evaluation would cost as much again and are not used
        run_checked(mace_command(venv, data / "train.extxyz", dtype, result["checkpoint_epoch"])
                    + ["--restart_latest", "--plot=False"],
                    folder, env, f"{element}: MACE model from {checkpoint.name}")
        result["model_seconds"] = time.perf_counter() - start
    model = folder / "mace.model"
    if not model.is_file():
        raise RuntimeError(f"MACE wrote no model {model}; see {folder / 'train.log'}")
    predictions = folder / "test_predictions.npz"
    run_checked([str(venv / "bin" / "python"), "-c", _MACE_SCORE, str(model), str(data / "test.extxyz"), dtype,
                 str(threads), str(predictions)], folder, env, f"{element}: MACE on test.extxyz")
    with np.load(predictions) as pred:
        result["test"] = score_errors(pred["energy"], pred["forces"], data / "test.extxyz")
    return result


# ---------------------------------------------------------------- report


def machine() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


def pair(test: dict | None) -> str:
    if not test:
        return "-"
    return f"{test['energy_mae_meV_per_atom']:.2f} / {test['force_mae_meV_per_A']:.0f}"


def print_table(results: dict, info: dict) -> None:
    print()
    m = info["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['platform']}; load average (1, 5, 15 min) "
          f"{' '.join(f'{x:.1f}' for x in info['load_average_start'])} at start, "
          f"{' '.join(f'{x:.1f}' for x in info['load_average_end'])} at end")
    extra = f" + {info['scalelink_args']}" if info["scalelink_args"] else ""
    settings = next((r["scalelink"]["run_config"] for r in results.values() if "run_config" in r.get("scalelink", {})),
                    {})
    print(f"budget {info['budget_seconds']:.0f} s wall per training, {info['threads']} thread(s); ScaleLink: "
          f"`scalelink train` defaults{extra} ({', '.join(f'{k} {v}' for k, v in settings.items())}), "
          f"deployed float64")
    if "mace_versions" in info:
        print(f"MACE {info['mace_versions']['mace-torch']} (torch {info['mace_versions']['torch']}): "
              f"{' '.join(a[2:] for a in MACE_MODEL)}, E0s average, {info['mace_dtype']}, batch 5, valid 0.1")
    print("test MAE: energy (meV/atom) / force (meV/Å); published: " + PUBLISHED_SOURCE)
    print()
    print(f"| element | ScaleLink E / F | MACE ({info['mace_dtype']}) E / F | published MTP E / F "
          "| published GAP E / F | ScaleLink s / epochs | MACE s / epochs |")
    print("|" + "---|" * 7)
    for element, row in results.items():
        cells = [element]
        for side in ("scalelink", "mace"):
            side_row = row.get(side)
            cells.append("failed" if side_row and "error" in side_row else pair(side_row and side_row.get("test")))
        for method in ("MTP", "GAP"):
            e, f = PUBLISHED[method].get(element, (None, None))
            cells.append("-" if e is None else f"{e:.2f} / {f:.0f}")
        for side in ("scalelink", "mace"):
            side_row = row.get(side) or {}
            cells.append(f"{side_row['train_seconds']:.0f} / {side_row.get('epochs', '?')}"
                         if "train_seconds" in side_row else "-")
        print("| " + " | ".join(cells) + " |")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--elements", nargs="+", default=["Cu", "Mo", "Si"])
    parser.add_argument("--budget", type=float, default=3600.0, help="wall-clock seconds of each training")
    parser.add_argument("--threads", type=int, default=2, help="threads of each training (one runs at a time)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mlearn"),
                        help="folder with <El>/train.extxyz and <El>/test.extxyz")
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / ".work" / "mlearn"), help="runs, models, logs")
    parser.add_argument("--mace-venv", default=str(ROOT / "benchmarks" / ".work" / "mace-venv"))
    parser.add_argument("--mace-dtype", choices=["float32", "float64"], default="float64",
                        help="MACE training and scoring precision (float64 is MACE's training default)")
    parser.add_argument("--scalelink-args", default="", help="extra `scalelink train` flags, one quoted string")
    parser.add_argument("--skip-scalelink", action="store_true")
    parser.add_argument("--skip-mace", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results_mlearn.json"))
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    data, work, venv = Path(args.data).resolve(), Path(args.work).resolve(), Path(args.mace_venv).resolve()
    missing = [str(data / el / name) for el in args.elements for name in ("train.extxyz", "test.extxyz")
               if not (data / el / name).is_file()]
    if missing:
        raise SystemExit(f"bench_mlearn: missing data files {missing}; give the mlearn folder with --data")
    info: dict = {"machine": machine(), "load_average_start": os.getloadavg(), "budget_seconds": args.budget,
                  "threads": args.threads, "mace_dtype": args.mace_dtype, "published_source": PUBLISHED_SOURCE,
                  "published_mae_meV": PUBLISHED, "scalelink_args": args.scalelink_args}
    if not args.skip_mace:
        info["mace_venv_setup_seconds"] = ensure_mace_venv(venv)
        info["mace_versions"] = json.loads(run_checked([str(venv / "bin" / "python"), "-c", _VERSIONS], ROOT,
                                                       thread_env(1, drop_pythonpath=True), "MACE versions"))
    results: dict[str, dict] = {}
    for element in args.elements:
        row: dict[str, dict] = {}
        for name in ("scalelink", "mace"):
            if getattr(args, f"skip_{name}"):
                continue
            try:
                if name == "scalelink":
                    row[name] = run_scalelink(element, data / element, work / element, args.budget, args.threads,
                                              shlex.split(args.scalelink_args))
                else:
                    row[name] = run_mace(element, data / element, work / element / "mace", venv, args.budget,
                                         args.threads, args.mace_dtype)
                log(f"{element} {name}: test MAE {pair(row[name]['test'])} (meV/atom / meV/Å)")
            except (RuntimeError, OSError, KeyError, ValueError) as error:
                # one failed training should not cost the others of an hours-long run
                log(f"{element} {name} failed: {error}")
                row[name] = {"error": str(error)}
        results[element] = row
    info["load_average_end"] = os.getloadavg()
    print_table(results, info)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**info, "results": results}, indent=2))
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
