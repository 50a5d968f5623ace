"""The anisotropic crack-tip field (scalelink.coupling.kfield) against closed-form facts: the
isotropic field as the anisotropy vanishes, equilibrium and the displacement gradient by finite
differences, traction-free faces, σ_22 = K_I / √(2πr) ahead of the tip, and Rice's J integral
on circles equal to the energy release rate ½ kᵀ Λ⁻¹ k."""

from __future__ import annotations

import numpy as np
import pytest

from scalelink.bridge.errors import ConfigError
from scalelink.coupling.kfield import CrackTipField, stiffness_tensor
from scalelink.fe2.tensors import cubic_stiffness, rotate_stiffness

# copper-like cubic constants (eV/Å³) in the frame x1 = [110], x2 = [001], x3 = [1-10]
CU = cubic_stiffness(1.06, 0.76, 0.47)
FRAME = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, -1.0, 0.0]])
FRAME /= np.linalg.norm(FRAME, axis=1)[:, None]
# a frame without mirror symmetry about the crack plane: the field couples all three modes
SKEW = np.array([[1.0, 1.0, -2.0], [1.0, 1.0, 1.0], [1.0, -1.0, 0.0]])
SKEW /= np.linalg.norm(SKEW, axis=1)[:, None]
TILT = np.array([[np.cos(0.3), 0.0, -np.sin(0.3)], [0.0, 1.0, 0.0], [np.sin(0.3), 0.0, np.cos(0.3)]])


def fields() -> list[CrackTipField]:
    return [CrackTipField(rotate_stiffness(CU, FRAME)), CrackTipField(rotate_stiffness(CU, TILT @ SKEW))]


def test_stiffness_tensor_round_trip() -> None:
    c = stiffness_tensor(rotate_stiffness(CU, SKEW))
    assert np.allclose(c, c.transpose(1, 0, 2, 3)) and np.allclose(c, c.transpose(2, 3, 0, 1))
    strain = np.array([[0.01, 0.002, -0.003], [0.002, -0.02, 0.004], [-0.003, 0.004, 0.005]])
    r2 = np.sqrt(2.0)
    mandel = np.array([strain[0, 0], strain[1, 1], strain[2, 2], r2 * strain[1, 2], r2 * strain[0, 2], r2 * strain[0, 1]])
    sigma = np.einsum("ijkl,kl->ij", c, strain)
    s = rotate_stiffness(CU, SKEW) @ mandel
    assert np.allclose(s, [sigma[0, 0], sigma[1, 1], sigma[2, 2], r2 * sigma[1, 2], r2 * sigma[0, 2], r2 * sigma[0, 1]])


@pytest.mark.parametrize("zener", [1.01, 1.002])
def test_isotropic_limit(zener: float) -> None:
    """A cubic medium with C44 = (C11 − C12)/2 · zener tends to the classical isotropic field."""
    mu, nu = 0.5, 0.3
    lam = 2.0 * mu * nu / (1.0 - 2.0 * nu)
    field = CrackTipField(cubic_stiffness(lam + 2.0 * mu / zener, lam, mu))
    theta = np.linspace(-np.pi + 1e-9, np.pi - 1e-9, 25)
    r, k = 3.0, 0.2
    u = field.displacement(np.column_stack([r * np.cos(theta), r * np.sin(theta)]), [0.0, k, 0.0])
    kappa = 3.0 - 4.0 * nu
    scale = k / (2.0 * mu) * np.sqrt(r / (2.0 * np.pi))
    ux = scale * np.cos(theta / 2) * (kappa - 1.0 + 2.0 * np.sin(theta / 2) ** 2)
    uy = scale * np.sin(theta / 2) * (kappa + 1.0 - 2.0 * np.cos(theta / 2) ** 2)
    error = max(np.abs(u[:, 0] - ux).max(), np.abs(u[:, 1] - uy).max()) / np.abs(uy).max()
    assert error < 0.6 * (zener - 1.0), error
    assert np.abs(u[:, 2]).max() < 1e-12


