"""Ensemble members spread over MPI ranks, each forecast by its own model instance.

Member ``i`` of ``N`` lives on rank ``i mod size`` of the communicator: that rank builds its
model (e.g. an FE² plate on ``MPI.COMM_SELF``, see :mod:`scalelink.twin.plate`) and forecasts
it. After a forecast every rank holds every member's new state, gathered in member order, so the
analysis that follows is computed redundantly — and identically — on every rank: 2 ranks give
the same analysis as 1.

A member whose forecast fails (an :class:`~scalelink.fe2.macro.FE2SolveError`, a singular
matrix, a non-finite result...) is dropped from the ensemble with a warning; the forecast goes
on with the others. Programming errors (``TypeError``, ``KeyError``...) are not caught.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from scalelink.bridge.errors import ConfigError, ScaleLinkError

__all__ = ["DistributedEnsemble", "DroppedMember", "EnsembleError", "MemberModel", "MemberWarning"]

# What a failing member step may raise; everything else is a bug and propagates.
_FAILURES = (ScaleLinkError, ArithmeticError, np.linalg.LinAlgError, ValueError, RuntimeError)


class EnsembleError(ScaleLinkError):
    """Too few ensemble members are left to go on."""


class MemberWarning(UserWarning):
    """An ensemble member was dropped because its forecast failed."""


class MemberModel(Protocol):
    """The forecast model of individual members (one instance per rank, holding its members).

    ``step`` gets the member's state at ``t0`` (after the analysis and the process noise) and
    returns its state at ``t1``; ``inputs`` are the controls at ``t1`` (e.g. the applied load).
    """

    def add_member(self, member: int, state: np.ndarray) -> None: ...

    def step(self, member: int, state: np.ndarray, t0: float, t1: float,
             inputs: Mapping[str, Any]) -> np.ndarray: ...

    def remove_member(self, member: int) -> None: ...


@dataclasses.dataclass(frozen=True)
class DroppedMember:
    """A member removed from the ensemble: its id, the forecast's end time and the error."""

    member: int
    time: float
    message: str


class _SerialComm:
    rank, size = 0, 1

    @staticmethod
    def allgather(value: Any) -> list[Any]:
        return [value]


class DistributedEnsemble:
    """Members of an ensemble on the ranks of ``comm`` (round-robin), forecast where they live.

    Args:
        model: the rank's :class:`MemberModel`.
        states: initial states ``(N, n)``, the same on every rank.
        comm: an mpi4py communicator, or ``None`` for one process.
        min_members: raise :class:`EnsembleError` when fewer members survive a forecast.
    """

    def __init__(self, model: MemberModel, states: npt.ArrayLike, *, comm: Any = None,
                 min_members: int = 2) -> None:
        x = np.array(states, dtype=float, ndmin=2)
        if x.ndim != 2 or x.shape[0] < 2:
            raise ConfigError(f"need at least 2 initial states as rows (N, n), got shape {x.shape}")
        self.model = model
        self.comm = comm if comm is not None else _SerialComm()
        self.min_members = int(min_members)
        self.members = list(range(x.shape[0]))
        self.dropped: list[DroppedMember] = []
        for member in self.members:
            if self.owns(member):
                model.add_member(member, x[member].copy())

    def owns(self, member: int) -> bool:
        """Whether ``member`` lives on this rank."""
        return member % self.comm.size == self.comm.rank

    @property
    def owned(self) -> list[int]:
        """The ids of this rank's surviving members."""
        return [m for m in self.members if self.owns(m)]

    def forecast(self, states: npt.ArrayLike, t0: float, t1: float,
                 inputs: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Forecast every surviving member from ``t0`` to ``t1``.

        Args:
            states: the surviving members' states ``(len(members), n)`` in member order.

        Returns:
            ``(kept, new_states)``: the row indices (into ``states``) of the members that
            survived and their states at ``t1``, the same on every rank.
        """
        x = np.asarray(states, dtype=float)
        if x.shape[0] != len(self.members):
            raise ConfigError(f"{x.shape[0]} states for {len(self.members)} surviving members")
        local: dict[int, tuple[bool, Any]] = {}
        for row, member in enumerate(self.members):
            if not self.owns(member):
                continue
            try:
                new = np.asarray(self.model.step(member, x[row].copy(), float(t0), float(t1),
                                                 dict(inputs or {})), dtype=float)
                if new.shape != x[row].shape or not np.all(np.isfinite(new)):
                    raise FloatingPointError(
                        f"the forecast returned shape {new.shape} (expected {x[row].shape}) or "
                        "non-finite values"
                    )
                local[member] = (True, new)
            except _FAILURES as exc:
                local[member] = (False, f"{type(exc).__name__}: {exc}")
        merged: dict[int, tuple[bool, Any]] = {}
        for part in self.comm.allgather(local):
            merged.update(part)
        kept, out = [], []
        for row, member in enumerate(self.members):
            ok, value = merged[member]
            if ok:
                kept.append(row)
                out.append(value)
                continue
            self.dropped.append(DroppedMember(member, float(t1), value))
            if self.comm.rank == 0:
                warnings.warn(f"ensemble member {member} dropped: its forecast to t = {t1:g} "
                              f"failed ({value})", MemberWarning, stacklevel=2)
            if self.owns(member):
                self.model.remove_member(member)
        self.members = [self.members[row] for row in kept]
        if len(self.members) < self.min_members:
            reasons = "; ".join(f"member {d.member}: {d.message}" for d in self.dropped[-3:])
            raise EnsembleError(
                f"only {len(self.members)} ensemble members survived the forecast to t = {t1:g} "
                f"(at least {self.min_members} needed); last failures: {reasons}"
            )
        return np.asarray(kept, dtype=int), np.asarray(out, dtype=float).reshape(len(kept), x.shape[1])
