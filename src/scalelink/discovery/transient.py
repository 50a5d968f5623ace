"""Micro data for equation discovery: transient diffusion through a periodic microstructure.

A square domain tiled with ``tiles × tiles`` copies of a unit cell (the same marker functions
and cell meshes as the periodic RVEs of :mod:`scalelink.fe2`), a conductivity per phase (a
number or a symmetric tensor), no-flux boundaries and a smooth macro-scale initial field. The
mesh is distributed over the communicator; the heat equation ``∂c/∂t = ∇·(k(x)∇c)`` is
stepped with BDF2 (second order and L-stable, so the fast micro modes of the initial field are
damped, not left ringing as Crank–Nicolson would) and one LU factorisation (MUMPS) serves every
step. Away from the boundary and after the micro modes have decayed, the field follows the
homogenized law ``∂c̄/∂t = ∇·(K_eff∇c̄)`` up to corrections of order ``(cell / macro length)²``,
which is what the weak-form regression is asked to find.
"""

from __future__ import annotations

from collections.abc import Callable

import mpi4py.MPI as MPI
import numpy as np
import numpy.typing as npt
import ufl
from dolfinx import fem, mesh as dmesh
from dolfinx.fem import petsc as fem_petsc

from scalelink.bridge.errors import ConfigError
from scalelink.fe2.macro import create_ksp

__all__ = ["tiled_mesh", "diffusion_transient"]

Marker = Callable[[np.ndarray], npt.ArrayLike]


def tiled_mesh(comm: MPI.Comm, tiles: int, cells_per_tile: int, *, tile_size: float = 1.0
               ) -> dmesh.Mesh:
    """Triangle mesh of ``[0, tiles·tile_size]²`` whose every tile is meshed exactly like
    ``unit_cell_mesh(2, cells_per_tile, size=tile_size)`` (structured, "right" diagonals)."""
    if tiles < 1 or cells_per_tile < 1 or not tile_size > 0:
        raise ConfigError(
            f"need tiles >= 1, cells_per_tile >= 1 and tile_size > 0, got {tiles!r}, "
            f"{cells_per_tile!r}, {tile_size!r}"
        )
    n = tiles * cells_per_tile
    return dmesh.create_rectangle(comm, [[0.0, 0.0], [tiles * tile_size] * 2], [n, n],
                                  dmesh.CellType.triangle, diagonal=dmesh.DiagonalType.right)


def _conductivity(mesh: dmesh.Mesh, marker: Marker, conductivities: dict[int, npt.ArrayLike],
                  tile_size: float) -> fem.Function:
    d = mesh.topology.dim
    space = fem.functionspace(mesh, ("DG", 0, (d, d)))
    index_map = mesh.topology.index_map(d)
    cells = np.arange(index_map.size_local + index_map.num_ghosts, dtype=np.int32)
    unit = np.mod(dmesh.compute_midpoints(mesh, d, cells)[:, :d], tile_size) / tile_size
    tags = np.asarray(marker(unit)).astype(np.int64)
    tensors = {}
    for tag, k in conductivities.items():
        kk = np.asarray(k, dtype=float)
        kk = kk * np.eye(d) if kk.ndim == 0 else kk
        if kk.shape != (d, d) or not np.allclose(kk, kk.T) or np.linalg.eigvalsh(kk).min() <= 0:
            raise ConfigError(
                f"conductivity of tag {tag} must be a positive number or a symmetric positive "
                f"definite ({d}, {d}) tensor, got {kk.tolist()}"
            )
        tensors[int(tag)] = kk
    missing = sorted(set(np.unique(tags).tolist()) - set(tensors))
    if mesh.comm.allreduce(len(missing), op=MPI.MAX):
        raise ConfigError(f"no conductivity for cell tags {missing}; give one per marker tag")
    table = np.stack([tensors.get(t, np.eye(d)) for t in range(max(tensors) + 1)])
    k = fem.Function(space)
    dofs = space.dofmap.list[cells, 0]
    k.x.array.reshape(-1, d * d)[dofs] = table[tags].reshape(-1, d * d)
    return k


def diffusion_transient(
    mesh: dmesh.Mesh,
    marker: Marker,
    conductivities: dict[int, npt.ArrayLike],
    initial: Callable[[np.ndarray], np.ndarray],
    *,
    tile_size: float = 1.0,
    time_step: float,
    steps: int,
    record_from: int = 0,
    record_every: int = 1,
) -> tuple[fem.FunctionSpace, np.ndarray, np.ndarray]:
    """Transient diffusion through a tiled microstructure, recorded as snapshots.

    Args:
        mesh: from :func:`tiled_mesh` (any communicator).
        marker: phase marker of unit-cell coordinates ``(n, d) -> (n,)`` (e.g.
            ``scalelink.fe2.circular_inclusion(0.3)``).
        conductivities: ``{tag: k}``, ``k`` a positive number or an SPD ``(d, d)`` tensor.
        initial: ``c(x, 0)``: the dolfinx interpolation callable ``x (3, n) -> (n,)``.
        tile_size: edge of one tile (the unit cell).
        time_step: BDF2 step (time unit).
        steps: number of steps.
        record_from: first step recorded (skip the fast micro transient).
        record_every: record one step in this many.

    Returns:
        The P1 space, the snapshot times ``(n_t,)`` and the local dof values ``(n_t, n_local)``
        (ghosts included, as :func:`~scalelink.discovery.weak.assemble_weak_system` wants).
    """
    if not time_step > 0 or steps < 2 or not 0 <= record_from < steps or record_every < 1:
        raise ConfigError(
            f"need time_step > 0, steps >= 2, 0 <= record_from < steps, record_every >= 1; got "
            f"{time_step!r}, {steps!r}, {record_from!r}, {record_every!r}"
        )
    k = _conductivity(mesh, marker, conductivities, tile_size)
    space = fem.functionspace(mesh, ("Lagrange", 1))
    u, v = ufl.TrialFunction(space), ufl.TestFunction(space)
    mass = fem_petsc.assemble_matrix(fem.form(u * v * ufl.dx))
    mass.assemble()
    # BDF2: (3cⁿ⁺¹ − 4cⁿ + cⁿ⁻¹) / (2Δt) = ∇·(k∇cⁿ⁺¹); the first step takes cⁿ⁻¹ = cⁿ.
    lhs = fem_petsc.assemble_matrix(fem.form(
        (u * v + (2.0 / 3.0) * time_step * ufl.inner(k * ufl.grad(u), ufl.grad(v))) * ufl.dx))
    lhs.assemble()
    ksp = create_ksp(mesh.comm, lhs, "scalelink_transient_", None)
    current, previous = fem.Function(space), fem.Function(space)
    current.interpolate(initial)
    previous.x.array[:] = current.x.array
    combination, rhs = lhs.createVecRight(), lhs.createVecLeft()
    solution = fem.Function(space)
    times, snapshots = [], []
    for step in range(1, steps + 1):
        combination.array[:] = (4.0 * current.x.petsc_vec.array
                                - previous.x.petsc_vec.array) / 3.0
        mass.mult(combination, rhs)
        ksp.solve(rhs, solution.x.petsc_vec)
        solution.x.scatter_forward()
        previous.x.array[:] = current.x.array
        current.x.array[:] = solution.x.array
        if step >= record_from and (step - record_from) % record_every == 0:
            times.append(step * time_step)
            snapshots.append(current.x.array.copy())
    for obj in (ksp, mass, lhs, combination, rhs):
        obj.destroy()
    return space, np.asarray(times), np.asarray(snapshots)
