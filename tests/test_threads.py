"""Torch threads of an MPI rank: the constitutive engine and pair_style scalelink share the node.

References: the node's core count divided by the launcher's rank count (``mpirun -n 2``: Hydra's
``MPI_LOCALNRANKS``), torch's own thread count as the caller set it (restored after every call),
and the log that LAMMPS writes for an instance on ``MPI_COMM_SELF`` in each rank of an ``mpirun``
(as ``AtomisticRVE`` creates them in an FE² run) and for the ``lmp`` program.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from scalelink.bridge.inference import ConstitutiveEngine, rank_thread_share
from scalelink.surrogates.constitutive import ConstitutiveMLP, export_constitutive

BIN = Path(sys.executable).parent
DRIVER = Path(__file__).with_name("threads_mpi_driver.py")
LAUNCHER_VARIABLES = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE", "PALS_LOCAL_SIZE",
                      "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "OMP_NUM_THREADS")


def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def _constitutive_file(path: Path) -> Path:
    torch.manual_seed(0)
    mlp = ConstitutiveMLP(3, width=8, depth=2, activation="tanh").double()
    rng = np.random.default_rng(0)
    strain = rng.uniform(-1e-2, 1e-2, (64, 3))
    mlp.set_normalisation(strain, 50.0 * strain + rng.normal(size=(64, 3)))
    export_constitutive(mlp, path)
    return path


class _Recorder:
    """Stands in for the engine's network: records torch's thread count of each call."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self.lock:
            self.seen.append(torch.get_num_threads())
        return x.clone(), torch.zeros(x.shape[0], x.shape[1], x.shape[1], dtype=x.dtype)


def test_rank_share_divides_the_node_among_the_launchers_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_environment(monkeypatch)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    assert rank_thread_share()[0] == 16
    monkeypatch.setenv("MPI_LOCALNRANKS", "4")
    share, why = rank_thread_share()
    assert share == 4 and "4 MPI ranks on this node (MPI_LOCALNRANKS), 16 cores" in why
    monkeypatch.setenv("MPI_LOCALNRANKS", "32")
    assert rank_thread_share()[0] == 1
    monkeypatch.delenv("MPI_LOCALNRANKS")
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2")
    assert rank_thread_share()[0] == 8
    # a launcher that bound the rank to 3 CPUs: those are its share
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})
    assert rank_thread_share()[0] == 3


