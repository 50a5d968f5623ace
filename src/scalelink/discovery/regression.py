"""Sparse regression of a weak-form system and the physics checks on the law it finds.

The sparse fit is sequentially thresholded least squares (``pysindy.optimizers.STLSQ``) on the
column-normalised system scaled by the norm of its target, so that the threshold is the smallest
fraction of the time derivative a kept term must explain. The diffusion tensor assembled from
the ``K_ab`` coefficients is symmetric by construction of the library and is checked for
positive definiteness.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from pysindy.optimizers import STLSQ

from scalelink.bridge.errors import DataError, ScaleLinkError

from .weak import WeakSystem

__all__ = ["DiscoveredLaw", "DiscoveryError", "discover"]

_AXES = "xyz"


class DiscoveryError(ScaleLinkError):
    """The data do not determine a physically admissible law."""


@dataclasses.dataclass
class DiscoveredLaw:
    """A sparse conservation law found from data.

    Attributes:
        coefficients: ``{term name: value}`` of the kept terms.
        all_coefficients: ``(n_terms,)`` every coefficient, zeros for dropped terms.
        names: all term names ``(n_terms,)``.
        diffusion: the symmetric tensor ``K`` ``(d, d)`` (zeros if no diffusion term is kept).
        residual: relative residual ``‖Gξ − b‖ / ‖b‖`` of the weak system.
    """

    coefficients: dict[str, float]
    all_coefficients: np.ndarray
    names: list[str]
    diffusion: np.ndarray
    residual: float

    def __str__(self) -> str:
        terms = " + ".join(f"{v:.6g}·[{k}]" for k, v in self.coefficients.items())
        return f"∂c/∂t = {terms}   (weak residual {self.residual:.2e})"


def discover(system: WeakSystem, *, threshold: float = 0.05, max_iterations: int = 20,
             require_positive_diffusion: bool = True) -> DiscoveredLaw:
    """Sparse conservation law from a weak-form system.

    Args:
        system: from :func:`~scalelink.discovery.weak.assemble_weak_system`.
        threshold: terms whose normalised coefficient ``|ξ_i| ‖G_i‖ / ‖b‖`` falls below it are
            dropped (a fraction of the time derivative).
        max_iterations: STLSQ iterations.
        require_positive_diffusion: raise :class:`DiscoveryError` if ``K`` is not positive
            definite.

    Returns:
        The :class:`DiscoveredLaw`.
    """
    g, b = system.matrix, system.target
    rows, n_terms = g.shape
    if rows < 2 * n_terms:
        raise DataError(
            f"the weak system has {rows} rows for {n_terms} candidate terms; use at least "
            f"{2 * n_terms} test functions (more centres or more time windows)"
        )
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(b))):
        raise DataError("the weak system holds NaN or infinite values; check the snapshots")
    scale = np.linalg.norm(g, axis=0)
    b_norm = np.linalg.norm(b)
    tiny = 1e-10 * scale.max()
    if b_norm <= tiny or np.any(scale <= tiny):
        empty = [n for n, s in zip(system.names, scale) if s <= tiny]
        raise DataError(
            f"the data do not change in time (‖b‖ = {b_norm:g}) or candidate terms vanish on "
            f"every test function ({empty}); record a transient, or drop those terms"
        )
    optimizer = STLSQ(threshold=threshold, alpha=1e-12, max_iter=max_iterations)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimizer.fit(g / scale, b / b_norm)
    xi = np.asarray(optimizer.coef_).ravel() * b_norm / scale
    residual = float(np.linalg.norm(g @ xi - b) / b_norm)
    d = system.dim
    k = np.zeros((d, d))
    for name, value in zip(system.names, xi):
        if name.startswith("K_"):
            a, c = _AXES.index(name[2]), _AXES.index(name[3])
            k[a, c] = k[c, a] = value
    if require_positive_diffusion and np.any(np.linalg.eigvalsh(k) <= 0.0):
        raise DiscoveryError(
            f"the diffusion tensor found, {k.tolist()}, is not positive definite (eigenvalues "
            f"{np.linalg.eigvalsh(k).tolist()}); the record may be too short or too noisy, or "
            "the test functions too narrow: widen them, add time windows, or lower the threshold"
        )
    kept = {n: float(v) for n, v in zip(system.names, xi) if v != 0.0}
    return DiscoveredLaw(kept, xi, list(system.names), k, residual)
