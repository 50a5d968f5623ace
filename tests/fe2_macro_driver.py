"""J2-plasticity FE² run used by the MPI tests.

``[mpirun -n N] python fe2_macro_driver.py OUT [--fail | --halve]``

A 2D plane-strain bar clamped on the left, its right end pulled and bent in three load steps;
writes the Newton histories and rank-independent results (norms, averages, point values) to
the JSON file OUT on rank 0. With ``--fail`` it instead provokes a micro-model error on the last
rank only and a non-converged step, and writes the error every rank saw to ``OUT.<rank>``.
With ``--halve`` it applies the whole load in one step to a micro model that raises a plain
``RuntimeError`` on the last rank for large strain increments, catches ``FE2SolveError`` and
halves the step until the load is reached; every rank writes its attempts to ``OUT.<rank>``.
"""

from __future__ import annotations

import json
import sys

import mpi4py.MPI as MPI  # noqa: I001
import numpy as np
import ufl
from dolfinx import fem, geometry, mesh

from scalelink.bridge.errors import ScaleLinkError
from scalelink.fe2.macro import FE2Problem, FE2SolveError
from scalelink.fe2.macro_io import FE2Writer
from scalelink.fe2.materials import J2Plasticity

POINTS = np.array([[4.0, 0.5, 0.0], [2.0, 1.0, 0.0], [1.3, 0.2, 0.0]])


def point_values(u: fem.Function, points: np.ndarray) -> np.ndarray:
    """``u`` at ``points`` (on every rank): evaluated where owned, then summed over ranks."""
    msh = u.function_space.mesh
    tree = geometry.bb_tree(msh, msh.topology.dim)
    candidates = geometry.compute_collisions_points(tree, points)
    colliding = geometry.compute_colliding_cells(msh, candidates, points)
    owned = msh.topology.index_map(msh.topology.dim).size_local
    values = np.zeros((len(points), msh.geometry.dim))
    found = np.zeros(len(points))
    for k in range(len(points)):  # three probe points, not a hot path
        cells = [c for c in colliding.links(k) if c < owned]
        if cells:
            values[k] = u.eval(points[k], cells[:1])
            found[k] = 1.0
    found = msh.comm.allreduce(found, op=MPI.SUM)
    return msh.comm.allreduce(values, op=MPI.SUM) / found[:, None]


class FailsOnLastRank(J2Plasticity):
    """Raises on the last rank only (an error some ranks cannot see)."""

    def evaluate(self, strain, *, time_step=0.0):
        if MPI.COMM_WORLD.rank == MPI.COMM_WORLD.size - 1:
            raise ScaleLinkError("deliberate micro-model failure")
        return super().evaluate(strain, time_step=time_step)


class LimitedIncrement(J2Plasticity):
    """Raises an ordinary ``RuntimeError`` on the last rank when a strain moves more than
    ``limit`` from its committed value, as a return mapping that fails on large increments."""

    limit = 4e-3

    def setup(self, num_points: int) -> None:
        super().setup(num_points)
        self.committed_strain = np.zeros((num_points, self.strain_size))
        self.trial_strain = self.committed_strain

    def evaluate(self, strain, *, time_step=0.0):
        increment = float(np.abs(strain - self.committed_strain).max(initial=0.0))
        if MPI.COMM_WORLD.rank == MPI.COMM_WORLD.size - 1 and increment > self.limit:
            raise RuntimeError(f"return mapping did not converge for a strain increment of {increment:.2e}")
        self.trial_strain = np.array(strain)
        return super().evaluate(strain, time_step=time_step)

    def commit(self) -> None:
        super().commit()
        self.committed_strain = self.trial_strain


def strip(comm):  # type: ignore[no-untyped-def]
    """A 4 x 1 strip of 16 x 4 cells, clamped on the left; ``g`` moves the right edge."""
    msh = mesh.create_rectangle(comm, [[0.0, 0.0], [4.0, 1.0]], [16, 4])
    space = fem.functionspace(msh, ("Lagrange", 1, (2,)))
    left = fem.locate_dofs_geometrical(space, lambda x: np.isclose(x[0], 0.0))
    right = fem.locate_dofs_geometrical(space, lambda x: np.isclose(x[0], 4.0))
    g = fem.Function(space)
    bcs = [fem.dirichletbc(np.zeros(2), left, space), fem.dirichletbc(g, right)]
    return msh, fem.Function(space), g, bcs


