"""Bayesian design (``scalelink design``'s engine) on Branin and on a fibre composite.

1. Branin on [−5, 10] × [0, 15] (minimum 0.397887): evaluations until the best value is within
   1 % of the minimum, budget 30, 5 space-filling starts, one design per batch; 10 seeds.
2. The lightest fibre composite whose transverse stiffness reaches a target: a circular fibre
   (fraction ``φ`` ∈ [0.05, 0.6], modulus ``E_f`` ∈ [10, 400] GPa, density 1.5 + 0.004 E_f g/cm³)
   in epoxy (3.5 GPa, ν 0.35, 1.2 g/cm³), periodic plane-strain FE RVE (48 × 48 cells, fibre
   cells tagged whole), constraint ``transverse_modulus ≥ 9 GPa``, objective density. The
   reference optimum: for 40 fibre moduli, bisection on ``φ`` for the smallest feasible mesh
   fraction (the mesh fraction moves in steps of whole cells), the lightest of them. Counted:
   RVE solves until a feasible design within 1 % of the optimal density, Bayesian design
   (budget 60) against uniform random search (up to 2000 solves), 5 seeds each.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_design.py`` (about 10 minutes;
``--part branin`` or ``--part composite`` for one). Writes ``benchmarks/results_design.json``
and ``benchmarks/design_convergence.png`` (composite, seed 0).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from scalelink.design.config import config_from_mapping
from scalelink.design.models import build_evaluator
from scalelink.design.runner import run_design

HERE = Path(__file__).resolve().parent
BRANIN_MIN = 0.397887
TARGET = 9.0
COMPOSITE_MODEL = {"kind": "periodic_rve", "fibre_fraction": "fraction", "fibre_young": "fibre_modulus",
                   "fibre_density": "1.5 + 0.004 * fibre_modulus", "cells": 48}
COMPOSITE_BOUNDS = {"fraction": (0.05, 0.6), "fibre_modulus": (10.0, 400.0)}


def branin(x1: float, x2: float) -> float:
    return ((x2 - 5.1 / (4 * math.pi**2) * x1**2 + 5 / math.pi * x1 - 6) ** 2
            + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10)


def first_hit(history: np.ndarray, threshold: float) -> int | None:
    hit = np.flatnonzero(history <= threshold)
    return int(hit[0]) + 1 if hit.size else None


def median_hits(hits: list[int | None], cap: int) -> float:
    return float(np.median([cap + 1 if h is None else h for h in hits]))


def run_branin(seeds: int) -> dict[str, object]:
    hits, seconds = [], []
    for seed in range(seeds):
        folder = tempfile.mkdtemp()
        config = config_from_mapping({
            "variables": {"x1": [-5.0, 10.0], "x2": [0.0, 15.0]}, "model": {"kind": "callable", "function": "x:y"},
            "budget": 30, "initial": 5, "seed": seed, "state": f"{folder}/state.json", "plot": None})
        start = time.perf_counter()
        result = run_design(config, comm=None, evaluator=lambda d: {"value": branin(d["x1"], d["x2"])})
        seconds.append(time.perf_counter() - start)
        hits.append(first_hit(result.best_history, 1.01 * BRANIN_MIN))
        print(f"Branin seed {seed}: within 1 % after {hits[-1]} evaluations (best {result.best_history[-1]:.6f}), "
              f"{seconds[-1]:.1f} s", flush=True)
        shutil.rmtree(folder)
    return {"hits": hits, "median_hits": median_hits(hits, 30), "seconds_per_run": float(np.mean(seconds))}


def reference_optimum(evaluate) -> dict[str, float]:
    best = {"density": math.inf}
    for modulus in np.linspace(*COMPOSITE_BOUNDS["fibre_modulus"], 40):
        lo, hi = COMPOSITE_BOUNDS["fraction"]
        top = evaluate({"fraction": hi, "fibre_modulus": modulus})
        if top["transverse_modulus"] < TARGET:
            continue
        for _ in range(14):
            mid = 0.5 * (lo + hi)
            if evaluate({"fraction": mid, "fibre_modulus": modulus})["transverse_modulus"] >= TARGET:
                hi = mid
            else:
                lo = mid
        out = evaluate({"fraction": hi, "fibre_modulus": modulus})
        if out["density"] < best["density"]:
            best = {"density": out["density"], "fraction": hi, "fibre_modulus": float(modulus),
                    "transverse_modulus": out["transverse_modulus"]}
    return best


def run_composite(seeds: int) -> dict[str, object]:
    evaluate = build_evaluator(COMPOSITE_MODEL, list(COMPOSITE_BOUNDS))
    start = time.perf_counter()
    optimum = reference_optimum(evaluate)
    print(f"reference optimum: {optimum} ({time.perf_counter() - start:.0f} s)", flush=True)
    threshold = 1.01 * optimum["density"]
    bo_hits, random_hits, bo_seconds = [], [], []
    for seed in range(seeds):
        folder = tempfile.mkdtemp()
        config = config_from_mapping({
            "variables": {k: list(v) for k, v in COMPOSITE_BOUNDS.items()}, "model": COMPOSITE_MODEL,
            "objective": "density", "constraints": [f"transverse_modulus >= {TARGET}"], "budget": 60,
            "initial": 5, "seed": seed, "state": f"{folder}/state.json",
            "plot": str(HERE / "design_convergence.png") if seed == 0 else None})
        start = time.perf_counter()
        result = run_design(config, comm=None, evaluator=evaluate)
        bo_seconds.append(time.perf_counter() - start)
        bo_hits.append(first_hit(result.best_history, threshold))
        shutil.rmtree(folder)
        rng = np.random.default_rng(1000 + seed)
        random_hits.append(None)
        for count in range(1, 2001):
            x = {k: float(rng.uniform(*b)) for k, b in COMPOSITE_BOUNDS.items()}
            out = evaluate(x)
            if out["transverse_modulus"] >= TARGET and out["density"] <= threshold:
                random_hits[-1] = count
                break
        print(f"composite seed {seed}: Bayesian design {bo_hits[-1]} RVE solves ({bo_seconds[-1]:.0f} s), "
              f"random search {random_hits[-1]}", flush=True)
    bo, rnd = median_hits(bo_hits, 60), median_hits(random_hits, 2000)
    return {"optimum": optimum, "target": TARGET, "bo_hits": bo_hits, "random_hits": random_hits,
            "median_bo": bo, "median_random": rnd, "ratio": rnd / bo, "bo_seconds_per_run": float(np.mean(bo_seconds))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--part", choices=["branin", "composite", "both"], default="both")
    parser.add_argument("--branin-seeds", type=int, default=10)
    parser.add_argument("--composite-seeds", type=int, default=5)
    args = parser.parse_args()
    path = HERE / "results_design.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    if args.part in ("branin", "both"):
        results["branin"] = b = run_branin(args.branin_seeds)
        print(f"Branin: median {b['median_hits']} evaluations to within 1 % ({args.branin_seeds} seeds): {b['hits']}")
    if args.part in ("composite", "both"):
        results["composite"] = c = run_composite(args.composite_seeds)
        print(f"composite: median RVE solves to within 1 % of the lightest design: Bayesian {c['median_bo']}, "
              f"random {c['median_random']} (ratio {c['ratio']:.1f})")
    path.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
