"""Throughput of constitutive surrogates: stress and tangent of many quadrature points.

    python benchmarks/bench_surrogate.py [--threads 1 2] [--batches 1000 10000 100000 1000000]

For a 3-hidden-layer, 64-wide SiLU network (random weights: speed does not depend on training;
``--variant energy`` times the hyperelastic form, whose tangent is the Hessian of an energy),
in 2D (m = 3) and 3D (m = 6), float32, float64 and ``mixed`` (float64 stress, float32 tangent), it measures quadrature points per second of
one call returning stress and tangent, for several batch sizes and thread counts:

* ``forward-mode``: the deployed model file through :class:`scalelink.bridge.inference.ConstitutiveEngine`
  (TorchScript, the Jacobian carried through the layers, numpy float64 in and out, chunks
  spread over ``threads`` workers);
* ``autograd``: the same network in eager PyTorch with the tangent from ``m`` reverse-mode
  sweeps (``torch.autograd.grad`` per stress component), in the same chunks on as many workers.

Each entry is the best of several repetitions (at least ``--min-time`` seconds in all), as
wall-clock points/s and as points per CPU-second of the process (all threads). On a machine
whose cores are shared with other jobs the wall-clock rate measures the share the job got;
the CPU-second rate is closer to what the code does per core. It prints a Markdown table and
writes the numbers as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from scalelink.bridge.inference import ConstitutiveEngine
from scalelink.surrogates.constitutive import ConstitutiveMLP, export_constitutive
from scalelink.surrogates.surrogate_trainer import network_tangent

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _network(m: int, variant: str) -> ConstitutiveMLP:
    torch.manual_seed(0)
    mlp = ConstitutiveMLP(m, width=64, depth=3, activation="silu", variant=variant).double()
    rng = np.random.default_rng(0)
    strain = rng.uniform(-1e-2, 1e-2, (256, m))
    mlp.set_normalisation(strain, 100.0 * strain)
    return mlp


def _best_rate(call, n: int, min_time: float, warm_up) -> tuple[float, float]:
    """Best wall-clock points/s and the points per CPU-second of that repetition."""
    warm_up()  # TorchScript profiles and optimises its first runs
    warm_up()
    best, best_cpu, spent, reps = float("inf"), float("inf"), 0.0, 0
    while spent < min_time or reps < 1:
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if wall < best:
            best, best_cpu = wall, cpu
        spent, reps = spent + wall, reps + 1
    return n / best, n / max(best_cpu, 1e-9)


def _autograd_call(mlp: ConstitutiveMLP, strain: np.ndarray, chunk: int, pool: ThreadPoolExecutor | None):
    x = torch.from_numpy(strain).to(mlp.strain_scale.dtype)
    stress = np.empty(strain.shape)
    tangent = np.empty(strain.shape + (strain.shape[1],))

    def run(start: int) -> None:
        s, t = network_tangent(mlp, x[start:start + chunk])
        stress[start:start + chunk] = s.detach().numpy()
        tangent[start:start + chunk] = t.numpy()

    def call() -> None:
        starts = range(0, x.shape[0], chunk)
        if pool is None:
            for start in starts:
                run(start)
        else:
            list(pool.map(run, starts))

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batches", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds of repetitions per entry")
    parser.add_argument("--autograd-max-batch", type=int, default=100_000,
                        help="largest batch timed on the slow autograd path")
    parser.add_argument("--variant", choices=["stress", "energy"], default="stress",
                        help="network gives the stress, or an energy (tangent = its Hessian)")
    parser.add_argument("--out", default="benchmarks/results_surrogate.json")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)
    rows = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        for threads in args.threads:
            pool = ThreadPoolExecutor(threads) if threads > 1 else None
            for m in (3, 6):
                for dtype in ("float32", "float64", "mixed"):
                    if dtype == "mixed" and args.variant != "stress":
                        continue
                    mlp = _network(m, args.variant)
                    path = os.path.join(folder, f"m{m}_{dtype}.pt")
                    if dtype == "mixed":  # float64 stress, float32 tangent
                        export_constitutive(mlp, path, dtype="float64", tangent_dtype="float32")
                    else:
                        export_constitutive(mlp, path, dtype=dtype)
                    engine = ConstitutiveEngine(path, chunk_size=args.chunk_size, num_threads=threads)
                    eager = mlp.to(_DTYPES.get(dtype, torch.float64)).eval()
                    for n in args.batches:
                        strain = np.random.default_rng(1).uniform(-1e-2, 1e-2, (n, m))
                        small = strain[: min(n, 4 * args.chunk_size)]
                        rate, cpu_rate = _best_rate(lambda: engine.evaluate(strain), n, args.min_time,
                                                    lambda: engine.evaluate(small))
                        row = {"threads": threads, "strain_size": m, "dtype": dtype, "batch": n,
                               "forward_mode": rate, "forward_mode_per_cpu_s": cpu_rate}
                        if n <= args.autograd_max_batch and dtype != "mixed":
                            warm = _autograd_call(eager, small, args.chunk_size, pool)
                            row["autograd"], row["autograd_per_cpu_s"] = _best_rate(
                                _autograd_call(eager, strain, args.chunk_size, pool), n, args.min_time, warm)
                        rows.append(row)
                        print(json.dumps(row), flush=True)
                    engine.close()
            if pool is not None:
                pool.shutdown()
    load_after = os.getloadavg()[0]
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    print(f"\nmachine: {machine}; load average {load_before:.1f} before, {load_after:.1f} after; "
          f"3 hidden layers x 64, SiLU, {args.variant} variant; chunk {args.chunk_size}; points/s, best of repetitions "
          "(wall clock | per CPU-second)\n")
    print("| threads | m | dtype | batch | forward-mode | autograd | speed-up (wall) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        fwd = f"{r['forward_mode']:.3g} \\| {r['forward_mode_per_cpu_s']:.3g}"
        auto = f"{r['autograd']:.3g} \\| {r['autograd_per_cpu_s']:.3g}" if "autograd" in r else "–"
        ratio = f"{r['forward_mode'] / r['autograd']:.1f}x" if "autograd" in r else "–"
        print(f"| {r['threads']} | {r['strain_size']} | {r['dtype']} | {r['batch']:.0e} | {fwd} | {auto} | {ratio} |")
    with open(args.out, "w") as handle:
        json.dump({"machine": machine, "load_average": [load_before, load_after], "chunk_size": args.chunk_size,
                   "network": {"depth": 3, "width": 64, "activation": "silu", "variant": args.variant}, "rows": rows}, handle, indent=2)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
