"""Vacancy kMC: the tracer correlation factor of fcc (0.7815, Compaan & Haven 1956), the
residence-time clock, Arrhenius diffusion with the NEB barrier, and environment-dependent barriers
in a dilute alloy that equal a direct NEB on the kMC's own crystal."""

from __future__ import annotations

import numpy as np
import pytest

from scalelink.bridge.errors import ConfigError, DataError
from scalelink.mesoscale.free_energy import BOLTZMANN_EV
from scalelink.mesoscale.kmc import NEIGHBOURS, EnvironmentBarriers, FCCLattice, VacancyKMC, jump_environment

F_FCC = 0.78145  # tracer correlation factor of one vacancy in fcc


def test_fcc_lattice_neighbours_are_first_neighbours() -> None:
    lat = FCCLattice(3, 3.6)
    assert lat.size == 108
    d = lat.positions[lat.neighbours] - lat.positions[:, None, :]
    d = d - 6 * np.round(d / 6)
    assert np.allclose((d**2).sum(-1), 2)  # |(1,1,0)|² in a/2 units
    assert all(len(set(row)) == 12 for row in lat.neighbours)
    with pytest.raises(ConfigError):
        FCCLattice(1)


def test_tracer_correlation_factor_of_fcc() -> None:
    lat = FCCLattice(6, 3.615)
    kmc = VacancyKMC(lat, temperature=800.0, barriers=0.65, replicas=300, seed=4)
    result = kmc.run(2000)
    per_replica = result.tracer_msd_sum / (result.jumps * lat.nn_distance**2)
    error = per_replica.std() / np.sqrt(per_replica.size)
    assert error < 0.002
    assert result.correlation_factor == pytest.approx(F_FCC, rel=0.01)


def test_residence_time_clock() -> None:
    # all 12 jumps at rate Γ: the waiting time is exponential with mean 1/(12Γ), the vacancy walk
    # is uncorrelated, so <R_v²> = 12 Γ t d²
    lat = FCCLattice(3, 3.615)
    temperature, barrier, nu = 700.0, 0.6, 1e13
    gamma = nu * np.exp(-barrier / (BOLTZMANN_EV * temperature))
    kmc = VacancyKMC(lat, temperature=temperature, barriers=barrier, attempt_frequency=nu, replicas=2000, seed=2)
    steps = 50
    result = kmc.run(steps)
    mean_time = steps / (12 * gamma)
    assert result.time.mean() == pytest.approx(mean_time, rel=4 / np.sqrt(steps * 2000))
    # a sum of `steps` exponentials: relative variance 1/steps
    assert result.time.std() / result.time.mean() == pytest.approx(1 / np.sqrt(steps), rel=0.1)
    ratio = result.vacancy_msd / (12 * gamma * lat.nn_distance**2 * result.time)
    assert ratio.mean() == pytest.approx(1.0, abs=4 * ratio.std() / np.sqrt(ratio.size))


def test_environment_keys_follow_the_jump_symmetry() -> None:
    offsets, rotations, permutations = jump_environment()
    assert len(offsets) == 18 and len(permutations) == 4
    assert np.array_equal(np.einsum("jab,b->ja", rotations, [1, 1, 0]), NEIGHBOURS)
    calls = []
    model = EnvironmentBarriers(lambda j, env: calls.append((j, env.copy())) or 0.5 + 0.1 * j)
    # a solute on one of two mirror-image sites of the jump: one key, one barrier computation
    env_a, env_b = np.zeros(18, dtype=int), np.zeros(18, dtype=int)
    mirror = {tuple(v): i for i, v in enumerate(offsets)}
    env_a[mirror[(1, 0, 1)]] = 1
    env_b[mirror[(0, 1, 1)]] = 1  # x <-> y swaps the two: the jump [1,1,0] is unchanged
    assert model.key(0, env_a) == model.key(0, env_b)
    assert model.key(0, env_a) != model.key(0, np.zeros(18, dtype=int))


def test_species_shape_is_checked() -> None:
    with pytest.raises(DataError, match="species must have shape"):
        VacancyKMC(FCCLattice(2), temperature=500.0, barriers=0.6, species=np.zeros(5))
