"""Kennedy–O'Hagan AR1 co-kriging: a high-fidelity response as ρ × low fidelity + discrepancy.

The autoregressive model of Kennedy & O'Hagan (2000), in the recursive form of Le Gratiet
(2013)::

    f_high(x) = ρ f_low(x) + β + γᵀ g(x) + δ(x),     δ ~ GP(0, k_δ),   independent of f_low

The low fidelity is either a Gaussian process fitted to many cheap runs (mean ``μ_L``, standard
deviation ``s_L``) or a cheap closed-form model evaluated exactly (``s_L = 0``). ``g`` are optional
extra trend functions (none by default; see "Trend functions" below). Given the kernel ``k_δ``, the
regression coefficients ``b = (ρ, β, γ)`` on the regressors ``F = [f_low(x_H), 1, g(x_H)]`` are
the generalised least-squares estimates ``b = (Fᵀ K⁻¹ F)⁻¹ Fᵀ K⁻¹ y_H``, which maximise the
likelihood for that kernel. Substituting them leaves a profile likelihood of the kernel
hyperparameters ``θ`` (amplitude, length scales, nugget of a scikit-learn kernel)::

    ℓ(θ) = −½ rᵀ K⁻¹ r − ½ log|K| − (n/2) log 2π,   r = y_H − F b(θ)

whose gradient, since ``b`` is optimal, is that at fixed ``b``: ``½ tr((ααᵀ − K⁻¹) ∂K/∂θ)``,
``α = K⁻¹ r``. It is maximised with L-BFGS-B from the default and ``restarts`` random starts.
At the high-fidelity points ``f_low`` is the low GP's mean, also where a low run sits at the
same ``x``: for a deterministic low fidelity the GP interpolates its runs, and for a noisy one
(random configurations, finite cells) the mean is the better estimate.

Prediction at ``x`` with ``f = (μ_L(x), 1, g(x))``, ``k = k_δ(x, X_H)``, ``u = f − Fᵀ K⁻¹ k``::

    mean = ρ μ_L(x) + β + kᵀ K⁻¹ (y_H − F b)
    var  = ρ² s_L(x)² + k_δ(x, x) − kᵀ K⁻¹ k + uᵀ (Fᵀ K⁻¹ F)⁻¹ u

(the last term is the universal-kriging share of the uncertainty in ``ρ``, ``β`` and ``γ``). The
variance includes the fitted nugget, so intervals are those of a new high-fidelity run.

The discrepancy's kernel is by default a Matérn-3/2 (the response's own GPs use Matérn-5/2): a
cheap model's error is often rougher than the response (it grows where the cheap model's
assumptions break, e.g. fibres about to touch), and the once-differentiable kernel lets the
variance grow faster away from the runs. ``discrepancy_smoothness=0.5`` (the exponential
kernel, continuous but nowhere differentiable) is for a discrepancy that is a random walk along
an input: the relaxation term of a random alloy's elastic constants with one nested site
ordering, say, where every added solute atom changes the term by a random amount. Its length
scales are at most ``longest_length_scale`` (inputs scaled to [0, 1]; default 3). With a
handful of runs the likelihood cannot tell a length scale beyond their spacing from an infinite
one and often takes the longest allowed, which claims the discrepancy known far from every run;
a bound of about half the box (0.5) keeps the intervals honest there, but also bends a
discrepancy that is truly a smooth trend into ``ρ`` (on the Forrester pair, whose discrepancy is
linear, ``ρ̂`` falls from 1.94 to 1.65).

With a handful of high runs the maximum-likelihood kernel is often overconfident (a length
scale at its bound, a vanishing nugget), so by default the discrepancy's variance is rescaled by
the cross-validation estimate of the variance parameter (Bachoc 2013): the mean squared
standardised leave-one-out residual, which is 1 when the likelihood's variance describes the
runs' own scatter about the other runs. The leave-one-out prediction re-estimates ``ρ``, ``β``
and ``γ`` without the run left out (Dubrule 1983), so its residual and variance come from the
projected precision ``Q = K⁻¹ − K⁻¹F (Fᵀ K⁻¹ F)⁻¹ Fᵀ K⁻¹`` (``α = Q y_H``)::

    e_i = α_i / Q_ii,   var e_i = 1 / Q_ii,   scale = (1/n) Σ α_i² / Q_ii

With the fixed-``(ρ, β)`` diagonal ``(K⁻¹)_ii`` instead, ``Q_ii ≤ (K⁻¹)_ii`` makes the
residuals look smaller than they are, most with few runs.

A variance scale estimated from ``n`` runs, ``p`` of whose degrees of freedom went into the
regression coefficients (``p = 2`` for ``ρ`` and ``β``, plus one per trend function), makes the
discrepancy's predictive a Student-t with ``ν = n − p`` degrees of freedom rather than a
Gaussian. The low fidelity's GP share stays Gaussian; the sum is given the Welch–Satterthwaite
degrees of freedom ``ν (s_L² + s_δ²)² / s_δ⁴`` (``s_L²`` the low share, ``s_δ²`` the
discrepancy's), so that :meth:`FusedPrediction.interval` uses Gaussian quantiles where the low
fidelity's uncertainty dominates and those of ``t_{n−p}`` where the discrepancy's does.

Trend functions. Where the cheap model's error has a known shape, it belongs in the trend rather
than in the stationary GP, which assumes it equally likely everywhere. An example is an
atomistic RVE against its unrelaxed (affine, Cauchy–Born) counterpart: relaxing a random alloy
spreads the atoms' local volumes about the affine cell's, so the relaxed response is roughly the
affine one averaged over a narrow spread of volumetric strain, ``E[f_low(ε_v + s Z)] ≈ f_low +
(s²/2) ∂²f_low/∂ε_v²``, and shifted by the mean change of volume (``∂f_low/∂ε_v``). Where the
affine response bends sharply (a class of atoms crossing a kink of an embedding function), so
does the discrepancy, in a narrow band the few high runs rarely sample. The strain derivatives
of the cheap model, themselves cheap, as ``g`` put that band where the physics says it is. Each
trend function costs one degree of freedom of the intervals (``ν = n − p``), so they pay only
where they explain much of the discrepancy. A cheap model without the artefact is better still:
for the alloy, the clamped-ion constants about a relaxed reference (``docs/multifidelity.md``).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import scipy.linalg
import scipy.optimize
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Kernel, Matern, WhiteKernel

from scalelink.bridge.errors import ConfigError, DataError

__all__ = ["AR1CoKriging", "FusedPrediction", "fit_gaussian_process", "check_samples"]

LowModel = Callable[[np.ndarray], npt.ArrayLike]
TrendFunctions = Callable[[np.ndarray], npt.ArrayLike]

DISCREPANCY_NU = 1.5  # the discrepancy's default Matérn smoothness (module docstring)


def check_samples(x: npt.ArrayLike, y: npt.ArrayLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x (n, d), y (n,))`` as float arrays, or a :class:`DataError` naming ``name``.

    ``x`` may be ``(n,)`` for one input dimension.
    """
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    if xa.ndim == 1:
        xa = xa[:, None]
    if xa.ndim != 2 or ya.ndim != 1:
        raise DataError(
            f"{name}: inputs must be (n, d) or (n,) and outputs (n,), got shapes {xa.shape} and {ya.shape}"
        )
    if xa.shape[0] == 0:
        raise DataError(f"{name}: no samples; give at least two runs")
    if xa.shape[0] != ya.shape[0]:
        raise DataError(
            f"{name}: {xa.shape[0]} inputs but {ya.shape[0]} outputs; give one output per input row"
        )
    if not (np.isfinite(xa).all() and np.isfinite(ya).all()):
        raise DataError(f"{name}: NaN or inf among the samples; drop failed runs before fitting")
    return xa, ya


