"""Committee-driven active learning with exploration in LAMMPS.

Each iteration

1. trains a committee on the current data (:func:`scalelink.campaigns.committee.train_committee`,
   a short time budget per member) and deploys it as one file;
2. measures it on a fixed held-out set from the *target* regime, labelled by the reference
   (force and energy errors, and how well the committee's deviation ranks its errors);
3. runs MD at the target conditions in LAMMPS (:func:`scalelink.campaigns.exploration.explore`)
   where ``fix scalelink/collect`` writes out the frames whose largest force deviation
   exceeds ``threshold`` (and the run stops past ``upper_threshold``);
4. labels up to ``max_new_frames`` of them with the reference calculator
   (:mod:`scalelink.campaigns.labelling`) and adds them to the data.

It stops when the fraction of checked MD frames that were collected falls below
``stop_fraction`` or the largest deviation stays below ``threshold`` all along the
trajectory (the committee is confident there), or after ``iterations`` committees. The folder gets ``learning.json`` (one record per iteration,
written after each), ``learning.png`` and one ``iter_K/`` folder per iteration.

With ``control=True`` every iteration also trains a *control* committee the same way (same
members, seeds, per-member budget, warm-started from the previous control committee as the
active-learning committee is from its predecessor) on the initial data alone, and scores it
on the same held-out target set (``iter_K/control/``). The control's own fall is what the
extra training alone buys; the gap between the arms is what the new frames bought. At
iteration 0 both arms train on the same data from scratch, so the control reuses that
committee.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import yaml
from ase import Atoms
from ase.io import read, write

from scalelink.bridge.errors import ConfigError
from scalelink.potentials import gnn
from scalelink.potentials.gnn import ModelConfig
from scalelink.training.calibration import calibration
from scalelink.training.config import TrainConfig
from scalelink.training.evaluate import evaluate_model_file
from scalelink.training.metrics import Collected, ErrorMetrics
from scalelink.training.reference import LATTICE_CONSTANTS, fcc_alloy_structures

from .committee import CommitteeResult, train_committee
from .exploration import Exploration, explore
from .labelling import label_structures, make_labeller

__all__ = ["LearnConfig", "learning_plot", "load_learn_config", "run_active_learning", "target_structures"]


@dataclass(frozen=True)
class LearnConfig:
    """Settings of an active-learning run (YAML keys of the same names; unknown keys rejected).

    Attributes:
        species: chemical symbols (LAMMPS types in this order).
        labeller: reference calculator, see :func:`scalelink.campaigns.labelling.make_labeller`.
        initial_data: labelled starting data; ``None`` generates ``initial_structures``
            low-temperature fcc alloy structures (rattle ``initial_rattle`` Å, strain
            ``initial_strain``) labelled by the reference.
        target_temperature: temperature of the exploration MD and the target set (K).
        target_structures: size of the held-out target set (reference MD snapshots).
        cells: fcc cubic cells per side of the MD and target cells (4 cells³ atoms).
        md_steps, timestep, check_every: exploration MD length, step (ps) and check interval.
        threshold, upper_threshold: collection window of the largest force deviation (eV/Å).
        max_new_frames: labelled frames added per iteration at most.
        max_reference_force: labelled frames with a larger reference force component
            (eV/Å) are dropped as unphysical (a collapsed structure).
        min_distance: collected frames with two atoms closer than this (Å) are not labelled:
            a committee that agrees on wrong forces can collapse the structure.
        stop_fraction: stop when fewer than this fraction of checked frames is collected.
        iterations: committees trained at most.
        members, bootstrap: committee size and per-member subsample fraction.
        train_seconds, epochs, batch_size: per-member training budget and batch size (small
            data sets learn fastest from single-structure steps).
        cutoff, model: the potential.
        seed: seeds everything.
        control: also train and score the control arm of the module docstring (about
            doubles the training time from iteration 1 on). Both arms get the same
            ``epochs`` and ``train_seconds`` per member; where the epoch cap binds, the
            control, with fewer structures, takes fewer optimiser steps (``epochs_run``
            and ``control_epochs_run`` record the epochs).
    """

    species: tuple[str, ...] = ("Cu", "Ni")
    labeller: str = "emt"
    initial_data: str | None = None
    initial_structures: int = 40
    initial_rattle: tuple[float, float] = (0.01, 0.04)
    initial_strain: float = 0.01
    target_temperature: float = 1200.0
    target_structures: int = 24
    cells: int = 3
    md_steps: int = 400
    timestep: float = 0.002
    check_every: int = 10
    threshold: float = 0.15
    upper_threshold: float = 1.0
    max_new_frames: int = 12
    max_reference_force: float = 10.0
    min_distance: float = 1.9
    stop_fraction: float = 0.1
    iterations: int = 4
    members: int = 3
    bootstrap: float | None = 0.8
    train_seconds: float = 20.0
    epochs: int = 60
    batch_size: int = 1
    cutoff: float = 4.0
    model: ModelConfig = field(default_factory=lambda: ModelConfig(num_layers=2, features=16, num_basis=6))
    seed: int = 0
    control: bool = False

    def __post_init__(self) -> None:
        checks = [
            (self.iterations >= 1, f"iterations must be at least 1, got {self.iterations}"),
            (self.members >= 2, f"members must be at least 2 (a committee), got {self.members}"),
            (0.0 <= self.threshold < self.upper_threshold,
             f"need 0 <= threshold < upper_threshold, got {self.threshold} and {self.upper_threshold}"),
            (self.md_steps >= self.check_every >= 1,
             f"need md_steps >= check_every >= 1, got {self.md_steps} and {self.check_every}"),
            (self.target_structures >= 2, f"target_structures must be at least 2, got {self.target_structures}"),
            (self.cells >= 2, f"cells must be at least 2, got {self.cells}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @classmethod
    def quick(cls, **overrides: Any) -> "LearnConfig":
        """Small settings that finish in about a minute (tests, smoke runs)."""
        settings: dict[str, Any] = dict(
            initial_structures=16, target_structures=6, cells=2, md_steps=100, check_every=5, max_new_frames=6, iterations=2,
            members=2, train_seconds=8.0, epochs=12, model=ModelConfig(num_layers=1, features=16, num_basis=6),
            stop_fraction=0.0, threshold=0.05,
        )
        settings.update(overrides)
        return cls(**settings)


def load_learn_config(path: str | None = None, *, quick: bool = False, **overrides: Any) -> LearnConfig:
    """Read a YAML file of :class:`LearnConfig` keys (optional), apply overrides (``None``
    values ignored); ``quick`` starts from :meth:`LearnConfig.quick`.

    Raises:
        ConfigError: a missing file, an unknown key or an invalid value.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        if not os.path.isfile(path):
            raise ConfigError(f"configuration file {path!r} does not exist")
        with open(path, encoding="utf-8") as handle:
            try:
                raw = yaml.safe_load(handle) or {}
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
                raise ConfigError(f"{path} is not valid YAML: {getattr(exc, 'problem', None) or exc}{line}; "
                                  "fix the syntax there") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    names = {f.name for f in dataclasses.fields(LearnConfig)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"{path or 'learn settings'}: unknown keys {unknown}; allowed keys are {sorted(names)}")
    if isinstance(raw.get("model"), dict):
        raw["model"] = ModelConfig(**raw["model"])
    for key in ("species", "initial_rattle"):
        if key in raw:
            raw[key] = tuple(raw[key])
    try:
        return LearnConfig.quick(**raw) if quick else LearnConfig(**raw)
    except TypeError as exc:
        raise ConfigError(f"{path or 'learn settings'}: {exc}") from None


