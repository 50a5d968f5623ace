"""A fully atomistic K-test of a straight crack front in an fcc crystal: a LAMMPS cylinder
whose outer ring of atoms is held on the anisotropic near-tip field
(:class:`~scalelink.coupling.kfield.CrackTipField`), loaded in steps of the mode-I stress
intensity factor ``K`` until the tip emits a dislocation or the crack advances.

Frame: ``x`` along the direction the crack would advance, ``y`` normal to the crack plane, ``z``
along the front (periodic). The crack is the half-plane ``y = 0, x < 0``, placed halfway between
two atomic planes; the tip sits halfway between two atomic columns. Every atom starts on the
field at the first ``K``; at each later step the free atoms are moved by the field's increment
(superposition keeps them close to their new equilibrium) and relaxed with the ring held.

Events, from the relaxed atoms:

* **advance**: the crack tip, half a column before the first column (from ``−x``) at which the two
  atomic planes facing the crack, averaged along the front, are no more than ``opening`` (Å)
  further apart than in the perfect crystal, lies more than one column spacing ahead of the
  initial tip;
* **emission**: atoms more than ``core_radius`` from the tip carry a displacement beyond the
  field's of more than ``slip`` Å (a partial's Burgers vector in Cu is 1.48 Å): a dislocation
  has left the tip and glides through the crystal.

Each MD rank holds only its own atoms: the sites are those of an
:class:`~scalelink.coupling.fcc.FccLattice`, whose IDs name their reference positions, so a rank
recovers any atom's reference site from its ID and the classification is a few reductions.

Units: Å, eV; ``K`` in eV/Å^2.5 (1 MPa √m = 0.6242 eV/Å^2.5, :data:`~scalelink.bridge.units`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from mpi4py import MPI

from scalelink.bridge.errors import ConfigError

from .cauchy_born import Potential
from .fcc import FccLattice
from .kfield import CrackTipField

__all__ = ["KTest", "KTestStep", "crack_orientation_check"]


def crack_orientation_check(orientation: npt.ArrayLike) -> np.ndarray:
    """The three crystal directions (rows: ``x`` advance, ``y`` crack-plane normal, ``z`` front) as
    integer Miller indices, checked to be mutually orthogonal and right-handed."""
    rows = np.asarray(orientation, dtype=float)
    if rows.shape != (3, 3) or np.any(rows != np.round(rows)):
        raise ConfigError(f"orientation must be three integer crystal directions (x, y, z), got {orientation!r}")
    unit = rows / np.linalg.norm(rows, axis=1)[:, None]
    if not np.allclose(unit @ unit.T, np.eye(3), atol=1e-12):
        raise ConfigError(f"the directions {rows.astype(int).tolist()} are not mutually orthogonal")
    if np.linalg.det(unit) < 0:
        raise ConfigError(f"the directions {rows.astype(int).tolist()} are left-handed; reverse one of them")
    return rows.astype(int)


@dataclass
class KTestStep:
    """One load step of a :class:`KTest`.

    Attributes:
        k: mode-I stress intensity factor, eV/Å^2.5.
        tip: crack-tip position along ``x`` after relaxation, Å (the reference tip is 0).
        slip: largest displacement beyond the field's among atoms outside the core radius, Å.
        slipped: number of such atoms beyond the ``slip`` threshold.
        iterations: minimiser iterations.
        energy: potential energy after relaxation, eV.
        event: ``""``, ``"emission"`` or ``"advance"``.
    """

    k: float
    tip: float
    slip: float
    slipped: int
    iterations: int
    energy: float
    event: str = ""


@dataclass
class KTest:
    """A cylinder of radius ``radius`` (Å) around the crack tip, ``periods`` repeats of the
    crystal along the front, with a held ring of width ``ring`` (at least the potential's reach).

    Args:
        comm: communicator of the LAMMPS instance (every rank calls every method).
        potential: the pair style (one element).
        lattice_constant: the fcc lattice constant, Å (zero stress for the potential).
        stiffness: the Cauchy–Born stiffness (Mandel, eV/Å³) in the crack frame.
        orientation: crystal directions of ``x``, ``y``, ``z`` (e.g. ``[[1, 1, 0], [0, 0, 1], [1, -1, 0]]``).
        radius: cylinder radius, Å.
        periods: crystal repeats along the front.
        ring: width of the held ring, Å; default the potential's reach.
        force_tol: minimiser tolerance on the global force norm, eV/Å.
        opening: extra separation (Å) of the planes facing the crack that counts as open.
        slip: displacement (Å) beyond the field's that marks an atom as slipped.
        core_radius: atoms closer to the tip than this (Å) are not tested for slip.
        min_slipped: number of slipped atoms that makes an emission.
        screen: the crack faces do not interact further than this behind the tip (Å), so that
            the crack cannot heal (close) beyond it below the Griffith load.
        shape: ``"cylinder"`` (radius ``radius``) or ``"square"`` (``|x|, |y| < radius``): the
            square is the atomistic region of :mod:`~scalelink.coupling.crack_coupled`, whose
            fully atomistic check is the square of the continuum's size.
    """

    comm: MPI.Comm
    potential: Potential
    lattice_constant: float
    stiffness: np.ndarray
    orientation: Any
    radius: float
    periods: int = 3
    ring: float | None = None
    force_tol: float = 1e-4
    opening: float = 0.5
    slip: float = 0.6
    core_radius: float = 10.0
    min_slipped: int = 4
    screen: float = 5.0
    shape: str = "cylinder"
    steps: list[KTestStep] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.orientation = crack_orientation_check(self.orientation)
        self.ring = self.potential.reach if self.ring is None else float(self.ring)
        if self.ring < self.potential.reach:
            raise ConfigError(f"ring={self.ring} Å is thinner than the potential's reach {self.potential.reach} Å; "
                              "the free atoms next to it would miss neighbours")
        if not self.radius > self.ring + self.core_radius + 2.0 * self.lattice_constant:
            raise ConfigError(f"radius={self.radius} Å leaves no free crystal outside the core ({self.core_radius} Å) "
                              f"inside the held ring ({self.ring} Å); use a radius of at least "
                              f"{self.ring + self.core_radius + 2 * self.lattice_constant + 10:.0f} Å")
        if self.shape not in ("cylinder", "square"):
            raise ConfigError(f"shape={self.shape!r}; expected 'cylinder' or 'square'")
        if self.periods < 1:
            raise ConfigError(f"periods must be at least 1, got {self.periods}")
        self.field = CrackTipField(self.stiffness)
        self._k: float | None = None
        self._build()

    # ------------------------------------------------------------------ set-up

    def _build(self) -> None:
        from lammps import lammps

        a = self.lattice_constant
        o = self.orientation
        # the crystal's repeat length along each direction (the front's sets the periodic box)
        self.periods_length = np.array([a * _fcc_period(row) for row in o])
        self.plane_spacing = spacing_y = self._plane_spacing(o[1])
        self.z_length = z_length = self.periods * self.periods_length[2]
        reach = (np.sqrt(2.0) if self.shape == "square" else 1.0) * self.radius
        self.lattice = FccLattice.covering(a, reach + z_length + 2.0 * a, o.tolist())
        # the crack plane halfway between two atomic planes, the tip halfway between two columns: from
        # the sites around the origin (the same on every rank)
        _, x0 = self.lattice.sites(np.array([-4 * a, -4 * a, 0.0]), np.array([4 * a, 4 * a, z_length]))
        layers = np.unique(np.round(x0[:, 1], 6))
        below = layers[layers <= 1e-6].max()
        columns = np.unique(np.round(x0[np.isclose(x0[:, 1], below, atol=1e-5), 0], 6))
        left, right = columns[columns <= 1e-6].max(), columns[columns > 1e-6].min()
        self.shift = np.array([-0.5 * (left + right), -below - 0.5 * spacing_y, 0.0])
        self.column_spacing = float(np.min(np.diff(columns)))
        above = layers[layers > below + 1e-6].min()
        upper_columns = np.unique(np.round(x0[np.isclose(x0[:, 1], above, atol=1e-5), 0], 6))
        # a column of each plane facing the crack (crack frame); the others follow at column_spacing
        self.lower_origin = float(left + self.shift[0])
        self.upper_origin = float(upper_columns[np.argmin(np.abs(upper_columns + self.shift[0]))] + self.shift[0])
        half = self.radius + 3.0 * a
        self.lmp = lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"], comm=self.comm)
        self.lmp.commands_string("\n".join([
            "units metal", "atom_style atomic", "atom_modify map array", "boundary f f p",
            f"region box block {-half:.10g} {half:.10g} {-half:.10g} {half:.10g} 0 {z_length:.12g} units box",
            "create_box 3 box",
        ]))
        self.lmp.commands_string(self.potential.commands(types=3))
        # each rank creates the sites of its own subdomain (crack frame = LAMMPS frame)
        lo = np.asarray(self.lmp.extract_global("sublo"), dtype=float)
        hi = np.asarray(self.lmp.extract_global("subhi"), dtype=float)
        lo[:2] = np.where(lo[:2] <= -half + 1e-3, -half - 1.0, lo[:2])
        hi[:2] = np.where(hi[:2] >= half - 1e-3, half + 1.0, hi[:2])
        # one period of sites along z, taken from just below 0 (a site's z may come out as −1e-15) and
        # wrapped into [0, L_z), so each site is made once
        tiny = 1e-6 * a
        ids, x = self.lattice.sites(np.array([lo[0], lo[1], -tiny]) - self.shift,
                                    np.array([hi[0], hi[1], z_length - tiny]) - self.shift)
        x = x + self.shift
        x[:, 2] = np.mod(x[:, 2], z_length)
        x[:, 2] = np.where(x[:, 2] > z_length - tiny, 0.0, x[:, 2])
        keep = (self._distance(x) < self.radius) & np.all((x >= lo) & (x < hi), axis=1)
        ids, x = ids[keep], x[keep]
        # the crack faces behind x = -screen do not interact: atoms within a cutoff of the plane
        # there are type 2 (above) and 3 (below), and LAMMPS drops the 2–3 pairs
        behind = (x[:, 0] < -self.screen) & (np.abs(x[:, 1]) < self.potential.cutoff + a)
        types = np.ones(len(ids), dtype=np.int32)
        types[behind & (x[:, 1] > 0)] = 2
        types[behind & (x[:, 1] < 0)] = 3
        self.lmp.create_atoms(len(ids), ids.tolist(), types.tolist(), x.ravel().tolist())
        self.num_atoms = int(self.comm.allreduce(len(ids)))
        if int(self.lmp.get_natoms()) != self.num_atoms:
            raise ConfigError(f"LAMMPS kept {self.lmp.get_natoms()} of {self.num_atoms} crystal sites; the subdomains "
                              "do not match the site generator")
        # the free atoms by the same test as _held, a region shrunk by a tie (regions are inclusive)
        r = self.radius - self.ring - 1e-6
        region = (f"region inner cylinder z 0 0 {r:.12g} INF INF units box" if self.shape == "cylinder" else
                  f"region inner block {-r:.12g} {r:.12g} {-r:.12g} {r:.12g} INF INF units box")
        self.lmp.commands_string(f"{region}\ngroup free region inner\ngroup held subtract all free\n"
                                 "fix hold held setforce 0.0 0.0 0.0\n"
                                 "neighbor 1.0 bin\nneigh_modify every 1 delay 0 check yes exclude type 2 3\n"
                                 "thermo_style custom step pe fnorm")
        self.num_held = int(self.comm.allreduce(int(np.count_nonzero(self._held(x)))))
        self.lmp.command("variable slheld equal count(held)")
        if round(self.lmp.extract_variable("slheld")) != self.num_held:
            raise ConfigError(f"LAMMPS holds {self.lmp.extract_variable('slheld')} atoms, the crystal {self.num_held}; "
                              "move the radius or the ring width off the lattice planes by a small amount")

    def _held(self, reference: np.ndarray) -> np.ndarray:
        return self._distance(reference) >= self.radius - self.ring - 1e-6

    def _distance(self, x: np.ndarray) -> np.ndarray:
        """Distance measure of the region's shape: ``√(x² + y²)`` or ``max(|x|, |y|)``."""
        if self.shape == "cylinder":
            return np.linalg.norm(x[:, :2], axis=1)
        return np.max(np.abs(x[:, :2]), axis=1)

    def _plane_spacing(self, normal: np.ndarray) -> float:
        h = np.abs(normal)
        d = self.lattice_constant / np.linalg.norm(h)
        # fcc: (hkl) planes are spaced a/|hkl| when h, k, l are all odd, a/(2|hkl|) otherwise
        return d if np.all(h % 2 == 1) else 0.5 * d

    # ------------------------------------------------------------------ this rank's atoms

    def reference(self, ids: np.ndarray) -> np.ndarray:
        """Reference positions ``(n, 3)`` (crack frame, Å) of the atoms with LAMMPS IDs ``ids``."""
        return self.lattice.positions(np.asarray(ids, dtype=np.int64)) + self.shift

    def _local(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """IDs, reference positions and (a view of) the positions of this rank's atoms."""
        n = int(self.lmp.extract_global("nlocal"))
        ids = np.array(self.lmp.numpy.extract_atom("id")[:n], dtype=np.int64)
        return ids, self.reference(ids), self.lmp.numpy.extract_atom("x")[:n]

    def _unwrapped(self, x: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """Displacements of positions ``x`` from ``reference``, periodic images along z undone."""
        u = np.array(x, dtype=float) - reference
        u[:, 2] -= self.z_length * np.round(u[:, 2] / self.z_length)
        return u

    def local_ids(self) -> np.ndarray:
        """LAMMPS IDs of the atoms this rank owns."""
        return self._local()[0]

    def local_ring_ids(self) -> np.ndarray:
        """LAMMPS IDs of the held ring atoms this rank owns."""
        ids, reference, _ = self._local()
        return ids[self._held(reference)]

    def ring_sites(self) -> tuple[np.ndarray, np.ndarray]:
        """IDs ``(r,)`` and reference ``(x, y)`` ``(r, 2)`` of every ring atom, gathered on every rank
        (a set-up step of the coupling: the continuum locates them once). Collective."""
        ids = np.concatenate(self.comm.allgather(self.local_ring_ids()))
        return ids, self.reference(ids)[:, :2]

    def free_sites(self, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
        """IDs and reference ``(x, y)`` of every free atom with ``low <= max(|x|, |y|) <= high``,
        gathered on every rank (set-up of the hole-edge fits). Collective."""
        ids, reference, _ = self._local()
        norm = np.max(np.abs(reference[:, :2]), axis=1)
        pick = ~self._held(reference) & (norm >= low) & (norm <= high)
        all_ids = np.concatenate(self.comm.allgather(ids[pick]))
        return all_ids, self.reference(all_ids)[:, :2]

    def load(self, k: float, *, max_iterations: int = 20000) -> KTestStep:
        """Hold the ring on the field at ``k`` (eV/Å^2.5), move the free atoms by the field's
        increment since the last step, relax, and classify the result. Collective."""
        self.advance_field(k, ring=True)
        iterations = self.relax(max_iterations)
        return self.record(k, iterations)

    def advance_field(self, k: float, *, ring: bool) -> None:
        """Move the free atoms (and the ring, if ``ring``) by the field's increment from the last
        ``K`` to ``k`` (from the reference sites at the first call). Collective."""
        if not np.isfinite(k) or k <= 0.0:
            raise ConfigError(f"K must be a positive number (eV/Å^2.5), got {k!r}")
        _, reference, x = self._local()
        unit = self.field.displacement(reference, [0.0, 1.0, 0.0])
        if self._k is None:
            x[:] = reference
        x[:] += (k - (self._k or 0.0)) * unit
        if ring:
            held = self._held(reference)
            x[held] = reference[held] + k * unit[held]
        self._k = k

    def set_ring(self, ids: np.ndarray, displacement: np.ndarray) -> None:
        """Place this rank's ring atoms ``ids`` (:meth:`local_ring_ids`) at their reference sites plus
        ``displacement`` ``(n, 3)``."""
        own, reference, x = self._local()
        order = np.argsort(own)
        rows = order[np.searchsorted(own, ids, sorter=order)]
        if len(rows) and not np.array_equal(own[rows], ids):
            raise ConfigError("set_ring: some IDs are not atoms of this rank")
        x[rows] = reference[rows] + np.asarray(displacement, dtype=float).reshape(-1, 3)

    def relax(self, max_iterations: int = 20000) -> int:
        """Relax the free atoms with the ring held; returns the minimiser iterations. Collective."""
        start = int(self.lmp.extract_global("ntimestep"))
        self.lmp.command(f"minimize 0.0 {self.force_tol:.6g} {max_iterations} {10 * max_iterations}")
        return int(self.lmp.extract_global("ntimestep")) - start

    def displacements(self, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """IDs and displacements ``(n, 3)`` (Å) of this rank's atoms (all, or those in ``ids``)."""
        own, reference, x = self._local()
        u = self._unwrapped(x, reference)
        if ids is None:
            return own, u
        keep = np.isin(own, ids)
        return own[keep], u[keep]

    def record(self, k: float, iterations: int) -> KTestStep:
        """Classify the relaxed state at ``k`` and append it to :attr:`steps`. Collective."""
        energy = float(self.lmp.get_thermo("pe"))
        step = self._classify(k, iterations, energy)
        self.steps.append(step)
        return step

    def _classify(self, k: float, iterations: int, energy: float) -> KTestStep:
        _, reference, x = self._local()
        u = self._unwrapped(x, reference)
        extra = np.linalg.norm(u - k * self.field.displacement(reference, [0.0, 1.0, 0.0]), axis=1)
        r = np.linalg.norm(reference[:, :2], axis=1)
        outside = (r > self.core_radius) & ~self._held(reference)
        slip = float(self.comm.allreduce(float(extra[outside].max(initial=0.0)), op=MPI.MAX))
        slipped = int(self.comm.allreduce(int(np.count_nonzero(extra[outside] > self.slip))))
        # the two planes facing the crack, averaged per column of atoms (along z); the gap of an upper
        # column is measured against the lower plane interpolated at its x
        h = self.column_spacing
        n = int(np.ceil(2.0 * self.radius / h)) + 4
        offset = n // 2
        sums = np.zeros((2, 2, n))
        for row, (layer, origin) in enumerate(((0.5, self.upper_origin), (-0.5, self.lower_origin))):
            on = np.isclose(reference[:, 1], layer * self.plane_spacing, atol=1e-4)
            j = np.round((reference[on, 0] - origin) / h).astype(int) + offset
            np.add.at(sums[row, 0], j, x[on, 1])
            np.add.at(sums[row, 1], j, 1.0)
        total = np.zeros_like(sums)
        self.comm.Allreduce(sums, total, op=MPI.SUM)
        index = np.arange(n) - offset
        filled_u, filled_l = total[0, 1] > 0, total[1, 1] > 0
        xu = self.upper_origin + index[filled_u] * h
        xl = self.lower_origin + index[filled_l] * h
        mean_u = total[0, 0, filled_u] / total[0, 1, filled_u]
        mean_l = total[1, 0, filled_l] / total[1, 1, filled_l]
        gap = mean_u - np.interp(xu, xl, mean_l) - self.plane_spacing
        # the tip: half a column before the first upper column (from −x) whose planes are not apart
        closed = np.flatnonzero(gap <= self.opening)
        tip = float(xu[closed[0]] - 0.5 * h) if closed.size else float(xu.max())
        event = ""
        if slipped >= self.min_slipped:
            event = "emission"
        elif tip > h:
            event = "advance"
        return KTestStep(k, tip, slip, slipped, iterations, energy, event)

    def close(self) -> None:
        self.lmp.close()


def _fcc_period(row: np.ndarray) -> float:
    """Length (in lattice constants) of the shortest fcc translation along the integer direction ``row``."""
    g = np.gcd.reduce(np.abs(row[row != 0])) if np.any(row) else 1
    h = np.abs(row) // g
    length = float(np.linalg.norm(h))
    # fcc translations are the integer vectors with an even index sum, halved: h/2 is one when h's sum is even
    return 0.5 * length if int(h.sum()) % 2 == 0 else length
