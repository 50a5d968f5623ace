"""MPI driver for tests/test_coupling_path.py: ``mpirun -n N python coupling_path_driver.py OUT.json FE_RANKS``.

A few coupled steps of a wave strip at rest, once with ``compiled=True`` and once with
``compiled=False``; world rank 0 writes each run's ``fe_path`` and ``fe_path_reason`` (as every
rank received them, so that a disagreement shows) to OUT.json.
"""

from __future__ import annotations

import json
import sys
import traceback

import mpi4py.MPI as MPI

import dolfinx.fem.petsc  # noqa: F401  (PETSc start-up is collective on COMM_WORLD)

from scalelink.coupling.exchange import split_world
from scalelink.coupling.lattice import LennardJones2D
from scalelink.coupling.md import route_atoms, run_coupled
from scalelink.coupling.md_atoms import AtomisticStrip
from scalelink.coupling.md_continuum import ContinuumStrip
from scalelink.coupling.md_runs import wave_speed
from scalelink.coupling.quasistatic import lattice_constants
from scalelink.coupling.wave_strip import StripConfig, WaveStrip


def main(out: str, fe_ranks: int) -> None:
    link = split_world(fe_ranks)
    potential = LennardJones2D()
    a, stiffness = lattice_constants(link, potential)
    strip = WaveStrip.for_packet(StripConfig(rows=4, packet_width=12.0), potential, a, 1.0 / a,
                                 wave_speed(stiffness, a, potential.mass))
    continuum = ContinuumStrip(link.comm, strip, stiffness, mass_blend=0.0) if link.is_fe else None
    atoms = AtomisticStrip(link.comm, strip) if link.is_md else None
    route_atoms(link, continuum, atoms)
    numbers = {}
    for compiled in (True, False):
        stats = run_coupled(link, 3, continuum=continuum, atoms=atoms, compiled=compiled)
        numbers[f"compiled={compiled}"] = link.world.gather((stats.fe_path, stats.fe_path_reason), root=0)
    if atoms is not None:
        atoms.close()
    if link.world.rank == 0:
        with open(out, "w", encoding="utf-8") as stream:
            json.dump(numbers, stream, indent=1)


if __name__ == "__main__":
    try:
        main(sys.argv[1], int(sys.argv[2]))
    except BaseException:
        # an error on one group must end the run, not leave the other group waiting
        traceback.print_exc()
        sys.stdout.flush()
        MPI.COMM_WORLD.Abort(1)
