"""The atomistic–continuum examples run as written and reproduce their stated accuracy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.lammps, pytest.mark.fenicsx]


def _run(command: list[str], cwd: Path) -> None:
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [2, 4])
def test_coupled_vacancy_example(tmp_path: Path, ranks: int) -> None:
    out = tmp_path / "vacancy.json"
    _run([str(BIN / "mpirun"), "-n", str(ranks), sys.executable,
          str(EXAMPLES / "coupled_vacancy.py"), "--json", str(out)], tmp_path)
    result = json.loads(out.read_text())
    assert result["converged"]
    # Near the defect the coupled field is far closer to the fully atomistic one than the
    # atomistic region alone with its boundary held at the far field.
    assert result["coupled_max"] < 1e-3
    assert result["coupled_max"] < 0.2 * result["alone_max"]


@pytest.mark.slow
def test_coupled_wave_example(tmp_path: Path) -> None:
    out = tmp_path / "wave.json"
    _run([sys.executable, str(EXAMPLES / "coupled_wave.py"), "--json", str(out)], tmp_path)
    result = json.loads(out.read_text())
    assert result["energy_error"] < 1e-4
    rows = {round(row["ka"], 2): row for row in result["rows"]}
    # Low wavenumbers pass into the continuum; far above the mesh cutoff they are absorbed.
    assert rows[0.3]["gp"]["reflected"] < 0.01
    assert rows[2.0]["gp"]["absorbed"] > 0.99
