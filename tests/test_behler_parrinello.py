"""The Behler–Parrinello potential: descriptors, derivatives, LAMMPS and training.

Symmetry functions against a direct sum over periodic images; forces and stress against
ASE's finite differences; smoothness at the cutoff; pair_style scalelink against the ASE
calculator (orthogonal, triclinic and small cells, 1 and 2 ranks, newton on and off) and
against LAMMPS' ``fix numdiff``; a short training run through the command line.
"""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest
import torch
import yaml
from ase import Atoms
from ase.build import bulk

from lammps_utils import ase_reference, run_driver, write_data
from test_lammps_vs_ase import _close, _structure

SPECIES = ["Cu", "Ni"]
CUTOFF = 4.0
TOLERANCE = {"float64": 1e-6, "float32": 1e-4}


def _potential(cutoff_function: str = "polynomial", seed: int = 0):
    from scalelink.potentials.behler_parrinello import BehlerParrinelloPotential, symmetry_function_set

    torch.manual_seed(seed)
    shifts, radial_etas, angular_etas = symmetry_function_set(CUTOFF, 5, 2)
    return BehlerParrinelloPotential(
        len(SPECIES), CUTOFF, shifts, radial_etas, angular_etas, zetas=(1, 2), hidden=(12, 12),
        energy_shift=[-3.5, -4.4], energy_scale=0.5, cutoff_function=cutoff_function,
    ).double()


