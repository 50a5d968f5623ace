"""The main demo, end to end: accuracy of the deployed model, NVE energy conservation in
LAMMPS serially and on 2 ranks, and agreement of the two runs at step 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.lammps, pytest.mark.mpi]


def test_demo_reaches_stated_accuracy_and_conserves_energy(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    scalelink = Path(sys.executable).with_name("scalelink")
    proc = subprocess.run(
        [str(scalelink), "demo", "--out", str(out)], capture_output=True, text=True, timeout=1500,
        env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    print(json.dumps(summary, indent=2))
    # acceptance targets on held-out EMT data
    assert summary["test_force_rmse_eV_per_A"] <= 0.030
    assert summary["test_energy_rmse_eV_per_atom"] <= 0.003
    # the same structure gives the same energy on 1 and 2 ranks (float32 model)
    assert summary["step0_pe_difference_eV"] <= 1e-6 * summary["md_atoms"]
    for run in summary["md"]:
        # 1 ps of NVE at 600 K: total energy drifts by less than 1e-5 eV/atom per ps
        assert abs(run["nve_drift_eV_per_atom_ps"]) < 1e-5, run
