"""Readers of DFT data formats (DeePMD npy systems, mlearn JSON, ASE files) and label checks,
on tiny EMT-labelled Cu/Ni cells whose energies, forces and stresses ASE computes independently."""

from __future__ import annotations

import json
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from scalelink.bridge.errors import DataError
from scalelink.training.formats import KBAR, read_any, read_deepmd, read_mlearn_json, validate_frames

SI_TRAIN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mlearn" / "Si" / "train.extxyz"
VASP_ORDER = [(0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (0, 2)]  # OUTCAR "in kB": xx yy zz xy yz zx
CU_MO_ORDER = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]  # mlearn Cu, Mo: xy xz yz


def make_frames(n: int, seed: int = 0, nickel: bool = False) -> list[Atoms]:
    """Compressed (a < 3.59 Å, EMT's equilibrium), sheared, rattled 4-atom Cu cells with EMT."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=3.45 + 0.03 * k, cubic=True)
        atoms.set_cell(atoms.cell @ (np.eye(3) + 0.03 * rng.standard_normal((3, 3))), scale_atoms=True)
        atoms.rattle(0.05, seed=seed + k)
        if nickel:
            atoms[1].symbol = "Ni"
        atoms.calc = EMT()
        frames.append(atoms)
    return frames


def fd_virial(atoms: Atoms, h: float = 1e-5) -> np.ndarray:
    """Virial W = -dE/dstrain (eV, 3x3) from EMT energies alone, by central differences."""
    w = np.zeros((3, 3))
    for i in range(3):
        for j in range(i, 3):
            energies = []
            for sign in (1, -1):
                eps = np.zeros((3, 3))
                eps[i, j] += sign * h / 2
                eps[j, i] += sign * h / 2
                strained = atoms.copy()
                strained.set_cell(atoms.cell @ (np.eye(3) + eps), scale_atoms=True)
                strained.calc = EMT()
                energies.append(strained.get_potential_energy())
            w[i, j] = w[j, i] = -(energies[0] - energies[1]) / (2 * h)
    return w


def write_deepmd(system: Path, sets: list[list[Atoms]], type_map: list[str] | None = ("Cu", "Ni"),
                 virial: bool = True, nopbc: bool = False) -> None:
    """Write frames as DeePMD-kit would: virial = -dE/dstrain from fd_virial, not from ASE stress."""
    system.mkdir(parents=True)
    names = list(type_map or ("Cu", "Ni"))
    types = [names.index(s) for s in sets[0][0].get_chemical_symbols()]
    (system / "type.raw").write_text("\n".join(map(str, types)) + "\n")
    if type_map is not None:
        (system / "type_map.raw").write_text("\n".join(type_map) + "\n")
    if nopbc:
        (system / "nopbc").touch()
    for s, frames in enumerate(sets):
        folder = system / f"set.{s:03d}"
        folder.mkdir()
        np.save(folder / "coord.npy", np.array([a.positions.ravel() for a in frames]))
        if not nopbc:
            np.save(folder / "box.npy", np.array([a.cell.array.ravel() for a in frames]))
        np.save(folder / "energy.npy", np.array([a.get_potential_energy() for a in frames]))
        np.save(folder / "force.npy", np.array([a.get_forces().ravel() for a in frames]))
        if virial:
            np.save(folder / "virial.npy", np.array([fd_virial(a).ravel() for a in frames]))


def mlearn_entry(atoms: Atoms, order: list[tuple[int, int]], fractional: bool = False) -> dict:
    """An mlearn entry; virial_stress in kBar, VASP sign (compression positive) = W / V."""
    pressure = fd_virial(atoms) / atoms.get_volume() / KBAR
    key = "abc" if fractional else "xyz"
    coords = atoms.get_scaled_positions(wrap=False) if fractional else atoms.positions
    return {
        "structure": {
            "lattice": {"matrix": atoms.cell.array.tolist()},
            "sites": [{"species": [{"element": s, "occu": 1}], key: c.tolist()}
                      for s, c in zip(atoms.get_chemical_symbols(), coords)],
        },
        "outputs": {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces().tolist(),
                    "virial_stress": [pressure[i, j] for i, j in order]},
        "group": "Elastic",
    }


def assert_same(read: list[Atoms], ref: list[Atoms], atol: float = 1e-10) -> None:
    assert len(read) == len(ref)
    for got, want in zip(read, ref):
        assert got.get_chemical_symbols() == want.get_chemical_symbols()
        np.testing.assert_allclose(got.positions, want.positions, atol=atol)
        np.testing.assert_allclose(got.cell.array, want.cell.array, atol=atol)
        assert got.get_potential_energy() == pytest.approx(want.get_potential_energy(), abs=atol)
        np.testing.assert_allclose(got.get_forces(), want.get_forces(), atol=atol)
        # EMT's analytic stress is the independent reference for the virial's sign and units.
        np.testing.assert_allclose(got.get_stress(), want.get_stress(), atol=1e-7)


def test_reference_conventions():
    """ASE stress = (1/V) dE/dstrain = -W/V; a compressed cell has negative (compressive) stress."""
    atoms = make_frames(1)[0]
    w = fd_virial(atoms)
    np.testing.assert_allclose(-w / atoms.get_volume(), atoms.get_stress(voigt=False), atol=1e-7)
    assert np.all(np.diag(atoms.get_stress(voigt=False)) < 0)
    assert np.abs(atoms.get_stress()[3:]).min() > 1e-4  # distinct shears, so an order swap shows


def test_deepmd_roundtrip_sets_and_stress_sign(tmp_path):
    frames = make_frames(3, nickel=True)
    write_deepmd(tmp_path / "sys", [frames[:2], frames[2:]])
    read = read_deepmd(tmp_path / "sys")
    assert_same(read, frames)
    assert all(a.pbc.all() for a in read)
    assert read[2].info["source"] == f"{tmp_path / 'sys' / 'set.001'} frame 0"


def test_deepmd_multi_system_folder(tmp_path):
    cu, cuni = make_frames(2), make_frames(1, seed=5, nickel=True)
    write_deepmd(tmp_path / "a_cu", [cu])
    write_deepmd(tmp_path / "nested" / "b_cuni", [cuni])
    assert_same(read_any(tmp_path), cu + cuni)


def test_deepmd_type_map_keyword_and_missing(tmp_path):
    frames = make_frames(1, nickel=True)
    write_deepmd(tmp_path / "sys", [frames], type_map=None)
    with pytest.raises(DataError, match=r"sys has no type_map\.raw; pass type_map="):
        read_deepmd(tmp_path / "sys")
    assert_same(read_deepmd(tmp_path / "sys", type_map=["Cu", "Ni"]), frames)
    with pytest.raises(DataError, match="type map"):
        read_deepmd(tmp_path / "sys", type_map=["Cu"])


def test_deepmd_nopbc(tmp_path):
    frames = make_frames(1)
    write_deepmd(tmp_path / "sys", [frames], virial=False, nopbc=True)
    (read,) = read_deepmd(tmp_path / "sys")
    assert not read.pbc.any() and "stress" not in read.calc.results
    np.testing.assert_allclose(read.positions, frames[0].positions)


def test_deepmd_bad_shape_names_file(tmp_path):
    write_deepmd(tmp_path / "sys", [make_frames(2)], virial=False)
    np.save(tmp_path / "sys" / "set.000" / "force.npy", np.zeros((2, 9)))
    with pytest.raises(DataError, match=r"set\.000/force\.npy has shape \(2, 9\), expected \[2, 12\]"):
        read_deepmd(tmp_path / "sys")


def test_deepmd_not_a_system(tmp_path):
    with pytest.raises(DataError, match="no type.raw"):
        read_any(tmp_path)


def test_mlearn_roundtrip_vasp_order(tmp_path):
    frames = make_frames(2)
    path = tmp_path / "training.json"
    entries = [mlearn_entry(frames[0], VASP_ORDER), mlearn_entry(frames[1], VASP_ORDER, fractional=True)]
    path.write_text(json.dumps(entries))
    read = read_any(path)
    assert_same(read, frames)
    assert read[0].info["config_type"] == "Elastic"


def test_mlearn_stress_order(tmp_path):
    frames = make_frames(1)
    path = tmp_path / "cu.json"
    path.write_text(json.dumps([mlearn_entry(frames[0], CU_MO_ORDER)]))
    assert_same(read_mlearn_json(path, stress_order="xx yy zz xy xz yz"), frames)
    wrong = read_mlearn_json(path)[0].get_stress()  # default VASP order swaps yz and xz
    np.testing.assert_allclose(wrong[[3, 4]], frames[0].get_stress()[[4, 3]], atol=1e-7)
    with pytest.raises(ValueError, match="six components"):
        read_mlearn_json(path, stress_order="xx yy zz xy xy yz")


def test_mlearn_bad_entry_names_file_and_entry(tmp_path):
    entries = [mlearn_entry(a, VASP_ORDER) for a in make_frames(2)]
    del entries[1]["outputs"]["forces"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(DataError, match=r"bad\.json entry 1: missing or malformed field 'forces'"):
        read_mlearn_json(path)
    path.write_text("{not json")
    with pytest.raises(DataError, match=r"cannot read .*bad\.json as JSON"):
        read_any(path)


def labelled(energy=-1.0, forces=None, stress=None, **atoms_kw) -> Atoms:
    atoms = Atoms(**{"symbols": "Cu2", "positions": [[0, 0, 0], [1, 1, 1]], "cell": np.eye(3) * 3,
                     "pbc": True, **atoms_kw})
    forces = np.zeros((2, 3)) if forces is None else forces
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces, stress=stress)
    return atoms


def without(key: str) -> Atoms:
    atoms = labelled()
    del atoms.calc.results[key]
    return atoms


NAN_FORCES = np.zeros((2, 3))
NAN_FORCES[1, 2] = np.nan


@pytest.mark.parametrize("bad, message", [
    (without("energy"), "no energy label"),
    (without("forces"), "no forces label"),
    (labelled(forces=np.zeros((3, 3))), r"forces have shape \(3, 3\), expected \(2, 3\)"),
    (labelled(energy=np.nan), "energy contains NaN or Inf"),
    (labelled(forces=NAN_FORCES), "forces contains NaN or Inf"),
    (labelled(stress=[0, 0, np.inf, 0, 0, 0]), "stress contains NaN or Inf"),
    (labelled(positions=[[0, 0, 0], [np.nan, 1, 1]]), "positions contains NaN or Inf"),
    (labelled(cell=[[3, 0, 0], [0, 3, 0], [3, 3, 0]]), r"the cell .* has zero volume along its periodic"),
    (labelled(symbols="CuO"), r"species \['O'\] not in the species list \['Cu', 'Ni'\]"),
])
def test_validate_errors_name_file_and_frame(bad, message):
    validate_frames([labelled(), labelled(pbc=False, cell=np.zeros((3, 3)))], "data.xyz", ["Cu", "Ni"])
    with pytest.raises(DataError, match=rf"^data\.xyz frame 1: {message}"):
        validate_frames([labelled(), bad], "data.xyz", ["Cu", "Ni"])


def test_validate_deepmd_names_set_folder(tmp_path):
    write_deepmd(tmp_path / "sys", [make_frames(1), make_frames(2, seed=3)], virial=False)
    np.save(tmp_path / "sys" / "set.001" / "energy.npy", np.array([-1.0, np.nan]))
    frames = read_any(tmp_path)
    with pytest.raises(DataError, match=r"frame 2 \(.*sys/set\.001 frame 1\): energy contains NaN"):
        validate_frames(frames, str(tmp_path), ["Cu"])


def test_validate_zero_volume_before_inf_stress(tmp_path):
    write_deepmd(tmp_path / "sys", [make_frames(2)])
    np.save(tmp_path / "sys" / "set.000" / "box.npy", np.zeros((2, 9)))
    with pytest.raises(DataError, match=r"sys frame 0 \(.*\): the cell .* has zero volume"):
        validate_frames(read_deepmd(tmp_path / "sys"), str(tmp_path / "sys"), ["Cu"])


def test_read_any_ase_formats_and_errors(tmp_path):
    frames = make_frames(2)
    for atoms in frames:  # extxyz stores the calculator's results, so compute them first
        atoms.get_stress()
    ase.io.write(tmp_path / "d.extxyz", frames)
    assert_same(read_any(tmp_path / "d.extxyz"), frames, atol=1e-7)  # extxyz: 8 decimals
    (tmp_path / "junk.xyz").write_text("not a structure\n")
    with pytest.raises(DataError, match=r"cannot read .*junk\.xyz with ASE"):
        read_any(tmp_path / "junk.xyz")
    with pytest.raises(DataError, match=r"missing\.xyz does not exist"):
        read_any(tmp_path / "missing.xyz")


@pytest.mark.skipif(not SI_TRAIN.is_file(), reason="mlearn Si data not present")
def test_read_any_mlearn_si_extxyz_frame0():
    frames = read_any(SI_TRAIN, index="0:1")
    assert len(frames) == 1
    validate_frames(frames, str(SI_TRAIN), ["Si"])
    atoms = frames[0]
    assert atoms.get_potential_energy() == pytest.approx(-295.49753016)
    assert atoms.get_forces().shape == (len(atoms), 3) == (63, 3)
    assert atoms.info["config_type"] == "Vacancy" and atoms.get_stress().shape == (6,)
