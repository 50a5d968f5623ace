"""Closed-form homogenization: Voigt/Reuss and Hashin–Shtrikman bounds, laminates, polycrystals.

Everything here is numpy only (no dolfinx) and works on Mandel stiffnesses (see
:mod:`scalelink.fe2.tensors`), so the results can be compared directly with a periodic FE
RVE (:mod:`scalelink.fe2.rve`).

* :func:`voigt_bound`, :func:`reuss_bound`: arithmetic mean of the stiffnesses and harmonic mean
  (inverse of the mean compliance) of a multiphase composite (Voigt 1889, Reuss 1929, Hill 1952).
* :func:`hashin_shtrikman_bounds`: bulk and shear bounds for isotropic phases, 3D and 2D (plane
  strain / transverse), in Walpole's multiphase form.
* :func:`laminate_stiffness`, :func:`laminate_conductivity`: exact effective properties of a
  layered composite with anisotropic phases.
* Polycrystals of a cubic (or any) crystal: :func:`polycrystal_voigt_reuss`,
  :func:`directional_young`, :func:`young_gap`, orientation samplers.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from scalelink.bridge.errors import ConfigError

from .tensors import SQRT2, rotate_stiffness, validate_strain_size

__all__ = [
    "directional_young",
    "fibre_texture_rotations",
    "hashin_shtrikman_bounds",
    "isotropic_moduli",
    "laminate_conductivity",
    "laminate_stiffness",
    "polycrystal_voigt_reuss",
    "reuss_bound",
    "sphere_directions",
    "uniform_random_rotations",
    "voigt_bound",
    "young_gap",
]


def _fractions(fractions: npt.ArrayLike, count: int) -> np.ndarray:
    f = np.asarray(fractions, dtype=float)
    if f.shape != (count,) or np.any(f < 0.0) or abs(f.sum() - 1.0) > 1e-10:
        raise ConfigError(
            f"volume fractions {f.tolist()!r} must be {count} non-negative numbers summing to 1 "
            "(one per phase)"
        )
    return f


def _stiffness_stack(stiffnesses: npt.ArrayLike) -> np.ndarray:
    c = np.asarray(stiffnesses, dtype=float)
    if c.ndim != 3 or c.shape[1] != c.shape[2]:
        raise ConfigError(f"stiffnesses have shape {c.shape}, expected (phases, m, m)")
    validate_strain_size(c.shape[1])
    return c


def voigt_bound(stiffnesses: npt.ArrayLike, fractions: npt.ArrayLike) -> np.ndarray:
    """Voigt (uniform strain) upper bound ``Σ f_i C_i``.

    Args:
        stiffnesses: Mandel stiffnesses ``(p, m, m)`` of the ``p`` phases.
        fractions: volume fractions ``(p,)``, summing to 1.

    Returns:
        ``(m, m)`` in the unit of the stiffnesses.
    """
    c = _stiffness_stack(stiffnesses)
    return np.einsum("p,pij->ij", _fractions(fractions, c.shape[0]), c)


def reuss_bound(stiffnesses: npt.ArrayLike, fractions: npt.ArrayLike) -> np.ndarray:
    """Reuss (uniform stress) lower bound ``(Σ f_i C_i⁻¹)⁻¹``; shapes as :func:`voigt_bound`."""
    c = _stiffness_stack(stiffnesses)
    f = _fractions(fractions, c.shape[0])
    return np.linalg.inv(np.einsum("p,pij->ij", f, np.linalg.inv(c)))


def hashin_shtrikman_bounds(
    bulk: npt.ArrayLike, shear: npt.ArrayLike, fractions: npt.ArrayLike, *, dim: int = 3
) -> tuple[float, float, float, float]:
    """Hashin–Shtrikman bounds of the bulk and shear moduli of a composite of isotropic phases.

    Walpole's multiphase form (Hashin & Shtrikman 1963, J. Mech. Phys. Solids 11:127; Walpole
    1966, J. Mech. Phys. Solids 14:151), written as in Torquato, *Random Heterogeneous
    Materials* (2002), ch. 21, for dimension ``d``::

        K± = [Σ f_i / (K_i + 2(d−1)/d · G±)]⁻¹ − 2(d−1)/d · G±,  G± = max/min G_i
        G± = [Σ f_i / (G_i + H±)]⁻¹ − H±,
        H = G (d K/2 + (d+1)(d−2) G/d) / (K + 2G) at (K, G) = (max K, max G) / (min K, min G)

    For ``d = 3`` this is ``H = G(9K+8G)/(6(K+2G))``. For ``d = 2`` the moduli are the in-plane
    (plane-strain) ones: ``K = λ + μ`` (transverse bulk modulus) and ``G = μ``, and the bounds
    are Hashin's (1965, J. Mech. Phys. Solids 13:119) for fibre composites of arbitrary
    transverse geometry, ``H = G K/(K + 2G)``. When one phase is both the stiffest in bulk and in
    shear these coincide with the original Hashin–Shtrikman bounds.

    Args:
        bulk: bulk moduli ``(p,)`` (3D ``K``; 2D ``λ + μ``).
        shear: shear moduli ``(p,)``.
        fractions: volume fractions ``(p,)``.
        dim: 3 or 2.

    Returns:
        ``(bulk_lower, bulk_upper, shear_lower, shear_upper)``.
    """
    k = np.asarray(bulk, dtype=float)
    g = np.asarray(shear, dtype=float)
    f = _fractions(fractions, k.size)
    if dim not in (2, 3) or k.shape != g.shape or np.any(k <= 0) or np.any(g <= 0):
        raise ConfigError(
            f"need dim 2 or 3 (got {dim!r}) and positive bulk/shear moduli of equal length "
            f"(got {k.tolist()!r}, {g.tolist()!r})"
        )
    a = 2.0 * (dim - 1) / dim

    def bulk_bound(g_ref: float) -> float:
        return float(1.0 / np.sum(f / (k + a * g_ref)) - a * g_ref)

    def shear_bound(k_ref: float, g_ref: float) -> float:
        h = g_ref * (dim * k_ref / 2 + (dim + 1) * (dim - 2) * g_ref / dim) / (k_ref + 2 * g_ref)
        return float(1.0 / np.sum(f / (g + h)) - h)

    return (
        bulk_bound(g.min()),
        bulk_bound(g.max()),
        shear_bound(k.min(), g.min()),
        shear_bound(k.max(), g.max()),
    )


def _normal_split(m: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Mandel indices whose stress is continuous across a layer normal to ``axis`` (σ·n) and
    those whose strain is continuous (in-plane strains)."""
    d = 3 if m == 6 else 2
    if axis not in range(d):
        raise ConfigError(f"laminate normal axis {axis!r} must be one of {list(range(d))}")
    pairs = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)) if m == 6 else ((0, 0), (1, 1), (0, 1))
    traction = np.array([k for k, (i, j) in enumerate(pairs) if axis in (i, j)])
    strain = np.array([k for k, (i, j) in enumerate(pairs) if axis not in (i, j)])
    return traction, strain