def _negative_profile_likelihood(
    theta: np.ndarray, kernel: Kernel, x: np.ndarray, y: np.ndarray, regressors: np.ndarray
) -> tuple[float, np.ndarray]:
    """``−ℓ(θ)`` and its gradient, with ``(ρ, β)`` at their GLS optimum (module docstring)."""
    cov, cov_gradient = kernel.clone_with_theta(theta)(x, eval_gradient=True)
    try:
        factor = scipy.linalg.cho_factor(cov, lower=True)
    except np.linalg.LinAlgError:
        return np.inf, np.zeros_like(theta)
    kf = scipy.linalg.cho_solve(factor, regressors)
    b = np.linalg.solve(regressors.T @ kf, kf.T @ y)
    alpha = scipy.linalg.cho_solve(factor, y - regressors @ b)
    log_det = 2.0 * np.log(np.diag(factor[0])).sum()
    value = 0.5 * (y - regressors @ b) @ alpha + 0.5 * log_det + 0.5 * y.size * np.log(2.0 * np.pi)
    inner = np.outer(alpha, alpha) - scipy.linalg.cho_solve(factor, np.eye(y.size))
    gradient = -0.5 * np.einsum("ij,jik->k", inner, cov_gradient)
    return float(value), gradient


def _kernel(dim: int, scale: float, *, nu: float = 2.5, longest: float = 3.0) -> Kernel:
    """Amplitude × Matérn-``nu`` (one length scale per input, at most ``longest``, inputs scaled
    to [0, 1]) + nugget."""
    return (
        ConstantKernel(scale, (1e-6 * scale, 1e4 * scale))
        * Matern(length_scale=np.full(dim, 0.3), length_scale_bounds=(1e-2, longest), nu=nu)
        + WhiteKernel(1e-6 * scale, (1e-12 * scale, 1e-1 * scale))
    )


