"""Data-driven plate and block used by the data-driven tests, serially and under ``mpirun``.

``[mpirun -n N] python datadriven_driver.py OUT``

The plate: ``[0, 2] × [0, 1]`` in plane strain on rollers (``u_x = 0`` on ``x = 0``,
``u_y = 0`` on ``y = 0``), a linearly varying traction on ``x = 2`` and gravity, so the strain
field is smooth and non-uniform. The block: the same in 3D on ``[0, 2] × [0, 1] × [0, 1]``.
The classical linear-elastic solution of both is computed here with plain dolfinx and UFL
(Lamé form, no Mandel algebra), the reference of the data-driven answer. ``main`` writes the
rank-independent results of a noisy 2D run and a 3D run to the JSON file OUT on rank 0.
"""

from __future__ import annotations

import json
import sys

import mpi4py.MPI as MPI  # noqa: I001
import dolfinx.fem.petsc
import numpy as np
import ufl
from dolfinx import fem, geometry, mesh

from scalelink.datadriven import DataDrivenProblem, linear_elastic_database
from scalelink.fe2.tensors import isotropic_stiffness

YOUNG, POISSON = 100.0, 0.3
# Mandel strain boxes that hold the classical solutions with a margin.
PLATE_STRAINS = np.array([[0.0, -0.01, -0.005], [0.014, 0.002, 0.008]])
BLOCK_STRAINS = np.array([[0.002, -0.004, -0.006, -0.002, -0.002, -0.002],
                          [0.010, 0.0, 0.002, 0.002, 0.004, 0.004]])
PROBES = np.array([[2.0, 1.0, 0.0], [1.0, 0.5, 0.0], [2.0, 0.0, 0.0]])


def problem(comm: MPI.Comm, cells: int, dim: int = 2):  # type: ignore[no-untyped-def]
    """``(V, bcs, body_force, tractions)`` of the plate (``dim == 2``) or block (``dim == 3``)
    with ``cells`` cells across the height."""
    if dim == 2:
        msh = mesh.create_rectangle(comm, [[0.0, 0.0], [2.0, 1.0]], [2 * cells, cells])
    else:
        msh = mesh.create_box(comm, [[0.0, 0.0, 0.0], [2.0, 1.0, 1.0]], [2 * cells, cells, cells])
    V = fem.functionspace(msh, ("Lagrange", 1, (dim,)))
    fdim = dim - 1
    bcs = []
    for axis in range(dim):  # rollers on the three (two) coordinate planes
        facets = mesh.locate_entities_boundary(msh, fdim, lambda x, a=axis: np.isclose(x[a], 0.0))
        dofs = fem.locate_dofs_topological(V.sub(axis), fdim, facets)
        bcs.append(fem.dirichletbc(0.0, dofs, V.sub(axis)))
    facets = mesh.locate_entities_boundary(msh, fdim, lambda x: np.isclose(x[0], 2.0))
    tags = mesh.meshtags(msh, fdim, facets, np.full(facets.size, 1, dtype=np.int32))
    ds = ufl.Measure("ds", domain=msh, subdomain_data=tags)
    x = ufl.SpatialCoordinate(msh)
    if dim == 2:
        traction, gravity = ufl.as_vector([0.5 + 0.5 * x[1], 0.2 * x[1]]), ufl.as_vector([0.0, -0.3])
    else:
        traction = ufl.as_vector([0.5 + 0.5 * x[1], 0.2 * x[1], 0.1 + 0.2 * x[2]])
        gravity = ufl.as_vector([0.0, 0.0, -0.3])
    return V, bcs, gravity, ((traction, ds(1)),)


def lame_stress(w):  # type: ignore[no-untyped-def]
    mu = YOUNG / (2.0 * (1.0 + POISSON))
    lmbda = YOUNG * POISSON / ((1.0 + POISSON) * (1.0 - 2.0 * POISSON))
    e = ufl.sym(ufl.grad(w))
    return 2.0 * mu * e + lmbda * ufl.tr(e) * ufl.Identity(len(w))


def classical_solution(V, bcs, body_force, tractions) -> fem.Function:  # type: ignore[no-untyped-def]
    """The linear-elastic displacement, solved directly with dolfinx."""
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    load = ufl.inner(body_force, v) * ufl.dx + sum(ufl.inner(t, v) * ds for t, ds in tractions)
    solver = dolfinx.fem.petsc.LinearProblem(
        ufl.inner(lame_stress(u), ufl.sym(ufl.grad(v))) * ufl.dx, load, bcs=bcs,
        petsc_options_prefix="classical_",
        petsc_options={"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"})
    return solver.solve()


