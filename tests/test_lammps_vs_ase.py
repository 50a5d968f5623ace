"""pair_style scalelink in LAMMPS reproduces the ASE calculator on the same model file.

Energy, forces, per-atom energies and the virial; orthogonal, triclinic and small cells
(shorter than twice the cutoff), two species, float64 and float32, 1 and 2 MPI ranks,
newton on and off.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from lammps_utils import ase_reference, run_driver, write_data

pytestmark = [pytest.mark.lammps, pytest.mark.mpi]

SPECIES = ["Cu", "Ni"]
TOLERANCE = {"float64": 1e-6, "float32": 1e-4}


def _structure(kind: str, seed: int = 7):
    rng = np.random.default_rng(seed)
    repeat = {"orthogonal": (3, 3, 3), "triclinic": (3, 3, 3), "small": (1, 1, 2)}[kind]
    atoms = bulk("Cu", "fcc", a=3.58, cubic=True).repeat(repeat)
    atoms.symbols = list(rng.choice(SPECIES, size=len(atoms)))
    if kind == "triclinic":
        # LAMMPS' restricted triclinic form: upper shear factors only, then re-wrapped
        cell = atoms.cell[:].copy()
        cell[1, 0] += 0.9
        cell[2, 0] += -0.6
        cell[2, 1] += 0.7
        atoms.set_cell(cell, scale_atoms=True)
    atoms.positions += rng.normal(scale=0.07, size=atoms.positions.shape)
    atoms.wrap()
    return atoms


def _close(got, want, tol) -> None:
    scale = max(np.abs(want).max(), 1e-12)
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * scale)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", ["orthogonal", "triclinic", "small"])
@pytest.mark.parametrize("ranks,newton", [(1, "on"), (2, "on"), (2, "off")])
def test_lammps_matches_ase(model_files, tmp_path, dtype, kind, ranks, newton) -> None:
    model = model_files[dtype]
    atoms = write_data(_structure(kind), tmp_path / "in.data", SPECIES)
    proc = run_driver(tmp_path / "in.data", model, SPECIES, tmp_path / "out.npz", ranks=ranks, newton=newton)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    got = np.load(tmp_path / "out.npz")
    want = ase_reference(atoms, model)
    tol = TOLERANCE[dtype]
    assert np.abs(want["forces"]).max() > 1e-3, "reference forces must be non-trivial"
    assert float(got["energy"]) == pytest.approx(want["energy"], rel=tol)
    _close(got["pe_atom"], want["pe_atom"], tol)
    assert got["pe_atom"].sum() == pytest.approx(float(got["energy"]), rel=1e-10)
    _close(got["forces"], want["forces"], tol)
    _close(got["virial"], want["virial"], tol)


@pytest.mark.parametrize("ranks", [1, 2])
def test_null_type_under_hybrid_overlay_is_invisible(model_files, tmp_path, ranks) -> None:
    """Atoms of a type mapped to NULL take no part in the ScaleLink energy or forces."""
    model = model_files["float64"]
    atoms = _structure("orthogonal", seed=9)
    rng = np.random.default_rng(1)
    third = rng.random(len(atoms)) < 0.2
    # write with a third species (Ag) so that LAMMPS gets three types
    mixed = atoms.copy()
    mixed.symbols = [("Ag" if t else s) for s, t in zip(atoms.get_chemical_symbols(), third)]
    data = tmp_path / "in.data"
    seen = write_data(mixed, data, ["Cu", "Ni", "Ag"])
    proc = run_driver(
        data, model, SPECIES, tmp_path / "out.npz", ranks=ranks,
        extra=["--pair", "pair_style hybrid/overlay scalelink zero 4.0", f"pair_coeff * * scalelink {model} Cu Ni NULL",
               "--post", "pair_coeff * * zero"],
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    got = np.load(tmp_path / "out.npz")
    keep = np.array([s != "Ag" for s in seen.get_chemical_symbols()])
    want = ase_reference(seen[keep], model)
    assert float(got["energy"]) == pytest.approx(want["energy"], rel=1e-8)
    _close(got["forces"][keep], want["forces"], 1e-8)
    assert np.abs(got["forces"][~keep]).max() == 0.0
