r"""Prony series of linear viscoelastic moduli and their fit to measured data.

A Prony series (generalized Maxwell model) describes a relaxation modulus as

.. math::

    E(t) = E_\infty + \sum_{i=1}^N E_i \, e^{-t/\tau_i},

with long-term (rubbery) modulus :math:`E_\infty \ge 0`, term moduli :math:`E_i \ge 0` and
relaxation times :math:`\tau_i > 0`; the instantaneous (glassy) modulus is
:math:`E_0 = E_\infty + \sum_i E_i`. Under a harmonic strain of angular frequency
:math:`\omega` the storage and loss moduli are

.. math::

    E'(\omega) = E_\infty + \sum_i E_i \frac{\omega^2\tau_i^2}{1 + \omega^2\tau_i^2},
    \qquad
    E''(\omega) = \sum_i E_i \frac{\omega\tau_i}{1 + \omega^2\tau_i^2}.

:func:`fit_prony` identifies a series from relaxation data (and :func:`fit_prony_frequency` from
dynamic data) by non-negative least squares on a fixed grid of log-spaced relaxation times, which
keeps the fit linear, always converges and yields a thermodynamically admissible series (no
negative moduli). The same series may describe a Young's, shear or bulk modulus; the unit is the
caller's (``unit``) and times are in any one unit used consistently (``frequency`` in rad per that
unit).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import scipy.optimize

from scalelink.bridge.errors import ConfigError, DataError

__all__ = [
    "PronyFit",
    "PronySeries",
    "fit_prony",
    "fit_prony_frequency",
    "relaxation_time_grid",
    "stretched_exponential_modulus",
]


# eq=False: fields are arrays, whose == is elementwise.
@dataclasses.dataclass(frozen=True, eq=False)
class PronySeries:
    """A Prony series ``E(t) = E_∞ + Σ E_i exp(−t/τ_i)``.

    Args:
        long_term_modulus: ``E_∞ ≥ 0`` (stress unit ``unit``).
        moduli: term moduli ``E_i ≥ 0``, shape ``(N,)`` (``N = 0`` is an elastic material).
        relaxation_times: ``τ_i > 0``, shape ``(N,)`` (time unit of the data).
        unit: stress unit of the moduli, e.g. ``"GPa"``.
    """

    long_term_modulus: float
    moduli: np.ndarray
    relaxation_times: np.ndarray
    unit: str = "GPa"

    def __post_init__(self) -> None:
        e_inf = float(self.long_term_modulus)
        moduli = np.array(self.moduli, dtype=np.float64, ndmin=1)
        taus = np.array(self.relaxation_times, dtype=np.float64, ndmin=1)
        if moduli.ndim != 1 or taus.shape != moduli.shape:
            raise ConfigError(
                f"Prony moduli have shape {moduli.shape} and relaxation times {taus.shape}; "
                "expected two 1D arrays of the same length (one relaxation time per term)"
            )
        if not (math.isfinite(e_inf) and e_inf >= 0.0):
            raise ConfigError(
                f"long-term modulus {self.long_term_modulus!r} must be finite and ≥ 0"
            )
        if not np.all(np.isfinite(moduli)) or np.any(moduli < 0.0):
            raise ConfigError(
                f"Prony moduli must be finite and ≥ 0, got {moduli.tolist()}; a negative term "
                "makes the material create energy (fit with fit_prony, which enforces ≥ 0)"
            )
        if not np.all(np.isfinite(taus)) or np.any(taus <= 0.0):
            raise ConfigError(f"relaxation times must be finite and > 0, got {taus.tolist()}")
        if e_inf + moduli.sum() <= 0.0:
            raise ConfigError("the Prony series is identically zero; give at least one modulus > 0")
        moduli.setflags(write=False)
        taus.setflags(write=False)
        object.__setattr__(self, "long_term_modulus", e_inf)
        object.__setattr__(self, "moduli", moduli)
        object.__setattr__(self, "relaxation_times", taus)

    @property
    def num_terms(self) -> int:
        """Number ``N`` of exponential terms."""
        return int(self.moduli.size)

    @property
    def instantaneous_modulus(self) -> float:
        """Glassy modulus ``E_0 = E(0) = E_∞ + Σ E_i``."""
        return float(self.long_term_modulus + self.moduli.sum())

    @property
    def relative_moduli(self) -> np.ndarray:
        """Normalised weights ``g_i = E_i / E_0``, shape ``(N,)``."""
        return self.moduli / self.instantaneous_modulus

    def relaxation(self, times: npt.ArrayLike) -> np.ndarray:
        """Relaxation modulus ``E(t)`` at ``times ≥ 0`` (any shape; same shape out)."""
        t = _nonnegative("times", times)
        decay = np.exp(-t[..., None] / self.relaxation_times)
        return self.long_term_modulus + decay @ self.moduli

    def storage(self, frequency: npt.ArrayLike) -> np.ndarray:
        """Storage modulus ``E'(ω)`` at angular frequencies ``ω ≥ 0`` (rad per time unit)."""
        x2 = (_nonnegative("frequency", frequency)[..., None] * self.relaxation_times) ** 2
        return self.long_term_modulus + (x2 / (1.0 + x2)) @ self.moduli

    def loss(self, frequency: npt.ArrayLike) -> np.ndarray:
        """Loss modulus ``E''(ω)`` at angular frequencies ``ω ≥ 0`` (rad per time unit)."""
        x = _nonnegative("frequency", frequency)[..., None] * self.relaxation_times
        return (x / (1.0 + x * x)) @ self.moduli

    def without_zero_terms(self, *, tolerance: float = 0.0) -> PronySeries:
        """A copy without the terms with ``E_i ≤ tolerance · E_0``."""
        keep = self.moduli > tolerance * self.instantaneous_modulus
        return PronySeries(
            self.long_term_modulus, self.moduli[keep], self.relaxation_times[keep], self.unit
        )


