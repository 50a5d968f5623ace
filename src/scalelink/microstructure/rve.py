"""Voxel images as periodic dolfinx RVEs with phase tags, and their effective stiffness.

Each pixel of an ``N × N`` image becomes ``cells_per_pixel²`` squares of two triangles of the
structured unit-cell mesh (``scalelink.fe2.unit_cell_mesh``), tagged with the pixel's phase, so
phase boundaries are element edges. The mesh and tags feed ``scalelink.fe2.PeriodicRVE``, whose
periodic elimination gives the effective (plane-strain, Mandel) stiffness.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from dolfinx import mesh as dmesh

from scalelink.bridge.errors import ConfigError
from scalelink.fe2.micro import MicroModel
from scalelink.fe2.periodic import PeriodicOperator
from scalelink.fe2.rve import PeriodicRVE, unit_cell_mesh

from .images import check_two_phase

__all__ = ["effective_stiffnesses", "image_marker", "voxel_mesh", "voxel_rve"]


def image_marker(image: npt.ArrayLike) -> Callable[[np.ndarray], np.ndarray]:
    """Marker of unit-cell coordinates ``(n, d) -> (n,)`` giving the tag of the pixel that
    contains each point (``[i, j]`` covers ``x ∈ [i/N, (i+1)/N)``, ``y ∈ [j/N, (j+1)/N)``)."""
    array = check_two_phase(image)[0]
    n = array.shape[0]

    def marker(x: np.ndarray) -> np.ndarray:
        index = np.clip(np.floor(np.asarray(x)[:, :2] * n).astype(int), 0, n - 1)
        return array[index[:, 0], index[:, 1]].astype(np.int32)

    return marker


def voxel_mesh(pixels: int, *, cells_per_pixel: int = 1, size: float = 1.0) -> dmesh.Mesh:
    """The structured periodic unit-cell mesh (``MPI.COMM_SELF``) whose cells nest in the
    pixels of an ``pixels × pixels`` image."""
    if pixels < 2 or cells_per_pixel < 1:
        raise ConfigError(f"need pixels >= 2 and cells_per_pixel >= 1, got {pixels!r}, "
                          f"{cells_per_pixel!r}")
    return unit_cell_mesh(2, pixels * cells_per_pixel, size=size)


def voxel_rve(image: npt.ArrayLike, phases: dict[int, MicroModel], *,
              mesh: dmesh.Mesh | None = None, cells_per_pixel: int = 1) -> PeriodicRVE:
    """A periodic RVE of a two-phase image: ``phases = {0: model, 1: model}`` (plane strain,
    ``strain_size`` 3). ``mesh`` (from :func:`voxel_mesh`) may be shared by many images."""
    array = check_two_phase(image)[0]
    if set(phases) != {0, 1}:
        raise ConfigError(f"a two-phase image needs phases for tags 0 and 1, got {sorted(phases)}")
    domain = voxel_mesh(array.shape[0], cells_per_pixel=cells_per_pixel) if mesh is None else mesh
    return PeriodicRVE(domain, phases, cell_tags=image_marker(array))


def effective_stiffnesses(images: npt.ArrayLike, phases: dict[int, MicroModel], *,
                          cells_per_pixel: int = 1) -> np.ndarray:
    """Effective Mandel stiffness ``(n, 3, 3)`` of every image, for linear-elastic phases.

    The same as ``voxel_rve(image, phases).effective_stiffness()`` image by image, but the
    periodic operator (mesh, periodic numbering, sparsity) is built once and only the phase
    tangents change between images: ``C_hom = ⟨C⟩ − Lᵀ K⁻¹ L / |Y|``.
    """
    array = check_two_phase(images)
    if set(phases) != {0, 1} or any(p.strain_size != 3 for p in phases.values()):
        raise ConfigError(f"need plane-strain phases (strain_size 3) for tags 0 and 1, got "
                          f"{ {t: p.strain_size for t, p in phases.items()} }")
    domain = voxel_mesh(array.shape[1], cells_per_pixel=cells_per_pixel)
    operator = PeriodicOperator(domain, kind="elastic")
    zero = np.zeros((operator.num_quadrature_points, 3))
    tangents = np.stack([phases[t].evaluate(zero)[1][0] for t in (0, 1)])
    cells = np.arange(domain.topology.index_map(2).size_local, dtype=np.int32)
    unit = dmesh.compute_midpoints(domain, 2, cells)[:, :2] / operator.size
    per_cell = operator.num_quadrature_points // cells.size  # points are ordered cell-major
    out = np.empty((array.shape[0], 3, 3))
    for k, image in enumerate(array):
        tangent = np.repeat(tangents[image_marker(image)(unit)], per_cell, axis=0)
        lu = operator.factorize(operator.matrix(tangent))
        coupling = operator.coupling(tangent)
        out[k] = operator.average(tangent) - coupling.T @ lu.solve(coupling) / operator.volume
    return out
