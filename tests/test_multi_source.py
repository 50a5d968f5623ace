"""Multi-source weighted negative log-likelihood and density-ratio importance weights.

The loss is checked against a hand computation from the deployed model's own predictions
(ASE calculator, an independent code path); learned noise levels against the known noise
of synthetic labels; importance weights against which training frames resemble the target.
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from scalelink.bridge.ase import ScaleLinkCalculator
from scalelink.bridge.errors import ConfigError, DataError
from scalelink.training.config import load_config
from scalelink.training.data import atoms_to_data, make_loader
from scalelink.training.export import export_potential
from scalelink.training.importance import density_ratio_weights
from scalelink.training.losses import SourceNoise, attach_sources, fit_energy_reference, prepare_sources, source_nll
from scalelink.potentials.gnn import GNNPotential
from scalelink.training.reference import fcc_alloy_structures

SPECIES = ["Cu", "Ni"]
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> tuple[GNNPotential, str]:
    """A random float64 network and its deployed file."""
    torch.manual_seed(0)
    model = GNNPotential(2, 4.0, 1, 8, 4, avg_num_neighbors=12.0, energy_scale=1.0).double()
    path = str(tmp_path_factory.mktemp("nll") / "model.pt")
    export_potential(model, SPECIES, path)
    return model, path


def _predictions(frames, model_file: str) -> list[tuple[float, np.ndarray]]:
    out = []
    for atoms in frames:
        atoms = atoms.copy()
        atoms.calc = ScaleLinkCalculator(model_file)
        out.append((atoms.get_potential_energy(), atoms.get_forces()))
    return out


def _without_stress(frames):
    for atoms in frames:
        atoms.calc = SinglePointCalculator(atoms, energy=atoms.get_potential_energy(), forces=atoms.get_forces())
    return frames


def test_nll_equals_hand_computed_value(network) -> None:
    model, model_file = network
    frames = _without_stress(fcc_alloy_structures(3, repeats=((2, 2, 2), (1, 2, 2)), seed=5))
    tags, importance, weight = ["a", "b", "a"], np.array([0.5, 2.0, 1.25]), [1.0, 1.0, 3.0]
    for atoms, tag, w in zip(frames, tags, weight):
        atoms.info["source"] = tag
        atoms.info["weight"] = w
    graphs = [atoms_to_data(a, SPECIES, 4.0, torch.float64) for a in frames]
    attach_sources(graphs, frames, ["a", "b"], importance)
    sigma = {"a": (0.02, 0.3), "b": (0.005, 0.07)}
    offset = {"a": np.zeros(2), "b": np.array([0.03, -0.02])}  # eV per Cu, Ni atom; "a" has none
    noise = SourceNoise(["a", "b"], [sigma["a"][0], sigma["b"][0]], [sigma["a"][1], sigma["b"][1]], [True, False],
                        energy_offset=[False, True], num_species=2)
    with torch.no_grad():
        noise.energy_offset.copy_(torch.as_tensor(np.array([[0.5, 0.5], offset["b"]])))  # a's row must be ignored
    batch = next(iter(make_loader(graphs, 3, shuffle=False, seed=0)))
    got = float(source_nll(model, batch, noise, 100.0, create_graph=False).detach())

    total, norm = 0.0, 0.0
    for atoms, tag, w, imp, (energy, forces) in zip(frames, tags, weight, importance, _predictions(frames, model_file)):
        s_e, s_f = sigma[tag]
        n = len(atoms)
        counts = np.array([atoms.get_chemical_symbols().count(x) for x in SPECIES])
        r_e = (energy + counts @ offset[tag] - atoms.get_potential_energy()) / n
        r_f = forces - atoms.get_forces()
        frame = r_e**2 / (2 * s_e**2) + math.log(s_e) + np.sum(r_f**2 / (2 * s_f**2) + math.log(s_f))
        total += w * imp * frame
        norm += w * imp
    assert abs(total / norm) > 1.0, "the check needs residuals that matter"
    assert got == pytest.approx(total / norm, rel=1e-9)


def test_learned_noise_approaches_true_noise(network) -> None:
    """Labels = model + Gaussian noise of known σ per source: the learned σ must find it."""
    model, model_file = network
    rng = np.random.default_rng(3)
    frames = fcc_alloy_structures(12, repeats=((2, 2, 2),), seed=6)
    true_forces = {"clean": 0.02, "noisy": 0.25}
    for k, (atoms, (energy, forces)) in enumerate(zip(frames, _predictions(frames, model_file))):
        tag = "noisy" if k % 2 else "clean"
        atoms.info["source"] = tag
        noisy = forces + true_forces[tag] * rng.normal(size=forces.shape)
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=noisy)
    graphs = [atoms_to_data(a, SPECIES, 4.0, torch.float64) for a in frames]
    attach_sources(graphs, frames, ["clean", "noisy"])
    noise = SourceNoise(["clean", "noisy"], [0.01, 0.01], [0.1, 0.1], [True, True])
    batch = next(iter(make_loader(graphs, 12, shuffle=False, seed=0)))
    frozen = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.Adam([noise.log_sigma], lr=0.01)
    for _ in range(300):
        optimizer.zero_grad()
        source_nll(frozen, batch, noise, 0.0, create_graph=True).backward()
        optimizer.step()
    learned = noise.sigma().detach().numpy()[:, 1]
    # 6 frames x 96 components per source: the sample RMS is within a few % of σ
    assert learned[0] == pytest.approx(true_forces["clean"], rel=0.1)
    assert learned[1] == pytest.approx(true_forces["noisy"], rel=0.1)


def test_training_with_sources_learns_a_larger_noise_for_the_noisy_source(tmp_path) -> None:
    rng = np.random.default_rng(4)
    frames = fcc_alloy_structures(20, repeats=((2, 2, 2),), seed=7)
    for k, atoms in enumerate(frames):
        atoms.info["source"] = "noisy" if k % 2 else "clean"
        if k % 2:
            forces = atoms.get_forces() + 0.5 * rng.normal(size=(len(atoms), 3))
            atoms.calc = SinglePointCalculator(atoms, energy=atoms.get_potential_energy(), forces=forces,
                                               stress=atoms.get_stress())
    write(tmp_path / "data.extxyz", frames, format="extxyz")
    config = load_config(
        None, data=[str(tmp_path / "data.extxyz")], species=SPECIES, cutoff=4.0, epochs=10, batch_size=1,
        out=str(tmp_path / "run"), test_fraction=0.0, model={"num_layers": 1, "features": 16, "num_basis": 6},
        sources={"clean": {"learn_noise": True}, "noisy": {"learn_noise": True}},
    )
    from scalelink.training.trainer import train

    train(config, progress=False)
    noise = json.loads((tmp_path / "run" / "metrics.json").read_text())["source_noise"]
    clean, noisy = noise["clean"]["noise_forces_meV_per_A"], noise["noisy"]["noise_forces_meV_per_A"]
    # both start at 100 meV/Å; the noisy source's residuals hold 500 meV/Å of label noise on
    # top of the model error, and its noise must climb well towards that
    assert noisy > 200.0 and noisy > 1.5 * clean, (clean, noisy)


def test_energy_reference_fit_is_the_joint_minimiser_of_the_energy_nll() -> None:
    """Closed-form constants, offsets and noise levels against a direct numerical minimisation."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(11)
    n = 300
    x = rng.dirichlet([1.0, 1.0], size=n)  # species fractions
    src = (np.arange(n) >= 80).astype(np.int64)  # 80 frames of source 0, 220 of source 1
    weight = rng.uniform(0.5, 2.0, n)
    c_true, b_true, s_true = np.array([0.1, -0.2]), np.array([0.05, 0.02]), np.array([0.002, 0.02])
    residual = x @ c_true + (src == 1) * (x @ b_true) + s_true[src] * rng.normal(size=n)
    noise = SourceNoise(["ref", "other"], [0.01, 0.01], [0.1, 0.1], [True, True], energy_offset=[False, True],
                        num_species=2)
    c = fit_energy_reference(x, residual, weight, src, noise, update_noise=True)
    b = noise.offsets().detach().numpy()
    sigma = noise.sigma().detach().numpy()[:, 0]

    def nll(p: np.ndarray) -> float:
        mean = x @ p[:2] + (src == 1) * (x @ p[2:4])
        s = np.exp(p[4:6])[src]
        return float(np.sum(weight * ((residual - mean) ** 2 / (2 * s**2) + np.log(s))))

    start = np.array([0.0, 0.0, 0.0, 0.0, np.log(0.01), np.log(0.01)])
    best = minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 40000,
                                                                "maxfev": 40000, "adaptive": True})
    np.testing.assert_allclose(c, best.x[:2], atol=2e-5)
    np.testing.assert_allclose(b[1], best.x[2:4], atol=5e-5)
    np.testing.assert_allclose(sigma, np.exp(best.x[4:6]), rtol=1e-3)
    assert np.all(b[0] == 0.0)
    # and it finds what the data were made of, within sampling error
    np.testing.assert_allclose(c, c_true, atol=1e-3)
    np.testing.assert_allclose(sigma, s_true, rtol=0.15)

    # without noise: plain weighted least squares
    plain = fit_energy_reference(x, residual, weight)
    design = x * np.sqrt(weight)[:, None]
    np.testing.assert_allclose(plain, np.linalg.solve(design.T @ design, design.T @ (residual * np.sqrt(weight))),
                               rtol=1e-10)
    with pytest.raises(ConfigError, match="nothing fixes the energy zero"):
        SourceNoise(["a", "b"], [0.01, 0.01], [0.1, 0.1], [True, True], energy_offset=[True, True], num_species=2)