class PronyFit(NamedTuple):
    """Result of :func:`fit_prony` / :func:`fit_prony_frequency`.

    Attributes:
        series: the fitted series.
        residual: Euclidean norm of the (weighted) residual vector minimised by the fit;
            dimensionless with ``relative=True``, in stress units otherwise.
        relative_rms: root-mean-square relative misfit ``(E_fit − E_data) / E_data``.
    """

    series: PronySeries
    residual: float
    relative_rms: float


def relaxation_time_grid(times: npt.ArrayLike, *, terms_per_decade: int = 1) -> np.ndarray:
    """Log-spaced relaxation times spanning the positive ``times`` of a data set.

    The grid is ``10**(k / terms_per_decade)`` for every integer ``k`` from the grid point at or
    below the smallest positive time to the one at or above the largest, so whole powers of ten
    (and the half-decade points for two terms per decade) are on it.

    Args:
        times: sample times (any shape); zeros are ignored.
        terms_per_decade: relaxation times per decade (1 to 4 keep the fit well posed).

    Returns:
        Relaxation times, shape ``(N,)``, increasing.
    """
    t = _nonnegative("times", times)
    if not isinstance(terms_per_decade, int | np.integer) or not 1 <= terms_per_decade <= 10:
        raise ConfigError(
            f"terms_per_decade must be an integer from 1 to 10, got {terms_per_decade!r}; more "
            "terms per decade than the data resolve make the fit ill-posed"
        )
    positive = t[t > 0.0]
    if positive.size == 0:
        raise DataError("no positive sample time: the data span no time range to place terms on")
    k = np.arange(
        math.floor(terms_per_decade * math.log10(positive.min()) + 1e-9),
        math.ceil(terms_per_decade * math.log10(positive.max()) - 1e-9) + 1,
    )
    return 10.0 ** (k / terms_per_decade)


