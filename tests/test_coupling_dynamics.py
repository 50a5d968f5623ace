"""Dynamic atomistic–continuum coupling of a 1D chain and the Gaussian-process dispersion surrogate.

References: LAMMPS forces (numpy chain), finite-difference LAMMPS force constants (closed-form
harmonic dispersion), held-out lattice frequencies (GP), dolfinx assembly (the α-weighted FE
matrices), the energy of a Hamiltonian run (coupling without damping), and energy bookkeeping of
wave packets (reflection, transmission, absorption).
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.lammps, pytest.mark.fenicsx]


@pytest.fixture(scope="module")
def chain():  # type: ignore[no-untyped-def]
    import mpi4py.MPI  # noqa: F401  (before lammps)

    from scalelink.coupling.lattice import LennardJones2D
    from scalelink.coupling.dispersion import Chain1D

    return Chain1D.zero_stress(LennardJones2D())


@pytest.fixture(scope="module")
def samples(chain):  # type: ignore[no-untyped-def]
    from scalelink.coupling.dispersion import lammps_dispersion_samples

    return lammps_dispersion_samples(chain, 24)


@pytest.fixture(scope="module")
def blend(chain, samples) -> float:  # type: ignore[no-untyped-def]
    from scalelink.coupling.dispersion import GaussianProcess1D, fit_mass_blend

    k, w = samples
    gp = GaussianProcess1D().fit(k, w)
    speed = np.sqrt(chain.modulus() * chain.spacing / chain.mass)
    return fit_mass_blend(gp, 4 * chain.spacing, speed)


def test_numpy_chain_forces_match_lammps(chain) -> None:  # type: ignore[no-untyped-def]
    from scalelink.coupling.dispersion import lammps_chain_forces

    n = 12
    d = 0.08 * np.random.default_rng(3).standard_normal(n)
    reference = lammps_chain_forces(chain, d)
    x = np.arange(n) * chain.spacing + d
    f, _ = chain.forces(np.concatenate([x - n * chain.spacing, x, x + n * chain.spacing]))  # periodic images
    assert np.abs(reference).max() > 0.1
    np.testing.assert_allclose(f[n:2 * n], reference, atol=1e-12)
    # zero-stress spacing: the periodic perfect chain carries no force and the tension vanishes
    s = np.arange(1, chain.shells + 1)
    assert abs(np.sum(s * chain.pair(s * chain.spacing)[1])) < 1e-12


def test_lammps_force_constants_give_the_harmonic_dispersion(chain, samples) -> None:  # type: ignore[no-untyped-def]
    k, w = samples
    assert len(k) == 13 and w[0] < 1e-3
    # central differences with a 1e-4 Å step: O(step²) anharmonic error, measured 2e-6 rad/ps
    np.testing.assert_allclose(w, chain.omega(k), atol=1e-4 * w.max())


def test_gp_reproduces_held_out_lattice_frequencies(samples) -> None:  # type: ignore[no-untyped-def]
    from scalelink.coupling.dispersion import GaussianProcess1D

    k, w = samples
    gp = GaussianProcess1D().fit(k[::2], w[::2])
    mean, std = gp.predict(k[1::2], return_std=True)
    error = np.abs(mean - w[1::2])
    # 7 training points over the zone; measured max error 8e-4 rad/ps of ω_max = 38 rad/ps
    assert error.max() < 1e-3 * w.max()
    assert np.all(error < 5.0 * std + 1e-6 * w.max())
    assert np.isfinite(gp.log_marginal_likelihood())
    worse = GaussianProcess1D().fit(k[::2], w[::2])
    worse.length_scale *= 10.0  # the maximiser must beat a far-off length scale
    assert gp.log_marginal_likelihood() > worse.log_marginal_likelihood()


def test_mass_blend_matches_the_lattice_on_supported_wavenumbers(chain, blend) -> None:  # type: ignore[no-untyped-def]
    from scalelink.coupling.dispersion import fe_dispersion

    h = 4 * chain.spacing
    speed = np.sqrt(chain.modulus() * chain.spacing / chain.mass)
    k = np.linspace(0.05, 0.7, 14) * np.pi / h
    fitted = fe_dispersion(k, h, speed, blend) / chain.omega(k)
    lumped = fe_dispersion(k, h, speed, 0.0) / chain.omega(k)
    assert 0.3 < blend < 0.9  # between lumped (too soft) and consistent (too stiff)
    assert np.abs(fitted - 1.0).max() < 0.03  # measured 0.024
    assert np.abs(lumped - 1.0).max() > 0.1


def test_fe_matrices_match_dolfinx(chain) -> None:  # type: ignore[no-untyped-def]
    import mpi4py.MPI as MPI
    import ufl
    from dolfinx import fem, mesh
    from dolfinx.fem.petsc import assemble_matrix

    from scalelink.coupling.bridging_chain import BridgingChain, WaveConfig

    systems = {beta: BridgingChain(chain, WaveConfig(0.3 / chain.spacing, mass_blend=beta)) for beta in (0.0, 1.0)}
    s = systems[1.0]
    nodes = s.nodes
    domain = mesh.create_interval(MPI.COMM_SELF, len(nodes) - 1, [nodes[0], nodes[-1]])
    V = fem.functionspace(domain, ("Lagrange", 1))
    alpha = fem.Function(V)
    alpha.interpolate(lambda x: s.alpha(x[0]))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    rho = chain.mass / chain.spacing

    def dense(form: ufl.Form) -> np.ndarray:
        a = assemble_matrix(fem.form(form))
        a.assemble()
        order = np.argsort(V.tabulate_dof_coordinates()[:, 0])[:-1]  # drop the held last node
        return a.convert("dense").getDenseArray()[np.ix_(order, order)]

    stiffness = dense(chain.modulus() * alpha * u.dx(0) * v.dx(0) * ufl.dx)
    mass = dense(rho * alpha * u * v * ufl.dx)
    scale = np.abs(stiffness).max()
    np.testing.assert_allclose(s.K_fe.toarray(), stiffness, atol=1e-12 * scale)
    np.testing.assert_allclose(s.M_fe.toarray(), mass, atol=1e-12 * np.abs(mass).max())
    # lumped: row sums of the full consistent mass (the held node's column included)
    full = assemble_matrix(fem.form(rho * alpha * u * v * ufl.dx))
    full.assemble()
    order = np.argsort(V.tabulate_dof_coordinates()[:, 0])[:-1]
    lumped = full.convert("dense").getDenseArray().sum(axis=1)[order]
    np.testing.assert_allclose(systems[0.0].M_fe.diagonal(), lumped, atol=1e-12 * lumped.max())


def test_coupled_system_conserves_energy_without_damping(chain) -> None:  # type: ignore[no-untyped-def]
    from scalelink.coupling.bridging_chain import BridgingChain, WaveConfig

    r = BridgingChain(chain, WaveConfig(0.3 / chain.spacing, fine_damping=0.0, mass_blend=0.5)).run()
    # velocity Verlet + exact velocity projection: bounded O(dt²) energy error, measured 1.6e-6 of the packet energy
    assert r.energy_error < 1e-4
    assert abs(r.absorbed) < 1e-4
    assert r.reflected + r.transmitted > 0.999  # nothing left in the handshake
    halved = BridgingChain(chain, WaveConfig(0.3 / chain.spacing, fine_damping=0.0, mass_blend=0.5,
                                             time_step_fraction=0.1)).run()
    assert 2.5 < r.energy_error / halved.energy_error < 5.5  # second order in the time step


def test_low_wavenumber_packet_is_transmitted(chain, blend) -> None:  # type: ignore[no-untyped-def]
    from scalelink.coupling.bridging_chain import BridgingChain, WaveConfig

    r = BridgingChain(chain, WaveConfig(0.3 / chain.spacing, mass_blend=blend)).run()
    assert r.reflected < 1e-3  # measured 3.4e-5
    assert r.transmitted > 0.99  # measured 0.995 (0.5 % absorbed: P1 interpolation error counts as fine scale)


def test_surrogate_removes_the_mid_wavenumber_reflection(chain, blend) -> None:  # type: ignore[no-untyped-def]
    from scalelink.coupling.bridging_chain import BridgingChain, WaveConfig

    k = 0.5 / chain.spacing  # kh = 2.0, inside the mesh's band (π)
    with_gp = BridgingChain(chain, WaveConfig(k, mass_blend=blend)).run()
    lumped = BridgingChain(chain, WaveConfig(k, mass_blend=0.0)).run()
    assert with_gp.reflected < 1e-2
    assert lumped.reflected > 0.1


def test_unsupported_packet_is_absorbed_not_reflected(chain, blend) -> None:  # type: ignore[no-untyped-def]
    from scalelink.coupling.bridging_chain import BridgingChain, WaveConfig

    k = 1.5 / chain.spacing  # kh = 6.0 > π: the mesh cannot carry it
    damped = BridgingChain(chain, WaveConfig(k, mass_blend=blend)).run()
    assert damped.reflected < 1e-2
    assert damped.absorbed > 0.98
    assert damped.transmitted < 1e-3
    bare = BridgingChain(chain, WaveConfig(k, mass_blend=blend, fine_damping=0.0)).run()
    assert bare.reflected > 0.9
