"""Data-driven plate: a database of sampled RVE states against FE² on the same RVE.

The plate of ``fe2_plate.py``: plane strain ``[0, 8] × [0, 4]`` (mm), clamped on the left, its
right edge pulled (4 % mean axial strain) and shifted sideways; the material is the periodic
unit cell of a stiff fibre (radius 0.3 of the cell) in a matrix that stiffens nonlinearly.

1. **FE²** — a P2 macro mesh whose quadrature points each solve the periodic RVE
   (:class:`~scalelink.fe2.RVEMicroModel`), Newton on the macro problem: the reference.
2. **Database** — the same RVE sampled at ``--samples`` strains (Latin hypercube in the box of
   the strains FE² met, widened by a quarter), written in the format of
   ``scalelink sample-micro`` and read back with :func:`~scalelink.datadriven.load_database`.
3. **Data-driven** — the same macro mesh with
   :class:`~scalelink.datadriven.DataDrivenProblem`: no constitutive law, only the states;
   the stiffness of the distance is fitted to them.
4. **Enrichment** — ``--enrich`` times, the RVE is run at the strains of the quadrature points
   whose distance to the data exceeds the mean (where the database is thin), those states are
   added, and the data-driven problem is solved again.

Compared: the plate-averaged stress and the displacement of seven points on the mid-line.

Run::

    python examples/datadriven_plate.py                 # ~ 40 s on 2 cores
    mpirun -n 2 python examples/datadriven_plate.py
    python examples/datadriven_plate.py --quick         # coarse settings for the test suite
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time
import traceback

import mpi4py.MPI as MPI  # noqa: I001  (before dolfinx)
import numpy as np
from dolfinx import fem, geometry, mesh

from scalelink.coupling.exchange import idle_barrier
from scalelink.datadriven import DataDrivenProblem, MaterialDatabase, load_database
from scalelink.fe2 import (
    FE2Problem,
    LinearElastic,
    PeriodicRVE,
    RVEMicroModel,
    StiffeningElastic,
    circular_inclusion,
    isotropic_stiffness,
    sample_micro_model,
    unit_cell_mesh,
)

LENGTH, HEIGHT = 8.0, 4.0
MIDLINE = np.array([[x, 0.5 * HEIGHT, 0.0] for x in np.linspace(1.0, LENGTH - 1.0, 7)])


def rve_micro(resolution: int) -> RVEMicroModel:
    """The unit cell of ``fe2_plate.py``: nonlinear matrix (GPa) and a ten times stiffer fibre."""
    matrix = StiffeningElastic(strain_size=3, bulk=4.0, shear=1.5,
                               volumetric_stiffening=50.0, deviatoric_stiffening=400.0)
    fibre = LinearElastic(isotropic_stiffness(young=40.0, poisson=0.25, strain_size=3))
    cell = unit_cell_mesh(2, resolution, size=LENGTH / 16, diagonal="right")
    return RVEMicroModel(PeriodicRVE(cell, {0: matrix, 1: fibre}, cell_tags=circular_inclusion(0.3)))


def plate(comm: MPI.Comm, cells: int, fraction: float):  # type: ignore[no-untyped-def]
    """P2 displacement on a ``cells × cells/2`` triangle mesh, and its boundary conditions with
    the grip at ``fraction`` of the full load."""
    domain = mesh.create_rectangle(comm, [[0.0, 0.0], [LENGTH, HEIGHT]], [cells, cells // 2],
                                   mesh.CellType.triangle, diagonal=mesh.DiagonalType.right)
    V = fem.functionspace(domain, ("Lagrange", 2, (2,)))
    left = fem.locate_dofs_geometrical(V, lambda x: np.isclose(x[0], 0.0))
    right = fem.locate_dofs_geometrical(V, lambda x: np.isclose(x[0], LENGTH))
    grip = fem.Function(V)
    grip.interpolate(lambda x: np.vstack([np.full_like(x[0], 0.04 * LENGTH * fraction),
                                          np.full_like(x[0], 0.08 * fraction)]))
    return fem.Function(V, name="displacement"), [fem.dirichletbc(fem.Function(V), left),
                                                  fem.dirichletbc(grip, right)]


def midline(u: fem.Function) -> np.ndarray:
    """``u`` at the mid-line points, the same on every rank."""
    domain = u.function_space.mesh
    owned = domain.topology.index_map(2).size_local
    tree = geometry.bb_tree(domain, 2, entities=np.arange(owned, dtype=np.int32))
    hits = geometry.compute_colliding_cells(
        domain, geometry.compute_collisions_points(tree, MIDLINE), MIDLINE)
    values, counts = np.zeros((len(MIDLINE), 2)), np.zeros(len(MIDLINE))
    for i in range(len(MIDLINE)):  # seven probes, not a hot path
        if len(hits.links(i)):
            values[i], counts[i] = u.eval(MIDLINE[i], hits.links(i)[:1]), 1.0
    return domain.comm.allreduce(values, op=MPI.SUM) / domain.comm.allreduce(counts, op=MPI.SUM)[:, None]


def average_stress(stress: fem.Function, dx) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Plate average of a Mandel quadrature field (MPI-reduced)."""
    comm = stress.function_space.mesh.comm
    parts = [comm.allreduce(fem.assemble_scalar(fem.form(stress[k] * dx)), op=MPI.SUM) for k in range(3)]
    return np.array(parts) / (LENGTH * HEIGHT)