def laminate_stiffness(
    stiffnesses: npt.ArrayLike, fractions: npt.ArrayLike, *, axis: int = 0
) -> np.ndarray:
    """Exact effective stiffness of a laminate of (anisotropic) layers normal to ``axis``.

    Across the layers the tractions ``σ·n`` are continuous, along them the in-plane strains are:
    with ``t`` the traction components and ``s`` the in-plane ones (Backus 1962; Milton, *The
    Theory of Composites* (2002), ch. 9), ``A = ⟨C_tt⁻¹⟩`` and::

        C*_tt = A⁻¹,   C*_ts = A⁻¹ ⟨C_tt⁻¹ C_ts⟩,
        C*_ss = ⟨C_ss − C_st C_tt⁻¹ C_ts⟩ + ⟨C_st C_tt⁻¹⟩ A⁻¹ ⟨C_tt⁻¹ C_ts⟩

    (harmonic means across, arithmetic means along the layers for the decoupled parts).

    Args:
        stiffnesses: Mandel stiffnesses ``(p, m, m)``.
        fractions: volume fractions ``(p,)``.
        axis: the layer normal, a coordinate axis (0 = x).

    Returns:
        ``(m, m)`` Mandel stiffness.
    """
    c = _stiffness_stack(stiffnesses)
    f = _fractions(fractions, c.shape[0])
    t, s = _normal_split(c.shape[1], axis)
    ctt_inv = np.linalg.inv(c[:, t[:, None], t[None, :]])
    cts = c[:, t[:, None], s[None, :]]
    cst = c[:, s[:, None], t[None, :]]
    css = c[:, s[:, None], s[None, :]]
    a_inv = np.linalg.inv(np.einsum("p,pij->ij", f, ctt_inv))
    right = np.einsum("p,pij->ij", f, ctt_inv @ cts)
    left = np.einsum("p,pij->ij", f, cst @ ctt_inv)
    out = np.empty(c.shape[1:])
    out[t[:, None], t[None, :]] = a_inv
    out[t[:, None], s[None, :]] = a_inv @ right
    out[s[:, None], t[None, :]] = left @ a_inv
    out[s[:, None], s[None, :]] = (
        np.einsum("p,pij->ij", f, css - cst @ ctt_inv @ cts) + left @ a_inv @ right
    )
    return out