def mandel_stress(w):  # type: ignore[no-untyped-def]
    """The Lamé stress of ``w`` as a Mandel vector (UFL)."""
    s, r = lame_stress(w), np.sqrt(2.0)
    if len(w) == 2:
        return ufl.as_vector([s[0, 0], s[1, 1], r * s[0, 1]])
    return ufl.as_vector([s[0, 0], s[1, 1], s[2, 2], r * s[1, 2], r * s[0, 2], r * s[0, 1]])


def errors(dd: DataDrivenProblem, reference: fem.Function) -> tuple[float, float]:
    """Relative L² errors of the displacement and of the stress (at the quadrature points)."""
    comm, u = dd.u.function_space.mesh.comm, dd.u
    sigma = mandel_stress(reference)

    def integral(expr) -> float:  # type: ignore[no-untyped-def]
        return comm.allreduce(fem.assemble_scalar(fem.form(expr)), op=MPI.SUM)

    displacement = np.sqrt(integral(ufl.inner(u - reference, u - reference) * ufl.dx)
                           / integral(ufl.inner(reference, reference) * ufl.dx))
    stress = np.sqrt(integral(ufl.inner(dd.stress - sigma, dd.stress - sigma) * dd.dx)
                     / integral(ufl.inner(sigma, sigma) * dd.dx))
    return float(displacement), float(stress)


def probe(u: fem.Function, points: np.ndarray) -> np.ndarray:
    """``u`` at ``points`` on every rank (from the owning rank of each point)."""
    msh = u.function_space.mesh
    tdim, gdim = msh.topology.dim, msh.geometry.dim
    owned = msh.topology.index_map(tdim).size_local
    tree = geometry.bb_tree(msh, tdim, entities=np.arange(owned, dtype=np.int32))
    hits = geometry.compute_colliding_cells(msh, geometry.compute_collisions_points(tree, points), points)
    values, found = np.zeros((len(points), gdim)), np.zeros(len(points))
    for k in range(len(points)):  # three probes, not a hot path
        cells = hits.links(k)
        if len(cells):
            values[k], found[k] = u.eval(points[k], cells[:1]), 1.0
    return msh.comm.allreduce(values, op=MPI.SUM) / msh.comm.allreduce(found, op=MPI.SUM)[:, None]


def run(dim: int, cells: int, spacing: float, noise: float, young_c: float) -> dict:
    comm = MPI.COMM_WORLD
    V, bcs, gravity, tractions = problem(comm, cells, dim)
    m = 3 if dim == 2 else 6
    law = isotropic_stiffness(young=YOUNG, poisson=POISSON, strain_size=m)
    box = PLATE_STRAINS if dim == 2 else BLOCK_STRAINS
    data = linear_elastic_database(law, spacing=spacing, strain_range=box, noise=noise, seed=4)
    c = isotropic_stiffness(young=young_c, poisson=0.2, strain_size=m)
    u = fem.Function(V)
    dd = DataDrivenProblem(u, data, stiffness=c, bcs=bcs, body_force=gravity, tractions=tractions)
    result = dd.solve()
    assigned = np.zeros(len(data))
    np.add.at(assigned, dd.assignment, 1.0)
    points = PROBES if dim == 3 else PROBES[:, :2].copy()
    displacement_error, stress_error = errors(dd, classical_solution(V, bcs, gravity, tractions))
    l2 = comm.allreduce(fem.assemble_scalar(fem.form(ufl.inner(u, u) * ufl.dx)), op=MPI.SUM)
    return {"iterations": result.iterations, "changed": result.changed,
            "objective": result.objective, "max_distance": result.max_distance,
            "mean_distance": result.mean_distance, "l2": float(np.sqrt(l2)),
            "points": probe(u, np.pad(points, ((0, 0), (0, 3 - points.shape[1])))).tolist(),
            "assigned": comm.allreduce(assigned, op=MPI.SUM).tolist(),
            "num_points": comm.allreduce(dd.num_points, op=MPI.SUM),
            "displacement_error": displacement_error, "stress_error": stress_error}


def main(out: str) -> None:
    results = {"plate": run(2, 8, 5e-4, 0.002, 70.0), "block": run(3, 2, 1e-3, 0.0, 80.0)}
    if MPI.COMM_WORLD.rank == 0:
        with open(out, "w") as f:
            json.dump(results, f)


if __name__ == "__main__":
    main(sys.argv[1])
