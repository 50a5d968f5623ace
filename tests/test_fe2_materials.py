"""J2 plasticity and the stiffening elastic law against closed forms, finite differences and
Taylor tests."""

from __future__ import annotations

import numpy as np
import pytest

from scalelink.bridge.errors import ConfigError
from scalelink.fe2.materials import J2Plasticity, StiffeningElastic
from scalelink.fe2.micro import LinearElastic, taylor_test
from scalelink.fe2.tensors import isotropic_stiffness

pytestmark = pytest.mark.fenicsx

E, NU, SIGMA_Y, H = 200.0, 0.3, 0.25, 10.0
K, G = E / (3 * (1 - 2 * NU)), E / (2 * (1 + NU))
STEPS = (1e-6, 5e-7, 2.5e-7, 1.25e-7)  # well inside the elastic/plastic switch distance


def _linear_and_exact(result) -> bool:
    """Elastic points: the tangent reproduces the increments to round-off at every step."""
    return bool(np.all(result.first <= 1e-9 * result.zeroth))


def _j2(m: int, n: int) -> J2Plasticity:
    model = J2Plasticity(strain_size=m, young=E, poisson=NU, yield_stress=SIGMA_Y, hardening=H)
    model.setup(n)
    return model


def _strains(m: int, n: int, scale: float, seed: int) -> np.ndarray:
    return scale * np.random.default_rng(seed).standard_normal((n, m))


@pytest.mark.parametrize("m", [3, 6])
def test_j2_taylor_elastic_plastic_and_after_history(m: int) -> None:
    model = _j2(m, 40)
    # Virgin points: small strains stay elastic, large ones yield.
    small, large = _strains(m, 40, 2e-4, 1), _strains(m, 40, 4e-3, 2)
    model.evaluate(small)
    assert np.all(model._trial[1] == 0.0)  # noqa: SLF001 (trial state of an elastic batch)
    assert _linear_and_exact(taylor_test(model, small, steps=STEPS, seed=7))
    result = taylor_test(model, large, steps=STEPS, seed=7)
    assert result.passed(), result
    assert result.first[0] > 1e-6 * result.zeroth[0], "plastic response must be nonlinear"
    # Commit a plastic history, then test further loading (plastic) and unloading (elastic).
    model.evaluate(large)
    model.commit()
    assert np.all(model.equivalent_plastic_strain > 0.0)
    assert taylor_test(model, 1.3 * large + _strains(m, 40, 1e-3, 3), steps=STEPS, seed=8).passed()
    unloaded = 0.9 * large  # elastic: the committed flow direction is that of large
    _, tangent = model.evaluate(unloaded)
    assert np.allclose(model._trial[1], model.equivalent_plastic_strain)  # noqa: SLF001
    elastic = isotropic_stiffness(young=E, poisson=NU, strain_size=m)
    np.testing.assert_allclose(tangent, np.broadcast_to(elastic, tangent.shape), atol=1e-10)
    assert _linear_and_exact(taylor_test(model, unloaded, steps=STEPS, seed=9))


def test_j2_taylor_test_detects_the_continuum_tangent() -> None:
    """The continuum elastoplastic tangent (θ = 1) is not the consistent one: Taylor must fail."""

    class Continuum(J2Plasticity):
        def evaluate(self, strain, *, time_step=0.0):
            stress, _ = super().evaluate(strain, time_step=time_step)
            dev = stress - stress[:, :3].mean(axis=1, keepdims=True) * [1, 1, 1, 0, 0, 0]
            n = dev / np.linalg.norm(dev, axis=1, keepdims=True)
            elastic = isotropic_stiffness(young=E, poisson=NU)
            tangent = elastic - 6.0 * G**2 / (3.0 * G + H) * np.einsum("ni,nj->nij", n, n)
            return stress, tangent

    model = Continuum(strain_size=6, young=E, poisson=NU, yield_stress=SIGMA_Y, hardening=H)
    model.setup(10)
    result = taylor_test(model, _strains(6, 10, 4e-3, 4), steps=STEPS)
    assert not result.passed()
    assert np.all(result.first_rates < 1.2)


def _shear_closed_form(gamma: np.ndarray) -> np.ndarray:
    """τ(γ) of monotonic simple shear with linear isotropic hardening."""
    elastic = G * gamma
    plastic = (G * H * gamma + np.sqrt(3.0) * G * SIGMA_Y) / (H + 3.0 * G)
    return np.where(np.abs(elastic) <= SIGMA_Y / np.sqrt(3.0), elastic, plastic)


@pytest.mark.parametrize("m", [3, 6])
@pytest.mark.parametrize("num_steps", [1, 7])
def test_j2_simple_shear_matches_closed_form(m: int, num_steps: int) -> None:
    gammas = np.linspace(0.0, 0.02, 9)[1:]
    model = _j2(m, gammas.size)
    shear_index = m - 1  # √2·xy is last in both orderings
    for k in range(1, num_steps + 1):
        strain = np.zeros((gammas.size, m))
        strain[:, shear_index] = np.sqrt(2.0) * 0.5 * gammas * k / num_steps
        stress, _ = model.evaluate(strain)
        model.commit()
    tau = stress[:, shear_index] / np.sqrt(2.0)
    np.testing.assert_allclose(tau, _shear_closed_form(gammas), rtol=1e-12)
    assert np.count_nonzero(model.equivalent_plastic_strain) >= 5
    np.testing.assert_allclose(
        model.equivalent_plastic_strain,
        np.maximum(np.sqrt(3.0) * tau - SIGMA_Y, 0.0) / H,
        rtol=1e-10, atol=1e-15,
    )