def target_structures(config: LearnConfig, calculator: Any, n: int, seed: int) -> list[Atoms]:
    """``n`` snapshots of Langevin MD with the reference ``calculator`` at the target
    temperature, labelled by it: the held-out target set (Python MD of the reference, not of
    the model)."""
    from ase import units
    from ase.build import bulk
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import thermalize_momenta

    rng = np.random.default_rng(seed)
    lattice = float(np.mean([LATTICE_CONSTANTS.get(s, 3.6) for s in config.species]))
    atoms = bulk(config.species[0], "fcc", a=lattice, cubic=True).repeat((config.cells,) * 3)
    atoms.symbols = list(rng.choice(list(config.species), size=len(atoms)))
    atoms.calc = calculator
    thermalize_momenta(atoms, temperature_K=config.target_temperature, rng=rng)
    dyn = Langevin(atoms, 2.0 * units.fs, temperature_K=config.target_temperature, friction=0.02, rng=rng, fixcm=False)
    dyn.run(200)
    snapshots = []
    for _ in range(n):
        dyn.run(25)
        snapshots.append(atoms.copy())
    return label_structures(snapshots, calculator)


def learning_plot(records: list[dict[str, Any]], path: str) -> None:
    """Held-out target force error (and the control arm's, where recorded) and training-set
    size per iteration, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    iterations = [r["iteration"] for r in records]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(iterations, [r["target_force_rmse_meV_per_A"] for r in records], "o-", color="C0",
            label="active learning")
    if all("control_force_rmse_meV_per_A" in r for r in records):
        ax.plot(iterations, [r["control_force_rmse_meV_per_A"] for r in records], "^:", color="C2",
                label="control: initial data only")
        ax.legend(loc="lower left")
    ax.set_xlabel("iteration")
    ax.set_ylabel("target-regime force RMSE (meV/Å)", color="C0")
    ax.set_xticks(iterations)
    twin = ax.twinx()
    twin.plot(iterations, [r["training_structures"] for r in records], "s--", color="C1")
    twin.set_ylabel("training structures (active learning)", color="C1")
    ax.set_title("active learning: held-out target error")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _initial_data(config: LearnConfig, calculator: Any) -> list[Atoms]:
    if config.initial_data is not None:
        frames = read(config.initial_data, index=":", parallel=False)
        return frames if isinstance(frames, list) else [frames]
    frames = fcc_alloy_structures(
        config.initial_structures, config.species, max_strain=config.initial_strain,
        rattle=config.initial_rattle, seed=config.seed,
    )
    return label_structures(frames, calculator)


def _select(frames: list[Atoms], config: LearnConfig) -> list[Atoms]:
    """Collected frames inside the trust window and without atoms closer than
    ``min_distance``, at most ``max_new_frames``, spread over the run."""
    from ase.neighborlist import neighbor_list

    inside = [
        f for f in frames
        if f.info.get("max_force_deviation", 0.0) <= config.upper_threshold
        and neighbor_list("d", f, config.min_distance).size == 0
    ]
    if len(inside) > config.max_new_frames:
        picks = np.unique(np.linspace(0, len(inside) - 1, config.max_new_frames).round().astype(int))
        inside = [inside[i] for i in picks]
    return inside


def _train_and_score(
    config: LearnConfig, data_path: str, folder: str, iteration: int, target_path: str, previous: list[str] | None
) -> tuple[CommitteeResult, ErrorMetrics, Collected, list[int]]:
    """Train one committee of the loop on ``data_path`` in ``folder`` (warm-started from the
    member folders ``previous``) and score it on the target set: (committee result, target
    metrics, collected predictions, epochs run per member)."""
    train_config = TrainConfig(
        data=(data_path,), species=config.species, cutoff=config.cutoff, epochs=config.epochs,
        out=folder, seed=config.seed + 10 * iteration, time_limit=config.train_seconds,
        test_fraction=0.0, patience=config.epochs, batch_size=config.batch_size,
        architecture=gnn.ARCHITECTURE.name, sections={gnn.ARCHITECTURE.section: config.model},
    )
    result = train_committee(train_config, folder, config.members, bootstrap=config.bootstrap, dtype="float32",
                             warm_start=previous)
    metrics, collected = evaluate_model_file(result.model_path, [target_path])
    epochs = []
    for member in result.member_dirs:
        with open(os.path.join(member, "metrics.json"), encoding="utf-8") as handle:
            epochs.append(int(json.load(handle)["epochs_run"]))
    return result, metrics, collected, epochs


def _set_up(config: LearnConfig, out: str, log: Callable[[str], None]) -> tuple[Any, list[Atoms], str, str]:
    """Write the configuration, the initial data and the held-out target set into ``out``.

    Returns the labeller's calculator, the initial data, and the paths of the initial data and
    of the target set.
    """
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "learn_config.yaml"), "w", encoding="utf-8") as handle:
        yaml.safe_dump(json.loads(json.dumps(dataclasses.asdict(config))), handle, sort_keys=False)
    calculator = make_labeller(config.labeller, config.species)()
    data = _initial_data(config, calculator)
    for frame in data:
        frame.info["origin"] = "initial"
    initial_path = os.path.join(out, "initial_data.extxyz")
    write(initial_path, data, format="extxyz", parallel=False)
    target_path = os.path.join(out, "target_heldout.extxyz")
    write(target_path, target_structures(config, calculator, config.target_structures, config.seed + 1000),
          format="extxyz", parallel=False)
    log(f"initial data: {len(data)} structures; held-out target set: {config.target_structures} structures "
        f"at {config.target_temperature:g} K")
    return calculator, data, initial_path, target_path


def _control_arm(
    config: LearnConfig, folder: str, iteration: int, initial: tuple[str, int], target_path: str,
    previous_control: list[str] | None, *, trained: tuple[list[str], ErrorMetrics, list[int]],
) -> tuple[dict[str, Any], list[str]]:
    """The control committee of this iteration, trained on the initial data only (``initial``: its
    path and size) with the same budget; at iteration 0 it is the committee just ``trained``
    (member folders, target metrics, epochs). Returns its record entries and member folders."""
    initial_path, initial_count = initial
    if iteration == 0:
        control_dirs, control_metrics, control_epochs = trained
    else:
        control_result, control_metrics, _, control_epochs = _train_and_score(
            config, initial_path, os.path.join(folder, "control"), iteration, target_path, previous_control
        )
        control_dirs = control_result.member_dirs
    control = {
        "control_training_structures": initial_count,
        "control_force_rmse_meV_per_A": 1e3 * control_metrics.force_rmse,
        "control_energy_rmse_meV_per_atom": 1e3 * control_metrics.energy_rmse,
        "control_epochs_run": control_epochs,
    }
    return control, control_dirs


def _explore(config: LearnConfig, model_path: str, folder: str, iteration: int) -> Exploration:
    """The exploration MD of this iteration with the committee file ``model_path``."""
    return explore(
        model_path, config.species, os.path.join(folder, "md"), cells=config.cells,
        temperature=config.target_temperature, steps=config.md_steps, timestep=config.timestep,
        check_every=config.check_every, threshold=config.threshold,
        upper_threshold=config.upper_threshold, seed=config.seed + iteration,
    )


def _label_new_frames(config: LearnConfig, run: Exploration, calculator: Any,
                      iteration: int) -> tuple[list[Atoms], int]:
    """Label the selected frames the exploration collected; those with a reference force above
    ``max_reference_force`` are rejected. Returns the new frames and the number rejected."""
    candidates = read(run.frames_path, index=":", parallel=False) if run.collected else []
    labelled = label_structures(_select(candidates, config), calculator)
    new = [f for f in labelled if np.abs(f.get_forces()).max() <= config.max_reference_force]
    for frame in new:
        frame.info = {"origin": f"iteration_{iteration}", "timestep": int(frame.info.get("timestep", -1))}
    return new, len(labelled) - len(new)


def _exploration_record(run: Exploration, fraction: float, labelled: int, rejected: int) -> dict[str, Any]:
    """The record entries of the exploration and labelling of one iteration."""
    return {
        "md_steps": run.steps,
        "checks": len(run.deviations),
        "deviation_max_eV_per_A": float(run.deviations.max()) if run.deviations.size else None,
        "deviation_median_eV_per_A": float(np.median(run.deviations)) if run.deviations.size else None,
        "collected": run.collected,
        "collected_fraction": fraction,
        "labelled": labelled,
        "rejected_unphysical": rejected,
        "md_stopped": run.stopped,
    }


def _log_iteration(log: Callable[[str], None], record: dict[str, Any], control: dict[str, Any], run: Exploration,
                   checks: int) -> None:
    """One line on the iteration's committee and exploration, and one on the control committee."""
    log(f"iteration {record['iteration']}: {record['training_structures']} structures, target force RMSE "
        f"{record['target_force_rmse_meV_per_A']:.1f} meV/Å, energy RMSE "
        f"{record['target_energy_rmse_meV_per_atom']:.2f} meV/atom; MD {run.steps} steps, max deviation "
        f"{record['deviation_max_eV_per_A'] or 0.0:.3f} eV/Å, collected {run.collected}/{checks}, "
        f"labelled {record['labelled']} ({record['seconds']:.0f} s){'; ' + run.stopped if run.stopped else ''}")
    if control:
        log(f"  control (initial data only): target force RMSE {control['control_force_rmse_meV_per_A']:.1f} "
            f"meV/Å, energy RMSE {control['control_energy_rmse_meV_per_atom']:.2f} meV/atom")


