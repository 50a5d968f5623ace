"""MPI driver for tests/test_coupling_md.py: ``mpirun -n N python coupling_md_driver.py OUT.json FE_RANKS CASES``.

CASES is a comma-separated list of: ``patch`` (uniform strain at rest; with several MD ranks the
x cut between them moves half-way, so band atoms change MD rank), ``waves`` (packets at k a = 0.2,
1.0 with the dispersion surrogate, 1.0 lumped, 2.0 and 2.5 above the mesh cutoff), ``wave1`` (k a = 1.0
with the surrogate only), ``stability`` (random fine-scale motion near the handshake, weakly
damped, 3000 steps), ``plain`` (k a = 1.0 with the FE critical path through PETSc and the MD ranks
waiting in post_force), ``chunked`` (k a = 1.0 in four chained runs). Writes the numbers to OUT.json
on world rank 0.
"""

from __future__ import annotations

import json
import sys
import traceback

import mpi4py.MPI as MPI

import dolfinx.fem.petsc  # noqa: F401  (PETSc start-up is collective on COMM_WORLD)
import numpy as np

from scalelink.coupling.exchange import split_world
from scalelink.coupling.lattice import LennardJones2D
from scalelink.coupling.quasistatic import lattice_constants
from scalelink.coupling.md import route_atoms, run_coupled
from scalelink.coupling.md_atoms import AtomisticStrip
from scalelink.coupling.md_continuum import ContinuumStrip
from scalelink.coupling.md_runs import (
    dispersion_samples,
    matched_gram_blend,
    run_patch_test,
    run_wave_packet,
    surrogate_mass_blend,
    wave_speed,
)
from scalelink.coupling.wave_strip import StripConfig, WaveStrip

CONFIG = StripConfig(rows=4, packet_width=12.0)


def main(out: str, fe_ranks: int, cases: list[str]) -> None:
    world = MPI.COMM_WORLD
    link = split_world(fe_ranks)
    potential = LennardJones2D()
    a, stiffness = lattice_constants(link, potential)
    speed = wave_speed(stiffness, a, potential.mass)
    k, omega = dispersion_samples(link, potential, a)
    beta, _ = surrogate_mass_blend(k, omega, CONFIG.element_spacings * a, speed)
    theta = matched_gram_blend(beta)
    numbers: dict[str, object] = {"fe_ranks": link.num_fe, "md_ranks": link.num_md, "beta": beta}

    def strip(ka: float, config: StripConfig = CONFIG) -> WaveStrip:
        return WaveStrip.for_packet(config, potential, a, ka / a, speed)

    if "patch" in cases:
        result = run_patch_test(link, strip(0.5), stiffness, np.array([[0.012, 0.0], [-0.007, 0.0]]),
                                mass_blend=beta, gram_blend=theta, steps=20,
                                rebalance=0.9 if link.num_md > 1 else None)
        numbers["patch"] = {k: v for k, v in vars(result).items() if k != "stats"}
    waves = {"waves": [("gp", 0.2), ("gp", 1.0), ("lumped", 1.0), ("gp", 2.0), ("gp", 2.5)], "wave1": [("gp", 1.0)]}
    for case, packets in waves.items():
        if case in cases:
            for kind, ka in packets:
                mass, gram = (beta, theta) if kind == "gp" else (0.0, 0.0)
                r = run_wave_packet(link, strip(ka), stiffness, mass_blend=mass, gram_blend=gram)
                numbers[f"{kind}_{ka}"] = {"reflected": r.reflected, "transmitted": r.transmitted, "steps": r.run.steps,
                                           "deferred": r.run.deferred}
    # k a = 1.0 again: through PETSc from Python with the MD ranks waiting in post_force, and in 4 chained runs
    variants = {"plain": {"compiled": False, "defer": False}, "chunked": {"chunks": 4}}
    for case, options in variants.items():
        if case in cases:
            r = run_wave_packet(link, strip(1.0), stiffness, mass_blend=beta, gram_blend=theta, **options)
            numbers[case] = {"reflected": r.reflected, "transmitted": r.transmitted, "deferred": r.run.deferred}
    if "stability" in cases:
        numbers["stability"] = stability(link, strip(1.0, StripConfig(rows=4, packet_width=12.0, fine_damping=2.0)),
                                         stiffness, beta, theta)
    if world.rank == 0:
        with open(out, "w", encoding="utf-8") as stream:
            json.dump(numbers, stream, indent=1)


def stability(link, strip, stiffness, beta, theta) -> list[float]:  # type: ignore[no-untyped-def]
    """Largest free-atom speed (Å/ps) at the start and after each of three 1000-step runs."""
    continuum = ContinuumStrip(link.comm, strip, stiffness, mass_blend=beta, gram_blend=theta) if link.is_fe else None
    atoms = AtomisticStrip(link.comm, strip) if link.is_md else None
    route_atoms(link, continuum, atoms)

    def largest_speed() -> float:
        if atoms is None:
            return link.world.allreduce(0.0, op=MPI.MAX)
        ids, types, _, v = atoms._local()
        return link.world.allreduce(float(np.max(np.abs(v[types == 1, :2]), initial=0.0)), op=MPI.MAX)

    if atoms is not None:
        def kick(x: np.ndarray) -> np.ndarray:
            rng = np.random.default_rng(7)
            return 0.05 * rng.standard_normal(x.shape) * (x[:, :1] > strip.x_a - 20 * strip.spacing)

        atoms.set_state(lambda x: np.zeros_like(x), kick)
    speeds = [largest_speed()]
    for _ in range(3):
        run_coupled(link, 1000, continuum=continuum, atoms=atoms)
        speeds.append(largest_speed())
    if atoms is not None:
        atoms.close()
    return speeds


if __name__ == "__main__":
    try:
        main(sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","))
    except BaseException:
        # an error on one group must end the run, not leave the other group waiting
        traceback.print_exc()
        sys.stdout.flush()
        MPI.COMM_WORLD.Abort(1)
