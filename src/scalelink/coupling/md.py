"""Dynamic atomistic–continuum coupling with LAMMPS and dolfinx in one ``mpirun``: a bridging-domain
handshake advanced step by step over MPI.

The FE ranks (dolfinx, :mod:`~scalelink.coupling.md_continuum`) and the MD ranks (LAMMPS,
:mod:`~scalelink.coupling.md_atoms`) are the two groups of
:func:`~scalelink.coupling.exchange.split_world`; each group is parallel on its own, nothing is
replicated on every rank and nothing goes through files. The geometry is a strip periodic in y
(:mod:`~scalelink.coupling.wave_strip`): atoms on the left, elements on the right, overlapping on
``[X_a, X_b]`` where the continuum weight α(x) rises from 0 to 1 (starting with zero slope, see
:meth:`~scalelink.coupling.wave_strip.WaveStrip.alpha`). In 3D the geometry is an fcc bar periodic
in y and z (:mod:`~scalelink.coupling.wave_bar`), the elements tetrahedra; everything below takes
the dimension from the geometry. Wave-packet and patch tests are in :mod:`~scalelink.coupling.md_runs`.

Method (bridging domain with *force-based* blending):

* Both models are complete where they live. LAMMPS computes the full pair forces of every atom; the
  atoms just right of ``X_b`` (pad atoms, one cutoff deep) sit at the FE displacement interpolated
  at their sites. The elements carry the Cauchy–Born stiffness of the same potential
  (:func:`~scalelink.coupling.atomistic2d.cauchy_born_stiffness`); their nodes at ``X_a`` (slave
  nodes) take the hat-weighted average of the atom displacements around them.
* Blending enters only through the weights of the velocity projection below: atoms weigh
  ``(1 − α) m``, FE nodes ``α m_lumped``. Each model is accelerated by its own full forces and the
  constraint forces are shared in proportion to those weights.
* Constraint, for every node I of the handshake: ``Σ_i N_I(x_i) v_i = Σ_J G_θ,IJ v_J`` over the atoms
  of ``[X_a + h, X_b)``, with ``G_θ = (1 − θ) BᵀB + θ diag(BᵀB 1)`` (``B_iJ = N_J(x_i)``). θ = 0 ties the
  L2 projection of the atomic motion onto the mesh to the FE field (the motion the mesh cannot
  carry, wavelengths below 2h, stays free); ``θ = (1 − β)/2`` makes the FE nodal amplitude of a
  plane wave match what carries the same energy in a mesh with mass blend β, to O((kh)⁴)
  (:func:`~scalelink.coupling.md_runs.matched_gram_blend`).
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
with the strain (the 1D chain of :mod:`~scalelink.coupling.bridging_chain` removes them only in
the reference state), and LAMMPS pair styles cannot weight single bonds without one atom type per
lattice column. The price: energy is not an exact invariant. Without damping the 2D handshake is
weakly unstable (a fine-scale mode in the last elements before ``X_b`` grows by about 5 % per ps);
a damping rate η of 2/ps already suppresses it, the default is 5/ps.

Exchange per step, pipelined so the MD ranks wait only for the part of the FE step that needs the
atoms' forces. On the MD side it is compiled (``fix scalelink/couple`` in the ScaleLink LAMMPS
plugin): before LAMMPS computes forces each MD rank sends, for its band atoms, ``[id, u, v]`` to the
FE rank that handles them (one message per MD/FE rank pair that share atoms); the FE rank, done with
its own step by then (:meth:`~ContinuumStrip.advance`, :meth:`~ContinuumStrip.predict`), does all it
can with them (:meth:`~ContinuumStrip.prepare`) while LAMMPS computes forces. After the forces the MD
ranks send ``f``; the FE rank finishes the step (:meth:`~ContinuumStrip.complete`: one sparse
product, one small triangular solve on the constrained DOFs, two products) and replies ``[force or
next pad displacement]`` in the order received. Routing: the FE rank of every band atom is found once
by ID (:func:`~scalelink.coupling.exchange.transfer_by_id`) and stored as a LAMMPS per-atom property
that migrates with the atom, so migration needs no further exchange.

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
from .exchange import TAG_FORCES, TAG_KINEMATICS, TAG_REPLY, CouplingLink, idle_barrier, transfer_by_id
from .md_atoms import AtomisticStrip, kinematics_width
from .md_continuum import ContinuumStrip
from .md_kernel import CriticalPath

__all__ = ["RunStats", "route_atoms", "run_coupled"]

_NAP_SECONDS = 2e-5


def _poll(test: Callable[[], bool], spin: float, nap_for: float = 0.0) -> None:
    """Wait until ``test()`` holds: nap for ``nap_for`` seconds, spin (yielding the core) for ``spin`` seconds,
    then nap between tests.

    Spinning keeps the latency at microseconds when every rank has a core of its own; napping lets
    the other group run when ranks share cores (MPI's own blocking waits would spin and take them), and
    spares the neighbouring core on machines whose cores share execution resources.
    """
    start = time.perf_counter()
    while not test():
        elapsed = time.perf_counter() - start
        if nap_for <= elapsed < nap_for + spin:
            os.sched_yield()
        else:
            time.sleep(_NAP_SECONDS)


class _FEChannel:
    """FE side of the per-step exchange with ``fix scalelink/couple``: gathers this rank's handled atoms
    from whichever MD ranks own them.

    After :meth:`collect_kinematics`, :attr:`kinematics` holds ``[id, u, v]`` in the continuum's
    (sorted-ID) order, after :meth:`collect_forces` :attr:`forces` holds ``f``; rows arrive sorted when
    one MD rank owns them all (the fix sends them by ID), and are permuted otherwise.
    """

    def __init__(self, comm: MPI.Comm, handled_ids: np.ndarray, spin: float,
                 kernel: CriticalPath | None = None, dim: int = 2) -> None:
        self.comm, self.ids, self.spin, self.kernel = comm, handled_ids, spin, kernel
        n = len(handled_ids)
        self.width = kinematics_width(dim)
        self.records, self.received_forces = np.empty((n, self.width)), np.empty((n, dim))
        self.reply = np.empty((n, dim))
        self.kinematics, self.forces, self.values = self.records, self.received_forces, self.reply
        self.sources: list[tuple[int, int, int]] = []
        self._force_requests: list[MPI.Request] = []
        self._reply_requests: list[MPI.Request] = []
        self._last_ids = np.zeros(0)
        self._rows: np.ndarray | None = None
        self._expected_wait = 0.0

    def collect_kinematics(self) -> None:
        """Receive ``[id, u, v]`` of every handled atom; post the receives of their forces."""
        self.finish()
        status, got, total = MPI.Status(), 0, len(self.ids)
        self.sources = []
        begin = time.perf_counter()
        while got < total:
            # the kinematics come at a steady rhythm: nap through most of the expected wait
            nap = max(0.0, 0.7 * self._expected_wait - 5e-5) if got == 0 else 0.0
            _poll(lambda: self.comm.Iprobe(source=MPI.ANY_SOURCE, tag=TAG_KINEMATICS, status=status), self.spin, nap)
            count = status.Get_count(MPI.DOUBLE)
            width = self.width
            n = count // width
            if count % width or got + n > total:
                raise DataError(f"an FE rank handling {total} atoms received {got} + {count / width:g}; an MD "
                                "rank routed atoms to it that it does not handle (the routing table is stale), or "
                                f"sent rows of other than {width} values ([id, u, v] of a {(width - 1) // 2}D run)")
            source = status.Get_source()
            self.comm.Recv([self.records[got:got + n], MPI.DOUBLE], source=source, tag=TAG_KINEMATICS)
            self.sources.append((source, got, n))
            got += n
        self._expected_wait = 0.5 * self._expected_wait + 0.5 * (time.perf_counter() - begin)
        ids = self.records[:, 0]
        if not np.array_equal(ids, self._last_ids):
            rows = np.searchsorted(self.ids, ids.astype(np.int64))
            if total and (np.any(rows >= total) or np.any(self.ids[np.minimum(rows, total - 1)] != ids)
                          or len(np.unique(rows)) != total):
                raise DataError("an FE rank received atom IDs it does not handle, or some twice; expected each "
                                "handled atom exactly once per step")
            self._last_ids = ids.copy()
            self._rows = None if np.array_equal(rows, np.arange(total)) else rows
            self.kinematics = self.records if self._rows is None else np.empty_like(self.records)
            self.forces = self.received_forces if self._rows is None else np.empty_like(self.received_forces)
            self.values = self.reply if self._rows is None else np.empty_like(self.reply)
        if self._rows is not None:
            self.kinematics[self._rows] = self.records
        if self.kernel is not None:
            self.kernel.post(self.sources, self._rows)
        else:
            self._force_requests = [
                self.comm.Irecv([self.received_forces[start:start + n], MPI.DOUBLE], source=rank, tag=TAG_FORCES)
                for rank, start, n in self.sources]

    def collect_forces(self) -> None:
        """Wait for the forces of the atoms of :meth:`collect_kinematics`."""
        requests = self._force_requests
        _poll(lambda: MPI.Request.Testall(requests), self.spin)
        if self._rows is not None:
            self.forces[self._rows] = self.received_forces

    def send(self) -> None:
        """Send :attr:`values` (continuum order) back to the MD ranks, each in the order it sent."""
        if self._rows is not None:
            self.reply[:] = self.values[self._rows]
        self._reply_requests = [self.comm.Isend([self.reply[start:start + n], MPI.DOUBLE], dest=rank, tag=TAG_REPLY)
                                for rank, start, n in self.sources]

    def finish(self) -> None:
        """Wait until the last replies have gone (their buffer is reused by the next step)."""
        if self.kernel is not None:
            self.kernel.finish()
        requests = self._reply_requests
        _poll(lambda: MPI.Request.Testall(requests), self.spin)
        self._reply_requests = []


@dataclass
class RunStats:
    """Timing of one coupled run (the same on every rank; times are maxima over ranks, seconds).

    Attributes:
        steps: MD steps.
        seconds: wall time of the LAMMPS ``run`` on the MD ranks.
        md_work: wall time of the coupling fix's own work on an MD rank (packing, applying the reply).
        md_wait: wall time an MD rank waited for the FE ranks.
        fe_compute: FE wall time stepping; fe_wait: FE wall time waiting for MD data, fe_force_wait the
            part of it spent waiting for forces (none: the FE ranks were late, and the MD ranks waited).
        md_cpu: CPU time of an MD rank over the run; fe_cpu: of an FE rank.
        fe_critical_cpu: FE time between the arrival of the forces and the reply (what the MD waits on): CPU time
            on the PETSc path, wall time of the compiled path (which spins while it waits).
        rebuilds: times an MD rank rebuilt its band-atom list (at set-up and every reneighboring), summed.
        deferred: replies an MD rank applied at the next step (``defer``), the most over MD ranks.
        fe_path: how the FE ranks answered the forces: ``"compiled"`` (the kernel of
            :mod:`~scalelink.coupling.md_kernel`) or ``"petsc"`` (PETSc calls from Python).
        fe_path_reason: why that path ran, e.g. the FE group's rank count when the compiled path
            could not, or ``compiled=False``.
    """

    steps: int
    seconds: float = 0.0
    md_work: float = 0.0
    md_wait: float = 0.0
    fe_compute: float = 0.0
    fe_wait: float = 0.0
    md_cpu: float = 0.0
    fe_cpu: float = 0.0
    fe_critical_cpu: float = 0.0
    fe_force_wait: float = 0.0
    rebuilds: int = 0
    deferred: int = 0
    fe_path: str = ""
    fe_path_reason: str = ""

    def add(self, other: RunStats) -> None:
        """Add the steps, times and counts of a chained run (the maxima over ranks add up per run); the FE
        path is the chained run's when it is the same, both (``"compiled, then petsc"``) when not."""
        for name, value in vars(other).items():
            if isinstance(value, str):
                mine = getattr(self, name)
                setattr(self, name, value if mine in ("", value) else f"{mine}, then {value}")
            else:
                setattr(self, name, getattr(self, name) + value)


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
                atoms: AtomisticStrip | None = None, spin_seconds: float = 1e-4, compiled: bool = True,
                defer: bool = True) -> RunStats:
    """Run ``steps`` coupled steps. Collective on ``link.world``; FE ranks pass ``continuum``, MD ranks ``atoms``.

    Both sides start from their current state (on-step velocities) and end at step ``steps`` with
    on-step velocities, so runs can be chained (e.g. with a LAMMPS ``balance`` in between). A restart is
    not bit-for-bit a continued run: its first step damps and constrains the handshake with on-step
    velocities, not half-step ones (three restarts in a 1800-step packet change T by 3e-6 of the
    incident energy).

    Args:
        spin_seconds: how long a rank waiting for the other group spins before it naps between tests;
            long (e.g. 1.0) when every rank has a core of its own, short when groups share cores.
        compiled: on a one-rank FE group, answer the forces with the compiled critical path
            (:mod:`~scalelink.coupling.md_kernel`) when it is built; ``False`` keeps the PETSc path.
            Which path ran, and why, is in the result's ``fe_path`` and ``fe_path_reason``.
        defer: MD ranks integrate while the FE ranks answer and apply the reply at the next step
            (``fix scalelink/couple ... defer yes``; the same trajectory); ``False`` waits in post_force.
    """
    if (continuum is None) == link.is_fe or (atoms is None) == link.is_md or steps < 1:
        raise ConfigError(f"run_coupled on a {link.role!r} rank got continuum={continuum is not None}, atoms="
                          f"{atoms is not None}, steps={steps}; FE ranks pass `continuum`, MD ranks `atoms`, "
                          "steps >= 1")
    stats = RunStats(steps)
    idle_barrier(link.world)
    cpu = time.process_time()
    if atoms is not None:
        stats.seconds = atoms.run(steps, link, spin_seconds, defer)
        counters = atoms.counters
        stats.md_work, stats.md_wait, stats.rebuilds = counters.work, counters.wait, counters.rebuilds
        stats.deferred = counters.deferred
        if counters.exchanges != steps + 1:
            raise DataError(f"fix scalelink/couple exchanged {counters.exchanges} times in a {steps}-step run; "
                            f"expected {steps + 1}")
    elif continuum is not None:
        dt = continuum.strip.time_step
        kernel = CriticalPath.for_continuum(continuum, link.steps.py2f(), dt, spin_seconds) if compiled else None
        stats.fe_path = "petsc" if kernel is None else "compiled"
        stats.fe_path_reason = ("one FE rank and the kernel is built" if kernel is not None else
                                "compiled=False asks for the PETSc path" if not compiled
                                else CriticalPath.unavailable(continuum))
        channel = _FEChannel(link.steps, continuum.handled_ids, spin_seconds, kernel, continuum.dim)
        for n in range(steps + 1):
            start = time.perf_counter()
            continuum.predict(0.5 * dt if n == 0 else dt, dt)
            ready = time.perf_counter()
            channel.collect_kinematics()
            arrived = time.perf_counter()
            rec = channel.kinematics
            continuum.prepare(rec[:, 1:1 + continuum.dim], rec[:, 1 + continuum.dim:], dt)
            prepared = time.perf_counter()
            if kernel is not None:
                # the kernel waits for the forces itself: its wait is the waiting share of this call
                waited = kernel.wait_seconds
                continuum.complete_compiled(kernel)
                done = time.perf_counter()
                forced = prepared + (kernel.wait_seconds - waited)
                stats.fe_critical_cpu += done - forced
            else:
                channel.collect_forces()
                forced, critical = time.perf_counter(), time.process_time()
                channel.values[:] = continuum.complete(channel.forces, dt)
                channel.send()
                stats.fe_critical_cpu += time.process_time() - critical
            continuum.advance(dt)
            stats.fe_wait += (arrived - ready) + (forced - prepared)
            stats.fe_force_wait += forced - prepared
            stats.fe_compute += (ready - start) + (prepared - arrived) + (time.perf_counter() - forced)
        channel.finish()
        if kernel is not None:
            kernel.close()
        continuum.finish_run()
    cpu = time.process_time() - cpu
    stats.md_cpu = link.world.allreduce(cpu if link.is_md else 0.0, op=MPI.MAX)
    stats.fe_cpu = link.world.allreduce(cpu if link.is_fe else 0.0, op=MPI.MAX)
    for name in ("seconds", "md_work", "md_wait", "fe_compute", "fe_wait", "fe_critical_cpu", "fe_force_wait"):
        setattr(stats, name, link.world.allreduce(getattr(stats, name), op=MPI.MAX))
    stats.rebuilds = link.world.allreduce(stats.rebuilds)
    stats.deferred = link.world.allreduce(stats.deferred, op=MPI.MAX)
    stats.fe_path, stats.fe_path_reason = link.world.bcast((stats.fe_path, stats.fe_path_reason), root=link.fe_root)
    return stats
