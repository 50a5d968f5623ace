"""MPI driver for tests/test_coarse.py: ``mpirun -n N python coarse_driver.py OUT.json``.

Relaxes one strained 2D Lennard-Jones region with a three-site vacancy cluster (pad held at the
affine field) three times from the same start: LAMMPS conjugate gradients, ``fix scalelink/relax``
with plain Anderson steps, and the same preconditioned by the coarse Cauchy–Born grid. Writes
the largest differences from CG and the step counts to OUT.json.
"""

from __future__ import annotations

import json
import sys
import traceback

import mpi4py.MPI as MPI
import numpy as np

from scalelink.coupling.atomistic2d import AtomisticRegion, cauchy_born_stiffness, relaxed_spacing
from scalelink.coupling.lattice import HexLattice, LennardJones2D
from scalelink.coupling.coarse import CoarseGrid
from scalelink.coupling.quasistatic import affine_displacement


def main(out: str) -> None:
    comm = MPI.COMM_WORLD
    potential = LennardJones2D()
    a = relaxed_spacing(potential, comm)
    stiffness = cauchy_born_stiffness(potential, a, comm)
    half, pad = 9.0 * a, potential.cutoff + 0.1
    lattice = HexLattice.covering(a, half + pad)
    ids, x = lattice.sites(np.array([-0.1, -0.1]), np.array([a + 0.1, a]))
    corners = np.array([[0.0, 0.0], [a, 0.0], [0.5 * a, 0.5 * np.sqrt(3.0) * a]])
    removed = ids[(np.linalg.norm(x[:, None, :] - corners[None], axis=2) < 1e-6).any(axis=1)]
    strain = np.array([0.012, -0.005, 0.004 * np.sqrt(2.0)])
    results = {}
    for name, method, grid in (("cg", "cg", None), ("plain", "anderson", None),
                               ("coarse", "anderson", CoarseGrid.for_region(half, stiffness, 2.0 * a))):
        region = AtomisticRegion(comm, potential, lattice, free_half_width=half, pad_width=pad, removed=removed)
        region_ids, _ = region.displacements()
        region.set_displacements(region_ids, affine_displacement(strain, lattice.positions(region_ids)))
        region.precondition(grid)
        steps = region.relax(method=method)
        region_ids, u = region.displacements()
        gathered = comm.gather((region_ids, u), root=0)
        if comm.rank == 0:
            all_ids = np.concatenate([g[0] for g in gathered])
            results[name] = (np.concatenate([g[1] for g in gathered])[np.argsort(all_ids)], steps, np.sort(all_ids))
        region.close()
    if comm.rank == 0:
        u_cg, _, sorted_ids = results["cg"]
        summary = {
            "max_difference_plain": float(np.max(np.abs(results["plain"][0] - u_cg))),
            "max_difference_coarse": float(np.max(np.abs(results["coarse"][0] - u_cg))),
            "steps_cg": results["cg"][1], "steps_plain": results["plain"][1], "steps_coarse": results["coarse"][1],
            "atoms": len(u_cg),
            # how far the relaxation moved the atoms from the affine start
            "largest_relaxation": float(np.max(np.abs(u_cg - affine_displacement(
                strain, lattice.positions(sorted_ids))))),
        }
        with open(out, "w", encoding="utf-8") as stream:
            json.dump(summary, stream, indent=1)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except BaseException:
        traceback.print_exc()
        sys.stdout.flush()
        MPI.COMM_WORLD.Abort(1)
