"""The FE² macro solver: against plain dolfinx elasticity, closed-form J2 responses, Newton's
quadratic convergence, and the same J2 run on 1 and 2 MPI ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mpi4py.MPI as MPI  # noqa: I001
import numpy as np
import pytest

dolfinx = pytest.importorskip("dolfinx")
import dolfinx.fem.petsc  # noqa: E402
import ufl  # noqa: E402
from dolfinx import fem, mesh  # noqa: E402

from scalelink.bridge.errors import ConfigError  # noqa: E402
from scalelink.fe2.macro import FE2Problem, FE2SolveError  # noqa: E402
from scalelink.fe2.macro_io import FE2Writer  # noqa: E402
from scalelink.fe2.materials import J2Plasticity, StiffeningElastic  # noqa: E402
from scalelink.fe2.micro import LinearElastic, MicroModel  # noqa: E402
from scalelink.fe2.tensors import isotropic_stiffness  # noqa: E402

pytestmark = pytest.mark.fenicsx

E, NU, SIGMA_Y, H = 200.0, 0.3, 0.25, 10.0
LU = {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}
DRIVER = Path(__file__).with_name("fe2_macro_driver.py")


class Counting(MicroModel):
    """Wraps a micro model and records the batch size of every call."""

    def __init__(self, inner: MicroModel, *, elastic_tangent: bool = False) -> None:
        self.inner, self.strain_size, self.has_state = inner, inner.strain_size, inner.has_state
        self.calls: list[int] = []
        self.elastic = isotropic_stiffness(young=E, poisson=NU, strain_size=inner.strain_size)
        self.elastic_tangent = elastic_tangent

    def setup(self, num_points: int) -> None:
        self.inner.setup(num_points)

    def evaluate(self, strain, *, time_step=0.0):
        self.calls.append(strain.shape[0])
        stress, tangent = self.inner.evaluate(strain, time_step=time_step)
        if self.elastic_tangent:
            tangent = np.broadcast_to(self.elastic, tangent.shape).copy()
        return stress, tangent

    def commit(self) -> None:
        self.inner.commit()


def _cantilever(dim: int, degree: int):
    """A bar clamped at x = 0, loaded by gravity and an end traction: (u, bcs, f, tractions)."""
    if dim == 2:
        msh = mesh.create_rectangle(MPI.COMM_WORLD, [[0.0, 0.0], [2.0, 1.0]], [8, 4])
        f_value, t_value = [0.0, -0.5], [0.1, -0.3]
    else:
        msh = mesh.create_box(MPI.COMM_WORLD, [[0.0, 0.0, 0.0], [2.0, 1.0, 1.0]], [4, 2, 2])
        f_value, t_value = [0.0, 0.0, -0.5], [0.1, -0.3, 0.2]
    space = fem.functionspace(msh, ("Lagrange", degree, (dim,)))
    clamped = fem.locate_dofs_geometrical(space, lambda x: np.isclose(x[0], 0.0))
    bcs = [fem.dirichletbc(np.zeros(dim), clamped, space)]
    facets = mesh.locate_entities_boundary(msh, dim - 1, lambda x: np.isclose(x[0], 2.0))
    tags = mesh.meshtags(msh, dim - 1, facets, np.full(facets.size, 1, dtype=np.int32))
    ds = ufl.Measure("ds", domain=msh, subdomain_data=tags)
    f, t = fem.Constant(msh, np.array(f_value)), fem.Constant(msh, np.array(t_value))
    return fem.Function(space), bcs, f, ((t, ds(1)),)


@pytest.mark.parametrize(("dim", "degree"), [(2, 2), (3, 1)])
def test_linear_elastic_micro_reproduces_dolfinx_elasticity(dim: int, degree: int) -> None:
    u, bcs, f, tractions = _cantilever(dim, degree)
    stiffness = isotropic_stiffness(young=E, poisson=NU, strain_size=3 * (dim - 1))
    micro = Counting(LinearElastic(stiffness))
    problem = FE2Problem(u, micro, bcs=bcs, body_force=f, tractions=tractions)
    result = problem.solve()
    assert result.converged and result.iterations == 1
    # One batched micro call per residual evaluation, with every owned quadrature point.
    assert micro.calls == [problem.num_points] * 2
    cells = u.function_space.mesh.topology.index_map(dim).size_local
    assert problem.num_points == cells * (3 if degree == 2 else 1)

    lam, mu = E * NU / ((1 + NU) * (1 - 2 * NU)), E / (2 * (1 + NU))
    w, v = ufl.TrialFunction(u.function_space), ufl.TestFunction(u.function_space)
    eps = ufl.sym(ufl.grad(w))
    sigma = 2 * mu * eps + lam * ufl.tr(eps) * ufl.Identity(dim)
    a = ufl.inner(sigma, ufl.sym(ufl.grad(v))) * ufl.dx
    (t, ds), = tractions
    rhs = ufl.inner(f, v) * ufl.dx + ufl.inner(t, v) * ds
    reference = dolfinx.fem.petsc.LinearProblem(
        a, rhs, bcs=bcs, petsc_options=LU, petsc_options_prefix=f"reference{dim}_"
    ).solve()
    ref = reference.x.array
    assert np.abs(ref).max() > 1e-3
    np.testing.assert_allclose(u.x.array, ref, rtol=0, atol=1e-10 * np.abs(ref).max())


def _quadratic(norms: list[float], *, constant: float = 50.0) -> bool:
    """``e_{k+1} ≤ C e_k²`` for relative residuals in the asymptotic phase, above round-off."""
    e = np.asarray(norms) / norms[0]
    pairs = [(a, b) for a, b in zip(e[:-1], e[1:]) if a <= 1e-3 and b >= 1e-13]
    return bool(pairs) and all(b <= constant * a * a for a, b in pairs)


def _bent_bar(micro: MicroModel):
    msh = mesh.create_rectangle(MPI.COMM_WORLD, [[0.0, 0.0], [4.0, 1.0]], [16, 4])
    space = fem.functionspace(msh, ("Lagrange", 1, (2,)))
    left = fem.locate_dofs_geometrical(space, lambda x: np.isclose(x[0], 0.0))
    right = fem.locate_dofs_geometrical(space, lambda x: np.isclose(x[0], 4.0))
    g = fem.Function(space)
    bcs = [fem.dirichletbc(np.zeros(2), left, space), fem.dirichletbc(g, right)]
    return FE2Problem(fem.Function(space), micro, bcs=bcs), g


def _load(g: fem.Function, step: int) -> None:
    g.interpolate(lambda x: np.vstack([0.002 * step + 0 * x[0], -0.02 * step + 0 * x[0]]))


def test_newton_converges_quadratically_with_j2_plasticity() -> None:
    micro = J2Plasticity(strain_size=3, young=E, poisson=NU, yield_stress=SIGMA_Y, hardening=H)
    problem, g = _bent_bar(micro)
    plastic = []
    for step in (1, 2, 3):
        _load(g, step)
        result = problem.solve()
        assert result.iterations <= 6 and _quadratic(result.residual_norms), result
        problem.commit()
        plastic.append(np.count_nonzero(micro.equivalent_plastic_strain))
    # a genuine elastic-plastic problem: the plastic zone grows but does not fill the bar
    assert 0 < plastic[0] < plastic[1] < plastic[2] < problem.num_points


def test_quadratic_check_fails_with_an_elastic_tangent() -> None:
    micro = Counting(
        J2Plasticity(strain_size=3, young=E, poisson=NU, yield_stress=SIGMA_Y, hardening=H),
        elastic_tangent=True,
    )
    problem, g = _bent_bar(micro)
    _load(g, 1)
    result = problem.solve(rtol=1e-9, max_iterations=200)
    assert result.iterations > 10 and not _quadratic(result.residual_norms)


def test_newton_converges_quadratically_with_stiffening_elastic_3d() -> None:
    u, bcs, f, tractions = _cantilever(3, 1)
    micro = StiffeningElastic(
        strain_size=6, bulk=E / (3 * (1 - 2 * NU)), shear=E / (2 * (1 + NU)),
        volumetric_stiffening=2e4, deviatoric_stiffening=5e4,
    )
    (t, _), = tractions
    base = t.value.copy()
    problem = FE2Problem(u, micro, bcs=bcs, body_force=f, tractions=tractions)
    for step in range(1, 5):
        t.value = 2.5 * step * base
        result = problem.solve()
        assert result.iterations <= 8 and _quadratic(result.residual_norms), result
        problem.commit()
    # strains where β·|e|² ≫ 1: the stiffening dominates the response
    assert np.abs(problem.strain.x.array).max() > 1e-2


def test_j2_uniaxial_stress_follows_the_closed_form(tmp_path: Path) -> None:
    msh = mesh.create_unit_cube(MPI.COMM_WORLD, 1, 1, 1)
    space = fem.functionspace(msh, ("Lagrange", 1, (3,)))
    pull = fem.Constant(msh, 0.0)
    bcs = []
    for axis in range(3):
        facets = mesh.locate_entities_boundary(msh, 2, lambda x, a=axis: np.isclose(x[a], 0.0))
        dofs = fem.locate_dofs_topological(space.sub(axis), 2, facets)
        bcs.append(fem.dirichletbc(0.0, dofs, space.sub(axis)))
    end = mesh.locate_entities_boundary(msh, 2, lambda x: np.isclose(x[0], 1.0))
    dofs = fem.locate_dofs_topological(space.sub(0), 2, end)
    bcs.append(fem.dirichletbc(pull, dofs, space.sub(0)))
    micro = J2Plasticity(strain_size=6, young=E, poisson=NU, yield_stress=SIGMA_Y, hardening=H)
    problem = FE2Problem(fem.Function(space), micro, bcs=bcs)
    yield_strain = SIGMA_Y / E
    path = [0.5, 1.5, 3.0, 5.0, 4.0]  # load past yield, then unload elastically
    tangent_modulus = E * H / (E + H)
    with FE2Writer(problem, tmp_path / "bar") as writer:
        for k, multiple in enumerate(path):
            pull.value = multiple * yield_strain
            problem.solve()
            problem.commit()
            writer.write(float(k))
            stress, strain = problem.volume_average()
            peak = max(path[: k + 1]) * yield_strain
            peak_stress = min(E * peak, SIGMA_Y + tangent_modulus * (peak - yield_strain))
            expected = peak_stress - E * (peak - strain[0])
            assert strain[0] == pytest.approx(multiple * yield_strain, rel=1e-10)
            assert stress[0] == pytest.approx(expected, rel=1e-8)
            np.testing.assert_allclose(stress[1:], 0.0, atol=1e-10)
            cells, _, _ = problem.cell_averages()
            np.testing.assert_allclose(cells, np.broadcast_to(stress, cells.shape), atol=1e-10)
    assert (tmp_path / "bar_displacement.bp").is_dir() and (tmp_path / "bar_cells.bp").is_dir()
    sigma_xx = writer.cell_stress.x.array.reshape(-1, 3, 3)[:, 0, 0]
    np.testing.assert_allclose(sigma_xx, stress[0], rtol=1e-10)


def test_errors_are_clear() -> None:
    u, bcs, _, tractions = _cantilever(2, 1)
    with pytest.raises(ConfigError, match="strain_size 6 but a 2D mesh needs 3"):
        FE2Problem(u, LinearElastic(isotropic_stiffness(young=E, poisson=NU)), bcs=bcs)
    elastic = LinearElastic(isotropic_stiffness(young=E, poisson=NU, strain_size=3))
    with pytest.raises(ConfigError, match="pair"):
        FE2Problem(u, elastic, bcs=bcs, tractions=[tractions[0][0]])
    with pytest.raises(ConfigError, match="quadrature_degree"):
        FE2Problem(u, elastic, bcs=bcs, quadrature_degree=-1)
    problem = FE2Problem(u, elastic, bcs=bcs)
    with pytest.raises(FE2SolveError, match="commit"):
        problem.commit()
    micro = J2Plasticity(strain_size=3, young=E, poisson=NU, yield_stress=SIGMA_Y, hardening=H)
    problem, g = _bent_bar(micro)
    _load(g, 2)
    with pytest.raises(FE2SolveError, match=r"did not converge in 2 iterations.*residual norms"):
        problem.solve(max_iterations=2)


@pytest.mark.mpi
def test_two_ranks_match_serial_j2(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = {}
    for ranks in (1, 2):
        out = tmp_path / f"run{ranks}.json"
        command = [sys.executable, str(DRIVER), str(out)]
        if ranks > 1:
            command = ["mpirun", "-n", str(ranks), *command]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        runs[ranks] = json.loads(out.read_text())
    serial, parallel = runs[1], runs[2]
    assert serial["plastic_points"][-1] > 0
    assert serial["plastic_points"] == parallel["plastic_points"]
    for key in ("stress", "strain", "l2", "points"):
        want = np.asarray(serial[key])
        np.testing.assert_allclose(parallel[key], want, rtol=0, atol=1e-9 * np.abs(want).max())
    for h1, h2 in zip(serial["histories"], parallel["histories"]):
        assert len(h1) == len(h2)
        np.testing.assert_allclose(h2[:-1], h1[:-1], rtol=1e-6)


@pytest.mark.mpi
def test_failures_raise_on_every_rank(tmp_path: Path) -> None:
    out = tmp_path / "fail.json"
    command = ["mpirun", "-n", "2", sys.executable, str(DRIVER), str(out), "--fail"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    first, last = (json.loads(Path(f"{out}.{rank}").read_text()) for rank in (0, 1))
    # every rank raises the same FE2SolveError, carrying the failing rank's message
    assert first[0] == last[0] == (
        "FE2SolveError: micro model FailsOnLastRank failed on MPI rank 1 of 2: "
        "ScaleLinkError: deliberate micro-model failure"
    )
    assert first[1] == last[1]
    assert first[1].startswith("FE2SolveError: Newton did not converge in 2")


@pytest.mark.mpi
def test_halving_the_load_step_after_a_micro_failure_on_one_rank(tmp_path: Path) -> None:
    """A plain exception on one rank becomes FE2SolveError on all: the documented recovery
    (catch it, halve the step) continues on every rank instead of hanging."""
    out = tmp_path / "halve.json"
    command = ["mpirun", "-n", "2", sys.executable, str(DRIVER), str(out), "--halve"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=150, env=env)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the ranks hung after a micro-model failure on one rank: {str(exc.stderr)[-2000:]}")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    first, last = (json.loads(Path(f"{out}.{rank}").read_text()) for rank in (0, 1))
    assert first == last
    assert first[0][0] == 2.0 and first[0][1].startswith(
        "FE2SolveError: micro model LimitedIncrement failed on MPI rank 1 of 2: RuntimeError: return mapping "
        "did not converge"
    )
    assert [trial for trial, outcome in first if outcome == "converged"][-1] == 2.0
