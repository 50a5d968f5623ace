"""Periodic FE RVE vs closed-form homogenization results, Hill–Mandel and Taylor tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mpi4py.MPI  # noqa: F401  (loads libmpi before dolfinx)
import numpy as np
import pytest

pytest.importorskip("dolfinx")

from scalelink.bridge.errors import ConfigError  # noqa: E402
from scalelink.fe2.homogenization import (  # noqa: E402
    hashin_shtrikman_bounds,
    laminate_conductivity,
    laminate_stiffness,
    reuss_bound,
    uniform_random_rotations,
    voigt_bound,
)
from scalelink.fe2.micro import LinearElastic, MicroModel, taylor_test  # noqa: E402
from scalelink.fe2.rve import (  # noqa: E402
    PeriodicRVE,
    RVEMicroModel,
    checkerboard,
    circular_inclusion,
    effective_conductivity,
    hexagonal_array,
    hill_mandel_gap,
    laminate,
    unit_cell_mesh,
)
from scalelink.fe2.tensors import (  # noqa: E402
    cubic_stiffness,
    isotropic_stiffness,
    plane_strain,
    rotate_stiffness,
)

pytestmark = pytest.mark.fenicsx


class CubicHardening(MicroModel):
    """Nonlinear elastic phase ``σ = C ε + β |ε|² ε`` (hyperelastic: the tangent is symmetric)."""

    def __init__(self, stiffness: np.ndarray, beta: float) -> None:
        self.c, self.beta, self.strain_size = stiffness, beta, stiffness.shape[0]

    def evaluate(self, strain, *, time_step=0.0):
        sq = np.einsum("na,na->n", strain, strain)
        stress = strain @ self.c.T + self.beta * sq[:, None] * strain
        eye = np.eye(self.strain_size)
        tangent = self.c + self.beta * (sq[:, None, None] * eye
                                        + 2.0 * np.einsum("na,nb->nab", strain, strain))
        return stress, tangent


class Relaxing(MicroModel):
    """History phase: ``σ = C (ε − ε_v)``, ``ε_v ← (ε_v + a ε) / (1 + a)``, ``a = Δt/τ``."""

    has_state = True

    def __init__(self, stiffness: np.ndarray, tau: float) -> None:
        self.c, self.tau, self.strain_size = stiffness, tau, stiffness.shape[0]

    def setup(self, num_points):
        self.committed = np.zeros((num_points, self.strain_size))
        self.trial = self.committed.copy()

    def evaluate(self, strain, *, time_step=0.0):
        a = time_step / self.tau
        self.trial = (self.committed + a * strain) / (1.0 + a)
        tangent = np.broadcast_to(self.c / (1.0 + a), (strain.shape[0],) + self.c.shape)
        return (strain - self.trial) @ self.c.T, tangent.copy()

    def commit(self):
        self.committed = self.trial.copy()


def _anisotropic(dim: int) -> np.ndarray:
    rotation = uniform_random_rotations(1, seed=7)[0]
    c = rotate_stiffness(cubic_stiffness(168.4, 121.4, 75.4), rotation)
    return c if dim == 3 else plane_strain(c)


def _pair(dim: int) -> tuple[np.ndarray, np.ndarray]:
    m = 6 if dim == 3 else 3
    return (isotropic_stiffness(young=10.0, poisson=0.3, strain_size=m),
            isotropic_stiffness(young=1.0, poisson=0.2, strain_size=m))


@pytest.mark.parametrize("degree", [1, 2])
@pytest.mark.parametrize("dim", [2, 3])
def test_homogeneous_rve_returns_its_stiffness(dim: int, degree: int) -> None:
    c = _anisotropic(dim)
    rve = PeriodicRVE(unit_cell_mesh(dim, 4 if dim == 2 else 2), {0: LinearElastic(c)},
                      degree=degree)
    np.testing.assert_allclose(rve.effective_stiffness(), c, rtol=1e-11, atol=1e-11 * c.max())


@pytest.mark.parametrize(("dim", "axis", "anisotropic"),
                         [(2, 0, False), (2, 1, True), (3, 2, False), (3, 0, True)])
def test_laminate_matches_closed_form(dim: int, axis: int, anisotropic: bool) -> None:
    """Layer boundaries on element faces: P1 holds the exact piecewise-linear solution."""
    stiff, soft = _pair(dim)
    if anisotropic:
        stiff = _anisotropic(dim)
    rve = PeriodicRVE(unit_cell_mesh(dim, 8 if dim == 2 else 4),
                      {1: LinearElastic(stiff), 0: LinearElastic(soft)},
                      cell_tags=laminate(0.25 if dim == 2 else 0.5, axis))
    f = rve.volume_fractions
    expected = laminate_stiffness([stiff, soft], [f[1], f[0]], axis=axis)
    computed = rve.effective_stiffness()
    np.testing.assert_allclose(computed, expected, rtol=0, atol=1e-10 * np.abs(expected).max())
    if not anisotropic:
        shear = {2: 2, 3: {2: 3, 0: 5}[axis]}[dim]  # a Mandel shear component with normal `axis`
        harmonic = 1.0 / (f[1] / stiff[shear, shear] + f[0] / soft[shear, shear])
        assert computed[shear, shear] == pytest.approx(harmonic, rel=1e-10)


def test_laminate_conductivity_arithmetic_along_harmonic_across() -> None:
    k = effective_conductivity(unit_cell_mesh(2, 8), {1: 3.0, 0: 0.5}, cell_tags=laminate(0.25, 1))
    np.testing.assert_allclose(k, laminate_conductivity([3.0, 0.5], [0.25, 0.75], axis=1),
                               rtol=1e-11, atol=1e-12)


def test_checkerboard_conductivity_converges_to_keller() -> None:
    """Keller/Dykhne: the symmetric 2D checkerboard has k = √(k₁k₂) = 2 for k = 1, 4. The
    corner singularity ~ r^α with cos(απ/2) = |k₁−k₂|/(k₁+k₂) limits the P1 error to O(h^{2α})
    (2α = 1.18): we check the observed rate and the Richardson extrapolation at that rate."""
    values = np.array([
        np.trace(effective_conductivity(unit_cell_mesh(2, n), {0: 1.0, 1: 4.0},
                                        cell_tags=checkerboard())) / 2 for n in (8, 16, 32)])
    error = values - 2.0
    order = 4.0 / np.pi * np.arccos(3.0 / 5.0)
    assert np.all(error > 0) and error[-1] < 0.03
    np.testing.assert_allclose(np.log2(error[:-1] / error[1:]), order, atol=0.05)
    extrapolated = (2**order * values[-1] - values[-2]) / (2**order - 1)
    assert extrapolated == pytest.approx(2.0, abs=1e-3)


def _fibre_bounds(rve: PeriodicRVE, soft: np.ndarray, stiff: np.ndarray):
    fractions = [rve.volume_fractions[0], rve.volume_fractions[1]]
    bulk = [(p[0, 0] + p[0, 1]) / 2 for p in (soft, stiff)]
    shear = [p[2, 2] / 2 for p in (soft, stiff)]
    return (voigt_bound([soft, stiff], fractions), reuss_bound([soft, stiff], fractions),
            hashin_shtrikman_bounds(bulk, shear, fractions, dim=2))


def _moduli(c: np.ndarray) -> tuple[float, float, float]:
    """In-plane bulk modulus and the two shear moduli (along the axes, at 45°)."""
    return ((c[0, 0] + c[1, 1] + 2 * c[0, 1]) / 4, c[2, 2] / 2,
            (c[0, 0] + c[1, 1] - 2 * c[0, 1]) / 4)


FIBRE, MATRIX = (isotropic_stiffness(young=20.0, poisson=0.2, strain_size=3),
                 isotropic_stiffness(young=1.0, poisson=0.35, strain_size=3))


def test_circular_inclusion_within_bounds() -> None:
    """Plane strain, stiff fibres in a soft matrix on a square array: the whole tensor lies
    between the Reuss and Voigt bounds, and the in-plane bulk modulus between Hashin's (1965)
    bounds, which hold for any transverse geometry. (A square array is not transversely
    isotropic: its shear modulus along the axes may, and here does, fall below the isotropic
    Hashin–Shtrikman lower bound; see the hexagonal array below.)"""
    rve = PeriodicRVE(unit_cell_mesh(2, 16), {0: LinearElastic(MATRIX), 1: LinearElastic(FIBRE)},
                      cell_tags=circular_inclusion(0.3))
    c = rve.effective_stiffness()
    voigt, reuss, (lower_k, upper_k, _, _) = _fibre_bounds(rve, MATRIX, FIBRE)
    assert np.linalg.eigvalsh(voigt - c).min() > 0
    assert np.linalg.eigvalsh(c - reuss).min() > 0
    assert lower_k < _moduli(c)[0] < upper_k


def test_hexagonal_fibre_array_within_hashin_shtrikman() -> None:
    """A hexagonal array is transversely isotropic: bulk and both shear moduli lie inside the
    2D Hashin–Shtrikman bounds, and the two shear moduli nearly agree (mesh anisotropy)."""
    mesh = unit_cell_mesh(2, (16, 28), size=(1.0, np.sqrt(3.0)), diagonal="crossed")
    rve = PeriodicRVE(mesh, {0: LinearElastic(MATRIX), 1: LinearElastic(FIBRE)},
                      cell_tags=hexagonal_array(0.3))
    c = rve.effective_stiffness()
    voigt, reuss, (lower_k, upper_k, lower_g, upper_g) = _fibre_bounds(rve, MATRIX, FIBRE)
    bulk, shear_a, shear_b = _moduli(c)
    assert np.linalg.eigvalsh(voigt - c).min() > 0 and np.linalg.eigvalsh(c - reuss).min() > 0
    assert lower_k < bulk < upper_k
    assert lower_g < min(shear_a, shear_b) and max(shear_a, shear_b) < upper_g
    assert abs(shear_a - shear_b) < 0.02 * shear_a


def _nonlinear_rve(dim: int = 2) -> PeriodicRVE:
    stiff, soft = _pair(dim)
    return PeriodicRVE(unit_cell_mesh(dim, 6 if dim == 2 else 4),
                       {0: CubicHardening(soft, 2000.0), 1: LinearElastic(stiff)},
                       cell_tags=circular_inclusion(0.3))


@pytest.mark.parametrize("dim", [2, 3])
def test_hill_mandel_nonlinear_rve(dim: int) -> None:
    rve = _nonlinear_rve(dim)
    macro = [0.02, -0.01, 0.015] if dim == 2 else [0.02, -0.01, 0.005, 0.0, 0.01, 0.015]
    sol = rve.solve(macro)
    assert sol.iterations >= 3 and sol.residuals[-1] < 1e-10
    np.testing.assert_allclose(rve.average(sol.strain), macro, atol=1e-14)
    np.testing.assert_allclose(rve.average(sol.stress), sol.macro_stress, rtol=1e-14)
    assert hill_mandel_gap(sol.stress, sol.strain, sol.weights) < 1e-9
    # A periodic but non-equilibrated fluctuation violates it: the check can fail.
    noise = np.random.default_rng(0).standard_normal(rve.operator.num_free) * 1e-3
    strain = sol.strain + rve.operator.gradient(noise)
    stress, _ = rve.phase_response(strain)
    assert hill_mandel_gap(stress, strain, sol.weights) > 1e-4


@pytest.mark.parametrize("dim", [2, 3])
def test_rve_micro_model_taylor_test_nonlinear(dim: int) -> None:
    model = RVEMicroModel(_nonlinear_rve(dim))
    assert not model.linear
    strain = 0.01 * np.random.default_rng(dim).standard_normal((2, model.strain_size))
    # Steps small enough that a tangent wrong by a few percent shows as order-1 remainders.
    result = taylor_test(model, strain, steps=(2e-3, 1e-3, 5e-4, 2.5e-4, 1.25e-4))
    assert result.passed(tolerance=0.05), result
    assert np.all(np.abs(result.first_rates - 2) < 0.05)
    assert np.all(np.abs(result.zeroth_rates - 1) < 0.05)


def test_rve_micro_model_linear_is_precomputed_stiffness() -> None:
    stiff, soft = _pair(2)
    rve = PeriodicRVE(unit_cell_mesh(2, 8), {1: LinearElastic(stiff), 0: LinearElastic(soft)},
                      cell_tags=laminate(0.25))
    model = RVEMicroModel(rve)
    strain = np.random.default_rng(1).standard_normal((5, 3)) * 1e-3
    stress, tangent = model.evaluate(strain)
    expected = laminate_stiffness([stiff, soft], [0.25, 0.75])
    np.testing.assert_allclose(stress, strain @ expected.T, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(tangent, np.broadcast_to(expected, (5, 3, 3)),
                               rtol=1e-10, atol=1e-12)


def test_rve_micro_model_history_phase_commit() -> None:
    """One history phase filling the RVE behaves like the phase itself, step after step, and a
    trial without commit does not change the state."""
    c = _anisotropic(2)
    model = RVEMicroModel(PeriodicRVE(unit_cell_mesh(2, 4), {0: Relaxing(c, tau=2.0)}))
    reference = Relaxing(c, tau=2.0)
    model.setup(2)
    reference.setup(2)
    strain = np.array([[1e-3, 2e-3, 0.0], [0.0, -1e-3, 3e-3]])
    for _ in range(3):
        model.evaluate(2 * strain, time_step=0.5)  # a discarded trial
        stress, tangent = model.evaluate(strain, time_step=0.5)
        ref_stress, ref_tangent = reference.evaluate(strain, time_step=0.5)
        np.testing.assert_allclose(stress, ref_stress, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(tangent, ref_tangent, rtol=1e-9)
        model.commit()
        reference.commit()
    with pytest.raises(ConfigError, match="setup"):
        model.evaluate(strain[:1])


@pytest.mark.mpi
def test_two_ranks_match_serial(tmp_path) -> None:
    """Each rank solves the RVEs of the macro points it owns; the answers equal a serial run."""
    strains = 0.01 * np.random.default_rng(4).standard_normal((4, 3))
    np.save(tmp_path / "strains.npy", strains)
    script = Path(__file__).parent / "rve_mpi.py"
    command = [str(Path(sys.executable).parent / "mpirun"), "-n", "2", sys.executable, str(script),
               str(tmp_path / "strains.npy"), str(tmp_path / "out.npz")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    parallel = np.load(tmp_path / "out.npz")
    assert sorted(parallel["ranks"].tolist()) == [0, 0, 1, 1]
    stress, tangent = RVEMicroModel(_nonlinear_rve()).evaluate(strains)
    np.testing.assert_allclose(parallel["stress"], stress, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(parallel["tangent"], tangent, rtol=1e-10, atol=1e-12)


def test_bad_input_is_refused() -> None:
    stiff, soft = _pair(2)
    mesh = unit_cell_mesh(2, 4)
    with pytest.raises(ConfigError, match="strain sizes"):
        PeriodicRVE(mesh, {0: LinearElastic(_pair(3)[0])})
    with pytest.raises(ConfigError, match=r"missing tags \[1\]"):
        PeriodicRVE(mesh, {0: LinearElastic(soft), 2: LinearElastic(stiff)},
                    cell_tags=checkerboard())
    shifted = unit_cell_mesh(2, 4)
    shifted.geometry.x[:, 0] += 0.5
    with pytest.raises(ConfigError, match="corner at the origin"):
        PeriodicRVE(shifted, {0: LinearElastic(soft)})
    skewed = unit_cell_mesh(2, 4)
    x = skewed.geometry.x
    right = np.flatnonzero((np.abs(x[:, 0] - 1.0) < 1e-12) & (np.abs(x[:, 1] - 0.5) < 1e-12))
    x[right, 1] += 0.05
    with pytest.raises(ConfigError, match="not periodic along axis 0"):
        PeriodicRVE(skewed, {0: LinearElastic(soft)})
