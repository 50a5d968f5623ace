"""FE² in time of a viscoelastic fibre composite, against a direct numerical simulation.

1. **Relaxation data → Prony series.** Synthetic shear-relaxation data of a polymer matrix
   (a stretched exponential over six decades of time, as measured curves look) are fitted by
   non-negative least squares on log-spaced relaxation times
   (:func:`~scalelink.fe2.fit_prony`).
2. **Phases.** The matrix is a generalized Maxwell material with that shear series and an
   elastic bulk modulus (:class:`~scalelink.fe2.Viscoelastic`); the fibres are elastic.
3. **FE² in time.** A plane-strain plate ``[0, 8] × [0, 4]`` (16 × 8 unit cells) is clamped on
   the left and its right edge is pulled in a ramp-and-hold history. Every macro quadrature
   point carries its own periodic RVE with the matrix's internal variables at every RVE
   quadrature point (:class:`~scalelink.fe2.RVEMicroModel`); each time step is solved by
   Newton and committed.
4. **DNS.** The same plate with every fibre resolved (:class:`~scalelink.fe2.Phasewise`),
   the same time steps. The plate-averaged stress history (the grip reaction) of both is
   compared.

Run::

    python examples/fe2_viscoelastic.py            # about a minute on 2 cores
    mpirun -n 2 python examples/fe2_viscoelastic.py
    python examples/fe2_viscoelastic.py --quick    # coarse settings for the test suite
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time
import traceback

import mpi4py.MPI as MPI  # noqa: I001  (before dolfinx)
import numpy as np
from dolfinx import fem, mesh

from scalelink.fe2 import (
    FE2Problem,
    LinearElastic,
    Phasewise,
    PeriodicRVE,
    RVEMicroModel,
    Viscoelastic,
    circular_inclusion,
    fit_prony,
    isotropic_stiffness,
    quadrature_points,
    stretched_exponential_modulus,
    unit_cell_mesh,
)

LENGTH, HEIGHT, CELLS = 8.0, 4.0, (16, 8)
CELL_SIZE = LENGTH / CELLS[0]
FIBRE_RADIUS = 0.3


def matrix_shear_series():
    """Fit a Prony series (GPa, s) to stretched-exponential shear relaxation data."""
    times = np.logspace(-3, 3, 61)
    data = stretched_exponential_modulus(times, glassy=1.5, rubbery=0.15, relaxation_time=1.0,
                                         exponent=0.5)
    fit = fit_prony(times, data, terms_per_decade=2, relative=True)
    return fit, times, data


def phases(shear_series) -> dict[int, object]:
    matrix = Viscoelastic.isotropic(bulk=4.0, shear=shear_series, strain_size=3)
    fibre = LinearElastic(isotropic_stiffness(young=40.0, poisson=0.25, strain_size=3))
    return {0: matrix, 1: fibre}


def times_and_load(steps_ramp: int, steps_hold: int) -> tuple[np.ndarray, np.ndarray]:
    """Ramp the grip to 2 % mean strain over 1 s, hold it until 30 s (log-spaced steps)."""
    ramp = np.linspace(0.0, 1.0, steps_ramp + 1)[1:]
    hold = np.logspace(0.0, np.log10(30.0), steps_hold + 1)[1:]
    times = np.concatenate([ramp, hold])
    return times, np.minimum(times, 1.0)


def plate(comm: MPI.Comm, cells: tuple[int, int], degree: int, micro_factory):
    domain = mesh.create_rectangle(comm, [[0.0, 0.0], [LENGTH, HEIGHT]], list(cells),
                                   mesh.CellType.triangle, diagonal=mesh.DiagonalType.right)
    V = fem.functionspace(domain, ("Lagrange", degree, (2,)))
    u = fem.Function(V, name="displacement")
    left = fem.locate_dofs_geometrical(V, lambda x: np.isclose(x[0], 0.0))
    right = fem.locate_dofs_geometrical(V, lambda x: np.isclose(x[0], LENGTH))
    clamp, grip = fem.Function(V), fem.Function(V)
    bcs = [fem.dirichletbc(clamp, left), fem.dirichletbc(grip, right)]

    def set_load(fraction: float) -> None:
        grip.interpolate(lambda x: np.vstack([np.full_like(x[0], 0.02 * LENGTH * fraction),
                                              np.zeros_like(x[0])]))

    return FE2Problem(u, micro_factory(u), bcs=bcs), set_load


def dns_micro(u: fem.Function, shear_series) -> Phasewise:
    x = quadrature_points(u)
    ids = np.asarray(circular_inclusion(FIBRE_RADIUS)(np.mod(x[:, :2] / CELL_SIZE, 1.0)))
    return Phasewise(phases(shear_series), ids.astype(int))


def rve_micro(resolution: int, shear_series) -> RVEMicroModel:
    cell = unit_cell_mesh(2, resolution, size=CELL_SIZE, diagonal="right")
    rve = PeriodicRVE(cell, phases(shear_series), cell_tags=circular_inclusion(FIBRE_RADIUS))
    return RVEMicroModel(rve)


def run_history(problem: FE2Problem, set_load, times: np.ndarray, load: np.ndarray) -> dict:
    start, previous = time.perf_counter(), 0.0
    history = []
    for t, fraction in zip(times, load):
        set_load(float(fraction))
        problem.solve(time_step=float(t - previous), rtol=1e-9)
        problem.commit()
        previous = t
        history.append(problem.volume_average()[0].tolist())
    return {"stress": history, "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=12, help="triangles per cell edge")
    parser.add_argument("--macro-cells", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="coarse settings for tests")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("fe2_viscoelastic_out"))
    args = parser.parse_args(argv)
    ramp_steps, hold_steps = (4, 8)
    if args.quick:
        args.resolution, args.macro_cells, ramp_steps, hold_steps = 6, 4, 2, 3
    comm = MPI.COMM_WORLD
    fit, data_times, data = matrix_shear_series()
    series = fit.series
    times, load = times_and_load(ramp_steps, hold_steps)

    res = args.resolution
    dns, set_dns = plate(comm, (CELLS[0] * res, CELLS[1] * res), 1,
                         lambda u: dns_micro(u, series))
    dns_run = run_history(dns, set_dns, times, load)
    fe2, set_fe2 = plate(comm, (args.macro_cells, args.macro_cells // 2), 2,
                         lambda u: rve_micro(res, series))
    fe2_run = run_history(fe2, set_fe2, times, load)

    s_dns = np.asarray(dns_run["stress"])[:, 0]
    s_fe2 = np.asarray(fe2_run["stress"])[:, 0]
    error = np.abs(s_fe2 - s_dns) / np.abs(s_dns).max()
    results = {
        "prony": {"relaxation_times": series.relaxation_times.tolist(),
                  "moduli": series.moduli.tolist(),
                  "long_term_modulus": series.long_term_modulus,
                  "relative_rms": fit.relative_rms},
        "times": times.tolist(), "dns": dns_run, "fe2_rve": fe2_run,
        "max_stress_error": float(error.max()),
        "relaxation_ratio_dns": float(s_dns[-1] / s_dns[ramp_steps - 1]),
        "relaxation_ratio_fe2": float(s_fe2[-1] / s_fe2[ramp_steps - 1]),
    }
    if comm.rank == 0:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2))
        print(f"Prony fit: {series.num_terms} terms, relative rms {fit.relative_rms:.2e}")
        print("   t [s]   <σxx> DNS   <σxx> FE²   error")
        for t, a, b, e in zip(times, s_dns, s_fe2, error):
            print(f"{t:8.3f}  {a:10.5f}  {b:10.5f}  {100 * e:5.2f} %")
        print(f"max error {100 * results['max_stress_error']:.2f} % of the peak stress; "
              f"DNS {dns_run['seconds']:.1f} s, FE² {fe2_run['seconds']:.1f} s")
    return results


if __name__ == "__main__":
    try:
        main()
    except Exception:
        # One rank failing must not leave the others waiting in a collective.
        traceback.print_exc()
        MPI.COMM_WORLD.Abort(1)
