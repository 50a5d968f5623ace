"""The ACE potential: its angular basis, invariance, derivatives, LAMMPS and energy conservation.

Spherical harmonics against SciPy's, Gaunt coefficients against SymPy's ``real_gaunt``, the
neighbour densities against a direct sum over periodic images; the energy under rotations,
reflections and relabelling of atoms; forces and stress against ASE's finite differences;
smoothness at the cutoff; pair_style scalelink against the ASE calculator (orthogonal,
triclinic and small cells, 1, 2 and 4 ranks, newton on and off, float64 and float32, ranks
without atoms), per-atom virials, LAMMPS' ``fix numdiff``; NVE energy drift of a model trained
on real DFT data of silicon; on a GPU, CUDA against CPU.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import bulk

from lammps_utils import ase_reference, run_driver, write_data
from test_behler_parrinello import _sheared_slab
from test_lammps_parallel import _slab
from test_lammps_vs_ase import _close, _structure

SPECIES = ["Cu", "Ni"]
CUTOFF = 4.0
TOLERANCE = {"float64": 1e-6, "float32": 1e-4}
MLEARN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mlearn"


def _potential(seed: int = 0, **kwargs):
    from scalelink.potentials.ace import ACEPotential

    torch.manual_seed(seed)
    options = {"channels": 6, "lmax": 3, "num_basis": 6, "radial_hidden": (16,), "hidden": (16,), "linear_readout": True}
    options.update(kwargs)
    potential = ACEPotential(
        len(SPECIES), CUTOFF, avg_num_neighbors=20.0, energy_shift=[-3.5, -4.4], energy_scale=0.5, **options
    ).double()
    if potential.linear is not None:
        # the linear part starts at zero in training: random weights here, so that every check
        # of the model (derivatives, invariance, LAMMPS against ASE) includes it
        with torch.no_grad():
            potential.linear.weight.normal_(0.0, 0.1)
    return potential


@pytest.fixture(scope="module")
def ace_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An untrained ACE model, invariants standardised on EMT structures, as float64/float32 files."""
    from scalelink.potentials.ace import fit_feature_scaling
    from scalelink.training.data import atoms_to_data
    from scalelink.training.export import export_potential
    from scalelink.training.reference import fcc_alloy_structures

    potential = _potential()
    frames = fcc_alloy_structures(4, seed=5)
    fit_feature_scaling(potential, [atoms_to_data(a, SPECIES, CUTOFF, torch.float64) for a in frames])
    folder = tmp_path_factory.mktemp("ace")
    out = {}
    for dtype in ("float64", "float32"):
        out[dtype] = os.path.join(str(folder), f"ace_{dtype}.pt")
        metadata = export_potential(potential, SPECIES, out[dtype], dtype=dtype)
        assert metadata.num_layers == 1
    return out


def _real_harmonics_scipy(unit: np.ndarray, lmax: int) -> np.ndarray:
    """Real spherical harmonics from SciPy's complex ones, scaled to sum_m Y^2 = 2l + 1."""
    from scipy.special import sph_harm_y

    theta, phi = np.arccos(np.clip(unit[:, 2], -1, 1)), np.arctan2(unit[:, 1], unit[:, 0])
    columns = []
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            y = sph_harm_y(l, abs(m), theta, phi)
            value = y.real if m == 0 else np.sqrt(2.0) * (-1) ** m * (y.imag if m < 0 else y.real)
            columns.append(np.sqrt(4.0 * np.pi) * value)
    return np.stack(columns, axis=1)


def test_spherical_harmonics_match_scipy() -> None:
    from scalelink.potentials.ace import spherical_harmonics

    rng = np.random.default_rng(0)
    unit = rng.normal(size=(50, 3))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    unit[:2] = [[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]]  # the poles, where the azimuth is undefined
    got = spherical_harmonics(torch.from_numpy(unit), 6).numpy()
    np.testing.assert_allclose(got, _real_harmonics_scipy(unit, 6), rtol=0, atol=1e-12)
    scripted = torch.jit.script(spherical_harmonics)
    np.testing.assert_allclose(scripted(torch.from_numpy(unit), 5).numpy(), got[:, :36], rtol=0, atol=1e-14)


