"""Training and deployment refuse what is not finite, and the command line reports bad input in
one line: non-finite labels and weights, a diverging loss, non-finite network weights, a YAML
syntax error, a non-numeric value, a truncated checkpoint and an output folder that is missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase.io import read, write

from scalelink.bridge.errors import NonFiniteError
from scalelink.cli.main import main
from scalelink.training.reference import write_fcc_alloy_dataset

SMALL = "model: {num_layers: 1, features: 8, num_basis: 4}\n"
FLAGS = ["--species", "Cu", "Ni", "--cutoff", "4.0", "--seed", "1", "--quiet"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "data.extxyz"
    write_fcc_alloy_dataset(str(path), 12, seed=6)
    return path


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "small.yaml"
    path.write_text(SMALL)
    return path


@pytest.fixture(scope="module")
def run(data: Path, config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", str(config), "--data", str(data), *FLAGS, "--epochs", "1", "--out", str(out)]) == 0
    return out


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("label", ["energy", "forces", "stress", "weight"])
def test_non_finite_labels_name_the_file_and_frame(label: str, data: Path, config: Path, tmp_path: Path,
                                                   capsys) -> None:
    frames = read(data, ":")
    results = frames[3].calc.results
    if label == "energy":
        results["energy"] = float("nan")
    elif label == "forces":
        results["forces"][2, 1] = np.inf
    elif label == "stress":
        results["stress"][4] = np.nan
    else:
        frames[3].info["weight"] = np.inf
    bad = tmp_path / f"bad_{label}.extxyz"
    write(bad, frames, format="extxyz")
    run = tmp_path / "run"
    assert main(["train", str(config), "--data", str(bad), *FLAGS, "--epochs", "1", "--out", str(run)]) == 2
    err = _one_line(capsys)
    assert f"{bad} frame 3" in err and label in err
    assert not run.exists()


def test_a_diverging_loss_stops_the_run_with_a_clear_message(data: Path, tmp_path: Path, capsys) -> None:
    diverging = tmp_path / "diverging.yaml"
    diverging.write_text(SMALL + "learning_rate: 1.0e+30\nema_decay: 0.0\n")
    run = tmp_path / "run"
    assert main(["train", str(diverging), "--data", str(data), *FLAGS, "--epochs", "3", "--out", str(run)]) == 2
    err = _one_line(capsys)
    assert "the training loss became" in err and "at epoch 1, step" in err and "no checkpoint was written" in err
    assert "learning_rate" in err and "no checkpoint '" not in err


def test_deploy_refuses_non_finite_weights_and_names_them(run: Path, tmp_path: Path, capsys) -> None:
    poisoned = tmp_path / "poisoned"
    poisoned.mkdir()
    state = torch.load(run / "checkpoint_best.pt", weights_only=True)
    name = next(k for k, v in state["model_state"].items() if v.is_floating_point() and v.dim() == 2)
    state["model_state"][name][0, 0] = float("nan")
    torch.save(state, poisoned / "checkpoint_best.pt")
    (poisoned / "config.yaml").write_bytes((run / "config.yaml").read_bytes())
    model = tmp_path / "m.pt"
    assert main(["deploy", str(poisoned), "-o", str(model)]) == 2
    err = _one_line(capsys)
    assert name in err and "NaN or infinite" in err and str(model) in err
    assert not model.exists()


def test_deploy_surrogate_refuses_non_finite_weights(tmp_path: Path) -> None:
    from scalelink.surrogates.constitutive import ConstitutiveMLP, export_constitutive

    mlp = ConstitutiveMLP(3, width=4, depth=1).double()
    with torch.no_grad():
        mlp.layers[1].bias[0] = float("inf")
    with pytest.raises(NonFiniteError, match=r"layers\.1\.bias"):
        export_constitutive(mlp, tmp_path / "c.pt")
    assert not (tmp_path / "c.pt").exists()


def test_truncated_checkpoint_and_missing_output_folder(run: Path, data: Path, tmp_path: Path, capsys) -> None:
    assert main(["deploy", str(run), "-o", str(tmp_path / "missing" / "m.pt")]) == 2
    err = _one_line(capsys)
    assert str(tmp_path / "missing") in err and "does not exist" in err
    model = tmp_path / "m.pt"
    assert main(["deploy", str(run), "-o", str(model)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(model), str(data), "-o", str(tmp_path / "missing" / "metrics.json")]) == 2
    assert str(tmp_path / "missing" / "metrics.json") in capsys.readouterr().err.splitlines()[-1]

    truncated = tmp_path / "truncated"
    truncated.mkdir()
    whole = (run / "checkpoint_best.pt").read_bytes()
    (truncated / "checkpoint_best.pt").write_bytes(whole[: len(whole) // 2])
    assert main(["deploy", str(truncated), "-o", str(tmp_path / "m2.pt")]) == 2
    err = _one_line(capsys)
    assert "checkpoint_best.pt" in err and "truncated" in err


def test_yaml_syntax_error_and_non_numeric_value_name_the_problem(data: Path, tmp_path: Path, capsys) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("cutoff: 4.0\nmodel: {num_layers: 1, features: [8\n")
    out = ["--data", str(data), *FLAGS, "--out", str(tmp_path / "run")]
    assert main(["train", str(broken), *out]) == 2
    err = _one_line(capsys)
    assert f"{broken} is not valid YAML" in err and "line 3" in err

    words = tmp_path / "words.yaml"
    words.write_text("cutoff: four\n")
    assert main(["train", str(words), "--data", str(data), "--species", "Cu", "Ni", "--out", str(tmp_path / "r")]) == 2
    err = _one_line(capsys)
    assert "cutoff must be a number, got 'four'" in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "r").exists()
