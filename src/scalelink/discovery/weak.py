"""Weak-form candidate libraries of conservation laws, assembled on a dolfinx mesh.

The model sought is a conservation law for a scalar field ``c(x, t)``::

    ∂c/∂t = ∇·(K ∇c) − Σ_a ∂_a(Σ_p F_ap c^p) + Σ_p r_p c^p

with a symmetric diffusion tensor ``K``, polynomial fluxes ``F`` and a polynomial reaction
``R(c)``. Multiplying by a space–time test function ``φ_j(x) ψ_m(t)`` that vanishes on the
boundary of its support and integrating by parts moves every derivative off the data::

    −∫∫ ψ_m' φ_j c  =  Σ_ab K_ab (−∫∫ ψ_m ∂_aφ_j ∂_b c) + Σ_ap F_ap ∫∫ ψ_m ∂_aφ_j c^p
                       + Σ_p r_p ∫∫ ψ_m φ_j c^p

one row ``b = G ξ`` per test function pair. The spatial integrals are quadrature sums over the
cells a rank owns (values of ``c`` and ``∇c`` at the quadrature points from
``dolfinx.fem.Expression``), summed over the ranks of the mesh's communicator; the time
integrals use the trapezoidal rule over the snapshots. The test functions are the polynomial
bumps ``Π_a (1 − s_a²)^q``, ``s_a = (x_a − centre_a)/radius_a``, evaluated exactly at the
quadrature points; their supports must lie inside the domain (or where ``c`` is periodic) so
that no boundary terms appear. Symmetry of ``K`` is built into the library: one column per pair
``a ≤ b``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import basix
import mpi4py.MPI as MPI
import numpy as np
import numpy.typing as npt
import ufl
from dolfinx import fem
from scipy import sparse

from scalelink.bridge.errors import ConfigError, DataError

__all__ = ["ConservationLibrary", "WeakSystem", "assemble_weak_system", "bump_centres"]

_AXES = "xyz"


@dataclasses.dataclass(frozen=True)
class ConservationLibrary:
    """The candidate terms of a conservation law ``∂c/∂t = ∇·(K∇c) − ∇·F(c) + R(c)``.

    Attributes:
        diffusion: include the ``d(d+1)/2`` components of a symmetric ``K``.
        flux_powers: powers ``p`` of the flux terms ``−∂_a(c^p)``, one per axis each.
        reaction_powers: powers ``p`` of the reaction terms ``c^p``.
    """

    diffusion: bool = True
    flux_powers: tuple[int, ...] = (1, 2, 3)
    reaction_powers: tuple[int, ...] = (0, 1, 2, 3)

    def __post_init__(self) -> None:
        powers = (*self.flux_powers, *self.reaction_powers)
        if any(int(p) != p or p < 0 for p in powers) or (
                len(set(self.flux_powers)) != len(self.flux_powers)
                or len(set(self.reaction_powers)) != len(self.reaction_powers)):
            raise ConfigError(
                f"library powers must be distinct integers >= 0, got flux_powers="
                f"{self.flux_powers!r}, reaction_powers={self.reaction_powers!r}"
            )
        if not (self.diffusion or self.flux_powers or self.reaction_powers):
            raise ConfigError("the library is empty; enable diffusion or give some powers")

    def diffusion_pairs(self, dim: int) -> list[tuple[int, int]]:
        """Index pairs ``(a, b)``, ``a ≤ b``, of the diffusion columns."""
        return [(a, b) for a in range(dim) for b in range(a, dim)] if self.diffusion else []

    def names(self, dim: int) -> list[str]:
        """Column names: ``K_xy``, ``F_x c^2`` (flux coefficient), ``r c^1``."""
        return ([f"K_{_AXES[a]}{_AXES[b]}" for a, b in self.diffusion_pairs(dim)]
                + [f"F_{_AXES[a]} c^{p}" for a in range(dim) for p in self.flux_powers]
                + [f"r c^{p}" for p in self.reaction_powers])


@dataclasses.dataclass
class WeakSystem:
    """The weak-form linear system ``b ≈ G ξ``, identical on every rank.

    Attributes:
        matrix: ``G`` ``(n_rows, n_terms)``, rows = (spatial test function, time test function).
        target: ``b`` ``(n_rows,)``, the weak time derivative.
        names: term names ``(n_terms,)`` (see :meth:`ConservationLibrary.names`).
        dim: spatial dimension of the mesh.
    """

    matrix: np.ndarray
    target: np.ndarray
    names: list[str]
    dim: int


def bump_centres(lower: npt.ArrayLike, upper: npt.ArrayLike, counts: int | Sequence[int], *,
                 dim: int | None = None) -> np.ndarray:
    """Centres ``(n, d)`` of a regular grid of test functions on the box ``[lower, upper]``
    (end points included); scalars are repeated on ``dim`` axes (default: the longest input)."""
    lo, hi, n = (np.atleast_1d(np.asarray(v)) for v in (lower, upper, counts))
    d = max(lo.size, hi.size, n.size) if dim is None else dim
    lo, hi, n = (np.broadcast_to(v, (d,)) for v in (lo.astype(float), hi.astype(float),
                                                  n.astype(int)))
    axes = [np.linspace(a, b, int(k)) for a, b, k in zip(lo, hi, n)]
    return np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], axis=1)


def _bump(s: np.ndarray, q: int) -> tuple[np.ndarray, np.ndarray]:
    """``(1 − s²)^q`` and its derivative in ``s``, zero outside ``|s| < 1``."""
    inside = np.abs(s) < 1.0
    base = np.where(inside, 1.0 - s * s, 0.0)
    return base**q, np.where(inside, -2.0 * q * s * base ** (q - 1), 0.0)


def _spatial_tests(points: np.ndarray, centres: np.ndarray, radius: np.ndarray, q: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Values ``(n_tf, n_qp)`` and gradients ``(n_tf, n_qp, d)`` of the spatial bumps."""
    s = (points[None, :, :] - centres[:, None, :]) / radius
    value, slope = _bump(s, q)
    phi = np.prod(value, axis=2)
    grad = np.empty(s.shape)
    for a in range(s.shape[2]):
        others = np.prod(np.delete(value, a, axis=2), axis=2)
        grad[:, :, a] = slope[:, :, a] * others / radius[a]
    return phi, grad


