"""A digital twin of a viscoelastic composite plate: an ensemble Kalman filter tracks its drifting
fibre stiffness from strain gauges and laboratory assays, and a model-predictive controller
keeps the plate's peak stress under a limit while following a target loading programme.

The story, step by step:

1. **The part.** A plane-strain composite plate ``[0, 4] × [0, 1]`` mm on rollers at ``x = 0``,
   pulled by a grip displacement ``g(t)`` at ``x = 4`` (:class:`scalelink.twin.plate.PlateSpec`).
   It is fibre-rich over 70 % of its length (with a band of more fibres, where the stress
   peaks) and nearly pure matrix near the grip. The matrix is viscoelastic (a Prony series in
   shear, relaxation times 0.5–80 s); the fibres are elastic with Young's modulus ``E_f`` —
   and ``E_f`` *drifts*: it stiffens by about 45 % over the test, with a wobble.
2. **The truth.** A "real" plate: the same FE² model (a laminate RVE at every quadrature point,
   solved in closed form) stepped twice as finely in time with the true ``E_f(t)``. It provides
   four strain gauges (mean ``ε_xx`` over 0.5 × 0.5 mm patches, two in the stiff zone and two in
   the soft one) every second with 15 µε noise, and a stiffness assay (``E_f`` with 2 % noise)
   sampled every 20 s whose result comes back from the laboratory 6.5 s later.
3. **The twin.** 32 ensemble members, each its own FE² plate with its own ``E_f`` and its own
   viscoelastic history, spread over the MPI ranks. The filter's state is
   ``[z_1 … z_r, log E_f, σ_peak]``: reduced displacement coordinates in a POD basis of the
   model's own responses, the parameter (a random walk in the forecast) and the monitored peak
   stress. The gauges are a linear observation of ``z``; the assay a non-linear one of
   ``log E_f``, assimilated when it *arrives*, at the time it was *taken* (state augmentation,
   :meth:`scalelink.twin.DigitalTwin.sample`). Analyses: serial ensemble square-root filter.
4. **The controller.** Its reduced model is the step response of the peak stress to the grip,
   identified from the twin's own plate at seven fibre stiffnesses and interpolated at the
   twin's current estimate. Every second it plans the next 8 grip displacements by a quadratic
   programme: follow the target, keep the predicted peak stress plus two standard deviations
   of the twin's forecast under the limit; the first is applied.
5. **The verdict.** The same truth plate loaded open-loop with the target breaks the limit; with
   the twin and the controller it does not. The twin's ``E_f`` is checked against the truth at
   every assay time (two standard deviations) and by its NEES at every second.

Run::

    python examples/digital_twin.py             # 32 members, 120 s of test: about 25 s of CPU
    mpirun -n 2 python examples/digital_twin.py # the same analyses, members on 2 ranks
    python examples/digital_twin.py --quick     # 12 members, 40 s of test (the test suite)
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import time
import traceback

import mpi4py.MPI as MPI  # noqa: I001  (before dolfinx)
import numpy as np

from scalelink.twin import DigitalTwin, DistributedEnsemble, EnsembleKalmanFilter, Observation, chi2_band, nees
from scalelink.twin.control import PredictiveController, StepResponseFamily
from scalelink.twin.plate import CompositePlate, PlateMembers, PlateSpec, pod_basis

STEP = 1.0  # s: control period and gauge sampling period
SUBSTEPS = 2  # time steps of the truth per control period
GAUGE_NOISE = 15e-6  # strain
ASSAY_NOISE = 0.02  # relative
ASSAY_DELAY = 6.5  # s from sampling to result
PRIOR_YOUNG, PRIOR_SPREAD = 34.0, 0.15  # GPa; log-normal spread of the initial ensemble
LIMIT = 0.060  # GPa: the peak-stress limit
AMPLITUDE = 0.02  # mm: grip displacement of the target's full cycles


# --- the world: drift, loading programme, truth ----------------------------------------------------


def true_young(t: float) -> float:
    """The fibre stiffness of the real part (GPa): +45 % in 120 s, with a wobble."""
    return 40.0 * (1.0 + 0.45 * t / 120.0 + 0.03 * math.sin(2.0 * math.pi * t / 40.0))


def target_programme(duration: float):  # type: ignore[no-untyped-def]
    """30 s cycles: ramp (6 s), hold (12 s), unload to a quarter (4 s), hold (8 s); amplitudes
    0.8, 0.9, then 1 × AMPLITUDE. Returns the grip displacement wanted at time t."""
    period = 30.0
    times, values = [0.0], [0.0]
    for cycle in range(int(math.ceil(duration / period)) + 1):
        base, peak = cycle * period, AMPLITUDE * min(1.0, 0.8 + 0.1 * cycle)
        for fraction, level in ((0.2, peak), (0.6, peak), (22 / 30, 0.25 * peak), (1.0, 0.25 * peak)):
            times.append(base + fraction * period)
            values.append(level)
    return lambda t: float(np.interp(t, times, values))


class Truth:
    """The real plate: the same model with the true drift, ``SUBSTEPS`` times finer in time."""

    def __init__(self, spec: PlateSpec) -> None:
        self.plate = CompositePlate(spec)
        self.plate.add_member(0, true_young(0.0))
        self.u = np.zeros(self.plate.num_dofs)

    def advance(self, t0: float, t1: float, g0: float, g1: float) -> float:
        """Step from ``t0`` to ``t1`` with the grip linear from ``g0`` to ``g1``; the largest peak
        stress at the substeps (the peak at ``t1`` is :attr:`peak`)."""
        peak = -np.inf
        for s in range(1, SUBSTEPS + 1):
            t = t0 + (t1 - t0) * s / SUBSTEPS
            g = g0 + (g1 - g0) * s / SUBSTEPS
            self.u = self.plate.step(0, true_young(t), g, (t1 - t0) / SUBSTEPS)
            peak = max(peak, self.plate.peak_stress(0))
        return peak

    @property
    def peak(self) -> float:
        return self.plate.peak_stress(0)

    def strains(self) -> np.ndarray:
        return self.plate.gauge_strains(self.u)


def open_loop(spec: PlateSpec, duration: float, target) -> list[float]:  # type: ignore[no-untyped-def]
    """The truth loaded with the target programme as it is: peak stress per control step."""
    truth = Truth(spec)
    steps = int(round(duration / STEP))
    return [truth.advance(k * STEP, (k + 1) * STEP, target(k * STEP), target((k + 1) * STEP))
            for k in range(steps)]


# --- the twin's own pieces: a reduced basis and a reduced model for the controller ---------------


def reduced_basis(plate: CompositePlate, duration: float, target, rank: int) -> tuple[np.ndarray, float]:  # type: ignore[no-untyped-def]
    """POD basis of the model's displacements over the prior range of ``E_f``, and the largest
    gauge error of the projection on those snapshots (strain)."""
    snapshots = []
    for young in (25.0, 40.0, 65.0):
        key = -100
        plate.add_member(key, young)
        for k in range(int(round(duration / STEP))):
            snapshots.append(plate.step(key, young, target((k + 1) * STEP), STEP).copy())
        plate.remove_member(key)
    a = np.asarray(snapshots)
    basis, _ = pod_basis(a, rank=rank)
    error = plate.gauge_matrix @ (a - (a @ basis) @ basis.T).T
    return basis, float(np.abs(error).max())


def identify(plate: CompositePlate, steps: int) -> StepResponseFamily:
    """Step responses of the peak stress to the grip from the twin's own plate, at seven values
    of ``log E_f`` from 25 to 80 GPa (interpolated in between)."""
    return StepResponseFamily.identify(
        lambda log_young, grips: plate.response(math.exp(log_young), grips, STEP),
        np.log(np.geomspace(25.0, 80.0, 7)), steps=steps, time_step=STEP, amplitude=AMPLITUDE)


# --- the run ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=32)
    parser.add_argument("--duration", type=float, default=120.0, help="length of the test (s)")
    parser.add_argument("--horizon", type=int, default=8, help="controller horizon (steps)")
    parser.add_argument("--modes", type=int, default=10, help="POD modes of the displacement")
    parser.add_argument("--inflation", type=float, default=1.02)
    parser.add_argument("--drift-noise", type=float, default=0.012,
                        help="random-walk std of log E_f per √s in the forecast")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--break-member", type=int, default=None,
                        help="corrupt this member's fibre stiffness (1e300 GPa) at --break-at: its "
                             "FE² step fails and the twin drops it")
    parser.add_argument("--break-at", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="12 members, 40 s (tests)")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("digital_twin_out"))
    args = parser.parse_args(argv)
    if args.quick:
        args.members, args.duration = 12, 40.0
    comm = MPI.COMM_WORLD
    root = comm.rank == 0
    start, cpu_start = time.perf_counter(), time.process_time()
    duration, steps = args.duration, int(round(args.duration / STEP))
    target = target_programme(duration)
    spec = PlateSpec()

    # 1. Every rank builds its plate for its members; rank 0 computes the reduced basis.
    plate = CompositePlate(spec)
    basis, pod_error = comm.bcast(reduced_basis(plate, duration, target, args.modes) if root else None)
    members = PlateMembers(plate, basis)
    n, ip, ik = members.size, members.parameter_index, members.peak_index

    # 2. The twin: prior ensemble (unloaded plate, log E_f around a wrong guess), filter, streams.
    prior = np.zeros((args.members, n))
    prior[:, ip] = math.log(PRIOR_YOUNG) + PRIOR_SPREAD * np.random.default_rng(args.seed).standard_normal(args.members)
    enkf = EnsembleKalmanFilter(prior, method="sqrt", inflation=args.inflation, seed=args.seed)
    drift = np.zeros(n)
    drift[ip] = args.drift_noise
    twin = DigitalTwin(enkf, DistributedEnsemble(members, prior, comm=comm), process_noise=drift)
    gauges = Observation("strain gauges", members.gauge_operator(), GAUGE_NOISE)

    def assay_operator(x: np.ndarray) -> np.ndarray:
        return np.exp(x[:, [ip]])

    assay_times = list(np.arange(19.5, duration, 20.0))

    # 3. The controller, on rank 0 (its decisions are broadcast), with its reduced model.
    family = identify(plate, min(40, steps)) if root else None
    truth = Truth(spec) if root else None
    rng = np.random.default_rng(args.seed + 1)
    applied, times = [0.0], [0.0]
    pending: list[tuple[float, object, float]] = []  # (arrival time, sample, value)
    log: dict[str, list] = {key: [] for key in (
        "time", "target", "grip", "peak_truth", "peak_truth_max", "peak_twin", "peak_twin_std", "young_truth",
        "young_twin", "log_young_twin", "log_young_std", "nees", "feasible", "members")}
    assays: list[dict] = []
    nis: list[float] = []

    for k in range(steps):
        t0, t1 = k * STEP, (k + 1) * STEP
        # -- decide the grip at t1 from the twin's estimate at t0
        decision = None
        if root:
            mean, cov = twin.mean, twin.covariance
            controller = PredictiveController(family(mean[ip]), horizon=args.horizon, limit=LIMIT,
                                              move_weight=0.05, bounds=(0.0, 1.2 * AMPLITUDE),
                                              scale=AMPLITUDE)
            wanted = [target(t0 + i * STEP) for i in range(1, args.horizon + 1)]
            # Two standard deviations of the twin's forecast of the peak stress i steps ahead:
            # its present spread and the random walk of log E_f through the peak's sensitivity.
            sensitivity = cov[ik, ip] / cov[ip, ip]
            ahead = STEP * np.arange(1, args.horizon + 1)
            margin = 2.0 * np.sqrt(cov[ik, ik] + (sensitivity * args.drift_noise) ** 2 * ahead)
            plan = controller.plan(applied[1:], float(mean[ik]), wanted, margin=margin)
            decision = (float(plan.inputs[0]), plan.feasible)
        grip, feasible = comm.bcast(decision)
        applied.append(grip)
        times.append(t1)

        def inputs(t: float) -> dict:
            return {"grip": float(np.interp(t, times, applied))}

        # -- the real part moves; its sensors report (rank 0 measures, everybody hears)
        data = None
        if root:
            peak = truth.advance(t0, t1, applied[-2], grip)
            strains = truth.strains() + GAUGE_NOISE * rng.standard_normal(len(spec.gauges))
            taken = [(ta, true_young(ta) * (1.0 + ASSAY_NOISE * rng.standard_normal()))
                     for ta in assay_times if t0 < ta <= t1]
            data = (peak, truth.peak, strains, taken)
        peak, peak_now, strains, taken = comm.bcast(data)

        # -- the twin follows: an assay sampled within the step splits the forecast there
        for ta, value in taken:
            noise = ASSAY_NOISE * true_young(ta)
            sample = twin.sample(ta, Observation("stiffness assay", assay_operator, noise))
            twin.advance(ta, inputs)
            mean, cov = twin.mean, twin.covariance
            error = math.log(true_young(ta)) - mean[ip]
            assays.append({"time": ta, "arrives": ta + ASSAY_DELAY, "young_truth": true_young(ta),
                           "assay": value, "log_young_twin": float(mean[ip]),
                           "log_young_std": float(math.sqrt(cov[ip, ip])),
                           "sigmas": float(abs(error) / math.sqrt(cov[ip, ip]))})
            pending.append((ta + ASSAY_DELAY, sample, value))
        twin.observe(t1, gauges, strains)
        for record in twin.advance(t1, inputs):
            if record.record.name == "strain gauges":
                nis.append(record.record.nis)
        for item in [p for p in pending if p[0] <= t1 + 1e-9]:
            smoothed = twin.estimate(item[1])
            entry = next(a for a in assays if abs(a["time"] - item[1].time) < 1e-9)
            entry.update(young_smoothed=float(smoothed[0][0]),
                         young_smoothed_std=float(math.sqrt(smoothed[1][0, 0])))
            twin.report(item[1], [item[2]])
            pending.remove(item)
        twin.assimilate_arrived()

        mean, cov = twin.mean, twin.covariance
        theta_true = math.log(true_young(t1))
        log["time"].append(t1)
        log["target"].append(target(t1))
        log["grip"].append(grip)
        log["peak_truth"].append(peak_now)
        log["peak_truth_max"].append(peak)
        log["peak_twin"].append(float(mean[ik]))
        log["peak_twin_std"].append(float(math.sqrt(cov[ik, ik])))
        log["young_truth"].append(true_young(t1))
        log["young_twin"].append(float(np.exp(twin.states[:, ip]).mean()))
        log["log_young_twin"].append(float(mean[ip]))
        log["log_young_std"].append(float(math.sqrt(cov[ip, ip])))
        log["nees"].append(nees([theta_true - mean[ip]], [[cov[ip, ip]]]))
        log["feasible"].append(bool(feasible))
        log["members"].append(len(twin.ensemble.members))
        if args.break_member in twin.ensemble.members and abs(t1 - args.break_at) < 1e-9:
            x = twin.enkf.ensemble
            x[twin.ensemble.members.index(args.break_member), ip] = math.log(1e300)
            twin.enkf.set_ensemble(x)  # its next FE² step fails: dropped with a warning

    open_peaks = comm.bcast(open_loop(spec, duration, target) if root else None)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    lo, hi = chi2_band(1)
    inside = [lo <= v <= hi for v in log["nees"]]
    results = {
        "settings": {"members": args.members, "duration": duration, "ranks": comm.size,
                     "modes": args.modes, "inflation": args.inflation, "drift_noise": args.drift_noise,
                     "horizon": args.horizon, "limit": LIMIT, "gauge_noise": GAUGE_NOISE,
                     "assay_noise": ASSAY_NOISE, "assay_delay": ASSAY_DELAY, "seed": args.seed},
        "pod_gauge_error": pod_error,
        "log": log,
        "assays": assays,
        "open_loop_peak": open_peaks,
        "summary": {
            "assays_within_2_sigma": all(a["sigmas"] <= 2.0 for a in assays),
            "assay_sigmas": [a["sigmas"] for a in assays],
            "nees_band": [lo, hi],
            "nees_inside_fraction": float(np.mean(inside)),
            "nees_mean": float(np.mean(log["nees"])),
            "nees_below": int(sum(v < lo for v in log["nees"])),
            "nees_above": int(sum(v > hi for v in log["nees"])),
            "peak_twin_error_sigmas_max": float(np.max(np.abs(np.subtract(log["peak_truth"], log["peak_twin"]))
                                                       / np.asarray(log["peak_twin_std"]))),
            "gauge_nis_mean": float(np.mean(nis)), "gauge_nis_dof": len(spec.gauges),
            "peak_closed_loop": float(max(log["peak_truth_max"])),
            "peak_open_loop": float(max(open_peaks)),
            "limit": LIMIT,
            "open_loop_steps_over_limit": int(sum(p > LIMIT for p in open_peaks)),
            "closed_loop_steps_over_limit": int(sum(p > LIMIT for p in log["peak_truth_max"])),
            "tracking_rms": float(np.sqrt(np.mean((np.asarray(log["grip"]) - np.asarray(log["target"])) ** 2))),
            "infeasible_plans": int(sum(not f for f in log["feasible"])),
            "dropped_members": [d.member for d in twin.ensemble.dropped],
            "seconds": seconds,
            "cpu_seconds_rank0": cpu_seconds,
        },
    }
    if root:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2))
        s = results["summary"]
        print(f"twin: {args.members} members on {comm.size} rank(s), {steps} s of test, "
              f"{s['seconds']:.1f} s wall ({s['cpu_seconds_rank0']:.1f} s CPU on rank 0); "
              f"POD gauge error {pod_error:.1e}")
        print("    t   target    grip   σ_peak truth   twin ± 2σ      E_f truth   twin ± 2σ")
        for i in range(0, steps, max(1, steps // 24)):
            e_mean, e_std = log["log_young_twin"][i], log["log_young_std"][i]
            print(f"{log['time'][i]:5.0f}  {log['target'][i]:.4f}  {log['grip'][i]:.4f}   "
                  f"{1e3 * log['peak_truth'][i]:6.1f} MPa  {1e3 * log['peak_twin'][i]:6.1f} ± "
                  f"{2e3 * log['peak_twin_std'][i]:4.1f}   {log['young_truth'][i]:6.2f}  "
                  f"{math.exp(e_mean):6.2f} ± {2 * e_std * math.exp(e_mean):4.2f} GPa")
        for a in assays:
            print(f"assay at {a['time']:6.1f} s: truth {a['young_truth']:.2f} GPa, twin "
                  f"{math.exp(a['log_young_twin']):.2f} GPa, error {a['sigmas']:.2f} σ")
        print(f"NEES of log E_f inside its 95 % band {lo:.4f}–{hi:.2f} at "
              f"{100 * s['nees_inside_fraction']:.1f} % of steps (mean {s['nees_mean']:.2f}); "
              f"gauge NIS mean {s['gauge_nis_mean']:.2f} (dof {s['gauge_nis_dof']})")
        print(f"peak stress: open loop {1e3 * s['peak_open_loop']:.1f} MPa "
              f"({s['open_loop_steps_over_limit']} steps over), closed loop "
              f"{1e3 * s['peak_closed_loop']:.1f} MPa ({s['closed_loop_steps_over_limit']} steps over); "
              f"limit {1e3 * LIMIT:.1f} MPa; grip tracking rms {s['tracking_rms']:.2e} mm")
    return results


if __name__ == "__main__":
    try:
        main()
    except Exception:
        # One rank failing must not leave the others waiting in a collective.
        traceback.print_exc()
        MPI.COMM_WORLD.Abort(1)
