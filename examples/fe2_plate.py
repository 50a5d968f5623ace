"""FE² of a fibre-reinforced plate against a direct numerical simulation (DNS).

A plane-strain plate ``[0, 8] × [0, 4]`` (mm) holds a square array of 16 × 8 unit cells, each a
stiff linear-elastic fibre (radius 0.3 of the cell) in a matrix that stiffens nonlinearly
(:class:`~scalelink.fe2.StiffeningElastic`). The left edge is clamped, the right edge is
pulled and sheared. Three solutions of the same problem are compared:

1. **DNS** — every fibre resolved on a fine mesh (``--resolution`` triangles per cell edge),
   solved with the same Newton solver through :class:`~scalelink.fe2.Phasewise`.
2. **FE² with the full RVE** — a coarse P2 macro mesh whose quadrature points each solve the
   periodic unit cell (the same cell mesh as one DNS cell) with
   :class:`~scalelink.fe2.RVEMicroModel`.
3. **FE² with a surrogate** — a constitutive network trained on stress and tangent samples of
   that RVE (``scalelink`` sampling, Sobolev training, deployment), evaluated in one batch.

Compared quantities: the plate-averaged stress (the reaction the grips feel, divided by the
plate volume) and the displacement of seven points on the plate's mid-line.

Run::

    python examples/fe2_plate.py                 # ~ a few minutes on 2 cores
    mpirun -n 2 python examples/fe2_plate.py
    python examples/fe2_plate.py --quick         # coarse settings for the test suite
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time
import traceback
import warnings

# TorchScript still works in this torch but announces its deprecation when torch-geometric
# (imported with scalelink.training) scripts its classes.
warnings.filterwarnings("ignore", message=".*torch.jit.*is deprecated", category=FutureWarning)

import mpi4py.MPI as MPI  # noqa: I001  (before dolfinx)
import numpy as np
from dolfinx import fem, geometry, mesh

from scalelink.coupling.exchange import idle_barrier
from scalelink.fe2 import (
    FE2Problem,
    SurrogateMicroModel,
    LinearElastic,
    Phasewise,
    PeriodicRVE,
    RVEMicroModel,
    StiffeningElastic,
    circular_inclusion,
    isotropic_stiffness,
    quadrature_points,
    sample_micro_model,
    unit_cell_mesh,
)
from scalelink.surrogates import SurrogateConfig, export_constitutive, train_surrogate

LENGTH, HEIGHT = 8.0, 4.0
FIBRE_RADIUS = 0.3


def materials() -> dict[int, object]:
    """Phase 0: nonlinear matrix (GPa); phase 1: linear fibre, ten times stiffer."""
    matrix = StiffeningElastic(strain_size=3, bulk=4.0, shear=1.5,
                               volumetric_stiffening=50.0, deviatoric_stiffening=400.0)
    fibre = LinearElastic(isotropic_stiffness(young=40.0, poisson=0.25, strain_size=3))
    return {0: matrix, 1: fibre}


def plate_problem(comm: MPI.Comm, cells: tuple[int, int], degree: int, micro_factory):
    """Plate mesh, displacement, boundary conditions and the FE² problem on it.

    ``micro_factory(u)`` builds the micro model once ``u`` (hence the quadrature layout) exists.
    Returns ``(problem, set_load)`` where ``set_load(fraction)`` moves the right edge.
    """
    domain = mesh.create_rectangle(comm, [[0.0, 0.0], [LENGTH, HEIGHT]], list(cells),
                                   mesh.CellType.triangle, diagonal=mesh.DiagonalType.right)
    V = fem.functionspace(domain, ("Lagrange", degree, (2,)))
    u = fem.Function(V, name="displacement")
    left = fem.locate_dofs_geometrical(V, lambda x: np.isclose(x[0], 0.0))
    right = fem.locate_dofs_geometrical(V, lambda x: np.isclose(x[0], LENGTH))
    clamp, grip = fem.Function(V), fem.Function(V)
    bcs = [fem.dirichletbc(clamp, left), fem.dirichletbc(grip, right)]

    def set_load(fraction: float) -> None:
        # 4 % mean axial strain plus a transverse shift of the grip: a non-uniform field.
        grip.interpolate(lambda x: np.vstack([np.full_like(x[0], 0.04 * LENGTH * fraction),
                                              np.full_like(x[0], 0.08 * fraction)]))

    problem = FE2Problem(u, micro_factory(u), bcs=bcs)
    return problem, set_load


def dns_micro(u: fem.Function) -> Phasewise:
    """Phase of every DNS quadrature point (P1: one per triangle, at its centroid, where the
    RVE's marker looks too), so DNS cells and RVE cells carry the same staircase fibres."""
    x = quadrature_points(u)
    cell_size = LENGTH / 16
    local = np.mod(x[:, :2] / cell_size, 1.0)
    ids = np.asarray(circular_inclusion(FIBRE_RADIUS)(local), dtype=int)
    return Phasewise(materials(), ids)


def rve_micro(resolution: int) -> RVEMicroModel:
    cell = unit_cell_mesh(2, resolution, size=LENGTH / 16, diagonal="right")
    rve = PeriodicRVE(cell, materials(), cell_tags=circular_inclusion(FIBRE_RADIUS))
    return RVEMicroModel(rve)


def sample_displacement(u: fem.Function, points: np.ndarray) -> np.ndarray:
    """``u`` at ``points`` ``(k, 3)``, the same on every rank (each point from the ranks whose
    owned cells contain it, averaged where it lies on a partition boundary)."""
    domain = u.function_space.mesh
    owned = domain.topology.index_map(2).size_local
    tree = geometry.bb_tree(domain, 2, entities=np.arange(owned, dtype=np.int32))
    candidates = geometry.compute_collisions_points(tree, points)
    hits = geometry.compute_colliding_cells(domain, candidates, points)
    values, counts = np.zeros((len(points), 2)), np.zeros(len(points))
    for i in range(len(points)):
        cells = hits.links(i)
        if len(cells):
            values[i] = u.eval(points[i], cells[:1])
            counts[i] = 1.0
    values = domain.comm.allreduce(values, op=MPI.SUM)
    counts = domain.comm.allreduce(counts, op=MPI.SUM)
    return values / counts[:, None]


# The deflection and stretch of the plate's mid-line, where boundary conditions do not fix them.
MIDLINE = np.array([[x, 0.5 * HEIGHT, 0.0] for x in np.linspace(1.0, LENGTH - 1.0, 7)])


def run(problem: FE2Problem, set_load, steps: int) -> dict[str, object]:
    start = time.perf_counter()
    iterations = []
    for k in range(1, steps + 1):
        set_load(k / steps)
        result = problem.solve(rtol=1e-9)
        problem.commit()
        iterations.append(result.iterations)
    stress, strain = problem.volume_average()
    comm = problem.u.function_space.mesh.comm
    return {"stress": stress.tolist(), "strain": strain.tolist(),
            "displacement": sample_displacement(problem.u, MIDLINE).ravel().tolist(),
            "newton_iterations": iterations, "seconds": time.perf_counter() - start,
            # the slowest rank's time inside the micro model's calls
            "micro_seconds": comm.allreduce(problem.timings["micro"], op=MPI.MAX)}


def strain_box(problem: FE2Problem, margin: float = 0.25) -> np.ndarray:
    """Bounds ``(2, m)`` of the macro strains met in ``problem``'s last solve, widened by
    ``margin`` of their span: the range the surrogate must cover."""
    comm = problem.u.function_space.mesh.comm
    strain = problem.strain.x.array.reshape(-1, problem.strain_size)[: problem.num_points]
    low, high = np.empty(problem.strain_size), np.empty(problem.strain_size)
    comm.Allreduce(strain.min(axis=0), low, op=MPI.MIN)
    comm.Allreduce(strain.max(axis=0), high, op=MPI.MAX)
    pad = margin * (high - low)
    # Rounded outward, so round-off differences between partitions do not change the samples.
    return np.stack([np.floor((low - pad) * 1e5), np.ceil((high + pad) * 1e5)]) / 1e5


def train_rve_surrogate(resolution: int, bounds: np.ndarray, samples: int, epochs: int,
                        out: pathlib.Path, comm: MPI.Comm) -> tuple[str, dict[str, object]]:
    """Sample the RVE (stress and tangent) in ``bounds``, fit a constitutive network with a
    Sobolev loss and deploy it. Rank 0 does the work; every rank gets the file's path."""
    info: dict[str, object] = {}
    path = str(out / "rve_surrogate.pt")
    if comm.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        data = sample_micro_model(rve_micro(resolution), num_samples=samples,
                                  strain_range=bounds, seed=1)
        data.save(out / "rve_samples.npz")
        info["sampling_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        config = SurrogateConfig(width=64, depth=3, epochs=epochs, seed=0)
        result = train_surrogate(out / "rve_samples.npz", out / "surrogate_run", config)
        # float64 stress for the tight Newton tolerance, float32 tangent (it only steers Newton)
        export_constitutive(result.model, path, dtype="float64", tangent_dtype="float32")
        info.update(training_seconds=time.perf_counter() - start, samples=samples,
                    held_out=result.metrics)
    idle_barrier(comm)  # the other ranks sleep meanwhile instead of spinning on the cores
    return comm.bcast(path, root=0), comm.bcast(info, root=0)


def relative_error(a: list[float], b: list[float]) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=12, help="triangles per cell edge")
    parser.add_argument("--macro-cells", type=int, default=8, help="macro triangles' columns")
    parser.add_argument("--steps", type=int, default=2, help="load steps")
    parser.add_argument("--samples", type=int, default=400, help="RVE samples for the surrogate")
    parser.add_argument("--train-epochs", type=int, default=200,
                        help="L-BFGS steps of surrogate training (a step budget, not a time "
                             "budget, so the surrogate does not depend on the machine's load)")
    parser.add_argument("--quick", action="store_true", help="coarse settings for tests")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("fe2_plate_out"))
    args = parser.parse_args(argv)
    if args.quick:
        args.resolution, args.macro_cells, args.steps = 6, 4, 1
        args.samples, args.train_epochs = 150, 30
    comm = MPI.COMM_WORLD
    res = args.resolution
    results: dict[str, object] = {}

    dns, load = plate_problem(comm, (16 * res, 8 * res), 1, dns_micro)
    results["dns"] = run(dns, load, args.steps)
    results["dns"]["points"] = comm.allreduce(dns.num_points)

    macro = (args.macro_cells, args.macro_cells // 2)
    fe2, load = plate_problem(comm, macro, 2, lambda u: rve_micro(res))
    results["fe2_rve"] = run(fe2, load, args.steps)
    results["fe2_rve"]["points"] = comm.allreduce(fe2.num_points)

    path, info = train_rve_surrogate(res, strain_box(fe2), args.samples, args.train_epochs,
                                     args.out, comm)
    results["surrogate_training"] = info
    surrogate, load = plate_problem(comm, macro, 2, lambda u: SurrogateMicroModel(path))
    results["fe2_surrogate"] = run(surrogate, load, args.steps)
    results["fe2_surrogate"]["points"] = comm.allreduce(surrogate.num_points)

    reference = results["dns"]
    for key in ("fe2_rve", "fe2_surrogate"):
        entry = results[key]
        entry["stress_error"] = relative_error(entry["stress"], reference["stress"])
        entry["displacement_error"] = relative_error(entry["displacement"], reference["displacement"])
    if comm.rank == 0:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2))
        for key in ("dns", "fe2_rve", "fe2_surrogate"):
            entry = results[key]
            mid = np.asarray(entry["displacement"]).reshape(-1, 2)[3]
            line = (f"{key:13s} points {entry['points']:7d}  time {entry['seconds']:7.1f} s "
                    f"(micro {entry['micro_seconds']:7.2f} s)  "
                    f"<σ> {np.round(entry['stress'], 5)}  u(4, 2) {np.round(mid, 5)}")
            if "stress_error" in entry:
                line += (f"  error <σ> {100 * entry['stress_error']:.2f} %  "
                         f"u {100 * entry['displacement_error']:.2f} %")
            print(line, flush=True)
        held_out = info["held_out"]["held_out"]
        print(f"surrogate: {info['samples']} RVE samples in {info['sampling_seconds']:.1f} s, "
              f"trained in {info['training_seconds']:.1f} s; held-out relative RMSE: stress "
              f"{100 * held_out['stress_relative_rmse']:.3f} %, tangent "
              f"{100 * held_out['tangent_relative_rmse']:.3f} %", flush=True)
        ratio = results["fe2_rve"]["micro_seconds"] / results["fe2_surrogate"]["micro_seconds"]
        print(f"micro-model time, full RVE / surrogate: {ratio:.0f}×; total FE² time "
              f"{results['fe2_rve']['seconds'] / results['fe2_surrogate']['seconds']:.0f}×")
    return results


if __name__ == "__main__":
    try:
        main()
    except Exception:
        # One rank failing must not leave the others waiting in a collective.
        traceback.print_exc()
        MPI.COMM_WORLD.Abort(1)