def fe2(comm: MPI.Comm, cells: int, resolution: int, steps: int) -> tuple[dict, np.ndarray]:
    """FE² result and the box ``(2, 3)`` of the macro strains it met."""
    start = time.perf_counter()
    micro = rve_micro(resolution)
    for k in range(1, steps + 1):
        u, bcs = plate(comm, cells, k / steps)
        if k > 1:
            u.x.array[:] = previous
        problem = FE2Problem(u, micro, bcs=bcs)
        problem.solve(rtol=1e-9)
        problem.commit()
        previous = u.x.array.copy()
    strain = problem.strain.x.array.reshape(-1, 3)[: problem.num_points]
    low, high = np.empty(3), np.empty(3)
    comm.Allreduce(strain.min(axis=0), low, op=MPI.MIN)
    comm.Allreduce(strain.max(axis=0), high, op=MPI.MAX)
    pad = 0.25 * (high - low)
    # Rounded outward, so round-off differences between partitions do not change the samples.
    box = np.stack([np.floor((low - pad) * 1e4), np.ceil((high + pad) * 1e4)]) / 1e4
    result = {"stress": problem.volume_average()[0].tolist(), "displacement": midline(u).ravel().tolist(),
              "points": comm.allreduce(problem.num_points), "seconds": time.perf_counter() - start}
    return result, box


def sample_rve(resolution: int, box: np.ndarray, samples: int, out: pathlib.Path, comm: MPI.Comm) -> tuple[str, float]:
    """Rank 0 samples the RVE and writes the ``scalelink sample-micro`` file; every rank gets its path."""
    path, seconds = str(out / "rve_samples.npz"), 0.0
    if comm.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        sample_micro_model(rve_micro(resolution), num_samples=samples, strain_range=box, seed=1).save(path)
        seconds = time.perf_counter() - start
    idle_barrier(comm)  # the other ranks sleep meanwhile instead of spinning on the cores
    return path, comm.bcast(seconds, root=0)


def far_states(problem: DataDrivenProblem, comm: MPI.Comm) -> np.ndarray:
    """Strains ``(k, 3)`` of all quadrature points whose distance to the data exceeds the mean,
    gathered on every rank in a partition-independent order."""
    distance = problem.distances()
    mean = comm.allreduce(distance.sum()) / comm.allreduce(distance.size)
    strain = problem.strain.x.array.reshape(-1, 3)[: problem.num_points][distance > mean]
    strain = np.vstack(comm.allgather(strain))
    return strain[np.lexsort(strain.T[::-1])]


