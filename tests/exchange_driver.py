"""MPI driver for tests/test_coupling.py: ``mpirun -n N python exchange_driver.py OUT.json``.

For every split of the ranks into two groups, sends rows keyed by ID both ways with
:func:`transfer_by_id` — rows offered by several ranks, wanted IDs repeated and in any order —
and compares what arrives with the known value of each ID. mpi4py and numpy only.
"""

from __future__ import annotations

import json
import sys
import traceback

import mpi4py.MPI as MPI
import numpy as np

from scalelink.coupling.exchange import split_world, transfer_by_id

SHARED = np.arange(1000, 1011)  # offered by every source rank


def value_of(ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids, dtype=float)
    return np.column_stack([0.5 * ids, -ids, ids**2])


def main(out: str) -> None:
    world = MPI.COMM_WORLD
    worst, rows = 0.0, 0
    for num_fe in range(1, world.size):
        link = split_world(num_fe)
        for source in ("fe", "md"):
            size = link.num_fe if source == "fe" else link.num_md
            if link.role == source:
                own = np.concatenate([np.arange(link.comm.rank, 200, size), SHARED])
                transfer_by_id(link, source=source, width=3, ids=own, values=value_of(own))
            else:
                rng = np.random.default_rng(17 * world.rank + num_fe)
                wanted = rng.choice(np.concatenate([np.arange(200), SHARED]), size=60, replace=True)
                got = transfer_by_id(link, source=source, width=3, wanted=wanted)
                worst = max(worst, float(np.max(np.abs(got - value_of(wanted)))))
                rows += len(wanted)
        link.comm.Free()
        link.inter.Free()
    result = {"max_error": world.allreduce(worst, op=MPI.MAX), "rows": world.allreduce(rows)}
    if world.rank == 0:
        with open(out, "w", encoding="utf-8") as stream:
            json.dump(result, stream)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except BaseException:
        # an error on one group must end the run, not leave the other group waiting
        traceback.print_exc()
        sys.stdout.flush()
        MPI.COMM_WORLD.Abort(1)
