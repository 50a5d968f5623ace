"""MPI driver for tests/test_coupling_interface.py: ``mpirun -n 2 python coupling_interface_driver.py OUT.json``.

Each MPI method runs twice on freshly built, identical problems: once through its own function
(``solve_coupled``, ``solve_condensed``, ``run_coupled``) and once picked by name through
:func:`scalelink.coupling.methods.couple`. World rank 0 writes, per method, the largest difference
between the two runs' final states (atom positions and velocities by ID, FE fields), the fields of
the two records that are not timings, and the outcome's method, kind and convergence.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import traceback

import mpi4py.MPI as MPI

import dolfinx.fem.petsc  # noqa: F401  (PETSc start-up is collective on COMM_WORLD)
import numpy as np

from scalelink.coupling.atomistic2d import AtomisticRegion
from scalelink.coupling.condensed import solve_condensed
from scalelink.coupling.exchange import CouplingLink, split_world
from scalelink.coupling.lattice import HexLattice, LennardJones2D
from scalelink.coupling.md import route_atoms, run_coupled
from scalelink.coupling.md_atoms import AtomisticStrip
from scalelink.coupling.md_continuum import ContinuumStrip
from scalelink.coupling.md_runs import wave_speed
from scalelink.coupling.methods import StaticProblem, StripDynamicsProblem, couple
from scalelink.coupling.quasistatic import (
    ContinuumRegion,
    CouplingGeometry,
    lattice_constants,
    solve_coupled,
)
from scalelink.coupling.wave_strip import StripConfig, WaveStrip

STRAIN = np.array([0.012, -0.005, 0.007 * np.sqrt(2.0)])
TIMINGS = {"seconds", "setup_seconds", "md_work", "md_wait", "fe_compute", "fe_wait", "md_cpu", "fe_cpu",
           "fe_critical_cpu", "fe_force_wait", "deferred"}
STEPS = 12


def record_fields(record: object) -> dict[str, object]:
    """The record's fields other than timings (``deferred`` counts replies that arrived late)."""
    return {k: v for k, v in dataclasses.asdict(record).items() if k not in TIMINGS}  # type: ignore[call-overload]


def static_problem(link: CouplingLink, a: float, stiffness: np.ndarray,
                   potential: LennardJones2D) -> StaticProblem:
    """The patch test of tests/coupling_driver.py, smaller: atoms at their reference sites, uniform strain."""
    geometry = CouplingGeometry(half_width=10 * a, free_half_width=5 * a, pad_width=potential.cutoff + 0.1,
                                hole_half_width=2.5 * a, mesh_size=a)
    lattice = HexLattice.covering(a, geometry.half_width + geometry.pad_width)
    geometry.validate(lattice)
    none = np.zeros(0, dtype=np.int64)
    continuum = ContinuumRegion(link.comm, lattice, stiffness, geometry, STRAIN, none) if link.is_fe else None
    atoms = (AtomisticRegion(link.comm, potential, lattice, free_half_width=geometry.free_half_width,
                             pad_width=geometry.pad_width, removed=none) if link.is_md else None)
    return StaticProblem(link, geometry, lattice, continuum=continuum, atoms=atoms)


def static_state(problem: StaticProblem) -> np.ndarray:
    """This rank's final state: the FE field, or the atom displacements sorted by ID."""
    if problem.continuum is not None:
        return problem.continuum.u.x.array.copy()
    assert problem.atoms is not None
    ids, u = problem.atoms.displacements()
    return u[np.argsort(ids)]


def strip_problem(link: CouplingLink, strip: WaveStrip, stiffness: np.ndarray) -> StripDynamicsProblem:
    """A packet in a short strip, routed and set in motion."""
    continuum = ContinuumStrip(link.comm, strip, stiffness, mass_blend=0.0) if link.is_fe else None
    atoms = AtomisticStrip(link.comm, strip) if link.is_md else None
    route_atoms(link, continuum, atoms)
    if atoms is not None:
        atoms.set_state(lambda x: strip.packet(x[:, 0])[0], lambda x: strip.packet(x[:, 0])[1])
    return StripDynamicsProblem(link, STEPS, continuum=continuum, atoms=atoms)


