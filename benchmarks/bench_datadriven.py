"""Data-driven solver: time per iteration against quadrature points and database size, and the
convergence of its error in the data spacing ``h``.

The problem is the plate (2D plane strain) and block (3D) of ``tests/datadriven_driver.py``,
whose classical linear-elastic solution (plain dolfinx, Lamé form) is the reference. Databases
are a linear isotropic law sampled on a grid of Mandel strains in a box holding the solution.

* Timing: for every mesh and database size, one :meth:`DataDrivenProblem.solve` with a distance
  stiffness ``C`` (E = 70, ν = 0.2) different from the material's (E = 100, ν = 0.3), so the
  iteration does more than the predictor; reported per iteration: the kd-tree query
  (``search``) and the right-hand-side assembly plus the two triangular solves (``linear``),
  with the one-off set-up (tree, assembly and factorisation) apart.
* Convergence: relative L² errors of displacement and stress against the classical solution,
  ``C`` fitted to the data; the fitted log-log slope and a plot.

Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_datadriven.py              # ~ 2 min
    OMP_NUM_THREADS=1 python benchmarks/bench_datadriven.py --quick
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import mpi4py.MPI as MPI  # noqa: I001  (before dolfinx)
import numpy as np
from dolfinx import fem

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the reference problem the tests use

from datadriven_driver import (  # noqa: E402
    BLOCK_STRAINS, PLATE_STRAINS, POISSON, YOUNG, classical_solution, errors, problem)
from scalelink.datadriven import DataDrivenProblem, linear_elastic_database  # noqa: E402
from scalelink.fe2.tensors import isotropic_stiffness  # noqa: E402


def spacing_for(states: float, box: np.ndarray) -> float:
    """Grid spacing that puts about ``states`` states in ``box``."""
    span = box[1] - box[0]
    return float((np.prod(span) / states) ** (1.0 / span.size))


def timing(dim: int, cells: int, states: float) -> dict:
    comm = MPI.COMM_WORLD
    m = 3 if dim == 2 else 6
    box = PLATE_STRAINS if dim == 2 else BLOCK_STRAINS
    law = isotropic_stiffness(young=YOUNG, poisson=POISSON, strain_size=m)
    data = linear_elastic_database(law, spacing=spacing_for(states, box), strain_range=box)
    V, bcs, gravity, tractions = problem(comm, cells, dim)
    start = time.perf_counter()
    dd = DataDrivenProblem(fem.Function(V), data, stiffness=isotropic_stiffness(young=70.0, poisson=0.2, strain_size=m),
                           bcs=bcs, body_force=gravity, tractions=tractions)
    setup = time.perf_counter() - start
    result = dd.solve(max_iterations=500)
    n = dd.timings["iterations"]
    return {"dim": dim, "cells": cells, "points": comm.allreduce(dd.num_points), "states": len(data),
            "dofs": V.dofmap.index_map.size_global * dim, "setup_s": setup, "iterations": result.iterations,
            "search_ms_per_iteration": 1e3 * dd.timings["search"] / n,
            "linear_ms_per_iteration": 1e3 * dd.timings["linear"] / n,
            "solve_ms_per_iteration": 1e3 * result.seconds / n}


def convergence(cells: int, spacings: list[float]) -> list[dict]:
    comm = MPI.COMM_WORLD
    law = isotropic_stiffness(young=YOUNG, poisson=POISSON, strain_size=3)
    V, bcs, gravity, tractions = problem(comm, cells, 2)
    reference = classical_solution(V, bcs, gravity, tractions)
    rows = []
    for h in spacings:
        data = linear_elastic_database(law, spacing=h, strain_range=PLATE_STRAINS)
        dd = DataDrivenProblem(fem.Function(V), data, bcs=bcs, body_force=gravity, tractions=tractions)
        result = dd.solve()
        u_error, s_error = errors(dd, reference)
        rows.append({"cells": cells, "h": h, "states": len(data), "iterations": result.iterations,
                     "displacement_error": u_error, "stress_error": s_error,
                     "mean_distance": result.mean_distance, "max_distance": result.max_distance})
    return rows


def slope(rows: list[dict], key: str) -> float:
    return float(np.polyfit(np.log([r["h"] for r in rows]), np.log([r[key] for r in rows]), 1)[0])


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for cells in sorted({r["cells"] for r in rows}):
        sub = [r for r in rows if r["cells"] == cells]
        h = np.array([r["h"] for r in sub])
        for key, marker, label in (("stress_error", "o", "stress"), ("displacement_error", "s", "displacement")):
            ax.loglog(h, [r[key] for r in sub], marker=marker, label=f"{label}, {2 * cells * cells * 2} points "
                      f"(slope {slope(sub, key):.2f})")
    h = np.array(sorted({r["h"] for r in rows}))
    ax.loglog(h, 0.5 * rows[0]["stress_error"] * h / h.max(), "k--", label="O(h)")
    ax.set_xticks(h, [f"{v:g}" for v in h], fontsize=7)
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("data spacing h (strain)")
    ax.set_ylabel("relative L² error vs classical FE")
    ax.set_title("Data-driven plate, linear law on a strain grid")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--out", type=Path, default=HERE / "results_datadriven.json")
    parser.add_argument("--plot", type=Path, default=HERE / "datadriven_convergence.png")
    args = parser.parse_args()
    cells_2d = [8, 32] if args.quick else [8, 16, 32, 64, 128]
    sizes = [1e3, 1e5] if args.quick else [1e3, 1e4, 1e5, 1e6]
    runs = [timing(2, c, n) for c in cells_2d for n in sizes]
    runs += [timing(3, c, n) for c in ([2] if args.quick else [2, 4]) for n in sizes]
    spacings = [4e-3, 2e-3, 1e-3, 5e-4] + ([] if args.quick else [2.5e-4, 1.25e-4])
    rows = convergence(8, spacings) + ([] if args.quick else convergence(16, spacings))
    if MPI.COMM_WORLD.rank != 0:
        return
    print(f"{'dim':>3} {'points':>7} {'states':>9} {'setup s':>8} {'iter':>4} {'search ms/it':>12} "
          f"{'linear ms/it':>12} {'total ms/it':>11}")
    for r in runs:
        print(f"{r['dim']:>3} {r['points']:>7} {r['states']:>9} {r['setup_s']:>8.2f} {r['iterations']:>4} "
              f"{r['search_ms_per_iteration']:>12.2f} {r['linear_ms_per_iteration']:>12.2f} "
              f"{r['solve_ms_per_iteration']:>11.2f}")
    print(f"\n{'points':>7} {'h':>9} {'states':>9} {'iter':>4} {'u error':>9} {'σ error':>9} {'mean d':>9}")
    for r in rows:
        print(f"{4 * r['cells'] ** 2:>7} {r['h']:>9.2e} {r['states']:>9} {r['iterations']:>4} "
              f"{r['displacement_error']:>9.2e} {r['stress_error']:>9.2e} {r['mean_distance']:>9.2e}")
    slopes = {}
    for cells in sorted({r["cells"] for r in rows}):
        sub = [r for r in rows if r["cells"] == cells]
        slopes[str(cells)] = {k: slope(sub, k) for k in ("displacement_error", "stress_error", "mean_distance")}
        print(f"slopes, {4 * cells ** 2} points: " + ", ".join(f"{k} {v:.2f}" for k, v in slopes[str(cells)].items()))
    plot(rows, args.plot)
    args.out.write_text(json.dumps({"machine": platform.platform(), "processor": platform.processor(),
                                    "ranks": MPI.COMM_WORLD.size, "timing": runs, "convergence": rows,
                                    "slopes": slopes}, indent=2))


if __name__ == "__main__":
    main()