def fit_gaussian_process(
    x: npt.ArrayLike, y: npt.ArrayLike, *, restarts: int = 5, seed: int = 0
) -> GaussianProcessRegressor:
    """A scikit-learn GP of ``y(x)``: Matérn-5/2 with one length scale per input, a fitted nugget,
    normalised outputs; hyperparameters by maximum likelihood with ``restarts`` extra starts.

    This is the single-fidelity GP the co-kriging uses for the low fidelity and the one it is
    compared with. Inputs should be of order one (scale them to the unit box).
    """
    xa, ya = check_samples(x, y, "GP samples")
    gp = GaussianProcessRegressor(
        _kernel(xa.shape[1], 1.0), normalize_y=True, n_restarts_optimizer=restarts, random_state=seed
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gp.fit(xa, ya)
    return gp


@dataclasses.dataclass(frozen=True)
class FusedPrediction:
    """Predictions of an :class:`AR1CoKriging` at ``n`` points.

    Attributes:
        mean: ``(n,)`` predictive mean of the high fidelity.
        std: ``(n,)`` predictive standard deviation (same unit as the outputs).
        degrees_of_freedom: ``(n,)`` of the Student-t whose quantiles :meth:`interval` uses
            (``inf``: Gaussian); see the module docstring.
    """

    mean: np.ndarray
    std: np.ndarray
    degrees_of_freedom: np.ndarray | None = None

    def interval(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of the central interval of probability ``level``: ``mean ± q std``
        with ``q`` the Student-t quantile of :attr:`degrees_of_freedom` (Gaussian where infinite)."""
        from scipy.stats import norm, t

        if not 0.0 < level < 1.0:
            raise ConfigError(f"interval level must lie in (0, 1), got {level!r}")
        p = 0.5 + level / 2.0
        q = np.full(self.mean.shape, float(norm.ppf(p)))
        if self.degrees_of_freedom is not None:
            finite = np.isfinite(self.degrees_of_freedom)
            q[finite] = t.ppf(p, self.degrees_of_freedom[finite])
        return self.mean - q * self.std, self.mean + q * self.std


class AR1CoKriging:
    """Two-level AR1 co-kriging (Kennedy–O'Hagan) with GP discrepancy and predictive variance.

    Args:
        restarts: extra random starts of each hyperparameter fit.
        seed: seed of the hyperparameter restarts.
        calibrate: scale the discrepancy's variance by its leave-one-out estimate and give
            it ``n − 2`` degrees of freedom (module docstring); ``False`` keeps the
            maximum-likelihood variance and Gaussian intervals.
        longest_length_scale: upper bound of the discrepancy's length scales, inputs scaled to
            the unit box of the runs (module docstring).
        discrepancy_smoothness: ``ν`` of the discrepancy's Matérn kernel, 0.5, 1.5 or 2.5
            (module docstring).

    Attributes (after :meth:`fit`):
        rho: the scale factor ``ρ`` between the fidelities.
        beta: the constant offset ``β``.
        trend_coefficients: ``γ`` of the trend functions ``(m,)`` (empty without ``trend``).
        variance_factor: the leave-one-out scale of the discrepancy's variance (1 without
            ``calibrate``).
        degrees_of_freedom: ``n − p`` of the discrepancy's Student-t, ``p`` the number of
            regression coefficients (``inf`` without ``calibrate``).
    """

    def __init__(
        self, *, restarts: int = 5, seed: int = 0, calibrate: bool = True, longest_length_scale: float = 3.0,
        discrepancy_smoothness: float = DISCREPANCY_NU,
    ) -> None:
        if restarts < 0:
            raise ConfigError(f"need restarts >= 0, got {restarts!r}")
        if not (np.isfinite(longest_length_scale) and longest_length_scale > 0.01):
            raise ConfigError(f"longest_length_scale must be a number above 0.01, got {longest_length_scale!r}")
        self.restarts, self.seed, self.calibrate = int(restarts), int(seed), bool(calibrate)
        if discrepancy_smoothness not in (0.5, 1.5, 2.5):
            raise ConfigError(
                f"discrepancy_smoothness must be 0.5, 1.5 or 2.5 (the Matérn ν), got {discrepancy_smoothness!r}"
            )
        self.longest_length_scale = float(longest_length_scale)
        self.discrepancy_smoothness = float(discrepancy_smoothness)
        self._fitted = False

    # ---- scaling of the inputs to the unit box of the data -------------------------------
    def _scaled(self, x: npt.ArrayLike) -> np.ndarray:
        xa = np.asarray(x, dtype=float)
        if xa.ndim == 1 and self._dim == 1:
            xa = xa[:, None]
        if xa.ndim != 2 or xa.shape[1] != self._dim:
            raise DataError(f"inputs have shape {xa.shape}, expected (n, {self._dim})")
        if not np.isfinite(xa).all():
            raise DataError("inputs contain NaN or inf")
        return (xa - self._lower) / self._span

    def fit(
        self,
        x_high: npt.ArrayLike,
        y_high: npt.ArrayLike,
        *,
        x_low: npt.ArrayLike | None = None,
        y_low: npt.ArrayLike | None = None,
        low_model: LowModel | None = None,
        trend: TrendFunctions | None = None,
    ) -> AR1CoKriging:
        """Fit to high-fidelity runs and either low-fidelity runs or a low-fidelity function.

        Args:
            x_high: inputs of the high-fidelity runs ``(n_H, d)`` (or ``(n_H,)``).
            y_high: their outputs ``(n_H,)``.
            x_low: inputs of the low-fidelity runs ``(n_L, d)``; with ``y_low``.
            y_low: their outputs ``(n_L,)``.
            low_model: instead of runs, a cheap function ``(n, d) -> (n,)`` evaluated exactly.
            trend: extra regressors ``g``, a function ``(n, d) -> (n, m)`` of the inputs (in
                their own units) whose coefficients ``γ`` are fitted with ``ρ`` and ``β``
                (module docstring, "Trend functions"); ``None``: none.

        Returns:
            ``self``.
        """
        xh, yh = check_samples(x_high, y_high, "high-fidelity runs")
        if (low_model is None) == (x_low is None or y_low is None):
            raise ConfigError(
                "give the low fidelity either as runs (x_low and y_low) or as a function (low_model), not both or neither"
            )
        if trend is not None and not callable(trend):
            raise ConfigError(f"trend must be a function of the inputs (n, d) -> (n, m) or None, got {trend!r}")
        self._dim = xh.shape[1]
        self.low_model, self.trend = low_model, trend
        extra = self._trend_values(xh)
        if xh.shape[0] < 3 + extra.shape[1]:
            raise DataError(
                f"high-fidelity runs: {xh.shape[0]} given, at least {3 + extra.shape[1]} are needed to fit ρ, β, "
                f"{extra.shape[1]} trend coefficient(s) and a GP"
            )
        points = xh
        if low_model is None:
            xl, yl = check_samples(x_low, y_low, "low-fidelity runs")
            if xl.shape[1] != self._dim:
                raise DataError(
                    f"low-fidelity inputs have {xl.shape[1]} columns, high-fidelity inputs {self._dim}; "
                    "both must describe the same design variables"
                )
            points = np.vstack([xh, xl])
        self._lower = points.min(axis=0)
        span = points.max(axis=0) - self._lower
        self._span = np.where(span > 0.0, span, 1.0)
        sh = self._scaled(xh)
        if low_model is None:
            sl = self._scaled(xl)
            self.low_gp = fit_gaussian_process(sl, yl, restarts=self.restarts, seed=self.seed)
            low_at_high = self.low_gp.predict(sh)
        else:
            low_at_high = self._low_exact(xh)
        self._fit_discrepancy(sh, yh, low_at_high, extra)
        self._fitted = True
        return self

    def _trend_values(self, x: np.ndarray) -> np.ndarray:
        """The trend functions at inputs ``x`` (own units) as ``(n, m)``; ``(n, 0)`` without a trend."""
        if self.trend is None:
            return np.zeros((x.shape[0], 0))
        try:
            values = np.asarray(self.trend(x), dtype=float)
        except Exception as exc:
            raise DataError(f"the trend functions failed on {x.shape[0]} inputs: {type(exc).__name__}: {exc}") from exc
        columns = values[:, None] if values.ndim == 1 else values
        if columns.ndim != 2 or columns.shape[0] != x.shape[0] or not np.isfinite(columns).all():
            raise DataError(
                f"the trend functions must return finite values of shape ({x.shape[0]}, m) for inputs of shape "
                f"{x.shape}, got shape {values.shape}" + ("" if np.isfinite(values).all() else " with NaN or inf")
            )
        return columns

    def _low_exact(self, x: np.ndarray) -> np.ndarray:
        assert self.low_model is not None
        try:
            values = np.asarray(self.low_model(x), dtype=float).reshape(-1)
        except Exception as exc:
            raise DataError(f"the low-fidelity function failed on {x.shape[0]} inputs: {type(exc).__name__}: {exc}") from exc
        if values.shape != (x.shape[0],) or not np.isfinite(values).all():
            raise DataError(
                f"the low-fidelity function must return {x.shape[0]} finite values for inputs of shape {x.shape}, "
                f"got shape {values.shape}"
            )
        return values

    def _fit_discrepancy(self, sh: np.ndarray, yh: np.ndarray, low: np.ndarray, extra: np.ndarray) -> None:
        regressors = np.column_stack([low, np.ones_like(low), extra])
        if np.linalg.matrix_rank(regressors[:, :2]) < 2:
            raise DataError(
                "the low fidelity takes one value at every high-fidelity point, so ρ and β cannot be told apart; "
                "place the high-fidelity runs where the low fidelity varies"
            )
        if np.linalg.matrix_rank(regressors) < regressors.shape[1]:
            raise DataError(
                f"the {extra.shape[1]} trend function(s) are linearly dependent on the low fidelity and the constant "
                "at the high-fidelity points, so their coefficients cannot be fitted; drop the redundant ones or add "
                "high-fidelity runs where they differ"
            )
        ols = np.linalg.lstsq(regressors, yh, rcond=None)[0]
        scale = float(np.var(yh - regressors @ ols)) or float(np.var(yh)) or 1.0
        kernel = _kernel(sh.shape[1], scale, nu=self.discrepancy_smoothness, longest=self.longest_length_scale)
        bounds = kernel.bounds
        rng = np.random.default_rng(self.seed)
        starts = [kernel.theta] + [rng.uniform(bounds[:, 0], bounds[:, 1]) for _ in range(self.restarts)]
        best = None
        for start in starts:
            result = scipy.optimize.minimize(
                _negative_profile_likelihood, start, args=(kernel, sh, yh, regressors), jac=True,
                method="L-BFGS-B", bounds=bounds,
            )
            if np.isfinite(result.fun) and (best is None or result.fun < best.fun):
                best = result
        if best is None:
            raise DataError("the discrepancy GP could not be fitted (singular covariance at every start)")
        self.delta_kernel = kernel.clone_with_theta(best.x)
        self.log_likelihood = -float(best.fun)
        cov = self.delta_kernel(sh)
        factor = scipy.linalg.cho_factor(cov, lower=True)
        kf = scipy.linalg.cho_solve(factor, regressors)
        gram = regressors.T @ kf
        coefficients = np.linalg.solve(gram, kf.T @ yh)
        self.rho, self.beta = float(coefficients[0]), float(coefficients[1])
        self.trend_coefficients = coefficients[2:].copy()
        self._points, self._regressors, self._factor = sh, regressors, factor
        self._alpha = scipy.linalg.cho_solve(factor, yh - regressors @ coefficients)
        self._gram_inv = np.linalg.inv(gram)
        # leave-one-out residuals e_i = α_i / Q_ii with variances 1 / Q_ii, ρ, β and γ refitted (Q: module docstring)
        projected = scipy.linalg.cho_solve(factor, np.eye(yh.size)) - kf @ self._gram_inv @ kf.T
        self.variance_factor = float(np.mean(self._alpha**2 / np.diag(projected))) if self.calibrate else 1.0
        self.degrees_of_freedom = yh.size - regressors.shape[1] if self.calibrate else np.inf

    def low(self, x: npt.ArrayLike) -> FusedPrediction:
        """The low fidelity at ``x``: GP mean and standard deviation, or the exact function (std 0)."""
        self._require_fit()
        s = self._scaled(x)
        if self.low_model is not None:
            xa = s * self._span + self._lower
            return FusedPrediction(self._low_exact(xa), np.zeros(s.shape[0]))
        mean, std = self.low_gp.predict(s, return_std=True)
        return FusedPrediction(mean, std)

    def predict(self, x: npt.ArrayLike) -> FusedPrediction:
        """High-fidelity mean and standard deviation at inputs ``x`` ``(n, d)`` (or ``(n,)``)."""
        self._require_fit()
        s = self._scaled(x)
        low = self.low(x)
        cross = self.delta_kernel(s, self._points)
        solved = scipy.linalg.cho_solve(self._factor, cross.T)
        f = np.column_stack([low.mean, np.ones(s.shape[0]), self._trend_values(s * self._span + self._lower)])
        u = f - solved.T @ self._regressors
        mean = f @ np.concatenate([[self.rho, self.beta], self.trend_coefficients]) + cross @ self._alpha
        var_low = self.rho**2 * low.std**2
        var_delta = self.variance_factor * np.maximum(
            self.delta_kernel.diag(s)
            - np.einsum("ij,ji->i", cross, solved)
            + np.einsum("ij,jk,ik->i", u, self._gram_inv, u),
            0.0,
        )
        var = var_low + var_delta
        # Welch–Satterthwaite: t_ν discrepancy plus Gaussian low share (module docstring)
        with np.errstate(divide="ignore", invalid="ignore"):
            dof = np.where(var_delta > 0.0, self.degrees_of_freedom * var**2 / var_delta**2, np.inf)
        return FusedPrediction(mean, np.sqrt(var), dof)

    def _require_fit(self) -> None:
        if not self._fitted:
            raise ConfigError("the co-kriging model is not fitted; call fit(...) first")
