"""The distance of data-driven mechanics and the nearest-state search.

The local state space is that of pairs ``z = (ε, σ)`` with the norm of Kirchdoerfer & Ortiz::

    d(z, z_i)² = ½ (ε − ε_i)·C (ε − ε_i) + ½ (σ − σ_i)·C⁻¹ (σ − σ_i)

for a symmetric positive-definite Mandel stiffness ``C``. With ``y(z) = (C^½ ε, C^-½ σ)/√2``
(symmetric square roots) the distance is Euclidean, ``d(z, z_i) = |y(z) − y(z_i)|``, so the
database is stored once as a :class:`scipy.spatial.cKDTree` over ``y(z_i)`` and all quadrature
points of a rank are answered by one query.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from scalelink.bridge.errors import ConfigError, DataError

from .database import MaterialDatabase

__all__ = ["StateSearch", "check_stiffness", "fit_stiffness"]


def check_stiffness(stiffness: npt.ArrayLike, strain_size: int) -> np.ndarray:
    """The symmetric positive-definite ``(m, m)`` matrix ``stiffness``, or a ``ConfigError``."""
    c = np.asarray(stiffness, dtype=np.float64)
    if c.shape != (strain_size, strain_size):
        raise ConfigError(
            f"stiffness has shape {c.shape} but the database has strain size {strain_size}: "
            f"give a ({strain_size}, {strain_size}) Mandel matrix"
        )
    if not np.isfinite(c).all():
        raise ConfigError(f"stiffness contains NaN or inf: {c.tolist()}")
    scale = float(np.abs(c).max())
    if not np.allclose(c, c.T, rtol=1e-10, atol=1e-12 * scale):
        raise ConfigError("stiffness is not symmetric; give a symmetric Mandel (not Voigt) matrix")
    c = 0.5 * (c + c.T)
    eigenvalues = np.linalg.eigvalsh(c)
    if not eigenvalues[0] > 1e-12 * max(scale, 1e-300):
        raise ConfigError(
            f"stiffness is not positive definite (eigenvalues {np.round(eigenvalues, 6).tolist()}); "
            "the distance needs an SPD C, e.g. the material's initial elastic stiffness"
        )
    return c


def fit_stiffness(database: MaterialDatabase) -> np.ndarray:
    """A stiffness for the distance, fitted to the data: the symmetric part of the least-squares
    ``C`` of ``σ_i ≈ C ε_i + σ_0`` (the secant stiffness of the data set).

    Raises:
        ConfigError: the data do not determine an SPD stiffness (too few or degenerate strains,
            an unstable material); give ``stiffness`` explicitly then.
    """
    m = database.strain_size
    strain = database.strain - database.strain.mean(axis=0)
    stress = database.stress - database.stress.mean(axis=0)
    if len(database) <= m or np.linalg.matrix_rank(strain) < m:
        raise ConfigError(
            f"{database.source}: the {len(database)} strains do not span the {m} strain "
            "components, so no stiffness can be fitted; pass stiffness= explicitly"
        )
    fitted, *_ = np.linalg.lstsq(strain, stress, rcond=None)
    try:
        return check_stiffness(0.5 * (fitted + fitted.T), m)
    except ConfigError as exc:
        raise ConfigError(f"{database.source}: the fitted stiffness is unusable ({exc}); pass "
                          "stiffness= explicitly") from None


def _sqrt_pair(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(C^½, C^-½)``, symmetric."""
    values, vectors = np.linalg.eigh(c)
    root = np.sqrt(values)
    return (vectors * root) @ vectors.T, (vectors / root) @ vectors.T


class StateSearch:
    """Nearest database state of many local states in the ``C``-weighted distance.

    Args:
        database: the material states.
        stiffness: SPD Mandel stiffness ``(m, m)`` of the distance.
        workers: threads of one query (``cKDTree.query``; ``-1``: all cores).

    Attributes:
        stiffness: ``C``.
        compliance: ``C⁻¹``.
    """

    def __init__(self, database: MaterialDatabase, stiffness: npt.ArrayLike, *, workers: int = 1) -> None:
        m = database.strain_size
        self.database = database
        self.stiffness = check_stiffness(stiffness, m)
        self.compliance = np.linalg.inv(self.stiffness)
        root, inverse_root = _sqrt_pair(self.stiffness)
        # y = (C^½ ε, C^-½ σ)/√2 for row vectors: ε @ C^½ (symmetric) / √2
        self._maps = (root / np.sqrt(2.0), inverse_root / np.sqrt(2.0))
        self._workers = int(workers)
        self._tree = cKDTree(self.transform(database.strain, database.stress))

    def transform(self, strain: np.ndarray, stress: np.ndarray) -> np.ndarray:
        """Coordinates ``y (n, 2m)`` in which the distance is Euclidean."""
        return np.hstack([strain @ self._maps[0], stress @ self._maps[1]])

    def nearest(self, strain: np.ndarray, stress: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index of the nearest database state of every local state, and the distance to it.

        Args:
            strain: ``(n, m)`` Mandel strains.
            stress: ``(n, m)`` Mandel stresses.

        Returns:
            ``(index (n,) int64, distance (n,))``; ``distance`` is ``d`` above (units of
            √(stress × strain), i.e. √(energy density)).
        """
        m = self.database.strain_size
        if strain.shape != stress.shape or strain.ndim != 2 or strain.shape[1] != m:
            raise DataError(
                f"local states strain {strain.shape} and stress {stress.shape} do not match the "
                f"database's strain size {m}: expected (n, {m}) each"
            )
        distance, index = self._tree.query(self.transform(strain, stress), k=1, workers=self._workers)
        return np.asarray(index, dtype=np.int64), np.asarray(distance, dtype=np.float64)

    def distance(self, strain: np.ndarray, stress: np.ndarray, index: np.ndarray) -> np.ndarray:
        """``d`` between every local state and the database state ``index`` assigned to it."""
        db = self.database
        return np.linalg.norm(self.transform(strain - db.strain[index], stress - db.stress[index]), axis=1)
