"""The data-driven solver: against the classical linear-elastic FE solution (plain dolfinx),
brute-force nearest states, the same run on 1 and 2 MPI ranks, and its input checks."""

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
from dolfinx import fem  # noqa: E402

from datadriven_driver import (  # noqa: E402
    PLATE_STRAINS, POISSON, YOUNG, classical_solution, errors, mandel_stress, problem)
from scalelink.bridge.errors import ConfigError, DataError  # noqa: E402
from scalelink.datadriven import (  # noqa: E402
    DataDrivenProblem, DataDrivenSolveError, MaterialDatabase, StateSearch, database_from_samples, fit_stiffness,
    linear_elastic_database, load_database)
from scalelink.fe2.macro import mandel_strain  # noqa: E402
from scalelink.fe2.sampling import SamplingSpec  # noqa: E402
from scalelink.fe2.tensors import isotropic_stiffness  # noqa: E402

pytestmark = pytest.mark.fenicsx

DRIVER = Path(__file__).with_name("datadriven_driver.py")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
LAW = isotropic_stiffness(young=YOUNG, poisson=POISSON, strain_size=3)


@pytest.fixture(scope="module")
def plate():  # type: ignore[no-untyped-def]
    """The 16 × 8 plate and its classical solution."""
    V, bcs, gravity, tractions = problem(MPI.COMM_WORLD, 8)
    return V, bcs, gravity, tractions, classical_solution(V, bcs, gravity, tractions)


def _solve(plate, data, **kwargs):  # type: ignore[no-untyped-def]
    V, bcs, gravity, tractions, reference = plate
    dd = DataDrivenProblem(fem.Function(V), data, bcs=bcs, body_force=gravity, tractions=tractions, **kwargs)
    result = dd.solve()
    return dd, result, errors(dd, reference)


def test_grid_data_converge_at_first_order_in_the_spacing(plate) -> None:  # type: ignore[no-untyped-def]
    spacings = np.array([4e-3, 2e-3, 1e-3, 5e-4])
    found = []
    for h in spacings:
        data = linear_elastic_database(LAW, spacing=h, strain_range=PLATE_STRAINS)
        _, result, (u_error, s_error) = _solve(plate, data)
        found.append((u_error, s_error, result.mean_distance))
    u_errors, s_errors, distances = np.array(found).T
    slope = {name: np.polyfit(np.log(spacings), np.log(values), 1)[0]
             for name, values in (("u", u_errors), ("stress", s_errors), ("distance", distances))}
    # Measured on this problem: stress 0.83 to 0.91, displacement 1.3 to 1.6 (error cancellation
    # in the integrated field), distance 1.0, over grid offsets of a fraction of h.
    assert 0.7 < slope["stress"] < 1.3, (slope, s_errors)
    assert 0.9 < slope["u"] < 2.0, (slope, u_errors)
    assert 0.9 < slope["distance"] < 1.1, (slope, distances)
    assert s_errors[-1] < 0.03


def test_dense_grid_recovers_the_classical_solution(plate) -> None:  # type: ignore[no-untyped-def]
    data = linear_elastic_database(LAW, spacing=2.5e-4, strain_range=PLATE_STRAINS)
    assert len(data) > 100_000
    dd, result, (u_error, s_error) = _solve(plate, data)
    assert u_error < 5e-3 and s_error < 0.02, (u_error, s_error)
    assert result.max_distance < 2.5e-4 * np.sqrt(np.linalg.eigvalsh(LAW).max())


def test_data_holding_the_classical_states_give_the_classical_solution(plate) -> None:  # type: ignore[no-untyped-def]
    """Add the classical solution's own states to a coarse grid: the minimum is then at zero
    distance, and the solver finds it."""
    V, bcs, gravity, tractions, reference = plate
    dd0 = DataDrivenProblem(fem.Function(V), linear_elastic_database(LAW, spacing=4e-3, strain_range=PLATE_STRAINS),
                            bcs=bcs, body_force=gravity, tractions=tractions)
    points = dd0.strain.function_space.element.interpolation_points
    cells = np.arange(V.mesh.topology.index_map(2).size_local, dtype=np.int32)
    strain = fem.Expression(mandel_strain(reference), points).eval(V.mesh, cells).reshape(-1, 3)
    stress = fem.Expression(mandel_stress(reference), points).eval(V.mesh, cells).reshape(-1, 3)
    grid = linear_elastic_database(LAW, spacing=4e-3, strain_range=PLATE_STRAINS)
    data = MaterialDatabase(np.vstack([grid.strain, strain]), np.vstack([grid.stress, stress]))
    dd, result, (u_error, s_error) = _solve(plate, data)
    assert u_error < 1e-10 and s_error < 1e-10
    assert result.max_distance < 1e-10


