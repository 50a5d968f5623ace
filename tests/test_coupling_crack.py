"""The coupled crack (scalelink.coupling.crack, crack_coupled): the slit continuum reproduces the
anisotropic K-field it is given on all its boundaries, the coupled K-test finds the critical K of
the fully atomistic one, and bad input is refused."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mpi4py.MPI as MPI
import numpy as np
import pytest

from scalelink.bridge.errors import ConfigError
from scalelink.coupling.crack import crack_orientation_check
from scalelink.coupling.crack_coupled import CrackGeometry
from scalelink.fe2.tensors import cubic_stiffness, rotate_stiffness

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FRAME = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, -1.0, 0.0]])
FRAME /= np.linalg.norm(FRAME, axis=1)[:, None]
STIFFNESS = rotate_stiffness(cubic_stiffness(1.06, 0.76, 0.47), FRAME)  # copper-like, eV/Å³, crack frame


def _continuum(mesh_size: float):  # noqa: ANN202
    from scalelink.coupling.crack_coupled import CrackContinuum

    g = CrackGeometry(half_width=40.0, free_half_width=20.0, ring=6.0, hole_half_width=10.0, mesh_size=mesh_size,
                      growth=1.0, fit_radius=3.0)
    # stand-in "atoms": a square grid of points; the ring ones are located, the others feed the fits
    s = np.arange(-25.75, 26.0, 0.5)
    xy = np.column_stack([a.ravel() for a in np.meshgrid(s, s, indexing="ij")])
    norm = np.max(np.abs(xy), axis=1)
    ring = norm >= 20.0
    ids = np.arange(1, len(xy) + 1)
    return CrackContinuum(MPI.COMM_WORLD, STIFFNESS, g, ids[ring], xy[ring], ids[~ring], xy[~ring]), xy, ids


@pytest.mark.fenicsx
def test_slit_continuum_reproduces_the_k_field() -> None:
    """K-field data on the outer boundary and the whole hole: the FE solution between them is the
    K-field to discretisation error, which falls like h² (the field is smooth away from the tip);
    the faces of the slit open as the field's do, and the ring atoms' interpolation follows."""
    errors = []
    for h in (2.0, 1.0):
        continuum, xy, ids = _continuum(h)
        k = 0.3
        continuum.set_load(k)
        values = continuum.bc_values.x.array.reshape(-1, 3)
        hole = continuum.constrained[np.max(np.abs(continuum.xy[continuum.constrained]), axis=1) < 39.0]
        values[hole] = k * continuum.field.displacement(continuum._nudged(hole), [0.0, 1.0, 0.0])
        continuum.solve()
        u = continuum.u.x.array.reshape(-1, 3)
        free = np.setdiff1d(np.arange(len(u)), continuum.constrained)
        exact = k * continuum.field.displacement(continuum._nudged(free), [0.0, 1.0, 0.0])
        scale = np.abs(exact).max()
        errors.append(np.abs(u[free] - exact).max() / scale)
        # the slit's two copies of a node on the faces carry their own face's opening
        slit = np.flatnonzero(continuum.side != 0)
        far = slit[continuum.xy[slit, 0] < -15.0]
        upper, lower = far[continuum.side[far] > 0], far[continuum.side[far] < 0]
        order_u, order_l = np.argsort(continuum.xy[upper, 0]), np.argsort(continuum.xy[lower, 0])
        opening = u[upper[order_u], 1] - u[lower[order_l], 1]
        assert np.all(opening > 0.1)
        # ring "atoms" take the FE field interpolated in their cells
        ring_u = continuum.ring_displacements()
        ring_xy = xy[continuum.ring_ids - 1]
        exact_ring = k * continuum.field.displacement(ring_xy, [0.0, 1.0, 0.0])
        assert np.abs(ring_u - exact_ring).max() < 2.0 * errors[-1] * scale + 1e-12
    assert errors[0] < 2e-3, errors
    assert errors[1] < 0.4 * errors[0], errors  # about h²


@pytest.mark.fenicsx
def test_hole_edge_fits_are_exact_for_affine_fields() -> None:
    continuum, xy, ids = _continuum(2.0)
    gradient = np.array([[0.01, -0.02], [0.005, 0.03], [0.002, -0.004]])
    atom_u = xy[continuum.fit_ids - 1] @ gradient.T + np.array([0.1, -0.2, 0.05])
    continuum.update_hole_edge(atom_u, 1.0)
    values = continuum.bc_values.x.array.reshape(-1, 3)[continuum.edge]
    expected = continuum.xy[continuum.edge] @ gradient.T + np.array([0.1, -0.2, 0.05])
    assert np.allclose(values, expected, atol=1e-12)


def test_bad_input() -> None:
    with pytest.raises(ConfigError, match="orthogonal"):
        crack_orientation_check([[1, 1, 0], [0, 1, 1], [1, -1, 0]])
    with pytest.raises(ConfigError, match="left-handed"):
        crack_orientation_check([[1, 1, 0], [0, 0, 1], [-1, 1, 0]])
    with pytest.raises(ConfigError, match="integer"):
        crack_orientation_check([[1.5, 1, 0], [0, 0, 1], [1, -1, 0]])
    with pytest.raises(ConfigError, match="beyond the free atoms"):
        CrackGeometry(half_width=60, free_half_width=20, ring=11, hole_half_width=18, fit_radius=4).validate()
    with pytest.raises(ConfigError, match="enlarge half_width"):
        CrackGeometry(half_width=30, free_half_width=20, ring=11, hole_half_width=10).validate()
    from scalelink.coupling.cauchy_born import Potential
    from scalelink.coupling.crack import KTest

    eam = Potential(("pair_style eam/alloy", "pair_coeff * * Cu_mishin1.eam.alloy Cu"), 5.5, 11.0, 63.546, "Cu")
    orientation = [[1, 1, 0], [0, 0, 1], [1, -1, 0]]
    with pytest.raises(ConfigError, match="no free crystal"):
        KTest(MPI.COMM_SELF, eam, 3.615, STIFFNESS, orientation, radius=20.0)
    with pytest.raises(ConfigError, match="thinner than the potential's reach"):
        KTest(MPI.COMM_SELF, eam, 3.615, STIFFNESS, orientation, radius=60.0, ring=5.0)
    with pytest.raises(ConfigError, match="shape"):
        KTest(MPI.COMM_SELF, eam, 3.615, STIFFNESS, orientation, radius=60.0, shape="disc")


@pytest.mark.lammps
@pytest.mark.fenicsx
@pytest.mark.mpi
@pytest.mark.parametrize(("ranks", "plane"), [(2, "001"), (4, "001"), (2, "111")])
def test_coupled_crack_example_finds_the_critical_k_of_the_fully_atomistic_run(tmp_path: Path, ranks: int,
                                                                                 plane: str) -> None:
    """Acceptance (b) of the 3D coupling, on a small square: the coupled and the fully atomistic
    K-tests, loaded along the same steps, reach the same event at the same K within 5 %: on (001)
    the crack advances (on 1 + 1 and 2 + 2 ranks), on (111) the tip emits a dislocation first."""
    out = tmp_path / "crack.json"
    orientation = {"001": "1 1 0, 0 0 1, 1 -1 0", "111": "1 1 -2, 1 1 1, 1 -1 0"}[plane]
    surface_energy = {"001": "1.345", "111": "1.239"}[plane]
    command = [str(BIN / "mpirun"), "-n", str(ranks), sys.executable, str(ROOT / "examples" / "coupled_crack_3d.py"),
               "--orientation", orientation, "--surface-energy", surface_energy,
               "--half-width", "40", "--free-half-width", "22", "--hole-half-width", "12", "--periods", "2",
               "--k-start", "0.25", "--fine-from", "0.25", "--fine-step", "0.01", "--k-stop", "0.5", "--json", str(out)]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["event_full"] == {"001": "advance", "111": "emission"}[plane]
    assert r["event_coupled"] == r["event_full"]
    assert r["relative_difference"] <= 0.05, (r["k_critical_coupled"], r["k_critical_full"])
    if plane == "001":
        # the crack advances near Griffith's load of the (001) plane (weak lattice trapping in this potential)
        assert 0.8 < r["k_critical_full"] / r["griffith_k"] < 1.3
    else:
        # emission comes well before Griffith's load of the (111) plane
        assert r["k_critical_full"] < 0.9 * r["griffith_k"]


@pytest.mark.lammps
@pytest.mark.fenicsx
@pytest.mark.mpi
def test_a_continuum_that_refuses_its_set_up_stops_every_rank(tmp_path: Path) -> None:
    """Hole-edge nodes with too few atoms within fit_radius: the FE ranks refuse, and the MD ranks
    get the same error instead of waiting for an exchange that never comes."""
    command = [str(BIN / "mpirun"), "-n", "4", sys.executable, str(ROOT / "tests" / "crack_driver.py"), "0.5"]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the ranks' lines may interleave in the shared stdout: find each rank's report anywhere
    reports = re.findall(r"rank (\d): ConfigError: [^\n]*?enlarge fit_radius", proc.stdout)
    assert sorted(reports) == ["0", "1", "2", "3"], proc.stdout
