"""Committees: one model file evaluating several potentials, with their disagreement.

The committee's energies, forces and stresses must be the average of what the members'
own single-model files give, and its deviations must follow from those files too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from scalelink.bridge import keys
from scalelink.bridge.ase import ScaleLinkCalculator
from scalelink.bridge.errors import CommitteeError
from scalelink.bridge.model_file import read_metadata
from scalelink.cli.main import main
from scalelink.training.export import export_committee, export_potential
from scalelink.potentials.gnn import GNNPotential
from test_lammps_vs_ase import _structure

SPECIES = ["Cu", "Ni"]


def random_member(seed: int, *, cutoff: float = 4.0, num_layers: int = 2, num_species: int = 2) -> GNNPotential:
    """An untrained potential with seeded weights and forces of order 0.1-1 eV/Å."""
    torch.manual_seed(seed)
    return GNNPotential(num_species, cutoff, num_layers, 16, 6, avg_num_neighbors=12.0, energy_scale=200.0).double()


@pytest.fixture(scope="module")
def committee_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    """A committee of three random members and each member as a single-model file."""
    folder = tmp_path_factory.mktemp("committee")
    members = [random_member(seed) for seed in (1, 2, 3)]
    singles = []
    for k, member in enumerate(members):
        singles.append(str(folder / f"member{k}.pt"))
        export_potential(member, SPECIES, singles[-1])
    committee = str(folder / "committee.pt")
    export_committee(members, SPECIES, committee)
    return committee, singles


def _results(atoms, model: str) -> dict[str, np.ndarray | float]:
    atoms = atoms.copy()
    calc = ScaleLinkCalculator(model)
    atoms.calc = calc
    atoms.get_potential_energy()  # one call fills every result, stresses included
    return dict(calc.results)


def test_metadata_of_a_committee(committee_files) -> None:
    meta = read_metadata(committee_files[0])
    assert meta.committee_size == 3
    assert set(meta.outputs) == set(keys.MODEL_OUTPUTS) | set(keys.COMMITTEE_OUTPUTS)
    assert (meta.species, meta.cutoff, meta.num_layers) == (SPECIES, 4.0, 2)


@pytest.mark.parametrize("kind", ["orthogonal", "triclinic", "small"])
def test_committee_is_the_mean_of_its_members(committee_files, kind) -> None:
    committee, singles = committee_files
    atoms = _structure(kind)
    members = [_results(atoms, path) for path in singles]
    got = _results(atoms, committee)
    for name in ("energy", "free_energy", "energies", "forces", "stress", "stresses"):
        want = np.mean([np.asarray(m[name]) for m in members], axis=0)
        scale = max(np.abs(want).max(), 1e-12)
        np.testing.assert_allclose(got[name], want, rtol=0, atol=1e-10 * scale, err_msg=name)

    energies = np.array([m["energy"] for m in members])
    forces = np.stack([m["forces"] for m in members])  # [M, N, 3]
    assert np.abs(forces).max() > 1e-2 and energies.std() > 1e-3, "members must disagree"
    energy_deviation = np.sqrt(np.mean((energies - energies.mean()) ** 2))
    squared = np.einsum("mnc,mnc->mn", forces - forces.mean(0), forces - forces.mean(0))
    forces_deviation = np.sqrt(squared.mean(0))
    assert got["energy_deviation"] == pytest.approx(energy_deviation, rel=1e-10)
    np.testing.assert_allclose(got["forces_deviation"], forces_deviation, rtol=1e-10, atol=1e-12)
    assert got["forces_deviation"].shape == (len(atoms),)
    assert got["max_force_deviation"] == pytest.approx(forces_deviation.max(), rel=1e-10)


def test_deviations_are_committee_properties_only(committee_files) -> None:
    committee, singles = committee_files
    atoms = _structure("orthogonal")
    calc = ScaleLinkCalculator(committee)
    assert calc.get_property("max_force_deviation", atoms) > 0.0
    single = ScaleLinkCalculator(singles[0])
    assert "energy_deviation" not in single.implemented_properties
    from ase.calculators.calculator import PropertyNotImplementedError

    with pytest.raises(PropertyNotImplementedError):
        single.get_property("energy_deviation", atoms)


def test_float32_committee_matches_float64(committee_files, tmp_path) -> None:
    members = [random_member(seed) for seed in (1, 2, 3)]
    export_committee(members, SPECIES, tmp_path / "c32.pt", dtype="float32")
    atoms = _structure("orthogonal")
    got = _results(atoms, str(tmp_path / "c32.pt"))
    want = _results(atoms, committee_files[0])
    np.testing.assert_allclose(got["forces"], want["forces"], rtol=0, atol=1e-4 * np.abs(want["forces"]).max())
    np.testing.assert_allclose(got["forces_deviation"], want["forces_deviation"], rtol=0,
                               atol=1e-4 * want["max_force_deviation"])


@pytest.mark.parametrize(
    "members,pattern",
    [
        (lambda: [random_member(1), random_member(2, cutoff=5.0)], r"one cutoff: member 0 has 4\.0 Å, member 1 has 5\.0 Å"),
        (lambda: [random_member(1), random_member(2, num_layers=3)], r"layers: member 0 has 2, member 1 has 3"),
        (lambda: [random_member(1), random_member(2, num_species=3)], r"member 1 knows 3 species.*2"),
        (lambda: [random_member(1)], r"at least 2 members, got 1"),
    ],
)
def test_mismatched_members_are_refused(tmp_path, members, pattern) -> None:
    with pytest.raises(CommitteeError, match=pattern):
        export_committee(members(), SPECIES, tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists()


def _fake_run(folder: Path, member: GNNPotential, species: list[str], cutoff: float = 4.0) -> Path:
    """A run folder holding just what `scalelink deploy` reads: the best checkpoint."""
    folder.mkdir()
    kwargs = {"num_species": len(species), "cutoff": cutoff, "num_layers": member.num_layers, "features": 16,
              "num_basis": 6, "avg_num_neighbors": 12.0, "energy_scale": 200.0}
    state = {"model_kwargs": kwargs, "model_state": member.state_dict(), "dtype": "float64", "species": species}
    torch.save(state, folder / "checkpoint_best.pt")
    return folder


def test_deploy_several_runs_writes_a_committee_and_its_card(tmp_path, capsys) -> None:
    runs = [_fake_run(tmp_path / f"run{k}", random_member(k), SPECIES) for k in range(2)]
    out = tmp_path / "committee.pt"
    assert main(["deploy", *map(str, runs), "-o", str(out)]) == 0
    assert "committee of 2" in capsys.readouterr().out
    assert read_metadata(out).committee_size == 2
    card = json.loads((tmp_path / "committee.card.json").read_text())
    assert [entry["run"] for entry in card["training_runs"]] == [str(run.resolve()) for run in runs]
    assert card["metadata"]["committee_size"] == 2

    atoms = _structure("orthogonal")
    singles = []
    for k, run in enumerate(runs):
        assert main(["deploy", str(run), "-o", str(tmp_path / f"single{k}.pt")]) == 0
        singles.append(_results(atoms, str(tmp_path / f"single{k}.pt")))
    got = _results(atoms, str(out))
    np.testing.assert_allclose(got["forces"], 0.5 * (singles[0]["forces"] + singles[1]["forces"]), rtol=0, atol=1e-10)


def test_deploy_refuses_runs_with_other_species(tmp_path, capsys) -> None:
    first = _fake_run(tmp_path / "a", random_member(1), SPECIES)
    second = _fake_run(tmp_path / "b", random_member(2), ["Ni", "Cu"])
    assert main(["deploy", str(first), str(second), "-o", str(tmp_path / "bad.pt")]) == 2
    assert "share one species list" in capsys.readouterr().err
    assert not (tmp_path / "bad.pt").exists()


def test_calibration_ranks_and_bins() -> None:
    from scalelink.training.calibration import calibration

    deviation = np.linspace(0.01, 1.0, 50)
    assert calibration(deviation, 2.0 * deviation).spearman == pytest.approx(1.0)
    assert calibration(deviation, deviation[::-1]).spearman == pytest.approx(-1.0)
    result = calibration(deviation, deviation, bins=5)
    np.testing.assert_allclose(result.bin_deviation, [deviation[10 * k:10 * k + 10].mean() for k in range(5)])
    with pytest.raises(ValueError, match="equal-length"):
        calibration(deviation, deviation[:3])


def test_evaluate_reports_committee_calibration(committee_files, reference_data, tmp_path) -> None:
    from ase.io import read
    from scipy.stats import spearmanr

    committee, members = committee_files
    out = tmp_path / "eval.json"
    plot = tmp_path / "parity.png"
    assert main(["evaluate", committee, reference_data, "-o", str(out), "--plot", str(plot)]) == 0
    report = json.loads(out.read_text())["uncertainty"]
    assert (tmp_path / "parity_calibration.png").is_file()

    deviations, errors = [], []
    for atoms in read(reference_data, index=":"):
        reference = atoms.get_forces()
        forces = np.stack([_results(atoms, m)["forces"] for m in members])
        mean = forces.mean(axis=0)
        deviations.append(np.sqrt(((forces - mean) ** 2).sum(axis=2).mean(axis=0)))
        errors.append(np.linalg.norm(mean - reference, axis=1))
    expected = spearmanr(np.concatenate(deviations), np.concatenate(errors)).statistic
    assert report["spearman_force_deviation_vs_error"] == pytest.approx(expected, abs=1e-9)
    assert report["n_atoms"] == sum(len(d) for d in deviations)
