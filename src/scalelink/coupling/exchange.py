"""MPI data exchange between the finite-element ranks and the molecular-dynamics ranks.

A concurrent atomistic–continuum run is one ``mpirun`` whose ``COMM_WORLD`` is split into two
groups (MPMD): the first ``num_fe_ranks`` ranks run the continuum (dolfinx), the others run the
atomistic region (LAMMPS). :func:`split_world` builds the group communicators and an
inter-communicator; :func:`transfer_by_id` moves per-atom (or per-node) rows keyed by an integer
ID from one group to the other, without files and without copying the data to every rank.

Routing: a rendezvous ("distributed directory") keyed by ID, with no root in the path. Neither
side knows which remote rank owns an ID, so each row is first sent over the inter-communicator
to the receiving group's *directory rank* ``id mod n`` (``n``: receiving group size); each
receiving rank then asks the directory ranks for the IDs it needs and gets the rows back. Every
row crosses the network at most twice, every rank sends and receives only rows it owns, needs or
indexes, and the work is spread evenly over the receiving group — nothing is gathered on one
rank or replicated. Because receivers name what they need by ID at every call, the routing is
always right after atoms migrate between MD ranks. (Caching the source→owner pairs would save
the second hop between migrations; not done.)

PETSc start-up is collective on ``COMM_WORLD``: a caller that uses dolfinx on the FE group must
import ``dolfinx.fem.petsc`` on every rank before calling :func:`split_world`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
from mpi4py import MPI

from scalelink.bridge.errors import ConfigError, DataError

__all__ = [
    "TAG_FORCES",
    "TAG_KINEMATICS",
    "TAG_REPLY",
    "CouplingLink",
    "Role",
    "idle_barrier",
    "split_world",
    "transfer_by_id",
]

Role = Literal["fe", "md"]

# MPI tags of the per-step messages (doubles, one row per band atom) between an MD rank's
# `fix scalelink/couple` (lammps_plugin/fixes/fix_scalelink_couple.cpp) and an FE rank
# (coupling.md, or its compiled path coupling/native/couple_kernel.cpp); tests/test_contracts.py
# checks the C++ constants against these.
TAG_KINEMATICS: Final = 7311  # MD -> FE: [id, u (dim), v (dim)]
TAG_FORCES: Final = 7312  # MD -> FE: f (dim), rows in the order of the kinematics
TAG_REPLY: Final = 7313  # FE -> MD: (dim) a force, or a pad atom's next displacement, same order


@dataclass(frozen=True)
class CouplingLink:
    """The communicators of one coupled run, as seen from one rank.

    Attributes:
        world: the parent communicator (usually ``MPI.COMM_WORLD``).
        comm: this rank's group communicator (FE ranks or MD ranks).
        role: ``"fe"`` or ``"md"``.
        inter: inter-communicator between the two groups (remote rank 0 is the other root).
        num_fe: number of FE ranks (world ranks ``0 .. num_fe-1``).
        num_md: number of MD ranks (world ranks ``num_fe .. world.size-1``).
        steps: an intra-communicator over both groups, ranked as ``world`` (FE rank r is its rank r),
            for the messages of every time step. A duplicate, so they cannot meet other traffic; not
            ``inter``, because MPICH delivers a message on an inter-communicator only when its sender
            next enters MPI, which would hold data sent before a long computation back until after it.
    """

    world: MPI.Comm
    comm: MPI.Comm
    role: Role
    inter: MPI.Intercomm
    num_fe: int
    num_md: int
    steps: MPI.Comm

    @property
    def is_fe(self) -> bool:
        """True on the FE ranks."""
        return self.role == "fe"

    @property
    def is_md(self) -> bool:
        """True on the MD ranks."""
        return self.role == "md"

    @property
    def fe_root(self) -> int:
        """World rank of the FE group's root."""
        return 0

    @property
    def md_root(self) -> int:
        """World rank of the MD group's root."""
        return self.num_fe


