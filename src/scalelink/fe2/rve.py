"""Periodic finite-element RVEs: effective stiffness/conductivity and an FE² micro model.

First-order homogenization on a periodic unit cell: the micro displacement is
``u = E·x + ũ`` with a periodic fluctuation ``ũ``, so the micro strain is ``ε = E + ε(ũ)`` and
``⟨ε⟩ = E``. Periodicity is imposed by eliminating the image nodes (a prolongation ``P`` from
the reduced periodic unknowns to the nodal ones, see :mod:`scalelink.fe2.periodic`): the
reduced system ``Pᵀ K P ũ = −Pᵀ f(E)`` is solved with one node fixed. Elimination was chosen over
Lagrange multipliers or penalties because it keeps the system small, symmetric positive definite
and exact, and needs no constraint library (``dolfinx_mpc`` is not available here). RVE meshes are
small and live on ``MPI.COMM_SELF``, so scipy's sparse LU is used: one factorisation serves all
``m`` load cases.

Each phase is itself a :class:`~scalelink.fe2.micro.MicroModel`, called once per Newton
iteration on the batch of all of that phase's RVE quadrature points.

The macro tangent is the static condensation of the converged RVE Jacobian::

    C_hom = ⟨C⟩ − (1/|Y|) Lᵀ K⁻¹ L,   L = Pᵀ ∫ Bᵀ C,   K = Pᵀ ∫ Bᵀ C B P

which for linear phases is the effective stiffness.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import numpy.typing as npt
import scipy.sparse.linalg as spla
from dolfinx import mesh as dmesh

from scalelink.bridge.errors import ConfigError, ScaleLinkError, UnitsError

from .micro import LinearElastic, MicroModel, check_strain_batch
from .periodic import (
    Marker,
    PeriodicOperator,
    checkerboard,
    circular_inclusion,
    hexagonal_array,
    laminate,
    unit_cell_mesh,
)

__all__ = [
    "PeriodicRVE",
    "RVEConvergenceError",
    "RVEMicroModel",
    "RVESolution",
    "checkerboard",
    "circular_inclusion",
    "effective_conductivity",
    "hexagonal_array",
    "hill_mandel_gap",
    "laminate",
    "unit_cell_mesh",
]


class RVEConvergenceError(ScaleLinkError):
    """Newton's method on an RVE did not converge."""


@dataclasses.dataclass
class RVESolution:
    """A converged RVE solve at one macro strain.

    Attributes:
        fluctuation: reduced periodic fluctuation ``(num_free,)`` (length unit × strain).
        strain: micro strains ``(q, m)`` at all RVE quadrature points (Mandel).
        stress: micro stresses ``(q, m)``.
        weights: quadrature weights ``(q,)`` (sum: RVE volume).
        macro_stress: ``⟨σ⟩`` ``(m,)``.
        macro_tangent: condensed macro tangent ``(m, m)``.
        iterations: Newton iterations taken.
        residuals: residual norms, one per iteration (relative to the internal-force scale).
    """

    fluctuation: np.ndarray
    strain: np.ndarray
    stress: np.ndarray
    weights: np.ndarray
    macro_stress: np.ndarray
    macro_tangent: np.ndarray
    iterations: int
    residuals: list[float]


def hill_mandel_gap(stress: np.ndarray, strain: np.ndarray, weights: np.ndarray) -> float:
    """Relative Hill–Mandel gap ``|⟨σ·ε⟩ − ⟨σ⟩·⟨ε⟩| / ⟨|σ||ε|⟩`` of quadrature fields.

    Args:
        stress: ``(q, m)`` Mandel stresses.
        strain: ``(q, m)`` Mandel strains.
        weights: ``(q,)`` quadrature weights.

    Returns:
        0 up to solver tolerance for an equilibrated stress and a periodic fluctuation.
    """
    v = weights.sum()
    work = weights @ np.einsum("qa,qa->q", stress, strain) / v
    product = (weights @ stress / v) @ (weights @ strain / v)
    scale = weights @ (np.linalg.norm(stress, axis=1) * np.linalg.norm(strain, axis=1)) / v
    return float(abs(work - product) / max(scale, 1e-300))


