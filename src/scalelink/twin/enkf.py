r"""Kalman filters in numpy: the exact linear filter and the ensemble Kalman filter.

:class:`KalmanFilter` is the textbook linear-Gaussian filter (Joseph-form update), the reference
the ensemble filter is tested against. :class:`EnsembleKalmanFilter` holds ``N`` state vectors
(rows of an ``(N, n)`` array) whose sample mean and covariance stand for the Gaussian
distribution of the state; a forecast moves every member with the model, an analysis moves them
towards an observation ``y = h(x) + v``, ``v ~ N(0, R)``. Two analyses:

``"stochastic"``
    The EnKF with perturbed observations (Burgers, van Leeuwen & Evensen 1998): every member is
    updated with ``K (y + v_i − h(x_i))``, ``K = P_xy (P_yy + R)⁻¹`` from the ensemble
    covariances, the ``v_i`` drawn from ``N(0, R)`` (centred by default, so that the analysis mean
    is exactly ``x̄ + K (y − ȳ)``).
``"sqrt"``
    The serial ensemble square-root filter (Whitaker & Hamill 2002): the observations, whitened
    by the Cholesky factor of ``R``, are taken one at a time; the mean moves with the Kalman
    gain and the anomalies with the reduced gain ``K/(1 + √(R/(HPHᵀ + R)))``, so the analysis
    covariance is exactly ``(I − KH) P`` of the ensemble's ``P``, with no sampling noise. The
    predicted observations ride along as extra state columns, so non-linear operators need one
    evaluation per analysis.

Both converge to the Kalman filter as ``N`` grows on a linear-Gaussian problem (tested, error
``∝ N^-½``). Options against the ills of small ensembles:

* **multiplicative inflation** ``λ``: the forecast anomalies ``x_i − x̄`` are scaled by ``λ``
  (the covariance by ``λ²``), one factor or one per state component;
* **localisation**: the covariances between a state component and an observation (and between
  observations) are multiplied elementwise by the Gaspari–Cohn taper of their distance
  (:func:`gaspari_cohn`), cutting the spurious long-range correlations of a small ensemble.
  Components without a position (parameters, global quantities) are not tapered.

Observation streams (:class:`Observation`) each have their own operator (a matrix or any
callable on the ensemble) and noise covariance, and may be assimilated in any order and at any
time: an analysis is one call of :meth:`EnsembleKalmanFilter.assimilate`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.linalg
import scipy.stats

from scalelink.bridge.errors import ConfigError, NonFiniteError

__all__ = [
    "AnalysisRecord",
    "EnsembleKalmanFilter",
    "KalmanFilter",
    "Localisation",
    "Observation",
    "chi2_band",
    "gaspari_cohn",
    "nees",
    "random_walk_steady_variance",
]

METHODS = ("stochastic", "sqrt")


# --- helpers ------------------------------------------------------------------------------------


def gaspari_cohn(distance: npt.ArrayLike, radius: float) -> np.ndarray:
    """Gaspari & Cohn (1999, QJRMS 125:723, eq. 4.10) compactly supported correlation taper.

    A fifth-order piecewise rational function of ``z = |d|/radius`` that is 1 at ``d = 0``,
    ``0.208`` at ``d = radius`` and exactly 0 for ``d ≥ 2·radius``; close to a Gaussian of
    standard deviation ``radius·√(3/10)`` and positive definite as a correlation function in up
    to three dimensions.

    Args:
        distance: distances (any shape, ≥ 0).
        radius: the half-width ``c > 0``; the support is ``2c``.
    """
    if not (math.isfinite(radius) and radius > 0.0):
        raise ConfigError(f"localisation radius must be finite and > 0, got {radius!r}")
    z = np.abs(np.asarray(distance, dtype=float)) / radius
    out = np.zeros_like(z)
    inner = z <= 1.0
    outer = (z > 1.0) & (z < 2.0)
    a = z[inner]
    out[inner] = -0.25 * a**5 + 0.5 * a**4 + 0.625 * a**3 - 5.0 / 3.0 * a**2 + 1.0
    b = z[outer]
    out[outer] = (b**5 / 12.0 - 0.5 * b**4 + 0.625 * b**3 + 5.0 / 3.0 * b**2 - 5.0 * b + 4.0
                  - 2.0 / (3.0 * b))
    return out


def random_walk_steady_variance(process: float, noise: float) -> tuple[float, float]:
    """Steady state of the Kalman filter of a scalar random walk observed directly.

    ``x_{k+1} = x_k + w``, ``w ~ N(0, Q)``; ``y_k = x_k + v``, ``v ~ N(0, R)``. The Riccati
    recursion ``P⁻ = P⁻R/(P⁻ + R) + Q`` has the positive root
    ``P⁻ = (Q + √(Q² + 4QR))/2``.

    Returns:
        ``(forecast variance P⁻, analysis variance P⁺ = P⁻ − Q)``.
    """
    q, r = float(process), float(noise)
    if not (q > 0.0 and r > 0.0):
        raise ConfigError(f"need Q > 0 and R > 0, got {process!r}, {noise!r}")
    prior = 0.5 * (q + math.sqrt(q * q + 4.0 * q * r))
    return prior, prior - q


def nees(error: npt.ArrayLike, covariance: npt.ArrayLike) -> float:
    """Normalised estimation error squared ``eᵀ P⁻¹ e``: χ² with ``len(e)`` degrees of freedom
    when the filter is consistent (its error has the covariance it reports)."""
    e = np.atleast_1d(np.asarray(error, dtype=float))
    p = np.atleast_2d(np.asarray(covariance, dtype=float))
    if p.shape != (e.size, e.size):
        raise ConfigError(f"error has {e.size} components but the covariance is {p.shape}")
    factor = scipy.linalg.cho_factor(p, lower=True)
    return float(e @ scipy.linalg.cho_solve(factor, e))


def chi2_band(dof: int, *, runs: int = 1, level: float = 0.95) -> tuple[float, float]:
    """Two-sided ``level`` band of a NEES (or NIS) with ``dof`` degrees of freedom, averaged over
    ``runs`` independent runs: the quantiles of ``χ²(dof·runs)/runs``."""
    if dof < 1 or runs < 1 or not 0.0 < level < 1.0:
        raise ConfigError(f"need dof ≥ 1, runs ≥ 1, 0 < level < 1; got {dof!r}, {runs!r}, {level!r}")
    tail = 0.5 * (1.0 - level)
    lo, hi = scipy.stats.chi2.ppf([tail, 1.0 - tail], dof * runs)
    return float(lo) / runs, float(hi) / runs


def _covariance_matrix(name: str, value: npt.ArrayLike, size: int | None) -> np.ndarray:
    """A symmetric positive semi-definite ``(p, p)`` matrix from a matrix, standard deviations
    ``(p,)`` or one standard deviation (needs ``size``)."""
    a = np.asarray(value, dtype=float)
    if a.ndim == 0:
        if size is None:
            raise ConfigError(f"{name}: one standard deviation given but the size is unknown")
        a = np.full(size, float(a))
    if a.ndim == 1:
        if np.any(a < 0.0) or not np.all(np.isfinite(a)):
            raise ConfigError(f"{name}: standard deviations must be finite and ≥ 0, got {a.tolist()}")
        a = np.diag(a**2)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or (size is not None and a.shape[0] != size):
        raise ConfigError(f"{name} has shape {a.shape}, expected ({size}, {size})")
    if not np.all(np.isfinite(a)) or not np.allclose(a, a.T, rtol=1e-12, atol=1e-300):
        raise ConfigError(f"{name} must be a finite symmetric matrix")
    if a.size and np.linalg.eigvalsh(a)[0] < -1e-12 * max(np.abs(a).max(), 1e-300):
        raise ConfigError(f"{name} is not positive semi-definite")
    return a


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    """``L`` with ``L Lᵀ = a`` for a positive semi-definite ``a`` (eigen-decomposition)."""
    w, v = np.linalg.eigh(a)
    return v * np.sqrt(np.clip(w, 0.0, None))


def _check_finite(name: str, a: np.ndarray) -> None:
    if not np.all(np.isfinite(a)):
        raise NonFiniteError(f"{name} holds NaN or inf values")


# --- observations and localisation ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Observation:
    """One observation stream: ``y = h(x) + v``, ``v ~ N(0, R)``.

    Args:
        name: label of the stream (in records and messages).
        operator: a matrix ``H`` ``(p, n)`` or a callable taking the ensemble ``(N, n)`` and
            returning the predicted observations ``(N, p)``.
        noise: ``R``: a covariance ``(p, p)``, standard deviations ``(p,)`` or one standard
            deviation for all ``p`` components.
        positions: coordinates ``(p, d)`` of the observations, for localisation; ``None`` (or a
            row of NaN) for an observation without a position, which is never tapered.
    """

    name: str
    operator: Any
    noise: Any
    positions: Any = None

    def __post_init__(self) -> None:
        if not callable(self.operator):
            h = np.asarray(self.operator, dtype=float)
            if h.ndim != 2:
                raise ConfigError(f"observation {self.name!r}: H has shape {h.shape}, expected (p, n)")
            object.__setattr__(self, "operator", h)
        if self.positions is not None:
            pos = np.asarray(self.positions, dtype=float)
            object.__setattr__(self, "positions", pos.reshape(pos.shape[0], -1) if pos.ndim else pos)

    @property
    def linear(self) -> bool:
        """Whether the operator is a matrix."""
        return not callable(self.operator)

    def predict(self, states: npt.ArrayLike) -> np.ndarray:
        """Predicted observations ``(N, p)`` of the ensemble ``states`` ``(N, n)``."""
        x = np.atleast_2d(np.asarray(states, dtype=float))
        if self.linear:
            if self.operator.shape[1] != x.shape[1]:
                raise ConfigError(
                    f"observation {self.name!r}: H has {self.operator.shape[1]} columns for a "
                    f"state of size {x.shape[1]}"
                )
            y = x @ self.operator.T
        else:
            y = np.asarray(self.operator(x), dtype=float)
            if y.ndim == 1 and x.shape[0] > 1 and y.shape[0] == x.shape[0]:
                y = y[:, None]
            y = np.atleast_2d(y)
            if y.shape[0] != x.shape[0]:
                raise ConfigError(
                    f"observation {self.name!r}: the operator returned {y.shape} for {x.shape[0]} "
                    "states; it must return one row of predicted observations per state"
                )
        _check_finite(f"predicted observations of {self.name!r}", y)
        return y

    def covariance(self, size: int) -> np.ndarray:
        """``R`` as a ``(size, size)`` matrix."""
        return _covariance_matrix(f"noise of observation {self.name!r}", self.noise, size)

    def observation_positions(self, size: int) -> np.ndarray | None:
        if self.positions is None:
            return None
        if self.positions.shape[0] != size:
            raise ConfigError(
                f"observation {self.name!r} has {self.positions.shape[0]} positions for {size} values"
            )
        return self.positions


@dataclasses.dataclass(frozen=True, eq=False)
class Localisation:
    """Gaspari–Cohn covariance localisation.

    Args:
        radius: half-width ``c`` of the taper (:func:`gaspari_cohn`); correlations beyond
            ``2c`` are cut to zero.
        state_positions: coordinates ``(n, d)`` of the state components; a row of NaN marks a
            component without a position (a parameter), which is never tapered.
        period: length of a periodic domain along each axis (scalar or ``(d,)``), or ``None``.
    """

    radius: float
    state_positions: Any
    period: Any = None

    def __post_init__(self) -> None:
        pos = np.asarray(self.state_positions, dtype=float)
        object.__setattr__(self, "state_positions", pos.reshape(pos.shape[0], -1))
        gaspari_cohn(0.0, self.radius)  # checks the radius

    def _distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        diff = np.abs(a[:, None, :] - b[None, :, :])
        if self.period is not None:
            period = np.broadcast_to(np.asarray(self.period, dtype=float), diff.shape[-1:])
            diff = np.minimum(diff, period - diff)
        return np.sqrt((diff**2).sum(axis=-1))

    def taper(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Taper ``(len(a), len(b))`` between two sets of positions; 1 where either is NaN."""
        if a.shape[1] != b.shape[1]:
            raise ConfigError(
                f"positions of dimension {a.shape[1]} and {b.shape[1]} cannot be compared; give "
                "state and observation positions in the same coordinates"
            )
        d = self._distance(a, b)
        rho = gaspari_cohn(np.nan_to_num(d, nan=0.0), self.radius)
        return np.where(np.isnan(d), 1.0, rho)