def test_j2_plane_strain_uniaxial_strain_keeps_out_of_plane_plasticity() -> None:
    """ε = (ε, 0, 0): σ_xx = Kε + 2q/3, σ_yy = σ_zz = Kε − q/3, q = σ_y + H·p."""
    eps = np.linspace(0.0, 0.01, 11)[1:]
    plane, solid = _j2(3, eps.size), _j2(6, eps.size)
    strain3 = np.zeros((eps.size, 3))
    strain3[:, 0] = eps
    strain6 = np.zeros((eps.size, 6))
    strain6[:, 0] = eps
    stress3, tangent3 = plane.evaluate(strain3)
    stress6, tangent6 = solid.evaluate(strain6)
    p = np.maximum(2.0 * G * eps - SIGMA_Y, 0.0) / (3.0 * G + H)
    q = np.where(p > 0, SIGMA_Y + H * p, 2.0 * G * eps)
    np.testing.assert_allclose(stress3[:, 0], K * eps + 2.0 * q / 3.0, rtol=1e-12)
    np.testing.assert_allclose(stress3[:, 1], K * eps - q / 3.0, rtol=1e-12)
    np.testing.assert_allclose(plane.out_of_plane_stress, K * eps - q / 3.0, rtol=1e-12)
    np.testing.assert_allclose(stress3, stress6[:, [0, 1, 5]], atol=1e-14)
    np.testing.assert_allclose(tangent3, tangent6[:, [0, 1, 5]][:, :, [0, 1, 5]], atol=1e-12)
    plane.commit()
    assert np.all(plane.plastic_strain[p > 0, 2] < 0.0), "plastic ε_zz must evolve in plane strain"


def test_j2_trial_does_not_change_state() -> None:
    model = _j2(6, 5)
    strain = _strains(6, 5, 5e-3, 5)
    first, _ = model.evaluate(strain)
    model.evaluate(2.0 * strain)
    again, _ = model.evaluate(strain)
    np.testing.assert_array_equal(first, again)
    assert np.all(model.equivalent_plastic_strain == 0.0)


def _stiffening(m: int) -> StiffeningElastic:
    return StiffeningElastic(
        strain_size=m, bulk=K, shear=G, volumetric_stiffening=2e4, deviatoric_stiffening=5e4
    )


@pytest.mark.parametrize("m", [3, 6])
def test_stiffening_elastic_stress_is_energy_gradient_and_tangent_consistent(m: int) -> None:
    model = _stiffening(m)
    strain = _strains(m, 20, 5e-3, 6)
    stress, tangent = model.evaluate(strain)
    h = 1e-7
    fd = np.stack(
        [(model.energy(strain + h * e) - model.energy(strain - h * e)) / (2 * h)
         for e in np.eye(m)],
        axis=1,
    )
    np.testing.assert_allclose(stress, fd, rtol=1e-6, atol=1e-9 * np.abs(stress).max())
    np.testing.assert_allclose(tangent, np.swapaxes(tangent, 1, 2), atol=1e-12)
    assert np.all(np.linalg.eigvalsh(tangent) > 0.0)
    result = taylor_test(model, strain, steps=(1e-4, 5e-5, 2.5e-5, 1.25e-5))
    assert result.passed(), result
    assert np.abs(tangent - isotropic_stiffness(bulk=K, shear=G, strain_size=m)).max() > 1.0


@pytest.mark.parametrize("m", [3, 6])
def test_stiffening_elastic_without_stiffening_is_linear(m: int) -> None:
    model = StiffeningElastic(strain_size=m, bulk=K, shear=G)
    linear = LinearElastic(isotropic_stiffness(young=E, poisson=NU, strain_size=m))
    strain = _strains(m, 8, 1e-2, 7)
    for got, want in zip(model.evaluate(strain), linear.evaluate(strain)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_material_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="strain size 4"):
        J2Plasticity(strain_size=4, young=E, poisson=NU, yield_stress=SIGMA_Y)
    with pytest.raises(ConfigError, match="exactly one pair"):
        J2Plasticity(strain_size=6, young=E, bulk=K, yield_stress=SIGMA_Y)
    with pytest.raises(ConfigError, match="yield_stress"):
        J2Plasticity(strain_size=6, young=E, poisson=NU, yield_stress=0.0)
    with pytest.raises(ConfigError, match="setup"):
        unset = J2Plasticity(strain_size=6, young=E, poisson=NU, yield_stress=SIGMA_Y)
        unset.evaluate(np.zeros((2, 6)))
    with pytest.raises(ConfigError, match="setup"):
        _j2(6, 3).evaluate(np.zeros((2, 6)))
    with pytest.raises(ConfigError, match=r"expected \(num_points, 3\)"):
        _j2(3, 2).evaluate(np.zeros((2, 6)))
    with pytest.raises(ConfigError, match="no trial"):
        _j2(3, 2).commit()
    with pytest.raises(ConfigError, match="stiffening"):
        StiffeningElastic(strain_size=3, bulk=K, shear=G, volumetric_stiffening=-1.0)