def fit_prony(
    times: npt.ArrayLike,
    modulus: npt.ArrayLike,
    *,
    relaxation_times: npt.ArrayLike | None = None,
    terms_per_decade: int = 1,
    relative: bool = True,
    drop_zero_terms: bool = True,
    zero_tolerance: float = 1e-10,
    unit: str = "GPa",
) -> PronyFit:
    """Fit a Prony series to a relaxation curve by non-negative least squares.

    Solves ``min ‖W (A x − E)‖`` subject to ``x ≥ 0`` with ``x = [E_∞, E_1, …, E_N]`` and
    ``A = [1, exp(−t/τ_1), …, exp(−t/τ_N)]``. With ``relative=True`` the rows are divided by
    the data (``W = diag(1/E)``), so every decade of a curve that relaxes over orders of magnitude
    counts alike (approximately a fit of ``log E``).

    Args:
        times: sample times ``t ≥ 0``, shape ``(S,)``.
        modulus: measured relaxation modulus ``E(t) > 0`` (``unit``), shape ``(S,)``.
        relaxation_times: ``τ_i > 0``, shape ``(N,)``; default :func:`relaxation_time_grid`.
        terms_per_decade: density of the default grid.
        relative: fit relative rather than absolute errors.
        drop_zero_terms: remove the terms the fit set to zero (NNLS leaves most grid terms at
            exactly zero when the grid is denser than the data resolve).
        zero_tolerance: terms with ``E_i ≤ zero_tolerance · E_0`` count as zero.
        unit: stress unit of ``modulus``.

    Returns:
        The series, the residual norm and the relative RMS misfit.
    """
    t = _nonnegative("times", times)
    e = _positive_samples("modulus", modulus, t.shape)
    taus = _grid(t, relaxation_times, terms_per_decade)
    design = np.exp(-t[:, None] / taus[None, :])
    zeros = zero_tolerance if drop_zero_terms else None
    return _solve(design, e, taus, relative, zeros, unit)


def fit_prony_frequency(
    frequency: npt.ArrayLike,
    storage: npt.ArrayLike,
    loss: npt.ArrayLike | None = None,
    *,
    relaxation_times: npt.ArrayLike | None = None,
    terms_per_decade: int = 1,
    relative: bool = True,
    drop_zero_terms: bool = True,
    zero_tolerance: float = 1e-10,
    unit: str = "GPa",
) -> PronyFit:
    """Fit a Prony series to dynamic (storage and optionally loss) moduli by NNLS.

    Storage and loss rows are stacked into one linear system in ``[E_∞, E_1, …, E_N] ≥ 0``. The
    default grid spans ``τ = 1/ω`` over the measured frequencies.

    Args:
        frequency: angular frequencies ``ω > 0`` (rad per time unit), shape ``(S,)``.
        storage: ``E'(ω) > 0``, shape ``(S,)``.
        loss: ``E''(ω) > 0``, shape ``(S,)``, or ``None`` to fit the storage modulus alone.
        relaxation_times, terms_per_decade, relative, drop_zero_terms, zero_tolerance, unit:
            as in :func:`fit_prony`.

    Returns:
        The series, the residual norm and the relative RMS misfit over all rows.
    """
    w = _nonnegative("frequency", frequency)
    if w.ndim != 1 or np.any(w <= 0.0):
        raise DataError(f"frequencies must be a 1D array of values > 0, got {w!r}")
    taus = _grid(1.0 / w, relaxation_times, terms_per_decade)
    x = w[:, None] * taus[None, :]
    rows = [x * x / (1.0 + x * x)]
    data = [_positive_samples("storage", storage, w.shape)]
    ones = [np.ones(w.size)]
    if loss is not None:
        rows.append(x / (1.0 + x * x))
        data.append(_positive_samples("loss", loss, w.shape))
        ones.append(np.zeros(w.size))
    design = np.vstack(rows)
    long_term = np.concatenate(ones)
    zeros = zero_tolerance if drop_zero_terms else None
    return _solve(design, np.concatenate(data), taus, relative, zeros, unit, long_term)


