"""The micro-model contract of FE², a linear-elastic micro model and a Taylor test.

A micro model answers for a *batch* of quadrature points: one call returns the stress and the
consistent tangent of every point a rank owns. Models with history (viscoelastic phases,
plasticity, an RVE with internal variables) keep one state per point: :meth:`MicroModel.evaluate`
is a trial that never changes the committed state, :meth:`MicroModel.commit` accepts the state of
the last trial once the macro time step has converged.

All strains, stresses and tangents are Mandel vectors/matrices (see
:mod:`scalelink.fe2.tensors`).
"""

from __future__ import annotations

import abc
import dataclasses

import numpy as np
import numpy.typing as npt

from scalelink.bridge.errors import ConfigError

from .tensors import validate_strain_size

__all__ = [
    "LinearElastic",
    "MicroModel",
    "Phasewise",
    "TaylorResult",
    "check_strain_batch",
    "taylor_test",
]


class MicroModel(abc.ABC):
    """Stress and consistent tangent for a batch of quadrature points.

    Attributes:
        strain_size: 3 (2D plane strain) or 6 (3D), the length of the Mandel vectors.
        stress_unit: unit of stress and tangent (e.g. ``"GPa"``); the macro problem's loads
            must be in the same unit.
        has_state: whether :meth:`commit` matters (history-dependent model).
    """

    strain_size: int
    stress_unit: str = "GPa"
    has_state: bool = False

    def setup(self, num_points: int) -> None:  # noqa: B027 (optional hook)
        """Allocate the per-point state of ``num_points`` quadrature points (history models)."""

    @abc.abstractmethod
    def evaluate(
        self, strain: np.ndarray, *, time_step: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Trial stress and consistent (algorithmic) tangent of every point.

        Args:
            strain: total small strains, Mandel, shape ``(n, strain_size)``.
            time_step: time since the last committed state (history models; 0 otherwise).

        Returns:
            ``(stress, tangent)`` with shapes ``(n, m)`` and ``(n, m, m)``, ``m = strain_size``.
        """

    def commit(self) -> None:  # noqa: B027 (optional hook)
        """Accept the state computed by the last :meth:`evaluate` (history models)."""

    def uncertain_points(self) -> np.ndarray:
        """Indices (into the last batch) of points whose answer is too uncertain to trust, e.g. a
        surrogate's predictive spread above its threshold: where new high-fidelity runs are
        needed. Models without an uncertainty measure report none."""
        return np.zeros(0, dtype=np.int64)


def check_strain_batch(strain: npt.ArrayLike, strain_size: int) -> np.ndarray:
    """``strain`` as a C-contiguous float64 ``(n, strain_size)`` array, or a clear error."""
    s = np.ascontiguousarray(strain, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != strain_size:
        raise ConfigError(
            f"strain batch has shape {s.shape}, expected (num_points, {strain_size}) Mandel "
            "vectors; reshape a single strain with strain[None, :]"
        )
    if not np.all(np.isfinite(s)):
        raise ConfigError("strain batch contains NaN or inf; check the macro solution")
    return s


class LinearElastic(MicroModel):
    """A linear-elastic micro model, ``σ = C ε``, with one stiffness or one per point.

    Args:
        stiffness: Mandel stiffness ``(m, m)`` (same everywhere) or ``(n, m, m)`` (per point).
        stress_unit: unit of ``stiffness``.
    """

    def __init__(self, stiffness: npt.ArrayLike, *, stress_unit: str = "GPa") -> None:
        c = np.asarray(stiffness, dtype=np.float64)
        if c.ndim not in (2, 3) or c.shape[-1] != c.shape[-2]:
            raise ConfigError(f"stiffness has shape {c.shape}, expected (m, m) or (n, m, m)")
        self.strain_size = validate_strain_size(c.shape[-1])
        if not np.allclose(c, np.swapaxes(c, -1, -2), rtol=1e-10, atol=1e-12 * np.abs(c).max()):
            raise ConfigError("stiffness is not symmetric; give a Mandel (not Voigt) matrix")
        self.stiffness = c
        self.stress_unit = stress_unit

    def evaluate(
        self, strain: np.ndarray, *, time_step: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        s = check_strain_batch(strain, self.strain_size)
        if self.stiffness.ndim == 3 and self.stiffness.shape[0] != s.shape[0]:
            raise ConfigError(
                f"{s.shape[0]} strains for a per-point stiffness of {self.stiffness.shape[0]} points"
            )
        c = np.broadcast_to(self.stiffness, (s.shape[0],) + self.stiffness.shape[-2:])
        return np.einsum("nij,nj->ni", c, s), np.array(c)


class Phasewise(MicroModel):
    """Different micro models at different points: point ``k`` answers with ``phases[ids[k]]``.

    Each phase model gets one batched call with all of its points per evaluation (and keeps the
    state of exactly those points), so a fully resolved multi-phase structure runs through the
    same macro solver as FE². Lay out ``ids`` with
    :func:`scalelink.fe2.macro.quadrature_points`.

    Args:
        phases: phase id → micro model; all with the same ``strain_size`` and ``stress_unit``.
        ids: phase id of every point ``(n,)``, in batch order.
    """

    def __init__(self, phases: dict[int, MicroModel], ids: npt.ArrayLike) -> None:
        if not phases:
            raise ConfigError("Phasewise needs at least one phase model")
        sizes = {model.strain_size for model in phases.values()}
        units = {model.stress_unit for model in phases.values()}
        if len(sizes) != 1 or len(units) != 1:
            raise ConfigError(
                f"phase models disagree: strain sizes {sorted(sizes)}, stress units {sorted(units)}"
            )
        self.ids = np.asarray(ids).ravel()
        unknown = set(np.unique(self.ids).tolist()) - set(phases)
        if unknown:
            raise ConfigError(
                f"points carry phase ids {sorted(unknown)} that have no model; known: {sorted(phases)}"
            )
        self.phases = dict(phases)
        self.strain_size = sizes.pop()
        self.stress_unit = units.pop()
        self.has_state = any(model.has_state for model in phases.values())
        self._members = {key: np.flatnonzero(self.ids == key) for key in self.phases}

    def setup(self, num_points: int) -> None:
        if num_points != self.ids.size:
            raise ConfigError(
                f"{num_points} quadrature points but {self.ids.size} phase ids; lay the ids out "
                "with quadrature_points() of the same mesh and quadrature degree"
            )
        for key, model in self.phases.items():
            model.setup(self._members[key].size)

    def evaluate(
        self, strain: np.ndarray, *, time_step: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        s = check_strain_batch(strain, self.strain_size)
        if s.shape[0] != self.ids.size:
            raise ConfigError(f"{s.shape[0]} strains for {self.ids.size} phase ids")
        m = self.strain_size
        stress, tangent = np.empty_like(s), np.empty((s.shape[0], m, m))
        for key, model in self.phases.items():
            rows = self._members[key]
            if rows.size:
                stress[rows], tangent[rows] = model.evaluate(s[rows], time_step=time_step)
        return stress, tangent

    def commit(self) -> None:
        for key, model in self.phases.items():
            if self._members[key].size:
                model.commit()


@dataclasses.dataclass(frozen=True)
class TaylorResult:
    """Remainders of a Taylor test at step sizes ``steps``.

    ``zeroth[k] = max_n |σ(ε + h_k δ) − σ(ε)|`` falls like ``h`` and
    ``first[k] = max_n |σ(ε + h_k δ) − σ(ε) − h_k C δ|`` like ``h²`` when ``C`` is the consistent
    tangent. ``zeroth_rates``/``first_rates`` are the observed orders between successive steps.
    """

    steps: np.ndarray
    zeroth: np.ndarray
    first: np.ndarray
    zeroth_rates: np.ndarray
    first_rates: np.ndarray

    def passed(self, *, tolerance: float = 0.1) -> bool:
        """Whether the first-order remainders converge at order ≥ 2 − ``tolerance``.

        Remainders already at round-off (``first ≤ 1e-12·zeroth``) count as passed: the model is
        linear in that direction.
        """
        exact = self.first <= 1e-12 * np.maximum(self.zeroth, 1e-300)
        if np.all(exact):
            return True
        rates_ok = self.first_rates >= 2.0 - tolerance
        return bool(np.all(rates_ok | exact[1:] | exact[:-1]))


def taylor_test(
    model: MicroModel,
    strain: npt.ArrayLike,
    *,
    direction: npt.ArrayLike | None = None,
    steps: npt.ArrayLike = (1e-2, 5e-3, 2.5e-3, 1.25e-3),
    time_step: float = 0.0,
    seed: int = 0,
) -> TaylorResult:
    """Taylor test of a micro model's tangent on a batch of strains.

    Evaluates the model (trial only, nothing committed) at ``ε + h δ`` for each ``h`` in
    ``steps``. With a consistent tangent the first-order remainders fall like ``h²``.

    Args:
        model: any :class:`MicroModel`.
        strain: base strains ``(n, m)`` (Mandel).
        direction: perturbations ``(n, m)``; random unit vectors if not given.
        steps: decreasing step sizes ``h`` (strain units).
        time_step: passed to every evaluation (history models).
        seed: seed of the random directions.

    Returns:
        The remainders and their observed orders.
    """
    eps = check_strain_batch(strain, model.strain_size)
    if direction is None:
        delta = np.random.default_rng(seed).standard_normal(eps.shape)
        delta /= np.linalg.norm(delta, axis=1, keepdims=True)
    else:
        delta = check_strain_batch(np.broadcast_to(direction, eps.shape), model.strain_size)
    h = np.asarray(steps, dtype=float)
    if h.ndim != 1 or h.size < 2 or np.any(np.diff(h) >= 0) or np.any(h <= 0):
        raise ConfigError(f"steps must be at least two positive decreasing sizes, got {steps!r}")
    stress0, tangent0 = model.evaluate(eps, time_step=time_step)
    linear = np.einsum("nij,nj->ni", tangent0, delta)
    zeroth = np.empty(h.size)
    first = np.empty(h.size)
    for k, hk in enumerate(h):
        stress, _ = model.evaluate(eps + hk * delta, time_step=time_step)
        zeroth[k] = np.abs(stress - stress0).max()
        first[k] = np.abs(stress - stress0 - hk * linear).max()
    ratio = np.log(h[:-1] / h[1:])
    with np.errstate(divide="ignore", invalid="ignore"):
        zeroth_rates = np.log(zeroth[:-1] / zeroth[1:]) / ratio
        first_rates = np.log(first[:-1] / first[1:]) / ratio
    return TaylorResult(h, zeroth, first, zeroth_rates, first_rates)
