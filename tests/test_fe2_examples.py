"""The FE² examples run as written (quick settings), serially and on 2 ranks, and stay close
to their direct numerical simulations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.fenicsx, pytest.mark.mpi]


def _run(script: str, ranks: int, out: Path, *extra: str) -> dict:
    command = [sys.executable, str(EXAMPLES / script), "--quick", "--out", str(out), *extra]
    if ranks > 1:
        command = [str(BIN / "mpirun"), "-n", str(ranks), *command]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


@pytest.mark.parametrize("ranks", [1, 2])
def test_fe2_plate_matches_dns(tmp_path: Path, ranks: int) -> None:
    results = _run("fe2_plate.py", ranks, tmp_path)
    # Quick settings: 6×6 triangles per cell, a 4×2 P2 macro mesh.
    assert results["fe2_rve"]["stress_error"] < 0.02
    assert results["fe2_rve"]["displacement_error"] < 0.02
    assert results["fe2_surrogate"]["stress_error"] < 0.02
    assert results["fe2_surrogate"]["displacement_error"] < 0.02
    assert results["surrogate_training"]["held_out"]["held_out"]["stress_relative_rmse"] < 0.01
    assert results["dns"]["points"] == 16 * 8 * 6 * 6 * 2


def test_fe2_plate_parallel_equals_serial(tmp_path: Path) -> None:
    serial = _run("fe2_plate.py", 1, tmp_path / "s")
    parallel = _run("fe2_plate.py", 2, tmp_path / "p")
    for key in ("dns", "fe2_rve"):
        for field in ("stress", "displacement"):
            assert serial[key][field] == pytest.approx(parallel[key][field], rel=1e-8, abs=1e-12)
    # The surrogate is trained on rank 0 either way; the FE² solve with it is parallel.
    for field in ("stress", "displacement"):
        assert serial["fe2_surrogate"][field] == pytest.approx(
            parallel["fe2_surrogate"][field], rel=1e-6, abs=1e-10)


@pytest.mark.parametrize("ranks", [1, 2])
def test_fe2_viscoelastic_matches_dns(tmp_path: Path, ranks: int) -> None:
    results = _run("fe2_viscoelastic.py", ranks, tmp_path)
    assert results["prony"]["relative_rms"] < 5e-3
    assert results["max_stress_error"] < 0.04
    # The composite relaxes: the held stress falls well below its value at the end of the ramp.
    assert results["relaxation_ratio_dns"] < 0.8
    assert results["relaxation_ratio_fe2"] == pytest.approx(results["relaxation_ratio_dns"], rel=0.05)