def _mean_energy_error(run_dir, frames) -> float:
    """Mean energy-per-atom error (eV/atom) of a run's deployed network on ``frames``."""
    from scalelink.training.trainer import load_checkpoint

    model, _ = load_checkpoint(run_dir, "best")
    path = str(run_dir / "model.pt")
    export_potential(model, SPECIES, path)
    return float(np.mean([(e - a.get_potential_energy()) / len(a) for a, (e, _) in zip(frames, _predictions(frames, path))]))


def test_energy_zero_follows_the_reference_source_not_the_biased_majority(tmp_path) -> None:
    """Many frames of a source whose energies sit on another per-species reference, a few
    reference frames: the deployed energy zero must be the reference's (the offsets absorb
    the bias), and the offsets learned must be the bias put in."""
    from scalelink.training.trainer import train

    rng = np.random.default_rng(5)
    bias = np.array([0.12, 0.04])  # eV per Cu, Ni atom
    frames = fcc_alloy_structures(30, repeats=((2, 2, 2),), rattle=(0.005, 0.02), max_strain=0.01, seed=12)
    for k, atoms in enumerate(frames):
        atoms.info["source"] = "ref" if k < 10 else "other"
        if k >= 10:
            counts = np.array([atoms.get_chemical_symbols().count(x) for x in SPECIES])
            energy = atoms.get_potential_energy() + counts @ bias + 0.002 * len(atoms) * rng.normal()
            atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=atoms.get_forces(), stress=atoms.get_stress())
    write(tmp_path / "data.extxyz", frames, format="extxyz")
    config = load_config(
        None, data=[str(tmp_path / "data.extxyz")], species=SPECIES, cutoff=4.0, epochs=10, batch_size=2,
        out=str(tmp_path / "run"), test_fraction=0.0, validation_fraction=0.0,
        model={"num_layers": 1, "features": 8, "num_basis": 4},
        sources={"ref": {"learn_noise": True}, "other": {"learn_noise": True, "energy_offset": True}},
    )
    train(config, progress=False)
    noise = json.loads((tmp_path / "run" / "metrics.json").read_text())["source_noise"]
    assert "energy_offset_meV_per_atom" not in noise["ref"]
    # ten reference frames and a briefly trained network pin the per-species split only
    # roughly; the offset per atom at the other source's mean composition is better determined
    fractions = np.mean([[a.get_chemical_symbols().count(x) / len(a) for x in SPECIES] for a in frames[10:]], axis=0)
    assert fractions @ noise["other"]["energy_offset_meV_per_atom"] == pytest.approx(1e3 * fractions @ bias, abs=20.0)
    test = fcc_alloy_structures(6, repeats=((2, 2, 2),), rattle=(0.005, 0.02), max_strain=0.01, seed=13)
    # the bias is 75 meV/atom there; an energy zero set by all frames alike would sit ~50 meV/atom high
    error = _mean_energy_error(tmp_path / "run", test)
    assert abs(error) < 0.01, error


