"""The design loop of ``scalelink design``: propose a batch, run it on the MPI ranks, record,
repeat; a state file after every batch lets a killed study resume where it stopped.

Rank 0 proposes and records; the batch is broadcast and design ``k`` of a batch runs on rank
``k mod size`` (each rank builds its own micro model on ``MPI.COMM_SELF``). A run that raises or
returns non-finite outputs is recorded as failed and left out of the fits (missing data).

The state file (JSON) holds every observation, the batch being evaluated (``pending``) and the
random generator's state; it is replaced atomically. A resumed study re-runs the pending batch
and then proposes exactly what an uninterrupted one would have.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from scalelink.bridge.errors import ConfigError, ScaleLinkError

from .config import DesignConfig
from .models import Evaluator, build_evaluator
from .optimizer import BatchOptimizer, Observation

__all__ = ["DesignError", "DesignResult", "run_design"]

STATE_VERSION = 1


class DesignError(ScaleLinkError):
    """A design study cannot go on: every run failed, or the state file belongs to another study."""


@dataclasses.dataclass(frozen=True)
class DesignResult:
    """Outcome of :func:`run_design` (on rank 0; other ranks get ``None``).

    Attributes:
        observations: every evaluated design, in order.
        outputs: the micro-model outputs of each observation (``None`` where the run failed).
        best: index into ``observations`` of the best feasible design, or ``None``.
        best_history: best feasible objective after each evaluation (NaN before the first), in
            the objective's own sense (a maximised objective is reported as is).
        state_path: the state file.
        plot_path: the convergence plot, or ``None``.
    """

    observations: list[Observation]
    outputs: list[dict[str, float] | None]
    best: int | None
    best_history: np.ndarray
    state_path: str
    plot_path: str | None


def _digest(config: DesignConfig) -> str:
    study = {"variables": config.variables, "model": config.model, "objective": config.objective,
             "goal": config.goal, "constraints": list(config.constraints), "seed": config.seed}
    return hashlib.sha256(json.dumps(study, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _Study:
    """Rank 0's book-keeping: observations, their outputs, the pending batch, the generator."""

    def __init__(self, config: DesignConfig) -> None:
        self.config = config
        self.space = config.space()
        self.objective = config.objective_expression()
        self.constraints = config.output_constraints()
        self.sign = 1.0 if config.goal == "minimize" else -1.0
        self.optimizer = BatchOptimizer(self.space, num_constraints=len(self.constraints), seed=config.seed,
                                        restarts=config.restarts, candidates=config.candidates,
                                        budget=config.budget, exploit=float(config.exploit))
        self.outputs: list[dict[str, float] | None] = []
        self.rng = np.random.default_rng(config.seed)
        self.pending: list[list[float]] = []
        self.digest = _digest(config)

    def record(self, x: np.ndarray, outputs: dict[str, float] | None, error: str | None) -> None:
        if outputs is not None:
            values = {**{k: np.asarray(v) for k, v in outputs.items()},
                      **{k: np.asarray(v) for k, v in self.space.values(x[None, :]).items()}}
            needed = self.objective.names.union(*(c.names for c in self.constraints)) - set(values)
            if needed:
                raise ConfigError(
                    f"the objective and constraints read {sorted(needed)}, which the micro model does not "
                    f"return; its outputs are {sorted(outputs)}"
                )
            objective = float(self.sign * self.objective(values).reshape(-1)[0])
            constraints = tuple(float(c(values).reshape(-1)[0]) for c in self.constraints)
            if not all(math.isfinite(v) for v in (objective, *constraints)):
                outputs, error = None, f"non-finite objective or constraint: {objective}, {constraints}"
        if outputs is None:
            self.optimizer.tell(Observation(np.asarray(x, float), None, (), error))
        else:
            self.optimizer.tell(Observation(np.asarray(x, float), objective, constraints))
        self.outputs.append(outputs)

    def save(self, path: str) -> None:
        state = {
            "version": STATE_VERSION, "study": self.digest, "variables": self.space.names,
            "observations": [
                {"x": o.x.tolist(), "outputs": out, "error": o.error}
                for o, out in zip(self.optimizer.observations, self.outputs)
            ],
            "pending": self.pending, "rng": self.rng.bit_generator.state,
        }
        temporary = f"{path}.tmp"
        with open(temporary, "w") as handle:
            json.dump(state, handle, indent=1)
        os.replace(temporary, path)

    def load(self, path: str) -> None:
        try:
            with open(path) as handle:
                state = json.load(handle)
        except (OSError, json.JSONDecodeError) as exc:
            raise DesignError(f"cannot read the design state {path!r} ({exc}); delete it to start afresh") from None
        if state.get("version") != STATE_VERSION or state.get("study") != self.digest:
            raise DesignError(
                f"the state file {path!r} belongs to another study (variables, model, objective, constraints or "
                "seed differ); give another `state:` path or delete the file to start afresh"
            )
        for item in state["observations"]:
            self.record(np.array(item["x"]), item["outputs"], item["error"])
        self.pending = [list(map(float, x)) for x in state["pending"]]
        self.rng.bit_generator.state = state["rng"]