def test_the_distance_shows_where_data_are_missing(plate) -> None:  # type: ignore[no-untyped-def]
    """Data cut off below ε_xx = 0.0072: the points whose classical strain lies well below are
    far from the data, those well inside are near."""
    V, bcs, gravity, tractions, reference = plate
    bounds = PLATE_STRAINS.copy()
    bounds[0, 0] = 0.0072
    dd, result, _ = _solve(plate, linear_elastic_database(LAW, spacing=2.5e-4, strain_range=bounds))
    points = dd.strain.function_space.element.interpolation_points
    cells = np.arange(V.mesh.topology.index_map(2).size_local, dtype=np.int32)
    exx = fem.Expression(mandel_strain(reference), points).eval(V.mesh, cells).reshape(-1, 3)[:, 0]
    d = dd.distances()
    outside, inside = exx < 0.0068, exx > 0.0073
    assert outside.sum() >= 10 and inside.sum() >= 100
    assert d[outside].min() > 2.0 * np.median(d[inside]), (d[outside], np.median(d[inside]))
    assert result.max_distance == pytest.approx(d.max())


def test_search_matches_the_distance_computed_point_by_point() -> None:
    rng = np.random.default_rng(0)
    data = MaterialDatabase(rng.normal(size=(500, 6)), rng.normal(size=(500, 6)) * 50.0)
    c = isotropic_stiffness(young=70.0, poisson=0.2) + np.diag(rng.uniform(0, 10, 6))
    strain, stress = rng.normal(size=(40, 6)), rng.normal(size=(40, 6)) * 50.0
    index, distance = StateSearch(data, c).nearest(strain, stress)
    de = strain[:, None, :] - data.strain[None]
    ds = stress[:, None, :] - data.stress[None]
    brute = 0.5 * np.einsum("pni,ij,pnj->pn", de, c, de) + 0.5 * np.einsum(
        "pni,ij,pnj->pn", ds, np.linalg.inv(c), ds)
    np.testing.assert_array_equal(index, brute.argmin(axis=1))
    np.testing.assert_allclose(distance, np.sqrt(brute.min(axis=1)), rtol=1e-10)


def test_fitted_stiffness_of_linear_data_is_the_law() -> None:
    data = linear_elastic_database(LAW, spacing=2e-3, strain_range=0.004, noise=0.0)
    np.testing.assert_allclose(fit_stiffness(data), LAW, rtol=1e-10, atol=1e-9)


