"""The digital twin: an ensemble forecast model kept up to date with asynchronous observations.

:class:`DigitalTwin` couples an :class:`~scalelink.twin.enkf.EnsembleKalmanFilter` (the
analyses) with a :class:`~scalelink.twin.ensemble.DistributedEnsemble` (the forecasts) and keeps
a time-ordered queue of observations. :meth:`DigitalTwin.advance` moves the twin to a time,
stopping at every observation on the way: the ensemble is forecast exactly to the time an
observation was taken and analysed there, so streams with their own rates and clocks (strain
gauges every fraction of a second, an assay now and then) need no common grid.

Results that arrive *late* — an assay taken at ``t_s`` whose value comes back from the
laboratory at ``t_r > t_s`` — are assimilated exactly by state augmentation (a fixed-lag
smoother): :meth:`DigitalTwin.sample` marks the moment the specimen is taken; at ``t_s`` the
twin appends each member's predicted observation ``h(x_i(t_s))`` to its state vector, where it
is carried unchanged through later forecasts and corrected by later analyses through its
correlation with the rest of the state; :meth:`DigitalTwin.report` delivers the value, which is
then assimilated as a direct observation of those columns, and the columns are dropped. For a
linear-Gaussian model this gives the same posterior as assimilating the value on time (tested).

The state the members see is the model state ``(n,)``; the filter's state is that plus the
columns of samples awaiting their results.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from scalelink.bridge.errors import ConfigError

from .enkf import AnalysisRecord, EnsembleKalmanFilter, Localisation, Observation, _covariance_matrix
from .ensemble import DistributedEnsemble

__all__ = ["DigitalTwin", "Sample", "TimedRecord"]

_EPS = 1e-12


@dataclasses.dataclass(frozen=True)
class Sample:
    """A measurement taken at ``time`` whose value will arrive later (:meth:`DigitalTwin.report`)."""

    ticket: int
    time: float
    observation: Observation


@dataclasses.dataclass(frozen=True)
class TimedRecord:
    """An analysis: when it was made, the time its observation refers to, and its statistics."""

    time: float
    observed_at: float
    record: AnalysisRecord


class DigitalTwin:
    """Ensemble forecasts, asynchronous observations and analyses in time order.

    Args:
        enkf: the filter; its ensemble holds the initial model states ``(N, n)``, its
            ``inflation`` (one factor or ``(n,)``) and ``localisation`` refer to the model state.
        ensemble: the members' forecast model, with the same initial states.
        process_noise: ``Q`` per unit time of the model state (``(n, n)`` covariance or
            ``(n,)`` standard deviations per √time), or a callable ``dt -> Q(dt)``; the noise
            ``w_i ~ N(0, Q(dt))`` is added to each member's state at the start of a forecast
            (a random walk of the parameters). ``None``: no process noise.
        time: the initial time.
    """

    def __init__(self, enkf: EnsembleKalmanFilter, ensemble: DistributedEnsemble, *,
                 process_noise: Any = None, time: float = 0.0) -> None:
        if enkf.size != len(ensemble.members):
            raise ConfigError(f"the filter has {enkf.size} members, the ensemble {len(ensemble.members)}")
        self.enkf, self.ensemble = enkf, ensemble
        self.n = enkf.size_state
        self.time = float(time)
        self._base_localisation = enkf.localisation
        self._process_noise = process_noise
        self._queue: list[tuple[float, int, str, Any]] = []
        self._counter = itertools.count()
        self._columns: list[tuple[Sample, int]] = []  # samples held as state columns: (sample, width)
        self._arrived: dict[int, np.ndarray] = {}
        self._samples: dict[int, Sample] = {}
        self._forecast_since_analysis = False
        self.records: list[TimedRecord] = []

    # -- what the twin knows --

    @property
    def mean(self) -> np.ndarray:
        """Ensemble mean of the model state ``(n,)``."""
        return self.enkf.mean[: self.n]

    @property
    def covariance(self) -> np.ndarray:
        """Ensemble covariance of the model state ``(n, n)``."""
        return self.enkf.covariance[: self.n, : self.n]

    @property
    def states(self) -> np.ndarray:
        """The members' model states ``(N, n)``."""
        return self.enkf.ensemble[:, : self.n]

    @property
    def pending(self) -> list[Sample]:
        """Samples taken (or scheduled) whose values have not been assimilated yet."""
        return list(self._samples.values())

    def estimate(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of the predicted value of a sample held as state columns (taken,
        value not yet assimilated): the smoothed estimate ``h(x(t_s))`` given the data so far."""
        offset = self.n
        for held, width in self._columns:
            if held.ticket == sample.ticket:
                cols = slice(offset, offset + width)
                return self.enkf.mean[cols], self.enkf.covariance[cols, cols]
            offset += width
        raise ConfigError(f"sample {sample.ticket} ({sample.observation.name!r}) is not held by the twin")

    # -- observations --

    def observe(self, time: float, observation: Observation, value: npt.ArrayLike) -> None:
        """Queue an observation taken at ``time`` (≥ the twin's time) with its value."""
        t = float(time)
        if t < self.time - _EPS:
            raise ConfigError(
                f"observation {observation.name!r} refers to t = {t:g} but the twin is at "
                f"t = {self.time:g}; for results that arrive after the twin has passed their "
                "time, call sample() at the time the measurement is taken and report() later"
            )
        heapq.heappush(self._queue, (t, next(self._counter), "value",
                                     (observation, np.atleast_1d(np.asarray(value, dtype=float)))))

    def sample(self, time: float, observation: Observation) -> Sample:
        """Announce a measurement taken at ``time`` whose value will be reported later."""
        t = float(time)
        if t < self.time - _EPS:
            raise ConfigError(f"a sample at t = {t:g} is in the past of the twin (t = {self.time:g})")
        sample = Sample(next(self._counter), t, observation)
        self._samples[sample.ticket] = sample
        heapq.heappush(self._queue, (t, sample.ticket, "sample", sample))
        return sample

    def report(self, sample: Sample, value: npt.ArrayLike) -> None:
        """The value of ``sample`` has arrived; it is assimilated at the next :meth:`advance`
        (or :meth:`assimilate_arrived`) — at its own time if the twin has not reached it yet."""
        if sample.ticket not in self._samples:
            raise ConfigError(f"sample {sample.ticket} ({sample.observation.name!r}) is not pending")
        self._arrived[sample.ticket] = np.atleast_1d(np.asarray(value, dtype=float))

    # -- time stepping --

    def advance(self, until: float, inputs: Callable[[float], Mapping[str, Any]] | None = None) -> list[TimedRecord]:
        """Forecast to ``until``, analysing every observation taken on the way (and at ``until``).

        Args:
            until: the end time (≥ the twin's time).
            inputs: controls as a function of time, ``t -> {"name": value}``; each forecast
                step from ``t0`` to ``t1`` gets ``inputs(t1)``.

        Returns:
            The analyses made, in order.
        """
        end = float(until)
        if end < self.time - _EPS:
            raise ConfigError(f"cannot advance backwards from t = {self.time:g} to {end:g}")
        start = len(self.records)
        self.assimilate_arrived()
        while self._queue and self._queue[0][0] <= end + _EPS:
            t = self._queue[0][0]
            self._forecast(t, inputs)
            while self._queue and self._queue[0][0] <= t + _EPS:
                _, _, kind, item = heapq.heappop(self._queue)
                if kind == "value":
                    self._analyse(item[0], item[1], t, t)
                elif item.ticket in self._arrived:  # the value came before its time did
                    self._analyse(item.observation, self._arrived.pop(item.ticket), t, t)
                    del self._samples[item.ticket]
                else:
                    self._hold(item)
        self._forecast(end, inputs)
        return self.records[start:]

    def assimilate_arrived(self) -> list[TimedRecord]:
        """Assimilate the reported values of samples already held as state columns."""
        start = len(self.records)
        for sample, width in list(self._columns):
            if sample.ticket not in self._arrived:
                continue
            offset = self.n + sum(w for s, w in self._columns[: self._columns.index((sample, width))])
            selector = np.zeros((width, self.enkf.size_state))
            selector[np.arange(width), offset + np.arange(width)] = 1.0
            obs = sample.observation
            value = self._arrived.pop(sample.ticket)
            held = Observation(obs.name, selector, obs.covariance(width), obs.positions)
            self._analyse(held, value, self.time, sample.time, on_model_state=False)
            keep = np.setdiff1d(np.arange(self.enkf.size_state), offset + np.arange(width))
            self.enkf.set_ensemble(self.enkf.ensemble[:, keep])
            self._columns.remove((sample, width))
            del self._samples[sample.ticket]
            self._update_localisation()
        return self.records[start:]

    # -- internals --

    def _process_covariance(self, dt: float) -> np.ndarray | None:
        if self._process_noise is None or dt <= 0.0:
            return None
        if callable(self._process_noise):
            return _covariance_matrix("process noise", self._process_noise(dt), self.n)
        return dt * _covariance_matrix("process noise", self._process_noise, self.n)

    def _forecast(self, t1: float, inputs: Callable[[float], Mapping[str, Any]] | None) -> None:
        if t1 <= self.time + _EPS:
            return
        x = self.enkf.ensemble
        q = self._process_covariance(t1 - self.time)
        start = x[:, : self.n]
        if q is not None:
            w, v = np.linalg.eigh(q)
            start = start + self.enkf.rng.standard_normal(start.shape) @ (v * np.sqrt(np.clip(w, 0, None))).T
        kept, new = self.ensemble.forecast(start, self.time, t1, None if inputs is None else inputs(t1))
        self.enkf.set_ensemble(np.concatenate([new, x[kept, self.n:]], axis=1))
        self.time = t1
        self._forecast_since_analysis = True

    def _inflate_once(self) -> None:
        """Prior inflation of the model columns, once per forecast ensemble."""
        if not self._forecast_since_analysis:
            return
        lam = np.broadcast_to(np.asarray(self.enkf.inflation, dtype=float), (self.n,))
        extra = np.ones(self.enkf.size_state - self.n)
        self.enkf.inflate(np.concatenate([lam, extra]))
        self._forecast_since_analysis = False

    def _analyse(self, observation: Observation, value: np.ndarray, now: float, at: float,
                 *, on_model_state: bool = True) -> None:
        self._inflate_once()
        extra = self.enkf.size_state - self.n
        if on_model_state and extra:
            observation = _widened(observation, self.n, extra)
        record = self.enkf.assimilate(observation, value)
        self.records.append(TimedRecord(now, at, record))

    def _hold(self, sample: Sample) -> None:
        """Append the members' predicted observations of ``sample`` as state columns."""
        self._inflate_once()
        x = self.enkf.ensemble
        predicted = sample.observation.predict(x[:, : self.n])
        self.enkf.set_ensemble(np.concatenate([x, predicted], axis=1))
        self._columns.append((sample, predicted.shape[1]))
        self._update_localisation()

    def _update_localisation(self) -> None:
        base = self._base_localisation
        if base is None:
            return
        rows = [base.state_positions]
        d = base.state_positions.shape[1]
        for sample, width in self._columns:
            pos = sample.observation.observation_positions(width)
            rows.append(np.full((width, d), np.nan) if pos is None else pos)
        self.enkf.localisation = Localisation(base.radius, np.concatenate(rows), base.period)


def _widened(observation: Observation, n: int, extra: int) -> Observation:
    """``observation`` of the model state ``x[:n]`` as an observation of ``x`` with ``extra``
    more columns (the held samples)."""
    if observation.linear:
        h = observation.operator
        operator: Any = np.concatenate([h, np.zeros((h.shape[0], extra))], axis=1)
    else:
        inner = observation.operator

        def operator(x: np.ndarray) -> np.ndarray:
            return inner(x[:, :n])

    return Observation(observation.name, operator, observation.noise, observation.positions)