def _evaluate(evaluator: Evaluator, names: list[str], x: np.ndarray) -> tuple[dict[str, float] | None, str | None]:
    design = {name: float(v) for name, v in zip(names, x)}
    try:
        outputs = evaluator(design)
    except Exception as exc:  # a failed run is missing data, not the end of the study
        return None, f"{type(exc).__name__}: {exc}"
    if not all(math.isfinite(v) for v in outputs.values()):
        return None, f"non-finite outputs {outputs}"
    return outputs, None


def _world() -> Any:
    try:
        import mpi4py.MPI as MPI
    except ImportError:
        return None
    return MPI.COMM_WORLD


def run_design(
    config: DesignConfig, *, comm: Any = "world", evaluator: Evaluator | None = None, progress: bool = False,
) -> DesignResult | None:
    """Run (or resume) a design study to its budget.

    Args:
        config: the study.
        comm: MPI communicator whose ranks share each batch (``"world"``: ``COMM_WORLD`` if
            mpi4py is there; ``None``: this process alone).
        evaluator: the micro model as a function ``{variable: value} -> {output: value}``
            (default: built from ``config.model``).
        progress: print one line per batch on rank 0.

    Returns:
        The :class:`DesignResult` on rank 0, ``None`` on the other ranks.

    Raises:
        DesignError: every run of the first batches failed, or the state file is another study's.
        ConfigError: the objective or constraints read outputs the micro model does not return.
    """
    comm = _world() if comm == "world" else comm
    rank, size = (0, 1) if comm is None else (comm.rank, comm.size)
    evaluator = evaluator or build_evaluator(config.model, list(config.variables))
    study = _Study(config) if rank == 0 else None
    batch_size = config.batch_size or size
    error: str | None = None
    if study is not None:
        try:
            if os.path.exists(config.state):
                study.load(config.state)
            else:
                study.pending = study.optimizer.initial(config.initial_count(), study.rng).tolist()
        except ScaleLinkError as exc:
            error = f"{type(exc).__name__}:{exc}"
    _raise_agreed(comm, error)
    while True:
        batch = None
        if study is not None:
            try:
                batch = _next_batch(study, batch_size)
            except ScaleLinkError as exc:
                batch = f"{type(exc).__name__}:{exc}"
        batch = batch if comm is None else comm.bcast(batch, root=0)
        _raise_agreed(comm, batch if isinstance(batch, str) else None)
        if not batch:
            break
        mine = {k: _evaluate(evaluator, list(config.variables), np.array(x)) for k, x in enumerate(batch)
                if k % size == rank}
        gathered = [mine] if comm is None else comm.gather(mine, root=0)
        if study is not None:
            results = {k: v for part in gathered for k, v in part.items()}
            try:
                for k, x in enumerate(batch):
                    study.record(np.array(x), *results[k])
                study.pending = study.pending[len(batch):]
                study.save(config.state)
                _check_not_all_failed(study)
            except ScaleLinkError as exc:
                error = f"{type(exc).__name__}:{exc}"
            if progress and error is None:
                best = study.optimizer.best()
                shown = "none feasible yet" if best is None else f"{study.sign * best.objective:.6g}"
                print(f"{len(study.outputs)}/{config.budget} evaluations; best {config.objective}: {shown}", flush=True)
        _raise_agreed(comm, error)
    if study is None:
        return None
    return _result(study)


