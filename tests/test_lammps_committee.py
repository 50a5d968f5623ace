"""Committees in LAMMPS: pair_style scalelink with a committee file, compute
scalelink/deviation and fix scalelink/collect, against the ASE calculator on the same file.

1 and 2 MPI ranks, newton on and off, orthogonal and triclinic cells, ranks without atoms
(4 ranks), units metal and real, pair_style hybrid/overlay; fix halt on the largest force
deviation; frames written by fix scalelink/collect read back by ASE; clear errors (no hang
under mpirun) for a single model, another pair style, stale values and bad fix arguments.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from lammps_utils import run_driver, write_data
from test_lammps_errors import _error_lines, _run_lmp
from test_lammps_vs_ase import SPECIES, _structure

pytestmark = [pytest.mark.lammps, pytest.mark.mpi]

TOLERANCE = 1e-8
EV_IN_KCAL_PER_MOL = 23.060549


@pytest.fixture(scope="module")
def committee_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Three untrained 2-layer members with seeded weights, as one committee file."""
    from scalelink.training.export import export_committee
    from scalelink.potentials.gnn import GNNPotential

    members = []
    for seed in (4, 5, 6):
        torch.manual_seed(seed)
        members.append(GNNPotential(2, 4.0, 2, 16, 6, avg_num_neighbors=12.0, energy_scale=200.0))
    path = str(tmp_path_factory.mktemp("committee") / "committee.pt")
    export_committee(members, SPECIES, path)
    return path


def _ase(atoms, model: str) -> dict:
    from scalelink.bridge.ase import ScaleLinkCalculator

    atoms = atoms.copy()
    atoms.calc = ScaleLinkCalculator(model)
    atoms.get_potential_energy()
    return dict(atoms.calc.results)


def _close(got, want, tol: float = TOLERANCE) -> None:
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * max(np.abs(want).max(), 1e-12))


def _run(tmp_path: Path, atoms, model: str, *, units: str = "metal", group: str = "all", **kwargs) -> dict:
    data = tmp_path / "in.data"
    seen = write_data(atoms, data, SPECIES, units=units)
    extra = ["--units", units, "--deviation", group, *kwargs.pop("extra", [])]
    proc = run_driver(data, model, SPECIES, tmp_path / "out.npz", extra=extra, timeout=120, **kwargs)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return {"seen": seen, **np.load(tmp_path / "out.npz")}


@pytest.mark.parametrize("kind", ["orthogonal", "triclinic"])
@pytest.mark.parametrize("ranks,newton", [(1, "on"), (2, "on"), (2, "off")])
def test_deviation_matches_ase(committee_model, tmp_path, kind, ranks, newton) -> None:
    got = _run(tmp_path, _structure(kind, seed=21), committee_model, ranks=ranks, newton=newton)
    want = _ase(got["seen"], committee_model)
    assert want["max_force_deviation"] > 1e-2 and want["energy_deviation"] > 1e-3, "members must disagree"
    assert float(got["energy"]) == pytest.approx(want["energy"], rel=TOLERANCE)
    _close(got["forces"], want["forces"])
    _close(got["virial"], -np.array(want["stress"])[[0, 1, 2, 5, 4, 3]] * got["seen"].get_volume())
    _close(got["forces_deviation"], want["forces_deviation"])
    assert float(got["max_force_deviation"]) == pytest.approx(want["max_force_deviation"], rel=TOLERANCE)
    assert got["deviation_vector"][0] == pytest.approx(want["max_force_deviation"], rel=TOLERANCE)
    assert float(got["energy_deviation"]) == pytest.approx(want["energy_deviation"], rel=TOLERANCE)


@pytest.mark.parametrize("newton", ["on", "off"])
def test_ranks_without_atoms(committee_model, tmp_path, newton) -> None:
    """processors 4 1 1 on a slab: ranks holding only ghosts, or nothing, still take part."""
    from test_lammps_parallel import _slab

    got = _run(tmp_path, _slab(seed=25), committee_model, ranks=4, newton=newton,
               extra=["--pre", "processors 4 1 1"])
    want = _ase(got["seen"], committee_model)
    _close(got["forces"], want["forces"])
    _close(got["forces_deviation"], want["forces_deviation"])
    assert float(got["energy_deviation"]) == pytest.approx(want["energy_deviation"], rel=TOLERANCE)


