"""The device keyword of pair_style scalelink: cpu, cuda, auto and share_gpu.

Without a CUDA device, auto must fall back to cpu (and say so) and cuda must stop every rank
with one clear error. Where a GPU is present, cuda must reproduce the cpu results.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from lammps_utils import run_driver, write_data
from test_lammps_errors import _error_lines, _run_lmp
from test_lammps_vs_ase import SPECIES, _structure

pytestmark = [pytest.mark.lammps, pytest.mark.mpi]


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.parametrize("ranks", [1, 2])
def test_auto_without_gpu_runs_on_cpu(model_files, tmp_path, ranks) -> None:
    if _cuda_available():
        pytest.skip("a CUDA device is visible: auto picks it")
    proc = _run_lmp(tmp_path, ranks, model=model_files["float64"], style_args="device auto")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("device auto: torch sees no CUDA device, running on cpu") == 1, proc.stdout[-3000:]
    assert "committee of 1, on cpu" in proc.stdout


@pytest.mark.parametrize("ranks", [1, 2])
def test_cuda_without_gpu_is_one_clear_error(model_files, tmp_path, ranks) -> None:
    if _cuda_available():
        pytest.skip("a CUDA device is visible")
    proc = _run_lmp(tmp_path, ranks, model=model_files["float64"], style_args="device cuda share_gpu yes")
    assert proc.returncode != 0
    errors = _error_lines(proc)
    assert errors, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert all("device cuda requested but torch sees no CUDA device on this node" in ln for ln in errors), errors


@pytest.mark.parametrize(
    "style_args,pattern",
    [
        ("device gpu", r"device 'gpu' is not known: use cpu, cuda or auto"),
        ("device", r"device needs a value: cpu, cuda or auto"),
        ("share_gpu maybe", r"share_gpu 'maybe' is not known: use yes or no"),
        ("gpu_id 0", r"keyword 'gpu_id'.*device.*share_gpu"),
    ],
)
def test_bad_device_settings_are_refused(model_files, tmp_path, style_args, pattern) -> None:
    proc = _run_lmp(tmp_path, 2, model=model_files["float64"], style_args=style_args)
    assert proc.returncode != 0
    errors = _error_lines(proc)
    assert any(re.search(pattern, ln) for ln in errors), proc.stdout[-3000:] + proc.stderr[-3000:]


def test_explicit_cpu_runs(model_files, tmp_path) -> None:
    proc = _run_lmp(tmp_path, 1, model=model_files["float64"], style_args="device cpu share_gpu no")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "on cpu" in proc.stdout


@pytest.mark.gpu
@pytest.mark.parametrize("ranks", [1, 2])
def test_cuda_matches_cpu(model_files, tmp_path, ranks) -> None:
    if not _cuda_available():
        pytest.skip("no CUDA device")
    model = model_files["float64"]
    write_data(_structure("triclinic", seed=8), tmp_path / "in.data", SPECIES)
    results = {}
    for device in ("cpu", "cuda"):
        pair = ["--pair", f"pair_style scalelink device {device} share_gpu yes", f"pair_coeff * * {model} Cu Ni"]
        proc = run_driver(
            tmp_path / "in.data", model, SPECIES, tmp_path / f"{device}.npz", ranks=ranks,
            extra=[*pair, "--per-atom-virial"],
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        results[device] = np.load(tmp_path / f"{device}.npz")
    cpu, cuda = results["cpu"], results["cuda"]
    assert float(cuda["energy"]) == pytest.approx(float(cpu["energy"]), rel=1e-10)
    for name in ("forces", "pe_atom", "virial", "atomic_virial", "centroid_virial"):
        scale = np.abs(cpu[name]).max()
        np.testing.assert_allclose(cuda[name], cpu[name], rtol=0, atol=1e-9 * scale, err_msg=name)
