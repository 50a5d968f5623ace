"""Distance-minimising data-driven solver (Kirchdoerfer & Ortiz 2016) on dolfinx.

The material law is a database of states ``z_i = (ε_i, σ_i)``. The solver looks for the
compatible (``ε = ε(u)``, ``u = g`` on the Dirichlet boundary) and equilibrated
(``∫ σ·ε(v) = ∫ f·v + ∫ t·v ds``) field of local states closest to the database, in the
distance of :mod:`scalelink.datadriven.search`, integrated with the quadrature rule. Each
iteration

1. assigns to every quadrature point the nearest database state ``(ε*, σ*)`` of its current
   state ``(ε, σ)`` (one batched kd-tree query per rank);
2. solves the two linear problems of the constrained minimum, with the same operator
   ``K = ∫ C ε(du)·ε(v)``::

       K u = ∫ C ε*·ε(v)                  (u = g on the Dirichlet boundary)
       K η = ∫ f·v + ∫ t·v ds − ∫ σ*·ε(v)  (η = 0 there)

   and sets ``ε = ε(u)``, ``σ = σ* + C ε(η)``;

and stops when no point changes its database state. ``K`` is assembled and factorised once per
problem and reused by both solves of every iteration and of every later :meth:`solve`.

The first assignment starts from the linear-elastic solution with stiffness ``C``
(``K u₀ = F``, ``ε = ε(u₀)``, ``σ = C ε``), which depends only on the problem, not on the
partition, so 1 and 2 MPI ranks take the same path. Each rank searches its own quadrature points;
the database is replicated on every rank; the number of changed assignments is summed over ranks
so every rank stops at the same iteration.

Mandel ordering is that of :mod:`scalelink.fe2.tensors`; a 2D mesh is plane strain (``m = 3``),
a 3D mesh has ``m = 6``.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Sequence
from typing import Any

import mpi4py.MPI as MPI  # noqa: I001  (loads libmpi before dolfinx/petsc4py)
import basix.ufl
import dolfinx.fem.petsc
import numpy as np
import numpy.typing as npt
import ufl
from dolfinx import fem
from petsc4py import PETSc

from scalelink.bridge.errors import ConfigError, ScaleLinkError
from scalelink.fe2.macro import create_ksp, default_quadrature_degree, mandel_strain

from .database import MaterialDatabase
from .search import StateSearch, fit_stiffness

__all__ = ["DataDrivenProblem", "DataDrivenResult", "DataDrivenSolveError"]

_INSTANCES = itertools.count()


class DataDrivenSolveError(ScaleLinkError):
    """The data-driven iteration did not settle, or a linear solve failed."""


@dataclasses.dataclass(frozen=True)
class DataDrivenResult:
    """Outcome of one :meth:`DataDrivenProblem.solve` (the same on every rank).

    Attributes:
        iterations: assignments made (each followed by the two linear solves), the last one
            being the one that changed nothing.
        changed: points (all ranks) whose database state changed, per iteration.
        objective: ``∫ d² dx`` (all ranks) after the solves of every iteration that changed an
            assignment, so one entry fewer than ``changed``; non-increasing.
        max_distance: largest ``d`` over all quadrature points at the end.
        mean_distance: mean of ``d`` over all quadrature points at the end.
        seconds: wall time of the solve (rank 0's clock).
    """

    iterations: int
    changed: list[int]
    objective: list[float]
    max_distance: float
    mean_distance: float
    seconds: float


def _check_inputs(u: Any, database: Any, bcs: Sequence[Any], tractions: Sequence[Any]) -> int:
    if not isinstance(u, fem.Function):
        raise ConfigError(f"u must be a dolfinx.fem.Function, got {type(u).__name__}")
    mesh = u.function_space.mesh
    gdim, tdim = mesh.geometry.dim, mesh.topology.dim
    if tdim not in (2, 3) or gdim != tdim or u.function_space.value_shape != (gdim,):
        raise ConfigError(
            f"need a vector displacement on a 2D or 3D mesh, got value shape "
            f"{u.function_space.value_shape} on a {tdim}D mesh in {gdim}D space"
        )
    if not isinstance(database, MaterialDatabase):
        raise ConfigError(f"database must be a MaterialDatabase, got {type(database).__name__}")
    m = 3 if gdim == 2 else 6
    if database.strain_size != m:
        raise ConfigError(
            f"{database.source} has strain size {database.strain_size} but a {gdim}D mesh needs "
            f"{m} ({'plane strain [xx, yy, √2·xy]' if m == 3 else '3D Mandel'})"
        )
    if not all(isinstance(bc, fem.DirichletBC) for bc in bcs):
        raise ConfigError("bcs must be dolfinx.fem.DirichletBC objects (fem.dirichletbc)")
    for pair in tractions:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[1], ufl.Measure)):
            raise ConfigError(f"each traction must be a pair (t, ds) of a UFL vector and a facet measure, got {pair!r}")
    return m


class DataDrivenProblem:
    """Small-strain boundary-value problem whose material law is a database of states.

    Args:
        u: displacement Function (vector Lagrange); holds the solution after :meth:`solve`.
        database: the material states (strain size 3 on a 2D mesh, 6 on a 3D mesh).
        stiffness: SPD Mandel matrix ``C`` of the distance (default: fitted to the data with
            :func:`~scalelink.datadriven.fit_stiffness`). It changes the path and the
            speed, not the meaning, of the solution; a stiffness near the material's is best.
        bcs: Dirichlet conditions on ``u``'s space (values may change between solves).
        body_force: UFL vector ``f`` (force per volume, in the database's stress unit per length).
        tractions: pairs ``(t, ds)`` of a UFL vector and a facet measure.
        quadrature_degree: degree of the rule whose points carry the states (default ``2(p−1)``
            on simplices, ``2p`` on quadrilaterals/hexahedra for Lagrange degree ``p``).
        petsc_options: KSP/PC options overriding MUMPS LU.
        petsc_options_prefix: options prefix of the KSP (default: unique per problem).
        search_workers: threads of each kd-tree query (``-1``: all cores).

    Attributes:
        strain_size: ``m``.
        num_points: quadrature points of the rank's owned cells.
        search: the :class:`~scalelink.datadriven.StateSearch` (``C``, ``C⁻¹``, the tree).
        assignment: database index ``(num_points,)`` of every owned point after :meth:`solve`.
        dx: cell measure with the rule of the states.
        timings: this rank's wall time (s) summed over solves: ``"search"`` (kd-tree queries),
            ``"linear"`` (assembly of right-hand sides and the two solves), ``"iterations"``.
    """

    def __init__(
        self,
        u: fem.Function,
        database: MaterialDatabase,
        *,
        stiffness: npt.ArrayLike | None = None,
        bcs: Sequence[fem.DirichletBC] = (),
        body_force: Any = None,
        tractions: Sequence[tuple[Any, ufl.Measure]] = (),
        quadrature_degree: int | None = None,
        petsc_options: dict[str, Any] | None = None,
        petsc_options_prefix: str | None = None,
        search_workers: int = 1,
    ) -> None:
        bcs, tractions = tuple(bcs), tuple(tractions)
        m = _check_inputs(u, database, bcs, tractions)
        self.u, self.database, self.bcs, self.strain_size = u, database, bcs, m
        c = fit_stiffness(database) if stiffness is None else stiffness
        self.search = StateSearch(database, c, workers=search_workers)
        mesh = u.function_space.mesh
        self._comm = mesh.comm
        degree = self._degree(quadrature_degree)
        self.quadrature_degree = degree
        cell = mesh.basix_cell()
        space_vec = fem.functionspace(mesh, basix.ufl.quadrature_element(cell, value_shape=(m,), degree=degree))
        space_scalar = fem.functionspace(mesh, basix.ufl.quadrature_element(cell, value_shape=(), degree=degree))
        self.strain = fem.Function(space_vec, name="strain")
        self.stress = fem.Function(space_vec, name="stress")
        self.data_strain = fem.Function(space_vec, name="data_strain")
        self.data_stress = fem.Function(space_vec, name="data_stress")
        self.distance = fem.Function(space_scalar, name="data_distance")
        self.eta = fem.Function(u.function_space, name="multiplier")

        num_cells = mesh.topology.index_map(mesh.topology.dim).size_local
        self._cells = np.arange(num_cells, dtype=np.int32)
        self._vec_dofs = space_vec.dofmap.list[:num_cells].ravel()
        self._scalar_dofs = space_scalar.dofmap.list[:num_cells].ravel()
        self.num_points = int(self._vec_dofs.size)
        points = space_vec.element.interpolation_points
        self._strain_u = fem.Expression(mandel_strain(u), points)
        self._strain_eta = fem.Expression(mandel_strain(self.eta), points)
        self.assignment = np.full(self.num_points, -1, dtype=np.int64)

        rule = {"quadrature_degree": degree, "quadrature_scheme": "default"}
        self.dx = ufl.Measure("dx", domain=mesh, metadata=rule)
        V = u.function_space
        v, du = ufl.TestFunction(V), ufl.TrialFunction(V)
        self._C = fem.Constant(mesh, self.search.stiffness)
        self._operator = fem.form(ufl.inner(ufl.dot(self._C, mandel_strain(du)), mandel_strain(v)) * self.dx)
        load = ufl.inner(fem.Constant(mesh, np.zeros(mesh.geometry.dim)), v) * ufl.dx(domain=mesh)
        if body_force is not None:
            load += ufl.inner(body_force, v) * ufl.dx(domain=mesh)
        for traction, ds in tractions:
            load += ufl.inner(traction, v) * ds
        self._load = fem.form(load)
        self._rhs_u = fem.form(ufl.inner(ufl.dot(self._C, self.data_strain), mandel_strain(v)) * self.dx)
        self._rhs_eta = fem.form(-ufl.inner(self.data_stress, mandel_strain(v)) * self.dx)
        self._objective = fem.form(self.distance**2 * self.dx)

        self._A = dolfinx.fem.petsc.assemble_matrix(self._operator, bcs=list(bcs))
        self._A.assemble()
        self._F = dolfinx.fem.petsc.create_vector(V)
        self._b = dolfinx.fem.petsc.create_vector(V)
        prefix = petsc_options_prefix or f"scalelink_dd_{next(_INSTANCES)}_"
        self._ksp = create_ksp(self._comm, self._A, prefix, petsc_options)
        self.timings = {"search": 0.0, "linear": 0.0, "iterations": 0}

    def _degree(self, requested: int | None) -> int:
        if requested is not None:
            if not isinstance(requested, int) or requested < 0:
                raise ConfigError(f"quadrature_degree must be an int >= 0, got {requested!r}")
            return requested
        return default_quadrature_degree(self.u)

    def quadrature_points(self) -> np.ndarray:
        """Coordinates ``(num_points, gdim)`` of the rank's quadrature points, in point order."""
        mesh = self.u.function_space.mesh
        points = self.strain.function_space.element.interpolation_points
        x = fem.Expression(ufl.SpatialCoordinate(mesh), points).eval(mesh, self._cells)
        return x.reshape(self.num_points, mesh.geometry.dim)

    def _vector(self, form: fem.Form) -> PETSc.Vec:
        """``self._b`` = assembled ``form`` with ghost contributions summed."""
        b = self._b
        with b.localForm() as local:
            local.set(0.0)
        dolfinx.fem.petsc.assemble_vector(b, form)
        return b

    def _linear_solve(self, target: fem.Function, what: str, iteration: int) -> None:
        self._ksp.solve(self._b, target.x.petsc_vec)
        reason = self._ksp.getConvergedReason()
        if reason < 0:
            raise DataDrivenSolveError(
                f"the {what} solve failed at iteration {iteration} (KSP reason {reason}); check the "
                "Dirichlet conditions (rigid-body modes) or the petsc_options"
            )
        target.x.scatter_forward()

    def _solve_displacement(self, form: fem.Form, iteration: int) -> None:
        """``K u = form`` with ``u = g`` on the Dirichlet dofs."""
        b = self._vector(form)
        dolfinx.fem.petsc.apply_lifting(b, [self._operator], bcs=[list(self.bcs)])
        b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        dolfinx.fem.petsc.set_bc(b, list(self.bcs))
        self._linear_solve(self.u, "displacement", iteration)

    def _solve_multiplier(self, iteration: int) -> None:
        """``K η = F − ∫ σ*·ε(v)`` with ``η = 0`` on the Dirichlet dofs."""
        b = self._vector(self._rhs_eta)
        b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        b.axpy(1.0, self._F)
        dolfinx.fem.petsc.set_bc(b, list(self.bcs), alpha=0.0)
        self._linear_solve(self.eta, "multiplier", iteration)

    def _point_values(self, expression: fem.Expression) -> np.ndarray:
        mesh = self.u.function_space.mesh
        return expression.eval(mesh, self._cells).reshape(self.num_points, self.strain_size)

    def _write(self, function: fem.Function, values: np.ndarray, dofs: np.ndarray) -> None:
        width = int(np.prod(function.function_space.value_shape, dtype=int))
        function.x.array.reshape(-1, width)[dofs] = values.reshape(self.num_points, width)
        function.x.scatter_forward()

    def _local_states(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ε(u), σ* + C ε(η))`` at the owned points."""
        strain = self._point_values(self._strain_u)
        stress = self.database.stress[self.assignment] + self._point_values(self._strain_eta) @ self.search.stiffness
        return strain, stress

    def _assemble_load(self) -> None:
        F = self._F
        with F.localForm() as local:
            local.set(0.0)
        dolfinx.fem.petsc.assemble_vector(F, self._load)
        F.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)

    def solve(self, *, max_iterations: int = 200) -> DataDrivenResult:
        """Iterate assignments and the two linear solves until no assignment changes.

        Args:
            max_iterations: most assignments.

        Returns:
            The iteration history and the distance to the data at the end.

        Raises:
            DataDrivenSolveError: on every rank, if assignments still change after
                ``max_iterations`` or a linear solve fails.
        """
        if int(max_iterations) < 1:
            raise ConfigError(f"max_iterations must be >= 1, got {max_iterations!r}")
        start = time.perf_counter()
        self._assemble_load()
        # Linear-elastic predictor with C: ε = ε(u₀), σ = C ε.
        tic = time.perf_counter()
        self._solve_displacement(self._load, 0)
        self.timings["linear"] += time.perf_counter() - tic
        strain = self._point_values(self._strain_u)
        stress = strain @ self.search.stiffness
        previous = np.full(self.num_points, -1, dtype=np.int64)
        changed: list[int] = []
        objective: list[float] = []
        for iteration in range(1, int(max_iterations) + 1):
            tic = time.perf_counter()
            index, distance = self.search.nearest(strain, stress)
            self.timings["search"] += time.perf_counter() - tic
            self.timings["iterations"] += 1
            changed.append(int(self._comm.allreduce(int(np.count_nonzero(index != previous)), op=MPI.SUM)))
            if changed[-1] == 0:
                self._write(self.distance, distance, self._scalar_dofs)
                return self._result(iteration, changed, objective, distance, start)
            self.assignment = previous = index
            self._write(self.data_strain, self.database.strain[index], self._vec_dofs)
            self._write(self.data_stress, self.database.stress[index], self._vec_dofs)
            tic = time.perf_counter()
            self._solve_displacement(self._rhs_u, iteration)
            self._solve_multiplier(iteration)
            self.timings["linear"] += time.perf_counter() - tic
            strain, stress = self._local_states()
            self._write(self.strain, strain, self._vec_dofs)
            self._write(self.stress, stress, self._vec_dofs)
            self._write(self.distance, self.search.distance(strain, stress, index), self._scalar_dofs)
            objective.append(self._comm.allreduce(fem.assemble_scalar(self._objective), op=MPI.SUM))
        raise DataDrivenSolveError(
            f"assignments still changed after {max_iterations} iterations (changed points per "
            f"iteration: {changed[-10:]} ...); raise max_iterations or choose a stiffness closer "
            "to the material's"
        )

    def _result(self, iterations: int, changed: list[int], objective: list[float],
                distance: np.ndarray, start: float) -> DataDrivenResult:
        comm = self._comm
        largest = comm.allreduce(float(distance.max(initial=0.0)), op=MPI.MAX)
        total = comm.allreduce(np.array([distance.sum(), distance.size], dtype=float), op=MPI.SUM)
        seconds = comm.bcast(time.perf_counter() - start, root=0)
        return DataDrivenResult(iterations, changed, objective, largest,
                                float(total[0] / max(total[1], 1.0)), seconds)

    def distances(self) -> np.ndarray:
        """``d`` ``(num_points,)`` of the rank's owned points after :meth:`solve` (where the
        data are thin, ``d`` is large)."""
        return self.distance.x.array[self._scalar_dofs].copy()
