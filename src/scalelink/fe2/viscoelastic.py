r"""Linear viscoelastic micro model: a generalized Maxwell chain with an exact time integrator.

The stress of a point is a long-term elastic part plus one internal (Maxwell) stress per term,

.. math::

    \sigma(t) = C_\infty \varepsilon(t) + \sum_{i=1}^N h_i(t), \qquad
    \dot h_i + h_i/\tau_i = C_i \dot\varepsilon,

so that a step strain relaxes as :math:`C(t) = C_\infty + \sum_i C_i e^{-t/\tau_i}`. For a strain
linear in time over a step :math:`\Delta t` the internal stresses are integrated exactly,

.. math::

    h_i^{n+1} = a_i h_i^n + b_i C_i (\varepsilon^{n+1} - \varepsilon^n), \qquad
    a_i = e^{-\Delta t/\tau_i}, \quad b_i = \frac{1 - a_i}{\Delta t/\tau_i},

and the consistent (algorithmic) tangent :math:`C_\infty + \sum_i b_i C_i` is the same for every
point. ``Δt = 0`` gives ``b_i = 1``: the instantaneous (glassy) response
:math:`C_0 = C_\infty + \sum_i C_i`. Any step size is stable and a piecewise-linear strain history
is reproduced exactly, whatever ``Δt``.

The term stiffnesses come either from one Prony series scaling a given stiffness
(:meth:`Viscoelastic.from_prony`: ``C(t) = C_0 E(t)/E_0``, e.g. an isotropic phase with a constant
Poisson ratio or an anisotropic phase relaxing proportionally) or from separate bulk and shear
series of an isotropic phase (:meth:`Viscoelastic.isotropic`: ``C(t) = 3K(t) P_vol + 2G(t)
P_dev``, which also lets bulk and shear relax on different time scales).

Viscoelastic phases in an RVE
-----------------------------
An FE² viscoelastic composite needs a history model at each quadrature point of the RVE mesh, and
the RVE needs one per macro point. A :class:`Viscoelastic` instance is such a phase material: give
it to the RVE like any other :class:`~scalelink.fe2.micro.MicroModel` (e.g. the matrix
``Viscoelastic.isotropic(bulk=K_series, shear=G_series, strain_size=...)`` beside an elastic fibre
``LinearElastic(...)``). The RVE calls ``setup`` with the number of its own quadrature points
(times the number of macro points it serves), evaluates every phase with the macro time step
while its Newton iterations run (trials, nothing committed) and commits the phases when the macro
step is accepted. The homogenized tangent then inherits the algorithmic tangent above. Fit the
series from relaxation or dynamic data with :func:`~scalelink.fe2.prony.fit_prony` /
:func:`~scalelink.fe2.prony.fit_prony_frequency`, in the stress unit of the macro problem.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from scalelink.bridge.errors import ConfigError

from .micro import MicroModel, check_strain_batch
from .prony import PronySeries
from .tensors import isotropic_stiffness, validate_strain_size

__all__ = ["Viscoelastic"]


class Viscoelastic(MicroModel):
    """Batched small-strain generalized Maxwell model (history per point).

    Args:
        long_term_stiffness: Mandel ``C_∞`` ``(m, m)``, symmetric positive semi-definite.
        term_stiffnesses: Mandel ``C_i`` ``(N, m, m)``, each symmetric positive semi-definite.
        relaxation_times: ``τ_i > 0`` ``(N,)``, in the unit of ``time_step``.
        stress_unit: unit of the stiffnesses (and of the stresses returned).

    Shapes:
        ``evaluate(strain (n, m))`` returns stress ``(n, m)`` and tangent ``(n, m, m)``; the
        internal stresses are ``(n, N, m)``. ``m`` is 3 (plane strain, ``ε_zz = 0``) or 6.
    """

    has_state = True

    def __init__(
        self,
        long_term_stiffness: npt.ArrayLike,
        term_stiffnesses: npt.ArrayLike,
        relaxation_times: npt.ArrayLike,
        *,
        stress_unit: str = "GPa",
    ) -> None:
        c_inf = np.array(long_term_stiffness, dtype=np.float64)
        if c_inf.ndim != 2 or c_inf.shape[0] != c_inf.shape[1]:
            raise ConfigError(
                f"long-term stiffness has shape {c_inf.shape}, expected a Mandel (m, m) matrix"
            )
        m = validate_strain_size(c_inf.shape[0])
        terms = np.array(term_stiffnesses, dtype=np.float64)
        taus = np.array(relaxation_times, dtype=np.float64, ndmin=1)
        if terms.ndim != 3 or terms.shape[1:] != (m, m) or taus.shape != terms.shape[:1]:
            raise ConfigError(
                f"term stiffnesses have shape {terms.shape} and relaxation times {taus.shape}; "
                f"expected (N, {m}, {m}) and (N,), one relaxation time per term"
            )
        if not np.all(np.isfinite(taus)) or np.any(taus <= 0.0):
            raise ConfigError(f"relaxation times must be finite and > 0, got {taus.tolist()}")
        _check_stiffness("long-term stiffness", c_inf)
        for i, c in enumerate(terms):
            _check_stiffness(f"stiffness of term {i}", c)
        instantaneous = c_inf + terms.sum(axis=0)
        if np.linalg.eigvalsh(instantaneous)[0] <= 1e-12 * np.abs(instantaneous).max():
            raise ConfigError(
                "the instantaneous stiffness C_∞ + Σ C_i is singular; the material has no "
                "elastic response at all"
            )
        self.strain_size = m
        self.stress_unit = stress_unit
        self._c_inf = c_inf
        self._terms = terms
        self._taus = taus
        self._strain: np.ndarray | None = None
        self._internal: np.ndarray | None = None
        self._trial: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def from_prony(
        cls, stiffness: npt.ArrayLike, series: PronySeries, *, stress_unit: str | None = None
    ) -> Viscoelastic:
        """A material whose stiffness relaxes in proportion to one Prony series.

        ``C(t) = C_0 E(t)/E_0``: ``C_∞ = C_0 E_∞/E_0`` and ``C_i = C_0 E_i/E_0``.

        Args:
            stiffness: instantaneous (glassy) Mandel stiffness ``C_0``, ``(m, m)``; use
                :func:`~scalelink.fe2.tensors.plane_strain` for a 2D model.
            series: the relaxation series; only its relative moduli ``E_i/E_0`` are used.
            stress_unit: unit of ``stiffness``; default ``series.unit``.
        """
        c0 = np.asarray(stiffness, dtype=np.float64)
        g = series.relative_moduli
        g_inf = series.long_term_modulus / series.instantaneous_modulus
        return cls(
            g_inf * c0,
            g[:, None, None] * c0,
            series.relaxation_times,
            stress_unit=series.unit if stress_unit is None else stress_unit,
        )

    @classmethod
    def isotropic(
        cls,
        *,
        bulk: PronySeries | float,
        shear: PronySeries | float,
        strain_size: int = 6,
        stress_unit: str | None = None,
    ) -> Viscoelastic:
        """An isotropic material with separate bulk and shear relaxation.

        ``C(t) = 3K(t) P_vol + 2G(t) P_dev``; for ``strain_size == 3`` the plane-strain block.
        The bulk and shear terms become separate Maxwell terms, so their relaxation times may
        differ.

        Args:
            bulk: bulk-modulus series ``K(t)``, or a constant (elastic) bulk modulus.
            shear: shear-modulus series ``G(t)``, or a constant shear modulus.
            strain_size: 3 (plane strain) or 6.
            stress_unit: unit of the moduli; must agree with the series' unit (default: that
                unit, or ``"GPa"`` for constant moduli).
        """
        validate_strain_size(strain_size)
        none = np.zeros(0)
        k = bulk if isinstance(bulk, PronySeries) else PronySeries(bulk, none, none)
        g = shear if isinstance(shear, PronySeries) else PronySeries(shear, none, none)
        units = {s.unit for s in (bulk, shear) if isinstance(s, PronySeries)}
        if stress_unit is not None:
            units.add(stress_unit)
        if len(units) > 1:
            raise ConfigError(
                f"bulk series, shear series and stress_unit name different units "
                f"{sorted(units)}; convert the moduli to one unit"
            )
        unit = units.pop() if units else "GPa"
        # Unit-modulus projections; isotropic_stiffness needs positive moduli, hence the splits.
        vol = isotropic_stiffness(bulk=1.0, shear=1.0, strain_size=strain_size)
        dev = isotropic_stiffness(bulk=1.0, shear=2.0, strain_size=strain_size) - vol
        vol = vol - dev
        terms = np.concatenate(
            [k.moduli[:, None, None] * vol, g.moduli[:, None, None] * dev], axis=0
        )
        return cls(
            k.long_term_modulus * vol + g.long_term_modulus * dev,
            terms,
            np.concatenate([k.relaxation_times, g.relaxation_times]),
            stress_unit=unit,
        )

    @property
    def num_terms(self) -> int:
        """Number ``N`` of Maxwell terms."""
        return int(self._taus.size)

    @property
    def relaxation_times(self) -> np.ndarray:
        """``τ_i``, shape ``(N,)``."""
        return self._taus.copy()

    def relaxation_stiffness(self, times: npt.ArrayLike) -> np.ndarray:
        """``C(t) = C_∞ + Σ C_i exp(−t/τ_i)`` at ``times ≥ 0``: shape ``times.shape + (m, m)``."""
        t = np.asarray(times, dtype=np.float64)
        if not np.all(np.isfinite(t)) or np.any(t < 0.0):
            raise ConfigError(f"times must be finite and ≥ 0, got {t!r}")
        decay = np.exp(-t[..., None] / self._taus)
        return self._c_inf + np.tensordot(decay, self._terms, axes=(-1, 0))

    def algorithmic_tangent(self, time_step: float) -> np.ndarray:
        """Consistent tangent ``C_∞ + Σ b_i C_i`` of a step ``Δt ≥ 0``, shape ``(m, m)``."""
        _, b = self._factors(time_step)
        return self._c_inf + np.tensordot(b, self._terms, axes=(0, 0))

    @property
    def committed_strain(self) -> np.ndarray:
        """Committed strains ``ε^n`` ``(n, m)`` (a copy)."""
        return self._require_setup()[0].copy()

    @property
    def internal_stresses(self) -> np.ndarray:
        """Committed internal stresses ``h_i^n`` ``(n, N, m)`` (a copy)."""
        return self._require_setup()[1].copy()

    def setup(self, num_points: int) -> None:
        """Start ``num_points`` points from the virgin state (zero strain and history)."""
        if not isinstance(num_points, int | np.integer) or num_points < 0:
            raise ConfigError(f"num_points must be an integer ≥ 0, got {num_points!r}")
        m = self.strain_size
        self._strain = np.zeros((int(num_points), m))
        self._internal = np.zeros((int(num_points), self.num_terms, m))
        self._trial = None

    def evaluate(
        self, strain: np.ndarray, *, time_step: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Trial stress and algorithmic tangent after a step of ``time_step`` to ``strain``.

        The strain is taken as linear in time from the committed strain over the step; the
        committed state is not changed (see :meth:`commit`).

        Args:
            strain: total strains at the end of the step, Mandel ``(n, m)``.
            time_step: ``Δt ≥ 0`` since the committed state (unit of the relaxation times).

        Returns:
            ``(stress (n, m), tangent (n, m, m))`` in ``stress_unit``.
        """
        eps = check_strain_batch(strain, self.strain_size)
        committed, internal = self._require_setup()
        if eps.shape[0] != committed.shape[0]:
            raise ConfigError(
                f"{eps.shape[0]} strains given to a model set up for {committed.shape[0]} "
                "points; call setup(num_points) with the number of quadrature points"
            )
        a, b = self._factors(time_step)
        n, m, nt = eps.shape[0], self.strain_size, self.num_terms
        # One BLAS product for all points and terms: rows k*m + i of the stacked b_k C_k.
        scaled = (b[:, None, None] * self._terms).reshape(nt * m, m)
        increment = ((eps - committed) @ scaled.T).reshape(n, nt, m)
        trial_internal = a[None, :, None] * internal + increment
        stress = eps @ self._c_inf.T + trial_internal.sum(axis=1)
        tangent = self._c_inf + np.tensordot(b, self._terms, axes=(0, 0))
        self._trial = (eps.copy(), trial_internal)
        return stress, np.repeat(tangent[None], n, axis=0)

    def commit(self) -> None:
        """Accept the strains and internal stresses of the last :meth:`evaluate`."""
        if self._trial is None:
            raise ConfigError(
                "commit() called with no trial to accept: call evaluate() after setup() first"
            )
        # No copy: evaluate() builds new arrays and never writes into committed ones.
        self._strain, self._internal = self._trial

    def _require_setup(self) -> tuple[np.ndarray, np.ndarray]:
        if self._strain is None or self._internal is None:
            raise ConfigError(
                "the viscoelastic model has no state yet: call setup(num_points) before "
                "evaluate()"
            )
        return self._strain, self._internal

    def _factors(self, time_step: float) -> tuple[np.ndarray, np.ndarray]:
        dt = float(time_step)
        if not (math.isfinite(dt) and dt >= 0.0):
            raise ConfigError(f"time_step must be finite and ≥ 0, got {time_step!r}")
        x = dt / self._taus
        if dt == 0.0:
            return np.ones_like(x), np.ones_like(x)
        # expm1 keeps (1 − e^{−x})/x accurate for Δt ≪ τ.
        return np.exp(-x), -np.expm1(-x) / x


def _check_stiffness(name: str, c: np.ndarray) -> None:
    scale = max(float(np.abs(c).max()), 1e-300)
    if not np.all(np.isfinite(c)) or not np.allclose(c, c.T, rtol=1e-10, atol=1e-12 * scale):
        raise ConfigError(f"{name} is not finite and symmetric; give a Mandel (not Voigt) matrix")
    if np.linalg.eigvalsh(c)[0] < -1e-10 * scale:
        raise ConfigError(
            f"{name} has a negative eigenvalue {np.linalg.eigvalsh(c)[0]:.3e}; every Maxwell "
            "term and the long-term part must store, not release, energy"
        )
