"""Wave-packet and patch-test runs of the dynamic LAMMPS–dolfinx coupling, and the dispersion surrogate
that sets the continuum's mass (see :mod:`~scalelink.coupling.md` for the method).

All functions are collective on ``link.world`` unless they say otherwise; results are the same on
every rank. Units: metal (eV, Å, ps).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from mpi4py import MPI

from scalelink.bridge.errors import ConfigError
from .dispersion import MVV2E, GaussianProcess1D, fit_mass_blend
from .exchange import CouplingLink, idle_barrier
from .md import RunStats, route_atoms, run_coupled
from .md_atoms import AtomisticStrip
from .md_continuum import ContinuumStrip
from .wave_bar import WaveBar
from .wave_strip import WaveStrip, lammps_plane_wave_samples

__all__ = [
    "PatchResult",
    "StripWaveResult",
    "dispersion_samples",
    "matched_gram_blend",
    "run_patch_test",
    "run_wave_packet",
    "surrogate_mass_blend",
    "wave_speed",
]


def wave_speed(stiffness: np.ndarray, spacing: float, mass: float) -> float:
    """Longitudinal wave speed ``√(C11/ρ)`` (Å/ps) of the continuum.

    Args:
        stiffness: Mandel stiffness ``(3, 3)``, eV/Å². spacing: lattice spacing a, Å. mass: atomic mass, g/mol
            (the density is one atom per ``√3 a²/2``).
    """
    density = mass * MVV2E / (0.5 * np.sqrt(3.0) * spacing**2)
    return float(np.sqrt(stiffness[0, 0] / density))


def matched_gram_blend(mass_blend: float) -> float:
    """The constraint blend ``θ = (1 − β)/2`` that, with mass blend β, transmits plane-wave energy to O((kh)⁴).

    With P1 elements, the L2 projection of ``cos kx`` has nodal amplitude ``1 + (kh)²/12`` and the lumped
    average ``1 − (kh)²/12``; the blend θ gives ``1 + (1 − 2θ)(kh)²/12``. A nodal wave of amplitude A
    carries energy ``A² (1 − β (kh)²/6)`` relative to the lattice, so ``1 − 2θ = β`` makes the two agree.
    """
    if not 0.0 <= mass_blend <= 1.0:
        raise ConfigError(f"mass_blend={mass_blend}; expected 0 <= β <= 1")
    return 0.5 * (1.0 - mass_blend)


def dispersion_samples(link: CouplingLink, potential: Any, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """LAMMPS-measured plane-wave dispersion ``(k (n,) 1/Å, ω (n,) rad/ps)`` on the MD ranks, on every rank."""
    samples = lammps_plane_wave_samples(potential, spacing, link.comm) if link.is_md else None
    idle_barrier(link.world)
    k, omega = link.world.bcast(samples, root=link.md_root)
    return np.asarray(k), np.asarray(omega)


def surrogate_mass_blend(k: np.ndarray, omega: np.ndarray, element_size: float, speed: float) -> tuple[float, float]:
    """The GP dispersion surrogate's mass blend β, and its held-out error. Not collective.

    A Gaussian process is trained on every other sample (the error on the others, rad/ps, is the
    second value), then on all samples; β makes the FE plane-wave dispersion match it on ``k <= 0.9 π/h``
    (:func:`~scalelink.coupling.dispersion.fit_mass_blend`).

    Args:
        k, omega: samples ``(n,)`` (1/Å, rad/ps). element_size: h, Å. speed: continuum wave speed, Å/ps.
    """
    held_out = GaussianProcess1D().fit(k[::2], omega[::2])
    error = float(np.max(np.abs(np.asarray(held_out.predict(k[1::2])) - omega[1::2])))
    return fit_mass_blend(GaussianProcess1D().fit(k, omega), element_size, speed), error


@dataclass
class StripWaveResult:
    """One wave packet (the same on every rank).

    Attributes:
        wavenumber: central k, 1/Å. reflected: R, energy back in the purely atomistic region / incident.
        transmitted: energy in the elements beyond ``X_b`` / incident. incident: eV.
        run: timing of the coupled run. alone_seconds, alone_cpu: wall and CPU time of LAMMPS alone, same
            atoms and steps (0 when not timed).
    """

    wavenumber: float
    reflected: float
    transmitted: float
    incident: float
    run: RunStats
    alone_seconds: float = 0.0
    alone_cpu: float = 0.0


def _build(link: CouplingLink, strip: WaveStrip | WaveBar, stiffness: np.ndarray, mass_blend: float,
           gram_blend: float) -> tuple[ContinuumStrip | None, AtomisticStrip | None]:
    continuum = (ContinuumStrip(link.comm, strip, stiffness, mass_blend=mass_blend, gram_blend=gram_blend)
                 if link.is_fe else None)
    atoms = AtomisticStrip(link.comm, strip) if link.is_md else None
    route_atoms(link, continuum, atoms)
    return continuum, atoms


def run_wave_packet(link: CouplingLink, strip: WaveStrip | WaveBar, stiffness: np.ndarray, *, mass_blend: float,
                    gram_blend: float = 0.0, time_alone: bool = False, chunks: int = 1, spin_seconds: float = 1e-4,
                    compiled: bool = True, defer: bool = True) -> StripWaveResult:
    """Send the strip's packet from the atoms into the continuum; measure R and T. Collective on ``link.world``.

    Args:
        link: the run's communicators. strip: the geometry of this packet. stiffness: Cauchy–Born
            Mandel stiffness ``(3, 3)``, eV/Å².
        mass_blend: β of the FE mass. gram_blend: θ of the constraint (0: L2 projection).
        time_alone: also run the same atoms alone (pad atoms held, no coupling fix) for the same
            number of steps on the MD ranks, timed, while the FE ranks wait without spinning.
        chunks: split the run into this many chained coupled runs and, with ``time_alone``, follow each
            by as many steps alone, so that both timings see the same machine (a shared machine's speed
            drifts over seconds). The physics is that of one run.
        spin_seconds, compiled, defer: see :func:`~scalelink.coupling.md.run_coupled`.

    Returns:
        The energies and timings, the same on every rank.
    """
    if chunks < 1 or chunks > strip.steps:
        raise ConfigError(f"chunks={chunks}; expected 1 <= chunks <= the run's {strip.steps} steps")
    continuum, atoms = _build(link, strip, stiffness, mass_blend, gram_blend)
    incident = 0.0
    lone = None
    if atoms is not None:
        atoms.set_state(lambda x: strip.packet(x[:, 0])[0], lambda x: strip.packet(x[:, 0])[1])
        incident = atoms.atomistic_energy()
        if time_alone:
            lone = AtomisticStrip(link.comm, strip)
            lone.set_state(lambda x: strip.packet(x[:, 0])[0], lambda x: strip.packet(x[:, 0])[1])
    stats = RunStats(0)
    alone = alone_cpu = 0.0
    for steps in np.diff(np.linspace(0, strip.steps, chunks + 1).round().astype(int)).tolist():
        stats.add(run_coupled(link, steps, continuum=continuum, atoms=atoms, spin_seconds=spin_seconds,
                              compiled=compiled, defer=defer))
        if lone is not None:
            cpu = time.process_time()
            alone += link.comm.allreduce(lone.run(steps, None), op=MPI.MAX)
            alone_cpu += link.comm.allreduce(time.process_time() - cpu, op=MPI.MAX)
        if time_alone:
            idle_barrier(link.world)  # the FE ranks sleep while the MD ranks run alone
    reflected = atoms.atomistic_energy() if atoms is not None else 0.0
    transmitted = continuum.transmitted_energy() if continuum is not None else 0.0
    if lone is not None:
        lone.close()
    if atoms is not None:
        atoms.close()
    idle_barrier(link.world)
    incident, reflected, alone, alone_cpu = link.world.bcast((incident, reflected, alone, alone_cpu), root=link.md_root)
    transmitted = link.world.bcast(transmitted, root=link.fe_root)
    return StripWaveResult(strip.wavenumber, reflected / incident, transmitted / incident, incident, stats, alone, alone_cpu)


@dataclass
class PatchResult:
    """Uniform-strain patch test in dynamics (maxima over all ranks and over the run's last step).

    Attributes:
        atom_force: largest total force on a free atom, eV/Å. node_force: largest FE nodal force, eV/Å.
        atom_drift, node_drift: largest distance from the affine field, Å.
        atom_speed, node_speed: largest velocity, Å/ps. stats: timing and rebuild counts.
        migrated: band atoms that changed MD rank at the rebalance, summed over MD ranks.
    """

    atom_force: float
    node_force: float
    atom_drift: float
    node_drift: float
    atom_speed: float
    node_speed: float
    stats: RunStats
    migrated: int = 0


def run_patch_test(link: CouplingLink, strip: WaveStrip | WaveBar, stiffness: np.ndarray, gradient: np.ndarray, *,
                   mass_blend: float, steps: int, rebalance: float | None = None,
                   gram_blend: float = 0.0, spin_seconds: float = 1e-4) -> PatchResult:
    """Start every atom and node on ``u = H X`` at rest and run; everything must stay put. Collective.

    Args:
        link, strip, stiffness, mass_blend, gram_blend, spin_seconds: as for :func:`run_wave_packet`.
        gradient: displacement gradient H ``(dim, dim)`` whose columns but the first are zero (``u = H X``
            depends on x alone, compatible with the periods across the strip or bar).
        steps: time steps.
        rebalance: if given, run half the steps, move the MD ranks' x cut with ``balance 1.0 x
            <rebalance>`` (atoms change MD rank) and run the other half.

    Raises:
        ConfigError: ``gradient`` is not a ``dim × dim`` matrix with only its first column non-zero.
    """
    gradient = np.asarray(gradient, dtype=float)
    dim = strip.dim
    if gradient.shape != (dim, dim) or np.any(gradient[:, 1:] != 0.0):
        raise ConfigError(f"gradient {gradient.tolist()}: expected a {dim}×{dim} H whose columns but the first are "
                          "zero, so that u = H X keeps the strip or bar periodic across")
    continuum, atoms = _build(link, strip, stiffness, mass_blend, gram_blend)

    def affine(x: np.ndarray) -> np.ndarray:
        return x @ gradient.T

    if atoms is not None:
        atoms.set_state(affine)
    if continuum is not None:
        continuum.set_state(affine)
    parts = [steps] if rebalance is None else [steps // 2, steps - steps // 2]
    total, migrated = RunStats(steps), 0
    for i, part in enumerate(parts):
        if i and atoms is not None:
            before = atoms.band_ids()
            atoms.lmp.command(f"balance 1.0 x {rebalance:.17g}")
            migrated = int(np.count_nonzero(~np.isin(atoms.band_ids(), before)))
        stats = run_coupled(link, part, continuum=continuum, atoms=atoms, spin_seconds=spin_seconds)
        total.seconds += stats.seconds
        total.rebuilds += stats.rebuilds
        total.fe_path, total.fe_path_reason = stats.fe_path, stats.fe_path_reason
    atom = (atoms.max_free_force(), *atoms.max_deviation(affine)) if atoms is not None else (0.0, 0.0, 0.0)
    node = (continuum.node_force(), *continuum.max_deviation(affine)) if continuum is not None else (0.0, 0.0, 0.0)
    if atoms is not None:
        atoms.close()
    atom = tuple(link.world.allreduce(v, op=MPI.MAX) for v in atom)
    node = tuple(link.world.allreduce(v, op=MPI.MAX) for v in node)
    migrated = link.world.allreduce(migrated)
    return PatchResult(atom[0], node[0], atom[1], node[1], atom[2], node[2], total, migrated)
