"""The digital twin's filter against the exact Kalman filter, and the twin example over seeds.

1. **Convergence.** The linear-Gaussian problem of ``tests/test_twin.py`` (4 states, 2 correlated
   observations, 12 forecast/analysis cycles): the ensemble filter's mean and covariance after
   the last analysis against the Kalman filter's, relative errors averaged over 10 seeds, for
   N = 25 … 25,600 members, both analyses; the slope of ``log error`` against ``log N``.
2. **Random walk.** Forecast and analysis variance of a scalar random walk (Q = 0.5, R = 2),
   time-averaged over cycles 50–200 with 20,000 members, against ``(Q + √(Q² + 4QR))/2``.
3. **Localisation.** 40 points on a ring (Gaussian correlation of length 2), every second point
   observed (σ = 0.5): RMSE of the analysis mean against the exact posterior mean with 10 and 20
   members, no taper against Gaspari–Cohn half-widths 2, 4, 8; 200 trials.
4. **Inflation.** The example's filter consistency (NEES inside its band, mean NEES, gauge NIS)
   for inflation 1.0, 1.02, 1.05, 1.10 (seed 7).
5. **The example.** ``examples/digital_twin.py`` (32 members, 120 s) for seeds 1–7: the
   acceptance numbers of each.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_twin.py`` (parts 1–3 take about a
minute; parts 4–5 run the example 11 times, about 25 s of CPU each; ``--skip-example``).
Writes ``benchmarks/results_twin.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from scalelink.twin import EnsembleKalmanFilter, KalmanFilter, Localisation, Observation, random_walk_steady_variance

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "digital_twin.py"

F = np.array([[0.95, 0.10, 0.0, 0.0], [-0.10, 0.95, 0.0, 0.0], [0.0, 0.0, 0.90, 0.2], [0.0, 0.0, 0.0, 0.8]])
Q = np.diag([0.05, 0.05, 0.02, 0.1])
H = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, -1.0]])
R = np.array([[0.2, 0.05], [0.05, 0.3]])
M0, P0 = np.array([1.0, -0.5, 0.3, 0.0]), np.diag([1.0, 0.5, 0.8, 0.3])


def convergence() -> dict:
    rng = np.random.default_rng(0)
    x = M0 + np.linalg.cholesky(P0) @ rng.standard_normal(4)
    ys = []
    for _ in range(12):
        x = F @ x + np.linalg.cholesky(Q) @ rng.standard_normal(4)
        ys.append(H @ x + np.linalg.cholesky(R) @ rng.standard_normal(2))
    kf = KalmanFilter(M0, P0)
    for y in ys:
        kf.predict(F, Q)
        kf.update(y, H, R)
    sizes = [25, 100, 400, 1600, 6400, 25600]
    out: dict = {"sizes": sizes}
    for method in ("stochastic", "sqrt"):
        mean_err, cov_err = [], []
        for n in sizes:
            m, c = [], []
            for seed in range(10):
                ens = M0 + np.random.default_rng(1000 + seed).standard_normal((n, 4)) @ np.linalg.cholesky(P0).T
                enkf = EnsembleKalmanFilter(ens, method=method, seed=seed)
                obs = Observation("y", H, R)
                for y in ys:
                    enkf.forecast(lambda s: s @ F.T, Q)
                    enkf.assimilate(obs, y)
                m.append(np.linalg.norm(enkf.mean - kf.mean) / math.sqrt(np.trace(kf.covariance)))
                c.append(np.linalg.norm(enkf.covariance - kf.covariance) / np.linalg.norm(kf.covariance))
            mean_err.append(float(np.mean(m)))
            cov_err.append(float(np.mean(c)))
        out[method] = {"mean_error": mean_err, "covariance_error": cov_err,
                       "mean_slope": float(np.polyfit(np.log(sizes), np.log(mean_err), 1)[0]),
                       "covariance_slope": float(np.polyfit(np.log(sizes), np.log(cov_err), 1)[0])}
    return out


def random_walk() -> dict:
    q, r = 0.5, 2.0
    want = random_walk_steady_variance(q, r)
    out: dict = {"Q": q, "R": r, "prior_exact": want[0], "posterior_exact": want[1]}
    for method in ("stochastic", "sqrt"):
        rng = np.random.default_rng(5)
        enkf = EnsembleKalmanFilter(rng.standard_normal((20000, 1)) * 3.0, method=method, seed=9)
        obs, truth, priors, posts = Observation("y", [[1.0]], math.sqrt(r)), 0.0, [], []
        for _ in range(200):
            truth += math.sqrt(q) * rng.standard_normal()
            enkf.forecast(process_noise=[[q]])
            priors.append(enkf.covariance[0, 0])
            enkf.assimilate(obs, [truth + math.sqrt(r) * rng.standard_normal()])
            posts.append(enkf.covariance[0, 0])
        out[method] = {"prior": float(np.mean(priors[50:])), "posterior": float(np.mean(posts[50:]))}
    return out


def localisation() -> dict:
    n = 40
    pos = np.arange(n, dtype=float)[:, None]
    d = np.abs(pos - pos.T)
    d = np.minimum(d, n - d)
    prior = np.exp(-((d / 2.0) ** 2)) + 1e-8 * np.eye(n)
    chol = np.linalg.cholesky(prior)
    h = np.eye(n)[::2]
    obs = Observation("y", h, 0.5, positions=pos[::2])
    radii = [None, 2.0, 4.0, 8.0]
    out: dict = {"radii": ["none" if r is None else r for r in radii]}
    for method in ("stochastic", "sqrt"):
        for members in (10, 20):
            errors = {r: [] for r in radii}
            rng = np.random.default_rng(11)
            for trial in range(200):
                truth = chol @ rng.standard_normal(n)
                y = h @ truth + 0.5 * rng.standard_normal(h.shape[0])
                kf = KalmanFilter(np.zeros(n), prior)
                kf.update(y, h, 0.25 * np.eye(h.shape[0]))
                ens = rng.standard_normal((members, n)) @ chol.T
                for radius in radii:
                    loc = None if radius is None else Localisation(radius, pos, period=n)
                    enkf = EnsembleKalmanFilter(ens, method=method, localisation=loc, seed=trial)
                    enkf.assimilate(obs, y)
                    errors[radius].append(float(np.sqrt(np.mean((enkf.mean - kf.mean) ** 2))))
            out[f"{method}_{members}"] = [float(np.mean(errors[r])) for r in radii]
    return out


def example(*extra: str) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        proc = subprocess.run([sys.executable, str(EXAMPLE), "--out", folder, *extra],
                              capture_output=True, text=True, timeout=1800)
        if proc.returncode:
            raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-2000:])
        return json.loads((Path(folder) / "results.json").read_text())["summary"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-example", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3, 4, 5, 6, 7])
    args = parser.parse_args()
    path = HERE / "results_twin.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results["convergence"] = convergence()
    results["random_walk"] = random_walk()
    results["localisation"] = localisation()
    print(json.dumps({k: results[k] for k in ("convergence", "random_walk", "localisation")}, indent=1))
    if not args.skip_example:
        results["inflation"] = {str(lam): example("--inflation", str(lam)) for lam in (1.0, 1.02, 1.05, 1.10)}
        results["seeds"] = {str(seed): example("--seed", str(seed)) for seed in args.seeds}
        for key in ("inflation", "seeds"):
            for name, s in results[key].items():
                print(f"{key} {name}: assays ≤ 2σ {s['assays_within_2_sigma']} "
                      f"(max {max(s['assay_sigmas']):.2f}σ), NEES inside {s['nees_inside_fraction']:.3f}, "
                      f"mean NEES {s['nees_mean']:.2f}, NIS {s['gauge_nis_mean']:.2f}, closed "
                      f"{1e3 * s['peak_closed_loop']:.1f} MPa, open {1e3 * s['peak_open_loop']:.1f} MPa")
    path.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