class PeriodicRVE:
    """A periodic elastic RVE whose phases are micro models.

    Args:
        mesh: simplex mesh of ``[0, L]^d`` on ``MPI.COMM_SELF`` (e.g. :func:`unit_cell_mesh`).
        phases: ``{tag: MicroModel}``; each model's ``strain_size`` must be 3 for 2D meshes
            (plane strain) and 6 for 3D meshes. History models are ``setup`` here for their
            points.
        cell_tags: phase tag per cell: a marker of unit-cell coordinates ``(n, 3) -> (n,)``
            (:func:`laminate`, :func:`circular_inclusion`, :func:`checkerboard`), an array
            ``(num_cells,)`` or dolfinx ``MeshTags``; ``None`` if there is one phase.
        degree: Lagrange degree of the displacement.
        quadrature_degree: default ``2 (degree − 1)`` (exact stiffness for uniform phases).
        tolerance: relative residual tolerance of Newton's method.
        max_iterations: Newton iteration limit.
    """

    def __init__(
        self,
        mesh: dmesh.Mesh,
        phases: dict[int, MicroModel],
        *,
        cell_tags: npt.ArrayLike | Marker | None = None,
        degree: int = 1,
        quadrature_degree: int | None = None,
        tolerance: float = 1e-10,
        max_iterations: int = 25,
    ) -> None:
        if cell_tags is None and len(phases) != 1:
            raise ConfigError(f"{len(phases)} phases need cell_tags saying which cell is which")
        self.operator = PeriodicOperator(mesh, kind="elastic", cell_tags=cell_tags,
                                         degree=degree, quadrature_degree=quadrature_degree)
        op = self.operator
        self.strain_size = op.strain_size
        if cell_tags is None:
            phases = {int(op.cell_tags[0]): next(iter(phases.values()))}
        bad = {t: p.strain_size for t, p in phases.items() if p.strain_size != op.strain_size}
        missing = set(np.unique(op.cell_tags).tolist()) - set(phases)
        if bad or missing:
            raise ConfigError(
                f"phases must cover the cell tags {sorted(set(op.cell_tags.tolist()))} with "
                f"strain_size {op.strain_size} for a {op.dim}D mesh; missing tags "
                f"{sorted(missing)}, wrong strain sizes {bad}"
            )
        units = {p.stress_unit for p in phases.values()}
        if len(units) != 1:
            raise UnitsError(
                f"phases use different stress units {sorted(units)}; give every phase the same "
                "stress_unit (convert the stiffer phase's moduli)"
            )
        if not tolerance > 0 or max_iterations < 1:
            raise ConfigError(
                f"need tolerance > 0 and max_iterations >= 1, got {tolerance!r} and "
                f"{max_iterations!r}"
            )
        self.phases = dict(phases)
        self.points = {t: np.flatnonzero(op.point_tags == t) for t in self.phases}
        for tag, model in self.phases.items():
            model.setup(self.points[tag].size)
        self.tolerance = tolerance
        self.max_iterations = max_iterations

    @property
    def volume_fractions(self) -> dict[int, float]:
        """Volume fraction of each phase on the mesh."""
        op = self.operator
        return {t: float(op.weights[idx].sum() / op.volume) for t, idx in self.points.items()}

    def average(self, field: np.ndarray) -> np.ndarray:
        """Volume average of a quadrature field ``(q, ...)`` (e.g. micro stress or strain)."""
        return self.operator.average(field)

    def phase_response(
        self,
        strain: np.ndarray,
        *,
        models: dict[int, MicroModel] | None = None,
        time_step: float = 0.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Micro stress ``(q, m)`` and tangent ``(q, m, m)`` of a micro strain field ``(q, m)``:
        one batched (trial) call per phase on all of its quadrature points."""
        models = self.phases if models is None else models
        m = self.strain_size
        stress = np.empty_like(strain)
        tangent = np.empty((strain.shape[0], m, m))
        for tag, idx in self.points.items():
            stress[idx], tangent[idx] = models[tag].evaluate(strain[idx], time_step=time_step)
        return stress, tangent

    def _condense(self, tangent: np.ndarray, lu: spla.SuperLU) -> np.ndarray:
        coupling = self.operator.coupling(tangent)
        mean = self.operator.average(tangent)
        return mean - coupling.T @ lu.solve(coupling) / self.operator.volume

    def effective_stiffness(self) -> np.ndarray:
        """Homogenized Mandel stiffness ``(m, m)`` from the phases' tangents at zero strain
        (the effective stiffness for linear phases): one factorisation, ``m`` load cases."""
        zero = np.zeros((self.operator.num_quadrature_points, self.strain_size))
        _, tangent = self.phase_response(zero)
        return self._condense(tangent, self.operator.factorize(self.operator.matrix(tangent)))

    def solve(
        self,
        macro_strain: npt.ArrayLike,
        *,
        models: dict[int, MicroModel] | None = None,
        initial: np.ndarray | None = None,
        time_step: float = 0.0,
    ) -> RVESolution:
        """Newton solve of the RVE at one macro strain (a trial: nothing is committed).

        Args:
            macro_strain: ``(m,)`` Mandel macro strain.
            models: phase models to use (per-macro-point copies of history phases);
                default :attr:`phases`.
            initial: starting fluctuation ``(num_free,)``; zero if not given.
            time_step: passed to the phases.

        Returns:
            The converged :class:`RVESolution`.
        """
        op = self.operator
        e = check_strain_batch(np.reshape(macro_strain, (1, -1)), self.strain_size)[0]
        models = self.phases if models is None else models
        u = np.zeros(op.num_free) if initial is None else np.array(initial, dtype=float)
        residuals: list[float] = []
        for iteration in range(self.max_iterations + 1):
            strain = e + op.gradient(u)
            stress, tangent = self.phase_response(strain, models=models, time_step=time_step)
            residual = op.vector(stress)
            scale = np.linalg.norm(op.vector(stress, absolute=True))
            residuals.append(float(np.linalg.norm(residual) / max(scale, 1e-300)))
            lu = op.factorize(op.matrix(tangent))
            if residuals[-1] <= self.tolerance or scale == 0.0:
                return RVESolution(
                    u, strain, stress, op.weights, op.average(stress),
                    self._condense(tangent, lu), iteration, residuals,
                )
            u = u - lu.solve(residual)
        raise RVEConvergenceError(
            f"RVE Newton did not reach the relative residual {self.tolerance:g} in "
            f"{self.max_iterations} iterations at macro strain {e.tolist()} (residuals "
            f"{residuals[-3:]}); reduce the macro load step or raise max_iterations"
        )


def _is_linear(model: MicroModel) -> bool:
    return isinstance(model, LinearElastic) and model.stiffness.ndim == 2 and not model.has_state


class RVEMicroModel(MicroModel):
    """An FE RVE at every macro quadrature point, behind the :class:`MicroModel` contract.

    With only linear phases (uniform :class:`LinearElastic`) the homogenized stiffness is
    computed once and :meth:`evaluate` is a matrix product. Otherwise each macro point's RVE is
    solved by Newton's method — a Python loop over macro points, one FE solve each, which is
    unavoidable; the phases are evaluated on the batch of the RVE's quadrature points. History
    phases get one copy per macro point (its state: one entry per RVE quadrature point); the
    converged fluctuation of each point is kept as the next starting guess.

    Args:
        rve: the periodic RVE (all macro points share its mesh and assembly structure).
    """

    def __init__(self, rve: PeriodicRVE) -> None:
        self.rve = rve
        self.strain_size = rve.strain_size
        phases = list(rve.phases.values())
        self.stress_unit = phases[0].stress_unit
        self.has_state = any(p.has_state for p in phases)
        self.linear = all(_is_linear(p) for p in phases)
        self.stiffness = rve.effective_stiffness() if self.linear else None
        self._models: list[dict[int, MicroModel]] = []
        self._committed = np.zeros((0, rve.operator.num_free))
        self._trial = self._committed.copy()

    def setup(self, num_points: int) -> None:
        """Per-point fluctuations and, for history phases, one phase copy per macro point."""
        self._committed = np.zeros((num_points, self.rve.operator.num_free))
        self._trial = self._committed.copy()
        self._models = [
            {t: copy.deepcopy(p) if p.has_state else p for t, p in self.rve.phases.items()}
            for _ in range(num_points if self.has_state else 0)
        ]

    def evaluate(
        self, strain: np.ndarray, *, time_step: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        s = check_strain_batch(strain, self.strain_size)
        n = s.shape[0]
        if self.stiffness is not None:
            return s @ self.stiffness.T, np.repeat(self.stiffness[None], n, axis=0)
        if self._committed.shape[0] != n:
            if self.has_state:
                raise ConfigError(
                    f"{n} strains for an RVE micro model set up for {self._committed.shape[0]} "
                    "points; call setup(num_points) first"
                )
            self.setup(n)
        stress = np.empty_like(s)
        tangent = np.empty((n, self.strain_size, self.strain_size))
        for i in range(n):
            models = self._models[i] if self.has_state else None
            sol = self.rve.solve(s[i], models=models, initial=self._committed[i],
                                 time_step=time_step)
            stress[i], tangent[i] = sol.macro_stress, sol.macro_tangent
            self._trial[i] = sol.fluctuation
        return stress, tangent

    def commit(self) -> None:
        """Accept the last trial: fluctuations and the phases' history."""
        self._committed = self._trial.copy()
        for models in self._models:
            for tag, model in models.items():
                if self.rve.phases[tag].has_state:
                    model.commit()


def effective_conductivity(
    mesh: dmesh.Mesh,
    conductivities: dict[int, float | npt.ArrayLike],
    *,
    cell_tags: npt.ArrayLike | Marker | None = None,
    degree: int = 1,
) -> np.ndarray:
    """Effective conductivity ``(d, d)`` of a periodic cell: ``⟨q⟩ = −k_eff ⟨∇T⟩``.

    Same periodic machinery as :class:`PeriodicRVE` with a scalar field.

    Args:
        mesh: simplex mesh of ``[0, L]^d`` on ``MPI.COMM_SELF``.
        conductivities: ``{tag: k}`` with ``k`` a number or a ``(d, d)`` tensor.
        cell_tags: as for :class:`PeriodicRVE`.
        degree: Lagrange degree of the temperature.
    """
    op = PeriodicOperator(mesh, kind="scalar", cell_tags=cell_tags, degree=degree)
    d = op.dim
    tangent = np.empty((op.num_quadrature_points, d, d))
    tags = set(op.cell_tags.tolist()) if cell_tags is not None else {0}
    if cell_tags is None and len(conductivities) == 1:
        conductivities = {0: next(iter(conductivities.values()))}
    if not tags <= set(conductivities):
        raise ConfigError(
            f"conductivities given for tags {sorted(conductivities)} but the cells carry "
            f"tags {sorted(tags)}"
        )
    for tag, k in conductivities.items():
        kk = np.asarray(k, dtype=float)
        kk = kk * np.eye(d) if kk.ndim == 0 else kk
        if kk.shape != (d, d):
            raise ConfigError(
                f"conductivity of tag {tag} has shape {kk.shape}, expected () or ({d}, {d})"
            )
        tangent[op.point_tags == tag] = kk
    lu = op.factorize(op.matrix(tangent))
    coupling = op.coupling(tangent)
    return op.average(tangent) - coupling.T @ lu.solve(coupling) / op.volume