def halving(out: str) -> None:
    """The documented recovery: on ``FE2SolveError`` restore the last converged state and halve
    the load step."""
    comm = MPI.COMM_WORLD
    msh, u, g, bcs = strip(comm)
    micro = LimitedIncrement(strain_size=3, young=200.0, poisson=0.3, yield_stress=0.25, hardening=10.0)
    problem = FE2Problem(u, micro, bcs=bcs)
    attempts: list[list] = []
    loaded, step, target = 0.0, 2.0, 2.0
    while loaded < target and step > 1e-3:
        trial = min(loaded + step, target)
        g.interpolate(lambda x, s=trial: np.vstack([0.002 * s + 0 * x[0], -0.02 * s + 0 * x[0]]))
        converged = u.x.array.copy()
        try:
            problem.solve()
        except FE2SolveError as exc:
            attempts.append([trial, f"{type(exc).__name__}: {exc}"])
            u.x.array[:] = converged
            step /= 2.0
            continue
        problem.commit()
        attempts.append([trial, "converged"])
        loaded = trial
    with open(f"{out}.{comm.rank}", "w") as f:
        json.dump(attempts, f)


def failures(out: str) -> None:
    comm = MPI.COMM_WORLD
    msh = mesh.create_rectangle(comm, [[0.0, 0.0], [4.0, 1.0]], [16, 4])
    space = fem.functionspace(msh, ("Lagrange", 1, (2,)))
    left = fem.locate_dofs_geometrical(space, lambda x: np.isclose(x[0], 0.0))
    right = fem.locate_dofs_geometrical(space, lambda x: np.isclose(x[0], 4.0))
    bcs = [
        fem.dirichletbc(np.zeros(2), left, space),
        fem.dirichletbc(np.array([0.004, -0.04]), right, space),
    ]
    seen = []
    for cls, kwargs in ((FailsOnLastRank, {}), (J2Plasticity, {"max_iterations": 2})):
        micro = cls(strain_size=3, young=200.0, poisson=0.3, yield_stress=0.25, hardening=10.0)
        try:
            FE2Problem(fem.Function(space), micro, bcs=bcs).solve(**kwargs)
        except ScaleLinkError as exc:
            seen.append(f"{type(exc).__name__}: {exc}")
    with open(f"{out}.{comm.rank}", "w") as f:
        json.dump(seen, f)


def main(out: str) -> None:
    comm = MPI.COMM_WORLD
    msh, u, g, bcs = strip(comm)
    micro = J2Plasticity(strain_size=3, young=200.0, poisson=0.3, yield_stress=0.25, hardening=10.0)
    problem = FE2Problem(u, micro, bcs=bcs)
    l2 = fem.form(ufl.inner(u, u) * ufl.dx)
    result: dict[str, list] = {"histories": [], "stress": [], "strain": [], "l2": [], "points": [],
                               "plastic_points": [], "num_points": []}
    with FE2Writer(problem, out.replace(".json", "")) as writer:
        for step in (1, 2, 3):
            g.interpolate(lambda x, s=step: np.vstack([0.002 * s + 0 * x[0], -0.02 * s + 0 * x[0]]))
            result["histories"].append(problem.solve().residual_norms)
            problem.commit()
            writer.write(float(step))
            stress, strain = problem.volume_average()
            result["stress"].append(stress.tolist())
            result["strain"].append(strain.tolist())
            result["l2"].append(float(np.sqrt(comm.allreduce(fem.assemble_scalar(l2), op=MPI.SUM))))
            result["points"].append(point_values(u, POINTS).tolist())
            result["plastic_points"].append(
                comm.allreduce(int((micro.equivalent_plastic_strain > 0).sum()), op=MPI.SUM)
            )
            result["num_points"].append(comm.allreduce(problem.num_points, op=MPI.SUM))
    if comm.rank == 0:
        with open(out, "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    if "--fail" in sys.argv[2:]:
        failures(sys.argv[1])
    elif "--halve" in sys.argv[2:]:
        halving(sys.argv[1])
    else:
        main(sys.argv[1])
