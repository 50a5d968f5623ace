"""Each rank solves the nonlinear RVEs of its own macro points on ``MPI.COMM_SELF``; rank 0 saves
the gathered answers.

Usage: ``mpirun -n 2 python rve_mpi.py strains.npy out.npz``
"""

from __future__ import annotations

import sys
from pathlib import Path

import mpi4py.MPI as MPI
import numpy as np


def main(strain_file: str, out_file: str) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from test_rve import _nonlinear_rve

    from scalelink.fe2.rve import RVEMicroModel

    comm = MPI.COMM_WORLD
    strains = np.load(strain_file)
    mine = np.arange(comm.rank, len(strains), comm.size)
    stress, tangent = RVEMicroModel(_nonlinear_rve()).evaluate(strains[mine])
    parts = comm.gather((mine, stress, tangent), root=0)
    if comm.rank == 0:
        index = np.concatenate([p[0] for p in parts])
        order = np.argsort(index)
        ranks = np.concatenate([np.full(len(p[0]), r) for r, p in enumerate(parts)])
        np.savez(out_file, stress=np.concatenate([p[1] for p in parts])[order],
                 tangent=np.concatenate([p[2] for p in parts])[order], ranks=ranks[order])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