def split_world(num_fe_ranks: int, world: MPI.Comm | None = None) -> CouplingLink:
    """Split ``world`` into FE ranks (the first ``num_fe_ranks``) and MD ranks (the rest).

    Collective on ``world``.

    Args:
        num_fe_ranks: ranks given to the continuum; ``1 <= num_fe_ranks < world.size``.
        world: communicator to split; ``MPI.COMM_WORLD`` when omitted.

    Returns:
        The :class:`CouplingLink` of the calling rank.

    Raises:
        ConfigError: the split would leave a group empty.
    """
    world = MPI.COMM_WORLD if world is None else world
    if not 1 <= num_fe_ranks < world.size:
        raise ConfigError(
            f"num_fe_ranks={num_fe_ranks} with {world.size} MPI ranks leaves a group empty; "
            f"expected 1 <= num_fe_ranks <= {world.size - 1} (run with at least 2 ranks, e.g. "
            "`mpirun -n 2`, and give the rest to the MD group)"
        )
    role: Role = "fe" if world.rank < num_fe_ranks else "md"
    comm = world.Split(0 if role == "fe" else 1, world.rank)
    remote_leader = num_fe_ranks if role == "fe" else 0
    inter = comm.Create_intercomm(0, world, remote_leader, 7100)
    return CouplingLink(world, comm, role, inter, num_fe_ranks, world.size - num_fe_ranks, world.Dup())


def idle_barrier(comm: MPI.Comm, *, poll_seconds: float = 5e-4) -> None:
    """A barrier whose early ranks sleep instead of spinning.

    In a coupled run one group works while the other waits; MPI's blocking calls busy-poll, which
    on an oversubscribed node (more ranks than cores) takes the cores the working group needs and
    slows each of its collectives by a scheduler time slice. Collective on ``comm``.

    Args:
        comm: the communicator to synchronise.
        poll_seconds: sleep between completion tests, s.
    """
    request = comm.Ibarrier()
    while not request.Test():
        time.sleep(poll_seconds)