def stretched_exponential_modulus(
    times: npt.ArrayLike,
    *,
    glassy: float,
    rubbery: float,
    relaxation_time: float,
    exponent: float,
) -> np.ndarray:
    """Kohlrausch–Williams–Watts relaxation ``E(t) = E_r + (E_g − E_r) exp(−(t/τ)^β)``.

    A common shape of measured polymer relaxation curves, spread over several decades for
    ``β < 1``; a convenient synthetic data set for :func:`fit_prony` and FE² examples.

    Args:
        times: ``t ≥ 0`` (any shape).
        glassy: instantaneous modulus ``E_g``.
        rubbery: long-term modulus ``0 ≤ E_r ≤ E_g``.
        relaxation_time: ``τ > 0``.
        exponent: ``0 < β ≤ 1``.

    Returns:
        ``E(t)``, same shape as ``times``.
    """
    t = _nonnegative("times", times)
    if not (0.0 <= rubbery <= glassy and glassy > 0.0):
        raise ConfigError(f"need 0 ≤ rubbery ≤ glassy, glassy > 0; got {rubbery!r}, {glassy!r}")
    if not (relaxation_time > 0.0 and 0.0 < exponent <= 1.0):
        raise ConfigError(
            f"need relaxation_time > 0 and 0 < exponent ≤ 1, got {relaxation_time!r}, "
            f"{exponent!r}"
        )
    return rubbery + (glassy - rubbery) * np.exp(-((t / relaxation_time) ** exponent))


def _solve(
    design: np.ndarray,
    data: np.ndarray,
    taus: np.ndarray,
    relative: bool,
    zero_tolerance: float | None,
    unit: str,
    long_term_column: np.ndarray | None = None,
) -> PronyFit:
    first = np.ones(data.size) if long_term_column is None else long_term_column
    a = np.column_stack([first, design])
    scale = 1.0 / data if relative else np.ones(data.size)
    x, residual = scipy.optimize.nnls(a * scale[:, None], data * scale)
    series = PronySeries(x[0], x[1:], taus, unit)
    if zero_tolerance is not None:
        series = series.without_zero_terms(tolerance=zero_tolerance)
    relative_rms = float(np.sqrt(np.mean(((a @ x - data) / data) ** 2)))
    return PronyFit(series, float(residual), relative_rms)


def _grid(
    times: np.ndarray, relaxation_times: npt.ArrayLike | None, terms_per_decade: int
) -> np.ndarray:
    if relaxation_times is None:
        return relaxation_time_grid(times, terms_per_decade=terms_per_decade)
    taus = np.array(relaxation_times, dtype=np.float64, ndmin=1)
    if taus.ndim != 1 or taus.size == 0 or not np.all(np.isfinite(taus)) or np.any(taus <= 0):
        raise ConfigError(
            f"relaxation_times must be a non-empty 1D array of values > 0, got {taus!r}"
        )
    return taus


def _nonnegative(name: str, values: npt.ArrayLike) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(v)) or np.any(v < 0.0):
        bad = v[~(np.isfinite(v) & (v >= 0.0))]
        hint = "; shift the time origin to the start of the loading" if name == "times" else ""
        raise DataError(
            f"{name} must be finite and ≥ 0, got {bad.size} bad value(s), e.g. "
            f"{bad.flat[0]!r}{hint}"
        )
    return v


def _positive_samples(name: str, values: npt.ArrayLike, shape: tuple[int, ...]) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if len(shape) != 1 or v.shape != shape:
        raise DataError(
            f"{name} has shape {v.shape} but the sample times/frequencies have shape {shape}; "
            "give one 1D value per sample"
        )
    if shape[0] < 2:
        raise DataError(f"a Prony fit needs at least 2 samples, got {shape[0]}")
    if not np.all(np.isfinite(v)) or np.any(v <= 0.0):
        raise DataError(
            f"{name} must be finite and > 0 at every sample, got min {np.nanmin(v)!r}; remove "
            "invalid samples before fitting"
        )
    return v
