"""Homogeneous free energies f(c) of a binary alloy for phase-field models, and their fit.

A free energy here is an object whose :meth:`~RedlichKister.density` evaluates f(c) with the
arithmetic it is handed: numpy arrays (fits, common tangents, checks) or UFL expressions (the
Cahn–Hilliard weak form, which differentiates it symbolically). Two families:

- :class:`DoubleWell`: ``f = W c² (1 − c)²``, the textbook model with a closed-form interface
  energy ``σ = √(2κW)/6``.
- :class:`RedlichKister`: the solution model of CALPHAD,

  .. math:: f(c) = (1-c) g_A + c\\,g_B + k_B T\\,[c \\ln c + (1-c)\\ln(1-c)]
            + c(1-c) \\sum_k L_k (1 - 2c)^k ,

  with ``c`` the mole fraction of B and ``L_k = a_k + b_k T``. One ``L_0`` is the regular
  solution. :func:`fit_redlich_kister` fits ``g_B − g_A`` and the ``L_k`` to semi-grand-canonical
  Monte Carlo data: the imposed chemical-potential difference ``Δμ = ∂f/∂c`` at the measured
  composition ``c`` and temperature ``T``, which is linear in the unknowns.

Energies are per atom in eV, temperatures in K. A fit is deployed as a model file of
:mod:`scalelink.bridge` (kind ``free_energy``) by :mod:`scalelink.mesoscale.deploy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from scipy import optimize

from scalelink.bridge.errors import ConfigError, DataError
from scalelink.bridge.units import BOLTZMANN_EV_PER_K

__all__ = [
    "BOLTZMANN_EV",
    "DoubleWell",
    "RedlichKister",
    "RedlichKisterFit",
    "common_tangent",
    "fit_redlich_kister",
]

BOLTZMANN_EV = BOLTZMANN_EV_PER_K
"""Boltzmann constant in eV/K (:data:`scalelink.bridge.units.BOLTZMANN_EV_PER_K`)."""


@dataclass(frozen=True)
class DoubleWell:
    """``f(c) = W c² (1 − c)²`` with minima at ``c = 0`` and ``c = 1``.

    Attributes:
        barrier: ``W`` (energy per volume of the phase-field problem's units).
    """

    barrier: float

    def density(self, c: Any, log: Callable[[Any], Any] = np.log) -> Any:
        """f(c); ``log`` is unused (kept for the common interface)."""
        return self.barrier * c**2 * (1 - c) ** 2

    def chemical_potential(self, c: np.ndarray) -> np.ndarray:
        """``∂f/∂c = 2W c (1 − c)(1 − 2c)``."""
        c = np.asarray(c, dtype=float)
        return 2.0 * self.barrier * c * (1 - c) * (1 - 2 * c)

    def interface_energy(self, kappa: float) -> float:
        """The closed-form energy of a planar interface, ``√(2κW)/6``."""
        return float(np.sqrt(2.0 * kappa * self.barrier) / 6.0)


@dataclass(frozen=True)
class RedlichKister:
    """A Redlich–Kister solution free energy at one temperature (see the module docstring).

    Attributes:
        temperature: ``T`` in K (the ideal mixing term is ``k_B T`` times the entropy of mixing).
        interaction: ``(L_0, L_1, …)`` in eV/atom at this temperature.
        reference: ``g_B − g_A`` in eV/atom (a linear term: it shifts ``∂f/∂c`` only).
        composition_range: ``(c_min, c_max)`` where the model was fitted; a phase-field run
            that leaves it is extrapolating (checked by :meth:`check_range`).
        boltzmann: ``k_B`` in the energy unit of the other attributes.
    """

    temperature: float
    interaction: tuple[float, ...]
    reference: float = 0.0
    composition_range: tuple[float, float] = (0.0, 1.0)
    boltzmann: float = BOLTZMANN_EV

    def density(self, c: Any, log: Callable[[Any], Any] = np.log) -> Any:
        """f(c) in eV/atom, with ``log`` the logarithm of the arithmetic used (``np.log``,
        ``ufl.ln``)."""
        kt = self.boltzmann * self.temperature
        excess = 0.0 * c
        for k, l_k in enumerate(self.interaction):
            excess = excess + l_k * (1 - 2 * c) ** k
        return self.reference * c + kt * (c * log(c) + (1 - c) * log(1 - c)) + c * (1 - c) * excess

    def chemical_potential(self, c: np.ndarray) -> np.ndarray:
        """``Δμ = ∂f/∂c`` (eV/atom) at mole fractions ``c`` (any shape, in (0, 1))."""
        c = np.asarray(c, dtype=float)
        kt = self.boltzmann * self.temperature
        return self.reference + kt * np.log(c / (1 - c)) + _dmu_excess(c, self.interaction)

    def check_range(self, c_min: float, c_max: float) -> None:
        """Raise :class:`DataError` when ``[c_min, c_max]`` leaves the fitted composition range."""
        lo, hi = self.composition_range
        if c_min < lo - 1e-9 or c_max > hi + 1e-9:
            raise DataError(
                f"compositions [{c_min:.4f}, {c_max:.4f}] leave the range [{lo:.4f}, {hi:.4f}] the free "
                "energy was fitted on; sample the Monte Carlo over a wider range of chemical potentials "
                "or start the phase-field run inside the fitted range")


def _dmu_excess(c: np.ndarray, interaction: tuple[float, ...]) -> np.ndarray:
    """d/dc of ``c(1−c) Σ L_k (1−2c)^k``."""
    out = np.zeros_like(c)
    for k, l_k in enumerate(interaction):
        u = 1 - 2 * c
        term = (1 - 2 * c) * u**k
        if k:
            term = term - 2 * k * c * (1 - c) * u ** (k - 1)
        out = out + l_k * term
    return out


def _design_matrix(c: np.ndarray, t: np.ndarray, order: int, t_order: int,
                   boltzmann: float) -> tuple[np.ndarray, np.ndarray]:
    """Columns of ``Δμ`` linear in (g_B−g_A: a + bT, L_k: a_k + b_k T) and the ideal part."""
    columns = [np.ones_like(c)] + ([t] if t_order else [])
    for k in range(order):
        unit = tuple(1.0 if j == k else 0.0 for j in range(k + 1))
        d = _dmu_excess(c, unit)
        columns.append(d)
        if t_order:
            columns.append(d * t)
    ideal = boltzmann * t * np.log(c / (1 - c))
    return np.stack(columns, axis=-1), ideal


@dataclass(frozen=True)
class RedlichKisterFit:
    """Temperature-dependent Redlich–Kister coefficients fitted to Monte Carlo data.

    Attributes:
        reference: ``(a, b)`` of ``g_B − g_A = a + bT`` (eV/atom, eV/atom/K).
        interaction: ``[(a_k, b_k), …]`` of ``L_k = a_k + b_k T``.
        composition_range: ``(c_min, c_max)`` of the data.
        temperature_range: ``(T_min, T_max)`` of the data.
        rmse: root-mean-square error of the fitted ``Δμ`` on the data (eV/atom).
        max_error: largest error of the fitted ``Δμ`` on the data (eV/atom).
    """

    reference: tuple[float, float]
    interaction: list[tuple[float, float]]
    composition_range: tuple[float, float]
    temperature_range: tuple[float, float]
    rmse: float
    max_error: float
    boltzmann: float = field(default=BOLTZMANN_EV)

    def at(self, temperature: float) -> RedlichKister:
        """The free energy at ``temperature`` (K); raises outside the sampled temperatures."""
        lo, hi = self.temperature_range
        if not lo - 1e-6 <= temperature <= hi + 1e-6:
            raise DataError(f"temperature {temperature} K is outside the sampled range [{lo}, {hi}] K; "
                            "run the Monte Carlo at this temperature or pick one inside the range")
        return RedlichKister(
            temperature=temperature,
            interaction=tuple(a + b * temperature for a, b in self.interaction),
            reference=self.reference[0] + self.reference[1] * temperature,
            composition_range=self.composition_range, boltzmann=self.boltzmann)


def fit_redlich_kister(composition: np.ndarray, temperature: np.ndarray, delta_mu: np.ndarray, *,
                       order: int = 3, temperature_dependent: bool = True,
                       boltzmann: float = BOLTZMANN_EV) -> RedlichKisterFit:
    """Least-squares fit of ``g_B − g_A`` and ``L_0 … L_{order−1}`` to ``Δμ(c, T)``.

    Args:
        composition: ``(n,)`` mole fractions of B measured by the Monte Carlo, in (0, 1).
        temperature: ``(n,)`` temperatures in K.
        delta_mu: ``(n,)`` imposed ``μ_B − μ_A`` in eV/atom.
        order: number of Redlich–Kister terms.
        temperature_dependent: fit ``a + bT`` for every coefficient (needs two temperatures).

    Returns:
        The fit, with its error on the data.
    """
    c, t, mu = (np.asarray(a, dtype=float).ravel() for a in (composition, temperature, delta_mu))
    if not (c.size == t.size == mu.size):
        raise DataError(f"composition, temperature, delta_mu have sizes {c.size}, {t.size}, {mu.size}; "
                        "expected one value of each per Monte Carlo run")
    if np.any((c <= 0) | (c >= 1)):
        raise DataError(f"compositions must lie in (0, 1), got range [{c.min()}, {c.max()}]; drop runs that "
                        "ended in a pure phase")
    if order < 1:
        raise ConfigError(f"order must be at least 1, got {order}")
    t_dep = int(temperature_dependent and np.ptp(t) > 0)
    unknowns = (1 + order) * (1 + t_dep)
    if c.size < unknowns:
        raise DataError(f"{c.size} data points cannot fix {unknowns} coefficients; run more Monte Carlo points")
    a, ideal = _design_matrix(c, t, order, t_dep, boltzmann)
    coef, *_ = np.linalg.lstsq(a, mu - ideal, rcond=None)
    residual = a @ coef + ideal - mu
    step = 1 + t_dep
    pairs = [(float(coef[i]), float(coef[i + 1]) if t_dep else 0.0) for i in range(0, coef.size, step)]
    return RedlichKisterFit(reference=pairs[0], interaction=pairs[1:],
                            composition_range=(float(c.min()), float(c.max())),
                            temperature_range=(float(t.min()), float(t.max())),
                            rmse=float(np.sqrt(np.mean(residual**2))), max_error=float(np.abs(residual).max()),
                            boltzmann=boltzmann)


def _lower_hull(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the lower convex hull of points sorted by ``x`` (monotone chain)."""
    hull: list[int] = []
    for i in range(x.size):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            if (x[b] - x[a]) * (y[i] - y[a]) - (y[b] - y[a]) * (x[i] - x[a]) <= 0:
                hull.pop()
            else:
                break
        hull.append(i)
    return np.asarray(hull)


def common_tangent(free_energy: Any, *, grid: int = 4001) -> tuple[float, float]:
    """The two compositions that share a tangent of ``free_energy.density`` (numpy arithmetic).

    The widest gap of the lower convex hull of ``f`` sampled on ``grid`` points brackets the
    miscibility gap; ``f'(a) = f'(b)`` and ``f(b) − f(a) = f'(a)(b − a)`` are then solved from
    it, with ``f'`` from the model's ``chemical_potential``.

    Raises:
        DataError: when ``f`` is convex (no miscibility gap).
    """
    def f(x: Any) -> Any:
        return free_energy.density(np.asarray(x, dtype=float))

    def df(x: Any) -> Any:
        return free_energy.chemical_potential(np.asarray(x, dtype=float))

    x = np.linspace(1e-6, 1 - 1e-6, grid)
    hull = _lower_hull(x, f(x))
    widest = int(np.argmax(np.diff(hull)))
    if hull[widest + 1] - hull[widest] < 3:
        raise DataError("the free energy is convex on the sampled grid: there is no miscibility gap "
                        "(raise the interaction energy or lower the temperature)")

    def equations(v: np.ndarray) -> list[float]:
        a, b = v
        return [float(df(a) - df(b)), float(f(b) - f(a) - df(a) * (b - a))]

    guess = np.array([x[hull[widest]], x[hull[widest + 1]]])
    sol = optimize.root(equations, guess, tol=1e-14)
    a, b = sorted(sol.x)
    if np.abs(equations(sol.x)).max() > 1e-10 or b - a < 1e-4 or np.abs(sol.x - guess).max() > 2 / grid:
        raise DataError(f"the common tangent did not converge from the hull guess {guess} (got {sol.x}, "
                        f"{sol.message}); try a finer grid")
    return float(a), float(b)
