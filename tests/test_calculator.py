"""The ASE calculator against finite differences, and its neighbour graph against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from scalelink.bridge.ase import ScaleLinkCalculator, neighbor_graph
from scalelink.bridge.errors import SpeciesError


def _alloy(repeat=(2, 2, 2), seed=0, triclinic=False) -> Atoms:
    rng = np.random.default_rng(seed)
    atoms = bulk("Cu", "fcc", a=3.58, cubic=True).repeat(repeat)
    atoms.symbols = list(rng.choice(["Cu", "Ni"], size=len(atoms)))
    deform = np.eye(3) + (0.08 * rng.uniform(-1, 1, (3, 3)) if triclinic else 0.0)
    atoms.set_cell(atoms.cell[:] @ deform, scale_atoms=True)
    atoms.positions += rng.normal(scale=0.08, size=atoms.positions.shape)
    return atoms


def _brute_force_pairs(atoms: Atoms, cutoff: float) -> set[tuple[int, int, tuple[float, ...]]]:
    cell = atoms.cell[:]
    n = int(np.ceil(cutoff / np.min(atoms.cell.volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)))) + 1
    pairs = set()
    pos = atoms.positions
    for shift in itertools.product(range(-n, n + 1), repeat=3):
        offset = np.asarray(shift) @ cell
        d = pos[None, :, :] + offset - pos[:, None, :]
        r = np.linalg.norm(d, axis=-1)
        for i, j in zip(*np.nonzero((r < cutoff) & (r > 1e-9))):
            pairs.add((int(i), int(j), tuple(np.round(d[i, j], 8))))
    return pairs


@pytest.mark.parametrize("repeat,cutoff", [((2, 2, 2), 4.0), ((1, 1, 1), 4.0), ((1, 1, 1), 6.5)])
def test_neighbor_graph_includes_every_periodic_image(repeat, cutoff) -> None:
    atoms = _alloy(repeat, triclinic=True)
    edge_index, vectors = neighbor_graph(atoms, cutoff)
    got = {(int(i), int(j), tuple(np.round(v, 8))) for (i, j), v in zip(edge_index.T, vectors)}
    assert got == _brute_force_pairs(atoms, cutoff)


@pytest.mark.parametrize("triclinic", [False, True])
def test_forces_and_stress_match_finite_differences(model_files, triclinic) -> None:
    atoms = _alloy((1, 2, 2), seed=4, triclinic=triclinic)
    atoms.calc = ScaleLinkCalculator(model_files["float64"])
    forces = atoms.get_forces()
    stress = atoms.get_stress(voigt=False)
    assert np.abs(forces).max() > 1e-3, "the test model must produce non-trivial forces"
    h = 1e-5
    for i, k in [(0, 0), (3, 1), (7, 2), (11, 0)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, k] += h
        minus.positions[i, k] -= h
        for a in (plus, minus):
            a.calc = ScaleLinkCalculator(model_files["float64"])
        fd = -(plus.get_potential_energy() - minus.get_potential_energy()) / (2 * h)
        assert fd == pytest.approx(forces[i, k], rel=1e-5, abs=1e-8)
    cell = atoms.cell[:]
    for a, b in [(0, 0), (1, 2), (0, 1)]:
        eps = np.zeros((3, 3))
        eps[a, b] = eps[b, a] = h / 2 if a != b else h
        energies = []
        for sign in (1, -1):
            strained = atoms.copy()
            strained.set_cell(cell @ (np.eye(3) + sign * eps), scale_atoms=True)
            strained.calc = ScaleLinkCalculator(model_files["float64"])
            energies.append(strained.get_potential_energy())
        fd = (energies[0] - energies[1]) / (2 * h) / atoms.get_volume()
        assert fd == pytest.approx(stress[a, b], rel=1e-5, abs=1e-9)


def test_per_atom_energies_sum_to_total_and_precisions_agree(model_files) -> None:
    atoms = _alloy((2, 2, 2), seed=5)
    results = {}
    for dtype, path in model_files.items():
        atoms.calc = ScaleLinkCalculator(path)
        results[dtype] = (atoms.get_potential_energy(), atoms.get_forces(), atoms.get_potential_energies())
        assert results[dtype][2].sum() == pytest.approx(results[dtype][0], rel=1e-12)
    e64, f64, _ = results["float64"]
    e32, f32, _ = results["float32"]
    assert e32 == pytest.approx(e64, rel=1e-5)
    assert np.abs(f32 - f64).max() < 1e-4 * np.abs(f64).max()


def test_unknown_species_is_named(model_files) -> None:
    atoms = _alloy((1, 1, 1))
    atoms.symbols[0] = "Fe"
    atoms.calc = ScaleLinkCalculator(model_files["float64"])
    with pytest.raises(SpeciesError, match=r"\['Fe'\].*\['Cu', 'Ni'\]"):
        atoms.get_potential_energy()


def test_model_in_other_units_is_refused(model_files, tmp_path) -> None:
    import json
    import zipfile

    from scalelink.bridge import keys
    from scalelink.bridge.errors import UnitsError

    real = tmp_path / "real.pt"
    with zipfile.ZipFile(model_files["float64"]) as zin, zipfile.ZipFile(real, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("extra/" + keys.METADATA_FILE):
                data = json.dumps(json.loads(data) | {keys.UNITS: "real"}).encode()
            zout.writestr(item, data)
    with pytest.raises(UnitsError, match="'real'.*metal"):
        ScaleLinkCalculator(real)


def test_per_atom_stresses_sum_to_the_stress(model_files) -> None:
    atoms = _alloy((2, 2, 2), seed=6, triclinic=True)
    atoms.calc = ScaleLinkCalculator(model_files["float64"])
    stress = atoms.get_stress()
    stresses = atoms.get_stresses()
    assert stresses.shape == (len(atoms), 6)
    np.testing.assert_allclose(stresses.sum(axis=0), stress, rtol=0, atol=1e-12 * np.abs(stress).max() + 1e-15)
