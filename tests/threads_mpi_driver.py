"""MPI driver for tests/test_threads.py: ``mpirun -n N python threads_mpi_driver.py POT.pt CONSTITUTIVE.pt OUT``.

Each rank creates its own LAMMPS instance on ``MPI_COMM_SELF`` with ``pair_style scalelink``, as
``AtomisticRVE`` does in an FE² run, then a ``ConstitutiveEngine``; it writes torch's thread count
before and after ``pair_coeff`` and the engine's to ``OUT/rank<R>.json``, and LAMMPS' log to
``OUT/log.<R>``.
"""

from __future__ import annotations

import json
import sys
import traceback

import mpi4py.MPI as MPI

import torch
from lammps import lammps

from scalelink.bridge.inference import ConstitutiveEngine

INPUT = """\
units metal
atom_style atomic
lattice fcc 3.6
region box block 0 2 0 2 0 2
create_box 2 box
create_atoms 1 box
mass * 60.0
pair_style scalelink
pair_coeff * * {model} Cu Ni
run 0
"""


def main(model: str, constitutive: str, out: str) -> None:
    rank = MPI.COMM_WORLD.rank
    before = torch.get_num_threads()
    lmp = lammps(comm=MPI.COMM_SELF, cmdargs=["-screen", "none", "-log", f"{out}/log.{rank}", "-nocite"])
    lmp.commands_string(INPUT.format(model=model))
    after = torch.get_num_threads()
    lmp.close()
    engine = ConstitutiveEngine(constitutive)
    with open(f"{out}/rank{rank}.json", "w", encoding="utf-8") as stream:
        json.dump({"torch_before": before, "lammps_threads": after, "engine_threads": engine.torch_threads}, stream)


if __name__ == "__main__":
    try:
        main(sys.argv[1], sys.argv[2], sys.argv[3])
    except BaseException:
        traceback.print_exc()
        sys.stdout.flush()
        MPI.COMM_WORLD.Abort(1)
