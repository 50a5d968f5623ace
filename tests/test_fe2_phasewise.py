"""Phase-wise micro models and the layout of quadrature points.

The reference is closed form: a bar of two phases in series under an end load carries the same
stress in both (a uniaxial-stress state in 3D), and the end displacement is the sum of the
phases' compliances.
"""

from __future__ import annotations

import mpi4py.MPI as MPI  # noqa: I001
import numpy as np
import pytest
from dolfinx import fem, mesh

from scalelink.bridge.errors import ConfigError
from scalelink.fe2 import (
    FE2Problem,
    J2Plasticity,
    LinearElastic,
    Phasewise,
    isotropic_stiffness,
    quadrature_points,
)

pytestmark = pytest.mark.fenicsx


def _phases(strain_size: int) -> dict[int, LinearElastic]:
    return {
        0: LinearElastic(isotropic_stiffness(young=1.0, poisson=0.0, strain_size=strain_size)),
        1: LinearElastic(isotropic_stiffness(young=4.0, poisson=0.0, strain_size=strain_size)),
    }


@pytest.mark.parametrize("degree", [1, 2])
def test_points_follow_the_batch_order(degree: int) -> None:
    msh = mesh.create_unit_square(MPI.COMM_WORLD, 5, 3)
    u = fem.Function(fem.functionspace(msh, ("Lagrange", degree, (2,))))
    x = quadrature_points(u)
    ids = (x[:, 0] > 0.5).astype(int)
    problem = FE2Problem(u, Phasewise(_phases(3), ids))
    np.testing.assert_allclose(problem.quadrature_points(), x)
    # The linear field u = (x, 0) has ε_xx = 1: the stress reveals which phase answered.
    u.interpolate(lambda X: np.vstack([X[0], np.zeros_like(X[0])]))
    problem.solve(max_iterations=1, rtol=1e300)
    stress = problem.stress.x.array.reshape(-1, 3)[: problem.num_points]
    cell_stress = problem.cell_averages()[0]
    assert cell_stress.shape[0] == msh.topology.index_map(2).size_local
    assert problem.num_points == ids.size
    assert set(np.round(np.unique(stress[:, 0]), 12)) <= {1.0, 4.0}


def test_two_phase_bar_in_series() -> None:
    """Phases in series (split at x = 0.4) under uniaxial stress: u(1) = σ (0.4/E₀ + 0.6/E₁)."""
    msh = mesh.create_box(MPI.COMM_WORLD, [[0, 0, 0], [1, 0.2, 0.2]], [10, 2, 2])
    V = fem.functionspace(msh, ("Lagrange", 1, (3,)))
    u = fem.Function(V)
    ids = (quadrature_points(u)[:, 0] > 0.4).astype(int)
    left = fem.locate_dofs_geometrical(V, lambda X: np.isclose(X[0], 0.0))
    right = fem.locate_dofs_geometrical(V, lambda X: np.isclose(X[0], 1.0))
    fixed = fem.Function(V)
    pulled = fem.Function(V)
    end = 0.01
    # Free lateral contraction is irrelevant at ν = 0; the end faces move rigidly.
    pulled.interpolate(lambda X: np.vstack([np.full_like(X[0], end), 0 * X[0], 0 * X[0]]))
    bcs = [fem.dirichletbc(fixed, left), fem.dirichletbc(pulled, right)]
    problem = FE2Problem(u, Phasewise(_phases(6), ids), bcs=bcs)
    assert problem.solve().converged
    sigma = end / (0.4 / 1.0 + 0.6 / 4.0)
    average_stress, _ = problem.volume_average()
    assert average_stress[0] == pytest.approx(sigma, rel=1e-8)


def test_state_of_each_phase_is_its_own() -> None:
    plastic = J2Plasticity(strain_size=3, young=1.0, poisson=0.3, yield_stress=1e-3, hardening=0.1)
    elastic = LinearElastic(isotropic_stiffness(young=1.0, poisson=0.3, strain_size=3))
    model = Phasewise({0: elastic, 1: plastic}, np.array([0, 1, 1, 0, 1]))
    model.setup(5)
    stress, _ = model.evaluate(np.tile([0.01, 0.0, 0.0], (5, 1)))
    model.commit()
    assert plastic.equivalent_plastic_strain.shape == (3,)
    assert np.all(plastic.equivalent_plastic_strain > 0)
    np.testing.assert_allclose(stress[[0, 3]], elastic.evaluate(np.tile([0.01, 0, 0], (2, 1)))[0])


def test_errors_name_the_mismatch() -> None:
    with pytest.raises(ConfigError, match="no model"):
        Phasewise(_phases(3), [0, 2])
    model = Phasewise(_phases(3), [0, 1, 1])
    with pytest.raises(ConfigError, match="quadrature_points"):
        model.setup(4)
    with pytest.raises(ConfigError, match="strain sizes"):
        Phasewise({0: _phases(3)[0], 1: _phases(6)[1]}, [0, 1])
