"""Cahn–Hilliard phase field in dolfinx: mixed concentration/chemical-potential form, backward
Euler with an adaptive time step, parallel under ``mpirun``, VTX output.

The equations, with mobility ``M``, gradient-energy coefficient ``κ`` and homogeneous free
energy ``f(c)`` (any object of :mod:`scalelink.mesoscale.free_energy`):

.. math::
    \\partial_t c = \\nabla\\cdot(M \\nabla\\mu), \\qquad \\mu = f'(c) - \\kappa\\,\\Delta c ,

with zero flux on the boundary, so that ``∫c`` is conserved. The weak form is solved for
``(c, μ)`` in P1 × P1 by PETSc SNES (Newton, SuperLU_DIST LU); ``f'`` is the symbolic derivative of
``f`` in UFL. The time step grows while the largest change of ``c`` per step stays under a
target and is cut when Newton fails or the change is too large (the step is then repeated).
Every decision uses numbers reduced over the communicator, so all ranks take the same steps.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import ufl
from mpi4py import MPI

import basix.ufl
import dolfinx.fem.petsc
from dolfinx import fem, io, mesh as dmesh

from scalelink.bridge.errors import ConfigError, NonFiniteError

__all__ = ["CahnHilliard", "TimeStepping"]


def _bounded_ln(x: Any) -> Any:
    """``ln x`` with its argument kept above 1e-12: a Newton iterate that leaves (0, 1) then
    gets a huge but finite chemical potential (and the step is cut) instead of NaN."""
    return ufl.ln(ufl.max_value(x, 1e-12))


@dataclass(frozen=True)
class TimeStepping:
    """Adaptive backward-Euler settings.

    Attributes:
        dt: first time step.
        dt_min: smallest step before the run gives up.
        dt_max: largest step.
        target_change: the largest ``|Δc|`` wanted per step; the step grows (×≤2) below it.
        reject_change: a step whose ``|Δc|`` exceeds this is repeated with half the step.
        rtol: SNES relative residual tolerance.
        atol: SNES absolute residual tolerance.
    """

    dt: float = 1e-6
    dt_min: float = 1e-14
    dt_max: float = 1e6
    target_change: float = 0.02
    reject_change: float = 0.1
    rtol: float = 1e-12
    atol: float = 1e-14

    def __post_init__(self) -> None:
        if not 0 < self.dt_min <= self.dt <= self.dt_max:
            raise ConfigError(f"time steps must satisfy 0 < dt_min <= dt <= dt_max, got {self.dt_min}, "
                              f"{self.dt}, {self.dt_max}")
        if not 0 < self.target_change < self.reject_change:
            raise ConfigError(f"need 0 < target_change < reject_change, got {self.target_change}, "
                              f"{self.reject_change}")


@dataclass
class _History:
    time: list[float] = field(default_factory=list)
    dt: list[float] = field(default_factory=list)
    energy: list[float] = field(default_factory=list)
    mass: list[float] = field(default_factory=list)
    rejected: int = 0


class CahnHilliard:
    """A Cahn–Hilliard problem on a dolfinx mesh.

    Args:
        domain: the mesh (interval, triangle, quadrilateral, tetrahedron or hexahedron cells).
        free_energy: an object with ``density(c, log)`` (see the module docstring).
        kappa: gradient-energy coefficient ``κ`` (energy × length² per volume).
        mobility: ``M`` (length² per energy per time).
        stepping: adaptive time-step settings.
        petsc_prefix: PETSc options prefix (unique per problem in one process).
    """

    def __init__(self, domain: dmesh.Mesh, free_energy: Any, *, kappa: float, mobility: float,
                 stepping: TimeStepping | None = None, petsc_prefix: str = "scalelink_ch_") -> None:
        if kappa <= 0 or mobility <= 0:
            raise ConfigError(f"kappa and mobility must be positive, got {kappa}, {mobility}")
        self.domain = domain
        self.comm = domain.comm
        self.free_energy = free_energy
        self.stepping = stepping or TimeStepping()
        p1 = basix.ufl.element("Lagrange", domain.basix_cell(), 1)
        self.space = fem.functionspace(domain, basix.ufl.mixed_element([p1, p1]))
        self.u = fem.Function(self.space)
        self.u_old = fem.Function(self.space)
        self._dt = fem.Constant(domain, self.stepping.dt)
        c, mu = ufl.split(self.u)
        c_old, _ = ufl.split(self.u_old)
        q, v = ufl.TestFunctions(self.space)
        cv = ufl.variable(c)
        dfdc = ufl.diff(free_energy.density(cv, _bounded_ln), cv)
        k, m = fem.Constant(domain, float(kappa)), fem.Constant(domain, float(mobility))
        residual = ((c - c_old) * q + self._dt * m * ufl.dot(ufl.grad(mu), ufl.grad(q))) * ufl.dx \
            + (mu * v - dfdc * v - k * ufl.dot(ufl.grad(c), ufl.grad(v))) * ufl.dx
        options = {"snes_type": "newtonls", "snes_linesearch_type": "none", "snes_rtol": self.stepping.rtol,
                   "snes_atol": self.stepping.atol, "snes_stol": 0.0, "snes_max_it": 25,
                   "snes_error_if_not_converged": False, "ksp_type": "preonly", "pc_type": "lu",
                   "pc_factor_mat_solver_type": "superlu_dist"}
        self._problem = dolfinx.fem.petsc.NonlinearProblem(
            residual, self.u, petsc_options_prefix=petsc_prefix, petsc_options=options)
        self._energy_form = fem.form(
            (free_energy.density(c, _bounded_ln) + 0.5 * k * ufl.dot(ufl.grad(c), ufl.grad(c))) * ufl.dx)
        self._mass_form = fem.form(c * ufl.dx)
        self.concentration_space, self._c_dofs = self.space.sub(0).collapse()
        self.concentration = fem.Function(self.concentration_space, name="c")
        self.time = 0.0
        self.history = _History()

    def set_concentration(self, values: Callable[[np.ndarray], np.ndarray]) -> None:
        """Interpolate the initial concentration ``values(x)`` (``x``: ``(3, n)`` → ``(n,)``).

        ``μ`` needs no initial value: it is an algebraic unknown of the first step."""
        self.u.sub(0).interpolate(values)
        self.u.x.scatter_forward()
        self.u_old.x.array[:] = self.u.x.array
        self._record(0.0)

    def _sum(self, form: fem.Form) -> float:
        return float(self.comm.allreduce(fem.assemble_scalar(form), op=MPI.SUM))

    def total_energy(self) -> float:
        """``∫ f(c) + κ/2 |∇c|² dx`` over the whole mesh."""
        return self._sum(self._energy_form)

    def total_mass(self) -> float:
        """``∫ c dx`` over the whole mesh."""
        return self._sum(self._mass_form)

    def concentration_range(self) -> tuple[float, float]:
        """Smallest and largest nodal concentration over all ranks."""
        c = self.u.x.array[self._c_dofs]
        lo = self.comm.allreduce(float(c.min()) if c.size else np.inf, op=MPI.MIN)
        hi = self.comm.allreduce(float(c.max()) if c.size else -np.inf, op=MPI.MAX)
        return lo, hi

    def _record(self, dt: float) -> None:
        h = self.history
        h.time.append(self.time)
        h.dt.append(dt)
        h.energy.append(self.total_energy())
        h.mass.append(self.total_mass())

    def step(self) -> float:
        """Advance one accepted step (repeating rejected tries); returns the step taken."""
        s = self.stepping
        dt = float(self._dt.value)
        while True:
            self._dt.value = dt
            self.u.x.array[:] = self.u_old.x.array
            self._problem.solve()
            reason = self._problem.solver.getConvergedReason()
            change = np.abs(self.u.x.array[self._c_dofs] - self.u_old.x.array[self._c_dofs])
            local = float(change.max()) if change.size else 0.0
            if not np.isfinite(local):
                local = np.inf
            largest = self.comm.allreduce(local, op=MPI.MAX)
            converged = self.comm.allreduce(int(reason > 0), op=MPI.MIN) == 1
            if converged and largest <= s.reject_change:
                break
            self.history.rejected += 1
            # a failed LU factorisation can leave per-rank state in the preconditioner: start afresh
            self._problem.solver.getKSP().reset()
            dt *= 0.5
            if dt < s.dt_min:
                self.u.x.array[:] = self.u_old.x.array
                raise NonFiniteError(
                    f"the Cahn–Hilliard step fell below dt_min = {s.dt_min} at t = {self.time} (Newton "
                    f"reason {reason}, largest change {largest}); lower dt_min, refine the mesh or check "
                    "that the free energy is defined for the concentrations reached")
        self.u.x.scatter_forward()
        self.u_old.x.array[:] = self.u.x.array
        self.time += dt
        self._record(dt)
        grow = 2.0 if largest == 0 else min(2.0, max(0.5, s.target_change / largest))
        self._dt.value = float(np.clip(dt * grow, s.dt_min, s.dt_max))
        return dt

    def run(self, t_end: float, *, max_steps: int = 100000, steady_tol: float = 0.0,
            output: str | os.PathLike[str] | None = None, output_every: int = 10) -> dict[str, Any]:
        """Step until ``t_end`` (the last step is shortened to land on it), ``max_steps``, or
        until the largest change per step falls below ``steady_tol`` times the step.

        Args:
            t_end: end time.
            max_steps: most steps taken.
            steady_tol: stop when ``max|Δc|/dt`` falls below it (0: never).
            output: a ``.bp`` folder for :class:`dolfinx.io.VTXWriter` (concentration), or None.
            output_every: write every this many steps (and the last).

        Returns:
            ``steps``, ``time``, ``rejected``, ``energy``, ``mass``, ``mass_drift`` (largest
            ``|∫c − ∫c₀|`` over the run).
        """
        writer = None
        if output is not None:
            writer = io.VTXWriter(self.comm, str(output), [self.concentration], engine="BP4")
            self._write(writer)
        steps = 0
        while self.time < t_end * (1 - 1e-12) and steps < max_steps:
            before = self.u.x.array[self._c_dofs].copy()
            self._dt.value = min(float(self._dt.value), t_end - self.time)
            dt = self.step()
            steps += 1
            if writer is not None and steps % output_every == 0:
                self._write(writer)
            if steady_tol > 0:
                local = float(np.abs(self.u.x.array[self._c_dofs] - before).max()) if before.size else 0.0
                if self.comm.allreduce(local, op=MPI.MAX) < steady_tol * dt:
                    break
        if writer is not None:
            self._write(writer)
            writer.close()
        mass = np.asarray(self.history.mass)
        return {"steps": steps, "time": self.time, "rejected": self.history.rejected,
                "energy": self.history.energy[-1], "mass": float(mass[-1]),
                "mass_drift": float(np.abs(mass - mass[0]).max())}

    def _write(self, writer: io.VTXWriter) -> None:
        self.concentration.x.array[:] = self.u.x.array[self._c_dofs]
        writer.write(self.time)
