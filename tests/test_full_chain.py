"""The full-chain example (EMT → GNN → LAMMPS RVE → surrogate → FE²) runs as written with its
quick settings; its FE² stage gives the same answer on 2 ranks as serially.

References from other paths: EMT's elastic constants from second differences of ASE's EMT
energy (the example uses first differences of the stress), the atomistic RVE evaluated by
LAMMPS against the surrogate, and FE² with the RVE itself against FE² with the surrogate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "full_chain.py"
BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.fenicsx, pytest.mark.lammps]


def _run(out: Path, *extra: str, ranks: int = 1) -> dict:
    command = [sys.executable, str(EXAMPLE), "--quick", "--out", str(out), *extra]
    if ranks > 1:
        command = [str(BIN / "mpirun"), "-n", str(ranks), *command]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("full_chain")
    return out, _run(out)


def _emt_constants_from_energy(lattice: float, h: float = 2e-3) -> dict[str, float]:
    """C11, C12, C44 (GPa) of EMT copper from second differences of the energy density."""
    from ase import units
    from ase.build import bulk
    from ase.calculators.emt import EMT

    base = bulk("Cu", "fcc", a=lattice, cubic=True)

    def energy(strain: np.ndarray) -> float:
        atoms = base.copy()
        atoms.set_cell(base.cell[:] @ (np.eye(3) + strain), scale_atoms=True)
        atoms.calc = EMT()
        return atoms.get_potential_energy() / base.get_volume() / units.GPa

    def second(direction: np.ndarray) -> float:
        return (energy(h * direction) - 2 * energy(0 * direction) + energy(-h * direction)) / h**2

    xx, yy = np.diag([1.0, 0, 0]), np.diag([0, 1.0, 0])
    shear = np.zeros((3, 3))
    shear[0, 1] = shear[1, 0] = 0.5  # engineering shear γ = 1
    c11 = second(xx)
    return {"C11": c11, "C12": 0.5 * second(xx + yy) - c11, "C44": second(shear)}


def test_quick_chain(serial: tuple[Path, dict]) -> None:
    out, summary = serial
    steps = summary["steps"]
    rve = steps["3_atomistic_rve"]
    want = _emt_constants_from_energy(rve["lattice_constant_A"]["emt"])
    for key, value in rve["elastic_constants_GPa"]["emt"].items():
        assert value == pytest.approx(want[key], rel=2e-3), key
    # A seconds-long training gives a potential with the right sign and size of its stiffness,
    # not an accurate one.
    gnn = rve["elastic_constants_GPa"]["gnn"]
    assert gnn["C11"] > gnn["C12"] > 0 and gnn["C44"] > 0
    assert steps["4_surrogate"]["held_out_stress_relative_rmse"] < 0.02

    fe2 = steps["5_fe2"]
    # loaded close to the edge of the sampled strain box, never past it
    assert 0.8 < fe2["box_usage"] <= 1.0
    assert fe2["grip_stress_GPa"] > 0
    assert (out / "plate_surrogate_displacement.bp").is_dir()
    # the surrogate where the plate is most and least strained, against LAMMPS
    assert max(steps["6a_pointwise"]["surrogate_error_percent"]) < 3.0
    # FE² with the surrogate against FE² with LAMMPS at every point: far closer than the
    # linear law is, so the comparison resolves the nonlinearity
    coarse = steps["6b_coarse_fe2"]
    assert abs(coarse["grip_stress_error_percent"]) < 0.1 * abs(coarse["linear_vs_atomistic_percent"])
    assert coarse["displacement_error_percent"] < 1.0


def test_grip_stress_is_the_reaction_force() -> None:
    """The example's virtual-work shortcut against the reaction assembled at the grip."""
    import importlib.util

    import mpi4py.MPI as MPI
    import ufl
    from dolfinx import fem, mesh

    from scalelink.fe2 import LinearElastic, cubic_stiffness, mandel_strain, plane_strain

    spec = importlib.util.spec_from_file_location("full_chain", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    plate = example.Plate(MPI.COMM_SELF, (3, 4))
    linear = LinearElastic(plane_strain(cubic_stiffness(170.0, 120.0, 75.0)))
    problem, info = example.solve_plate(plate, linear, 0.05, 1, 0.025)
    V = plate.u.function_space
    internal = fem.assemble_vector(fem.form(ufl.inner(problem.stress, mandel_strain(ufl.TestFunction(V)))
                                            * problem.dx))
    grip = fem.locate_dofs_topological(
        V.sub(0), 1, mesh.locate_entities_boundary(V.mesh, 1, lambda x: np.isclose(x[0], example.SIDE)))
    assert info["grip_stress_GPa"] == pytest.approx(internal.array[grip].sum() / example.SIDE, rel=1e-9)
    # the mapped mesh: a quarter square minus a quarter disc (its polygon)
    assert plate.area == pytest.approx(example.SIDE**2 - np.pi * example.RADIUS**2 / 4, rel=2e-3)


@pytest.mark.mpi
def test_fe2_stage_on_two_ranks_matches_serial(serial: tuple[Path, dict]) -> None:
    out, summary = serial
    parallel = _run(out, "--stage", "fe2", ranks=2)["steps"]
    steps = summary["steps"]
    for key in ("grip_stress_GPa", "box_usage", "grip_displacement_mm"):
        assert parallel["5_fe2"][key] == pytest.approx(steps["5_fe2"][key], rel=1e-7)
    assert parallel["5_fe2"]["points"] == steps["5_fe2"]["points"]
    np.testing.assert_allclose(parallel["6a_pointwise"]["atomistic_stress_GPa"],
                               steps["6a_pointwise"]["atomistic_stress_GPa"], rtol=1e-7, atol=1e-9)
    for method in ("surrogate", "atomistic", "linear"):
        assert parallel["6b_coarse_fe2"][method]["grip_stress_GPa"] == pytest.approx(
            steps["6b_coarse_fe2"][method]["grip_stress_GPa"], rel=1e-7)


def test_sample_micro_atomistic_with_a_pair_style(tmp_path: Path) -> None:
    """``sample-micro --model atomistic`` with LAMMPS' lj/cut against ASE's Lennard-Jones."""
    import ase.io
    from ase import units
    from ase.build import bulk
    from ase.calculators.lj import LennardJones

    from scalelink.fe2.tensors import PLANE_STRAIN_INDICES, mandel_from_tensor, tensor_from_mandel
    from scalelink.cli.main import main

    base = bulk("Cu", "fcc", a=3.6, cubic=True)
    cell, out = tmp_path / "cell.extxyz", tmp_path / "samples.npz"
    ase.io.write(cell, base)
    argv = ["sample-micro", str(out), "--model", "atomistic", "--structure", str(cell), "--strain-size", "3"]
    assert main([*argv, "--pair-style", "lj/cut 6.0", "--pair-coeff", "1 1 0.4 2.3", "--no-relax",
                 "--num-samples", "4", "--strain-range", "0.02"]) == 0
    data = np.load(out)
    index = list(PLANE_STRAIN_INDICES)
    for strain, stress in zip(data["strain"], data["stress"]):
        full = np.zeros(6)
        full[index] = strain
        atoms = base.copy()
        atoms.set_cell(base.cell[:] @ (np.eye(3) + tensor_from_mandel(full)), scale_atoms=True)
        atoms.calc = LennardJones(sigma=2.3, epsilon=0.4, rc=6.0, smooth=False)
        want = mandel_from_tensor(atoms.get_stress(voigt=False) / units.GPa)[index]
        # LAMMPS' metal pressure unit carries an older eV/Å³-to-bar constant than ASE's (1e-7)
        np.testing.assert_allclose(stress, want, rtol=1e-6)
    assert main(argv) == 2  # no interaction given