def test_group_and_units_real(committee_model, tmp_path) -> None:
    """Per-atom values outside the group are 0 and the maximum is the group's; units real
    report kcal/mol and kcal/(mol Å)."""
    atoms = _structure("triclinic", seed=22)
    want = _ase(write_data(atoms, tmp_path / "in.data", SPECIES), committee_model)
    # the half of the atoms (by ID) without the one of largest deviation
    half = len(atoms) // 2
    inside = np.arange(len(atoms)) < half
    if np.argmax(want["forces_deviation"]) < half:
        inside = ~inside
    rule = f"id <= {half}" if inside[0] else f"id > {half}"
    got = _run(tmp_path, atoms, committee_model, units="real", group="half", ranks=2,
               extra=["--post", f"group half {rule}"])
    _close(got["forces_deviation"][inside] / EV_IN_KCAL_PER_MOL, want["forces_deviation"][inside])
    assert np.all(got["forces_deviation"][~inside] == 0.0)
    largest = want["forces_deviation"][inside].max()
    assert largest < want["max_force_deviation"], "the group must change the maximum"
    assert float(got["max_force_deviation"]) / EV_IN_KCAL_PER_MOL == pytest.approx(largest, rel=TOLERANCE)
    assert float(got["energy_deviation"]) / EV_IN_KCAL_PER_MOL == pytest.approx(want["energy_deviation"],
                                                                               rel=TOLERANCE)


def test_under_hybrid_overlay(committee_model, tmp_path) -> None:
    atoms = _structure("orthogonal", seed=23)
    pair = ["--pair", "pair_style hybrid/overlay scalelink zero 4.0",
            f"pair_coeff * * scalelink {committee_model} Cu Ni", "--post", "pair_coeff * * zero"]
    got = _run(tmp_path, atoms, committee_model, ranks=2, extra=pair)
    want = _ase(got["seen"], committee_model)
    _close(got["forces_deviation"], want["forces_deviation"])
    assert float(got["energy_deviation"]) == pytest.approx(want["energy_deviation"], rel=TOLERANCE)


@pytest.mark.gpu
def test_cuda_matches_cpu(committee_model, tmp_path) -> None:
    from test_lammps_device import _cuda_available

    if not _cuda_available():
        pytest.skip("no CUDA device")
    atoms = _structure("triclinic", seed=27)
    results = {}
    for device in ("cpu", "cuda"):
        pair = ["--pair", f"pair_style scalelink device {device} share_gpu yes", f"pair_coeff * * {committee_model} Cu Ni"]
        results[device] = _run(tmp_path, atoms, committee_model, ranks=2, extra=pair)
    for name in ("forces", "forces_deviation", "deviation_vector"):
        _close(results["cuda"][name], results["cpu"][name], 1e-9)


HALT = """\
units metal
atom_style atomic
atom_modify map array
read_data in.data
pair_style scalelink
pair_coeff * * {model} Cu Ni
compute dev all scalelink/deviation
variable maxdev equal c_dev
thermo_style custom step pe c_dev c_dev[2]
thermo 5
velocity all create 600 7 loop geom
fix nve all nve
timestep 0.002
run 0
variable threshold equal $(c_dev)*{factor}
fix stop all halt 1 v_maxdev > ${{threshold}} error continue
run 20
print "FINAL $(step) $(c_dev:%.12g) ${{threshold}}"
"""