def _next_batch(study: _Study, batch_size: int) -> list[list[float]]:
    remaining = study.config.budget - len(study.outputs)
    if remaining <= 0:
        return []
    if not study.pending:
        from threadpoolctl import threadpool_limits

        # small dense algebra: BLAS threads only contend with the ranks' micro models
        with threadpool_limits(1):
            study.pending = study.optimizer.propose(min(batch_size, remaining), study.rng).tolist()
        study.save(study.config.state)
    return study.pending[: min(batch_size, remaining)]


def _check_not_all_failed(study: _Study) -> None:
    errors = [o.error for o in study.optimizer.observations]
    if len(errors) >= min(study.config.initial_count(), study.config.budget) and all(e is not None for e in errors):
        raise DesignError(
            f"all {len(errors)} runs of the micro model failed; the first said: {errors[0]}. Check the model "
            f"settings (a failed run is otherwise skipped as missing data); state kept in {study.config.state}"
        )


def _raise_agreed(comm: Any, error: str | None) -> None:
    """Raise the same error on every rank (rank 0 decides), so that no rank hangs."""
    if comm is not None:
        error = comm.bcast(error, root=0)
    if error is not None:
        kind, _, message = error.partition(":")
        raise (ConfigError if kind == "ConfigError" else DesignError)(message)


def _result(study: _Study) -> DesignResult:
    observations = study.optimizer.observations
    history, best_value, best_index = [], math.inf, None
    for k, o in enumerate(observations):
        if o.objective is not None and all(g <= 0.0 for g in o.constraints) and o.objective < best_value:
            best_value, best_index = o.objective, k
        history.append(study.sign * best_value if best_index is not None else math.nan)
    plot = study.config.plot
    if plot:
        plot_convergence(observations, np.array(history), study.sign, study.config.objective, plot)
    return DesignResult(observations, study.outputs, best_index, np.array(history), study.config.state, plot)


def plot_convergence(observations: list[Observation], history: np.ndarray, sign: float, label: str,
                     path: str) -> None:
    """Objective of every run (feasible: dots, infeasible: circles, failed: crosses on the axis)
    and the best feasible value so far, against the evaluation count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    count = np.arange(1, len(observations) + 1)
    ok = [k for k, o in enumerate(observations) if o.objective is not None]
    feasible = [k for k in ok if all(g <= 0.0 for g in observations[k].constraints)]
    infeasible = sorted(set(ok) - set(feasible))
    failed = [k for k, o in enumerate(observations) if o.objective is None]
    values = {k: sign * observations[k].objective for k in ok}
    ax.plot(count[feasible], [values[k] for k in feasible], "o", ms=4, label="feasible run")
    if infeasible:
        ax.plot(count[infeasible], [values[k] for k in infeasible], "o", mfc="none", ms=4, label="infeasible run")
    if failed:
        ymin = min(values.values()) if values else 0.0
        ax.plot(count[failed], np.full(len(failed), ymin), "x", color="red", label="failed run")
    ax.step(count, history, where="post", color="black", label="best feasible")
    ax.set_xlabel("evaluations")
    ax.set_ylabel(label)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary(result: DesignResult, variables: Mapping[str, Any], objective: str) -> str:
    """One paragraph on the best design found."""
    if result.best is None:
        return f"{len(result.observations)} evaluations, no feasible design found"
    o = result.observations[result.best]
    design = ", ".join(f"{name} = {v:.6g}" for name, v in zip(variables, o.x))
    failed = sum(1 for obs in result.observations if obs.objective is None)
    return (f"{len(result.observations)} evaluations ({failed} failed); best {objective} = "
            f"{result.best_history[-1]:.6g} at evaluation {result.best + 1}: {design}")