def data_driven(comm: MPI.Comm, cells: int, path: str, resolution: int, rounds: int) -> list[dict]:
    """Data-driven solves: with the sampled database, then after each of ``rounds`` enrichments
    with RVE states at the strains of the points farthest from the data."""
    database = load_database(path)  # replicated: every rank reads the whole file
    out = []
    for round_ in range(rounds + 1):
        start = time.perf_counter()
        u, bcs = plate(comm, cells, 1.0)
        problem = DataDrivenProblem(u, database, bcs=bcs)
        result = problem.solve()
        out.append({"stress": average_stress(problem.stress, problem.dx).tolist(),
                    "displacement": midline(u).ravel().tolist(), "iterations": result.iterations,
                    "changed": result.changed, "max_distance": result.max_distance,
                    "mean_distance": result.mean_distance, "states": len(database),
                    "points": comm.allreduce(problem.num_points), "seconds": time.perf_counter() - start})
        if round_ == rounds:
            break
        strain = far_states(problem, comm)
        stress = None
        if comm.rank == 0:
            stress, _ = rve_micro(resolution).evaluate(strain)
        idle_barrier(comm)
        database = MaterialDatabase(np.vstack([database.strain, strain]),
                                    np.vstack([database.stress, comm.bcast(stress, root=0)]),
                                    source=f"{path} enriched")
    return out


def relative_error(a: list[float], b: list[float]) -> float:
    return float(np.linalg.norm(np.subtract(a, b)) / np.linalg.norm(b))


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=6, help="RVE triangles per cell edge")
    parser.add_argument("--macro-cells", type=int, default=8, help="macro triangles' columns")
    parser.add_argument("--steps", type=int, default=2, help="FE² load steps")
    parser.add_argument("--samples", type=int, default=6000, help="RVE states in the database")
    parser.add_argument("--enrich", type=int, default=3,
                        help="rounds of RVE states added where the data are farthest")
    parser.add_argument("--quick", action="store_true", help="coarse settings for tests")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("datadriven_plate_out"))
    args = parser.parse_args(argv)
    if args.quick:
        args.resolution, args.macro_cells, args.steps, args.samples, args.enrich = 4, 4, 1, 3000, 2
    comm = MPI.COMM_WORLD
    results: dict[str, object] = {}
    results["fe2"], box = fe2(comm, args.macro_cells, args.resolution, args.steps)
    path, results["sampling_seconds"] = sample_rve(args.resolution, box, args.samples, args.out, comm)
    runs = results["data_driven"] = data_driven(comm, args.macro_cells, path, args.resolution, args.enrich)
    for dd in runs:
        dd["stress_error"] = relative_error(dd["stress"], results["fe2"]["stress"])
        dd["displacement_error"] = relative_error(dd["displacement"], results["fe2"]["displacement"])
    if comm.rank == 0:
        (args.out / "results.json").write_text(json.dumps(results, indent=2))
        print(f"FE²: {results['fe2']['points']} RVEs, {results['fe2']['seconds']:.1f} s; <σ> "
              f"{np.round(results['fe2']['stress'], 5)}")
        print(f"database: {args.samples} RVE states in {results['sampling_seconds']:.1f} s; box "
              f"{box.tolist()}")
        for dd in runs:
            print(f"data-driven, {dd['states']} states: {dd['iterations']} iterations in "
                  f"{dd['seconds']:.2f} s; <σ> {np.round(dd['stress'], 5)}; error <σ> "
                  f"{100 * dd['stress_error']:.2f} %, u {100 * dd['displacement_error']:.2f} %; "
                  f"distance to the data max {dd['max_distance']:.3g}, mean "
                  f"{dd['mean_distance']:.3g}", flush=True)
    return results


if __name__ == "__main__":
    try:
        main()
    except Exception:
        # One rank failing must not leave the others waiting in a collective.
        traceback.print_exc()
        MPI.COMM_WORLD.Abort(1)
