"""The FE² macro problem: small-strain mechanics whose stress comes from a micro model.

The displacement ``u`` lives in a Lagrange space; stress ``σ_q``, strain ``ε_q`` and tangent
``C_q`` live in quadrature spaces (basix quadrature elements) whose points are the points of the
macro integration rule. Each Newton iteration

1. evaluates the Mandel strain of ``u`` at every quadrature point of the rank's owned cells with
   one :class:`dolfinx.fem.Expression` call,
2. calls ``micro.evaluate(strain, time_step=dt)`` **once** with that whole ``(n, m)`` batch and
   writes the returned stress and tangent into the quadrature Functions,
3. assembles the residual ``∫ σ_q·ε(v) − ∫ f·v − Σ ∫ t·v ds`` and the Jacobian
   ``∫ (C_q ε(du))·ε(v)`` and solves with a PETSc KSP (MUMPS LU unless overridden).

Why quadrature spaces and an own Newton loop rather than ``dolfinx-external-operator``: the micro
model returns stress *and* consistent tangent together from one batched call per iteration (an
external operator asks for them separately, which doubles the cost of an RVE or a network);
the trial/commit cycle of history models stays explicit (:meth:`FE2Problem.solve` only makes
trials, :meth:`FE2Problem.commit` accepts a converged step); and nothing beyond dolfinx,
petsc4py and numpy is needed.

Mandel ordering is that of :mod:`scalelink.fe2.tensors`; strains of a 2D mesh are plane
strain (``m = 3``), of a 3D mesh ``m = 6``.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Sequence
from typing import Any

import mpi4py.MPI as MPI  # noqa: I001  (loads libmpi before dolfinx/petsc4py)
import basix
import basix.ufl
import dolfinx.fem.petsc
import numpy as np
import ufl
from dolfinx import fem
from petsc4py import PETSc

from scalelink.bridge.errors import ConfigError, ScaleLinkError

from .micro import MicroModel

__all__ = ["FE2Problem", "FE2SolveError", "NewtonResult", "mandel_strain", "quadrature_points"]

_SQRT2 = float(np.sqrt(2.0))
# Unique PETSc prefixes; problems are built collectively, so the count agrees on all ranks.
_INSTANCES = itertools.count()
_DEFAULT_PETSC = {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}


class FE2SolveError(ScaleLinkError):
    """A macro step failed: Newton did not converge, the linear solve or a micro model failed."""


@dataclasses.dataclass(frozen=True)
class NewtonResult:
    """Outcome of one :meth:`FE2Problem.solve`.

    Attributes:
        converged: whether the residual norm met ``rtol`` or ``atol``.
        iterations: number of linear solves (Newton updates) made.
        residual_norms: ℓ² norm of the residual vector (Dirichlet rows hold ``u − g``) before
            each update and after the last one, length ``iterations + 1``.
        uncertain_points: this rank's quadrature points (indices into the micro batch, see
            :meth:`FE2Problem.quadrature_points`) that the micro model reported as too
            uncertain at the converged state (:meth:`MicroModel.uncertain_points`): where new
            high-fidelity runs are needed.
    """

    converged: bool
    iterations: int
    residual_norms: list[float]
    uncertain_points: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def mandel_strain(u: Any) -> ufl.core.expr.Expr:
    """Small-strain Mandel vector of a displacement: length 3 on a 2D mesh, 6 on a 3D mesh."""
    e = ufl.sym(ufl.grad(u))
    if e.ufl_shape == (2, 2):
        return ufl.as_vector([e[0, 0], e[1, 1], _SQRT2 * e[0, 1]])
    if e.ufl_shape == (3, 3):
        return ufl.as_vector(
            [e[0, 0], e[1, 1], e[2, 2], _SQRT2 * e[1, 2], _SQRT2 * e[0, 2], _SQRT2 * e[0, 1]]
        )
    raise ConfigError(f"displacement gradient has shape {e.ufl_shape}, expected (2, 2) or (3, 3)")


def _check_displacement(u: Any) -> int:
    if not isinstance(u, fem.Function):
        raise ConfigError(f"u must be a dolfinx.fem.Function, got {type(u).__name__}")
    mesh = u.function_space.mesh
    gdim, tdim = mesh.geometry.dim, mesh.topology.dim
    if tdim not in (2, 3) or gdim != tdim:
        raise ConfigError(
            f"FE² needs a 2D mesh in 2D or a 3D mesh in 3D, got topology {tdim}D in {gdim}D space"
        )
    if u.function_space.value_shape != (gdim,):
        raise ConfigError(
            f"u has value shape {u.function_space.value_shape}, expected ({gdim},): use "
            f"functionspace(mesh, ('Lagrange', degree, ({gdim},)))"
        )
    return gdim


def default_quadrature_degree(u: fem.Function) -> int:
    """The quadrature degree that integrates the small-strain stiffness of ``u``'s space exactly."""
    p = u.function_space.ufl_element().embedded_superdegree
    simplex = u.function_space.mesh.topology.cell_name() in ("triangle", "tetrahedron")
    # The exact degree of ε(u)·ε(v) on affine simplices; tensor-product cells need 2p.
    return 2 * (p - 1) if simplex else 2 * p


