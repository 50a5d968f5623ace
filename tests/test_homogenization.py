"""Closed-form homogenization: bounds, laminates and polycrystal averages vs known formulas."""

from __future__ import annotations

import numpy as np
import pytest

from scalelink.bridge.errors import ConfigError
from scalelink.fe2.homogenization import (
    directional_young,
    fibre_texture_rotations,
    hashin_shtrikman_bounds,
    isotropic_moduli,
    laminate_conductivity,
    laminate_stiffness,
    polycrystal_voigt_reuss,
    reuss_bound,
    uniform_random_rotations,
    voigt_bound,
    young_gap,
)
from scalelink.fe2.tensors import cubic_stiffness, isotropic_stiffness, rotate_stiffness

CU = (168.4, 121.4, 75.4)  # C11, C12, C44 of copper, GPa


def test_voigt_reuss_of_identical_phases_and_order() -> None:
    c = rotate_stiffness(cubic_stiffness(*CU), uniform_random_rotations(1, seed=2)[0])
    np.testing.assert_allclose(voigt_bound([c, c], [0.3, 0.7]), c, rtol=1e-12)
    np.testing.assert_allclose(reuss_bound([c, c], [0.3, 0.7]), c, rtol=1e-12)
    soft = isotropic_stiffness(bulk=10.0, shear=3.0)
    gap = voigt_bound([c, soft], [0.4, 0.6]) - reuss_bound([c, soft], [0.4, 0.6])
    assert np.linalg.eigvalsh(gap).min() > 0.0
    with pytest.raises(ConfigError, match="volume fractions"):
        voigt_bound([c, soft], [0.4, 0.4])


@pytest.mark.parametrize("dim", [2, 3])
def test_hashin_shtrikman_two_phase_explicit_form(dim: int) -> None:
    """Walpole's multiphase form vs the explicit two-phase formulas of Hashin & Shtrikman (1963,
    3D) and Hashin (1965, 2D), with phase 1 the stiffer one."""
    k1, g1, k2, g2, f1 = 50.0, 30.0, 5.0, 2.0, 0.35
    f2 = 1.0 - f1
    lower_k, upper_k, lower_g, upper_g = hashin_shtrikman_bounds([k1, k2], [g1, g2], [f1, f2],
                                                                 dim=dim)

    def explicit(ka: float, ga: float, kb: float, gb: float, fa: float, fb: float):
        if dim == 3:
            k = ka + fb / (1 / (kb - ka) + 3 * fa / (3 * ka + 4 * ga))
            g = ga + fb / (1 / (gb - ga) + 6 * fa * (ka + 2 * ga) / (5 * ga * (3 * ka + 4 * ga)))
        else:
            k = ka + fb / (1 / (kb - ka) + fa / (ka + ga))
            g = ga + fb / (1 / (gb - ga) + fa * (ka + 2 * ga) / (2 * ga * (ka + ga)))
        return k, g

    k_up, g_up = explicit(k1, g1, k2, g2, f1, f2)
    k_lo, g_lo = explicit(k2, g2, k1, g1, f2, f1)
    np.testing.assert_allclose([lower_k, upper_k, lower_g, upper_g], [k_lo, k_up, g_lo, g_up],
                               rtol=1e-12)
    assert 1 / (f1 / k1 + f2 / k2) < lower_k < upper_k < f1 * k1 + f2 * k2
    assert 1 / (f1 / g1 + f2 / g2) < lower_g < upper_g < f1 * g1 + f2 * g2