def test_gaunt_coefficients_match_sympy() -> None:
    from sympy.physics.wigner import real_gaunt

    from scalelink.potentials.ace import coupling_paths, gaunt_coefficients

    paths = coupling_paths(3)
    assert (1, 1, 2) in paths and (2, 3, 3) in paths and (1, 2, 2) not in paths  # parity-odd left out
    higher = [path for path in coupling_paths(4) if path not in paths]
    assert (4, 4, 4) in higher and (1, 3, 4) in higher and (0, 4, 4) in higher
    for l1, l2, l3 in paths + higher:
        got = gaunt_coefficients(l1, l2, l3).numpy()
        want = np.zeros_like(got)
        for (a, m1), (b, m2), (c, m3) in itertools.product(
            enumerate(range(-l1, l1 + 1)), enumerate(range(-l2, l2 + 1)), enumerate(range(-l3, l3 + 1))
        ):
            # SymPy integrates orthonormal harmonics; ours carry sqrt(4 pi) each and are averaged
            want[a, b, c] = float(real_gaunt(l1, l2, l3, m1, m2, m3)) * np.sqrt(4.0 * np.pi)
        assert np.abs(want).max() > 0.1
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_densities_match_direct_sum() -> None:
    """Per-centre padding, small-cell images, unsorted edges and species pairs are right."""
    from scalelink.bridge.ase import neighbor_graph, species_indices

    potential = _potential(lmax=2)
    with torch.no_grad():
        potential.pair_weights.copy_(torch.rand_like(potential.pair_weights) + 0.5)
    rng = np.random.default_rng(3)
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)  # 3.6 Å cell: an atom sees its own images
    atoms.symbols = ["Cu", "Ni", "Ni", "Cu"]
    atoms.set_cell(atoms.cell[:] + rng.normal(scale=0.1, size=(3, 3)), scale_atoms=True)
    atoms.positions += rng.normal(scale=0.1, size=atoms.positions.shape)
    kinds = species_indices(list(atoms.get_chemical_symbols()), SPECIES)
    edge_index, edge_vectors = neighbor_graph(atoms, CUTOFF)
    order = rng.permutation(edge_index.shape[1])  # the model must not rely on sorted edges
    got = potential.densities(
        torch.from_numpy(edge_vectors[order]), torch.from_numpy(edge_index[:, order]), torch.from_numpy(kinds), len(atoms)
    )

    def radial(r: float, pair: int) -> np.ndarray:
        x = r / CUTOFF
        envelope = 1.0 - 28.0 * x**6 + 48.0 * x**7 - 21.0 * x**8
        basis = np.sin(potential.frequencies.numpy() * r) / r
        with torch.no_grad():
            values = potential.radial(torch.from_numpy(basis)[None]).numpy()[0] * envelope
        return (values * potential.pair_weights.detach().numpy()[pair]).reshape(potential.lmax + 1, -1)

    cell, pos = atoms.cell[:], atoms.positions
    images = np.array(list(itertools.product(range(-3, 4), repeat=3))) @ cell
    want = [np.zeros((len(atoms), 2 * l + 1, potential.channels)) for l in range(potential.lmax + 1)]
    for i, j in itertools.product(range(len(atoms)), repeat=2):
        for v in pos[j] + images - pos[i]:
            r = np.linalg.norm(v)
            if 1e-8 < r < CUTOFF:
                y = _real_harmonics_scipy((v / r)[None], potential.lmax)[0]
                rad = radial(r, kinds[i] * len(SPECIES) + kinds[j])
                for l in range(potential.lmax + 1):
                    want[l][i] += np.outer(y[l * l : (l + 1) ** 2], rad[l]) / 20.0
    for l in range(potential.lmax + 1):
        assert np.abs(want[l]).max() > 1e-2
        # densities come channels first, [C, 2l+1, N]
        np.testing.assert_allclose(got[l].detach().permute(2, 1, 0).numpy(), want[l], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("lmax", [3, 5])
def test_energy_is_invariant_under_rotations_reflections_and_relabelling(lmax) -> None:
    from scipy.spatial.transform import Rotation

    from scalelink.bridge.ase import neighbor_graph, species_indices

    potential = _potential(lmax=lmax)
    atoms = _structure("triclinic", seed=9)
    kinds = torch.from_numpy(species_indices(list(atoms.get_chemical_symbols()), SPECIES))
    edge_index, edge_vectors = (torch.from_numpy(a) for a in neighbor_graph(atoms, CUTOFF))

    def energy(vectors: torch.Tensor, index: torch.Tensor = edge_index, species: torch.Tensor = kinds) -> float:
        return float(potential(vectors, index, species).sum().detach())

    reference = energy(edge_vectors)
    rotation = torch.from_numpy(Rotation.random(random_state=4).as_matrix())
    assert energy(edge_vectors @ rotation.T) == pytest.approx(reference, rel=1e-12)
    assert energy(-edge_vectors) == pytest.approx(reference, rel=1e-12)
    mirror = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    assert energy(edge_vectors * mirror) == pytest.approx(reference, rel=1e-12)
    permutation = torch.from_numpy(np.random.default_rng(1).permutation(len(atoms)))
    inverse = torch.argsort(permutation)
    assert energy(edge_vectors, inverse[edge_index], kinds[permutation]) == pytest.approx(reference, rel=1e-12)
    # a distortion changes the energy: the checks above are not of a constant
    assert abs(energy(edge_vectors * 1.02) - reference) > 1e-4


def test_forces_and_stress_match_finite_differences(ace_files) -> None:
    from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

    from scalelink.bridge.ase import ScaleLinkCalculator

    atoms = _structure("small", seed=4)
    atoms.calc = ScaleLinkCalculator(ace_files["float64"])
    forces, stress = atoms.get_forces(), atoms.get_stress()
    assert np.abs(forces).max() > 1e-2
    numerical = calculate_numerical_forces(atoms, eps=1e-5)
    np.testing.assert_allclose(forces, numerical, rtol=0, atol=1e-7 * np.abs(forces).max() + 1e-9)
    numerical_stress = calculate_numerical_stress(atoms, eps=1e-6)
    np.testing.assert_allclose(stress, numerical_stress, rtol=0, atol=1e-6 * np.abs(stress).max() + 1e-10)


def test_energy_and_forces_vanish_smoothly_at_the_cutoff() -> None:
    """A dimer just inside the cutoff has the energy of two free atoms up to O(δ³)."""
    potential = _potential()
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
    near, _ = energy_and_force(CUTOFF - 1.5)
    scale = abs(near - free)
    assert scale > 1e-5, "the pair must interact inside the cutoff"
    for delta in (1e-2, 1e-3):
        energy, force = energy_and_force(CUTOFF - delta)
        assert abs(energy - free) < 50.0 * scale * delta**3
        assert force < 150.0 * scale * delta**2


CASES = [
    ("float64", "orthogonal", 1, "on"), ("float64", "triclinic", 1, "on"), ("float64", "small", 1, "on"),
    ("float64", "orthogonal", 2, "on"), ("float64", "triclinic", 2, "off"), ("float64", "small", 2, "on"),
    ("float64", "triclinic", 4, "on"), ("float64", "orthogonal", 4, "off"),
    ("float32", "triclinic", 2, "on"), ("float32", "small", 1, "on"),
]


@pytest.mark.lammps
@pytest.mark.mpi
@pytest.mark.parametrize("dtype,kind,ranks,newton", CASES)
def test_lammps_matches_ase(ace_files, tmp_path, dtype, kind, ranks, newton) -> None:
    model = ace_files[dtype]
    atoms = write_data(_structure(kind), tmp_path / "in.data", SPECIES)
    proc = run_driver(
        tmp_path / "in.data", model, SPECIES, tmp_path / "out.npz", ranks=ranks, newton=newton,
        extra=["--per-atom-virial"],
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    got = np.load(tmp_path / "out.npz")
    want = ase_reference(atoms, model)
    tol = TOLERANCE[dtype]
    assert np.abs(want["forces"]).max() > 1e-2, "reference forces must be non-trivial"
    assert float(got["energy"]) == pytest.approx(want["energy"], rel=tol)
    _close(got["pe_atom"], want["pe_atom"], tol)
    _close(got["forces"], want["forces"], tol)
    _close(got["virial"], want["virial"], tol)
    _close(got["atomic_virial"], want["atomic_virial"], tol)
    # per-atom energies and virials sum to the totals; per-atom virials are symmetrised, so
    # the shear sums hold to the precision in which the model's virial is symmetric
    assert got["pe_atom"].sum() == pytest.approx(float(got["energy"]), rel=1e-10)
    symmetric = {"float64": 1e-10, "float32": 1e-6}[dtype]
    np.testing.assert_allclose(
        got["atomic_virial_sum"], got["virial"], rtol=0, atol=symmetric * np.abs(got["virial"]).max()
    )


@pytest.mark.lammps
@pytest.mark.mpi
@pytest.mark.parametrize("newton", ["on", "off"])
def test_ranks_without_atoms(ace_files, tmp_path, newton) -> None:
    """processors 4 1 1 on a slab: one rank owns every atom, others only ghosts or nothing."""
    model = ace_files["float64"]
    atoms = write_data(_slab(), tmp_path / "in.data", SPECIES)
    proc = run_driver(
        tmp_path / "in.data", model, SPECIES, tmp_path / "out.npz", ranks=4, newton=newton,
        extra=["--pre", "processors 4 1 1"],
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    got = np.load(tmp_path / "out.npz")
    want = ase_reference(atoms, model)
    assert float(got["energy"]) == pytest.approx(want["energy"], rel=1e-8)
    _close(got["forces"], want["forces"], 1e-8)
    _close(got["virial"], want["virial"], 1e-8)


@pytest.mark.lammps
@pytest.mark.parametrize("kind", ["triclinic", "small"])
def test_lammps_forces_and_virial_match_fix_numdiff(ace_files, tmp_path, kind) -> None:
    atoms = _sheared_slab(seed=2) if kind == "triclinic" else _structure("small", seed=2)
    write_data(atoms, tmp_path / "in.data", SPECIES)
    proc = run_driver(
        tmp_path / "in.data", ace_files["float64"], SPECIES, tmp_path / "out.npz", extra=["--numdiff", "1e-5"]
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    got = np.load(tmp_path / "out.npz")
    forces, virial = got["forces"], got["virial"]
    assert np.abs(forces).max() > 1e-2
    np.testing.assert_allclose(got["numdiff_forces"], forces, rtol=0, atol=1e-5 * np.abs(forces).max() + 1e-8)
    np.testing.assert_allclose(got["numdiff_virial"], virial, rtol=0, atol=1e-5 * np.abs(virial).max() + 1e-8)


@pytest.fixture(scope="module")
def silicon_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An ACE model trained briefly (defaults, 60 s) on the mlearn DFT data of silicon."""
    if not (MLEARN / "Si" / "train.extxyz").is_file():
        pytest.skip(f"the mlearn DFT data are not at {MLEARN}")
    from scalelink.training import export_potential, load_checkpoint, load_config, train

    out = str(tmp_path_factory.mktemp("si") / "run")
    config = load_config(
        None, data=[str(MLEARN / "Si" / "train.extxyz")], species=["Si"], cutoff=5.0, epochs=1000,
        time_limit=60.0, out=out, seed=2, test_fraction=0.0,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(config, progress=False)
    finally:
        torch.set_num_threads(threads)
    model, species = load_checkpoint(out)
    path = str(tmp_path_factory.mktemp("si_model") / "si.pt")
    export_potential(model, species, path, dtype="float64")
    return path


@pytest.mark.lammps
@pytest.mark.mpi
@pytest.mark.slow
def test_nve_conserves_energy_with_a_silicon_model(silicon_model, tmp_path) -> None:
    """1,000 steps of 1 fs NVE at 600 K in diamond silicon, 2 ranks: drift < 1e-5 eV/atom/ps."""
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 2, 2))
    atoms.positions += np.random.default_rng(0).normal(scale=0.03, size=atoms.positions.shape)
    write_data(atoms, tmp_path / "in.data", ["Si"])
    proc = run_driver(
        tmp_path / "in.data", silicon_model, ["Si"], tmp_path / "out.npz", ranks=2, timeout=600,
        extra=["--md", "1000", "--post", "velocity all create 600 4928459 mom yes rot yes dist gaussian",
               "--post", "timestep 0.001"],
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    step, potential, total = np.load(tmp_path / "out.npz")["md_energy"].T
    assert np.ptp(potential) > 0.05 * len(atoms) * 0.0259, "the crystal must actually vibrate"
    time_ps = step * 0.001
    slope = np.polyfit(time_ps, total / len(atoms), 1)[0]
    assert abs(slope) < 1e-5, f"energy drift {slope:.2e} eV/atom/ps"


@pytest.mark.gpu
@pytest.mark.lammps
@pytest.mark.mpi
@pytest.mark.parametrize("dtype,ranks", [("float64", 1), ("float64", 2), ("float32", 1)])
def test_cuda_matches_cpu(ace_files, tmp_path, dtype, ranks) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the ACE model's CUDA path runs only where a GPU is present")
    model = ace_files[dtype]
    write_data(_structure("triclinic", seed=8), tmp_path / "in.data", SPECIES)
    results = {}
    for device in ("cpu", "cuda"):
        pair = ["--pair", f"pair_style scalelink device {device} share_gpu yes", f"pair_coeff * * {model} Cu Ni"]
        proc = run_driver(
            tmp_path / "in.data", model, SPECIES, tmp_path / f"{device}.npz", ranks=ranks,
            extra=[*pair, "--per-atom-virial"],
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        results[device] = np.load(tmp_path / f"{device}.npz")
    tol = {"float64": 1e-9, "float32": 1e-4}[dtype]
    for name in ("forces", "pe_atom", "virial", "atomic_virial"):
        scale = np.abs(results["cpu"][name]).max()
        np.testing.assert_allclose(results["cuda"][name], results["cpu"][name], rtol=0, atol=tol * scale, err_msg=name)


@pytest.mark.lammps
@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [1, 2])
def test_committee_of_ace_members_matches_ase(tmp_path, ranks) -> None:
    """Three ACE members as one committee file: LAMMPS energies, forces and force deviations
    equal the ASE calculator's, and the members disagree (the deviation is not trivially 0)."""
    from scalelink.bridge.ase import ScaleLinkCalculator
    from scalelink.training.export import export_committee

    path = str(tmp_path / "committee.pt")
    export_committee([_potential(seed) for seed in (4, 5, 6)], SPECIES, path)
    atoms = write_data(_structure("triclinic", seed=3), tmp_path / "in.data", SPECIES)
    proc = run_driver(tmp_path / "in.data", path, SPECIES, tmp_path / "out.npz", ranks=ranks, extra=["--deviation", "all"])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    got = np.load(tmp_path / "out.npz")
    reference = atoms.copy()
    reference.calc = ScaleLinkCalculator(path)
    reference.get_potential_energy()
    want = reference.calc.results
    assert np.abs(want["forces_deviation"]).max() > 1e-3
    assert float(got["energy"]) == pytest.approx(float(want["energy"]), rel=1e-8)
    _close(got["forces"], want["forces"], 1e-8)
    _close(got["forces_deviation"], want["forces_deviation"], 1e-8)


def test_degree_and_correlation_are_checked() -> None:
    from scalelink.bridge.errors import ConfigError
    from scalelink.potentials.ace import MAX_DEGREE, ACEConfig

    assert ACEConfig(lmax=MAX_DEGREE).lmax == MAX_DEGREE
    with pytest.raises(ConfigError, match=rf"ace.lmax must be an integer from 0 to {MAX_DEGREE}, got 7"):
        ACEConfig(lmax=7)
    with pytest.raises(ConfigError, match=r"ace.lmax .* got 2.5"):
        ACEConfig(lmax=2.5)
    with pytest.raises(ConfigError, match="lmax must be 0 to 6, got -1"):
        _potential(lmax=-1)
    with pytest.raises(ConfigError, match="correlation must be 1, 2 or 3, got 4"):
        _potential(correlation=4)


def test_four_body_couplings_stop_at_their_own_degree() -> None:
    from scalelink.bridge.errors import ConfigError
    from scalelink.potentials.ace import ACEConfig, coupling_paths

    full, limited = _potential(lmax=5), _potential(lmax=5, four_body_lmax=3)
    assert full.num_products == 6 + len(coupling_paths(5))
    assert limited.num_products == 6 + len(coupling_paths(3))
    assert max(max(p.degrees) for p in limited.products if p.order == 3) == 3
    assert max(max(p.degrees) for p in limited.products if p.order == 2) == 5
    with pytest.raises(ConfigError, match=r"four_body_lmax must be 0 to lmax \(3\), got 4"):
        _potential(lmax=3, four_body_lmax=4)
    with pytest.raises(ConfigError, match=r"ace.four_body_lmax must be an integer from 0 to lmax \(4\), got 5"):
        ACEConfig(lmax=4, four_body_lmax=5)


def test_linear_readout_adds_a_linear_function_of_the_invariants_per_species() -> None:
    """Energy = MLP part + w_s . standardised invariants: the difference to the same model
    without the linear weights is that linear function, computed here from the invariants."""
    from scalelink.bridge.ase import neighbor_graph, species_indices

    potential = _potential()
    atoms = _structure("triclinic", seed=3)
    kinds = torch.from_numpy(species_indices(list(atoms.get_chemical_symbols()), SPECIES))
    edge_index, edge_vectors = (torch.from_numpy(a) for a in neighbor_graph(atoms, CUTOFF))
    with torch.no_grad():
        with_linear = potential(edge_vectors, edge_index, kinds)
        features = (potential.descriptors(edge_vectors, edge_index, kinds) - potential.feature_mean) / potential.feature_std
        expected = (features * potential.linear.weight[kinds]).sum(-1) * potential.energy_scale
        weights = potential.linear.weight.clone()
        potential.linear.weight.zero_()
        without = potential(edge_vectors, edge_index, kinds)
        potential.linear.weight.copy_(weights)
    assert float(expected.abs().max()) > 1e-3
    torch.testing.assert_close(with_linear - without, expected, rtol=1e-12, atol=1e-12)


def test_checkpoints_without_the_linear_readout_still_load(tmp_path) -> None:
    """Models trained before the linear readout existed have no ``linear_readout`` keyword and no
    weights for it; they rebuild without it and give the energies they gave."""
    from scalelink.bridge.ase import neighbor_graph, species_indices
    from scalelink.bridge.errors import ConfigError
    from scalelink.potentials.ace import ACEConfig
    from scalelink.training.trainer import build_model

    assert ACEConfig().linear_readout
    with pytest.raises(ConfigError, match="ace.linear_readout must be true or false, got 'yes'"):
        ACEConfig(linear_readout="yes")
    old = _potential(linear_readout=False)
    assert old.linear is None and not any("linear" in key for key in old.state_dict())
    kwargs = {"num_species": len(SPECIES), "cutoff": CUTOFF, "channels": 6, "lmax": 3, "num_basis": 6,
              "radial_hidden": [16], "hidden": [16], "avg_num_neighbors": 20.0,
              "energy_shift": [-3.5, -4.4], "energy_scale": 0.5}
    rebuilt = build_model(kwargs, "ace").double()
    rebuilt.load_state_dict(old.state_dict())
    atoms = _structure("small", seed=2)
    kinds = torch.from_numpy(species_indices(list(atoms.get_chemical_symbols()), SPECIES))
    edge_index, edge_vectors = (torch.from_numpy(a) for a in neighbor_graph(atoms, CUTOFF))
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(edge_vectors, edge_index, kinds), old(edge_vectors, edge_index, kinds),
                                   rtol=0, atol=0)
