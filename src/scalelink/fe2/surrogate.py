"""A micro model answered by a trained constitutive network (a surrogate of an RVE).

The network's file (kind ``constitutive``, written by ``scalelink deploy-surrogate``) returns
stress and consistent tangent of every quadrature point in one batched call, so the macro
Newton iteration sees the exact derivative of the surrogate it solves with.
"""

from __future__ import annotations

import os

import numpy as np

from scalelink.bridge.inference import ConstitutiveEngine

from .micro import MicroModel, check_strain_batch
from .tensors import validate_strain_size

__all__ = ["SurrogateMicroModel"]


class SurrogateMicroModel(MicroModel):
    """Stress and tangent from a deployed constitutive network (no history).

    Args:
        path: model file of kind ``constitutive``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:K"`` or ``"auto"``.
        dtype: ``"float32"``/``"float64"`` to override the file's precision, or ``None``.
        chunk_size: points per network call (bounds memory).
        num_threads: CPU worker threads evaluating chunks at once (see
            :class:`~scalelink.bridge.inference.ConstitutiveEngine`), or ``None``.

    ``strain_size`` and ``stress_unit`` come from the file's metadata.
    """

    has_state = False

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        device: str = "cpu",
        dtype: str | None = None,
        chunk_size: int = 1024,
        num_threads: int | None = None,
    ) -> None:
        self.engine = ConstitutiveEngine(
            path, device=device, dtype=dtype, chunk_size=chunk_size, num_threads=num_threads
        )
        self.strain_size = validate_strain_size(self.engine.strain_size)
        self.stress_unit = self.engine.stress_unit

    def evaluate(
        self, strain: np.ndarray, *, time_step: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.engine.evaluate(check_strain_batch(strain, self.strain_size))
