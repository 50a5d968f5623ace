"""Cahn–Hilliard in dolfinx against closed forms: the planar interface energy of the double well,
the coexisting compositions of a Redlich–Kister solution from the common tangent (convex hull),
exact mass conservation; the Redlich–Kister fit recovers the coefficients that made its data."""

from __future__ import annotations

import numpy as np
import pytest

from scalelink.bridge.errors import ConfigError, DataError
from scalelink.mesoscale.free_energy import (DoubleWell, RedlichKister, common_tangent,
                                             fit_redlich_kister)

pytestmark = pytest.mark.fenicsx


def _line(cells: int):
    from mpi4py import MPI
    from dolfinx import mesh

    return mesh.create_interval(MPI.COMM_WORLD, cells, [0.0, 1.0])


def test_planar_interface_energy_matches_closed_form() -> None:
    from scalelink.mesoscale.phasefield import CahnHilliard, TimeStepping

    well, kappa = DoubleWell(barrier=1.0), 1e-3
    ch = CahnHilliard(_line(300), well, kappa=kappa, mobility=1.0, stepping=TimeStepping(dt=1e-7),
                      petsc_prefix="t_if_")
    # a sharp step: the equilibrium profile must come from the solver, not from the start
    ch.set_concentration(lambda x: np.where(x[0] < 0.4, 0.02, 0.98))
    out = ch.run(1e3, steady_tol=1e-10)
    assert out["time"] < 1e3  # reached steady state
    # one interface between the two wells (f = 0 there): the total energy is σ
    assert ch.total_energy() == pytest.approx(well.interface_energy(kappa), rel=0.02)
    assert out["mass_drift"] < 1e-10


def test_coexisting_compositions_follow_common_tangent() -> None:
    from scalelink.mesoscale.phasefield import CahnHilliard, TimeStepping

    # asymmetric (L1 ≠ 0) so the two compositions are not mirror images
    model = RedlichKister(temperature=1.0, interaction=(3.0, 0.6), boltzmann=1.0)
    low, high = common_tangent(model)
    assert 0.0 < low < 0.5 < high < 1.0
    ch = CahnHilliard(_line(200), model, kappa=1e-3, mobility=1.0, stepping=TimeStepping(dt=1e-7),
                      petsc_prefix="t_rk_")
    ch.set_concentration(lambda x: 0.3 + 0.4 * (x[0] > 0.5))
    mass0 = ch.total_mass()
    out = ch.run(1e3, steady_tol=1e-10)
    lo, hi = ch.concentration_range()
    assert lo == pytest.approx(low, rel=0.01)
    assert hi == pytest.approx(high, rel=0.01)
    assert abs(ch.total_mass() - mass0) < 1e-10
    assert out["mass_drift"] < 1e-10
    assert np.all(np.diff(ch.history.energy) <= 1e-12)  # backward Euler dissipates


def test_common_tangent_of_regular_solution_is_the_symmetric_binodal() -> None:
    # symmetric regular solution: the binodal solves ln(c/(1-c)) = Ω(2c-1)/kT (scipy brentq)
    from scipy.optimize import brentq

    omega = 2.6
    c_b = brentq(lambda c: np.log(c / (1 - c)) - omega * (2 * c - 1), 1e-6, 0.49)
    low, high = common_tangent(RedlichKister(temperature=1.0, interaction=(omega,), boltzmann=1.0))
    assert low == pytest.approx(c_b, rel=1e-8) and high == pytest.approx(1 - c_b, rel=1e-8)


def test_common_tangent_refuses_a_convex_free_energy() -> None:
    with pytest.raises(DataError, match="no miscibility gap"):
        common_tangent(RedlichKister(temperature=1.0, interaction=(1.5,), boltzmann=1.0))


def test_fit_recovers_coefficients_and_guards_range() -> None:
    rng = np.random.default_rng(0)
    c = rng.uniform(0.05, 0.95, 60)
    t = rng.choice([600.0, 900.0], 60)
    truth = [RedlichKister(temperature=tk, interaction=(0.1 + 1e-4 * tk, -0.03, 0.02), reference=-0.9 + 2e-5 * tk)
             for tk in t]
    mu = np.array([m.chemical_potential(ci) for m, ci in zip(truth, c)])
    fit = fit_redlich_kister(c, t, mu, order=3)
    assert fit.rmse < 1e-10
    model = fit.at(750.0)
    assert model.interaction[0] == pytest.approx(0.1 + 0.075, rel=1e-8)
    assert model.reference == pytest.approx(-0.9 + 0.015, rel=1e-8)
    with pytest.raises(DataError, match="outside the sampled range"):
        fit.at(1200.0)
    with pytest.raises(DataError, match="leave the range"):
        model.check_range(0.01, 0.5)
    with pytest.raises(DataError, match=r"must lie in \(0, 1\)"):
        fit_redlich_kister(np.array([0.0, 0.5]), np.array([600.0, 600.0]), np.array([0.0, 0.0]))
    with pytest.raises(ConfigError):
        from scalelink.mesoscale.phasefield import CahnHilliard

        CahnHilliard(_line(4), model, kappa=-1.0, mobility=1.0)
