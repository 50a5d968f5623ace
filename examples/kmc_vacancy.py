"""Vacancy diffusion in Cu and dilute Cu(Ni) by kinetic Monte Carlo with NEB barriers.

1. **Barriers.** A nudged elastic band (climbing image, 5 images) on LAMMPS forces of the EAM
   ``CuNi.eam.alloy`` gives the migration barrier of a vacancy in pure Cu, in a periodic cell of
   ``4·3³ − 1`` atoms relaxed at the potential's lattice constant.
2. **Correlation and Arrhenius.** Rejection-free kMC of one vacancy in many periodic crystals:
   the tracer correlation factor (0.7815 for fcc) and the tracer diffusion coefficient at several
   temperatures; the Arrhenius fit of ``ln D`` against ``1/k_BT`` returns the NEB barrier.
3. **Dilute alloy.** One Ni atom in each crystal: every jump's barrier is looked up by its local
   environment (the species on the first-neighbour shells of its two sites) and computed by NEB
   the first time that environment appears. The run lists the distinct environments met, their
   barriers, and the diffusion of the solute against the host.

Run::

    python examples/kmc_vacancy.py            # 8×8×8-cell crystals, long runs
    python examples/kmc_vacancy.py --quick    # smaller runs, for the tests

The attempt frequency is an input (``--nu``, 1/s); the prefactor is not computed here.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import mpi4py.MPI  # noqa: F401, I001  (loads libmpi before lammps)
import numpy as np

from scalelink.mesoscale.free_energy import BOLTZMANN_EV
from scalelink.mesoscale.kmc import EnvironmentBarriers, FCCLattice, VacancyKMC
from scalelink.mesoscale.neb import VacancyJumpBarrier, eam_alloy_commands, fcc_lattice_constant, wheel_potential

MASSES = (63.546, 58.6934)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, for the tests")
    parser.add_argument("--nu", type=float, default=1e13, help="attempt frequency (1/s)")
    parser.add_argument("--out", type=Path, default=Path("kmc_vacancy_out"))
    args = parser.parse_args()
    replicas, steps, cells = (100, 1000, 5) if args.quick else (400, 4000, 8)
    start = time.perf_counter()

    # 1: the NEB barrier in pure Cu
    pair = eam_alloy_commands(wheel_potential("CuNi.eam.alloy"), ["Cu", "Ni"])
    a = fcc_lattice_constant(pair, MASSES)
    neb = VacancyJumpBarrier(pair, MASSES, lattice_constant=a, cells=3)
    barriers = EnvironmentBarriers(neb)
    pure = barriers.barriers(FCCLattice(3, a), np.zeros((1, 108), dtype=np.int8), np.zeros(1, dtype=np.int64))[0, 0]
    print(f"lattice constant {a:.4f} Å; vacancy migration barrier in Cu {pure:.4f} eV "
          f"({neb.runs[-1].iterations} NEB iterations)")

    # 2: correlation factor and Arrhenius
    lattice = FCCLattice(cells, a)
    temperatures = np.array([600.0, 800.0, 1000.0, 1200.0])
    runs = [VacancyKMC(lattice, temperature=t, barriers=pure, attempt_frequency=args.nu, replicas=replicas,
                       seed=11 + i).run(steps) for i, t in enumerate(temperatures)]
    diffusion = np.array([r.tracer_diffusion for r in runs])
    correlation = np.array([r.correlation_factor for r in runs])
    slope, intercept = np.polyfit(1.0 / (BOLTZMANN_EV * temperatures), np.log(diffusion), 1)
    print("T (K)   D* (Å²/s)     f")
    for t, d, f in zip(temperatures, diffusion, correlation):
        print(f"{t:6.0f}  {d:.4e}  {f:.4f}")
    print(f"Arrhenius activation energy {-slope:.4f} eV (NEB barrier {pure:.4f} eV); "
          f"correlation factor {correlation.mean():.4f} (fcc: 0.7815)")

    # 3: one Ni solute beside the vacancy in each crystal
    species = np.zeros(lattice.size, dtype=np.int8)
    species[lattice.neighbours[0, 0]] = 1
    alloy = VacancyKMC(lattice, temperature=900.0, barriers=barriers, attempt_frequency=args.nu,
                       replicas=4 if args.quick else 50, species=species, seed=3)
    result = alloy.run(30 if args.quick else 1000)
    solute_d = float(result.solute_msd_sum.sum() / (6 * result.time.sum()))
    host_d = float((result.tracer_msd_sum - result.solute_msd_sum).sum()
                   / (6 * (lattice.size - 2) * result.time.sum()))
    table = sorted(barriers.cache.values())
    print(f"dilute Cu(Ni) at 900 K: {len(table)} distinct jump environments, barriers "
          f"{min(table):.4f} … {max(table):.4f} eV; solute D {solute_d:.3e}, host D {host_d:.3e} Å²/s")

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({
        "lattice_constant": a, "barrier": float(pure), "temperatures": temperatures.tolist(),
        "diffusion": diffusion.tolist(), "correlation_factor": correlation.tolist(),
        "activation_energy": float(-slope), "prefactor": float(np.exp(intercept)),
        "expected_prefactor": float(0.7815 * 12 * args.nu * lattice.nn_distance**2 / (6 * (lattice.size - 1))),
        "alloy": {"environments": len(table), "barriers": table, "neb_runs": barriers.calls,
                  "jumps": int(result.jumps.sum()), "solute_diffusion": solute_d, "host_diffusion": host_d},
        "seconds": time.perf_counter() - start,
    }, indent=1))


if __name__ == "__main__":
    main()
