"""`scalelink train` and its run folder: the data are checked before the folder is touched, and a
folder holding a run is continued or replaced only when asked (--resume, --overwrite)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalelink.cli.main import main
from scalelink.training.reference import write_fcc_alloy_dataset

SMALL = "model: {num_layers: 1, features: 8, num_basis: 4}\n"
FLAGS = ["--species", "Cu", "Ni", "--cutoff", "4.0", "--seed", "1", "--quiet"]


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(config file of a tiny GNN, 12 EMT-labelled structures)."""
    folder = tmp_path_factory.mktemp("small")
    data = folder / "data.extxyz"
    write_fcc_alloy_dataset(str(data), 12, seed=4)
    config = folder / "small.yaml"
    config.write_text(SMALL)
    return config, data


def _train(config: Path, data: Path, out: Path, *extra: str) -> int:
    return main(["train", str(config), "--data", str(data), *FLAGS, "--out", str(out), *extra])


def _snapshot(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file()}


def test_an_existing_run_is_refused_unless_resumed_or_overwritten(small_data, tmp_path: Path, capsys) -> None:
    config, data = small_data
    run = tmp_path / "run"
    assert _train(config, data, run, "--epochs", "1") == 0
    before = _snapshot(run)
    capsys.readouterr()

    assert _train(config, data, run, "--epochs", "2") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert str(run) in err and "--resume" in err and "--overwrite" in err
    assert _snapshot(run) == before

    assert main(["train", "--resume", str(run), "--overwrite", "--quiet"]) == 2
    assert "exclude each other" in capsys.readouterr().err

    assert _train(config, data, run, "--epochs", "2", "--overwrite") == 0
    history = json.loads((run / "history.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]


def test_bad_data_leave_an_existing_run_and_its_resume_intact(small_data, tmp_path: Path, capsys) -> None:
    config, data = small_data
    run = tmp_path / "run"
    assert _train(config, data, run, "--epochs", "1") == 0
    before = _snapshot(run)
    capsys.readouterr()

    # a resume pointed at data that cannot be read, and a replacement with such data
    assert main(["train", "--resume", str(run), "--data", str(tmp_path / "missing.extxyz"), "--quiet"]) == 2
    assert "missing.extxyz does not exist" in capsys.readouterr().err
    assert _snapshot(run) == before
    broken = tmp_path / "broken.extxyz"
    broken.write_text("this is not an extxyz file\n")
    assert _train(config, broken, run, "--epochs", "1", "--overwrite") == 2
    assert "broken.extxyz" in capsys.readouterr().err
    assert _snapshot(run) == before

    assert main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 0
    assert json.loads((run / "history.json").read_text())["history"][-1]["epoch"] == 2


def test_out_naming_a_file_is_a_one_line_error(small_data, tmp_path: Path, capsys) -> None:
    config, data = small_data
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me\n")
    assert _train(config, data, existing, "--epochs", "1") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is an existing file, not a folder" in err and str(existing) in err
    assert existing.read_text() == "keep me\n"
