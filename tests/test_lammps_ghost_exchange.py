"""pair_style scalelink ghost modes: `ghost exchange` (the default) and `ghost full`.

Both must give the ASE answer for a 3-layer model on 1, 2 and 4 ranks, newton on and off,
with ranks that own no atoms. Exchange mode keeps the ghost shell of any pair style with the
same cutoff, matches LAMMPS' finite differences on 2 ranks, and runs MD on 2 ranks, with
atoms moving between ranks, as it runs serially. A model file without the per-layer
methods falls back to `ghost full` unless `ghost exchange` was asked for.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from lammps_utils import ase_reference, export_random_potential, run_driver, write_data
from test_lammps_errors import _error_lines, _run_lmp
from test_lammps_parallel import _check, _slab
from test_lammps_vs_ase import SPECIES, _structure

from scalelink.bridge.model_file import load_model, save_model

pytestmark = [pytest.mark.lammps, pytest.mark.mpi]


@pytest.fixture(scope="module")
def three_layer_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return export_random_potential(tmp_path_factory.mktemp("models") / "three_layers.pt", SPECIES, num_layers=3)


def _pair(model: str, style_args: str = "") -> list[str]:
    return ["--pair", f"pair_style scalelink {style_args}", f"pair_coeff * * {model} {' '.join(SPECIES)}"]


def _run(tmp_path: Path, data: Path, model: str, name: str, *, extra: list[str], **kwargs):
    out = tmp_path / f"{name}.npz"
    proc = run_driver(data, model, SPECIES, out, timeout=120, extra=extra, **kwargs)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return np.load(out)


@pytest.mark.parametrize("ghost", ["exchange", "full"])
@pytest.mark.parametrize("ranks,newton", [(1, "on"), (2, "on"), (2, "off"), (4, "on"), (4, "off")])
def test_three_layers_match_ase(three_layer_model, tmp_path, ghost, ranks, newton) -> None:
    atoms = write_data(_structure("triclinic", seed=21), tmp_path / "in.data", SPECIES)
    got = _run(tmp_path, tmp_path / "in.data", three_layer_model, "out", ranks=ranks, newton=newton,
               extra=[*_pair(three_layer_model, f"ghost {ghost}"), "--per-atom-virial"])
    _check(got, ase_reference(atoms, three_layer_model))


@pytest.mark.parametrize("ghost", ["exchange", "full"])
@pytest.mark.parametrize("newton", ["on", "off"])
def test_three_layers_with_ranks_without_atoms(three_layer_model, tmp_path, ghost, newton) -> None:
    """processors 4 1 1 on a slab: rank 0 owns every atom, the others hold ghosts or nothing."""
    atoms = write_data(_slab(seed=22), tmp_path / "in.data", SPECIES)
    got = _run(tmp_path, tmp_path / "in.data", three_layer_model, "out", ranks=4, newton=newton,
               extra=[*_pair(three_layer_model, f"ghost {ghost}"), "--pre", "processors 4 1 1", "--per-atom-virial"])
    _check(got, ase_reference(atoms, three_layer_model))


@pytest.mark.parametrize("ghost", ["exchange", "full"])
def test_wide_features_under_hybrid_overlay(tmp_path, ghost) -> None:
    """pair_style hybrid takes the communication sizes of its sub-styles before pair_coeff
    loads the model: 96 features per atom must still fit the communication buffers."""
    model = export_random_potential(tmp_path / "wide.pt", SPECIES, num_layers=3, features=96)
    atoms = write_data(_structure("orthogonal", seed=27), tmp_path / "in.data", SPECIES)
    pair = ["--pair", f"pair_style hybrid/overlay scalelink ghost {ghost} zero 4.0",
            f"pair_coeff * * scalelink {model} {' '.join(SPECIES)}", "--post", "pair_coeff * * zero"]
    got = _run(tmp_path, tmp_path / "in.data", model, "out", ranks=2, extra=[*pair, "--per-atom-virial"])
    _check(got, ase_reference(atoms, model))


def test_exchange_keeps_the_ghost_shell_of_one_cutoff(model_files, tmp_path) -> None:
    """Ghost atoms per rank: exchange as `pair_style zero <cutoff>`, full many more (2 layers)."""
    model = model_files["float64"]
    write_data(_structure("orthogonal", seed=23).repeat((2, 1, 1)), tmp_path / "in.data", SPECIES)
    count = {}
    for name, pair in [("zero", ["--pair", "pair_style zero 4.0", "pair_coeff * *"]),
                       ("exchange", _pair(model)), ("full", _pair(model, "ghost full"))]:
        count[name] = _run(tmp_path, tmp_path / "in.data", model, name, ranks=2, extra=pair)["nghost"]
    assert len(count["zero"]) == 2 and count["zero"].min() > 0
    np.testing.assert_array_equal(count["exchange"], count["zero"])
    # ghost shell 4 + 2 Å against 2 x 4 + 2 Å
    assert (count["full"] > 1.5 * count["exchange"]).all(), count


def test_exchange_forces_and_virial_match_fix_numdiff(three_layer_model, tmp_path) -> None:
    write_data(_structure("triclinic", seed=24), tmp_path / "in.data", SPECIES)
    got = _run(tmp_path, tmp_path / "in.data", three_layer_model, "out", ranks=2,
               extra=[*_pair(three_layer_model, "ghost exchange"), "--numdiff", "1e-5"])
    forces, virial = got["forces"], got["virial"]
    assert np.abs(forces).max() > 1e-2
    np.testing.assert_allclose(got["numdiff_forces"], forces, rtol=0, atol=1e-5 * np.abs(forces).max() + 1e-8)
    np.testing.assert_allclose(got["numdiff_virial"], virial, rtol=0, atol=1e-5 * np.abs(virial).max() + 1e-8)


def test_exchange_md_on_two_ranks_follows_the_serial_run(model_files, tmp_path) -> None:
    """200 NVE steps with the whole crystal drifting along x, so atoms change rank."""
    model = model_files["float64"]
    write_data(_structure("orthogonal", seed=25), tmp_path / "in.data", SPECIES)
    md = ["--md", "200", "--post", "velocity all create 600 4928459 mom yes rot yes dist gaussian",
          "--post", "velocity all set 15 NULL NULL sum yes", "--post", "neigh_modify every 1 delay 0 check yes"]
    serial = _run(tmp_path, tmp_path / "in.data", model, "serial", ranks=1, extra=md)
    parallel = _run(tmp_path, tmp_path / "in.data", model, "parallel", ranks=2, extra=md)

    assert (parallel["md_owner_start"] != parallel["md_owner_end"]).sum() > 10, "atoms must migrate"
    steps, pe, etotal = serial["md_energy"].T
    np.testing.assert_array_equal(parallel["md_energy"][:, 0], steps)
    assert steps[-1] == 200
    # the run is not trivial: potential energy changes, total energy is conserved
    assert np.ptp(pe) > 100 * np.ptp(etotal)
    np.testing.assert_allclose(parallel["md_energy"][:, 1], pe, rtol=0, atol=1e-9 * np.abs(pe).max())
    np.testing.assert_allclose(parallel["md_energy"][:, 2], etotal, rtol=0, atol=1e-9 * np.abs(etotal).max())


class _WholeModelOnly(nn.Module):
    """A deployed potential seen through forward() alone, like model files that predate the
    per-layer methods."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, data: Dict[str, Tensor]) -> Dict[str, Tensor]:
        return self.module(data)


