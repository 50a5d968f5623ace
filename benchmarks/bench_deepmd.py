"""pair_style scalelink against DeePMD-kit's pair_style deepmd, trained on the same EMT data.

    python benchmarks/bench_deepmd.py [--train-steps 2000] [--train-seconds 900] [--atoms 4000] [--steps 20]
    python benchmarks/bench_deepmd.py --skip-training      # timing only, reusing benchmarks/.work/deepmd/

Steps (everything lands in ``--work``):

1. the DeePMD-kit virtual environment (``--deepmd-venv``) is created if it is missing;
2. the demo's reference data (400 EMT Cu-Ni fcc structures, seed 0) and its train / validation /
   test split (``split_indices(400, 0.1, 0.1, seed=0)``) are written as DeePMD npy systems;
3. a small ``se_e2_a`` model (rcut 5.0 Å like ours) is trained with the PyTorch backend for a fixed
   step budget (stopped early at a wall-time budget), frozen and compressed;
4. both DeePMD models and the ScaleLink demo model are scored on the same held-out test set
   (force RMSE over all Cartesian components, energy RMSE per atom);
5. the NVE run of ``bench_pair.py`` (random Cu-Ni fcc, 600 K, 5 warm-up + ``--steps`` timed steps)
   runs with each model, serially and on 2 MPI ranks. µs/atom/step comes from LAMMPS' loop time;
   the user / system CPU split of the timed loop is the rusage of the full run minus that of the same
   input with only the warm-up run.

Each side runs its own LAMMPS build: ScaleLink the main venv's ``lmp``, DeePMD the DeePMD venv's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pair import SYSTEM  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MAIN_BIN = Path(sys.executable).parent
SPECIES = ["Cu", "Ni"]
SETUP = [
    ["python3.12", "-m", "venv", "{venv}"],
    ["{venv}/bin/pip", "install", "deepmd-kit[torch,lmp]", "nvidia-cuda-runtime-cu12"],
]

_SCORE = """
import sys
import numpy as np
from deepmd.infer import DeepPot
model, data, out = sys.argv[1:4]
pot = DeepPot(model)
frames = np.load(data)
e_pred, f_pred = [], []
for k in range(int(frames["count"])):
    coord, cell, types = frames[f"coord{k}"], frames[f"cell{k}"], frames[f"types{k}"]
    e, f, _ = pot.eval(coord[None], cell.reshape(1, 9), types, atomic=False)
    e_pred.append(float(np.ravel(e)[0]))
    f_pred.append(np.asarray(f).reshape(-1, 3))
np.savez(out, energy=np.array(e_pred), forces=np.concatenate(f_pred))
"""


def log(message: str) -> None:
    print(f"[bench_deepmd] {message}", flush=True)


def deepmd_env(venv: Path, threads: int) -> dict[str, str]:
    """Environment of a DeePMD process: CPU only, ``threads`` intra-op threads, CUDA runtime found.

    ``NUM_WORKERS=0`` keeps the training data loader in the training process: with one loader
    per system, worker processes cost more than they save on two cores.
    """
    cudart = next(venv.glob("lib/python3*/site-packages/nvidia/cuda_runtime/lib"), None)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), DP_INTRA_OP_PARALLELISM_THREADS=str(threads),
               DP_INTER_OP_PARALLELISM_THREADS="1", CUDA_VISIBLE_DEVICES="", NUM_WORKERS="0")
    env.pop("PYTHONPATH", None)
    if cudart is not None:
        # the wheel's libdeepmd_op_pt links libcudart.so.12 even on a CPU-only run
        env["LD_LIBRARY_PATH"] = ":".join(filter(None, [str(cudart), os.environ.get("LD_LIBRARY_PATH", "")]))
    return env


def ensure_venv(venv: Path) -> None:
    """Create the DeePMD-kit venv with the commands in ``SETUP`` if ``dp`` is not there yet."""
    if (venv / "bin" / "dp").is_file() and (venv / "bin" / "lmp").is_file():
        return
    for template in SETUP:
        command = [part.format(venv=venv) for part in template]
        log("setting up DeePMD-kit: " + " ".join(command))
        subprocess.run(command, check=True)


def run_checked(command: list[str], cwd: Path, env: dict[str, str], what: str) -> str:
    """Run ``command``; on failure raise with its last output lines."""
    log(f"{what}: {' '.join(part if len(part) < 200 else '<script>' for part in command)}")
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout + proc.stderr


# ---------------------------------------------------------------- data


def reference_data(work: Path) -> tuple[list, dict[str, np.ndarray]]:
    """The demo's 400 EMT structures and its split (same generator, seed and fractions)."""
    from ase.io import read

    from scalelink.training.data import split_indices
    from scalelink.training.reference import write_fcc_alloy_dataset

    path = work / "cuni_emt.extxyz"
    if path.is_file():
        frames = read(path, index=":")
    else:
        log(f"reference data: 400 EMT Cu-Ni structures (seed 0) -> {path}")
        frames = write_fcc_alloy_dataset(path, 400, species=tuple(SPECIES), seed=0)
    split = split_indices(len(frames), 0.1, 0.1, 0)
    return frames, {"train": split.train, "validation": split.validation, "test": split.test}


