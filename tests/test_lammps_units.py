"""pair_style scalelink in units metal, real and si: one model, the same physics.

The model is in metal units (eV, Å); LAMMPS runs in real (kcal/mol, Å) or si (J, m) are
converted by the plugin. Every quantity, scaled back by the LAMMPS conversion factors, must
agree with the metal run; unit styles without a physical scale are refused.
"""

from __future__ import annotations

import numpy as np
import pytest

from lammps_utils import run_driver, write_data
from test_lammps_errors import _error_lines, _run_lmp
from test_lammps_vs_ase import SPECIES, _structure

pytestmark = [pytest.mark.lammps, pytest.mark.mpi]

EV_IN_KCAL_PER_MOL = 23.060549  # LAMMPS' own factor (utils::get_conversion_factor)
EV_IN_JOULE = 1.602176634e-19
# size of one eV and one Å in each style's energy and length units
ENERGY = {"metal": 1.0, "real": EV_IN_KCAL_PER_MOL, "si": EV_IN_JOULE}
LENGTH = {"metal": 1.0, "real": 1.0, "si": 1.0e-10}
# the si default skin is 1 mm
EXTRA = {"metal": [], "real": [], "si": ["--pre", "neighbor 2e-10 bin"]}


def _run(model: str, tmp_path, units: str) -> dict[str, np.ndarray]:
    write_data(_structure("triclinic", seed=5), tmp_path / f"{units}.data", SPECIES, units=units)
    proc = run_driver(
        tmp_path / f"{units}.data", model, SPECIES, tmp_path / f"{units}.npz", ranks=2,
        extra=["--units", units, "--per-atom-virial", *EXTRA[units]],
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return dict(np.load(tmp_path / f"{units}.npz"))


@pytest.mark.parametrize("units", ["real", "si"])
def test_units_real_and_si_give_the_metal_physics(model_files, tmp_path, units) -> None:
    model = model_files["float64"]
    metal = _run(model, tmp_path, "metal")
    other = _run(model, tmp_path, units)
    energy, force = ENERGY[units], ENERGY[units] / LENGTH[units]
    np.testing.assert_array_equal(other["ids"], metal["ids"])
    assert float(other["energy"]) / energy == pytest.approx(float(metal["energy"]), rel=1e-10)
    for name in ("pe_atom", "virial", "atomic_virial", "centroid_virial"):
        scale = np.abs(metal[name]).max()
        np.testing.assert_allclose(other[name] / energy, metal[name], rtol=0, atol=1e-10 * scale, err_msg=name)
    scale = np.abs(metal["forces"]).max()
    np.testing.assert_allclose(other["forces"] / force, metal["forces"], rtol=0, atol=1e-10 * scale)
    assert float(other["volume"]) / LENGTH[units] ** 3 == pytest.approx(float(metal["volume"]), rel=1e-10)


def test_conversion_is_logged_once(model_files, tmp_path) -> None:
    proc = _run_lmp(tmp_path, 2, model=model_files["float64"], units="real")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if "converting model units metal to LAMMPS units real" in ln]
    assert len(lines) == 1, proc.stdout[-3000:]
    assert "23.060549" in lines[0]


@pytest.mark.parametrize(
    "units,pattern",
    [("lj", r"units lj carry no physical scale.*use units metal, real or si"), ("cgs", r"units cgs .*metal, real or si")],
)
def test_units_without_a_physical_scale_are_refused(model_files, tmp_path, units, pattern) -> None:
    import re

    proc = _run_lmp(tmp_path, 2, model=model_files["float64"], units=units)
    assert proc.returncode != 0
    errors = _error_lines(proc)
    assert any(re.search(pattern, ln) for ln in errors), proc.stdout[-3000:] + proc.stderr[-3000:]


def test_si_default_skin_is_refused(model_files, tmp_path) -> None:
    """units si default to a 1 mm skin: a clear error instead of a ghost shell of 10^7 boxes."""
    proc = _run_lmp(tmp_path, 2, model=model_files["float64"], units="si")
    assert proc.returncode != 0
    assert any("neighbor skin" in ln for ln in _error_lines(proc)), proc.stdout[-3000:] + proc.stderr[-3000:]