def test_laminate_formulas() -> None:
    """Identical layers give the layer; isotropic layers give the harmonic mean of the shear
    modulus across and, for the conductivity, arithmetic along and harmonic across."""
    c = rotate_stiffness(cubic_stiffness(*CU), uniform_random_rotations(1, seed=5)[0])
    np.testing.assert_allclose(laminate_stiffness([c, c], [0.2, 0.8], axis=1), c, rtol=1e-12)
    a = isotropic_stiffness(young=10.0, poisson=0.3)
    b = isotropic_stiffness(young=1.0, poisson=0.2)
    lam = laminate_stiffness([a, b], [0.25, 0.75], axis=2)
    harmonic = 1.0 / (0.25 / a[3, 3] + 0.75 / b[3, 3])
    np.testing.assert_allclose([lam[3, 3], lam[4, 4]], harmonic, rtol=1e-12)
    np.testing.assert_allclose(lam[5, 5], 0.25 * a[5, 5] + 0.75 * b[5, 5], rtol=1e-12)
    k = laminate_conductivity([1.0, 9.0], [0.5, 0.5], axis=1, dim=2)
    np.testing.assert_allclose(np.diag(k), [5.0, 1.8])


def test_single_crystal_directional_young_closed_form() -> None:
    c11, c12, c44 = CU
    c = cubic_stiffness(c11, c12, c44)
    s11 = (c11 + c12) / ((c11 - c12) * (c11 + 2 * c12))
    s12 = -c12 / ((c11 - c12) * (c11 + 2 * c12))
    e = directional_young(c, [[1.0, 0, 0], [1.0, 1.0, 1.0]])
    np.testing.assert_allclose(e, [1 / s11, 3.0 / (s11 + 2 * s12 + 1 / c44)], rtol=1e-12)


def test_isotropic_crystal_has_no_gap() -> None:
    c = isotropic_stiffness(young=200.0, poisson=0.3)
    voigt, reuss = polycrystal_voigt_reuss(c, uniform_random_rotations(50, seed=1))
    assert young_gap(voigt, reuss) < 1e-12


def test_single_orientation_has_no_gap() -> None:
    rotation = uniform_random_rotations(1, seed=4)
    voigt, reuss = polycrystal_voigt_reuss(cubic_stiffness(*CU), rotation)
    np.testing.assert_allclose(voigt, reuss, rtol=1e-10, atol=1e-10)
    assert young_gap(voigt, reuss) < 1e-10


def test_uniform_texture_copper_voigt_reuss_moduli() -> None:
    """Sampling tolerance: with 20000 Haar rotations the Monte-Carlo error of the shear moduli
    is ~0.1 %; the bulk moduli are orientation invariant for a cubic crystal (exact)."""
    c11, c12, c44 = CU
    voigt, reuss = polycrystal_voigt_reuss(cubic_stiffness(*CU), uniform_random_rotations(20000))
    (k_v, g_v), (k_r, g_r) = isotropic_moduli(voigt), isotropic_moduli(reuss)
    np.testing.assert_allclose([k_v, k_r], (c11 + 2 * c12) / 3, rtol=1e-10)
    np.testing.assert_allclose(g_v, (c11 - c12 + 3 * c44) / 5, rtol=5e-3)
    np.testing.assert_allclose(g_r, 5 * (c11 - c12) * c44 / (4 * c44 + 3 * (c11 - c12)),
                               rtol=5e-3)
    e_v, e_r = 9 * k_v * g_v / (3 * k_v + g_v), 9 * k_r * g_r / (3 * k_r + g_r)
    gap = young_gap(voigt, reuss)
    assert gap == pytest.approx(2 * (e_v - e_r) / (e_v + e_r), rel=2e-2)


def test_fibre_texture_aligns_crystal_direction() -> None:
    r = fibre_texture_rotations(200, sample_axis=(1.0, 0, 0), crystal_direction=(1.0, 1.0, 1.0))
    np.testing.assert_allclose(r @ (np.ones(3) / np.sqrt(3)), np.tile([1.0, 0, 0], (200, 1)),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, rtol=1e-12)
    voigt, reuss = polycrystal_voigt_reuss(cubic_stiffness(*CU), r)
    # Along a <111> fibre, every grain has the single crystal's E[111] along the axis.
    e_axis = directional_young(cubic_stiffness(*CU), [[1.0, 1.0, 1.0]])
    np.testing.assert_allclose(directional_young(reuss, [[1.0, 0, 0]]), e_axis, rtol=1e-10)
    assert young_gap(voigt, reuss) > 0.05