def test_energy_zero_follows_the_frame_weights(tmp_path) -> None:
    """Plain MSE training: frames of near-zero weight with shifted energies must not move the
    deployed energy zero (the final re-fit of the reference energies is weighted as the loss)."""
    from scalelink.training.trainer import train

    frames = fcc_alloy_structures(16, repeats=((2, 2, 2),), rattle=(0.02, 0.08), max_strain=0.01, seed=14)
    for k, atoms in enumerate(frames):
        atoms.info["weight"] = 1.0 if k < 8 else 1e-4
        if k >= 8:
            atoms.calc = SinglePointCalculator(atoms, energy=atoms.get_potential_energy() + 0.1 * len(atoms),
                                               forces=atoms.get_forces(), stress=atoms.get_stress())
    write(tmp_path / "data.extxyz", frames, format="extxyz")
    config = load_config(
        None, data=[str(tmp_path / "data.extxyz")], species=SPECIES, cutoff=4.0, epochs=4, batch_size=2,
        out=str(tmp_path / "run"), test_fraction=0.0, validation_fraction=0.0,
        model={"num_layers": 1, "features": 8, "num_basis": 4},
    )
    train(config, progress=False)
    test = fcc_alloy_structures(6, repeats=((2, 2, 2),), rattle=(0.02, 0.08), max_strain=0.01, seed=15)
    # unweighted, the zero would sit ~50 meV/atom high (half the frames are 100 meV/atom up)
    error = _mean_energy_error(tmp_path / "run", test)
    assert abs(error) < 0.01, error