def write_deepmd_systems(frames: list, folder: Path) -> list[Path]:
    """Write ``frames`` as DeePMD npy systems, one per (atom count, composition).

    A DeePMD system holds one ``type.raw`` for all its frames, so atoms are sorted by species
    (forces follow) and frames with the same count of each species share a system. Virial is
    ``-stress × volume`` (eV), as DeePMD defines it.
    """
    groups: dict[tuple[int, ...], list[tuple[np.ndarray, ...]]] = {}
    for atoms in frames:
        types = np.array([SPECIES.index(s) for s in atoms.get_chemical_symbols()])
        order = np.argsort(types, kind="stable")
        cell = np.asarray(atoms.cell[:])
        virial = -atoms.get_stress(voigt=False) * atoms.get_volume()
        key = tuple(np.bincount(types, minlength=len(SPECIES)))
        groups.setdefault(key, []).append((
            atoms.positions[order].ravel(), cell.ravel(), np.array(atoms.get_potential_energy()),
            atoms.get_forces()[order].ravel(), virial.ravel(), types[order],
        ))
    shutil.rmtree(folder, ignore_errors=True)
    systems = []
    for key, rows in sorted(groups.items()):
        system = folder / ("sys_" + "_".join(f"{s}{n}" for s, n in zip(SPECIES, key)))
        (system / "set.000").mkdir(parents=True)
        for index, name in enumerate(("coord", "box", "energy", "force", "virial")):
            np.save(system / "set.000" / f"{name}.npy", np.stack([row[index] for row in rows]))
        np.savetxt(system / "type.raw", rows[0][5], fmt="%d")
        (system / "type_map.raw").write_text("\n".join(SPECIES) + "\n")
        systems.append(system)
    return systems


# ---------------------------------------------------------------- DeePMD training


