"""The near-tip field of a straight crack in an anisotropic linear-elastic crystal (Stroh).

Frame: ``x1`` along the direction the crack would advance, ``x2`` normal to the crack plane,
``x3`` along the crack front; the crack occupies ``x2 = 0, x1 < 0`` and the field is
independent of ``x3`` (generalised plane strain: all three displacement components may be
non-zero, as they are for a crystal whose axes are not symmetry axes of the crack).

Stroh's formalism: displacements of the form ``a f(x1 + p x2)`` satisfy equilibrium when
``(Q + p (R + Rᵀ) + p² T) a = 0`` with ``Q_ik = C_i1k1``, ``R_ik = C_i1k2``, ``T_ik = C_i2k2``.
The six roots ``p`` come in conjugate pairs; with the three of positive imaginary part as the
columns of ``A`` (vectors ``a``) and ``B`` (``b = (Rᵀ + p T) a``), the field of stress intensity
factors ``k = (K_II, K_I, K_III)`` is, with ``z_α = x1 + p_α x2`` and the principal square root
(its branch cut on the crack faces)::

    u = √(2/π) Re{ A ⟨√z_α⟩ B⁻¹ } k,      φ = √(2/π) Re{ B ⟨√z_α⟩ B⁻¹ } k,

and the stresses follow from the stress function ``φ``: ``σ_i1 = −∂φ_i/∂x2``,
``σ_i2 = ∂φ_i/∂x1``. Ahead of the tip ``σ_i2 = k_i / √(2π x1)``; on the faces ``φ`` is constant,
so they carry no traction. The energy release rate is ``G = ½ kᵀ Λ⁻¹ k`` with the real
symmetric ``Λ⁻¹ = Re(i A B⁻¹)`` (Irwin's relation in Stroh's form). Units are the caller's: a
stiffness in eV/Å³ and ``K`` in eV/Å^2.5 give displacements in Å and ``G`` in eV/Å².

An isotropic (or nearly isotropic) medium makes the roots coincide (``p = i`` three times) and
``A`` singular; such a stiffness is refused with a clear error rather than answered with an
inaccurate field.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from scalelink.bridge.errors import ConfigError

__all__ = ["CrackTipField", "stiffness_tensor"]

_PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def stiffness_tensor(mandel: npt.ArrayLike) -> np.ndarray:
    """The fourth-order stiffness ``C_ijkl`` ``(3, 3, 3, 3)`` of a ``(6, 6)`` Mandel matrix
    (order 11, 22, 33, 23, 13, 12; shear rows and columns carrying √2)."""
    m = np.asarray(mandel, dtype=float)
    if m.shape != (6, 6) or not np.all(np.isfinite(m)):
        raise ConfigError(f"a stiffness must be a finite (6, 6) Mandel matrix, got shape {m.shape}")
    weight = np.array([1.0, 1.0, 1.0, np.sqrt(2.0), np.sqrt(2.0), np.sqrt(2.0)])
    voigt = m / np.outer(weight, weight)
    c = np.empty((3, 3, 3, 3))
    for a, (i, j) in enumerate(_PAIRS):
        for b, (k, l) in enumerate(_PAIRS):
            for ii, jj in {(i, j), (j, i)}:
                for kk, ll in {(k, l), (l, k)}:
                    c[ii, jj, kk, ll] = voigt[a, b]
    return c


class CrackTipField:
    """Displacements and stresses of the near-tip field of a crack (module docstring).

    Args:
        stiffness: Mandel stiffness ``(6, 6)`` in the crack frame (``x1`` advance, ``x2`` normal to
            the crack plane, ``x3`` along the front); rotate a crystal's with
            :func:`scalelink.fe2.tensors.rotate_stiffness`.

    Attributes:
        p: the three Stroh roots with positive imaginary part ``(3,)``.
        A, B: the matrices of their displacement and traction vectors ``(3, 3)``.
        compliance: ``Λ⁻¹ = Re(i A B⁻¹)`` ``(3, 3)``, so that ``G = ½ kᵀ Λ⁻¹ k``.

    Raises:
        ConfigError: the stiffness is not symmetric positive definite, or so close to isotropic
            that the roots coincide (``A`` is then singular).
    """

    def __init__(self, stiffness: npt.ArrayLike) -> None:
        m = np.asarray(stiffness, dtype=float)
        self.c = stiffness_tensor(m)
        if not np.allclose(m, m.T, rtol=1e-10, atol=1e-12 * np.abs(m).max()):
            raise ConfigError("the stiffness is not symmetric; pass a (6, 6) Mandel matrix C = Cᵀ")
        smallest = float(np.linalg.eigvalsh(0.5 * (m + m.T))[0])
        if not smallest > 0.0:
            raise ConfigError(f"the stiffness is not positive definite (smallest eigenvalue {smallest:.4g}); "
                              "the crystal is unstable at this lattice and has no crack-tip field")
        q = self.c[:, 0, :, 0]
        r = self.c[:, 0, :, 1]
        t = self.c[:, 1, :, 1]
        t_inv = np.linalg.inv(t)
        # N (a, b) = p (a, b): Ting's fundamental matrix
        n = np.block([[-t_inv @ r.T, t_inv], [r @ t_inv @ r.T - q, -r @ t_inv]])
        roots, vectors = np.linalg.eig(n)
        upper = np.argsort(-roots.imag)[:3]
        self.p = roots[upper]
        if np.min(self.p.imag) <= 1e-12 * np.abs(self.p).max():
            raise ConfigError(f"the Stroh roots {self.p} are not complex: the stiffness is not positive definite")
        self.A = vectors[:3, upper]
        self.B = vectors[3:, upper]
        gap = min(abs(self.p[i] - self.p[j]) for i in range(3) for j in range(i + 1, 3))
        if gap < 1e-4 or np.linalg.cond(self.A) > 1e8 or np.linalg.cond(self.B) > 1e8:
            raise ConfigError(
                f"the Stroh roots {np.round(self.p, 6)} (nearly) coincide: the stiffness is (nearly) isotropic, "
                "for which this anisotropic form is degenerate; use the isotropic crack-tip field instead")
        self._b_inv = np.linalg.inv(self.B)
        self.compliance = np.real(1j * self.A @ self._b_inv)
        self.compliance = 0.5 * (self.compliance + self.compliance.T)

    def _check(self, k: npt.ArrayLike) -> np.ndarray:
        kk = np.asarray(k, dtype=float)
        if kk.shape != (3,) or not np.all(np.isfinite(kk)):
            raise ConfigError(f"k must be the three finite stress intensity factors (K_II, K_I, K_III), got {k!r}")
        return kk

    def _z(self, points: npt.ArrayLike) -> np.ndarray:
        x = np.asarray(points, dtype=float)
        if x.ndim != 2 or x.shape[1] not in (2, 3):
            raise ConfigError(f"points must be (n, 2) or (n, 3) positions relative to the tip, got shape {x.shape}")
        return x[:, :1] + self.p[None, :] * x[:, 1:2]

    def displacement(self, points: npt.ArrayLike, k: npt.ArrayLike) -> np.ndarray:
        """Displacements ``(n, 3)`` at ``points`` ``(n, 2 or 3)`` relative to the tip (crack frame)
        for the stress intensity factors ``k = (K_II, K_I, K_III)``."""
        kk = self._check(k)
        root = np.sqrt(self._z(points).astype(complex))
        return np.sqrt(2.0 / np.pi) * np.real(np.einsum("ia,na,aj,j->ni", self.A, root, self._b_inv, kk))

    def displacement_gradient(self, points: npt.ArrayLike, k: npt.ArrayLike) -> np.ndarray:
        """``∂u_i/∂x_j`` ``(n, 3, 3)`` at ``points`` (the ``x3`` column is zero)."""
        kk = self._check(k)
        half = 0.5 / np.sqrt(self._z(points).astype(complex))
        grad = np.zeros((half.shape[0], 3, 3))
        for j, factor in ((0, np.ones(3)), (1, self.p)):
            grad[:, :, j] = np.sqrt(2.0 / np.pi) * np.real(
                np.einsum("ia,na,a,aj,j->ni", self.A, half, factor, self._b_inv, kk))
        return grad

    def stress(self, points: npt.ArrayLike, k: npt.ArrayLike) -> np.ndarray:
        """Stresses ``σ_ij`` ``(n, 3, 3)`` at ``points`` (Hooke's law on the displacement gradient)."""
        grad = self.displacement_gradient(points, k)
        return np.einsum("ijkl,nkl->nij", self.c, 0.5 * (grad + np.swapaxes(grad, 1, 2)))

    def energy_release_rate(self, k: npt.ArrayLike) -> float:
        """``G = ½ kᵀ Λ⁻¹ k`` (stiffness units × length, e.g. eV/Å² for eV/Å³ and eV/Å^2.5)."""
        kk = self._check(k)
        return float(0.5 * kk @ self.compliance @ kk)

    def griffith_k(self, surface_energy: float) -> float:
        """Mode-I ``K`` at which ``G = 2γ`` (Griffith's cleavage load) for the surface energy ``γ``
        of the crack plane (energy per area in the units of the stiffness × length)."""
        if not (np.isfinite(surface_energy) and surface_energy > 0.0):
            raise ConfigError(f"surface_energy must be a positive number, got {surface_energy!r}")
        return float(np.sqrt(4.0 * surface_energy / self.compliance[1, 1]))
