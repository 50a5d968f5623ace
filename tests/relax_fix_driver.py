"""MPI driver for tests/test_lammps_relax_fixes.py: ``mpirun -n N python relax_fix_driver.py OUT.json``.

Relaxes the same perturbed 2D Lennard-Jones crystal (a vacancy, a pinned corner) twice from the
same start: with LAMMPS's conjugate gradients (``minimize``) and with ``fix scalelink/relax``
during a run. Writes the largest position difference and the run's counters to OUT.json.
"""

from __future__ import annotations

import json
import sys
import traceback

import mpi4py.MPI as MPI
import numpy as np

def relaxed(method: str) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    from lammps import lammps

    lmp = lammps(comm=MPI.COMM_WORLD, cmdargs=["-screen", "none", "-log", "none", "-nocite"])
    lmp.commands_string(
        "units lj\ndimension 2\natom_style atomic\natom_modify map array\nlattice hex 0.85\n"
        "region box block 0 8 0 5 -0.5 0.5\ncreate_box 1 box\ncreate_atoms 1 box\nmass * 1.0\n"
        "pair_style lj/cut 2.5\npair_coeff * * 1.0 1.0\n"
        "group gone id 37\ndelete_atoms group gone compress no\n"
        "region corner block 0 1.2 0 1.2 -0.5 0.5\ngroup pinned region corner\ngroup mobile subtract all pinned\n"
        "displace_atoms mobile random 0.05 0.05 0.0 4821 units box\n"
        "fix hold pinned setforce 0.0 0.0 0.0\nfix plane all enforce2d\n"
    )
    counters: dict[str, object] = {}
    if method == "cg":
        lmp.command("minimize 0.0 1e-10 10000 100000")
    else:
        lmp.command("fix relax mobile scalelink/relax ftol 1e-10 step 0.01 memory 30")
        lmp.command("run 5000")
        counters = {"evaluations": lmp.extract_fix("relax", 0, 1, 0), "fnorm": lmp.extract_fix("relax", 0, 1, 1),
                    "restarts": lmp.extract_fix("relax", 0, 1, 2), "converged": lmp.extract_fix("relax", 0, 1, 3),
                    "steps": float(lmp.extract_global("ntimestep"))}
        # the run stopped early; a later run goes its full length
        lmp.command("unfix relax")
        lmp.command("run 3")
        counters["steps_after"] = float(lmp.extract_global("ntimestep"))
    n = lmp.extract_global("nlocal")
    ids = np.array(lmp.numpy.extract_atom("id")[:n])
    x = np.array(lmp.numpy.extract_atom("x")[:n, :2])
    boxlo, boxhi = lmp.extract_box()[:2]
    counters["box"] = [boxhi[0] - boxlo[0], boxhi[1] - boxlo[1]]
    lmp.close()
    return ids, x, counters


def main(out: str) -> None:
    comm = MPI.COMM_WORLD
    results = {}
    for method in ("cg", "anderson"):
        ids, x, counters = relaxed(method)
        gathered = comm.gather((ids, x), root=0)
        if comm.rank == 0:
            ids = np.concatenate([g[0] for g in gathered])
            x = np.concatenate([g[1] for g in gathered])[np.argsort(ids)]
            results[method] = (x, counters)
    if comm.rank == 0:
        (x_cg, _), (x_an, counters) = results["cg"], results["anderson"]
        box = np.array(counters.pop("box"))
        diff = x_cg - x_an
        diff -= box * np.round(diff / box)  # the same atom, perhaps wrapped through the periodic box
        counters["max_position_difference"] = float(np.max(np.abs(diff)))
        counters["atoms"] = len(x_cg)
        with open(out, "w", encoding="utf-8") as stream:
            json.dump(counters, stream, indent=1)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except BaseException:
        traceback.print_exc()
        sys.stdout.flush()
        MPI.COMM_WORLD.Abort(1)