@dataclasses.dataclass(frozen=True)
class AnalysisRecord:
    """What one analysis saw, from the forecast ensemble.

    Attributes:
        name: the observation stream.
        innovation: ``y − ȳ`` (``ȳ``: mean predicted observation), shape ``(p,)``.
        innovation_covariance: ``S = P_yy + R`` of the forecast ensemble, ``(p, p)``.
        nis: normalised innovation squared ``νᵀ S⁻¹ ν`` (χ² with ``p`` dof when consistent).
        members: ensemble size of the analysis.
    """

    name: str
    innovation: np.ndarray
    innovation_covariance: np.ndarray
    nis: float
    members: int


# --- the exact filter -----------------------------------------------------------------------------


class KalmanFilter:
    """The linear-Gaussian Kalman filter.

    Args:
        mean: initial state mean ``(n,)``.
        covariance: initial covariance ``(n, n)``.
    """

    def __init__(self, mean: npt.ArrayLike, covariance: npt.ArrayLike) -> None:
        self.mean = np.array(mean, dtype=float, ndmin=1)
        self.covariance = _covariance_matrix("initial covariance", covariance, self.mean.size)

    def predict(
        self, transition: npt.ArrayLike, process_noise: npt.ArrayLike, offset: npt.ArrayLike | None = None
    ) -> None:
        """``x ← F x + b``, ``P ← F P Fᵀ + Q``."""
        n = self.mean.size
        f = np.asarray(transition, dtype=float).reshape(n, n)
        q = _covariance_matrix("process noise", process_noise, n)
        self.mean = f @ self.mean + (0.0 if offset is None else np.asarray(offset, dtype=float))
        self.covariance = f @ self.covariance @ f.T + q

    def update(self, value: npt.ArrayLike, operator: npt.ArrayLike, noise: npt.ArrayLike) -> AnalysisRecord:
        """Assimilate ``y = H x + v``, ``v ~ N(0, R)`` (Joseph form of the covariance update)."""
        y = np.atleast_1d(np.asarray(value, dtype=float))
        h = np.asarray(operator, dtype=float).reshape(y.size, self.mean.size)
        r = _covariance_matrix("observation noise", noise, y.size)
        s = h @ self.covariance @ h.T + r
        gain = scipy.linalg.cho_solve(scipy.linalg.cho_factor(s), h @ self.covariance).T
        innovation = y - h @ self.mean
        self.mean = self.mean + gain @ innovation
        a = np.eye(self.mean.size) - gain @ h
        self.covariance = a @ self.covariance @ a.T + gain @ r @ gain.T
        return AnalysisRecord("kalman", innovation, s, nees(innovation, s), 0)


