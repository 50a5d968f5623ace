"""Committee training in one command, reference labellers, LAMMPS exploration, `scalelink learn`.

References: the committee file against its members' own checkpoints exported one by one;
the EAM labeller's forces against finite differences of its own energy and against EMT-free
LAMMPS numbers; collected frames' deviations against the ASE calculator on the same file;
labelled frames against the reference calculator run again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from ase.calculators.emt import EMT
from ase.io import read

from scalelink.bridge.ase import ScaleLinkCalculator
from scalelink.bridge.errors import ConfigError
from scalelink.bridge.model_file import read_metadata
from scalelink.cli.main import main
from scalelink.training.export import export_committee, export_potential
from scalelink.campaigns.labelling import label_structures, make_labeller
from scalelink.potentials.gnn import GNNPotential
from scalelink.training.reference import fcc_alloy_structures
from scalelink.training.trainer import load_checkpoint

pytestmark = pytest.mark.lammps

SPECIES = ["Cu", "Ni"]
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _energy_forces(atoms, calc) -> tuple[float, np.ndarray]:
    atoms = atoms.copy()
    atoms.calc = calc
    return atoms.get_potential_energy(), atoms.get_forces()


def test_train_committee_writes_one_calibrated_committee_file(reference_data, tmp_path) -> None:
    out = tmp_path / "committee"
    code = main(["train-committee", "--data", reference_data, "--species", *SPECIES, "-o", str(out),
                 "--members", "2", "--bootstrap", "0.8", "--epochs", "2", "--quiet"])
    assert code == 0
    model = out / "committee.pt"
    assert read_metadata(str(model)).committee_size == 2

    # the file is its members: the mean of their own single-model files
    atoms = read(out / "heldout.extxyz", 0)
    singles = []
    for k in range(2):
        network, species = load_checkpoint(out / f"member_{k}", "best")
        export_potential(network, species, tmp_path / f"single{k}.pt")
        singles.append(_energy_forces(atoms, ScaleLinkCalculator(str(tmp_path / f"single{k}.pt"))))
    calc = ScaleLinkCalculator(str(model))
    energy, forces = _energy_forces(atoms, calc)
    assert energy == pytest.approx(np.mean([e for e, _ in singles]), rel=1e-10)
    np.testing.assert_allclose(forces, np.mean([f for _, f in singles], axis=0), rtol=0, atol=1e-9)
    spread = np.linalg.norm(singles[0][1] - singles[1][1], axis=1) / 2.0  # two members: |F0 - F1| / 2
    np.testing.assert_allclose(calc.results["forces_deviation"], spread, rtol=1e-8, atol=1e-12)

    # bootstrap subsamples of the pool (distinct per member), no held-out frame in training
    pool = read(out / "pool.extxyz", ":")
    heldout = read(out / "heldout.extxyz", ":")
    assert len(pool) + len(heldout) == 60 and len(heldout) == 6
    member_data = [read(out / f"member_{k}" / "data.extxyz", ":") for k in range(2)]
    assert [len(d) for d in member_data] == [round(0.8 * len(pool))] * 2
    keys = [{a.get_potential_energy() for a in d} for d in member_data]
    assert keys[0] != keys[1] and not (keys[0] | keys[1]) & {a.get_potential_energy() for a in heldout}

    report = json.loads((out / "committee.json").read_text())
    assert -1.0 <= report["calibration"]["spearman_force_deviation_vs_error"] <= 1.0
    assert report["calibration"]["n_atoms"] == sum(len(a) for a in heldout)
    card = json.loads((out / "committee.card.json").read_text())
    assert len(card["training_runs"]) == 2 and (out / "calibration.png").is_file()


def test_train_committee_refuses_one_member(reference_data, tmp_path, capsys) -> None:
    assert main(["train-committee", "--data", reference_data, "-o", str(tmp_path), "--members", "1"]) == 2
    assert "at least 2 members, got 1" in capsys.readouterr().err


def test_labellers() -> None:
    frames = fcc_alloy_structures(2, repeats=((2, 2, 2),), seed=3)
    emt = label_structures(frames, make_labeller("emt", SPECIES)())
    user = label_structures(frames, make_labeller("ase.calculators.emt:EMT", SPECIES)())
    for a, b, ref in zip(emt, user, frames):
        want = _energy_forces(ref, EMT())
        assert a.get_potential_energy() == pytest.approx(want[0], rel=1e-12)
        assert b.get_potential_energy() == pytest.approx(want[0], rel=1e-12)
        np.testing.assert_allclose(a.get_forces(), want[1], atol=1e-12)
        assert a.get_stress().shape == (6,)

    eam = make_labeller("eam", SPECIES)()
    labelled = label_structures(frames, eam)
    atoms, forces = labelled[1], labelled[1].get_forces()
    assert not np.allclose(labelled[0].get_potential_energy(), emt[0].get_potential_energy())
    h = 1e-4
    for index, axis in [(0, 0), (5, 2), (17, 1)]:
        energies = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.positions[index, axis] += sign * h
            energies.append(_energy_forces(moved, make_labeller("eam", SPECIES)())[0])
        assert forces[index, axis] == pytest.approx(-(energies[0] - energies[1]) / (2 * h), abs=1e-6)

    for spec, pattern in [("nonsense", "unknown labeller 'nonsense'"), ("no_such_module:f", "cannot load 'f'"),
                          ("eam:/no/such.eam.alloy", "no such potential file")]:
        with pytest.raises(ConfigError, match=pattern):
            make_labeller(spec, SPECIES)()


def test_exploration_collects_uncertain_frames(tmp_path) -> None:
    from scalelink.campaigns.exploration import explore

    members = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        members.append(GNNPotential(2, 4.0, 1, 8, 4, avg_num_neighbors=12.0, energy_scale=0.3))
    model = str(tmp_path / "committee.pt")
    export_committee(members, SPECIES, model)

    run = explore(model, SPECIES, str(tmp_path / "all"), cells=2, temperature=300.0, steps=20, check_every=5,
                  threshold=0.0, upper_threshold=100.0)
    assert (run.steps, run.collected, run.stopped) == (20, 4, "")
    frames = read(run.frames_path, ":")
    assert [f.info["timestep"] for f in frames] == [5, 10, 15, 20]
    calc = ScaleLinkCalculator(model)
    for frame, largest in zip(frames, run.deviations):
        atoms = frame.copy()
        atoms.calc = calc
        atoms.get_potential_energy()
        assert calc.results["max_force_deviation"] == pytest.approx(frame.info["max_force_deviation"], rel=1e-8)
        assert largest == pytest.approx(frame.info["max_force_deviation"], rel=1e-8)

    none = explore(model, SPECIES, str(tmp_path / "none"), cells=2, temperature=300.0, steps=10, check_every=5,
                   threshold=50.0, upper_threshold=100.0)
    assert none.collected == 0 and read_text(none.frames_path) == ""
    halted = explore(model, SPECIES, str(tmp_path / "halt"), cells=2, temperature=300.0, steps=20, check_every=5,
                     threshold=0.0, upper_threshold=1e-9)
    assert halted.steps == 5 and "above" in halted.stopped


def read_text(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


@pytest.mark.slow
def test_learn_quick_runs_the_loop(tmp_path) -> None:
    out = tmp_path / "learn"
    assert main(["learn", "--quick", "-o", str(out)]) == 0
    report = json.loads((out / "learning.json").read_text())
    records = report["iterations"]
    assert len(records) >= 2 and (out / "learning.png").is_file()
    first = records[0]
    assert first["collected"] >= 1 and first["labelled"] >= 1
    assert records[1]["training_structures"] == first["training_structures"] + first["labelled"]
    for r in records:
        assert np.isfinite(r["target_force_rmse_meV_per_A"]) and r["checks"] >= 1
    # the labelled frames are LAMMPS' collected configurations with reference labels
    data = read(out / "iter_1" / "data.extxyz", ":")
    new = [a for a in data if a.info.get("origin") == "iteration_0"]
    assert len(new) == first["labelled"]
    energy, forces = _energy_forces(new[0], EMT())
    # extxyz keeps positions to 1e-8 Å
    assert new[0].get_potential_energy() == pytest.approx(energy, abs=1e-5)
    np.testing.assert_allclose(new[0].get_forces(), forces, atol=1e-5)
    assert np.abs(forces).max() <= 10.0


@pytest.mark.slow
def test_active_learning_example_quick(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "active_learning.py"), "--quick", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=400, env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = json.loads((tmp_path / "out" / "learning.json").read_text())["iterations"]
    assert len(records) >= 2


def test_control_arm_trains_on_initial_data_and_records_its_scores(tmp_path) -> None:
    """The control committee: initial data only, warm-started from the previous control
    committee, scored on the same target set (checked by scoring its file again)."""
    from scalelink.campaigns.active_learning import LearnConfig, learning_plot, run_active_learning
    from scalelink.training.evaluate import evaluate_model_file

    config = LearnConfig.quick(
        initial_structures=6, target_structures=2, md_steps=10, check_every=5, max_new_frames=2, iterations=3,
        train_seconds=5.0, epochs=2, threshold=0.0, upper_threshold=100.0, control=True,
    )
    out = tmp_path / "learn"
    records = run_active_learning(config, str(out), log=lambda _: None)
    assert len(records) == 3 and records[0]["labelled"] >= 1
    # iteration 0: both arms are the same committee
    assert records[0]["control_force_rmse_meV_per_A"] == records[0]["target_force_rmse_meV_per_A"]
    initial = {a.get_potential_energy() for a in read(out / "initial_data.extxyz", ":")}
    for k in (1, 2):
        record, control = records[k], out / f"iter_{k}" / "control"
        assert record["control_training_structures"] == 6 < record["training_structures"]
        assert {a.get_potential_energy() for a in read(control / "pool.extxyz", ":")} == initial
        previous = out / f"iter_{k - 1}" / ("control" if k > 1 else "")
        for m in range(2):
            member = yaml.safe_load((control / f"member_{m}" / "config.yaml").read_text())
            assert Path(member["init_from"]) == previous / f"member_{m}"
            assert member["time_limit"] == config.train_seconds and member["epochs"] == config.epochs
        metrics, _ = evaluate_model_file(str(control / "committee.pt"), [str(out / "target_heldout.extxyz")])
        assert record["control_force_rmse_meV_per_A"] == pytest.approx(1e3 * metrics.force_rmse, rel=1e-9)
        assert record["control_energy_rmse_meV_per_atom"] == pytest.approx(1e3 * metrics.energy_rmse, rel=1e-9)
        assert len(record["control_epochs_run"]) == 2
    saved = json.loads((out / "learning.json").read_text())["iterations"]
    assert [r["control_force_rmse_meV_per_A"] for r in saved] == [r["control_force_rmse_meV_per_A"] for r in records]
    assert (out / "learning.png").is_file()
    learning_plot([{k: v for k, v in r.items() if not k.startswith("control")} for r in records],
                  str(tmp_path / "no_control.png"))
