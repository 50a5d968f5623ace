"""MPI driver for tests/test_coupling_crack.py: a coupled crack whose continuum refuses its set-up
(a fit radius too small to hold any atoms) must raise ConfigError on every rank of both groups."""

from __future__ import annotations

import sys

import mpi4py.MPI as MPI

import dolfinx.fem.petsc  # noqa: F401  (PETSc start-up is collective on COMM_WORLD)

from scalelink.bridge.errors import ConfigError
from scalelink.coupling.cauchy_born import Potential, crystal_constants
from scalelink.coupling.crack_coupled import CrackGeometry, build_crack_coupling
from scalelink.coupling.exchange import split_world

ORIENTATION = [[1, 1, 0], [0, 0, 1], [1, -1, 0]]


def main() -> None:
    link = split_world(max(MPI.COMM_WORLD.size // 2, 1))
    potential = Potential.eam_alloy("Cu_mishin1.eam.alloy", "Cu")
    lattice, stiffness = crystal_constants(link, potential, 3.615, half_width=10.0, orientation=ORIENTATION)
    geometry = CrackGeometry(half_width=40.0, free_half_width=22.0, ring=potential.reach + 0.1, hole_half_width=12.0,
                             fit_radius=float(sys.argv[1]))
    try:
        build_crack_coupling(link, potential, lattice.constant, stiffness, ORIENTATION, geometry, periods=2)
        print(f"rank {MPI.COMM_WORLD.rank}: built", flush=True)
    except ConfigError as err:
        print(f"rank {MPI.COMM_WORLD.rank}: ConfigError: {err}", flush=True)


if __name__ == "__main__":
    main()