def quadrature_points(u: fem.Function, *, quadrature_degree: int | None = None) -> np.ndarray:
    """Coordinates ``(n, gdim)`` of the macro quadrature points of the rank's owned cells.

    Row ``k`` is the point whose strain is row ``k`` of every ``micro.evaluate`` batch of an
    :class:`FE2Problem` built on ``u`` with the same ``quadrature_degree``, so per-point data
    (phases, orientations, fibre directions) can be laid out before the problem is built.
    """
    _check_displacement(u)
    degree = default_quadrature_degree(u) if quadrature_degree is None else quadrature_degree
    mesh = u.function_space.mesh
    num_cells = mesh.topology.index_map(mesh.topology.dim).size_local
    points, _ = basix.make_quadrature(mesh.basix_cell(), degree)
    expr = fem.Expression(ufl.SpatialCoordinate(mesh), points)
    cells = np.arange(num_cells, dtype=np.int32)
    return expr.eval(mesh, cells).reshape(num_cells * points.shape[0], mesh.geometry.dim)


def _validate(
    u: Any, micro: Any, bcs: Sequence[Any], tractions: Sequence[Any], degree: int | None
) -> tuple[int, tuple, tuple, int]:
    """``(strain_size, bcs, tractions, quadrature_degree)`` after checking every input."""
    gdim = _check_displacement(u)
    m = 3 if gdim == 2 else 6
    size = getattr(micro, "strain_size", None)
    if size != m or not callable(getattr(micro, "evaluate", None)):
        kind = "plane strain [xx, yy, √2xy]" if m == 3 else "3D Mandel"
        raise ConfigError(
            f"micro model {type(micro).__name__} has strain_size {size!r} but a {gdim}D mesh "
            f"needs {m} ({kind}); build the micro model for this dimension"
        )
    bcs = tuple(bcs)
    if not all(isinstance(bc, fem.DirichletBC) for bc in bcs):
        raise ConfigError("bcs must be dolfinx.fem.DirichletBC objects (fem.dirichletbc)")
    tractions = tuple(tractions)
    for pair in tractions:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[1], ufl.Measure)):
            raise ConfigError(
                "each traction must be a pair (t, ds) of a UFL vector and a facet measure, "
                f"got {pair!r}"
            )
    chosen = default_quadrature_degree(u) if degree is None else degree
    if not isinstance(chosen, int) or chosen < 0:
        raise ConfigError(f"quadrature_degree must be an int >= 0, got {degree!r}")
    return m, bcs, tractions, chosen


def create_ksp(
    comm: MPI.Comm, matrix: PETSc.Mat, prefix: str, options: dict[str, Any] | None
) -> PETSc.KSP:
    """A KSP on ``matrix`` configured from the defaults overridden by ``options``."""
    ksp = PETSc.KSP().create(comm)
    ksp.setOperators(matrix)
    ksp.setOptionsPrefix(prefix)
    database = PETSc.Options()
    merged = {**_DEFAULT_PETSC, **(options or {})}
    for key, value in merged.items():
        database[f"{prefix}{key}"] = value
    ksp.setFromOptions()
    # The database is global: leave nothing behind for other solvers.
    for key in merged:
        database.delValue(f"{prefix}{key}")
    return ksp