def strip_state(problem: StripDynamicsProblem) -> np.ndarray:
    """This rank's state after the run: FE displacements and velocities, or atom positions and velocities by ID."""
    if problem.continuum is not None:
        return np.concatenate([problem.continuum.u.array, problem.continuum.v.array])
    assert problem.atoms is not None
    lmp = problem.atoms.lmp
    n = lmp.extract_global("nlocal")
    ids = np.array(lmp.numpy.extract_atom("id")[:n])
    order = np.argsort(ids)
    x, v = np.array(lmp.numpy.extract_atom("x")[:n, :2]), np.array(lmp.numpy.extract_atom("v")[:n, :2])
    return np.concatenate([ids[order].astype(float), x[order].ravel(), v[order].ravel()])


def compare(world: MPI.Comm, direct: np.ndarray, by_name: np.ndarray) -> tuple[float, float]:
    """Largest difference of two states over all ranks (inf when their shapes differ), and the largest
    entry of the first (so that a test sees the states are not empty or zero)."""
    local = float(np.max(np.abs(direct - by_name), initial=0.0)) if direct.shape == by_name.shape else np.inf
    size = float(np.max(np.abs(direct), initial=0.0))
    return float(world.allreduce(local, op=MPI.MAX)), float(world.allreduce(size, op=MPI.MAX))


def main(out: str) -> None:
    world = MPI.COMM_WORLD
    link = split_world(world.size // 2)
    potential = LennardJones2D()
    a, stiffness = lattice_constants(link, potential)
    numbers: dict[str, object] = {}

    runs = {
        "schwarz": (lambda p: solve_coupled(p.link, p.geometry, p.lattice, continuum=p.continuum, atoms=p.atoms,
                                            tol=1e-9), {"tol": 1e-9}),
        "condensed": (lambda p: solve_condensed(p.link, p.geometry, p.lattice, continuum=p.continuum,
                                                atoms=p.atoms, minimizer="anderson"), {"minimizer": "anderson"}),
    }
    for name, (direct_call, options) in runs.items():
        states, records = [], []
        for picked in (False, True):
            problem = static_problem(link, a, stiffness, potential)
            if picked:
                outcome = couple(problem, method=name, **options)
                record = outcome.record
                numbers[f"{name}_outcome"] = [outcome.method, outcome.kind, outcome.converged,
                                              outcome.seconds == record.seconds]
            else:
                record = direct_call(problem)
            states.append(static_state(problem))
            records.append(record_fields(record))
            if problem.atoms is not None:
                problem.atoms.close()
        numbers[f"{name}_state_difference"], numbers[f"{name}_state_size"] = compare(world, *states)
        numbers[f"{name}_records"] = records

    strip = WaveStrip.for_packet(StripConfig(rows=4, packet_width=12.0), potential, a, 1.0 / a,
                                 wave_speed(stiffness, a, potential.mass))
    states, records = [], []
    for picked in (False, True):
        problem = strip_problem(link, strip, stiffness)
        if picked:
            outcome = couple(problem, method="bridging_strip", compiled=True)
            stats = outcome.record
            numbers["bridging_strip_outcome"] = [outcome.method, outcome.kind, outcome.converged,
                                                 outcome.seconds == stats.seconds]
        else:
            stats = run_coupled(link, STEPS, continuum=problem.continuum, atoms=problem.atoms, compiled=True)
        states.append(strip_state(problem))
        records.append(record_fields(stats))
        if problem.atoms is not None:
            problem.atoms.close()
    numbers["bridging_strip_state_difference"], numbers["bridging_strip_state_size"] = compare(world, *states)
    numbers["bridging_strip_records"] = records
    if world.rank == 0:
        with open(out, "w", encoding="utf-8") as stream:
            json.dump(numbers, stream, indent=1)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except BaseException:
        # an error on one group must end the run, not leave the other group waiting
        traceback.print_exc()
        sys.stdout.flush()
        MPI.COMM_WORLD.Abort(1)
