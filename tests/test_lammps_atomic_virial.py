"""Per-atom virials of pair_style scalelink: ``compute stress/atom`` and ``centroid/stress/atom``.

Summed over all atoms they give the global virial of ``compute pressure``; atom by atom they
match the per-atom stresses of the ASE calculator (symmetrised) and the model's own
nine-component per-atom virials (centroid form), on 1 and 2 ranks, newton on and off.
"""

from __future__ import annotations

import numpy as np
import pytest

from lammps_utils import ase_reference, model_atomic_virial, run_driver, write_data
from test_lammps_errors import _error_lines, _with_metadata
from test_lammps_vs_ase import SPECIES, _structure

from scalelink.bridge import keys

pytestmark = [pytest.mark.lammps, pytest.mark.mpi]


def _relative(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.mark.parametrize("kind", ["orthogonal", "triclinic"])
@pytest.mark.parametrize("ranks,newton", [(1, "on"), (2, "on"), (2, "off")])
def test_per_atom_virial_matches_global_and_ase(model_files, tmp_path, kind, ranks, newton) -> None:
    model = model_files["float64"]
    atoms = write_data(_structure(kind, seed=4), tmp_path / "in.data", SPECIES)
    proc = run_driver(
        tmp_path / "in.data", model, SPECIES, tmp_path / "out.npz", ranks=ranks, newton=newton,
        extra=["--per-atom-virial"],
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    got = np.load(tmp_path / "out.npz")

    # sums over atoms (compute reduce) against compute pressure
    virial = got["virial"]
    assert np.abs(virial).max() > 1e-2, "the reference virial must be non-trivial"
    assert _relative(got["atomic_virial_sum"], virial) < 1e-10
    centroid_sum = got["centroid_virial_sum"]
    assert _relative(centroid_sum[:6], virial) < 1e-10
    # the model is rotation invariant: its virial is symmetric
    assert _relative(centroid_sum[6:], virial[3:]) < 1e-10

    # atom by atom against the Python model
    want = ase_reference(atoms, model)
    assert _relative(got["atomic_virial"], want["atomic_virial"]) < 1e-8
    assert _relative(got["centroid_virial"], model_atomic_virial(atoms, model)) < 1e-8
    # per-atom values differ from atom to atom: the comparison above is not one of averages
    assert np.ptp(want["atomic_virial"][:, 0]) > 1e-2 * np.abs(want["atomic_virial"]).max()


@pytest.mark.parametrize("compute", ["stress/atom", "centroid/stress/atom"])
def test_model_without_atomic_virial_is_refused(model_files, tmp_path, compute) -> None:
    outputs = [keys.ENERGY, keys.ATOMIC_ENERGY, keys.FORCES, keys.VIRIAL]
    model = _with_metadata(model_files["float64"], tmp_path / "no_atomic_virial.pt", **{keys.OUTPUTS: outputs})
    write_data(_structure("small"), tmp_path / "in.data", SPECIES)
    proc = run_driver(
        tmp_path / "in.data", model, SPECIES, tmp_path / "out.npz", ranks=2,
        extra=["--post", f"compute s all {compute} NULL virial", "--post", "compute ss all reduce sum c_s[1]",
               "--post", "thermo_style custom step pe c_ss"],
        timeout=120,
    )
    assert proc.returncode != 0
    errors = _error_lines(proc)
    assert any("per-atom virial" in ln and "atomic_virial" in ln for ln in errors), proc.stdout[-2000:] + proc.stderr[-2000:]
