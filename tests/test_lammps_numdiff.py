"""Forces and virial of pair_style scalelink against LAMMPS' own finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from lammps_utils import run_driver, write_data
from test_lammps_vs_ase import SPECIES, _structure

pytestmark = [pytest.mark.lammps]


@pytest.mark.parametrize("kind", ["orthogonal", "triclinic"])
def test_forces_and_virial_match_fix_numdiff(model_files, tmp_path, kind) -> None:
    write_data(_structure(kind, seed=2), tmp_path / "in.data", SPECIES)
    proc = run_driver(
        tmp_path / "in.data", model_files["float64"], SPECIES, tmp_path / "out.npz", extra=["--numdiff", "1e-5"]
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    got = np.load(tmp_path / "out.npz")
    forces, numdiff = got["forces"], got["numdiff_forces"]
    assert np.abs(forces).max() > 1e-3
    np.testing.assert_allclose(numdiff, forces, rtol=0, atol=1e-5 * np.abs(forces).max() + 1e-8)
    virial, numdiff_virial = got["virial"], got["numdiff_virial"]
    np.testing.assert_allclose(numdiff_virial, virial, rtol=0, atol=1e-5 * np.abs(virial).max() + 1e-8)
