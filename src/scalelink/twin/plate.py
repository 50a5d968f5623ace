r"""The twin's forecast model: a viscoelastic composite plate in FE² with a laminate micro model.

The part is a plane-strain plate ``[0, L] × [0, H]``, held on rollers at ``x = 0`` (``u_x = 0``,
and ``u_y = 0`` at the origin) and pulled by a grip displacement ``g(t)`` on ``x = L``. It is a
fibre composite whose plies run along ``x``; the fibre volume fraction ``f(x, y)`` varies over
the plate (a fibre-rich band, fewer fibres towards the grip), so the strain is shared unevenly
between regions and the stress peaks in the band.

**Micro model.** At every macro quadrature point the composite is a laminate RVE — fibre layers
(isotropic elastic, Young's modulus ``E_f``, the uncertain and drifting parameter) and matrix
layers (a generalized Maxwell material, :class:`~scalelink.fe2.Viscoelastic`) with normal ``y``
— solved in closed form (:class:`LaminateMicro`). In one time step the matrix law is affine,
``σ_m = C_m ε_m + s_m`` (algorithmic tangent and history stress of the exact Maxwell
integrator), so the laminate conditions — in-plane strain ``ε_xx`` common to the layers, tractions
``σ_yy``, ``σ_xy`` continuous, strains averaging to the macro strain — are a 2×2 linear solve per
point, batched over all points: an FE² model whose micro problems are solved exactly, without a
mesh, at the cost of a closed-form law. The effective tangent is the laminate formula
(:func:`~scalelink.fe2.laminate_stiffness`) of the layers' tangents.

**Members.** :class:`CompositePlate` builds one macro problem (:class:`~scalelink.fe2.FE2Problem`
on ``MPI.COMM_SELF``: each rank solves its own members) and keeps, per ensemble member, its own
micro history, displacement and fibre stiffness; a member step swaps them in, solves, commits.
:class:`PlateMembers` adapts it to :class:`~scalelink.twin.ensemble.MemberModel` with the state
vector ``x = [z_1 … z_r, log E_f, σ_peak]``: ``z`` the reduced displacement coordinates
``z = Φᵀ u`` in an orthonormal POD basis ``Φ`` of plate responses (:func:`pod_basis`),
``log E_f`` the parameter and ``σ_peak`` the monitored peak stress (max of ``σ_xx`` over the
quadrature points). Only ``log E_f`` is carried from one step to the next; ``z`` and
``σ_peak`` are recomputed by every forecast (in a quasi-static problem they follow from the load,
the parameter and the member's micro history) and are in the state so that observations of
strains are linear in it and so that the analysis gives their posterior.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import mpi4py.MPI as MPI  # noqa: I001  (loads libmpi before dolfinx)
import numpy as np
import numpy.typing as npt
import ufl
from dolfinx import fem, mesh

from scalelink.bridge.errors import ConfigError
from scalelink.fe2.macro import FE2Problem, mandel_strain, quadrature_points
from scalelink.fe2.micro import MicroModel, check_strain_batch
from scalelink.fe2.prony import PronySeries
from scalelink.fe2.tensors import isotropic_stiffness
from scalelink.fe2.viscoelastic import Viscoelastic

__all__ = [
    "CompositePlate",
    "LaminateMicro",
    "PlateMembers",
    "PlateSpec",
    "default_fibre_fraction",
    "pod_basis",
]

class LaminateMicro(MicroModel):
    """Two-phase laminate RVE (layers normal to ``y``) at every point, solved in closed form.

    Args:
        fractions: fibre volume fraction of every point ``(n,)`` in batch order, in ``[0, 1]``.
        fibre_young: Young's modulus ``E_f`` of the (isotropic, elastic) fibre layers.
        fibre_poisson: their Poisson ratio.
        matrix: the matrix layers' material (plane strain, ``strain_size`` 3); it keeps one
            history per point (``setup`` is called with the number of points).

    Attributes:
        fibre_stress: fibre-layer stress ``(n, 3)`` of the last evaluation.
    """

    has_state = True
    strain_size = 3

    def __init__(self, fractions: npt.ArrayLike, fibre_young: float, *, fibre_poisson: float,
                 matrix: Viscoelastic) -> None:
        f = np.asarray(fractions, dtype=float).ravel()
        if not np.all((f >= 0.0) & (f <= 1.0)):
            raise ConfigError("fibre fractions must lie in [0, 1]")
        if matrix.strain_size != 3:
            raise ConfigError(f"the matrix must be a plane-strain material (strain_size 3), got {matrix.strain_size}")
        self.fractions = f
        self.matrix = matrix
        self.stress_unit = matrix.stress_unit
        self._unit_fibre = isotropic_stiffness(young=1.0, poisson=fibre_poisson, strain_size=3)
        self.fibre_young = fibre_young
        self.fibre_stress = np.zeros((f.size, 3))

    @property
    def fibre_young(self) -> float:
        return self._young

    @fibre_young.setter
    def fibre_young(self, value: float) -> None:
        e = float(value)
        if not (math.isfinite(e) and e > 0.0):
            raise ConfigError(f"fibre Young's modulus must be finite and > 0, got {value!r}")
        self._young = e

    def setup(self, num_points: int) -> None:
        if num_points != self.fractions.size:
            raise ConfigError(f"{num_points} points for {self.fractions.size} fibre fractions")
        self.matrix.setup(num_points)

    def evaluate(self, strain: np.ndarray, *, time_step: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        eps = check_strain_batch(strain, 3)
        n = eps.shape[0]
        if n != self.fractions.size:
            raise ConfigError(f"{n} strains for {self.fractions.size} points")
        # The matrix's affine law of this step: σ_m = C_m ε_m + s_m (a trial at zero strain).
        s_m, c_m = self.matrix.evaluate(np.zeros_like(eps), time_step=time_step)
        c_m = c_m[0]
        c_f = self._young * self._unit_fibre
        f = self.fractions[:, None]
        weights = (f, 1.0 - f)
        # Blocks of each layer's stiffness: t = (yy, √2xy) traction components, s = xx.
        blocks = [(np.linalg.inv(c[1:, 1:]), c[1:, :1], c[:1, 1:], c[:1, :1]) for c in (c_f, c_m)]
        offsets = (None, s_m[:, 1:])
        # Normal strains of layer k: ε_t = C_tt⁻¹ (σ_t − C_ts ε_s − s_t); their average is the
        # macro ε_t, which gives the common traction σ_t = A⁻¹ (ε̄_t + Σ f_k C_tt⁻¹ (C_ts ε_s + s_t)).
        a = (f[:, :, None] * blocks[0][0] + weights[1][:, :, None] * blocks[1][0])  # (n, 2, 2)
        a_inv = np.linalg.inv(a)
        e_s = eps[:, :1]
        rhs = eps[:, 1:].copy()
        pushes = []
        for (ci, cts, _, _), off in zip(blocks, offsets):
            push = e_s @ cts.T if off is None else e_s @ cts.T + off  # C_ts ε_s + s_t
            pushes.append(push)
        for w, (ci, _, _, _), push in zip(weights, blocks, pushes):
            rhs += w * (push @ ci.T)
        traction = np.einsum("nij,nj->ni", a_inv, rhs)
        layer_strain = []
        for (ci, _, _, _), push in zip(blocks, pushes):
            e = np.empty_like(eps)
            e[:, :1] = e_s
            e[:, 1:] = (traction - push) @ ci.T
            layer_strain.append(e)
        fibre_stress = layer_strain[0] @ c_f.T
        matrix_stress = layer_strain[1] @ c_m.T + s_m
        self.fibre_stress = fibre_stress
        stress = f * fibre_stress + weights[1] * matrix_stress
        # The matrix's trial at its own layer strain (this sets the state commit() accepts).
        self.matrix.evaluate(layer_strain[1], time_step=time_step)
        # Effective tangent: the laminate (Backus) formula of the layers' tangents, per point.
        right = sum(w[:, :, None] * (ci @ cts)[None] for w, (ci, cts, _, _) in zip(weights, blocks))
        left = sum(w[:, :, None] * (cst @ ci)[None] for w, (ci, _, cst, _) in zip(weights, blocks))
        inner = sum(w[:, :, None] * (css - cst @ ci @ cts)[None]
                    for w, (ci, cts, cst, css) in zip(weights, blocks))
        tangent = np.empty((n, 3, 3))
        a_right = a_inv @ right
        tangent[:, 1:, 1:] = a_inv
        tangent[:, 1:, :1] = a_right
        tangent[:, :1, 1:] = left @ a_inv
        tangent[:, :1, :1] = inner + left @ a_right
        return stress, tangent

    def commit(self) -> None:
        self.matrix.commit()


class _MemberSwitch(MicroModel):
    """The micro model of whichever member is active (all set up with the same points)."""

    has_state = True
    strain_size = 3

    def __init__(self, stress_unit: str) -> None:
        self.stress_unit = stress_unit
        self.active: LaminateMicro | None = None
        self.num_points = 0

    def setup(self, num_points: int) -> None:
        self.num_points = int(num_points)

    def evaluate(self, strain: np.ndarray, *, time_step: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        if self.active is None:
            raise ConfigError("no ensemble member is active")
        return self.active.evaluate(strain, time_step=time_step)

    def commit(self) -> None:
        if self.active is not None:
            self.active.commit()


def default_fibre_fraction(x: np.ndarray, length: float, height: float) -> np.ndarray:
    """Fibre-rich over the first 70 % of the length (``f ≈ 0.40``, with a band of ``f ≈ 0.60``
    along ``y ≈ 0.3 H``), nearly pure matrix (``f = 0.04``) towards the grip::

        f = 0.04 + w(x) (0.36 + 0.2 exp(−((y/H − 0.3)/0.15)²)),  w = ½ (1 − tanh((x/L − 0.72)/0.04))

    The soft zone and the stiff zone share the grip displacement in a ratio set by ``E_f``, so
    gauges in both see the fibre stiffness; the stress peaks in the band.
    """
    xi, eta = x[:, 0] / length, x[:, 1] / height
    rich = 0.5 * (1.0 - np.tanh((xi - 0.72) / 0.04))
    return 0.04 + rich * (0.36 + 0.2 * np.exp(-(((eta - 0.3) / 0.15) ** 2)))


@dataclasses.dataclass(frozen=True)
class PlateSpec:
    """Geometry, materials and sensors of the plate (units: mm, GPa, s).

    Attributes:
        length, height: the plate ``[0, L] × [0, H]``.
        cells: triangles' grid ``(nx, ny)`` (each rectangle split in two).
        degree: Lagrange degree of the displacement.
        fibre_poisson: Poisson ratio of the fibres.
        matrix_bulk: bulk modulus of the matrix (elastic).
        matrix_shear: shear relaxation of the matrix, a Prony series.
        gauges: strain gauges, each the rectangle ``(x0, x1, y0, y1)`` over which it averages
            ``ε_xx``.
        fraction: ``f(points (n, 2), L, H) -> (n,)`` fibre volume fraction.
    """

    length: float = 4.0
    height: float = 1.0
    cells: tuple[int, int] = (16, 4)
    degree: int = 1
    fibre_poisson: float = 0.25
    matrix_bulk: float = 4.0
    matrix_shear: PronySeries = dataclasses.field(
        default_factory=lambda: PronySeries(0.15, [0.45, 0.40, 0.35, 0.15], [0.5, 3.0, 15.0, 80.0]))
    gauges: tuple[tuple[float, float, float, float], ...] = (
        (0.5, 1.0, 0.0, 0.5), (0.5, 1.0, 0.5, 1.0), (3.25, 3.75, 0.0, 0.5), (3.25, 3.75, 0.5, 1.0))
    fraction: Callable[[np.ndarray, float, float], np.ndarray] = default_fibre_fraction

    def matrix(self) -> Viscoelastic:
        return Viscoelastic.isotropic(bulk=self.matrix_bulk, shear=self.matrix_shear, strain_size=3)


@dataclasses.dataclass
class _Member:
    micro: LaminateMicro
    u: np.ndarray
    peak: float = 0.0


class CompositePlate:
    """The plate on one process, with any number of members (micro histories) to step.

    Args:
        spec: the plate.
        comm: communicator of the mesh; ``MPI.COMM_SELF`` (the default) for ensemble members.
    """

    def __init__(self, spec: PlateSpec | None = None, comm: MPI.Comm = MPI.COMM_SELF) -> None:
        self.spec = spec = spec or PlateSpec()
        self.comm = comm
        domain = mesh.create_rectangle(comm, [[0.0, 0.0], [spec.length, spec.height]], list(spec.cells),
                                       mesh.CellType.triangle, diagonal=mesh.DiagonalType.crossed)
        self.domain = domain
        V = fem.functionspace(domain, ("Lagrange", spec.degree, (2,)))
        self.u = fem.Function(V, name="displacement")
        fdim = domain.topology.dim - 1
        left = fem.locate_dofs_topological(V.sub(0), fdim, mesh.locate_entities_boundary(
            domain, fdim, lambda x: np.isclose(x[0], 0.0)))
        right = fem.locate_dofs_topological(V.sub(0), fdim, mesh.locate_entities_boundary(
            domain, fdim, lambda x: np.isclose(x[0], spec.length)))
        pin = fem.locate_dofs_topological(V.sub(1), 0, mesh.locate_entities_boundary(
            domain, 0, lambda x: np.isclose(x[0], 0.0) & np.isclose(x[1], 0.0)))
        self._grip = fem.Constant(domain, 0.0)
        bcs = [fem.dirichletbc(0.0, left, V.sub(0)), fem.dirichletbc(0.0, pin, V.sub(1)),
               fem.dirichletbc(self._grip, right, V.sub(0))]
        self.points = quadrature_points(self.u)
        self.fractions = np.asarray(spec.fraction(self.points, spec.length, spec.height), dtype=float)
        self._switch = _MemberSwitch("GPa")
        self.problem = FE2Problem(self.u, self._switch, bcs=bcs)
        self.gauge_matrix = self._gauge_matrix()
        self.members: dict[int, _Member] = {}

    @property
    def num_dofs(self) -> int:
        return int(self.u.x.array.size)

    def _gauge_matrix(self) -> np.ndarray:
        """``B`` ``(p, dofs)``: row ``k`` maps the displacement to gauge ``k``'s mean ``ε_xx``."""
        V = self.u.function_space
        v = ufl.TestFunction(V)
        rows = []
        x = ufl.SpatialCoordinate(self.domain)
        for x0, x1, y0, y1 in self.spec.gauges:
            inside = ufl.conditional(ufl.And(ufl.And(ufl.ge(x[0], x0), ufl.le(x[0], x1)),
                                             ufl.And(ufl.ge(x[1], y0), ufl.le(x[1], y1))), 1.0, 0.0)
            area = (x1 - x0) * (y1 - y0)
            form = fem.form(inside * mandel_strain(v)[0] / area * ufl.dx(metadata={"quadrature_degree": 2}))
            rows.append(fem.assemble_vector(form).array.copy())
        return np.asarray(rows)

    def add_member(self, member: int, fibre_young: float) -> None:
        micro = LaminateMicro(self.fractions, fibre_young, fibre_poisson=self.spec.fibre_poisson,
                              matrix=self.spec.matrix())
        micro.setup(self.points.shape[0])
        self.members[member] = _Member(micro, np.zeros(self.num_dofs))

    def remove_member(self, member: int) -> None:
        self.members.pop(member, None)

    def step(self, member: int, fibre_young: float, grip: float, time_step: float) -> np.ndarray:
        """One committed FE² step of ``member`` with fibre modulus ``fibre_young`` to the grip
        displacement ``grip`` (linear in time over ``time_step``); returns its displacement."""
        state = self.members[member]
        state.micro.fibre_young = fibre_young
        self._switch.active = state.micro
        self.u.x.array[:] = state.u
        self._grip.value = float(grip)
        try:
            self.problem.solve(time_step=float(time_step), rtol=1e-10, atol=1e-14)
            self.problem.commit()
        finally:
            self._switch.active = None
        state.u = self.u.x.array.copy()
        state.peak = float(self.problem.stress.x.array.reshape(-1, 3)[:, 0].max())
        return state.u

    def peak_stress(self, member: int) -> float:
        """The largest ``σ_xx`` over the quadrature points after ``member``'s last step."""
        return self.members[member].peak

    def response(self, fibre_young: float, grips: npt.ArrayLike, time_step: float) -> np.ndarray:
        """Peak stresses ``(K,)`` of a fresh plate (virgin history) with fixed ``fibre_young``
        driven through the grip displacements ``grips`` ``(K,)``, one per step of ``time_step``.
        """
        key = min(self.members, default=0) - 1  # a member id nobody uses
        self.add_member(key, fibre_young)
        try:
            out = []
            for g in np.asarray(grips, dtype=float).ravel():
                self.step(key, fibre_young, float(g), time_step)
                out.append(self.peak_stress(key))
        finally:
            self.remove_member(key)
        return np.asarray(out)

    def gauge_strains(self, u: np.ndarray) -> np.ndarray:
        """Mean ``ε_xx`` over every gauge of a displacement ``u`` ``(dofs,)``."""
        return self.gauge_matrix @ u


