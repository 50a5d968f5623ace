"""pair_style scalelink under harder parallel and bookkeeping conditions, against ASE.

4 MPI ranks (orthogonal and triclinic, newton on and off), atom IDs that are not 1..N,
ranks that own no atoms (a slab with a vacuum gap, split along it), and the round trips
`write_data` / `read_data` and `write_restart` / `read_restart` (after which pair_style and
pair_coeff are issued again: restart files do not hold the model).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from lammps_utils import ase_reference, run_driver, write_data
from test_lammps_vs_ase import SPECIES, _structure

pytestmark = [pytest.mark.lammps, pytest.mark.mpi]

TOLERANCE = 1e-8  # float64 model: LAMMPS and ASE differ by summation order only


def _close(got: np.ndarray, want: np.ndarray, tol: float = TOLERANCE) -> None:
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * max(np.abs(want).max(), 1e-12))


def _check(got, want, *, per_atom_virial: bool = True) -> None:
    assert np.abs(want["forces"]).max() > 1e-3, "reference forces must be non-trivial"
    assert float(got["energy"]) == pytest.approx(want["energy"], rel=TOLERANCE)
    _close(got["pe_atom"], want["pe_atom"])
    _close(got["forces"], want["forces"])
    _close(got["virial"], want["virial"])
    if per_atom_virial:
        _close(got["atomic_virial"], want["atomic_virial"])


def _run(tmp_path: Path, data: Path, model: str, name: str, **kwargs):
    out = tmp_path / f"{name}.npz"
    proc = run_driver(data, model, SPECIES, out, timeout=120, **kwargs)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return np.load(out)


@pytest.mark.parametrize("kind", ["orthogonal", "triclinic"])
@pytest.mark.parametrize("newton", ["on", "off"])
def test_four_ranks_match_ase(model_files, tmp_path, kind, newton) -> None:
    model = model_files["float64"]
    atoms = write_data(_structure(kind, seed=12), tmp_path / "in.data", SPECIES)
    got = _run(tmp_path, tmp_path / "in.data", model, "out", ranks=4, newton=newton, extra=["--per-atom-virial"])
    _check(got, ase_reference(atoms, model))


def _renumber(data: Path, new_id) -> None:
    """Rewrite the atom IDs of a LAMMPS data file (Atoms section) as new_id(old_id)."""
    lines = data.read_text().splitlines()
    start = next(k for k, ln in enumerate(lines) if ln.startswith("Atoms")) + 2
    for k in range(start, len(lines)):
        fields = lines[k].split()
        if not fields:
            break
        fields[0] = str(new_id(int(fields[0])))
        lines[k] = " ".join(fields)
    data.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("newton", ["on", "off"])
def test_non_consecutive_atom_ids(model_files, tmp_path, newton) -> None:
    model = model_files["float64"]
    atoms = write_data(_structure("triclinic", seed=13), tmp_path / "in.data", SPECIES)
    _renumber(tmp_path / "in.data", lambda old: 3 * old + 7)
    got = _run(tmp_path, tmp_path / "in.data", model, "out", ranks=2, newton=newton, extra=["--per-atom-virial"])
    # atoms come back sorted by ID, which keeps the original order
    np.testing.assert_array_equal(got["ids"], 3 * np.arange(1, len(atoms) + 1) + 7)
    _check(got, ase_reference(atoms, model))


def _slab(seed: int = 14):
    """A 3x3x3 fcc slab filling x < 12 of a 50.74 Å periodic cell: 38 Å of vacuum along x."""
    rng = np.random.default_rng(seed)
    atoms = bulk("Cu", "fcc", a=3.58, cubic=True).repeat((3, 3, 3))
    atoms.symbols = list(rng.choice(SPECIES, size=len(atoms)))
    cell = atoms.cell[:].copy()
    cell[0, 0] += 40.0
    atoms.set_cell(cell, scale_atoms=False)
    atoms.positions += rng.normal(scale=0.07, size=atoms.positions.shape) + [1.0, 0.0, 0.0]
    return atoms


@pytest.mark.parametrize("newton", ["on", "off"])
def test_ranks_without_atoms(model_files, tmp_path, newton) -> None:
    """processors 4 1 1: rank 0 owns every atom, ranks 1 and 3 only ghosts, rank 2 nothing."""
    model = model_files["float64"]
    atoms = write_data(_slab(), tmp_path / "in.data", SPECIES)
    quarter = atoms.cell[0, 0] / 4
    # ghost shell: 4 Å + 2 Å skin (ghost exchange); the bounds below allow for 2 x 4 + 2 Å (ghost full)
    assert atoms.positions[:, 0].min() > 0.0 and atoms.positions[:, 0].max() < quarter
    assert atoms.positions[:, 0].max() + 10.0 < 2 * quarter and atoms.cell[0, 0] - 10.0 > 3 * quarter
    got = _run(
        tmp_path, tmp_path / "in.data", model, "out", ranks=4, newton=newton,
        extra=["--pre", "processors 4 1 1", "--per-atom-virial"],
    )
    _check(got, ase_reference(atoms, model))


def test_write_data_read_data_round_trip(model_files, tmp_path) -> None:
    model = model_files["float64"]
    atoms = write_data(_structure("triclinic", seed=15), tmp_path / "in.data", SPECIES)
    first = _run(tmp_path, tmp_path / "in.data", model, "first", ranks=2,
                 extra=["--after", f"write_data {tmp_path / 'written.data'}"])
    second = _run(tmp_path, tmp_path / "written.data", model, "second", ranks=2)
    np.testing.assert_array_equal(second["ids"], first["ids"])
    for name in ("forces", "pe_atom", "virial"):
        _close(second[name], first[name], 1e-12)
    _check(second, ase_reference(atoms, model), per_atom_virial=False)


def test_write_restart_read_restart_round_trip(model_files, tmp_path) -> None:
    """The model is not in the restart file: the driver issues pair_style/pair_coeff again."""
    model = model_files["float64"]
    atoms = write_data(_structure("orthogonal", seed=16), tmp_path / "in.data", SPECIES)
    first = _run(tmp_path, tmp_path / "in.data", model, "first", ranks=2,
                 extra=["--after", f"write_restart {tmp_path / 'state.restart'}"])
    second = _run(tmp_path, tmp_path / "state.restart", model, "second", ranks=2, extra=["--restart"])
    np.testing.assert_array_equal(second["ids"], first["ids"])
    for name in ("forces", "pe_atom", "virial"):
        _close(second[name], first[name], 1e-12)
    _check(second, ase_reference(atoms, model), per_atom_virial=False)