@pytest.fixture
def two_threads():  # type: ignore[no-untyped-def]
    """torch on 2 threads for the test, the session's count restored after."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs a machine with at least 2 cores")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_engine_takes_its_ranks_share_only_during_its_calls(tmp_path, monkeypatch, two_threads) -> None:  # type: ignore
    _clean_environment(monkeypatch)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    path = _constitutive_file(tmp_path / "c.pt")
    strain = np.random.default_rng(1).uniform(-1e-2, 1e-2, (20, 3))

    alone = ConstitutiveEngine(path)
    alone.module = recorder = _Recorder()
    alone.evaluate(strain)
    assert recorder.seen == [2] and torch.get_num_threads() == 2  # one process: torch as it was

    monkeypatch.setenv("MPI_LOCALNRANKS", "2")  # as `mpirun -n 2` on this machine
    shared = ConstitutiveEngine(path, chunk_size=7)
    shared.module = recorder = _Recorder()
    shared.evaluate(strain)
    assert shared.torch_threads == 1 and recorder.seen == [1, 1, 1]
    assert torch.get_num_threads() == 2  # the caller's count, restored

    torch.set_num_threads(1)  # a lower count the caller chose is never raised
    shared.module = recorder = _Recorder()
    shared.evaluate(strain)
    assert recorder.seen == [1, 1, 1] and torch.get_num_threads() == 1
    torch.set_num_threads(2)

    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's explicit choice
    chosen = ConstitutiveEngine(path)
    chosen.module = recorder = _Recorder()
    chosen.evaluate(strain)
    assert chosen.torch_threads is None and recorder.seen == [2] and torch.get_num_threads() == 2


def test_explicit_worker_threads_are_kept_and_warned_about_beyond_the_share(tmp_path, monkeypatch,  # type: ignore
                                                                             two_threads) -> None:
    _clean_environment(monkeypatch)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    path = _constitutive_file(tmp_path / "c.pt")
    strain = np.random.default_rng(2).uniform(-1e-2, 1e-2, (40, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ConstitutiveEngine(path, num_threads=2).close()  # alone on 2 cores: its share
    monkeypatch.setenv("MPI_LOCALNRANKS", "2")
    with pytest.warns(RuntimeWarning, match=r"num_threads=2\) .* share of the node, 1 \(2 MPI ranks .*"
                                            r"pass num_threads=1 or fewer"):
        engine = ConstitutiveEngine(path, chunk_size=5, num_threads=2)
    engine.module = recorder = _Recorder()
    engine.evaluate(strain)
    engine.close()
    assert len(recorder.seen) == 8 and set(recorder.seen) == {1}  # two workers, torch on one thread each
    assert torch.get_num_threads() == 2


def _potential_file(path: Path) -> str:
    from scalelink.potentials.gnn import GNNPotential
    from scalelink.training.export import export_potential

    torch.manual_seed(0)
    export_potential(GNNPotential(2, 4.0, 1, 8, 4, avg_num_neighbors=12.0, energy_scale=0.3), ["Cu", "Ni"], str(path))
    return str(path)


@pytest.mark.lammps
@pytest.mark.mpi
def test_lammps_on_comm_self_in_each_rank_of_an_mpirun_takes_the_ranks_share(tmp_path: Path) -> None:
    model = _potential_file(tmp_path / "pot.pt")
    constitutive = _constitutive_file(tmp_path / "c.pt")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    command = [str(BIN / "mpirun"), "-n", "2", sys.executable, str(DRIVER), model, str(constitutive), str(tmp_path)]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    share = max(1, min(len(os.sched_getaffinity(0)), (os.cpu_count() or 1) // 2))
    for rank in (0, 1):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert result["lammps_threads"] == min(result["torch_before"], share)
        assert result["engine_threads"] == share
        log = (tmp_path / f"log.{rank}").read_text()
        assert "at most this rank's share of the node: 2 MPI ranks of the job" in log
        # inside Python the pair style leaves malloc alone unless asked
        assert "heap auto inside a Python process: malloc's settings are left as they are" in log


INPUT = """\
units metal
atom_style atomic
lattice fcc 3.6
region box block 0 2 0 2 0 2
create_box 2 box
create_atoms 1 box
mass * 60.0
pair_style scalelink {style_args}
pair_coeff * * {model} Cu Ni
run 0
"""


@pytest.mark.lammps
@pytest.mark.mpi
@pytest.mark.parametrize(("ranks", "style_args", "expected"), [
    (1, "", ["heap auto: freed memory stays on the heap for reuse, process-wide"]),
    (1, "heap release", ["heap release: malloc's settings are left as they are"]),
    (2, "heap keep", ["heap keep: freed memory stays on the heap", "torch uses 1 thread(s) per MPI rank (one per "
                                                                    "MPI rank of this LAMMPS instance (2 ranks)"]),
    (1, "heap maybe", ["pair_style scalelink heap 'maybe' is not known: use auto, keep or release"]),
])
def test_lmp_program_keeps_freed_memory_by_default(tmp_path: Path, ranks: int, style_args: str,
                                                   expected: list[str]) -> None:
    model = _potential_file(tmp_path / "pot.pt")
    (tmp_path / "in.lmp").write_text(INPUT.format(style_args=style_args, model=model))
    command = [str(BIN / "lmp"), "-in", "in.lmp", "-log", "none"]
    if ranks > 1:
        command = [str(BIN / "mpirun"), "-n", str(ranks), *command]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    output = proc.stdout + proc.stderr
    assert (proc.returncode == 0) == ("maybe" not in style_args), output[-3000:]
    for text in expected:
        assert text in output, output[-3000:]
