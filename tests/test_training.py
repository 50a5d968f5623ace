"""Training: configuration, data handling, loss weights and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from scalelink.bridge.errors import ConfigError, DataError
from scalelink.cli.main import main
from scalelink.training.config import load_config
from scalelink.training.data import atoms_to_data, read_structures, reference_energies, split_indices


def test_unknown_config_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("data: [x.extxyz]\nlearnig_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"learnig_rate.*allowed keys"):
        load_config(path)
    path.write_text("model: {layers: 3}\n")
    with pytest.raises(ConfigError, match=r"model.*layers"):
        load_config(path)


def test_flags_override_file_and_values_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("data: a.extxyz\ncutoff: 4.0\nepochs: 10\n")
    config = load_config(path, cutoff=4.5, epochs=None)
    assert config.data == ("a.extxyz",) and config.cutoff == 4.5 and config.epochs == 10
    with pytest.raises(ConfigError, match="cutoff must be positive, got -1"):
        load_config(path, cutoff=-1.0)


def test_weight_decay_is_read_checked_and_decoupled(tmp_path: Path) -> None:
    from scalelink.training.trainer import _optimizer

    path = tmp_path / "c.yaml"
    path.write_text("data: a.extxyz\nweight_decay: 0.5\nlearning_rate: 0.1\n")
    config = load_config(path)
    assert config.weight_decay == 0.5
    with pytest.raises(ConfigError, match="weight_decay must be zero or positive, got -0.1"):
        load_config(path, weight_decay=-0.1)
    # with a zero gradient, a decoupled decay shrinks each weight by lr * decay per step
    weight = torch.nn.Parameter(torch.tensor([2.0, -4.0], dtype=torch.float64))
    optimizer = _optimizer([weight], config)
    weight.grad = torch.zeros_like(weight)
    optimizer.step()
    assert torch.allclose(weight.detach(), torch.tensor([2.0, -4.0], dtype=torch.float64) * (1.0 - 0.1 * 0.5))
    plain = _optimizer([weight], load_config(path, weight_decay=0.0))
    assert type(plain) is torch.optim.Adam


def test_architecture_training_defaults_fill_only_what_is_left_out(tmp_path: Path) -> None:
    from scalelink.potentials import registry
    from scalelink.training.config import TrainConfig

    ace = registry.get("ace").training_defaults
    assert ace and registry.get("gnn").training_defaults == {}
    config = load_config(None, data=["a.extxyz"])
    assert config.architecture == "ace"
    assert {key: getattr(config, key) for key in ace} == dict(ace)
    gnn = load_config(None, data=["a.extxyz"], architecture="gnn")
    assert (gnn.batch_size, gnn.learning_rate) == (TrainConfig.batch_size, TrainConfig.learning_rate)
    path = tmp_path / "c.yaml"
    path.write_text("data: a.extxyz\nbatch_size: 8\n")
    assert load_config(path).batch_size == 8 and load_config(path, batch_size=3).batch_size == 3


def test_split_is_a_partition() -> None:
    split = split_indices(50, 0.1, 0.2, seed=1)
    together = np.concatenate([split.train, split.validation, split.test])
    assert sorted(together.tolist()) == list(range(50))
    assert len(split.test) == 10 and len(split.validation) == 5
    with pytest.raises(DataError, match="fractions"):
        split_indices(10, 0.6, 0.5, seed=0)


def test_reference_energies_recover_per_species_energies() -> None:
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(12):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
        atoms.symbols = list(rng.choice(["Cu", "Ni"], size=len(atoms)))
        n_cu = atoms.get_chemical_symbols().count("Cu")
        energy = -3.5 * n_cu - 4.4 * (len(atoms) - n_cu)
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=np.zeros((len(atoms), 3)))
        frames.append(atoms)
    np.testing.assert_allclose(reference_energies(frames, ["Cu", "Ni"]), [-3.5, -4.4], atol=1e-10)


def test_unlabelled_data_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bare.extxyz"
    write(path, bulk("Cu", "fcc", a=3.6))
    with pytest.raises(DataError, match="no energy label"):
        read_structures([path])
    with pytest.raises(DataError, match="does not exist"):
        read_structures([tmp_path / "missing.extxyz"])


def test_zero_weight_structure_does_not_change_the_loss(reference_data: str) -> None:
    from torch_geometric.data import Batch

    from scalelink.training.config import LossWeights
    from scalelink.potentials.gnn import GNNPotential
    from scalelink.training.trainer import _loss

    frames = read(reference_data, index=":4")
    graphs = [atoms_to_data(a, ["Cu", "Ni"], 4.0, torch.float64) for a in frames]
    torch.manual_seed(0)
    model = GNNPotential(2, 4.0, 2, 8, 4).double()
    weights = LossWeights()
    base = _loss(model, Batch.from_data_list(graphs[:3]), weights, create_graph=False)
    graphs[3].weight = torch.zeros(1, dtype=torch.float64)
    with_zero = _loss(model, Batch.from_data_list(graphs), weights, create_graph=False)
    assert float(with_zero.detach()) == pytest.approx(float(base.detach()), rel=1e-10)


def test_cli_train_deploy_evaluate(reference_data: str, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", "--data", reference_data, "--species", "Cu", "Ni", "--cutoff", "4.0",
                 "--epochs", "2", "--out", str(run), "--quiet"]) == 0
    for name in ("config.yaml", "checkpoint_best.pt", "checkpoint_last.pt", "history.json", "metrics.json", "parity.png"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"energy_rmse_meV_per_atom", "force_rmse_meV_per_A"} <= set(metrics["test"])
    model = tmp_path / "m.pt"
    assert main(["deploy", str(run), "-o", str(model), "--dtype", "float32"]) == 0
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(model), reference_data, "-o", str(out)]) == 0
    evaluated = json.loads(out.read_text())
    for key in ("energy_rmse_meV_per_atom", "energy_mae_meV_per_atom", "force_rmse_meV_per_A",
                "force_mae_meV_per_A", "stress_rmse_GPa"):
        assert np.isfinite(evaluated[key]), key
    assert evaluated["n_structures"] == 60


def test_cli_reports_bad_input_without_traceback(tmp_path: Path, capsys) -> None:
    assert main(["deploy", str(tmp_path / "nothing"), "-o", str(tmp_path / "m.pt")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert main(["train", "--epochs", "1"]) == 2
    assert "no training data" in capsys.readouterr().err


def test_resume_after_kill_matches_an_uninterrupted_run(reference_data: str, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    args = ["--data", reference_data, "--species", "Cu", "Ni", "--cutoff", "4.0", "--seed", "5", "--epochs", "5", "--quiet"]
    small = tmp_path / "small.yaml"
    small.write_text("model: {num_layers: 2, features: 8, num_basis: 4}\n")
    assert main(["train", str(small), *args, "--out", str(tmp_path / "straight")]) == 0

    killed = tmp_path / "killed"
    scalelink = Path(sys.executable).with_name("scalelink")
    # the same intra-op thread count as this process: reductions, and so the weights, depend on it
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    proc = subprocess.Popen([str(scalelink), "train", str(small), *args, "--out", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        try:
            if len(json.loads((killed / "history.json").read_text())["history"]) >= 2:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stopped_at = torch.load(killed / "checkpoint_last.pt", weights_only=False)["epoch"]
    assert stopped_at < 5
    assert main(["train", "--resume", str(killed), "--quiet"]) == 0

    a = torch.load(tmp_path / "straight" / "checkpoint_last.pt", weights_only=False)
    b = torch.load(killed / "checkpoint_last.pt", weights_only=False)
    assert a["epoch"] == b["epoch"] == 5
    for name, value in a["model_state"].items():
        torch.testing.assert_close(b["model_state"][name], value, rtol=0, atol=0)
    # the weights are bit-identical; the recorded validation losses of the epochs before the kill come
    # from another process, whose intra-op thread count may differ, so their reductions may differ in
    # the last digits
    assert [h["val_loss"] for h in b["history"]] == pytest.approx([h["val_loss"] for h in a["history"]], rel=1e-9)


def test_run_folder_has_curves_per_species_metrics_and_card(reference_data: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["train", "--data", reference_data, reference_data, "--species", "Cu", "Ni", "--cutoff", "4.0",
                 "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    assert (run / "learning_curves.png").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["n_structures"] == 12  # two copies of 60 structures, 10 % held out
    assert set(metrics["test"]["force_rmse_meV_per_A_by_species"]) == {"Cu", "Ni"}
    assert main(["deploy", str(run), "-o", str(tmp_path / "m.pt")]) == 0
    card = json.loads((tmp_path / "m.card.json").read_text())
    assert card["metadata"]["species"] == ["Cu", "Ni"]
    (entry,) = card["training_runs"]
    assert entry["training_data"][0]["sha256"] and entry["metrics"]["test"]
    assert "torch" in card["metadata"]["versions"]


def test_learned_stress_offset_absorbs_a_pulay_shift_of_the_labels(reference_data: str, tmp_path: Path) -> None:
    """Labels whose stresses all carry the same isotropic error (a Pulay stress): the trained
    offset takes it up, by the amount added, and the network stays what it was without it."""
    from scalelink.bridge.units import EV_PER_CUBIC_ANGSTROM_IN_GPA
    from scalelink.training import load_config, train

    shift_gpa = 3.0
    frames = read(reference_data, ":")
    assert all("stress" in a.calc.results for a in frames)
    shifted = []
    for atoms in frames:
        results = dict(atoms.calc.results)
        results["stress"] = results["stress"] + np.r_[np.full(3, shift_gpa / EV_PER_CUBIC_ANGSTROM_IN_GPA), np.zeros(3)]
        copy = atoms.copy()
        copy.calc = SinglePointCalculator(copy, **results)
        shifted.append(copy)
    shifted_path = tmp_path / "shifted.extxyz"
    write(shifted_path, shifted)

    offsets, errors = {}, {}
    for name, data, learn in (("plain", reference_data, True), ("shifted", str(shifted_path), True),
                              ("shifted_fixed", str(shifted_path), False)):
        config = load_config(
            None, data=[data], species=["Cu", "Ni"], cutoff=4.0, epochs=12, out=str(tmp_path / name), seed=2,
            architecture="gnn", model={"num_layers": 2, "features": 16, "num_basis": 6},
            loss={"energy": 10.0, "forces": 1.0, "stress": 10.0, "stress_offset": learn},
        )
        train(config, progress=False)
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        offsets[name] = metrics.get("stress_offset_GPa")
        errors[name] = (metrics["validation"]["energy_mae_meV_per_atom"], metrics["validation"]["stress_rmse_GPa"])
    assert offsets["shifted_fixed"] is None
    assert offsets["shifted"] - offsets["plain"] == pytest.approx(shift_gpa, rel=0.15)
    # the network trained on the shifted labels is nearly the one trained on the plain labels;
    # without the offset the shifted pressures pull its energies away
    assert errors["shifted"][0] == pytest.approx(errors["plain"][0], rel=0.1)
    assert errors["shifted"][0] < errors["shifted_fixed"][0]


def test_final_stage_weighs_energies_more_from_the_best_network(reference_data: str, tmp_path: Path) -> None:
    from scalelink.training import load_config, train

    config = load_config(
        None, data=[reference_data], species=["Cu", "Ni"], cutoff=4.0, epochs=10, out=str(tmp_path / "run"), seed=4,
        architecture="gnn", model={"num_layers": 2, "features": 8, "num_basis": 4},
        final_stage=0.3, final_energy_factor=50.0, final_learning_rate=1e-3,
    )
    train(config, progress=False)
    history = json.loads((tmp_path / "run" / "history.json").read_text())["history"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [h["stage"] for h in history] == ["main"] * 7 + ["final"] * 3
    assert metrics["final_stage_from_epoch"] == 7
    assert [h["lr"] for h in history[7:]] == [1e-3] * 3
    weights = config.loss
    for h in history:
        energy_weight = weights.energy * (50.0 if h["stage"] == "final" else 1.0)
        expected = (energy_weight * (1e-3 * h["energy_mae_meV_per_atom"]) ** 2
                    + weights.forces * (1e-3 * h["force_mae_meV_per_A"]) ** 2
                    + weights.stress * (h["stress_rmse_GPa"] / 160.21766208) ** 2)
        assert h["val_loss"] == pytest.approx(expected, rel=1e-6)
    # the deployed network is the best of the final stage
    best = torch.load(tmp_path / "run" / "checkpoint_best.pt", weights_only=False)
    assert best["epoch"] >= 8 and best["final_from"] == 7
    with pytest.raises(ConfigError, match="final_stage must be in \\[0, 1\\), got 1.5"):
        load_config(None, data=[reference_data], final_stage=1.5)