@pytest.mark.parametrize("index", [0, 1])
def test_equilibrium_and_gradient(index: int) -> None:
    field = fields()[index]
    k = np.array([0.01, 0.05, 0.02])
    h = 1e-5
    for p in np.array([[0.7, 0.4], [-0.5, 0.9], [1.3, -0.6], [-2.0, -0.1]]):
        divergence = np.zeros(3)
        gradient = np.zeros((3, 2))
        for j in range(2):
            step = np.zeros(2)
            step[j] = h
            divergence += (field.stress((p + step)[None], k)[0][:, j] - field.stress((p - step)[None], k)[0][:, j]) / (2 * h)
            gradient[:, j] = (field.displacement((p + step)[None], k)[0] - field.displacement((p - step)[None], k)[0]) / (2 * h)
        scale = np.abs(field.stress(p[None], k)).max()
        assert np.abs(divergence).max() < 1e-7 * scale
        assert np.allclose(field.displacement_gradient(p[None], k)[0][:, :2], gradient, atol=1e-8 * np.abs(gradient).max())


@pytest.mark.parametrize("index", [0, 1])
def test_faces_free_and_singularity(index: int) -> None:
    field = fields()[index]
    k = np.array([0.01, 0.05, 0.02])
    r = np.linspace(0.5, 5.0, 7)
    for side in (1.0, -1.0):
        faces = np.column_stack([-r, side * 1e-12 * np.ones_like(r)])
        traction = field.stress(faces, k)[:, :, 1]
        assert np.abs(traction).max() < 1e-10 * np.abs(k).max()
    ahead = field.stress(np.column_stack([r, np.zeros_like(r)]), k)
    # σ_i2 = k_i / √(2π r) with k = (K_II, K_I, K_III)
    assert np.allclose(ahead[:, :, 1] * np.sqrt(2 * np.pi * r)[:, None], k[None, :], rtol=1e-10)


@pytest.mark.parametrize("index", [0, 1])
def test_j_integral_is_energy_release_rate(index: int) -> None:
    field = fields()[index]
    k = np.array([0.01, 0.05, 0.02])

    def j_integral(radius: float, n: int = 2000) -> float:
        theta = np.linspace(-np.pi, np.pi, n + 1)[:-1] + np.pi / n
        points = np.column_stack([radius * np.cos(theta), radius * np.sin(theta)])
        grad = field.displacement_gradient(points, k)
        sigma = field.stress(points, k)
        energy = 0.5 * np.einsum("nij,nij->n", sigma, 0.5 * (grad + np.swapaxes(grad, 1, 2)))
        normal = np.column_stack([np.cos(theta), np.sin(theta), np.zeros_like(theta)])
        integrand = energy * normal[:, 0] - np.einsum("nij,nj,ni->n", sigma, normal, grad[:, :, 0])
        return float(integrand.sum() * radius * 2 * np.pi / n)

    g = field.energy_release_rate(k)
    assert g > 0.0
    for radius in (0.5, 4.0):
        assert j_integral(radius) == pytest.approx(g, rel=1e-8)
    assert np.allclose(field.compliance, field.compliance.T)
    # Griffith: G(K_G) = 2γ in pure mode I
    gamma = 0.08
    assert field.energy_release_rate([0.0, field.griffith_k(gamma), 0.0]) == pytest.approx(2 * gamma, rel=1e-12)


def test_bad_input() -> None:
    with pytest.raises(ConfigError, match="isotropic"):
        CrackTipField(cubic_stiffness(1.4, 0.6, 0.4))  # C44 = (C11 − C12)/2: isotropic
    unstable = cubic_stiffness(0.7, 0.8, 0.4)  # C11 < C12: not positive definite
    with pytest.raises(ConfigError, match="not positive definite"):
        CrackTipField(unstable)
    with pytest.raises(ConfigError, match=r"\(6, 6\)"):
        CrackTipField(np.eye(3))
    field = fields()[0]
    with pytest.raises(ConfigError, match="K_II, K_I, K_III"):
        field.displacement(np.zeros((1, 2)), [1.0, 2.0])
    with pytest.raises(ConfigError, match="points"):
        field.displacement(np.zeros(3), [0.0, 1.0, 0.0])
    with pytest.raises(ConfigError, match="surface_energy"):
        field.griffith_k(-1.0)
