"""Dynamic atomistic–continuum coupling with LAMMPS and dolfinx in one ``mpirun``: a bridging-domain
handshake advanced step by step over MPI.

The FE ranks (dolfinx, :mod:`~scalelink.fenicsx.coupling_md_continuum`) and the MD ranks (LAMMPS,
:mod:`~scalelink.fenicsx.coupling_md_atoms`) are the two groups of
:func:`~scalelink.bridge.exchange.split_world`; each group is parallel on its own, nothing is
replicated on every rank and nothing goes through files. The geometry is a strip periodic in y
(:mod:`~scalelink.fenicsx.wave_strip`): atoms on the left, elements on the right, overlapping on
``[X_a, X_b]`` where the continuum weight α(x) rises from 0 to 1 (starting with zero slope, see
:meth:`~scalelink.fenicsx.wave_strip.WaveStrip.alpha`). Wave-packet and patch
tests are in :mod:`~scalelink.fenicsx.coupling_md_runs`.

Method (bridging domain with *force-based* blending):

* Both models are complete where they live. LAMMPS computes the full pair forces of every atom; the
  atoms just right of ``X_b`` (pad atoms, one cutoff deep) sit at the FE displacement interpolated
  at their sites. The elements carry the Cauchy–Born stiffness of the same potential
  (:func:`~scalelink.fenicsx.atomistic2d.cauchy_born_stiffness`); their nodes at ``X_a`` (slave
  nodes) take the hat-weighted average of the atom displacements around them.
* Blending enters only through the weights of the velocity projection below: atoms weigh
  ``(1 − α) m``, FE nodes ``α m_lumped``. Each model is accelerated by its own full forces and the
  constraint forces are shared in proportion to those weights.
* Constraint, for every node I of the handshake: ``Σ_i N_I(x_i) v_i = Σ_J G_θ,IJ v_J`` over the atoms
  of ``[X_a + h, X_b)``, with ``G_θ = (1 − θ) BᵀB + θ diag(BᵀB 1)`` (``B_iJ = N_J(x_i)``). θ = 0 ties the
  L2 projection of the atomic motion onto the mesh to the FE field (the motion the mesh cannot
  carry, wavelengths below 2h, stays free); ``θ = (1 − β)/2`` makes the FE nodal amplitude of a
  plane wave match what carries the same energy in a mesh with mass blend β, to O((kh)⁴)
  (:func:`~scalelink.fenicsx.coupling_md_runs.matched_gram_blend`).
* Fine-scale damping: a force ``η α m (Q v − v)_i`` on the handshake atoms, Q the L2 projection of
  the atom velocities onto the mesh (computed from the FE velocities, which the constraint ties to
  it), i.e. a dashpot against exactly the motion the mesh cannot carry. Like a perfectly matched
  layer it absorbs that motion over the whole handshake with a rate that grows from zero with zero
  slope, so the impedance seen by an incoming wave changes gradually and little is reflected;
  what is still left at ``X_b`` (where the pad atoms, following the mesh, reflect it) is damped
  again on the way back.
* Time integration: leapfrog (LAMMPS's velocity Verlet for the atoms, explicit central differences
  for the FE with mass ``(1 − β) M_lumped + β M_consistent``), and one velocity projection per step
  (RATTLE for a linear constraint: the projections after both half kicks merge into one). The
  constraint operator ``S = G W⁻¹ Gᵀ`` and the FE mass are factorised once. β comes from the
  Gaussian-process dispersion surrogate or is 0 (lumped).

Why force-based blending: it passes the patch test exactly — under any uniform strain both models
see perfect affine neighbourhoods (the hat-weighted averages are exact for affine fields because
every slave node sits on a lattice site and the lattice and the hat functions are point
symmetric), so every force is zero to round-off. Energy-based (Xiao–Belytschko) weights would make
the coupled system Hamiltonian, but with a multi-shell potential they leave ghost forces that grow
with the strain (the 1D chain of :mod:`~scalelink.fenicsx.coupling_dynamics` removes them only in
the reference state), and LAMMPS pair styles cannot weight single bonds without one atom type per
lattice column. The price: energy is not an exact invariant. Without damping the 2D handshake is
weakly unstable (a fine-scale mode in the last elements before ``X_b`` grows by about 5 % per ps);
a damping rate η of 2/ps already suppresses it, the default is 5/ps.

Exchange per step, pipelined so the MD ranks wait only for the part of the FE step that needs the
atoms: the FE ranks do everything else (:meth:`~ContinuumStrip.predict`, :meth:`~ContinuumStrip.advance`)
while LAMMPS computes forces. Each MD rank sends, for its band atoms, ``[id, u, v, f]`` to the FE
rank that handles them (one message per MD/FE rank pair that share atoms); that FE rank receives
until all its atoms are in, finishes the step and replies ``[force or next pad displacement]`` in
the same order. Routing: the FE rank of every band atom is found once by ID
(:func:`~scalelink.bridge.exchange.transfer_by_id`) and stored as a LAMMPS per-atom property that
migrates with the atom, so migration needs no further exchange.

Units: metal (eV, Å, ps).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from scalelink.bridge.errors import ConfigError, DataError
from scalelink.bridge.exchange import CouplingLink, idle_barrier, transfer_by_id

from .coupling_md_atoms import RECORD, AtomisticStrip
from .coupling_md_continuum import ContinuumStrip

__all__ = ["RunStats", "route_atoms", "run_coupled"]

_DATA, _REPLY = 7301, 7302
_NAP_SECONDS = 2e-5


def _poll(test: Callable[[], bool], spin: float) -> None:
    """Wait until ``test()`` holds: spin (yielding the core) for ``spin`` seconds, then nap between tests.

    Spinning keeps the latency at microseconds when every rank has a core of its own; napping lets
    the other group run when ranks share cores (MPI's own blocking waits would spin and take them).
    """
    start = time.perf_counter()
    while not test():
        if time.perf_counter() - start < spin:
            os.sched_yield()
        else:
            time.sleep(_NAP_SECONDS)


class _MDChannel:
    """MD side of the per-step exchange (called from the LAMMPS callback)."""

    def __init__(self, inter: MPI.Intercomm, spin: float) -> None:
        self.inter, self.spin = inter, spin
        self._reply = np.empty((0, 2))

    def __call__(self, records: np.ndarray, counts: np.ndarray) -> np.ndarray:
        if len(self._reply) != len(records):  # the band's local size changes only when atoms migrate
            self._reply = np.empty((len(records), 2))
        reply = self._reply
        requests, start = [], 0
        for rank, n in enumerate(counts.tolist()):
            if n:
                requests.append(self.inter.Isend([records[start:start + n], MPI.DOUBLE], dest=rank, tag=_DATA))
                requests.append(self.inter.Irecv([reply[start:start + n], MPI.DOUBLE], source=rank, tag=_REPLY))
            start += n
        _poll(lambda: MPI.Request.Testall(requests), self.spin)
        return reply


class _FEChannel:
    """FE side of the per-step exchange: gathers this rank's handled atoms from whichever MD ranks own them.

    After :meth:`collect`, :attr:`data` holds the records in the continuum's (sorted-ID) order; rows arrive
    sorted when one MD rank owns them all (LAMMPS keeps the band atoms first, in creation order, which
    is ID order), and are permuted otherwise.
    """

    def __init__(self, inter: MPI.Intercomm, handled_ids: np.ndarray, spin: float) -> None:
        self.inter, self.ids, self.spin = inter, handled_ids, spin
        self.records = np.empty((len(handled_ids), RECORD))
        self.reply = np.empty((len(handled_ids), 2))
        self.data, self.values = self.records, self.reply
        self.sources: list[tuple[int, int, int]] = []
        self._last_ids = np.zeros(0)
        self._rows: np.ndarray | None = None

    def collect(self) -> None:
        status, got, total = MPI.Status(), 0, len(self.ids)
        self.sources = []
        while got < total:
            _poll(lambda: self.inter.Iprobe(source=MPI.ANY_SOURCE, tag=_DATA, status=status), self.spin)
            n = status.Get_count(MPI.DOUBLE) // RECORD
            if got + n > total:
                raise DataError(f"an FE rank handling {total} atoms received {got + n}; an MD rank routed atoms to it "
                                "that it does not handle (the routing table is stale)")
            self.inter.Recv([self.records[got:got + n], MPI.DOUBLE], source=status.Get_source(), tag=_DATA)
            self.sources.append((status.Get_source(), got, n))
            got += n
        ids = self.records[:, 0]
        if not np.array_equal(ids, self._last_ids):
            rows = np.searchsorted(self.ids, ids.astype(np.int64))
            if total and (np.any(rows >= total) or np.any(self.ids[np.minimum(rows, total - 1)] != ids)
                          or len(np.unique(rows)) != total):
                raise DataError("an FE rank received atom IDs it does not handle, or some twice; expected each "
                                "handled atom exactly once per step")
            self._last_ids = ids.copy()
            self._rows = None if np.array_equal(rows, np.arange(total)) else rows
            self.data = self.records if self._rows is None else np.empty_like(self.records)
            self.values = self.reply if self._rows is None else np.empty_like(self.reply)
        if self._rows is not None:
            self.data[self._rows] = self.records

    def send(self) -> None:
        """Send :attr:`values` (continuum order) back to the MD ranks, each in the order it sent."""
        if self._rows is not None:
            self.reply[:] = self.values[self._rows]
        requests = [self.inter.Isend([self.reply[start:start + n], MPI.DOUBLE], dest=rank, tag=_REPLY)
                    for rank, start, n in self.sources]
        _poll(lambda: MPI.Request.Testall(requests), self.spin)


@dataclass
class RunStats:
    """Timing of one coupled run (the same on every rank; times are maxima over ranks, seconds).

    Attributes:
        steps: MD steps.
        seconds: wall time of the LAMMPS ``run`` on the MD ranks.
        md_callback: wall time in the coupling callback; md_wait: part of it waiting for the FE reply.
        fe_compute: FE wall time stepping; fe_wait: FE wall time waiting for MD data.
        md_cpu: CPU time of an MD rank over the run; fe_cpu: of an FE rank.
        md_callback_cpu: CPU time of the callback's own work on an MD rank (packing, applying the reply).
        fe_critical_cpu: FE CPU time between the arrival of the atoms and the reply (what the MD waits on).
        rebuilds: times an MD rank rebuilt its index arrays (local atom list changed), summed.
    """

    steps: int
    seconds: float = 0.0
    md_callback: float = 0.0
    md_wait: float = 0.0
    fe_compute: float = 0.0
    fe_wait: float = 0.0
    md_cpu: float = 0.0
    fe_cpu: float = 0.0
    fe_critical_cpu: float = 0.0
    md_callback_cpu: float = 0.0
    rebuilds: int = 0


def route_atoms(link: CouplingLink, continuum: ContinuumStrip | None, atoms: AtomisticStrip | None) -> None:
    """Tell every MD rank which FE rank handles each of its band atoms (by atom ID). Collective on ``link.world``."""
    if continuum is not None:
        transfer_by_id(link, source="fe", width=1, ids=continuum.handled_ids,
                       values=np.full(len(continuum.handled_ids), float(link.comm.rank)))
    elif atoms is not None:
        ids = atoms.band_ids()
        ranks = transfer_by_id(link, source="fe", width=1, wanted=ids)
        atoms.set_routes(ids, np.rint(ranks[:, 0]).astype(np.int64))


def run_coupled(link: CouplingLink, steps: int, *, continuum: ContinuumStrip | None = None,
                atoms: AtomisticStrip | None = None, spin_seconds: float = 1e-4) -> RunStats:
    """Run ``steps`` coupled steps. Collective on ``link.world``; FE ranks pass ``continuum``, MD ranks ``atoms``.

    Both sides start from their current state (on-step velocities) and end at step ``steps`` with
    on-step velocities, so runs can be chained (e.g. with a LAMMPS ``balance`` in between).

    Args:
        spin_seconds: how long a rank waiting for the other group spins before it naps between tests;
            long (e.g. 1.0) when every rank has a core of its own, short when groups share cores.
    """
    if (continuum is None) == link.is_fe or (atoms is None) == link.is_md or steps < 1:
        raise ConfigError(f"run_coupled on a {link.role!r} rank got continuum={continuum is not None}, atoms="
                          f"{atoms is not None}, steps={steps}; FE ranks pass `continuum`, MD ranks `atoms`, "
                          "steps >= 1")
    stats = RunStats(steps)
    idle_barrier(link.world)
    cpu = time.process_time()
    if atoms is not None:
        before = (atoms.callback_seconds, atoms.wait_seconds, atoms.rebuilds, atoms.callback_cpu)
        stats.seconds = atoms.run(steps, _MDChannel(link.inter, spin_seconds))
        stats.md_callback = atoms.callback_seconds - before[0]
        stats.md_wait = atoms.wait_seconds - before[1]
        stats.rebuilds = atoms.rebuilds - before[2]
        stats.md_callback_cpu = atoms.callback_cpu - before[3]
    elif continuum is not None:
        channel = _FEChannel(link.inter, continuum.handled_ids, spin_seconds)
        dt = continuum.strip.time_step
        for n in range(steps + 1):
            start = time.perf_counter()
            continuum.predict(0.5 * dt if n == 0 else dt, dt)
            ready = time.perf_counter()
            channel.collect()
            arrived, critical = time.perf_counter(), time.process_time()
            rec = channel.data
            force, pad = continuum.complete(rec[:, 1:3], rec[:, 3:5], rec[:, 5:7], dt)
            np.add(force, pad, out=channel.values)  # force rows and pad rows are disjoint
            channel.send()
            stats.fe_critical_cpu += time.process_time() - critical
            continuum.advance(dt)
            stats.fe_wait += arrived - ready
            stats.fe_compute += (ready - start) + (time.perf_counter() - arrived)
        continuum.finish_run()
    cpu = time.process_time() - cpu
    stats.md_cpu = link.world.allreduce(cpu if link.is_md else 0.0, op=MPI.MAX)
    stats.fe_cpu = link.world.allreduce(cpu if link.is_fe else 0.0, op=MPI.MAX)
    for name in ("seconds", "md_callback", "md_wait", "fe_compute", "fe_wait", "fe_critical_cpu", "md_callback_cpu"):
        setattr(stats, name, link.world.allreduce(getattr(stats, name), op=MPI.MAX))
    stats.rebuilds = link.world.allreduce(stats.rebuilds)
    return stats
