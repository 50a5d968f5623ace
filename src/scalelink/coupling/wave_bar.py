"""A periodic bar of an fcc crystal for 3D wave-packet coupling runs: geometry, the lattice's force
constants and plane-wave dispersion measured with LAMMPS (any pair style), and the incident packet.

The bar is periodic in y and z (``rows`` conventional cells, cube edge a, in each) and long in x,
the crystal's cube axes along the lab axes. Plane waves travel along x = [100]: by the crystal's
fourfold axis the longitudinal branch there is decoupled from the transverse ones, so the bar
behaves as a 1D medium whose "atoms" are the (100) planes, spaced a/2, and a reflected energy
fraction R(k) can be measured as in one dimension. The Brillouin-zone edge along [100] is
``k a = 2π``.

Layout along x (Å), left to right, as in :mod:`~scalelink.coupling.wave_strip`: held atoms
``[0, x_held)`` (a wall at least one force reach thick that never moves), free atoms up to ``X_b``
with the handshake ``[X_a, X_b]`` at their right end, pad atoms ``[X_b, X_b + pad)`` (one force
reach thick) that follow the finite elements, and tetrahedra from ``X_a − h`` to ``x_end``.
``X_a`` and every FE node sit on cube corners of the lattice, sites about which both the lattice
and the hat functions of the mesh are point symmetric, so the hat-weighted averages of
:mod:`~scalelink.coupling.md_continuum` are exact for affine fields.

Units: metal (eV, Å, ps); frequencies rad/ps, wavenumbers 1/Å.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from scalelink.bridge.errors import ConfigError

from .cauchy_born import Potential
from .dispersion import MVV2E
from .exchange import CouplingLink, idle_barrier
from .fcc import FccLattice
from .wave_strip import PacketGeometry, check_band_damping

__all__ = ["BarConfig", "ForceConstants", "WaveBar", "bar_force_constants", "bar_wave_speed", "fcc_force_constants"]

# fine-scale damping (1/ps) below which the force-blended handshake was seen to be weakly unstable (2D)
_MIN_STABLE_DAMPING = 2.0
_BASIS = np.array([[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])


@dataclass(frozen=True)
class ForceConstants:
    """Harmonic force constants of a monatomic crystal, measured with LAMMPS.

    Attributes:
        offsets: ``(n, 3)`` vectors (Å) from the displaced atom to every atom of the periodic cell
            (nearest image), the atom itself included (offset 0).
        blocks: ``(n, 3, 3)`` blocks ``Φ_ab = ∂²E/∂u_0a ∂u_jb = −∂F_jb/∂u_0a`` (eV/Å²).
        mass: atomic mass, g/mol.
    """

    offsets: np.ndarray
    blocks: np.ndarray
    mass: float

    def dynamical(self, k: np.ndarray) -> np.ndarray:
        """Dynamical matrices ``(m, 3, 3)`` (rad²/ps²) at wavevectors ``k`` ``(m, 3)`` (1/Å)."""
        # the lattice is centrosymmetric (cosines only); cos − 1 keeps the acoustic sum rule exact
        phase = np.cos(np.asarray(k, dtype=float) @ self.offsets.T) - 1.0
        d = np.einsum("kn,nab->kab", phase, self.blocks) / (self.mass * MVV2E)
        return 0.5 * (d + np.swapaxes(d, 1, 2))

    def longitudinal(self, k: np.ndarray) -> np.ndarray:
        """ω(k) (rad/ps) of the longitudinal branch along x for wavenumbers ``k`` ``(m,)`` (1/Å)."""
        k = np.asarray(k, dtype=float)
        w2 = (np.cos(np.multiply.outer(k, self.offsets[:, 0])) - 1.0) @ self.blocks[:, 0, 0] / (self.mass * MVV2E)
        return np.sqrt(np.maximum(w2, 0.0))

    def group_velocity(self, k: float) -> float:
        """dω/dk (Å/ps) of the longitudinal branch along x at ``k`` (1/Å)."""
        dk = 1e-6
        return float(self.longitudinal(np.array([k + dk, k - dk])) @ [1.0, -1.0]) / (2.0 * dk)

    def max_frequency(self, constant: float, grid: int = 16) -> float:
        """Largest phonon frequency (rad/ps), all three branches over a grid of the reciprocal cube
        ``[0, 4π/a)³`` (a cell of the fcc reciprocal lattice, so the grid covers the zone)."""
        s = np.arange(grid) * 4.0 * np.pi / (grid * constant)
        k = np.array(np.meshgrid(s, s, s, indexing="ij")).reshape(3, -1).T
        top = 0.0
        for chunk in np.array_split(k, max(1, len(k) // 512)):
            top = max(top, float(np.max(np.linalg.eigvalsh(self.dynamical(chunk)))))
        return float(np.sqrt(top))


def fcc_force_constants(potential: Potential, constant: float, comm: MPI.Comm, *, step: float = 1e-4) -> ForceConstants:
    """Force constants of the fcc crystal (cube axes) by central differences of LAMMPS forces.

    A periodic cell of ``n³`` conventional cells, ``n a`` more than twice the potential's reach so that
    no force constant is aliased by a periodic image; atom 1 is moved by ``±step`` Å along x, y
    and z in turn (six force evaluations). Collective on ``comm``.
    """
    from lammps import lammps

    n = int(np.ceil(2.0 * potential.reach / constant)) + 1
    i, j, k, b = np.meshgrid(np.arange(n), np.arange(n), np.arange(n), np.arange(4), indexing="ij")
    x = constant * (np.column_stack([i.ravel(), j.ravel(), k.ravel()]) + _BASIS[b.ravel()])
    length = n * constant
    blocks = np.zeros((len(x), 3, 3))
    for axis in range(3):
        forces = []
        for sign in (1.0, -1.0):
            lmp = lammps(comm=comm, cmdargs=["-screen", "none", "-log", "none", "-nocite"])
            lmp.commands_string("units metal\nboundary p p p\natom_style atomic\n"
                                f"region cell block 0 {length:.17g} 0 {length:.17g} 0 {length:.17g}\n"
                                "create_box 1 cell\n" + potential.commands())
            moved = x.copy()
            moved[0, axis] += sign * step
            lmp.create_atoms(len(x), np.arange(1, len(x) + 1), np.ones(len(x), dtype=int), moved.ravel())
            lmp.command("run 0")
            count = lmp.extract_global("nlocal")
            out = np.zeros((len(x), 3))
            out[np.array(lmp.numpy.extract_atom("id")[:count]) - 1] = lmp.numpy.extract_atom("f")[:count]
            lmp.close()
            forces.append(comm.allreduce(out))
        blocks[:, axis, :] = -(forces[0] - forces[1]) / (2.0 * step)
    offsets = x - x[0]
    offsets -= length * np.round(offsets / length)
    return ForceConstants(offsets, blocks, potential.mass)


@dataclass(frozen=True)
class BarConfig:
    """Size and numerical parameters of a 3D wave-packet bar.

    Attributes:
        rows: conventional cells in y and in z (the bar is ``rows`` a wide and deep).
        element_spacings: element length h along x in cube edges (the mesh carries ``k <= π/h``);
            across the bar the elements are one cube edge.
        overlap_elements: handshake width W in elements.
        packet_width: Gaussian envelope standard deviation, in cube edges.
        amplitude: displacement amplitude, Å (small: the measure is linear).
        fine_damping: peak rate η (1/ps) of the fine-scale damping, as in
            :class:`~scalelink.coupling.wave_strip.StripConfig`.
        time_step_fraction: time step as a fraction of ``2/ω_max`` of the lattice.
        lead: extra atomistic length left of the packet, in cube edges.
        damping_ramp: the damping rate is ``η min(1, α / damping_ramp)``: full from α = 0.35 on,
            so that the waves the mesh cannot carry are absorbed before the mesh dominates the
            handshake.
        band_filter: ``(a, b)``: the damping acts, besides the fine scales ``v − Q v``, on the
            band of the mesh's wavenumbers near its cutoff, whose lattice frequencies lie above
            the highest frequency the mesh carries (k h > 0.83π for Cu with h = 2a). The atoms are
            damped towards ``F Q v`` instead of ``Q v``, F the low-pass along x of gain
            ``1 − I_s(a, b)`` at ``s = sin²(k h / 2)`` (``I`` the regularised incomplete beta
            function: a polynomial of degree ``a + b − 1`` in the nodes' second difference, so F
            reaches that many nodes each way; monotone, between 0 and 1, and exact for linear
            fields). (10, 2): gain 0.99 at k h = 0.51π, 0.45 at 0.76π, 0.04 at 0.89π. ``None``
            damps the fine scales only.
    """

    rows: int = 4
    element_spacings: int = 2
    overlap_elements: int = 16
    packet_width: float = 10.0
    amplitude: float = 1e-3
    fine_damping: float = 10.0
    time_step_fraction: float = 0.2
    lead: float = 0.0
    damping_ramp: float = 0.35
    band_filter: tuple[int, int] | None = (10, 2)

    def validate(self, potential: Potential, constant: float) -> None:
        """Raise :class:`ConfigError` for sizes the coupling cannot use."""
        if self.rows < 1 or self.element_spacings < 1 or self.overlap_elements < 2:
            raise ConfigError(
                f"BarConfig rows={self.rows}, element_spacings={self.element_spacings}, overlap_elements="
                f"{self.overlap_elements}; expected rows >= 1, element_spacings >= 1, overlap_elements >= 2")
        if self.rows * constant <= 2.0 * potential.cutoff:
            raise ConfigError(
                f"a bar of {self.rows} cells is {self.rows * constant:.2f} Å wide, not more than twice the cutoff "
                f"({potential.cutoff} Å); use rows >= {int(2 * potential.cutoff / constant) + 1}")
        if (self.fine_damping < 0.0 or not 0.0 < self.time_step_fraction <= 0.5 or self.amplitude <= 0.0
                or self.lead < 0.0 or self.packet_width <= 0.0):
            raise ConfigError(
                f"BarConfig fine_damping={self.fine_damping}, time_step_fraction={self.time_step_fraction}, "
                f"amplitude={self.amplitude}, lead={self.lead}, packet_width={self.packet_width}; expected "
                "fine_damping >= 0, 0 < time_step_fraction <= 0.5, amplitude > 0, lead >= 0, packet_width > 0")
        check_band_damping(self.damping_ramp, self.band_filter, self.overlap_elements)
        if self.fine_damping < _MIN_STABLE_DAMPING:
            warnings.warn(
                f"BarConfig fine_damping={self.fine_damping}/ps is below {_MIN_STABLE_DAMPING}/ps: without enough "
                "fine-scale damping a mode of the last handshake elements can grow; use the default 10/ps",
                RuntimeWarning, stacklevel=2)


@dataclass(frozen=True)
class WaveBar(PacketGeometry):
    """Where everything is, for one packet in the 3D bar (lengths Å, times ps); the same on every rank.

    Build it with :meth:`for_packet`. It offers what the dynamic coupling needs of a geometry, as
    :class:`~scalelink.coupling.wave_strip.WaveStrip` does in 2D: ``x_held``, ``x_a``, ``x_b``,
    ``pad_width``, ``x_end``, the element size h (x) and height (y, z), the lattice that names the
    sites, the continuum weight α, the band of atoms exchanged with the continuum and the packet
    (α, the band and the step count from :class:`~scalelink.coupling.wave_strip.PacketGeometry`).
    ``spacing`` is the cube edge a.
    """

    config: BarConfig
    potential: Potential
    spacing: float
    constants: ForceConstants
    wavenumber: float
    x_held: float
    x_a: float
    x_b: float
    pad_width: float
    x_end: float
    packet_centre: float
    end_time: float
    time_step: float

    dim = 3

    @classmethod
    def for_packet(cls, config: BarConfig, potential: Potential, constant: float, constants: ForceConstants,
                   wavenumber: float, wave_speed: float) -> WaveBar:
        """The bar for a packet of central wavenumber ``wavenumber`` (1/Å).

        Room is made as in the 2D strip: the packet starts five envelope widths before the handshake
        and the run lasts until a reflection would be as far back; the elements reach far enough
        that the transmitted packet never meets their held right end. ``constants`` are the
        lattice's force constants (:func:`fcc_force_constants`), ``wave_speed`` the continuum's
        longitudinal speed, Å/ps.
        """
        config.validate(potential, constant)
        a = constant
        if not 0.0 < wavenumber * a < 2.0 * np.pi:
            raise ConfigError(f"wavenumber*a={wavenumber * a:.3f}; expected 0 < k a < 2π (inside the Brillouin "
                              "zone along [100])")
        vg = constants.group_velocity(wavenumber)
        if vg <= 0.05 * wave_speed:
            raise ConfigError(f"the group velocity at k a = {wavenumber * a:.3f} is {vg:.3g} Å/ps, too slow to leave "
                              "the atoms in a reasonable run; use a smaller wavenumber")
        h = config.element_spacings * a
        width = config.overlap_elements * h
        sigma = config.packet_width * a
        x_held = float(np.ceil((potential.reach + 0.5 * a) / a) * a)
        gap = 5.0 * sigma + 0.5 * width
        x0 = x_held + config.lead * a + max(6.0 * sigma, gap * (wave_speed / (2.0 * vg) - 1.0) + 2.0 * sigma)
        x_a = float(np.round((x0 + gap - 0.5 * width) / a) * a)
        end_time = 2.0 * gap / vg
        length = width + 0.5 * wave_speed * end_time + 4.0 * sigma
        x_end = x_a + h * np.ceil(length / h)
        dt = config.time_step_fraction * 2.0 / constants.max_frequency(a)
        pad = float(np.ceil((potential.reach + 0.5 * a) / a) * a)
        bar = cls(config, potential, a, constants, wavenumber, x_held, x_a, x_a + width, pad, float(x_end),
                  float(x0), float(end_time), float(dt))
        bar.lattice  # noqa: B018 - refuses a bar whose site IDs would not fit LAMMPS's tagint
        return bar

    @property
    def element_size(self) -> float:
        """Element length h along x, Å."""
        return self.config.element_spacings * self.spacing

    @property
    def element_height(self) -> float:
        """Element size across the bar (y and z): one cube edge, Å."""
        return self.spacing

    @property
    def height(self) -> float:
        """Period of the bar along y and along z, Å."""
        return self.config.rows * self.spacing

    @property
    def reflection_edge(self) -> float:
        """x (Å) left of which the energy counts as reflected: one force reach before ``X_a``, where no
        atom's force depends on an atom of the handshake."""
        return self.x_a - self.potential.reach

    @property
    def lattice(self) -> FccLattice:
        """The lattice naming the sites (IDs) of the bar."""
        return FccLattice(self.spacing, np.eye(3), int(np.ceil((self.x_b + self.pad_width) / self.spacing)) + 2)

    def sites(self, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        """IDs ``(n,)`` and reference positions ``(n, 3)`` of the atoms with ``lo <= x < hi`` (Å)."""
        lo, hi = max(lo, 0.0), min(hi, self.x_b + self.pad_width)
        if hi <= lo:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 3))
        top = self.height - 1e-6 * self.spacing
        ids, x = self.lattice.sites(np.array([lo, 0.0, 0.0]), np.array([hi, top, top]))
        return ids.astype(np.int64), x

    def packet(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Displacement and velocity ``(n, 3)`` (Å, Å/ps) of the right-moving longitudinal packet at
        reference x ``(n,)``: ``u_x = A g(ξ) cos kξ``, ``v_x = ω A g sin kξ + v_g (ξ/σ²) A g cos kξ``."""
        k = self.wavenumber
        omega = float(self.constants.longitudinal(np.array([k]))[0])
        vg = self.constants.group_velocity(k)
        sigma = self.config.packet_width * self.spacing
        xi = np.asarray(x, dtype=float) - self.packet_centre
        env = self.config.amplitude * np.exp(-0.5 * (xi / sigma) ** 2)
        u, v = np.zeros((len(xi), 3)), np.zeros((len(xi), 3))
        u[:, 0] = env * np.cos(k * xi)
        v[:, 0] = omega * env * np.sin(k * xi) + vg * xi / sigma**2 * env * np.cos(k * xi)
        return u, v


def bar_force_constants(link: CouplingLink, potential: Potential, constant: float) -> ForceConstants:
    """:func:`fcc_force_constants` on the MD ranks, on every rank. Collective on ``link.world``."""
    fc = fcc_force_constants(potential, constant, link.comm) if link.is_md else None
    idle_barrier(link.world)
    return link.world.bcast(fc, root=link.md_root)


def bar_wave_speed(stiffness: np.ndarray, constant: float, mass: float) -> float:
    """Longitudinal wave speed ``√(C11/ρ)`` (Å/ps) along x of the continuum; stiffness Mandel ``(6, 6)``
    eV/Å³, ρ four atoms of ``mass`` (g/mol) per cube ``a³``."""
    density = 4.0 * mass * MVV2E / constant**3
    return float(np.sqrt(stiffness[0, 0] / density))