def test_importance_weights_favour_frames_like_the_target() -> None:
    cold = fcc_alloy_structures(20, repeats=((2, 2, 2),), rattle=(0.01, 0.03), max_strain=0.01, seed=8)
    hot = fcc_alloy_structures(20, repeats=((2, 2, 2),), rattle=(0.12, 0.16), max_strain=0.01, seed=9)
    target = fcc_alloy_structures(30, repeats=((2, 2, 2),), rattle=(0.12, 0.16), max_strain=0.01, seed=10)
    weights = density_ratio_weights(cold + hot, target)
    assert weights.shape == (40,) and np.all(weights > 0) and weights.mean() == pytest.approx(1.0)
    assert weights[20:].min() > weights[:20].max()
    assert weights[20:].mean() > 5.0 * weights[:20].mean()


def test_sources_config_and_errors(tmp_path) -> None:
    frames = fcc_alloy_structures(2, repeats=((1, 1, 1),), seed=1)
    graphs = [atoms_to_data(a, SPECIES, 4.0, torch.float64) for a in frames]
    frames[0].info["source"] = "dft"
    with pytest.raises(DataError, match=r"frame 1 has source None.*\['dft'\]"):
        attach_sources(graphs, frames, ["dft"])
    config = load_config(None, sources={"dft": {"noise_forces": 0.05, "learn_noise": True}}, importance_weights="info")
    assert config.sources["dft"].noise_forces == 0.05 and config.sources["dft"].learn_noise
    assert config.to_dict()["sources"]["dft"]["noise_energy"] == 0.005
    frames[1].info["source"] = "dft"
    frames[0].info["importance"] = 2.5
    noise = prepare_sources(config, frames, graphs)
    assert noise is not None and noise.names == ["dft"]
    assert [float(g.weight) for g in graphs] == [2.5, 1.0] and [int(g.source) for g in graphs] == [0, 0]
    with pytest.raises(ConfigError, match=r"sources\.dft: unknown keys \['sigma'\]"):
        load_config(None, sources={"dft": {"sigma": 0.1}})
    with pytest.raises(ConfigError, match="noise levels must be positive"):
        load_config(None, sources={"dft": {"noise_forces": 0.0}})


@pytest.mark.slow
def test_multi_source_example_quick(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "multi_source.py"), "--quick", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=400, env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    for name in ("plain", "weighted_nll"):
        assert np.isfinite(summary[name]["force_rmse_meV_per_A"]) and summary[name]["force_rmse_meV_per_A"] > 0
    noise = summary["weighted_nll"]["learned_noise"]
    assert set(noise) == {"hf", "lf"}
    # lf's energies sit on their own reference: fitted offsets, and a larger energy noise than hf's
    assert len(noise["lf"]["energy_offset_meV_per_atom"]) == 2 and "energy_offset_meV_per_atom" not in noise["hf"]
    assert noise["lf"]["noise_energy_meV_per_atom"] > noise["hf"]["noise_energy_meV_per_atom"]
