"""What pair_style scalelink and its committee tools do when the model's answer is unusable.

Runs the `lmp` program as users do, serially and under `mpirun -n 2`, each run in its own
process group with a short timeout: a hang fails the test (and is killed) instead of
holding up the suite.

- NaN or Inf forces, energy or virial (two atoms on top of each other, NaN weights): MD and
  `minimize` stop with one error on every rank naming the step and the atom IDs;
- NaN committee deviations count as above any threshold: `fix halt` fires and
  `fix scalelink/collect` writes the frame (with the finite check switched off, the only
  way a NaN deviation can reach them);
- `fix scalelink/collect` on a full disk stops with the file and the reason;
- a model error on one rank reaches the user with its message, from every rank alike, also
  between the layers of a per-layer (ghost exchange) evaluation;
- metadata whose cutoff or layer count disagrees with the network inside is refused.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest
import torch
from torch import Tensor, nn

from lammps_utils import export_random_potential
from scalelink.bridge import keys
from test_lammps_errors import _error_lines, _with_metadata

pytestmark = [pytest.mark.lammps, pytest.mark.mpi]

BIN = Path(sys.executable).parent
SPECIES = ["Cu", "Ni"]
TIMEOUT = 90.0

# fcc Cu, 3 x 3 x 3 cells (108 atoms, IDs 1-108), and a Ni atom (ID 109) on top of atom 1
OVERLAP = """\
units metal
atom_style atomic
atom_modify map array
lattice fcc 3.6
region box block 0 3 0 3 0 3
create_box 2 box
create_atoms 1 box
mass * 60.0
pair_style scalelink
pair_coeff * * {model} Cu Ni
"""
ON_TOP = "create_atoms 2 single $(x[1]) $(y[1]) $(z[1]) units box remap yes\n"


def _lmp(tmp_path: Path, text: str, ranks: int, *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``lmp -in in.lmp`` (under ``mpirun -n ranks`` when ranks > 1); a run that hangs
    past TIMEOUT is killed with its whole process group and fails the test."""
    (tmp_path / "in.lmp").write_text(text)
    command = [str(BIN / "lmp"), "-in", "in.lmp", "-log", "none"]
    if ranks > 1:
        command = [str(BIN / "mpirun"), "-n", str(ranks), *command]
    environment = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    with subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=environment, start_new_session=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            pytest.fail(f"lmp on {ranks} rank(s) still running after {TIMEOUT} s (hang):\n{stdout[-2000:]}{stderr[-2000:]}")
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def _single_error(proc: subprocess.CompletedProcess[str], pattern: str) -> str:
    """The error line matching ``pattern``; the run must have failed with it."""
    errors = _error_lines(proc)
    assert proc.returncode != 0 and errors, proc.stdout[-3000:] + proc.stderr[-3000:]
    found = [line for line in errors if re.search(pattern, line)]
    assert found, errors
    return found[0]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Untrained GNNs with seeded weights (1 and 2 layers), the 2-layer one with a NaN
    weight, and a committee of two 1-layer members."""
    from scalelink.potentials.gnn import GNNPotential
    from scalelink.training.export import export_committee

    folder = tmp_path_factory.mktemp("guards")
    out = {
        "one_layer": export_random_potential(folder / "one_layer.pt", SPECIES, num_layers=1),
        "two_layers": export_random_potential(folder / "two_layers.pt", SPECIES, num_layers=2),
    }
    # written around save_model, which refuses non-finite weights
    extra = {keys.METADATA_FILE: ""}
    module = torch.jit.load(out["two_layers"], _extra_files=extra)
    with torch.no_grad():
        next(iter(module.parameters())).view(-1)[0] = float("nan")
    out["nan_weights"] = str(folder / "nan_weights.pt")
    torch.jit.save(module, out["nan_weights"], _extra_files=extra)

    members = []
    for seed in (4, 5):
        torch.manual_seed(seed)
        members.append(GNNPotential(2, 4.0, 1, 16, 6, avg_num_neighbors=12.0, energy_scale=200.0))
    out["committee"] = str(folder / "committee.pt")
    export_committee(members, SPECIES, out["committee"])
    return out


# ---- non-finite model results -------------------------------------------------------------


@pytest.mark.parametrize("ranks", [1, 2])
def test_md_with_overlapping_atoms_stops(models, tmp_path, ranks) -> None:
    """An atom placed on another after 5 steps: the next run stops on its first step."""
    text = OVERLAP.format(model=models["one_layer"]) + (
        "velocity all create 300 1\nfix nve all nve\nrun 5\n" + ON_TOP + "run 500\n"
    )
    line = _single_error(_lmp(tmp_path, text, ranks), r"NaN or Inf")
    assert re.search(r"forces on \d+ atom\(s\) \(IDs 1 [0-9 ]+(and \d+ more)?\)", line), line
    assert "on step 5" in line and models["one_layer"] in line, line


@pytest.mark.parametrize("ranks", [1, 2])
def test_minimize_with_overlapping_atoms_stops(models, tmp_path, ranks) -> None:
    text = OVERLAP.format(model=models["two_layers"]) + ON_TOP + "min_style cg\nminimize 0 1e-8 1000 10000\n"
    line = _single_error(_lmp(tmp_path, text, ranks), r"NaN or Inf")
    assert "on step 0" in line and "IDs 1 " in line, line


@pytest.mark.parametrize("ranks", [1, 2])
def test_nan_weights_stop_the_first_step(models, tmp_path, ranks) -> None:
    text = OVERLAP.format(model=models["nan_weights"]) + "run 0\n"
    line = _single_error(_lmp(tmp_path, text, ranks), r"NaN or Inf")
    assert "forces on 108 atom(s)" in line and "the energy" in line and "non-finite weights" in line, line


@pytest.mark.parametrize("ranks", [1, 2])
def test_committee_with_overlapping_atoms_stops(models, tmp_path, ranks) -> None:
    text = OVERLAP.format(model=models["committee"]) + ON_TOP + (
        "compute dev all scalelink/deviation\nthermo_style custom step pe c_dev\nrun 0\n"
    )
    line = _single_error(_lmp(tmp_path, text, ranks), r"NaN or Inf")
    assert "IDs 1 " in line, line


# ---- NaN committee deviations -------------------------------------------------------------


@pytest.mark.parametrize("ranks", [1, 2])
def test_nan_deviation_halts_and_is_collected(models, tmp_path, ranks) -> None:
    """With the finite check off, a NaN deviation reaches the compute: it must read NaN (not
    0), fire fix halt and be written by fix scalelink/collect."""
    from ase.io import read

    text = OVERLAP.format(model=models["committee"]) + ON_TOP + (
        "compute dev all scalelink/deviation\n"
        "variable maxdev equal c_dev\n"
        "fix keep all scalelink/collect 1 0.5 frames.extxyz\n"
        "fix stop all halt 1 v_maxdev > 0.5 error soft\n"
        "thermo_style custom step c_dev f_keep\nthermo 1\n"
        "run 0\nprint \"DEVIATION $(c_dev)\"\n"
        "fix nve all nve\nrun 20\n"
    )
    proc = _lmp(tmp_path, text, ranks, env={"SCALELINK_SKIP_FINITE_CHECK": "1"})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "SCALELINK_SKIP_FINITE_CHECK is set" in output
    assert re.search(r"DEVIATION -?nan", output, re.IGNORECASE), output[-3000:]
    assert re.search(r"[Ff]ix halt condition for fix-id stop met on step 1", output), output[-3000:]
    frames = read(tmp_path / "frames.extxyz", ":")
    assert len(frames) == 1 and frames[0].info["timestep"] == 1
    assert len(frames[0]) == 109


# ---- fix scalelink/collect write errors -----------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full to simulate a full disk")
@pytest.mark.parametrize("ranks", [1, 2])
def test_collect_on_a_full_disk_stops(models, tmp_path, ranks) -> None:
    text = OVERLAP.format(model=models["committee"]) + (
        "fix keep all scalelink/collect 1 0.0 /dev/full\nvelocity all create 300 1\nfix nve all nve\nrun 3\n"
    )
    line = _single_error(_lmp(tmp_path, text, ranks), r"scalelink/collect")
    assert "/dev/full" in line and "No space left on device" in line and "step 1" in line, line
    assert "0 frame(s) written before" in line, line


# ---- a model error on one rank ----------------------------------------------------------------


class _RefusesNickel(nn.Module):
    """A deployed GNN that raises, as a model might on input it cannot handle, whenever Ni is
    among its atoms: in forward (whole-model calls) and in readout (per-layer calls, after
    the features were exchanged and before their gradients are)."""

    def __init__(self, potential: nn.Module) -> None:
        super().__init__()
        from scalelink.potentials.deployed import DeployedPotential

        self.inner = DeployedPotential(potential, torch.float64)

    def forward(self, data: Dict[str, Tensor]) -> Dict[str, Tensor]:
        if bool((data[keys.SPECIES] == 1).any()):
            raise RuntimeError("this model refuses Ni")
        return self.inner(data)

    @torch.jit.export
    def num_features(self) -> int:
        return self.inner.num_features()

    @torch.jit.export
    def embed(self, species: Tensor) -> Tensor:
        return self.inner.embed(species)

    @torch.jit.export
    def layer(self, k: int, h: Tensor, edge_vectors: Tensor, edge_index: Tensor, n_out: int) -> Tensor:
        return self.inner.layer(k, h, edge_vectors, edge_index, n_out)

    @torch.jit.export
    def readout(self, h: Tensor, species: Tensor) -> Tensor:
        if bool((species == 1).any()):
            raise RuntimeError("this model refuses Ni")
        return self.inner.readout(h, species)

    @torch.jit.export
    def derivatives(
        self, edge_gradient: Tensor, edge_vectors: Tensor, edge_index: Tensor, num_nodes: int
    ) -> Dict[str, Tensor]:
        return self.inner.derivatives(edge_gradient, edge_vectors, edge_index, num_nodes)


def _refusing_model(path: Path, num_layers: int) -> str:
    from scalelink.bridge.model_file import ModelMetadata, save_model
    from scalelink.potentials.gnn import GNNPotential

    torch.manual_seed(0)
    potential = GNNPotential(2, 4.0, num_layers, 16, 6, avg_num_neighbors=12.0, energy_scale=200.0)
    save_model(torch.jit.script(_RefusesNickel(potential)), path,
               ModelMetadata(species=SPECIES, cutoff=4.0, num_layers=num_layers))
    return str(path)


# Cu fcc 8 x 2 x 2 cells split in x between 2 ranks, one Ni atom in the middle of rank 1's
# half (x = 21.6 Å): more than cutoff + skin (6 Å) from rank 0's atoms and their ghost shell.
ONE_NICKEL = """\
units metal
atom_style atomic
processors * 1 1
lattice fcc 3.6
region box block 0 8 0 2 0 2
create_box 2 box
create_atoms 1 box
region ni block 21.5 21.7 -0.1 0.1 -0.1 0.1 units box
set region ni type 2
mass * 60.0
pair_style scalelink
pair_coeff * * {model} Cu Ni
run 0
"""


@pytest.mark.parametrize("num_layers", [1, 2], ids=["whole_model", "per_layer_exchange"])
@pytest.mark.parametrize("ranks", [1, 2])
def test_model_error_on_one_rank_reaches_the_user(tmp_path, ranks, num_layers) -> None:
    model = _refusing_model(tmp_path / "refuses_ni.pt", num_layers)
    proc = _lmp(tmp_path, ONE_NICKEL.format(model=model), ranks)
    line = _single_error(proc, r"this model refuses Ni")
    # stated once, for all ranks, by error->all (not "ERROR on proc N" of one rank)
    assert line.startswith("ERROR: pair_style scalelink: evaluating"), line
    assert "failed on step 0" in line, line
    if ranks > 1:
        assert "on MPI rank 1" in line, line


# ---- metadata against the network ------------------------------------------------------------


@pytest.mark.parametrize("ranks", [1, 2])
@pytest.mark.parametrize(
    "model,change,pattern",
    [
        ("two_layers", {keys.CUTOFF: 2.0}, r"metadata 'cutoff' is 2, but the network 'potential' was built with cutoff 4"),
        ("two_layers", {keys.CUTOFF: 400.0}, r"metadata 'cutoff' is 400, but the network 'potential' .* cutoff 4"),
        ("two_layers", {keys.NUM_LAYERS: 3}, r"metadata 'num_layers' is 3, but the network 'potential' has 2"),
        ("committee", {keys.CUTOFF: 5.0}, r"metadata 'cutoff' is 5, but the network 'members.0' .* cutoff 4"),
    ],
    ids=["cutoff_2", "cutoff_400", "num_layers_3", "committee_cutoff"],
)
def test_metadata_disagreeing_with_the_network_is_refused(models, tmp_path, ranks, model, change, pattern) -> None:
    edited = _with_metadata(models[model], tmp_path / "edited.pt", **change)
    line = _single_error(_lmp(tmp_path, OVERLAP.format(model=edited) + "run 0\n", ranks), pattern)
    assert "edited.pt" in line and "scalelink deploy" in line, line