def deepmd_input(train: list[Path], valid: list[Path], steps: int, fitting: list[int], precision: str) -> dict:
    """A small se_e2_a model: rcut 5.0 Å (ScaleLink's cutoff), embedding [10, 20, 40]."""
    return {
        "model": {
            "type_map": SPECIES,
            "descriptor": {"type": "se_e2_a", "sel": [60, 60], "rcut_smth": 0.5, "rcut": 5.0,
                           "neuron": [10, 20, 40], "resnet_dt": False, "axis_neuron": 8, "seed": 1,
                           "precision": precision},
            "fitting_net": {"neuron": fitting, "resnet_dt": True, "seed": 1, "precision": precision},
        },
        "learning_rate": {"type": "exp", "decay_steps": max(steps // 40, 1), "start_lr": 1e-3, "stop_lr": 1e-5},
        "loss": {"type": "ener", "start_pref_e": 0.02, "limit_pref_e": 1, "start_pref_f": 1000, "limit_pref_f": 1,
                 "start_pref_v": 0.02, "limit_pref_v": 1},
        "training": {
            "training_data": {"systems": [str(p) for p in train], "batch_size": "auto:64"},
            "validation_data": {"systems": [str(p) for p in valid], "batch_size": 1, "numb_btch": 4},
            "numb_steps": steps, "seed": 10, "disp_file": "lcurve.out", "disp_freq": max(steps // 50, 1),
            "save_freq": max(steps // 10, 1),
        },
    }


def train_deepmd(dp_dir: Path, venv: Path, data: Path, steps: int, seconds: float, fitting: list[int],
                 precision: str) -> dict:
    """Train, freeze and compress; returns steps done and wall times."""
    train = sorted((data / "train").iterdir())
    valid = sorted((data / "validation").iterdir())
    for stale in dp_dir.glob("model.ckpt*"):
        stale.unlink()
    (dp_dir / "input.json").write_text(json.dumps(deepmd_input(train, valid, steps, fitting, precision), indent=2))
    env = deepmd_env(venv, 2)
    dp = str(venv / "bin" / "dp")
    log(f"training: {dp} --pt train input.json (budget {steps} steps or {seconds:.0f} s)")
    start = time.perf_counter()
    with open(dp_dir / "train.log", "w") as out:
        proc = subprocess.Popen([dp, "--pt", "train", "input.json"], cwd=dp_dir, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            log("wall-time budget reached: stopping and freezing the last checkpoint")
            proc.terminate()
            proc.wait()
    train_seconds = time.perf_counter() - start
    if not list(dp_dir.glob("model.ckpt*.pt")):
        raise RuntimeError(f"DeePMD training wrote no checkpoint; see {dp_dir / 'train.log'}")
    rows = [ln.split() for ln in (dp_dir / "lcurve.out").read_text().splitlines() if ln.strip() and ln[0] != "#"]
    done = int(rows[-1][0]) if rows else 0
    run_checked([dp, "--pt", "freeze", "-o", "frozen.pth"], dp_dir, env, "freeze")
    result = {"steps_budget": steps, "steps_done": done, "train_seconds": train_seconds, "fitting": fitting,
              "precision": precision, "compressed": False}
    try:
        run_checked([dp, "--pt", "compress", "-i", "frozen.pth", "-o", "compressed.pth", "-t", "input.json"],
                    dp_dir, env, "compress")
        result["compressed"] = True
    except RuntimeError as error:
        log(f"compression failed, continuing without it:\n{error}")
    return result


# ---------------------------------------------------------------- accuracy


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def score_deepmd(model: Path, venv: Path, test: list, work: Path) -> dict[str, float]:
    """Force / energy RMSE of a frozen DeePMD model on ``test`` through ``DeepPot``."""
    arrays = {"count": np.array(len(test))}
    for k, atoms in enumerate(test):
        arrays[f"coord{k}"] = atoms.positions.ravel()
        arrays[f"cell{k}"] = np.asarray(atoms.cell[:]).ravel()
        arrays[f"types{k}"] = np.array([SPECIES.index(s) for s in atoms.get_chemical_symbols()])
    np.savez(work / "test_frames.npz", **arrays)
    out = work / f"pred_{model.stem}.npz"
    run_checked([str(venv / "bin" / "python"), "-c", _SCORE, str(model), str(work / "test_frames.npz"), str(out)],
                work, deepmd_env(venv, 2), f"scoring {model.name}")
    pred = np.load(out)
    return errors(pred["energy"], pred["forces"], test)


def errors(energy: np.ndarray, forces: np.ndarray, test: list) -> dict[str, float]:
    natoms = np.array([len(a) for a in test])
    e_ref = np.array([a.get_potential_energy() for a in test])
    f_ref = np.concatenate([a.get_forces() for a in test])
    return {"force_rmse_meV_per_A": 1e3 * rmse(forces, f_ref),
            "energy_rmse_meV_per_atom": 1e3 * rmse(energy / natoms, e_ref / natoms),
            "test_structures": len(test), "test_atoms": int(natoms.sum())}


def score_scalelink(model: Path, test: list) -> dict[str, float]:
    from scalelink.bridge.ase import ScaleLinkCalculator

    calc = ScaleLinkCalculator(str(model))
    energy, forces = [], []
    for atoms in test:
        atoms = atoms.copy()
        atoms.calc = calc
        energy.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
    return errors(np.array(energy), np.concatenate(forces), test)


def dp_test_summary(model: Path, venv: Path, dp_dir: Path) -> str:
    """DeePMD's own ``dp test`` on the test systems (its weighted-average lines), as a cross-check."""
    text = run_checked([str(venv / "bin" / "dp"), "--pt", "test", "-m", model.name, "-s", "../data/test"],
                       dp_dir, deepmd_env(venv, 2), f"dp test {model.name}")
    tail = text[text.rfind("weighted average"):] if "weighted average" in text else text
    return "\n".join(ln.split("DEEPMD INFO")[-1].strip() for ln in tail.splitlines() if "RMSE" in ln)


def scalelink_model(requested: str | None, work: Path, data: Path, test_indices: np.ndarray, seconds: float) -> Path:
    """The demo model to compare with: ``requested``, an existing demo output, or a fresh training."""
    candidates = [Path(requested)] if requested else [ROOT / "demo_out" / "cuni.pt", Path("/tmp/demo2/cuni.pt")]
    for model in candidates:
        if model.is_file():
            split = model.parent / "run" / "split.json"
            if split.is_file() and json.loads(split.read_text())["test"] != test_indices.tolist():
                raise RuntimeError(f"{model} was trained on another split ({split}); pass --scalelink-model")
            log(f"ScaleLink model: {model}" + ("" if split.is_file() else " (training split not found next to it)"))
            return model.resolve()
    if requested:
        raise FileNotFoundError(f"--scalelink-model {requested} does not exist")
    from scalelink.training.config import load_config
    from scalelink.training.export import export_potential
    from scalelink.training.trainer import load_checkpoint, train

    log(f"training the ScaleLink demo model (demo settings, budget {seconds:.0f} s)")
    config = load_config(None, data=[str(data)], species=SPECIES, out=str(work / "scalelink_run"), epochs=400,
                         time_limit=seconds)
    result = train(config, progress=False, overwrite=True)
    network, species = load_checkpoint(result.run_dir, "best")
    model = work / "cuni.pt"
    export_potential(network, species, str(model), dtype="float32")
    return model


# ---------------------------------------------------------------- LAMMPS timing


def lammps_run(pair: str, lmp: Path, env: dict[str, str], cells: int, steps: int, ranks: int, workdir: Path,
               name: str) -> dict[str, float]:
    """µs/atom/step of the timed run; user/system CPU seconds of the timed loop; peak RSS."""
    text = SYSTEM.format(lattice="fcc", a=3.565, cells=cells, pair=pair, steps=steps, final="")
    baseline = text.replace(f"run 5\nrun {steps}\n", "run 5\n")
    usage = {}
    for label, body in (("full", text), ("warmup", baseline)):
        (workdir / f"in.{name}.{label}").write_text(body)
        command = [str(lmp), "-in", f"in.{name}.{label}", "-log", "none"]
        if ranks > 1:
            command = [str(lmp.parent / "mpirun"), "-n", str(ranks), *command]
        screen = workdir / f"screen.{name}.{label}"
        start = time.perf_counter()
        with open(screen, "w") as out:
            proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
            # wait4 rather than wait: it returns the CPU times of this run and its descendants alone
            _, status, rusage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        output = screen.read_text()
        if proc.returncode != 0:
            raise RuntimeError(f"{name} ({' '.join(command)}) failed:\n{output[-3000:]}")
        usage[label] = (output, wall, rusage)
    output, wall, _ = usage["full"]
    loops = re.findall(r"Loop time of ([0-9.eE+-]+) on \d+ procs for (\d+) steps with (\d+) atoms", output)
    seconds, nsteps, natoms = float(loops[-1][0]), int(loops[-1][1]), int(loops[-1][2])
    split = usage_split(usage)
    # cores kept busy during the timed loop: well below ranks × threads means the run waited or was starved
    busy = (split["loop_user_seconds"] + split["loop_system_seconds"]) / seconds
    return {"us_per_atom_step": 1e6 * seconds / (natoms * nsteps), "natoms": natoms, "loop_seconds": seconds,
            "process_wall_seconds": wall, "loop_cores_busy": busy, **split}


def usage_split(usage: dict) -> dict[str, float]:
    """User / system CPU seconds of the whole process and of the timed loop (full minus warm-up only)."""
    full, warm = usage["full"][2], usage["warmup"][2]
    return {"user_seconds": full.ru_utime, "system_seconds": full.ru_stime,
            "loop_user_seconds": full.ru_utime - warm.ru_utime, "loop_system_seconds": full.ru_stime - warm.ru_stime,
            "peak_rss_MB": full.ru_maxrss / 1024}


def time_models(models: dict[str, Path], venv: Path, cells: int, steps: int, ranks_list: list[int],
                md: Path) -> dict[str, dict[str, dict]]:
    """The NVE benchmark with every model: serial runs use 2 threads, MPI runs 1 thread per rank."""
    md.mkdir(exist_ok=True)
    timing: dict[str, dict[str, dict]] = {}
    for ranks in ranks_list:
        threads = 2 if ranks == 1 else 1
        for name, model in models.items():
            if name == "scalelink":
                pair, lmp = f"pair_style scalelink\npair_coeff * * {model} Cu Ni", MAIN_BIN / "lmp"
                # the installed package, where the built plugin is, not a source tree on PYTHONPATH
                env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": str(threads)}
            else:
                pair, lmp = f"pair_style deepmd {model}\npair_coeff * * Cu Ni", venv / "bin" / "lmp"
                env = deepmd_env(venv, threads)
            log(f"LAMMPS {name}, {4 * cells**3} atoms, {ranks} rank(s), {steps} steps")
            row = lammps_run(pair, lmp, env, cells, steps, ranks, md, f"{name}.{ranks}")
            timing.setdefault(name, {})[str(ranks)] = row
            log(f"  {row['us_per_atom_step']:.1f} µs/atom/step; loop user {row['loop_user_seconds']:.1f} s, "
                f"system {row['loop_system_seconds']:.1f} s, loop wall {row['loop_seconds']:.1f} s")
    return timing


# ---------------------------------------------------------------- driver


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / ".work" / "deepmd"), help="data, models, logs")
    parser.add_argument("--deepmd-venv", default=str(ROOT / "benchmarks" / ".deepmd-venv"))
    parser.add_argument("--train-steps", type=int, default=2000, help="DeePMD training steps (learning-rate schedule)")
    parser.add_argument("--train-seconds", type=float, default=900.0, help="DeePMD wall-time budget; stops early")
    parser.add_argument("--fitting", type=int, nargs="+", default=[120, 120, 120], help="DeePMD fitting-net widths")
    parser.add_argument("--precision", choices=["float32", "float64"], default="float32",
                        help="DeePMD network precision (the ScaleLink demo model is deployed in float32)")
    parser.add_argument("--skip-training", action="store_true", help="reuse the frozen models in --work")
    parser.add_argument("--skip-timing", action="store_true", help="accuracy only")
    parser.add_argument("--scalelink-model", help="default: demo_out/cuni.pt, /tmp/demo2/cuni.pt, else train one")
    parser.add_argument("--scalelink-train-seconds", type=float, default=240.0, help="if a ScaleLink model is trained")
    parser.add_argument("--atoms", type=int, default=4000)
    parser.add_argument("--steps", type=int, default=20, help="timed MD steps (after 5 warm-up steps)")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results_deepmd.json"))
    return parser.parse_args()


def print_table(accuracy: dict, timing: dict, ranks: list[int]) -> None:
    print()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    columns = [f"{r} rank{'s' if r > 1 else ''} µs/atom/step | loop user / sys s ({r})" for r in ranks]
    print("| model | force RMSE (meV/Å) | energy RMSE (meV/atom) | " + " | ".join(columns) + " | peak RSS (MB) |")
    print("|" + "---|" * (3 + 2 * len(ranks) + 1))
    for name, acc in accuracy.items():
        cells = [name, f"{acc['force_rmse_meV_per_A']:.1f}", f"{acc['energy_rmse_meV_per_atom']:.2f}"]
        for r in ranks:
            row = timing.get(name, {}).get(str(r))
            cells += ["-", "-"] if row is None else [
                f"{row['us_per_atom_step']:.1f}", f"{row['loop_user_seconds']:.1f} / {row['loop_system_seconds']:.1f}"]
        first = timing.get(name, {}).get(str(ranks[0]))
        cells.append("-" if first is None else f"{first['peak_rss_MB']:.0f}")
        print("| " + " | ".join(cells) + " |")
    speed = {name: {r: rows[r]["us_per_atom_step"] for r in rows} for name, rows in timing.items()}
    for name in speed:
        if name != "scalelink" and "scalelink" in speed:
            ratios = ", ".join(f"{r} rank(s) {speed[name][r] / speed['scalelink'][r]:.2f}x" for r in speed[name])
            print(f"{name} / scalelink time per atom-step: {ratios}")


def main() -> None:
    args = parse_args()
    work, venv = Path(args.work).resolve(), Path(args.deepmd_venv).resolve()
    dp_dir = work / "dp"
    dp_dir.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()[0]
    ensure_venv(venv)
    frames, split = reference_data(work)
    test = [frames[i] for i in split["test"]]

    if args.skip_training:
        if not (dp_dir / "frozen.pth").is_file():
            raise FileNotFoundError(f"--skip-training needs {dp_dir / 'frozen.pth'}; run once without it")
        training = json.loads((work / "training.json").read_text())
        log(f"reusing the DeePMD models in {dp_dir}")
    else:
        for part, indices in split.items():
            write_deepmd_systems([frames[i] for i in indices], work / "data" / part)
        training = train_deepmd(dp_dir, venv, work / "data", args.train_steps, args.train_seconds, args.fitting,
                                args.precision)
        training["dp_test"] = {m: dp_test_summary(dp_dir / m, venv, dp_dir)
                               for m in ("frozen.pth", "compressed.pth") if (dp_dir / m).is_file()}
        (work / "training.json").write_text(json.dumps(training, indent=2))
        log(f"DeePMD: {training['steps_done']} steps in {training['train_seconds']:.0f} s")

    scalelink = scalelink_model(args.scalelink_model, work, work / "cuni_emt.extxyz", split["test"],
                                args.scalelink_train_seconds)
    models = {"scalelink": scalelink, "deepmd": dp_dir / "frozen.pth", "deepmd_compressed": dp_dir / "compressed.pth"}
    models = {k: v for k, v in models.items() if v.is_file()}
    accuracy = {}
    for name, model in models.items():
        accuracy[name] = score_scalelink(model, test) if name == "scalelink" else score_deepmd(model, venv, test, work)
        log(f"{name}: force RMSE {accuracy[name]['force_rmse_meV_per_A']:.1f} meV/Å on {len(test)} test structures")

    timing: dict[str, dict[str, dict]] = {}
    cells = max(2, round((args.atoms / 4) ** (1 / 3)))
    if not args.skip_timing:
        timing = time_models(models, venv, cells, args.steps, args.ranks, work / "md")
    print_table(accuracy, timing, args.ranks)
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "load_average_start": load_start, "load_average_end": os.getloadavg()[0]},
        "system": {"atoms": 4 * cells**3, "lattice": "fcc 3.565", "temperature_K": 600, "warmup_steps": 5,
                   "timed_steps": args.steps, "threads": "serial 2, MPI 1 per rank"},
        "models": {k: str(v) for k, v in models.items()},
        "deepmd_training": training,
        "accuracy": accuracy,
        "timing": timing,
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