def _write_learning(out: str, config: LearnConfig, records: list[dict[str, Any]], start: float) -> None:
    """``learning.json``: the configuration and the records so far (rewritten every iteration)."""
    with open(os.path.join(out, "learning.json"), "w", encoding="utf-8") as handle:
        json.dump({"config": json.loads(json.dumps(dataclasses.asdict(config))), "iterations": records,
                   "seconds": time.perf_counter() - start}, handle, indent=2)


def run_active_learning(
    config: LearnConfig, out: str, *, log: Callable[[str], None] = print
) -> list[dict[str, Any]]:
    """Run the loop of the module docstring in folder ``out``; return the per-iteration records.

    Each record: ``iteration``, ``training_structures``, ``target_force_rmse_meV_per_A``,
    ``target_energy_rmse_meV_per_atom``, ``target_spearman`` (force deviation vs error on
    the target set), ``epochs_run`` (per member), ``md_steps``, ``checks``,
    ``deviation_max_eV_per_A``, ``deviation_median_eV_per_A``, ``collected``,
    ``collected_fraction``, ``labelled``, ``rejected_unphysical``, ``md_stopped``,
    ``seconds``; with ``config.control`` also ``control_training_structures``,
    ``control_force_rmse_meV_per_A``, ``control_energy_rmse_meV_per_atom`` and
    ``control_epochs_run`` of the control committee.
    """
    start = time.perf_counter()
    calculator, data, initial_path, target_path = _set_up(config, out, log)
    initial_count = len(data)
    records: list[dict[str, Any]] = []
    previous: list[str] | None = None
    previous_control: list[str] | None = None
    for iteration in range(config.iterations):
        t0 = time.perf_counter()
        folder = os.path.join(out, f"iter_{iteration}")
        os.makedirs(folder, exist_ok=True)
        data_path = os.path.join(folder, "data.extxyz")
        write(data_path, data, format="extxyz", parallel=False)
        result, metrics, collected, epochs = _train_and_score(config, data_path, folder, iteration, target_path, previous)
        previous = result.member_dirs
        control: dict[str, Any] = {}
        if config.control:
            control, previous_control = _control_arm(
                config, folder, iteration, (initial_path, initial_count), target_path, previous_control,
                trained=(result.member_dirs, metrics, epochs),
            )
        f_pred, f_ref = collected.arrays("forces")
        spearman = calibration(np.concatenate(collected.force_deviation),
                               np.linalg.norm(f_pred - f_ref, axis=1)).spearman

        run = _explore(config, result.model_path, folder, iteration)
        checks = max(len(run.deviations), 1)
        fraction = run.collected / checks
        largest = float(run.deviations.max()) if run.deviations.size else 0.0
        stop = (fraction < config.stop_fraction or largest < config.threshold) and not run.stopped
        new: list[Atoms] = []
        rejected = 0
        if not stop and iteration + 1 < config.iterations:
            new, rejected = _label_new_frames(config, run, calculator, iteration)
            data = data + new
        record = {
            "iteration": iteration,
            "training_structures": len(data) - len(new),
            "target_force_rmse_meV_per_A": 1e3 * metrics.force_rmse,
            "target_energy_rmse_meV_per_atom": 1e3 * metrics.energy_rmse,
            "target_spearman": spearman,
            "epochs_run": epochs,
            **control,
            **_exploration_record(run, fraction, len(new), rejected),
            "seconds": time.perf_counter() - t0,
        }
        records.append(record)
        _log_iteration(log, record, control, run, checks)
        _write_learning(out, config, records, start)
        if stop:
            log(f"stopping: collected fraction {fraction:.2f} (stop below {config.stop_fraction}), largest "
                f"deviation {largest:.3f} eV/Å (threshold {config.threshold})")
            break
    learning_plot(records, os.path.join(out, "learning.png"))
    return records
