"""An FE² micro model served from fused (co-kriging) surrogates of elastic constants.

Each quadrature point carries design parameters ``p`` (e.g. the Ni fraction of a Cu–Ni alloy,
laid out with :func:`scalelink.fe2.macro.quadrature_points`); fused surrogates of the cubic
constants ``C11(p)``, ``C12(p)``, ``C44(p)`` learnt from a few atomistic RVE runs on many cheap
ones give the point's stiffness, ``σ = C(p) ε``. The surrogates are evaluated once, when the model
is built, for all points in one batched call per constant.

Points where the predictive standard deviation of any constant exceeds ``std_threshold`` are
reported by :meth:`FusedCubicElastic.uncertain_points` (and so in the FE² Newton result): those are
the parameters at which new high-fidelity runs are needed.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from scalelink.bridge.errors import ConfigError
from scalelink.fe2.micro import MicroModel, check_strain_batch
from scalelink.fe2.tensors import plane_strain, validate_strain_size

from .cokriging import AR1CoKriging

__all__ = ["FusedCubicElastic"]

CONSTANTS = ("C11", "C12", "C44")


class FusedCubicElastic(MicroModel):
    """Cubic linear elasticity whose constants at every point come from fused surrogates.

    Args:
        constants: ``{"C11": model, "C12": model, "C44": model}``, fitted :class:`AR1CoKriging`
            surrogates of the Voigt constants (``stress_unit``) against the design parameters.
        parameters: design parameters of every quadrature point ``(n, d)`` (or ``(n,)``), in the
            FE² batch order.
        strain_size: 6 (3D, cube axes along x, y, z) or 3 (plane strain in the x–y plane).
        std_threshold: a point whose predictive standard deviation of any constant exceeds this
            (``stress_unit``) is uncertain; ``None``: no point is.
        stress_unit: unit of the constants.

    Attributes:
        mean: predicted constants ``(n, 3)`` (C11, C12, C44) of every point.
        std: their predictive standard deviations ``(n, 3)``.
    """

    has_state = False

    def __init__(
        self,
        constants: Mapping[str, AR1CoKriging],
        parameters: npt.ArrayLike,
        *,
        strain_size: int = 6,
        std_threshold: float | None = None,
        stress_unit: str = "GPa",
    ) -> None:
        if sorted(constants) != sorted(CONSTANTS):
            raise ConfigError(
                f"fused constants must be exactly {list(CONSTANTS)}, got {sorted(constants)}"
            )
        if std_threshold is not None and not (np.isfinite(std_threshold) and std_threshold > 0.0):
            raise ConfigError(f"std_threshold must be a positive number or None, got {std_threshold!r}")
        self.strain_size = validate_strain_size(strain_size)
        self.stress_unit = stress_unit
        p = np.asarray(parameters, dtype=float)
        self.parameters = p[:, None] if p.ndim == 1 else p
        if self.parameters.ndim != 2 or self.parameters.shape[0] == 0:
            raise ConfigError(f"parameters must be (num_points, d) with num_points > 0, got shape {p.shape}")
        predictions = [constants[name].predict(self.parameters) for name in CONSTANTS]
        self.mean = np.column_stack([pr.mean for pr in predictions])
        self.std = np.column_stack([pr.std for pr in predictions])
        self.std_threshold = std_threshold
        # scalelink.fe2.tensors.cubic_stiffness for every point at once
        c = np.zeros((self.mean.shape[0], 6, 6))
        c[:, :3, :3] = self.mean[:, 1, None, None]
        diagonal = np.arange(3)
        c[:, diagonal, diagonal] = self.mean[:, :1]
        c[:, diagonal + 3, diagonal + 3] = 2.0 * self.mean[:, 2:]
        self.stiffness = plane_strain(c) if self.strain_size == 3 else c

    def setup(self, num_points: int) -> None:
        if num_points != self.parameters.shape[0]:
            raise ConfigError(
                f"{num_points} quadrature points but parameters for {self.parameters.shape[0]}; lay them out "
                "with quadrature_points() of the same mesh and quadrature degree"
            )

    def evaluate(
        self, strain: np.ndarray, *, time_step: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        s = check_strain_batch(strain, self.strain_size)
        if s.shape[0] != self.stiffness.shape[0]:
            raise ConfigError(f"{s.shape[0]} strains for {self.stiffness.shape[0]} points with parameters")
        return np.einsum("nij,nj->ni", self.stiffness, s), self.stiffness.copy()

    def uncertain_points(self) -> np.ndarray:
        """Indices of the points whose predictive standard deviation exceeds ``std_threshold``."""
        if self.std_threshold is None:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero((self.std > self.std_threshold).any(axis=1))
