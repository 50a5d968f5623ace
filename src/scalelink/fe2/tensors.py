"""Small-strain tensors in Mandel notation, and stiffness matrices of common symmetries.

Every strain, stress and tangent that crosses a ScaleLink FEniCSx interface is a Mandel vector
or matrix, so that the tangent is a symmetric matrix and vector norms equal tensor norms:

* 3D, ``strain_size == 6``: ``[xx, yy, zz, √2·yz, √2·xz, √2·xy]``
* 2D plane strain, ``strain_size == 3``: ``[xx, yy, √2·xy]`` (``ε_zz = ε_xz = ε_yz = 0``)

Shapes are batched over quadrature points: strains and stresses ``(n, m)``, tangents ``(n, m, m)``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from scalelink.bridge.errors import ConfigError

__all__ = [
    "PLANE_STRAIN_INDICES",
    "cubic_stiffness",
    "isotropic_stiffness",
    "mandel_from_tensor",
    "plane_strain",
    "rotate_stiffness",
    "rotation_matrix_mandel",
    "tensor_from_mandel",
    "validate_strain_size",
]

SQRT2 = float(np.sqrt(2.0))

# (i, j) index pairs of the Mandel components, by strain size.
_PAIRS = {
    6: ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)),
    3: ((0, 0), (1, 1), (0, 1)),
}
# Rows/columns of the 6-vector that survive in plane strain: xx, yy, √2·xy.
PLANE_STRAIN_INDICES = (0, 1, 5)


def validate_strain_size(strain_size: int) -> int:
    """Return ``strain_size`` if it is 3 (2D plane strain) or 6 (3D); raise otherwise."""
    if strain_size not in (3, 6):
        raise ConfigError(
            f"strain size {strain_size!r} is not supported: expected 3 (2D plane strain, "
            "Mandel [xx, yy, √2·xy]) or 6 (3D, Mandel [xx, yy, zz, √2·yz, √2·xz, √2·xy])"
        )
    return strain_size


def mandel_from_tensor(tensor: npt.ArrayLike) -> np.ndarray:
    """Mandel vectors of symmetric tensors.

    Args:
        tensor: ``(..., d, d)`` with ``d`` 2 or 3.

    Returns:
        ``(..., 3)`` for ``d == 2`` or ``(..., 6)`` for ``d == 3``.
    """
    t = np.asarray(tensor, dtype=float)
    d = t.shape[-1]
    pairs = _PAIRS[6 if d == 3 else 3]
    out = np.empty(t.shape[:-2] + (len(pairs),))
    for k, (i, j) in enumerate(pairs):
        out[..., k] = t[..., i, j] if i == j else SQRT2 * 0.5 * (t[..., i, j] + t[..., j, i])
    return out


def tensor_from_mandel(vector: npt.ArrayLike) -> np.ndarray:
    """Symmetric tensors ``(..., d, d)`` from Mandel vectors ``(..., 3)`` or ``(..., 6)``."""
    v = np.asarray(vector, dtype=float)
    m = validate_strain_size(v.shape[-1])
    d = 3 if m == 6 else 2
    out = np.zeros(v.shape[:-1] + (d, d))
    for k, (i, j) in enumerate(_PAIRS[m]):
        if i == j:
            out[..., i, i] = v[..., k]
        else:
            out[..., i, j] = out[..., j, i] = v[..., k] / SQRT2
    return out


def plane_strain(stiffness: npt.ArrayLike) -> np.ndarray:
    """The in-plane ``(..., 3, 3)`` block of 3D Mandel stiffnesses ``(..., 6, 6)``."""
    c = np.asarray(stiffness, dtype=float)
    idx = np.asarray(PLANE_STRAIN_INDICES)
    return c[..., idx[:, None], idx[None, :]]


def isotropic_stiffness(
    *,
    young: float | None = None,
    poisson: float | None = None,
    bulk: float | None = None,
    shear: float | None = None,
    strain_size: int = 6,
) -> np.ndarray:
    """Isotropic Mandel stiffness from (``young``, ``poisson``) or (``bulk``, ``shear``).

    For ``strain_size == 3`` the plane-strain block is returned. Units are those of the moduli.
    """
    validate_strain_size(strain_size)
    if young is not None and poisson is not None and bulk is None and shear is None:
        if not -1.0 < poisson < 0.5 or young <= 0.0:
            raise ConfigError(
                f"isotropic elasticity needs young > 0 and -1 < poisson < 0.5, got "
                f"young={young!r}, poisson={poisson!r}"
            )
        bulk = young / (3.0 * (1.0 - 2.0 * poisson))
        shear = young / (2.0 * (1.0 + poisson))
    elif bulk is None or shear is None or young is not None or poisson is not None:
        raise ConfigError(
            "give exactly one pair of isotropic moduli: (young, poisson) or (bulk, shear); got "
            f"young={young!r}, poisson={poisson!r}, bulk={bulk!r}, shear={shear!r}"
        )
    if bulk <= 0.0 or shear <= 0.0:
        raise ConfigError(f"bulk and shear moduli must be positive, got {bulk!r} and {shear!r}")
    volumetric = np.zeros((6, 6))
    volumetric[:3, :3] = 1.0 / 3.0
    c = 3.0 * bulk * volumetric + 2.0 * shear * (np.eye(6) - volumetric)
    return c if strain_size == 6 else plane_strain(c)


def cubic_stiffness(c11: float, c12: float, c44: float) -> np.ndarray:
    """Mandel stiffness ``(6, 6)`` of a cubic crystal in its cube axes (Voigt constants in)."""
    c = np.zeros((6, 6))
    c[:3, :3] = c12
    c[np.arange(3), np.arange(3)] = c11
    # Mandel shear entries are 2·C44 (Voigt's engineering shear strain carries the other factor).
    c[np.arange(3, 6), np.arange(3, 6)] = 2.0 * c44
    return c


def rotation_matrix_mandel(rotation: npt.ArrayLike) -> np.ndarray:
    """The orthogonal ``(..., 6, 6)`` Mandel matrix ``Q`` with ``mandel(R·A·Rᵀ) = Q·mandel(A)``.

    Args:
        rotation: proper rotations ``(..., 3, 3)``.
    """
    r = np.asarray(rotation, dtype=float)
    pairs = _PAIRS[6]
    q = np.empty(r.shape[:-2] + (6, 6))
    for a, (i, j) in enumerate(pairs):
        for b, (k, l) in enumerate(pairs):
            if k == l:
                value = r[..., i, k] * r[..., j, l]
            else:
                value = (r[..., i, k] * r[..., j, l] + r[..., i, l] * r[..., j, k]) / SQRT2
            q[..., a, b] = value if i == j else SQRT2 * value
    return q


def rotate_stiffness(stiffness: npt.ArrayLike, rotation: npt.ArrayLike) -> np.ndarray:
    """Stiffnesses ``(..., 6, 6)`` of crystals rotated by ``rotation`` ``(..., 3, 3)``."""
    q = rotation_matrix_mandel(rotation)
    return q @ np.asarray(stiffness, dtype=float) @ np.swapaxes(q, -1, -2)
