"""Prony fitting and the generalized Maxwell micro model against closed-form results.

References: exact Prony data, the Fourier transform of the relaxation modulus by quadrature,
closed-form step-relaxation and constant-rate responses of a Maxwell chain, isotropic stiffnesses
built from the moduli at each time, and the steady state of a simulated harmonic strain.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import scipy.integrate

from scalelink.bridge.errors import ConfigError, DataError
from scalelink.fe2.micro import LinearElastic, taylor_test
from scalelink.fe2.prony import (
    PronySeries,
    fit_prony,
    fit_prony_frequency,
    relaxation_time_grid,
    stretched_exponential_modulus,
)
from scalelink.fe2.tensors import isotropic_stiffness
from scalelink.fe2.viscoelastic import Viscoelastic

TIMES = np.logspace(-2, 3, 61)
SERIES = PronySeries(0.2, [1.5, 0.8, 0.5], [0.1, 2.0, 40.0])
BULK = PronySeries(2.0, [1.0], [0.5])
SHEAR = PronySeries(0.3, [0.9, 0.4], [0.05, 7.0])


def _integral(series: PronySeries, t: np.ndarray) -> np.ndarray:
    """∫₀ᵗ E(s) ds, the closed-form constant-strain-rate response per unit rate."""
    tau = series.relaxation_times
    return series.long_term_modulus * t + (
        -np.expm1(-t[:, None] / tau) * tau
    ) @ series.moduli


def _random_strains(n: int, m: int, seed: int) -> np.ndarray:
    return 1e-2 * np.random.default_rng(seed).standard_normal((n, m))


@pytest.mark.parametrize("terms_per_decade", [1, 2])
@pytest.mark.parametrize("long_term", [0.0, 0.05])
@pytest.mark.parametrize("relative", [True, False])
def test_single_maxwell_element_is_recovered(
    terms_per_decade: int, long_term: float, relative: bool
) -> None:
    tau = 10.0 ** (2 / terms_per_decade)  # on the default grid
    exact = PronySeries(long_term, [2.0], [tau])
    fit = fit_prony(
        TIMES, exact.relaxation(TIMES), terms_per_decade=terms_per_decade, relative=relative,
        drop_zero_terms=False,
    )
    grid = relaxation_time_grid(TIMES, terms_per_decade=terms_per_decade)
    np.testing.assert_array_equal(fit.series.relaxation_times, grid)
    hit = np.flatnonzero(grid == tau)
    assert hit.size == 1
    moduli = fit.series.moduli
    assert abs(moduli[hit[0]] - 2.0) <= 1e-8 * 2.0
    assert abs(fit.series.long_term_modulus - long_term) <= 1e-8 * 2.0
    assert np.all(np.delete(moduli, hit) <= 1e-8 * 2.0)
    assert fit.residual < 1e-12 * (1.0 if relative else 2.0)
    dropped = fit_prony(TIMES, exact.relaxation(TIMES), terms_per_decade=terms_per_decade)
    np.testing.assert_array_equal(dropped.series.relaxation_times, [tau])


def test_noisy_multi_term_fit_is_non_negative_and_close() -> None:
    exact = PronySeries(0.05, [1.0, 0.6, 0.3], [10.0**-1.5, 1.0, 100.0])
    noise = 3e-3
    rng = np.random.default_rng(5)
    data = exact.relaxation(TIMES) * (1.0 + noise * rng.standard_normal(TIMES.size))
    fit = fit_prony(TIMES, data, terms_per_decade=2, drop_zero_terms=False)
    assert np.all(fit.series.moduli >= 0.0) and fit.series.long_term_modulus >= 0.0
    assert fit.relative_rms < 1.2 * noise
    assert fit.residual == pytest.approx(fit.relative_rms * np.sqrt(TIMES.size), rel=1e-10)
    fitted = fit.series.relaxation(TIMES)
    assert np.max(np.abs(fitted / exact.relaxation(TIMES) - 1.0)) < 2.0 * noise
    # Without the constraint the same noisy system has negative (inadmissible) terms.
    decay = np.exp(-TIMES[:, None] / fit.series.relaxation_times)
    a = np.column_stack([np.ones(TIMES.size), decay])
    unconstrained = np.linalg.lstsq(a / data[:, None], np.ones(TIMES.size), rcond=None)[0]
    assert unconstrained.min() < 0.0


def test_frequency_fit_recovers_series_on_grid() -> None:
    frequency = np.logspace(-3, 2, 41)
    exact = PronySeries(0.3, [1.0, 0.5], [10.0 ** -1.5, 10.0])
    fit = fit_prony_frequency(
        frequency, exact.storage(frequency), exact.loss(frequency), terms_per_decade=2
    )
    np.testing.assert_allclose(fit.series.relaxation_times, exact.relaxation_times)
    np.testing.assert_allclose(fit.series.moduli, exact.moduli, rtol=1e-8)
    assert fit.series.long_term_modulus == pytest.approx(0.3, rel=1e-8)
    storage_only = fit_prony_frequency(frequency, exact.storage(frequency), terms_per_decade=2)
    np.testing.assert_allclose(storage_only.series.moduli, exact.moduli, rtol=1e-6)


@pytest.mark.parametrize("frequency", [0.01, 0.7, 30.0])
def test_storage_and_loss_are_the_fourier_transform_of_relaxation(frequency: float) -> None:
    def transient(t: float) -> float:
        return float(SERIES.relaxation(t)) - SERIES.long_term_modulus

    sine = scipy.integrate.quad(transient, 0.0, np.inf, weight="sin", wvar=frequency)[0]
    cosine = scipy.integrate.quad(transient, 0.0, np.inf, weight="cos", wvar=frequency)[0]
    assert SERIES.storage(frequency) == pytest.approx(
        SERIES.long_term_modulus + frequency * sine, rel=1e-8
    )
    assert SERIES.loss(frequency) == pytest.approx(frequency * cosine, rel=1e-8)


def test_stretched_exponential_curve_is_fitted_within_one_percent() -> None:
    times = np.logspace(-3, 4, 141)
    data = stretched_exponential_modulus(
        times, glassy=3.0, rubbery=0.01, relaxation_time=5.0, exponent=0.4
    )
    fit = fit_prony(times, data, terms_per_decade=2)
    assert fit.relative_rms < 1e-2
    assert fit.series.instantaneous_modulus == pytest.approx(3.0, rel=2e-2)
    assert 3 <= fit.series.num_terms <= relaxation_time_grid(times, terms_per_decade=2).size


Reference = Callable[[np.ndarray, bool], np.ndarray]


def _models(m: int) -> dict[str, tuple[Viscoelastic, Reference]]:
    """Models with a reference ``C(t)`` and ``∫₀ᵗ C(s) ds`` computed another way."""
    c0 = isotropic_stiffness(young=3.0, poisson=0.35, strain_size=m)
    e0 = SERIES.instantaneous_modulus

    def proportional(t: np.ndarray, integrated: bool) -> np.ndarray:
        values = _integral(SERIES, t) if integrated else SERIES.relaxation(t)
        return values[:, None, None] * c0 / e0

    def isotropic(t: np.ndarray, integrated: bool) -> np.ndarray:
        k = _integral(BULK, t) if integrated else BULK.relaxation(t)
        g = _integral(SHEAR, t) if integrated else SHEAR.relaxation(t)
        return np.stack(
            [isotropic_stiffness(bulk=a, shear=b, strain_size=m) for a, b in zip(k, g)]
        )

    return {
        "proportional": (Viscoelastic.from_prony(c0, SERIES), proportional),
        "bulk-shear": (Viscoelastic.isotropic(bulk=BULK, shear=SHEAR, strain_size=m), isotropic),
    }


@pytest.mark.parametrize("m", [3, 6])
@pytest.mark.parametrize("kind", ["proportional", "bulk-shear"])
def test_step_strain_relaxes_as_prony_series_at_any_time_step(m: int, kind: str) -> None:
    model, reference = _models(m)[kind]
    strain = _random_strains(4, m, seed=1)
    model.setup(4)
    stress, _ = model.evaluate(strain, time_step=0.0)
    model.commit()
    scale = np.abs(stress).max()
    steps = np.exp(np.random.default_rng(2).uniform(np.log(1e-3), np.log(30.0), 25))
    times, stresses = np.cumsum(steps), []
    for dt in steps:
        stresses.append(model.evaluate(strain, time_step=dt)[0])
        model.commit()
    expected = np.einsum("tij,nj->tni", reference(np.concatenate([[0.0], times]), False), strain)
    np.testing.assert_allclose(stress, expected[0], rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(np.stack(stresses), expected[1:], rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(
        model.evaluate(strain, time_step=0.0)[0], expected[-1], rtol=0, atol=1e-12 * scale
    )


@pytest.mark.parametrize("m", [3, 6])
@pytest.mark.parametrize("kind", ["proportional", "bulk-shear"])
def test_constant_strain_rate_is_exact_with_large_steps(m: int, kind: str) -> None:
    model, reference = _models(m)[kind]
    rate = _random_strains(3, m, seed=3)
    steps = np.array([5.0, 0.3, 12.0, 50.0, 1.0, 20.0])
    times = np.cumsum(steps)
    model.setup(3)
    stresses = []
    for t, dt in zip(times, steps):
        stresses.append(model.evaluate(rate * t, time_step=dt)[0])
        model.commit()
    expected = np.einsum("tij,nj->tni", reference(times, True), rate)
    np.testing.assert_allclose(
        np.stack(stresses), expected, rtol=0, atol=1e-12 * np.abs(expected).max()
    )


def test_tangent_is_consistent_and_trials_do_not_change_state() -> None:
    model = Viscoelastic.isotropic(bulk=BULK, shear=SHEAR, strain_size=6)
    model.setup(5)
    for k, dt in enumerate([0.0, 0.2, 3.0]):
        model.evaluate(_random_strains(5, 6, seed=10 + k), time_step=dt)
        model.commit()
    strain_before, internal_before = model.committed_strain, model.internal_stresses
    base = _random_strains(5, 6, seed=20)
    dt = 0.7
    first_stress, tangent = model.evaluate(base, time_step=dt)
    result = taylor_test(model, base, time_step=dt)
    assert np.all(result.first <= 1e-11 * result.zeroth), result.first / result.zeroth
    assert result.passed()
    np.testing.assert_array_equal(model.committed_strain, strain_before)
    np.testing.assert_array_equal(model.internal_stresses, internal_before)
    np.testing.assert_array_equal(model.evaluate(base, time_step=dt)[0], first_stress)
    # Closed form C_∞ + Σ C_i (1 − e^{−Δt/τ_i}) τ_i/Δt, with C_i = 3K_i P_vol or 2G_i P_dev.
    def factor(s: PronySeries) -> float:
        tau = s.relaxation_times
        return s.long_term_modulus + float(np.sum(s.moduli * -np.expm1(-dt / tau) * tau / dt))

    expected = isotropic_stiffness(bulk=factor(BULK), shear=factor(SHEAR))
    np.testing.assert_allclose(tangent, np.broadcast_to(expected, (5, 6, 6)), rtol=1e-13)
    glassy = isotropic_stiffness(
        bulk=BULK.instantaneous_modulus, shear=SHEAR.instantaneous_modulus
    )
    np.testing.assert_allclose(model.algorithmic_tangent(0.0), glassy, rtol=1e-14)
    relaxed = isotropic_stiffness(bulk=BULK.long_term_modulus, shear=SHEAR.long_term_modulus)
    np.testing.assert_allclose(model.algorithmic_tangent(1e9), relaxed, rtol=1e-7)


def test_harmonic_strain_reaches_storage_and_loss_moduli() -> None:
    series = PronySeries(0.3, [1.0, 0.5], [0.05, 0.5])
    c0 = isotropic_stiffness(young=1.0, poisson=0.25, strain_size=3)
    model = Viscoelastic.from_prony(c0, series)
    model.setup(1)
    omega, amplitude, per_period, periods = 2.0, 1e-3, 400, 12
    direction = np.array([1.0, -0.3, 0.5])
    times = np.arange(1, per_period * periods + 1) * (2 * np.pi / omega / per_period)
    dt = times[0]
    stress = np.empty((times.size, 3))
    for k, t in enumerate(times):
        stress[k] = model.evaluate(amplitude * np.sin(omega * t) * direction[None], time_step=dt)[0]
        model.commit()
    last = slice(-per_period, None)
    basis = np.column_stack([np.sin(omega * times[last]), np.cos(omega * times[last])])
    coefficients = np.linalg.lstsq(basis, stress[last], rcond=None)[0]
    unit = c0 @ direction * amplitude / series.instantaneous_modulus
    np.testing.assert_allclose(coefficients[0], unit * series.storage(omega), rtol=2e-4)
    np.testing.assert_allclose(coefficients[1], unit * series.loss(omega), rtol=2e-4)


def test_elastic_limit_matches_linear_elastic() -> None:
    strain = _random_strains(3, 3, seed=7)
    model = Viscoelastic.isotropic(bulk=2.0, shear=0.7, strain_size=3)
    model.setup(3)
    reference = LinearElastic(isotropic_stiffness(bulk=2.0, shear=0.7, strain_size=3))
    for got, want in zip(model.evaluate(strain, time_step=5.0), reference.evaluate(strain)):
        np.testing.assert_allclose(got, want, rtol=1e-14)


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ConfigError, match="≥ 0"):
        PronySeries(1.0, [-0.1], [1.0])
    with pytest.raises(ConfigError, match="> 0"):
        PronySeries(1.0, [0.1], [0.0])
    with pytest.raises(ConfigError, match="same length"):
        PronySeries(1.0, [0.1, 0.2], [1.0])
    with pytest.raises(DataError, match="times must be finite and ≥ 0"):
        fit_prony([-1.0, 1.0, 2.0], [3.0, 2.0, 1.0])
    with pytest.raises(DataError, match="shape"):
        fit_prony([0.1, 1.0, 2.0], [3.0, 2.0])
    with pytest.raises(DataError, match="> 0"):
        fit_prony([0.1, 1.0, 2.0], [3.0, 0.0, 1.0])
    with pytest.raises(ConfigError, match="terms_per_decade"):
        fit_prony(TIMES, SERIES.relaxation(TIMES), terms_per_decade=0)
    with pytest.raises(ConfigError, match="strain size"):
        Viscoelastic(np.eye(4), np.zeros((0, 4, 4)), [])
    with pytest.raises(ConfigError, match="symmetric"):
        Viscoelastic(np.eye(3) + np.triu(np.ones((3, 3)), 1), np.zeros((0, 3, 3)), [])
    with pytest.raises(ConfigError, match="negative eigenvalue"):
        Viscoelastic(np.eye(3), -np.eye(3)[None] * 0.5, [1.0])
    with pytest.raises(ConfigError, match="different units"):
        Viscoelastic.isotropic(bulk=BULK, shear=PronySeries(1.0, [], [], unit="MPa"))
    model = Viscoelastic.from_prony(isotropic_stiffness(young=1.0, poisson=0.3), SERIES)
    with pytest.raises(ConfigError, match="setup"):
        model.evaluate(np.zeros((2, 6)))
    with pytest.raises(ConfigError, match="no trial"):
        model.commit()
    model.setup(2)
    with pytest.raises(ConfigError, match="expected"):
        model.evaluate(np.zeros((2, 3)))
    with pytest.raises(ConfigError, match="set up for 2 points"):
        model.evaluate(np.zeros((3, 6)))
    with pytest.raises(ConfigError, match="time_step"):
        model.evaluate(np.zeros((2, 6)), time_step=-1.0)