def laminate_conductivity(
    conductivities: npt.ArrayLike, fractions: npt.ArrayLike, *, axis: int = 0, dim: int = 2
) -> np.ndarray:
    """Effective conductivity ``(dim, dim)`` of isotropic layers normal to ``axis``: the
    harmonic mean across, the arithmetic mean along the layers."""
    k = np.asarray(conductivities, dtype=float)
    f = _fractions(fractions, k.size)
    out = np.eye(dim) * float(f @ k)
    out[axis, axis] = 1.0 / float(f @ (1.0 / k))
    return out


def isotropic_moduli(stiffness: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Bulk and shear moduli of the isotropic part of 3D Mandel stiffnesses ``(..., 6, 6)``.

    The orthogonal projection onto isotropic tensors: ``K = Σ_{i,j≤3} C_ij / 9`` and
    ``G = (tr C − 3K) / 10``.
    """
    c = np.asarray(stiffness, dtype=float)
    if c.shape[-2:] != (6, 6):
        raise ConfigError(f"stiffness has shape {c.shape}, expected (..., 6, 6) (3D Mandel)")
    k = c[..., :3, :3].sum(axis=(-1, -2)) / 9.0
    return k, (np.trace(c, axis1=-2, axis2=-1) - 3.0 * k) / 10.0


def uniform_random_rotations(count: int, *, seed: int = 0) -> np.ndarray:
    """``count`` rotations ``(count, 3, 3)`` uniformly distributed on SO(3) (Haar measure), from
    normalised Gaussian quaternions (Shoemake 1992)."""
    if count < 1:
        raise ConfigError(f"need at least one orientation, got count={count!r}")
    q = np.random.default_rng(seed).standard_normal((count, 4))
    return _quaternion_matrix(q / np.linalg.norm(q, axis=1, keepdims=True))


def _quaternion_matrix(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


def fibre_texture_rotations(
    count: int,
    *,
    sample_axis: npt.ArrayLike = (0.0, 0.0, 1.0),
    crystal_direction: npt.ArrayLike = (0.0, 0.0, 1.0),
    spread: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """Rotations ``(count, 3, 3)`` of a fibre texture: the crystal direction
    ``crystal_direction`` is turned onto ``sample_axis`` (tilted by a Gaussian angle of standard
    deviation ``spread`` radians), with a uniformly random rotation about the fibre axis."""
    rng = np.random.default_rng(seed)
    a = np.asarray(sample_axis, dtype=float)
    c = np.asarray(crystal_direction, dtype=float)
    if a.shape != (3,) or c.shape != (3,) or min(np.linalg.norm(a), np.linalg.norm(c)) == 0:
        raise ConfigError(
            f"sample_axis {a.tolist()!r} and crystal_direction {c.tolist()!r} must be nonzero "
            "3-vectors"
        )
    align = _rotation_between(c / np.linalg.norm(c), a / np.linalg.norm(a))
    about = _axis_angle(np.broadcast_to(a, (count, 3)), rng.uniform(0, 2 * np.pi, count))
    tilt_axis = np.cross(a, rng.standard_normal((count, 3)))
    tilt = _axis_angle(tilt_axis, spread * rng.standard_normal(count))
    return tilt @ about @ align


def _axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    n = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    half = 0.5 * np.asarray(angle)[..., None]
    return _quaternion_matrix(np.concatenate([np.cos(half), np.sin(half) * n], axis=-1))


def _rotation_between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    axis = np.cross(u, v)
    if np.linalg.norm(axis) < 1e-12:
        # Parallel or antiparallel: any axis normal to u does for the half turn.
        if u @ v > 0:
            return np.eye(3)
        axis = np.cross(u, np.eye(3)[np.argmin(np.abs(u))])
        return _axis_angle(axis[None], np.array([np.pi]))[0]
    return _axis_angle(axis[None], np.array([np.arccos(np.clip(u @ v, -1.0, 1.0))]))[0]


def polycrystal_voigt_reuss(
    crystal_stiffness: npt.ArrayLike,
    rotations: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Voigt and Reuss average stiffnesses of a polycrystal.

    Args:
        crystal_stiffness: the crystal's Mandel stiffness ``(6, 6)`` in its own axes (e.g.
            :func:`~scalelink.fe2.tensors.cubic_stiffness`).
        rotations: orientations ``(N, 3, 3)`` (crystal → sample).
        weights: orientation weights ``(N,)`` (normalised here); equal if not given.

    Returns:
        ``(C_voigt, C_reuss)``, each ``(6, 6)``, in the unit of ``crystal_stiffness``.
    """
    c = np.asarray(crystal_stiffness, dtype=float)
    r = np.asarray(rotations, dtype=float)
    if c.shape != (6, 6) or r.ndim != 3 or r.shape[1:] != (3, 3):
        raise ConfigError(
            f"need a (6, 6) crystal stiffness and (N, 3, 3) rotations, got {c.shape} and {r.shape}"
        )
    if not np.allclose(r @ np.swapaxes(r, 1, 2), np.eye(3), atol=1e-8):
        raise ConfigError("rotations are not orthogonal matrices; pass proper rotations")
    w = np.full(r.shape[0], 1.0 / r.shape[0]) if weights is None else np.asarray(weights, float)
    if w.shape != (r.shape[0],) or np.any(w < 0) or w.sum() <= 0:
        raise ConfigError(f"weights must be {r.shape[0]} non-negative numbers with a positive sum")
    w = w / w.sum()
    voigt = np.einsum("n,nij->ij", w, rotate_stiffness(c, r))
    compliance = np.einsum("n,nij->ij", w, rotate_stiffness(np.linalg.inv(c), r))
    return voigt, np.linalg.inv(compliance)


def sphere_directions(count: int) -> np.ndarray:
    """``count`` nearly uniform unit vectors ``(count, 3)`` (Fibonacci lattice)."""
    if count < 2:
        raise ConfigError(f"need at least 2 directions, got {count!r}")
    i = np.arange(count) + 0.5
    z = 1.0 - 2.0 * i / count
    phi = np.pi * (1.0 + np.sqrt(5.0)) * i
    rho = np.sqrt(1.0 - z * z)
    return np.stack([rho * np.cos(phi), rho * np.sin(phi), z], axis=-1)


def directional_young(stiffness: npt.ArrayLike, directions: npt.ArrayLike) -> np.ndarray:
    """Young's moduli ``E(n) = 1 / (n⊗n : S : n⊗n)`` of 3D stiffnesses along directions.

    Args:
        stiffness: Mandel stiffness ``(6, 6)``.
        directions: ``(k, 3)`` (normalised here).

    Returns:
        ``(k,)`` moduli in the unit of ``stiffness``.
    """
    n = np.asarray(directions, dtype=float)
    n = n / np.linalg.norm(n, axis=-1, keepdims=True)
    v = np.stack(
        [n[:, 0] ** 2, n[:, 1] ** 2, n[:, 2] ** 2,
         SQRT2 * n[:, 1] * n[:, 2], SQRT2 * n[:, 0] * n[:, 2], SQRT2 * n[:, 0] * n[:, 1]],
        axis=-1,
    )
    s = np.linalg.inv(np.asarray(stiffness, dtype=float))
    return 1.0 / np.einsum("ki,ij,kj->k", v, s, v)


def young_gap(
    voigt: npt.ArrayLike, reuss: npt.ArrayLike, *, directions: int | npt.ArrayLike = 2000
) -> float:
    """``Δ = max_n 2|E_V(n) − E_R(n)| / (E_V(n) + E_R(n))`` over a sampling of the unit sphere.

    Args:
        voigt: Voigt average stiffness ``(6, 6)``.
        reuss: Reuss average stiffness ``(6, 6)``.
        directions: a number of Fibonacci directions or explicit directions ``(k, 3)``.
    """
    n = sphere_directions(directions) if np.isscalar(directions) else directions
    e_v = directional_young(voigt, n)
    e_r = directional_young(reuss, n)
    return float(np.max(2.0 * np.abs(e_v - e_r) / (e_v + e_r)))