def _alltoallv(comm: MPI.Comm, send: np.ndarray, send_counts: np.ndarray, width: int,
               dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Exchange rows sorted by destination; works on intra- and inter-communicators.

    Args:
        comm: the communicator (on an inter-communicator, destinations are remote ranks).
        send: ``(sum(send_counts), width)`` rows ordered by destination rank.
        send_counts: ``(p,)`` rows for each destination (``p``: remote size, or size).
        width: values per row.
        dtype: numpy dtype of the rows.

    Returns:
        ``(rows received ordered by source rank, counts received per source rank)``.
    """
    send_counts = np.ascontiguousarray(send_counts, dtype=np.int64)
    recv_counts = np.empty_like(send_counts)
    comm.Alltoall(send_counts, recv_counts)
    mpi_type = MPI.INT64_T if dtype is np.int64 else MPI.DOUBLE
    received = np.empty((int(recv_counts.sum()), width), dtype=dtype)
    sc, rc = send_counts * width, recv_counts * width
    comm.Alltoallv([np.ascontiguousarray(send, dtype=dtype), (sc, np.cumsum(sc) - sc), mpi_type],
                   [received, (rc, np.cumsum(rc) - rc), mpi_type])
    return received, recv_counts


def _check_arguments(source: str, sending: bool, width: int, ids: np.ndarray | None,
                     values: np.ndarray | None, wanted: np.ndarray | None) -> str | None:
    """The message of what is wrong with this rank's arguments, or None."""
    if source not in ("fe", "md"):
        return f"transfer_by_id: source={source!r}; expected 'fe' or 'md'"
    if width < 1:
        return f"transfer_by_id: width={width}; expected a positive number of values per row"
    if not sending:
        return None if wanted is not None else (
            f"transfer_by_id from {source!r}: a target rank passed wanted=None; pass the IDs it needs")
    if ids is None or values is None:
        return f"transfer_by_id from {source!r}: a source rank must pass both `ids` and `values`"
    n_ids, n_values = np.asarray(ids).size, np.asarray(values).size
    if n_values != n_ids * width:
        return (f"transfer_by_id: {n_ids} ids but {n_values} values; expected {n_ids} × width={width} "
                "(one row of `values` per id)")
    return None


def transfer_by_id(
    link: CouplingLink,
    *,
    source: Role,
    width: int,
    ids: np.ndarray | None = None,
    values: np.ndarray | None = None,
    wanted: np.ndarray | None = None,
    default: np.ndarray | None = None,
) -> np.ndarray | None:
    """Send rows keyed by integer ID from the ``source`` group to the other group.

    Collective on ``link.world``. Source ranks pass ``ids`` and ``values`` (the rows they
    own; a row may be offered by several ranks — e.g. an atom on a shared element edge — and
    must then be equal); target ranks pass ``wanted`` (any order, repeats allowed). The call
    starts with :func:`idle_barrier`, so the group that arrives first waits without spinning.

    Args:
        link: the run's communicators.
        source: the sending group, ``"fe"`` or ``"md"``.
        width: number of values per row.
        ids: ``(n,)`` integer IDs of the rows offered by this rank (source ranks).
        values: ``(n, width)`` float64 rows (source ranks).
        wanted: ``(m,)`` integer IDs needed by this rank (target ranks).
        default: ``(width,)`` row given on this target rank to wanted IDs no source rank offers;
            ``None`` (the default): such an ID is an error.

    Returns:
        On target ranks a ``(m, width)`` float64 array, row ``i`` for ``wanted[i]``; ``None`` on
        source ranks.

    Raises:
        ConfigError: (on every rank) some rank passed arguments that do not fit its role.
        DataError: (on every rank of both groups) a wanted ID is offered by no source rank and the
            rank that wants it passed no ``default``.
    """
    sending = link.role == source
    problem = _check_arguments(source, sending, width, ids, values, wanted)
    idle_barrier(link.world)
    # a bad argument on one rank must stop every rank, not leave the others waiting
    if link.world.allreduce(problem is not None, op=MPI.LOR):
        raise ConfigError(problem or "transfer_by_id: invalid arguments on another rank (see its message)")
    targets = link.num_md if source == "fe" else link.num_fe
    # hop 1 (inter-communicator): every offered row to its directory rank, id mod targets
    if sending:
        ids = np.asarray(ids, dtype=np.int64).ravel()
        values = np.asarray(values, dtype=np.float64).reshape(-1, width)
        order = np.argsort(ids % targets, kind="stable")
        counts = np.bincount(ids % targets, minlength=targets)
        _alltoallv(link.inter, ids[order, None], counts, 1, np.int64)
        _alltoallv(link.inter, values[order], counts, width, np.float64)
        missing = 0
        result = None
    else:
        nothing = np.zeros(link.num_fe if source == "fe" else link.num_md, dtype=np.int64)
        dir_ids, _ = _alltoallv(link.inter, np.zeros((0, 1), np.int64), nothing, 1, np.int64)
        dir_values, _ = _alltoallv(link.inter, np.zeros((0, width)), nothing, width, np.float64)
        keys, first = np.unique(dir_ids[:, 0], return_index=True)
        table = dir_values[first]  # a row offered by several ranks: they agree, keep one
        # hop 2 (receiving group): ask the directory ranks for the wanted IDs, get the rows back
        wanted = np.asarray(wanted, dtype=np.int64).ravel()
        order = np.argsort(wanted % targets, kind="stable")
        counts = np.bincount(wanted % targets, minlength=targets)
        asked, asked_counts = _alltoallv(link.comm, wanted[order, None], counts, 1, np.int64)
        pos = np.clip(np.searchsorted(keys, asked[:, 0]), 0, max(len(keys) - 1, 0))
        found = keys[pos] == asked[:, 0] if len(keys) else np.zeros(len(asked), dtype=bool)
        answer = np.where(found[:, None], table[pos] if len(keys) else 0.0, 0.0)
        # each row goes back with a last column: 1 if some source offered it
        answer = np.column_stack([answer, found.astype(np.float64)])
        back, _ = _alltoallv(link.comm, answer, asked_counts, width + 1, np.float64)
        offered = back[:, width] == 1.0
        back = back[:, :width]
        if default is not None:
            back[~offered] = np.asarray(default, dtype=np.float64).reshape(width)
            missing = 0
        else:
            missing = int(np.count_nonzero(~offered))
        result = np.empty((len(wanted), width))
        result[order] = back
    missing = link.world.allreduce(missing, op=MPI.SUM)
    if missing:
        raise DataError(
            f"transfer_by_id from {source!r}: {missing} wanted IDs are offered by no "
            "source rank; expected every wanted ID to be owned by a source rank (check that the "
            "coupling zones of both groups were built from the same lattice and defect list)"
        )
    return result