def _quadrature(space: fem.FunctionSpace, degree: int) -> tuple[
        np.ndarray, np.ndarray, np.ndarray, fem.Expression, fem.Expression, fem.Function]:
    mesh = space.mesh
    tdim = mesh.topology.dim
    cells = np.arange(mesh.topology.index_map(tdim).size_local, dtype=np.int32)
    ref, ref_weights = basix.make_quadrature(basix.CellType[mesh.topology.cell_type.name], degree)
    x = fem.Expression(ufl.SpatialCoordinate(mesh), ref).eval(mesh, cells)
    det = fem.Expression(abs(ufl.JacobianDeterminant(mesh)), ref).eval(mesh, cells)
    gdim = mesh.geometry.dim
    points = x.reshape(cells.size * ref_weights.size, gdim)[:, :tdim]
    weights = (det.reshape(cells.size, -1) * ref_weights).ravel()
    field = fem.Function(space)
    return (cells, points, weights, fem.Expression(field, ref),
            fem.Expression(ufl.grad(field), ref), field)


def assemble_weak_system(
    space: fem.FunctionSpace,
    snapshots: Sequence[np.ndarray] | np.ndarray,
    times: npt.ArrayLike,
    *,
    library: ConservationLibrary,
    centres: npt.ArrayLike,
    radius: float | Sequence[float],
    time_windows: int,
    time_radius: float,
    degree: int = 4,
    quadrature_degree: int = 4,
) -> WeakSystem:
    """Assemble the weak-form system of a scalar field's snapshots on a (distributed) mesh.

    Args:
        space: scalar Lagrange space of the snapshots (any communicator).
        snapshots: ``(n_t, n_local)``: each row the local dof values of one snapshot in the
            layout of ``fem.Function(space).x.array`` (ghosts included).
        times: snapshot times ``(n_t,)``, increasing.
        library: candidate terms.
        centres: spatial test-function centres ``(n_tf, d)`` (same on every rank).
        radius: half-width of the test-function supports, one number or one per axis.
        time_windows: number of time test functions, spread evenly over the record.
        time_radius: half-width of a time test function (time unit).
        degree: exponent ``q`` of the bumps (``q ≥ 2``: ``C¹`` test functions).
        quadrature_degree: quadrature degree of the spatial integrals on each cell.

    Returns:
        The :class:`WeakSystem`, summed over the ranks of the mesh's communicator.
    """
    comm = space.mesh.comm
    dim = space.mesh.topology.dim
    t = np.asarray(times, dtype=float)
    data = np.asarray(snapshots, dtype=float)
    local = fem.Function(space).x.array.size
    centre_array = np.asarray(centres, dtype=float)
    centre_array = centre_array[:, None] if centre_array.ndim == 1 and dim == 1 else centre_array
    radii = np.broadcast_to(np.asarray(radius, dtype=float), (dim,)).copy()
    problems = []
    if space.value_size != 1:
        problems.append(f"a scalar space is needed, got value size {space.value_size}")
    if t.ndim != 1 or t.size < 3 or np.any(np.diff(t) <= 0):
        problems.append(f"times must be increasing, >= 3 of them; got shape {t.shape}")
    if data.ndim != 2 or data.shape != (t.size, local):
        problems.append(f"snapshots must have shape (n_t, n_local) = ({t.size}, {local}), got "
                        f"{data.shape}")
    elif not np.all(np.isfinite(data)):
        problems.append("snapshots contain NaN or infinite values")
    if np.any(radii <= 0) or not time_radius > 0 or time_windows < 1 or degree < 2:
        problems.append(f"need radius > 0, time_radius > 0, time_windows >= 1, degree >= 2; got "
                        f"{radius!r}, {time_radius!r}, {time_windows!r}, {degree!r}")
    elif t.ndim == 1 and t.size >= 3 and 2 * time_radius > t[-1] - t[0]:
        problems.append(f"time_radius {time_radius!r} is longer than half the record "
                        f"[{t[0]}, {t[-1]}]; shorten it or record longer")
    x = space.mesh.geometry.x[:, :dim]
    low, high = np.empty(dim), np.empty(dim)
    comm.Allreduce(x.min(axis=0) if x.size else np.full(dim, np.inf), low, op=MPI.MIN)
    comm.Allreduce(x.max(axis=0) if x.size else np.full(dim, -np.inf), high, op=MPI.MAX)
    if centre_array.ndim != 2 or centre_array.shape[1] != dim or centre_array.shape[0] < 1:
        problems.append(f"centres must have shape (n, {dim}), got {centre_array.shape}")
    else:
        outside = np.flatnonzero(np.any((centre_array - radii < low - 1e-12 * (high - low))
                                        | (centre_array + radii > high + 1e-12 * (high - low)),
                                        axis=1))
        if outside.size:
            problems.append(
                f"the supports of {outside.size} test functions (e.g. centre "
                f"{centre_array[outside[0]].tolist()}, radius {radii.tolist()}) leave the domain "
                f"{low.tolist()} to {high.tolist()}, where boundary terms would be missed; move "
                "the centres inward or shrink the radius"
            )
    failed = comm.allreduce(len(problems), op=MPI.MAX)
    if failed:
        raise DataError("; ".join(problems) or "bad snapshots on another rank")

    cells, points, weights, value_expr, grad_expr, field = _quadrature(space, quadrature_degree)
    phi, grad_phi = _spatial_tests(points, centre_array, radii, degree)
    # The bumps have compact support: sparse rows make each integral a sparse product.
    phi_w = sparse.csr_matrix(phi * weights)
    grad_w = [sparse.csr_matrix(grad_phi[:, :, a] * weights) for a in range(dim)]
    del phi, grad_phi
    pairs = library.diffusion_pairs(dim)
    flux = np.asarray(library.flux_powers, dtype=float)
    reaction = np.asarray(library.reaction_powers, dtype=float)
    n_terms = len(library.names(dim))
    spatial = np.empty((t.size, centre_array.shape[0], n_terms))
    mass = np.empty((t.size, centre_array.shape[0]))
    for k, snapshot in enumerate(data):
        field.x.array[:] = snapshot
        c = value_expr.eval(space.mesh, cells).ravel()
        grad_c = grad_expr.eval(space.mesh, cells).reshape(-1, dim)
        against_grad = [g @ np.column_stack([grad_c, c[:, None] ** flux]) for g in grad_w]
        columns = [-(against_grad[a][:, b] + (against_grad[b][:, a] if a != b else 0.0))
                   for a, b in pairs]
        columns += [against_grad[a][:, dim + i] for a in range(dim) for i in range(flux.size)]
        against_value = phi_w @ np.column_stack([c, c[:, None] ** reaction])
        spatial[k] = np.column_stack([*columns, against_value[:, 1:]])
        mass[k] = against_value[:, 0]
    comm.Allreduce(MPI.IN_PLACE, spatial, op=MPI.SUM)
    comm.Allreduce(MPI.IN_PLACE, mass, op=MPI.SUM)

    trapezoid = 0.5 * (np.diff(t, prepend=t[0]) + np.diff(t, append=t[-1]))
    tau = np.linspace(t[0] + time_radius, t[-1] - time_radius, time_windows)
    psi, dpsi = _bump((t[None, :] - tau[:, None]) / time_radius, degree)
    matrix = np.einsum("mk,kjn->jmn", psi * trapezoid, spatial).reshape(-1, n_terms)
    target = -np.einsum("mk,kj->jm", dpsi * trapezoid / time_radius, mass).ravel()
    return WeakSystem(matrix, target, library.names(dim), dim)