@pytest.fixture(scope="module")
def bp_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An untrained BP model, features standardised on EMT structures, as float64/float32 files."""
    from scalelink.potentials.behler_parrinello import fit_feature_scaling
    from scalelink.training.data import atoms_to_data
    from scalelink.training.export import export_potential
    from scalelink.training.reference import fcc_alloy_structures

    potential = _potential()
    frames = fcc_alloy_structures(4, seed=5)
    fit_feature_scaling(potential, [atoms_to_data(a, SPECIES, CUTOFF, torch.float64) for a in frames])
    folder = tmp_path_factory.mktemp("bp")
    out = {}
    for dtype in ("float64", "float32"):
        out[dtype] = os.path.join(str(folder), f"bp_{dtype}.pt")
        metadata = export_potential(potential, SPECIES, out[dtype], dtype=dtype)
        assert metadata.num_layers == 1
    return out


def _direct_descriptors(potential, atoms: Atoms) -> np.ndarray:
    """G2 and G5 by explicit sums over neighbours found by scanning periodic images."""
    cell, pos = atoms.cell[:], atoms.positions
    kinds = np.array([SPECIES.index(s) for s in atoms.get_chemical_symbols()])
    shifts = potential.radial_shifts.numpy()
    radial_etas = potential.radial_etas.numpy()
    etas = potential.angular_etas.numpy()
    zetas = potential.angular_zetas.numpy()
    lambdas = potential.angular_lambdas.numpy()
    pair = potential.pair_index.numpy()
    fc = lambda r: float(potential.cutoff_function(torch.tensor(r, dtype=torch.float64)))  # noqa: E731
    images = np.array(list(itertools.product(range(-3, 4), repeat=3))) @ cell
    s, n_rad, n_ang = len(SPECIES), potential.num_radial, potential.num_angular
    out = np.zeros((len(atoms), potential.num_descriptors))
    for i in range(len(atoms)):
        neighbours = []
        for j in range(len(atoms)):
            for v in pos[j] + images - pos[i]:
                r = np.linalg.norm(v)
                if 1e-8 < r < CUTOFF:
                    neighbours.append((j, v, r))
                    block = kinds[j] * n_rad
                    out[i, block : block + n_rad] += np.exp(-radial_etas * (r - shifts) ** 2) * fc(r)
        for (j, v1, r1), (k, v2, r2) in itertools.combinations(neighbours, 2):
            cos = v1 @ v2 / (r1 * r2)
            angle = 2.0 ** (1 - zetas) * (1 + lambdas * cos) ** zetas
            radial = np.exp(-etas * (r1**2 + r2**2)) * fc(r1) * fc(r2)
            start = s * n_rad + pair[kinds[j], kinds[k]] * n_ang
            out[i, start : start + n_ang] += np.outer(angle, radial).ravel()
    return out


def test_descriptors_match_direct_sum() -> None:
    """Triplets from the edge list, small-cell periodic images and species blocks are right."""
    from scalelink.bridge.ase import neighbor_graph, species_indices

    potential = _potential()
    rng = np.random.default_rng(3)
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)  # 3.6 Å cell: an atom sees its own images
    atoms.symbols = ["Cu", "Ni", "Ni", "Cu"]
    atoms.set_cell(atoms.cell[:] + rng.normal(scale=0.1, size=(3, 3)), scale_atoms=True)
    atoms.positions += rng.normal(scale=0.1, size=atoms.positions.shape)
    edge_index, edge_vectors = neighbor_graph(atoms, CUTOFF)
    order = rng.permutation(edge_index.shape[1])  # the model must not rely on sorted edges
    got = potential.descriptors(
        torch.from_numpy(edge_vectors[order]), torch.from_numpy(edge_index[:, order]),
        torch.from_numpy(species_indices(list(atoms.get_chemical_symbols()), SPECIES)),
    ).numpy()
    want = _direct_descriptors(potential, atoms)
    assert np.abs(want[:, potential.num_radial * len(SPECIES):]).max() > 1e-2
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_forces_and_stress_match_finite_differences(bp_files) -> None:
    from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

    from scalelink.bridge.ase import ScaleLinkCalculator

    atoms = _structure("small", seed=4)
    atoms.calc = ScaleLinkCalculator(bp_files["float64"])
    forces, stress = atoms.get_forces(), atoms.get_stress()
    assert np.abs(forces).max() > 1e-2
    numerical = calculate_numerical_forces(atoms, eps=1e-5)
    np.testing.assert_allclose(forces, numerical, rtol=0, atol=1e-7 * np.abs(forces).max() + 1e-9)
    numerical_stress = calculate_numerical_stress(atoms, eps=1e-6)
    np.testing.assert_allclose(stress, numerical_stress, rtol=0, atol=1e-6 * np.abs(stress).max() + 1e-10)


@pytest.mark.parametrize("cutoff_function,order", [("polynomial", 3), ("cosine", 2)])
def test_energy_and_forces_vanish_smoothly_at_the_cutoff(cutoff_function, order) -> None:
    """A dimer just inside the cutoff has the energy of two free atoms up to O(δ^order)."""
    potential = _potential(cutoff_function)
    species = torch.tensor([0, 1])

    def energy_and_force(distance: float) -> tuple[float, float]:
        vectors = torch.tensor([[distance, 0.0, 0.0], [-distance, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
        edges = torch.tensor([[0, 1], [1, 0]])
        if distance >= CUTOFF:  # the neighbour list drops the pair
            vectors, edges = vectors[:0], edges[:, :0]
        energy = potential(vectors, edges, species).sum()
        grad = torch.autograd.grad(energy, vectors, allow_unused=True)[0]
        return float(energy.detach()), 0.0 if grad is None or grad.numel() == 0 else float(grad.abs().max())

    free, _ = energy_and_force(CUTOFF + 1e-3)
    near, _ = energy_and_force(CUTOFF - 1.0)
    assert abs(near - free) > 1e-4, "the pair must interact inside the cutoff"
    for delta in (1e-2, 1e-3):
        energy, force = energy_and_force(CUTOFF - delta)
        assert abs(energy - free) < 50.0 * delta**order
        assert force < 50.0 * order * delta ** (order - 1)


CASES = [
    ("float64", "orthogonal", 1, "on"), ("float64", "triclinic", 1, "on"), ("float64", "small", 1, "on"),
    ("float64", "orthogonal", 2, "on"), ("float64", "triclinic", 2, "off"), ("float64", "small", 2, "on"),
    ("float32", "triclinic", 2, "on"),
]


@pytest.mark.lammps
@pytest.mark.mpi
@pytest.mark.parametrize("dtype,kind,ranks,newton", CASES)
def test_lammps_matches_ase(bp_files, tmp_path, dtype, kind, ranks, newton) -> None:
    model = bp_files[dtype]
    atoms = write_data(_structure(kind), tmp_path / "in.data", SPECIES)
    proc = run_driver(tmp_path / "in.data", model, SPECIES, tmp_path / "out.npz", ranks=ranks, newton=newton)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    got = np.load(tmp_path / "out.npz")
    want = ase_reference(atoms, model)
    tol = TOLERANCE[dtype]
    assert np.abs(want["forces"]).max() > 1e-2, "reference forces must be non-trivial"
    assert float(got["energy"]) == pytest.approx(want["energy"], rel=tol)
    _close(got["pe_atom"], want["pe_atom"], tol)
    _close(got["forces"], want["forces"], tol)
    _close(got["virial"], want["virial"], tol)


def _sheared_slab(seed: int) -> Atoms:
    """16 atoms in a triclinic cell thinner than the cutoff along z."""
    rng = np.random.default_rng(seed)
    atoms = bulk("Cu", "fcc", a=3.58, cubic=True).repeat((2, 2, 1))
    atoms.symbols = list(rng.choice(SPECIES, size=len(atoms)))
    cell = atoms.cell[:].copy()
    cell[1, 0] += 0.8
    cell[2, 0] -= 0.5
    cell[2, 1] += 0.6
    atoms.set_cell(cell, scale_atoms=True)
    atoms.positions += rng.normal(scale=0.07, size=atoms.positions.shape)
    atoms.wrap()
    return atoms


@pytest.mark.lammps
@pytest.mark.parametrize("kind", ["triclinic", "small"])
def test_lammps_forces_and_virial_match_fix_numdiff(bp_files, tmp_path, kind) -> None:
    atoms = _sheared_slab(seed=2) if kind == "triclinic" else _structure("small", seed=2)
    write_data(atoms, tmp_path / "in.data", SPECIES)
    proc = run_driver(
        tmp_path / "in.data", bp_files["float64"], SPECIES, tmp_path / "out.npz", extra=["--numdiff", "1e-5"]
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    got = np.load(tmp_path / "out.npz")
    forces, virial = got["forces"], got["virial"]
    assert np.abs(forces).max() > 1e-2
    np.testing.assert_allclose(got["numdiff_forces"], forces, rtol=0, atol=1e-5 * np.abs(forces).max() + 1e-8)
    np.testing.assert_allclose(got["numdiff_virial"], virial, rtol=0, atol=1e-5 * np.abs(virial).max() + 1e-8)


def test_training_through_the_cli_lowers_the_force_error(tmp_path) -> None:
    """Train and deploy with `scalelink`; the held-out force error falls well below the
    untrained model's, and the deployed file reproduces the trained network."""
    from scalelink.bridge.ase import ScaleLinkCalculator
    from scalelink.bridge.model_file import read_metadata
    from scalelink.potentials.behler_parrinello import fit_feature_scaling
    from scalelink.cli.main import main
    from scalelink.training.data import atoms_to_data, make_loader
    from scalelink.training.metrics import error_metrics
    from scalelink.training.reference import write_fcc_alloy_dataset
    from scalelink.training.trainer import build_model, collect, load_checkpoint

    data = str(tmp_path / "data.extxyz")
    frames = write_fcc_alloy_dataset(data, 30, repeats=((2, 2, 2),), seed=21)
    config = {
        "data": [data], "species": SPECIES, "cutoff": CUTOFF, "epochs": 12,
        "test_fraction": 0.2, "batch_size": 4, "learning_rate": 0.02, "seed": 1,
        "behler_parrinello": {"num_radial": 5, "num_angular": 2, "zetas": [1, 2], "hidden": [16, 16]},
    }
    (tmp_path / "bp.yaml").write_text(yaml.safe_dump(config))
    run = str(tmp_path / "run")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a busy machine: a second intra-op thread costs more than it gains
    try:
        assert main(["train", str(tmp_path / "bp.yaml"), "--architecture", "behler_parrinello", "--out", run, "--quiet"]) == 0
    finally:
        torch.set_num_threads(threads)
    model_path = str(tmp_path / "bp.pt")
    assert main(["deploy", run, "-o", model_path]) == 0
    with open(tmp_path / "bp.card.json", encoding="utf-8") as handle:
        assert json.load(handle)["architecture"] == "behler_parrinello"
    assert read_metadata(model_path).num_layers == 1

    with open(os.path.join(run, "split.json"), encoding="utf-8") as handle:
        split = json.load(handle)
    graphs = [atoms_to_data(a, SPECIES, CUTOFF, torch.float32) for a in frames]
    test_loader = make_loader([graphs[i] for i in split["test"]], 8, shuffle=False, seed=0)
    state = torch.load(os.path.join(run, "checkpoint_best.pt"), map_location="cpu", weights_only=False)
    untrained = build_model(state["model_kwargs"], state["architecture"]).float()
    fit_feature_scaling(untrained, [graphs[i] for i in split["train"]])
    before = error_metrics(collect(untrained, test_loader, SPECIES)).force_rmse
    with open(os.path.join(run, "metrics.json"), encoding="utf-8") as handle:
        after = json.load(handle)["test"]["force_rmse_meV_per_A"] / 1e3
    assert after < 0.5 * before, f"held-out force RMSE {after:.3f} eV/Å, untrained {before:.3f} eV/Å"

    trained, _ = load_checkpoint(run)
    graph = atoms_to_data(frames[split["test"][0]], SPECIES, CUTOFF, torch.float64)
    atoms = frames[split["test"][0]].copy()
    atoms.calc = ScaleLinkCalculator(model_path)  # deployed in float64
    energy = trained.double()(graph.edge_vectors, graph.edge_index, graph.species).sum()
    assert atoms.get_potential_energy() == pytest.approx(float(energy.detach()), rel=1e-10, abs=1e-10)
