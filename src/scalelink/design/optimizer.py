"""Batch Bayesian optimisation with constraints and missing (failed) runs.

Every evaluated point carries an objective value ``f`` and constraint values ``g_i`` (feasible
when ``g_i ≤ 0``), or nothing at all when its run failed: failed points are left out of the
objective and constraint fits (missing data) and are never proposed again. Each quantity gets
its own Gaussian process (scikit-learn, Matérn-5/2, fitted nugget; see
:func:`scalelink.multifidelity.fit_gaussian_process`) on inputs scaled to the unit box. Once a
run has failed, one more GP on every run, ``+1`` where it failed and ``−1`` where it worked,
enters the acquisition like a constraint, so that proposals keep away from where runs fail.

The acquisition is constrained expected improvement (Gardner et al. 2014)::

    a(x) = EI_f(x; f*) · Π_i P(g_i(x) ≤ 0),   EI = (f* − μ) Φ(z) + s φ(z),  z = (f* − μ)/s

with ``f*`` the best feasible value observed; while no observed point is feasible, ``a`` is the
probability of feasibility alone. It is maximised over a Latin hypercube of candidates that
meet the variable constraints, the best few polished with L-BFGS-B.

A batch of ``q`` points (one per MPI rank) is built with the *kriging believer*: after each
choice the GPs are conditioned, with their hyperparameters frozen, on their own mean at that
point, which collapses the variance there and pushes the next choice elsewhere.

Expected improvement keeps weighing every basin that might still hold a better value, and so
refines the best one slowly: on Branin, whose three minima are equally deep, it reached 1 % of
the minimum after 28 of 30 evaluations (median of 10 seeds). In the last ``exploit`` share of
the budget the first design of every batch is instead the minimiser of the objective's
posterior mean, softly kept feasible::

    a_exploit(x) = −(μ_f(x) − f*) / s_f + Σ_i log P(g_i(x) ≤ 0)

(``s_f`` the spread of the observed objective values); the rest of a batch stays with expected
improvement. Before that share begins the proposals are those of expected improvement alone.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.linalg
import scipy.optimize
from scipy.stats import norm, qmc
from sklearn.gaussian_process.kernels import Kernel

from scalelink.bridge.errors import ConfigError
from scalelink.multifidelity.cokriging import fit_gaussian_process

from .space import DesignSpace

__all__ = ["BatchOptimizer", "Observation"]


@dataclasses.dataclass(frozen=True)
class Observation:
    """One evaluated design: inputs ``x`` (variables' units), objective and constraint values
    (``None`` when the run failed) and the failure message."""

    x: np.ndarray
    objective: float | None
    constraints: tuple[float, ...] = ()
    error: str | None = None


class BatchOptimizer:
    """Proposes batches of designs from the observations so far.

    Args:
        space: the design space.
        num_constraints: number of output constraints ``g_i`` per observation.
        seed: seed of the initial design, the candidates and the GP restarts.
        restarts: extra starts of each GP hyperparameter fit.
        candidates: Latin-hypercube candidates per proposal.
        budget: evaluations in all; with ``exploit``, when the exploitation begins.
        exploit: share of ``budget``, at its end, in which the first design of a batch minimises
            the posterior mean (module docstring); 0 or no ``budget``: expected improvement
            throughout.
    """

    def __init__(
        self, space: DesignSpace, *, num_constraints: int = 0, seed: int = 0, restarts: int = 2,
        candidates: int = 2000, budget: int | None = None, exploit: float = 0.0,
    ) -> None:
        if not 0.0 <= exploit < 1.0:
            raise ConfigError(f"exploit: expected a share of the budget in [0, 1), got {exploit!r}")
        self.space, self.num_constraints = space, int(num_constraints)
        self.seed, self.restarts, self.candidates = int(seed), int(restarts), int(candidates)
        self.exploit_from = None if budget is None or exploit == 0.0 else int(budget) - round(exploit * budget)
        self.observations: list[Observation] = []

    def tell(self, observation: Observation) -> None:
        """Record one evaluated design (successful or failed)."""
        if observation.objective is not None and len(observation.constraints) != self.num_constraints:
            raise ConfigError(
                f"observation has {len(observation.constraints)} constraint values, expected {self.num_constraints}"
            )
        self.observations.append(observation)

    def best(self) -> Observation | None:
        """The best feasible observation so far (lowest objective), or ``None``."""
        good = [o for o in self.observations if o.objective is not None and all(g <= 0.0 for g in o.constraints)]
        return min(good, key=lambda o: o.objective) if good else None

    def initial(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """A space-filling first batch ``(count, dim)`` meeting the variable constraints."""
        return self.space.sample(count, rng)[:count]

    def propose(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` new designs ``(count, dim)`` by constrained EI and the kriging believer."""
        done = [o for o in self.observations if o.objective is not None]
        if len(done) < 2:
            return self.initial(count, rng)
        x = self.space.to_unit(np.array([o.x for o in done]))
        targets = [np.array([o.objective for o in done])]
        targets += [np.array([o.constraints[i] for o in done]) for i in range(self.num_constraints)]
        gps = [_Posterior.fit(x, y, restarts=self.restarts, seed=self.seed + len(self.observations))
               for y in targets]
        failed = [o for o in self.observations if o.objective is None]
        if failed:
            # success model: +1 where a run failed, −1 where it worked, used like a constraint
            everywhere = self.space.to_unit(np.array([o.x for o in done + failed]))
            labels = np.array([-1.0] * len(done) + [1.0] * len(failed))
            gps.append(_Posterior.fit(everywhere, labels, restarts=self.restarts, seed=self.seed))
        best = self.best()
        incumbent = None if best is None else best.objective
        taken = self.space.to_unit(np.array([o.x for o in self.observations]))
        exploiting = (incumbent is not None and self.exploit_from is not None
                      and len(self.observations) >= self.exploit_from)
        batch: list[np.ndarray] = []
        for k in range(count):
            point = self._maximise(gps, incumbent, taken, rng, exploit=exploiting and k == 0)
            batch.append(point)
            taken = np.vstack([taken, point])
            gps = [gp.believe(point) for gp in gps]
        return self.space.from_unit(np.array(batch))

    def acquisition(
        self, gps: list[_Posterior], incumbent: float | None, u: np.ndarray, *, exploit: bool = False
    ) -> np.ndarray:
        """Log of the constrained EI (or of the probability of feasibility) at unit points ``u``;
        with ``exploit``, the exploitation score of the module docstring."""
        log_a = np.zeros(u.shape[0])
        for gp in gps[1:]:
            mean, std = gp.predict(u)
            log_a += norm.logcdf(-mean / np.maximum(std, 1e-12))
        if exploit and incumbent is not None:
            return log_a - (gps[0].predict(u)[0] - incumbent) / gps[0].scale
        if incumbent is not None:
            mean, std = gps[0].predict(u)
            std = np.maximum(std, 1e-12)
            z = (incumbent - mean) / std
            ei = std * (z * norm.cdf(z) + norm.pdf(z))
            # far below the incumbent's reach EI underflows: its log tail -z²/2 - log(z²) + log(s φ(0)) instead
            tail = np.log(std) - 0.5 * z**2 - np.log1p(z**2) + np.log(norm.pdf(0.0))
            log_a += np.where(ei > 1e-300, np.log(np.maximum(ei, 1e-300)), tail)
        return log_a

    def _maximise(
        self, gps: list[_Posterior], incumbent: float | None, taken: np.ndarray, rng: np.random.Generator,
        *, exploit: bool = False,
    ) -> np.ndarray:
        space = self.space
        draw = qmc.LatinHypercube(d=space.dim, rng=rng).random(self.candidates)
        draw = draw[space.feasible(space.from_unit(draw))]
        if draw.shape[0] == 0:
            draw = space.to_unit(space.sample(self.candidates, rng))
        # no point twice: a candidate on top of an evaluated (or failed) one is dropped
        spacing = np.min(np.linalg.norm(draw[:, None, :] - taken[None, :, :], axis=2), axis=1)
        draw = draw[spacing > 1e-6] if np.any(spacing > 1e-6) else draw
        values = self.acquisition(gps, incumbent, draw, exploit=exploit)
        best_u, best_value = draw[np.argmax(values)], values.max()
        for start in draw[np.argsort(values)[-5:]]:
            result = scipy.optimize.minimize(
                lambda v: -self.acquisition(gps, incumbent, v[None, :], exploit=exploit)[0], start, method="L-BFGS-B",
                bounds=[(0.0, 1.0)] * space.dim, options={"maxiter": 50},
            )
            point = np.clip(result.x, 0.0, 1.0)
            far = np.min(np.linalg.norm(taken - point, axis=1)) > 1e-6
            if -result.fun > best_value and far and space.feasible(space.from_unit(point[None, :]))[0]:
                best_u, best_value = point, -result.fun
        return best_u


class _Posterior:
    """A GP posterior with frozen hyperparameters (a fitted scikit-learn kernel) on outputs
    normalised by ``(y − shift) / scale``; :meth:`believe` conditions it on its own mean."""

    def __init__(self, kernel: Kernel, x: np.ndarray, y: np.ndarray, shift: float, scale: float) -> None:
        self.kernel, self.x, self.y, self.shift, self.scale = kernel, x, y, shift, scale
        self._factor = scipy.linalg.cho_factor(kernel(x), lower=True)
        self._alpha = scipy.linalg.cho_solve(self._factor, y)

    @classmethod
    def fit(cls, x: np.ndarray, values: np.ndarray, *, restarts: int, seed: int) -> _Posterior:
        shift, scale = float(values.mean()), float(values.std()) or 1.0
        y = (values - shift) / scale
        return cls(fit_gaussian_process(x, y, restarts=restarts, seed=seed).kernel_, x, y, shift, scale)

    def predict(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation at unit points ``u`` ``(n, dim)``, in output units."""
        cross = self.kernel(u, self.x)
        solved = scipy.linalg.cho_solve(self._factor, cross.T)
        var = self.kernel.diag(u) - np.einsum("ij,ji->i", cross, solved)
        return self.shift + self.scale * (cross @ self._alpha), self.scale * np.sqrt(np.maximum(var, 0.0))

    def believe(self, point: np.ndarray) -> _Posterior:
        mean = (self.predict(point[None, :])[0][0] - self.shift) / self.scale
        return _Posterior(self.kernel, np.vstack([self.x, point]), np.append(self.y, mean), self.shift, self.scale)