@pytest.mark.mpi
def test_block_in_3d_and_noisy_plate_are_the_same_on_one_and_two_ranks(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    runs = {}
    for ranks in (1, 2):
        out = tmp_path / f"run{ranks}.json"
        command = [sys.executable, str(DRIVER), str(out)]
        if ranks > 1:
            command = ["mpirun", "-n", str(ranks), *command]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        runs[ranks] = json.loads(out.read_text())
    for case in ("plate", "block"):
        serial, parallel = runs[1][case], runs[2][case]
        assert serial["iterations"] >= 3  # a real iteration, not the predictor alone
        for key in ("iterations", "changed", "assigned", "num_points"):
            assert serial[key] == parallel[key], (case, key)
        for key in ("objective", "l2", "points", "max_distance", "mean_distance"):
            want = np.asarray(serial[key])
            np.testing.assert_allclose(parallel[key], want, rtol=1e-9, atol=1e-12, err_msg=f"{case} {key}")
    # Noisy (0.2 %) plate data at h = 5e-4 and a coarse 3D grid (h = 1e-3) stay near the
    # classical solution.
    assert runs[1]["plate"]["stress_error"] < 0.04
    assert runs[1]["block"]["stress_error"] < 0.12


# --- databases and their checks ---------------------------------------------------------------


def test_files_of_every_kind_give_the_same_states(tmp_path: Path) -> None:
    data = linear_elastic_database(LAW, spacing=2e-3, strain_range=0.002)
    data.save(tmp_path / "db.npz")
    np.savetxt(tmp_path / "db.csv", np.hstack([data.strain, data.stress]), delimiter=",",
               header="exx,eyy,sqrt2_exy,sxx,syy,sqrt2_sxy", comments="")
    voigt = np.hstack([data.strain, data.stress])
    voigt[:, 2] *= np.sqrt(2.0)  # γ_xy = 2ε_xy
    voigt[:, 5] /= np.sqrt(2.0)  # σ_xy
    np.savetxt(tmp_path / "voigt.csv", voigt, delimiter=",")
    for path, convention in (("db.npz", "mandel"), ("db.csv", "mandel"), ("voigt.csv", "voigt")):
        read = load_database(tmp_path / path, convention=convention)
        np.testing.assert_allclose(read.strain, data.strain, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(read.stress, data.stress, rtol=1e-12, atol=1e-12)


def test_sample_micro_files_are_databases(tmp_path: Path) -> None:
    spec = SamplingSpec(model="linear_elastic", young=YOUNG, poisson=POISSON, num_samples=50, strain_range=0.01)
    samples = spec.sample()
    samples.save(tmp_path / "samples.npz")
    read = load_database(tmp_path / "samples.npz")
    np.testing.assert_array_equal(read.strain, samples.strain)
    np.testing.assert_allclose(read.stress, samples.strain @ LAW.T, rtol=1e-12, atol=1e-12)
    assert len(database_from_samples(samples)) == 50


def test_bad_databases_are_refused_with_the_file_and_value(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty"):
        MaterialDatabase(np.zeros((0, 3)), np.zeros((0, 3)))
    with pytest.raises(DataError, match=r"stress \(4, 6\) does not match strain \(4, 3\)"):
        MaterialDatabase(np.zeros((4, 3)), np.zeros((4, 6)))
    with pytest.raises(DataError, match="4 components"):
        MaterialDatabase(np.zeros((4, 4)), np.zeros((4, 4)))
    bad = np.zeros((5, 6))
    bad[3, 4] = np.nan
    np.savetxt(tmp_path / "bad.csv", bad, delimiter=",")
    with pytest.raises(DataError, match=r"bad\.csv.*stress is not finite at state 3 \(counting from 0\), component 1: nan"):
        load_database(tmp_path / "bad.csv")
    np.savetxt(tmp_path / "cols.csv", np.zeros((5, 7)), delimiter=",")
    with pytest.raises(DataError, match=r"cols\.csv' has 7 columns"):
        load_database(tmp_path / "cols.csv")
    (tmp_path / "empty.csv").write_text("exx,eyy,exy,sxx,syy,sxy\n")
    with pytest.raises(DataError, match="empty"):
        load_database(tmp_path / "empty.csv")
    np.savez(tmp_path / "nostress.npz", strain=np.zeros((3, 3)))
    with pytest.raises(DataError, match=r"nostress\.npz' lacks the arrays \['stress'\]"):
        load_database(tmp_path / "nostress.npz")
    with pytest.raises(DataError, match="does not exist"):
        load_database(tmp_path / "missing.npz")


def test_bad_stiffness_and_mismatched_sizes_are_refused(plate) -> None:  # type: ignore[no-untyped-def]
    V, bcs, gravity, tractions, _ = plate
    data = linear_elastic_database(LAW, spacing=2e-3, strain_range=0.002)
    indefinite = LAW.copy()
    indefinite[2, 2] = -1.0
    with pytest.raises(ConfigError, match="not positive definite"):
        DataDrivenProblem(fem.Function(V), data, stiffness=indefinite, bcs=bcs)
    with pytest.raises(ConfigError, match=r"shape \(6, 6\).*strain size 3"):
        DataDrivenProblem(fem.Function(V), data, stiffness=np.eye(6), bcs=bcs)
    data3d = linear_elastic_database(isotropic_stiffness(young=1.0, poisson=0.2), spacing=1.0, strain_range=1.0)
    with pytest.raises(ConfigError, match="strain size 6 but a 2D mesh needs 3"):
        DataDrivenProblem(fem.Function(V), data3d, bcs=bcs)
    with pytest.raises(DataDrivenSolveError, match="still changed after 1 iterations"):
        DataDrivenProblem(fem.Function(V), data, bcs=bcs, body_force=gravity, tractions=tractions).solve(max_iterations=1)
    line = MaterialDatabase(np.outer(np.linspace(0, 1, 9), [1.0, 0.0, 0.0]), np.zeros((9, 3)))
    with pytest.raises(ConfigError, match="do not span"):
        DataDrivenProblem(fem.Function(V), line, bcs=bcs)


# --- the example ------------------------------------------------------------------------------


def _example(out: Path, ranks: int) -> dict:
    command = [sys.executable, str(EXAMPLES / "datadriven_plate.py"), "--quick", "--out", str(out)]
    if ranks > 1:
        command = [str(Path(sys.executable).parent / "mpirun"), "-n", str(ranks), *command]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


@pytest.mark.mpi
def test_datadriven_plate_example_agrees_with_fe2_on_one_and_two_ranks(tmp_path: Path) -> None:
    """RVE-sampled database against FE² on the same RVE (quick settings: 3,000 Latin-hypercube
    states, two enrichment rounds where the distance to the data is largest)."""
    serial, parallel = _example(tmp_path / "s", 1), _example(tmp_path / "p", 2)
    first, last = serial["data_driven"][0], serial["data_driven"][-1]
    assert first["stress_error"] < 0.05 and first["displacement_error"] < 0.02
    assert last["stress_error"] < 0.02 and last["displacement_error"] < 0.02
    assert last["mean_distance"] < first["mean_distance"]
    for a, b in zip(serial["data_driven"], parallel["data_driven"]):
        assert a["iterations"] == b["iterations"] and a["states"] == b["states"]
        for key in ("stress", "displacement"):
            np.testing.assert_allclose(b[key], a[key], rtol=1e-8, atol=1e-12)
