"""Which FE critical path a dynamic coupled run took, and why (RunStats.fe_path, fe_path_reason).

References: the conditions of the compiled path (one FE rank, the kernel built), checked on a
stand-in continuum and in real runs of 1 + 1 and 2 + 1 ranks under mpirun, every rank reporting
the same record.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

kernel = pytest.importorskip("scalelink.coupling.md_kernel")

ROOT = Path(__file__).resolve().parents[1]
MPIRUN = str(Path(sys.executable).parent / "mpirun")


def test_the_reason_names_what_keeps_the_compiled_path_out(monkeypatch: pytest.MonkeyPatch) -> None:
    two_ranks = SimpleNamespace(comm=SimpleNamespace(size=2))
    assert "the FE group has 2 ranks" in kernel.CriticalPath.unavailable(two_ranks)
    assert kernel.CriticalPath.for_continuum(two_ranks, 0, 1e-3, 1e-4) is None
    monkeypatch.setattr(kernel, "kernel_library", lambda: None)
    one_rank = SimpleNamespace(comm=SimpleNamespace(size=1))
    reason = kernel.CriticalPath.unavailable(one_rank)
    assert "scalelink_couple_kernel.so is not installed" in reason and "reinstall ScaleLink" in reason
    assert kernel.CriticalPath.for_continuum(one_rank, 0, 1e-3, 1e-4) is None


def test_chained_runs_keep_both_paths() -> None:
    from scalelink.coupling.md import RunStats

    total = RunStats(0)
    total.add(RunStats(5, seconds=1.0, fe_path="compiled", fe_path_reason="one FE rank and the kernel is built"))
    total.add(RunStats(5, seconds=2.0, fe_path="compiled", fe_path_reason="one FE rank and the kernel is built"))
    assert (total.steps, total.seconds, total.fe_path) == (10, 3.0, "compiled")
    total.add(RunStats(5, fe_path="petsc", fe_path_reason="compiled=False asks for the PETSc path"))
    assert total.fe_path == "compiled, then petsc"


def _mpirun(ranks: int, fe_ranks: int, out: Path) -> dict[str, list[list[str]]]:
    command = [MPIRUN, "-n", str(ranks), sys.executable, str(ROOT / "tests" / "coupling_path_driver.py"),
               str(out), str(fe_ranks)]
    proc = subprocess.run(command, cwd=out.parent, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.mpi
@pytest.mark.lammps
@pytest.mark.fenicsx
def test_one_fe_rank_runs_the_compiled_path_and_says_so(tmp_path: Path) -> None:
    if kernel.kernel_library() is None:
        pytest.skip("scalelink_couple_kernel.so is not built (pip install . builds it)")
    runs = _mpirun(2, 1, tmp_path / "out.json")
    assert runs["compiled=True"] == [["compiled", "one FE rank and the kernel is built"]] * 2
    assert runs["compiled=False"] == [["petsc", "compiled=False asks for the PETSc path"]] * 2


@pytest.mark.mpi
@pytest.mark.lammps
@pytest.mark.fenicsx
def test_several_fe_ranks_run_the_petsc_path_and_say_why(tmp_path: Path) -> None:
    runs = _mpirun(3, 2, tmp_path / "out.json")
    path, reason = runs["compiled=True"][0]
    assert path == "petsc" and "the FE group has 2 ranks" in reason
    assert runs["compiled=True"] == [[path, reason]] * 3