def pod_basis(snapshots: npt.ArrayLike, *, rank: int | None = None, tolerance: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal POD basis ``Φ`` ``(dofs, r)`` of displacement snapshots ``(k, dofs)``.

    Keeps ``rank`` modes, or the fewest whose discarded energy fraction is below ``tolerance``.

    Returns:
        ``(Φ, singular values)``.
    """
    a = np.asarray(snapshots, dtype=float)
    _, s, vt = np.linalg.svd(a, full_matrices=False)
    if rank is None:
        energy = np.cumsum(s[::-1] ** 2)[::-1] / max(float((s**2).sum()), 1e-300)
        rank = int(np.argmax(np.append(energy[1:], 0.0) < tolerance) + 1)
    if not 1 <= rank <= s.size:
        raise ConfigError(f"POD rank {rank} is not between 1 and {s.size}")
    # A fixed sign per mode (largest entry positive), so that the basis is reproducible.
    basis = vt[:rank].T
    signs = np.sign(basis[np.abs(basis).argmax(axis=0), np.arange(rank)])
    return basis * signs, s


class PlateMembers:
    """:class:`~scalelink.twin.ensemble.MemberModel` of the plate, state
    ``[z (r), log E_f, σ_peak]``.

    Args:
        plate: the rank's :class:`CompositePlate`.
        basis: POD basis ``Φ`` ``(dofs, r)`` (orthonormal columns).
        control: the name of the input holding the grip displacement.
    """

    def __init__(self, plate: CompositePlate, basis: np.ndarray, *, control: str = "grip") -> None:
        self.plate = plate
        self.basis = np.asarray(basis, dtype=float)
        if self.basis.shape[0] != plate.num_dofs:
            raise ConfigError(f"basis has {self.basis.shape[0]} rows for {plate.num_dofs} dofs")
        self.rank = self.basis.shape[1]
        self.control = control

    @property
    def parameter_index(self) -> int:
        """Index of ``log E_f`` in the state."""
        return self.rank

    @property
    def peak_index(self) -> int:
        """Index of ``σ_peak`` in the state."""
        return self.rank + 1

    @property
    def size(self) -> int:
        return self.rank + 2

    def state(self, u: np.ndarray, log_young: float, peak: float) -> np.ndarray:
        return np.concatenate([self.basis.T @ u, [log_young, peak]])

    def add_member(self, member: int, state: np.ndarray) -> None:
        self.plate.add_member(member, math.exp(state[self.parameter_index]))

    def remove_member(self, member: int) -> None:
        self.plate.remove_member(member)

    def step(self, member: int, state: np.ndarray, t0: float, t1: float,
             inputs: Mapping[str, Any]) -> np.ndarray:
        log_young = float(state[self.parameter_index])
        u = self.plate.step(member, math.exp(log_young), float(inputs[self.control]), t1 - t0)
        return self.state(u, log_young, self.plate.peak_stress(member))

    def gauge_operator(self) -> np.ndarray:
        """``H`` ``(p, r + 2)`` of the gauges on the state: ``[B Φ, 0, 0]``."""
        h = self.plate.gauge_matrix @ self.basis
        return np.concatenate([h, np.zeros((h.shape[0], 2))], axis=1)