class FE2Problem:
    """Small-strain macro problem with a micro model at every quadrature point.

    Args:
        u: displacement Function (vector Lagrange, value shape ``(gdim,)``); holds the initial
            guess and, after :meth:`solve`, the solution.
        micro: the micro model; ``micro.strain_size`` must be 3 on a 2D mesh, 6 on a 3D mesh.
        bcs: Dirichlet conditions on ``u``'s space (values may change between steps).
        body_force: UFL vector ``f`` (force/volume, the micro model's stress unit per length).
        tractions: pairs ``(t, ds)`` of a UFL vector and a facet measure, e.g.
            ``((t, ufl.Measure("ds", mesh, subdomain_data=tags)(1)),)``.
        quadrature_degree: degree of the macro rule (default ``2(p−1)`` on simplices, ``2p`` on
            quadrilaterals/hexahedra for Lagrange degree ``p``).
        petsc_options: KSP/PC options overriding MUMPS LU, e.g. ``{"pc_type": "gamg",
            "ksp_type": "cg"}``.
        petsc_options_prefix: options prefix of the KSP (default: unique per problem), so that
            command-line options such as ``-<prefix>ksp_monitor`` reach it.

    Attributes:
        strain_size: ``m``, 3 (2D plane strain) or 6 (3D).
        num_points: quadrature points of the rank's owned cells (the micro batch size).
        quadrature_degree: degree of the macro rule.
        dx: cell measure with the macro rule (integrate :attr:`stress` etc. with it).
        timings: this rank's wall time (s) in :meth:`solve` (``"solve"``) and in the micro
            model's calls within it (``"micro"``), summed over all solves.
    """

    def __init__(
        self,
        u: fem.Function,
        micro: MicroModel,
        *,
        bcs: Sequence[fem.DirichletBC] = (),
        body_force: Any = None,
        tractions: Sequence[tuple[Any, ufl.Measure]] = (),
        quadrature_degree: int | None = None,
        petsc_options: dict[str, Any] | None = None,
        petsc_options_prefix: str | None = None,
    ) -> None:
        m, bcs, tractions, degree = _validate(u, micro, bcs, tractions, quadrature_degree)
        self.u, self.micro, self.bcs, self.strain_size = u, micro, bcs, m
        self.quadrature_degree = degree
        mesh = u.function_space.mesh
        self._comm = mesh.comm
        cell = mesh.basix_cell()
        q_vec = basix.ufl.quadrature_element(cell, value_shape=(m,), degree=degree)
        q_mat = basix.ufl.quadrature_element(cell, value_shape=(m, m), degree=degree)
        space_vec, space_mat = fem.functionspace(mesh, q_vec), fem.functionspace(mesh, q_mat)
        self._stress = fem.Function(space_vec, name="stress")
        self._strain = fem.Function(space_vec, name="strain")
        self._tangent = fem.Function(space_mat, name="tangent")

        num_cells = mesh.topology.index_map(mesh.topology.dim).size_local
        self._cells = np.arange(num_cells, dtype=np.int32)
        self._vec_dofs = space_vec.dofmap.list[:num_cells].ravel()
        self._mat_dofs = space_mat.dofmap.list[:num_cells].ravel()
        self.num_points = int(self._vec_dofs.size)
        points = space_vec.element.interpolation_points
        self._strain_expr = fem.Expression(mandel_strain(u), points)

        rule = {"quadrature_degree": degree, "quadrature_scheme": "default"}
        self.dx = ufl.Measure("dx", domain=mesh, metadata=rule)
        v, du = ufl.TestFunction(u.function_space), ufl.TrialFunction(u.function_space)
        residual = ufl.inner(self._stress, mandel_strain(v)) * self.dx
        if body_force is not None:
            residual -= ufl.inner(body_force, v) * ufl.dx(domain=mesh)
        for traction, ds in tractions:
            residual -= ufl.inner(traction, v) * ds
        tangent_du = ufl.dot(self._tangent, mandel_strain(du))
        jacobian = ufl.inner(tangent_du, mandel_strain(v)) * self.dx
        self._residual, self._jacobian = fem.form(residual), fem.form(jacobian)

        self._A = dolfinx.fem.petsc.create_matrix(self._jacobian)
        self._b = dolfinx.fem.petsc.create_vector(u.function_space)
        self._du = dolfinx.fem.petsc.create_vector(u.function_space)
        prefix = petsc_options_prefix or f"scalelink_fe2_{next(_INSTANCES)}_"
        self._ksp = create_ksp(self._comm, self._A, prefix, petsc_options)
        self._converged = False
        self._average_forms: tuple[tuple[Any, fem.Form], ...] | None = None
        micro.setup(self.num_points)
        # Wall time (s) of this rank in all solves, and in the micro model's calls among them.
        self.timings = {"solve": 0.0, "micro": 0.0}

    def quadrature_points(self) -> np.ndarray:
        """Coordinates ``(num_points, gdim)`` of the rank's quadrature points, in batch order."""
        return quadrature_points(self.u, quadrature_degree=self.quadrature_degree)

    @property
    def stress(self) -> fem.Function:
        """Quadrature Function of the stress (Mandel, value shape ``(m,)``) of the last trial."""
        return self._stress

    @property
    def strain(self) -> fem.Function:
        """Quadrature Function of the strain (Mandel, value shape ``(m,)``) of the last trial."""
        return self._strain

    @property
    def tangent(self) -> fem.Function:
        """Quadrature Function of the consistent tangent (value shape ``(m, m)``)."""
        return self._tangent

    def _evaluate_micro(self, time_step: float) -> None:
        """One batched micro call at the current ``u``; failures raise on every rank."""
        m, n = self.strain_size, self.num_points
        strain = self._strain_expr.eval(self.u.function_space.mesh, self._cells).reshape(n, m)
        error: Exception | None = None
        try:
            start = time.perf_counter()
            stress, tangent = self.micro.evaluate(strain, time_step=time_step)
            self.timings["micro"] += time.perf_counter() - start
            stress, tangent = np.asarray(stress, float), np.asarray(tangent, float)
            if stress.shape != (n, m) or tangent.shape != (n, m, m):
                raise FE2SolveError(
                    f"returned stress {stress.shape} and tangent {tangent.shape}, expected "
                    f"({n}, {m}) and ({n}, {m}, {m})"
                )
            finite = np.isfinite(stress).all(axis=1) & np.isfinite(tangent).all(axis=(1, 2))
            if not finite.all():
                raise FE2SolveError(
                    f"returned NaN or inf stress/tangent at {int((~finite).sum())} of {n} points"
                )
        except Exception as exc:  # becomes an FE2SolveError on every rank, below
            error = exc
        if self._comm.allreduce(error is not None, op=MPI.LOR):
            self._raise_agreed_failure(error)
        self._strain.x.array.reshape(-1, m)[self._vec_dofs] = strain
        self._stress.x.array.reshape(-1, m)[self._vec_dofs] = stress
        self._tangent.x.array.reshape(-1, m * m)[self._mat_dofs] = tangent.reshape(n, m * m)
        for f in (self._strain, self._stress, self._tangent):
            f.x.scatter_forward()

    def _raise_agreed_failure(self, error: Exception | None) -> None:
        """Raise the same :class:`FE2SolveError` on every rank, with the first failing rank's
        message (a rank that raised something else alone would leave the others in the next
        collective call). Collective: every rank calls it once any rank has failed."""
        detail = None
        if error is not None:
            detail = str(error) if isinstance(error, FE2SolveError) else f"{type(error).__name__}: {error}"
        details = self._comm.allgather(detail)
        failed = [rank for rank, d in enumerate(details) if d is not None]
        where = f" on MPI rank {failed[0]} of {self._comm.size}" if self._comm.size > 1 else ""
        others = f" (and on {len(failed) - 1} more ranks)" if len(failed) > 1 else ""
        message = f"micro model {type(self.micro).__name__} failed{where}{others}: {details[failed[0]]}"
        if error is not None:
            raise FE2SolveError(message) from error
        raise FE2SolveError(message)

    def _assemble_residual(self) -> float:
        b, x = self._b, self.u.x.petsc_vec
        with b.localForm() as local:
            local.set(0.0)
        dolfinx.fem.petsc.assemble_vector(b, self._residual)
        dolfinx.fem.petsc.apply_lifting(b, [self._jacobian], bcs=[self.bcs], x0=[x], alpha=-1.0)
        b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        dolfinx.fem.petsc.set_bc(b, self.bcs, x, -1.0)
        return float(b.norm())

    def solve(
        self,
        *,
        time_step: float = 0.0,
        rtol: float = 1e-10,
        atol: float = 1e-12,
        max_iterations: int = 25,
    ) -> NewtonResult:
        """Newton solve of one macro step (trial only: call :meth:`commit` to accept it).

        Args:
            time_step: passed to every ``micro.evaluate`` (time since the last commit).
            rtol: stop when the residual norm ≤ ``rtol`` × the first residual norm of the step.
            atol: or when it is ≤ ``atol`` (force units, and displacement units on BC rows).
            max_iterations: most Newton updates.

        Returns:
            The convergence history.

        Raises:
            FE2SolveError: on every rank, if not converged, the linear solve failed or the
                micro model failed on any rank.
        """
        if not (rtol >= 0.0 and atol >= 0.0) or int(max_iterations) < 1:
            raise ConfigError(
                f"need rtol >= 0, atol >= 0, max_iterations >= 1; got {rtol!r}, {atol!r}, "
                f"{max_iterations!r}"
            )
        self._converged = False
        norms: list[float] = []
        start = time.perf_counter()
        try:
            return self._newton(time_step, rtol, atol, int(max_iterations), norms)
        finally:
            self.timings["solve"] += time.perf_counter() - start

    def _newton(
        self, time_step: float, rtol: float, atol: float, max_iterations: int, norms: list[float]
    ) -> NewtonResult:
        for iteration in range(max_iterations + 1):
            self._evaluate_micro(time_step)
            norms.append(self._assemble_residual())
            if not np.isfinite(norms[-1]):
                raise FE2SolveError(f"residual norm became {norms[-1]} at iteration {iteration}")
            if norms[-1] <= atol or norms[-1] <= rtol * norms[0]:
                self._converged = True
                flagged = np.asarray(self.micro.uncertain_points(), dtype=np.int64)
                return NewtonResult(True, iteration, norms, flagged)
            if iteration == max_iterations:
                break
            self._A.zeroEntries()
            dolfinx.fem.petsc.assemble_matrix(self._A, self._jacobian, bcs=self.bcs)
            self._A.assemble()
            self._ksp.solve(self._b, self._du)
            reason = self._ksp.getConvergedReason()
            if reason < 0:
                raise FE2SolveError(
                    f"linear solve failed at Newton iteration {iteration} (KSP reason {reason}); "
                    "check the Dirichlet conditions (rigid-body modes) or the petsc_options"
                )
            self.u.x.petsc_vec.axpy(-1.0, self._du)
            self.u.x.scatter_forward()
        history = ", ".join(f"{r:.3e}" for r in norms)
        raise FE2SolveError(
            f"Newton did not converge in {max_iterations} iterations (rtol={rtol:g}, "
            f"atol={atol:g}); residual norms: [{history}]. Take a smaller load step, raise "
            "max_iterations, or check the micro model's tangent with taylor_test"
        )

    def commit(self) -> None:
        """Accept the converged step: ``micro.commit()`` (history models keep this state)."""
        if not self._converged:
            raise FE2SolveError("commit() needs a converged solve() first; nothing was committed")
        self.micro.commit()
        self._converged = False

    def _owned_cell_integrals(self) -> list[np.ndarray]:
        """Integrals of stress, strain and 1 per owned cell: ``(c, m)``, ``(c, m)``, ``(c, 1)``."""
        mesh = self.u.function_space.mesh
        if self._average_forms is None:
            cells_vec = fem.functionspace(mesh, ("DG", 0, (self.strain_size,)))
            cells = fem.functionspace(mesh, ("DG", 0))
            w, w0 = ufl.TestFunction(cells_vec), ufl.TestFunction(cells)
            self._average_forms = (
                (cells_vec, fem.form(ufl.inner(self._stress, w) * self.dx)),
                (cells_vec, fem.form(ufl.inner(self._strain, w) * self.dx)),
                (cells, fem.form(w0 * self.dx)),
            )
        out = []
        for space, form in self._average_forms:
            dofs = space.dofmap.list[: self._cells.size, 0]
            out.append(fem.assemble_vector(form).array.reshape(-1, space.dofmap.bs)[dofs])
        return out

    def cell_averages(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cell averages (by the macro quadrature rule) over the rank's owned cells.

        Returns:
            ``(stress, strain, volumes)``: Mandel ``(c, m)``, ``(c, m)`` and cell volumes
            ``(c,)``, in the order of the owned cells ``0 … c−1``.
        """
        stress, strain, volumes = self._owned_cell_integrals()
        return stress / volumes, strain / volumes, volumes[:, 0]

    def volume_average(self) -> tuple[np.ndarray, np.ndarray]:
        """Stress and strain averaged over the whole mesh (MPI-reduced, same on every rank).

        Returns:
            ``(stress, strain)``, Mandel vectors ``(m,)``.
        """
        stress, strain, volumes = self._owned_cell_integrals()
        local = np.concatenate([stress.sum(axis=0), strain.sum(axis=0), [volumes.sum()]])
        total = self._comm.allreduce(local, op=MPI.SUM)
        m = self.strain_size
        return total[:m] / total[-1], total[m : 2 * m] / total[-1]
