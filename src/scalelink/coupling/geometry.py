"""Geometry of a 2D coupled atomistic–continuum problem: the regions and the FE grid.

All regions are squares centred at the origin; lengths in Å.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scalelink.bridge.errors import ConfigError
from scalelink.fe2.tensors import tensor_from_mandel

from .lattice import HexLattice

__all__ = ["CouplingGeometry", "affine_displacement"]


@dataclass(frozen=True)
class CouplingGeometry:
    """Where each model lives (all lengths in Å, regions are squares centred at the origin).

    Attributes:
        half_width: FE domain half-width L (far-field displacement prescribed at ``|X|∞ = L``).
        free_half_width: free atoms have ``|X|∞ < free_half_width`` (R_a).
        pad_width: width of the held pad of atoms outside R_a (≥ cutoff).
        hole_half_width: FE nodes with ``|X|∞ <= hole_half_width`` (R_h < R_a) take atomistic data.
        mesh_size: FE element size h where the atoms are (up to ``R_a + pad + h``).
        growth: ratio of the sizes of neighbouring elements outside that zone (1: uniform mesh).
            The grid is a tensor product of 1D node sets, each cell split into two triangles.
    """

    half_width: float
    free_half_width: float
    pad_width: float
    hole_half_width: float
    mesh_size: float
    growth: float = 1.0

    def grid_nodes(self) -> np.ndarray:
        """Node coordinates ``(k,)`` (Å) of the FE grid along x (and y), from −L to L."""
        if not 1.0 <= self.growth <= 2.0:
            raise ConfigError(f"growth={self.growth}; expected 1 <= growth <= 2 (1 for a uniform mesh)")
        h, half = self.mesh_size, self.half_width
        fine = self.free_half_width + self.pad_width + h
        n_fine = int(np.ceil(fine / h))
        steps = [h] * n_fine
        while sum(steps) < half:
            steps.append(steps[-1] * (self.growth if len(steps) >= n_fine else 1.0))
        # the last element would overshoot L: fold it into the previous one if it is small
        nodes = np.cumsum([0.0, *steps])
        nodes = nodes[nodes < half - 0.5 * steps[-1]]
        positive = np.append(nodes, half)
        return np.concatenate([-positive[:0:-1], positive])

    def validate(self, lattice: HexLattice) -> None:
        """Raise :class:`ConfigError` unless ``R_h + 2a < R_a`` and ``R_a + pad + h < L``."""
        a = lattice.spacing
        if not self.hole_half_width + 2 * a < self.free_half_width:
            raise ConfigError(
                f"hole_half_width={self.hole_half_width} Å must lie at least 2 lattice spacings ({2 * a:.3f} Å) "
                f"inside free_half_width={self.free_half_width} Å, so that the affine fits at the hole's edge "
                "use free atoms only; shrink the hole or enlarge the atomistic region"
            )
        if not self.free_half_width + self.pad_width + self.mesh_size < self.half_width:
            raise ConfigError(
                f"the atomistic region reaches {self.free_half_width + self.pad_width} Å but the FE domain "
                f"half_width is {self.half_width} Å; expected at least one element ({self.mesh_size} Å) between "
                "them so the pad lies inside the continuum; enlarge half_width"
            )

    def band(self, spacing: float) -> tuple[float, float]:
        """Range of ``|X|∞`` (Å) of the atoms that feed the hole-boundary fits."""
        return (self.hole_half_width - 1.5 * self.mesh_size - 3.0 * spacing,
                self.hole_half_width + 3.0 * spacing)


def affine_displacement(strain: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Displacements ``(n, 2)`` in Å of the homogeneous field ``u = ε X``.

    Args:
        strain: Mandel 2D strain ``[εxx, εyy, √2 εxy]`` (dimensionless).
        positions: reference positions ``(n, 2)`` in Å.
    """
    return np.asarray(positions) @ tensor_from_mandel(np.asarray(strain, dtype=float)).T