@pytest.fixture(scope="module")
def model_without_layers(model_files, tmp_path_factory: pytest.TempPathFactory) -> str:
    module, metadata = load_model(model_files["float64"])
    path = tmp_path_factory.mktemp("old") / "whole_only.pt"
    save_model(torch.jit.script(_WholeModelOnly(module)), path, metadata)
    return str(path)


def test_model_without_layer_methods_falls_back_to_full(model_without_layers, tmp_path) -> None:
    atoms = write_data(_structure("orthogonal", seed=26), tmp_path / "in.data", SPECIES)
    proc = run_driver(tmp_path / "in.data", model_without_layers, SPECIES, tmp_path / "out.npz", ranks=2,
                      extra=["--per-atom-virial"], timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    _check(np.load(tmp_path / "out.npz"), ase_reference(atoms, model_without_layers))

    proc = _run_lmp(tmp_path, 2, model=model_without_layers, style_args="ghost exchange")
    assert proc.returncode != 0
    errors = _error_lines(proc)
    assert any("ghost exchange" in ln and "no per-layer methods" in ln for ln in errors), proc.stdout[-3000:]


@pytest.mark.parametrize("style_args,logged", [("", "ghost exchange"), ("ghost full", "ghost full")])
def test_ghost_mode_is_logged(model_files, tmp_path, style_args, logged) -> None:
    proc = _run_lmp(tmp_path, 1, model=model_files["float64"], style_args=style_args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"ScaleLink: {logged}:" in proc.stdout


@pytest.mark.parametrize(
    "style_args,pattern",
    [("ghost half", r"ghost 'half' is not known: use exchange or full"), ("ghost", r"ghost needs a value")],
)
def test_bad_ghost_keyword_is_refused(model_files, tmp_path, style_args, pattern) -> None:
    proc = _run_lmp(tmp_path, 2, model=model_files["float64"], style_args=style_args)
    assert proc.returncode != 0
    assert any(re.search(pattern, ln) for ln in _error_lines(proc)), proc.stdout[-3000:] + proc.stderr[-3000:]
