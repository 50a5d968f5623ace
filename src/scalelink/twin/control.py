r"""Model-predictive control of an input under an output limit, with a step-response model.

The reduced model is the step response of the twin (dynamic matrix control, Cutler & Ramaker
1979): for an input ``u`` that is linear in time within each step of length ``Δt`` (values
``u_j`` at the step ends, ``u_0 = 0``), a linear time-invariant system's output at the end of
step ``k`` is

.. math::

    y_k = \sum_{j=1}^{k} s_{k-j+1}\,\Delta u_j, \qquad \Delta u_j = u_j - u_{j-1},

with ``s_i`` the output at the end of step ``i`` after the input ramps from 0 to 1 in step 1
and stays there (``s_i = s_M`` beyond the identified length ``M``). :func:`identify_step_response`
reads the ``s_i`` off one simulation of the twin's own model; a linear viscoelastic FE² model
at fixed parameters is such a system.

:class:`PredictiveController` chooses the next ``H`` inputs by minimising

.. math::

    \sum_{i=1}^{H} (u_{k+i} - u^*_{k+i})^2 + \lambda \sum_{i=1}^{H} (u_{k+i} - u_{k+i-1})^2
    \quad\text{s.t.}\quad \hat y_{k+i} \le y_{\max} - m, \quad u_{\min} \le u \le u_{\max},

(inputs scaled by ``scale``), with predictions ``ŷ = d + (free response of the past inputs) +
(dynamic matrix) · (future moves)`` and the bias ``d = y_k^{\text{twin}} − y_k^{\text{model}}``
between the twin's current estimate and the model's: feedback that absorbs the model's
mismatch (parameter drift, nonlinearity). The margin ``m`` is typically ``κ`` times the twin's
posterior standard deviation of the output. The problem is a small quadratic programme, solved
by SLSQP (:func:`scipy.optimize.minimize`); if the limit cannot be kept over the horizon the
violation is minimised instead (a quadratic penalty), and the plan says so. Only the first input
is applied (receding horizon).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import scipy.optimize

from scalelink.bridge.errors import ConfigError

__all__ = [
    "ControlPlan",
    "PredictiveController",
    "StepResponse",
    "StepResponseFamily",
    "identify_step_response",
]


@dataclasses.dataclass(frozen=True, eq=False)
class StepResponse:
    """Step-response model ``s_1 … s_M`` of a sampled system (see the module text).

    Attributes:
        coefficients: ``s_i``, the output at the end of step ``i`` per unit input step.
        time_step: ``Δt`` of the samples.
    """

    coefficients: np.ndarray
    time_step: float

    def __post_init__(self) -> None:
        s = np.asarray(self.coefficients, dtype=float).ravel()
        if s.size < 1 or not np.all(np.isfinite(s)):
            raise ConfigError("a step response needs at least one finite coefficient")
        object.__setattr__(self, "coefficients", s)

    def at(self, lags: npt.ArrayLike) -> np.ndarray:
        """``s_i`` for lags ``i ≥ 1`` (``s_M`` beyond the identified length)."""
        i = np.asarray(lags, dtype=int)
        return self.coefficients[np.clip(i, 1, self.coefficients.size) - 1]

    def simulate(self, inputs: npt.ArrayLike) -> np.ndarray:
        """Outputs ``y_1 … y_K`` of inputs ``u_1 … u_K`` (from ``u_0 = 0``)."""
        u = np.asarray(inputs, dtype=float).ravel()
        du = np.diff(np.concatenate([[0.0], u]))
        k = np.arange(1, u.size + 1)
        return np.array([self.at(kk - np.arange(1, kk + 1) + 1) @ du[:kk] for kk in k])

    def free_response(self, past_inputs: npt.ArrayLike, horizon: int) -> np.ndarray:
        """Outputs at steps ``k+1 … k+H`` if the input stays at ``u_k`` (``k = len(past)``)."""
        u = np.asarray(past_inputs, dtype=float).ravel()
        du = np.diff(np.concatenate([[0.0], u]))
        j = np.arange(1, u.size + 1)
        return np.array([self.at(u.size + i - j + 1) @ du for i in range(1, horizon + 1)])

    def dynamic_matrix(self, horizon: int) -> np.ndarray:
        """``G`` ``(H, H)``: outputs at ``k+1 … k+H`` per move ``Δu_{k+1} … Δu_{k+H}``."""
        i, j = np.meshgrid(np.arange(horizon), np.arange(horizon), indexing="ij")
        return np.where(j <= i, self.at(i - j + 1), 0.0)


def identify_step_response(simulate: Callable[[np.ndarray], npt.ArrayLike], *, steps: int,
                           time_step: float, amplitude: float = 1.0) -> StepResponse:
    """Step response of a system from one simulation.

    Args:
        simulate: runs the system from rest with inputs ``u_1 … u_K`` (values at the ends of
            ``K`` steps of ``time_step``, linear within a step) and returns ``y_1 … y_K``.
        steps: ``M``, the number of steps to simulate.
        time_step: ``Δt``.
        amplitude: the size of the input step (in the system's working range).
    """
    if steps < 1 or not amplitude:
        raise ConfigError(f"need steps ≥ 1 and a non-zero amplitude, got {steps!r}, {amplitude!r}")
    y = np.asarray(simulate(np.full(int(steps), float(amplitude))), dtype=float).ravel()
    if y.size != steps:
        raise ConfigError(f"the simulation returned {y.size} outputs for {steps} steps")
    return StepResponse(y / amplitude, float(time_step))


@dataclasses.dataclass(frozen=True, eq=False)
class StepResponseFamily:
    """Step responses identified at a grid of parameter values, interpolated between them: a
    linear parameter-varying model, so the controller follows the twin's parameter estimate
    without a new identification at every step.

    Attributes:
        parameters: increasing grid ``(k,)`` (e.g. of ``log E_f``).
        coefficients: ``s_i`` at each grid value, ``(k, M)``.
        time_step: ``Δt``.
    """

    parameters: np.ndarray
    coefficients: np.ndarray
    time_step: float

    def __post_init__(self) -> None:
        p = np.asarray(self.parameters, dtype=float).ravel()
        c = np.asarray(self.coefficients, dtype=float)
        if p.size < 1 or np.any(np.diff(p) <= 0) or c.ndim != 2 or c.shape[0] != p.size:
            raise ConfigError(
                f"need an increasing parameter grid (k,) and coefficients (k, M); got {p.shape}, {c.shape}"
            )
        object.__setattr__(self, "parameters", p)
        object.__setattr__(self, "coefficients", c)

    @classmethod
    def identify(cls, simulate: Callable[[float, np.ndarray], npt.ArrayLike], parameters: npt.ArrayLike, *,
                 steps: int, time_step: float, amplitude: float = 1.0) -> StepResponseFamily:
        """:func:`identify_step_response` of ``simulate(parameter, inputs)`` at every grid value."""
        grid = np.asarray(parameters, dtype=float).ravel()
        rows = [identify_step_response(lambda u, p=p: simulate(float(p), u), steps=steps,
                                       time_step=time_step, amplitude=amplitude).coefficients
                for p in grid]
        return cls(grid, np.asarray(rows), float(time_step))

    def __call__(self, parameter: float) -> StepResponse:
        """The step response at ``parameter`` (linear interpolation, clamped to the grid)."""
        p = float(np.clip(parameter, self.parameters[0], self.parameters[-1]))
        i = int(np.clip(np.searchsorted(self.parameters, p) - 1, 0, max(self.parameters.size - 2, 0)))
        if self.parameters.size == 1:
            return StepResponse(self.coefficients[0], self.time_step)
        w = (p - self.parameters[i]) / (self.parameters[i + 1] - self.parameters[i])
        return StepResponse((1 - w) * self.coefficients[i] + w * self.coefficients[i + 1], self.time_step)


@dataclasses.dataclass(frozen=True)
class ControlPlan:
    """The controller's answer.

    Attributes:
        inputs: planned ``u_{k+1} … u_{k+H}`` (apply the first).
        predicted: the model's outputs for them, bias included.
        bias: ``d``, the twin's output minus the model's at step ``k``.
        feasible: whether the limit holds over the whole horizon.
        message: the optimiser's message.
    """

    inputs: np.ndarray
    predicted: np.ndarray
    bias: float
    feasible: bool
    message: str


class PredictiveController:
    """Receding-horizon control of one input under an upper limit on one output.

    Args:
        model: the step-response model (re-identify it as the twin's parameters move).
        horizon: ``H`` steps.
        limit: ``y_max``.
        move_weight: ``λ``, the weight of input moves against tracking.
        bounds: ``(u_min, u_max)``.
        scale: input scale of the objective (e.g. the largest target input).
    """

    def __init__(self, model: StepResponse, *, horizon: int, limit: float, move_weight: float = 0.05,
                 bounds: tuple[float, float] = (0.0, np.inf), scale: float = 1.0) -> None:
        if horizon < 1 or not scale > 0.0 or move_weight < 0.0 or not bounds[0] < bounds[1]:
            raise ConfigError(
                f"need horizon ≥ 1, scale > 0, move_weight ≥ 0 and u_min < u_max; got {horizon!r}, "
                f"{scale!r}, {move_weight!r}, {bounds!r}"
            )
        self.model, self.horizon, self.limit = model, int(horizon), float(limit)
        self.move_weight, self.bounds, self.scale = float(move_weight), bounds, float(scale)

    def plan(self, past_inputs: npt.ArrayLike, output: float, target: npt.ArrayLike, *,
             margin: float | npt.ArrayLike = 0.0) -> ControlPlan:
        """Plan the next ``H`` inputs.

        Args:
            past_inputs: the inputs applied so far, ``u_1 … u_k`` (empty at the start).
            output: the twin's estimate of the output now, ``y_k``.
            target: the wanted inputs ``u*_{k+1} … u*_{k+H}``.
            margin: ``m``, kept below the limit: one value or one per horizon step (e.g. two
                standard deviations of the twin's forecast of the output, which grow with the
                horizon as its parameters random-walk).
        """
        h = self.horizon
        past = np.asarray(past_inputs, dtype=float).ravel()
        want = np.asarray(target, dtype=float).ravel()
        if want.size != h:
            raise ConfigError(f"target has {want.size} values for a horizon of {h}")
        model_now = float(self.model.simulate(past)[-1]) if past.size else 0.0
        bias = float(output) - model_now
        free = self.model.free_response(past, h) + bias
        g = self.model.dynamic_matrix(h)
        last = float(past[-1]) if past.size else 0.0
        # moves Δ = D u − last e1, with D the differencing matrix
        d = np.eye(h) - np.eye(h, k=-1)
        e1 = np.zeros(h)
        e1[0] = last
        gd = g @ d
        offset = free - g @ e1  # predicted = offset + gd @ u
        bound = self.limit - np.broadcast_to(np.asarray(margin, dtype=float), (h,))
        s2, lam = self.scale**2, self.move_weight

        def objective(u: np.ndarray) -> tuple[float, np.ndarray]:
            r = u - want
            m = d @ u - e1
            value = (r @ r + lam * (m @ m)) / s2
            return value, 2.0 * (r + lam * d.T @ m) / s2

        constraint = {"type": "ineq", "fun": lambda u: bound - (offset + gd @ u), "jac": lambda u: -gd}
        bounds = [self.bounds] * h
        start = np.clip(np.minimum(want, last), *self.bounds)
        result = scipy.optimize.minimize(objective, start, jac=True, method="SLSQP", bounds=bounds,
                                         constraints=[constraint], options={"maxiter": 200, "ftol": 1e-12})
        u = np.clip(result.x, *self.bounds)
        predicted = offset + gd @ u
        feasible = bool(result.success and np.all(predicted <= bound + 1e-9 * max(abs(self.limit), 1.0)))
        message = str(result.message)
        if not feasible:
            weight = 1e6 / max(abs(self.limit), 1e-300) ** 2

            def penalised(v: np.ndarray) -> tuple[float, np.ndarray]:
                value, grad = objective(v)
                excess = np.maximum(offset + gd @ v - bound, 0.0)
                return value + weight * (excess @ excess), grad + 2.0 * weight * gd.T @ excess

            soft = scipy.optimize.minimize(penalised, u, jac=True, method="L-BFGS-B", bounds=bounds)
            u = np.clip(soft.x, *self.bounds)
            predicted = offset + gd @ u
            message = f"limit not reachable over the horizon; violation minimised ({soft.message})"
        return ControlPlan(u, predicted, bias, feasible, message)