# --- the ensemble filter --------------------------------------------------------------------------


class EnsembleKalmanFilter:
    """Ensemble Kalman filter (stochastic or serial square-root analysis).

    Args:
        ensemble: initial members ``(N, n)``, ``N ≥ 2``.
        method: ``"stochastic"`` (perturbed observations) or ``"sqrt"`` (serial square root).
        inflation: multiplicative inflation of the forecast anomalies, one factor ``λ ≥ 1`` or
            one per component ``(n,)``; applied by :meth:`forecast` and :meth:`inflate`.
        localisation: a :class:`Localisation` of the state components, or ``None``.
        seed: seed (or a ``numpy.random.Generator``) of the observation perturbations and
            process noise; the same seed gives the same analyses on every MPI rank.
        centre_perturbations: subtract the ensemble mean of the observation perturbations
            (stochastic method), so that the analysis mean is the Kalman update of the mean.
    """

    def __init__(
        self,
        ensemble: npt.ArrayLike,
        *,
        method: str = "stochastic",
        inflation: float | npt.ArrayLike = 1.0,
        localisation: Localisation | None = None,
        seed: int | np.random.Generator | None = 0,
        centre_perturbations: bool = True,
    ) -> None:
        if method not in METHODS:
            raise ConfigError(f"method {method!r} is not one of {list(METHODS)}")
        self.method = method
        self._x = np.empty((0, 0))
        self.set_ensemble(ensemble)
        self.inflation = inflation
        self._check_inflation(self.size_state)
        if localisation is not None and localisation.state_positions.shape[0] != self.size_state:
            raise ConfigError(
                f"localisation has {localisation.state_positions.shape[0]} state positions for a "
                f"state of size {self.size_state}"
            )
        self.localisation = localisation
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.centre_perturbations = bool(centre_perturbations)

    # -- the ensemble --

    @property
    def ensemble(self) -> np.ndarray:
        """The members ``(N, n)`` (a copy)."""
        return self._x.copy()

    def set_ensemble(self, ensemble: npt.ArrayLike) -> None:
        """Replace the members, e.g. after a forecast made outside the filter."""
        x = np.array(ensemble, dtype=float, ndmin=2)
        if x.ndim != 2 or x.shape[0] < 2:
            raise ConfigError(f"an ensemble needs at least 2 members as rows (N, n), got shape {x.shape}")
        _check_finite("ensemble", x)
        self._x = x

    @property
    def size(self) -> int:
        """Number of members ``N``."""
        return int(self._x.shape[0])

    @property
    def size_state(self) -> int:
        """State dimension ``n``."""
        return int(self._x.shape[1])

    @property
    def mean(self) -> np.ndarray:
        return self._x.mean(axis=0)

    @property
    def covariance(self) -> np.ndarray:
        """Sample covariance ``(n, n)`` (divisor ``N − 1``)."""
        a = self._x - self._x.mean(axis=0)
        return a.T @ a / (self.size - 1)

    @property
    def std(self) -> np.ndarray:
        return self._x.std(axis=0, ddof=1)

    def _check_inflation(self, n: int) -> np.ndarray:
        lam = np.asarray(self.inflation, dtype=float)
        if lam.ndim > 1 or (lam.ndim == 1 and lam.size != n) or not np.all(np.isfinite(lam)) or np.any(lam <= 0):
            raise ConfigError(
                f"inflation must be a positive number or {n} positive numbers, got {self.inflation!r}"
            )
        return lam

    def inflate(self, factor: float | npt.ArrayLike | None = None) -> None:
        """Scale the anomalies by ``factor`` (default: the filter's inflation)."""
        lam = self._check_inflation(self.size_state) if factor is None else np.asarray(factor, dtype=float)
        mean = self.mean
        self._x = mean + (self._x - mean) * lam

    def forecast(
        self,
        model: Callable[[np.ndarray], np.ndarray] | None = None,
        process_noise: npt.ArrayLike | None = None,
    ) -> None:
        """Move every member: ``x_i ← model(X)_i + w_i``, ``w_i ~ N(0, Q)``, then inflate.

        Args:
            model: maps the ensemble ``(N, n)`` to the forecast ensemble; ``None`` keeps it.
            process_noise: ``Q`` ``(n, n)`` (or standard deviations ``(n,)``); ``None``: none.
        """
        x = self._x if model is None else np.asarray(model(self._x.copy()), dtype=float)
        if x.shape != self._x.shape:
            raise ConfigError(f"the model returned shape {x.shape} for an ensemble of shape {self._x.shape}")
        if process_noise is not None:
            q = _covariance_matrix("process noise", process_noise, self.size_state)
            x = x + self.rng.standard_normal(x.shape) @ _psd_sqrt(q).T
        self.set_ensemble(x)
        self.inflate()

    def drop(self, members: npt.ArrayLike) -> None:
        """Remove the members at the given row indices."""
        keep = np.setdiff1d(np.arange(self.size), np.asarray(members, dtype=int))
        self.set_ensemble(self._x[keep])

    # -- analysis --

    def _tapers(self, observation: Observation, p: int) -> tuple[np.ndarray, np.ndarray] | None:
        if self.localisation is None:
            return None
        pos = observation.observation_positions(p)
        if pos is None:
            return None
        return (self.localisation.taper(self.localisation.state_positions, pos),
                self.localisation.taper(pos, pos))

    def assimilate(self, observation: Observation, value: npt.ArrayLike) -> AnalysisRecord:
        """Analysis with one observation vector ``y`` of ``observation``.

        Returns:
            The innovation statistics of the forecast ensemble.
        """
        y = np.atleast_1d(np.asarray(value, dtype=float))
        _check_finite(f"observation {observation.name!r}", y)
        x = self._x
        predicted = observation.predict(x)
        n, p = x.shape[1], predicted.shape[1]
        if y.shape != (p,):
            raise ConfigError(f"observation {observation.name!r} has {y.size} values, its operator predicts {p}")
        r = observation.covariance(p)
        b = predicted - predicted.mean(axis=0)
        s = b.T @ b / (self.size - 1) + r
        innovation = y - predicted.mean(axis=0)
        record = AnalysisRecord(observation.name, innovation, s, nees(innovation, s), self.size)
        tapers = self._tapers(observation, p)
        if self.method == "stochastic":
            self._x = self._stochastic(x, predicted, y, r, tapers)
        else:
            self._x = self._square_root(x, predicted, y, r, tapers)
        _check_finite("analysis ensemble", self._x)
        return record

    def _stochastic(self, x: np.ndarray, predicted: np.ndarray, y: np.ndarray, r: np.ndarray,
                    tapers: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
        count = x.shape[0]
        a = x - x.mean(axis=0)
        b = predicted - predicted.mean(axis=0)
        pxy = a.T @ b / (count - 1)
        pyy = b.T @ b / (count - 1)
        if tapers is not None:
            pxy, pyy = pxy * tapers[0], pyy * tapers[1]
        gain = scipy.linalg.cho_solve(scipy.linalg.cho_factor(pyy + r), pxy.T).T
        perturbations = self.rng.standard_normal(predicted.shape) @ _psd_sqrt(r).T
        if self.centre_perturbations:
            perturbations -= perturbations.mean(axis=0)
        return x + (y + perturbations - predicted) @ gain.T

    def _square_root(self, x: np.ndarray, predicted: np.ndarray, y: np.ndarray, r: np.ndarray,
                     tapers: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
        count, n = x.shape
        p = y.size
        diagonal = np.allclose(r, np.diag(np.diag(r)), rtol=0.0, atol=0.0)
        if tapers is not None and not diagonal:
            raise ConfigError(
                "the square-root analysis with localisation needs uncorrelated observation errors "
                "(a diagonal R); use method='stochastic' or split the observation"
            )
        lower = np.linalg.cholesky(r)
        # Whitened observations: unit noise, taken one at a time.
        yw = scipy.linalg.solve_triangular(lower, y, lower=True)
        hw = scipy.linalg.solve_triangular(lower, predicted.T, lower=True).T
        z = np.concatenate([x, hw], axis=1)
        for j in range(p):
            mean = z.mean(axis=0)
            anomalies = z - mean
            b = anomalies[:, n + j]
            hph = float(b @ b) / (count - 1)
            total = hph + 1.0
            cov = anomalies.T @ b / (count - 1)
            if tapers is not None:
                cov = cov * np.concatenate([tapers[0][:, j], tapers[1][:, j]])
            gain = cov / total
            alpha = 1.0 / (1.0 + math.sqrt(1.0 / total))
            z = mean + gain * (yw[j] - mean[n + j]) + anomalies - alpha * np.outer(b, gain)
        return z[:, :n]
