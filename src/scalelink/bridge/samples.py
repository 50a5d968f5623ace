"""Strain/stress/tangent samples of a micro model: the training data of constitutive
surrogates, written by ``scalelink sample-micro`` and read by ``scalelink train-surrogate``.

One ``.npz`` file: arrays ``strain (n, m)``, ``stress (n, m)``, ``tangent (n, m, m)`` (Mandel)
and scalars ``strain_size`` and ``stress_unit``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .errors import DataError

__all__ = ["ConstitutiveSamples", "load_samples"]


@dataclass(frozen=True)
class ConstitutiveSamples:
    """Strain/stress/tangent samples of a micro model.

    Attributes:
        strain: ``(n, m)`` Mandel strains.
        stress: ``(n, m)`` Mandel stresses in ``stress_unit``.
        tangent: ``(n, m, m)`` consistent tangents ``∂σ_i/∂ε_j`` in ``stress_unit``.
        strain_size: ``m``.
        stress_unit: unit of stress and tangent.
    """

    strain: np.ndarray
    stress: np.ndarray
    tangent: np.ndarray
    strain_size: int
    stress_unit: str

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the samples as ``.npz`` (the arrays :func:`load_samples` reads)."""
        np.savez(
            os.fspath(path), strain=self.strain, stress=self.stress, tangent=self.tangent,
            strain_size=np.int64(self.strain_size), stress_unit=np.str_(self.stress_unit),
        )


def load_samples(path: str | os.PathLike[str]) -> ConstitutiveSamples:
    """Read a sample file (``.npz`` with arrays ``strain``, ``stress``, ``tangent``,
    ``strain_size`` and ``stress_unit``, as written by ``scalelink sample-micro``).

    Raises:
        DataError: the file is missing or lacks an array, or the shapes disagree.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"sample file {path!r} does not exist; write one with `scalelink sample-micro`")
    try:
        with np.load(path, allow_pickle=False) as raw:
            data = {k: raw[k] for k in raw.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path!r} is not a readable .npz sample file ({exc})") from None
    missing = [k for k in ("strain", "stress", "tangent", "strain_size", "stress_unit") if k not in data]
    if missing:
        raise DataError(f"sample file {path!r} lacks {missing}; write it with `scalelink sample-micro`")
    m = int(data["strain_size"])
    strain, stress, tangent = (np.asarray(data[k], dtype=np.float64) for k in ("strain", "stress", "tangent"))
    n = strain.shape[0] if strain.ndim == 2 else -1
    if strain.shape != (n, m) or stress.shape != (n, m) or tangent.shape != (n, m, m) or n < 2:
        raise DataError(
            f"sample file {path!r}: strain {strain.shape}, stress {stress.shape}, tangent "
            f"{tangent.shape} do not match (n ≥ 2, m = strain_size = {m}): (n, m), (n, m), (n, m, m)"
        )
    if not all(np.all(np.isfinite(a)) for a in (strain, stress, tangent)):
        raise DataError(f"sample file {path!r} contains NaN or inf; re-sample the micro model")
    return ConstitutiveSamples(strain, stress, tangent, m, str(data["stress_unit"]))