@pytest.mark.parametrize("factor,stop_step", [(0.5, 1), (10.0, 20)])
def test_fix_halt_on_force_deviation(committee_model, tmp_path, factor, stop_step) -> None:
    import os
    import subprocess
    import sys

    write_data(_structure("orthogonal", seed=24), tmp_path / "in.data", SPECIES)
    (tmp_path / "in.lmp").write_text(HALT.format(model=committee_model, factor=factor))
    bin_dir = Path(sys.executable).parent
    proc = subprocess.run(
        [str(bin_dir / "mpirun"), "-n", "2", str(bin_dir / "lmp"), "-in", "in.lmp", "-log", "none"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    step, value, threshold = re.search(r"^FINAL (\S+) (\S+) (\S+)$", proc.stdout, re.M).groups()
    assert int(step) == stop_step
    assert (float(value) > float(threshold)) == (stop_step < 20)
    assert ("Fix halt condition" in proc.stdout + proc.stderr) == (stop_step < 20)


def test_committee_runs_ghost_full_with_a_log_line(committee_model, tmp_path) -> None:
    proc = _run_lmp(tmp_path, 2, model=committee_model)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "ghost full (committee of 3 models)" in proc.stdout
    warnings = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "WARNING" in ln]
    assert not [ln for ln in warnings if "scalelink" in ln.lower() or "per-layer" in ln], warnings


ERROR_INPUT = """\
units metal
atom_style atomic
lattice fcc 3.6
region box block 0 3 0 3 0 3
create_box 2 box
create_atoms 1 box
mass * 60.0
{pair}
{uses}
run 0
{after}
"""


@pytest.mark.parametrize(
    "case,pattern",
    [
        ("single_model", r"needs a committee model, but .*cuni_float64\.pt holds a single model"),
        ("other_pair_style", r"needs pair_style scalelink.*pair_style is zero"),
        ("stale_values", r"asked for on step 5, but pair_style scalelink last computed forces on step 0"),
        ("explicit_ghost_exchange", r"committee of 3 models, which runs in ghost full mode only"),
        ("collect_single_model", r"compute keep_deviation scalelink/deviation needs a committee model"),
        ("collect_every_zero", r"fix keep scalelink/collect: N must be a positive step count, got 0"),
        ("collect_arguments", r"scalelink/collect needs 3 arguments: fix keep all scalelink/collect N threshold"),
        ("collect_unwritable", r"fix keep scalelink/collect cannot open .*no_such_folder/f\.extxyz"),
    ],
)
def test_errors_are_clear_on_two_ranks(committee_model, model_files, tmp_path, case, pattern) -> None:
    import os
    import subprocess
    import sys

    model, style, after = committee_model, "scalelink", ""
    uses = "compute dev all scalelink/deviation"
    collect = {"collect_single_model": "1 0.1 f.extxyz", "collect_every_zero": "0 0.1 f.extxyz",
               "collect_arguments": "1 0.1", "collect_unwritable": "1 0.1 no_such_folder/f.extxyz"}
    if case in collect:
        uses = f"fix keep all scalelink/collect {collect[case]}"
    if case in ("single_model", "collect_single_model"):
        model = model_files["float64"]
    elif case == "stale_values":
        after = "reset_timestep 5\nwrite_dump all custom dump.txt id c_dev"
    elif case == "explicit_ghost_exchange":
        style = "scalelink ghost exchange"
    pair = f"pair_style {style}\npair_coeff * * {model} Cu Ni"
    if case == "other_pair_style":
        pair = "pair_style zero 4.0\npair_coeff * *"
    (tmp_path / "in.lmp").write_text(ERROR_INPUT.format(pair=pair, uses=uses, after=after))
    bin_dir = Path(sys.executable).parent
    proc = subprocess.run(
        [str(bin_dir / "mpirun"), "-n", "2", str(bin_dir / "lmp"), "-in", "in.lmp", "-log", "none"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert proc.returncode != 0
    errors = _error_lines(proc)
    assert any(re.search(pattern, ln) for ln in errors), proc.stdout[-3000:] + proc.stderr[-3000:]


def test_collect_writes_uncertain_configurations(committee_model, tmp_path) -> None:
    """fix scalelink/collect on 2 ranks: the frames read back by ASE are the LAMMPS
    configuration (species, cell, positions by atom ID) with the committee's deviations."""
    from ase.io import read

    frames_file, never_file = tmp_path / "frames.extxyz", tmp_path / "never.extxyz"
    post = ["velocity all create 600 3 loop geom", f"fix collect all scalelink/collect 2 0.0 {frames_file}",
            f"fix never all scalelink/collect 1 1e9 {never_file}"]
    got = _run(tmp_path, _structure("triclinic", seed=26), committee_model, ranks=2,
               extra=[arg for command in post for arg in ("--post", command)] + ["--md", "4"])
    frames = read(frames_file, ":")
    assert [frame.info["timestep"] for frame in frames] == [2, 4]
    assert never_file.read_text() == ""

    last = frames[-1]
    assert last.get_chemical_symbols() == got["seen"].get_chemical_symbols()
    assert last.pbc.all()
    (xlo, ylo, zlo), (xhi, yhi, zhi), (xy, yz, xz) = got["md_box"]
    cell = [[xhi - xlo, 0.0, 0.0], [xy, yhi - ylo, 0.0], [xz, yz, zhi - zlo]]
    np.testing.assert_allclose(last.cell[:], cell, rtol=0, atol=1e-12)
    np.testing.assert_allclose(last.positions, got["md_positions"] - [xlo, ylo, zlo], rtol=0, atol=1e-10)
    assert not np.allclose(frames[0].positions, last.positions), "atoms must move between frames"

    want = _ase(last, committee_model)
    _close(last.arrays["force_deviation"], want["forces_deviation"])
    assert last.info["max_force_deviation"] == pytest.approx(want["max_force_deviation"], rel=TOLERANCE)
