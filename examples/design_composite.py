"""Bayesian design of the lightest fibre composite that reaches a transverse stiffness.

A unidirectional composite: circular fibres (volume fraction ``fraction``, Young's modulus
``fibre_modulus``) in epoxy. Stiffer fibres are heavier (a made-up fibre family with density
``1.5 + 0.004 E_f`` g/cm³), so the lightest composite whose transverse modulus reaches 9 GPa is
a compromise between fibre fraction and fibre stiffness. Every evaluation is a periodic
plane-strain FE RVE (:class:`scalelink.fe2.PeriodicRVE`); the stiffness constraint is learnt by
a Gaussian process on the way, the density is the objective.

The study is written as a YAML file and run by ``scalelink design``, exactly as from a shell::

    scalelink design composite.yaml            # or: mpirun -n 2 scalelink design composite.yaml

A fibre fraction above 0.55 is declared impossible to manufacture (a constraint on the
variables alone, never run). Kill the run and start it again: it resumes from the state file.

Run::

    python examples/design_composite.py              # budget 40, 48×48 RVE cells, ~20 s
    python examples/design_composite.py --quick      # budget 8, 16×16 cells, for the test suite
    mpirun -n 2 python examples/design_composite.py  # two RVEs per batch
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import mpi4py.MPI as MPI  # noqa: I001  (loads libmpi before dolfinx)

from scalelink.cli import main as scalelink

CONFIG = """\
variables:
  fraction: [0.05, 0.6]
  fibre_modulus: [10.0, 400.0]      # GPa
model:
  kind: periodic_rve
  fibre_fraction: fraction
  fibre_young: fibre_modulus
  fibre_density: 1.5 + 0.004 * fibre_modulus
  matrix_young: 3.5
  matrix_density: 1.2
  cells: {cells}
objective: density
goal: minimize
constraints:
  - transverse_modulus >= 9.0
  - fraction <= 0.55
budget: {budget}
initial: 5
seed: 0
state: {out}/state.json
plot: {out}/convergence.png
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="budget 8 on a 16×16 RVE mesh")
    parser.add_argument("--out", default="design_composite_out", help="folder for the YAML, state and plot")
    args = parser.parse_args()
    out = Path(args.out)
    if MPI.COMM_WORLD.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        budget, cells = (8, 16) if args.quick else (40, 48)
        (out / "composite.yaml").write_text(CONFIG.format(cells=cells, budget=budget, out=out))
    MPI.COMM_WORLD.barrier()

    code = scalelink(["design", str(out / "composite.yaml")])
    if code != 0:
        raise SystemExit(code)

    if MPI.COMM_WORLD.rank == 0:
        state = json.loads((out / "state.json").read_text())
        feasible = [o for o in state["observations"]
                    if o["outputs"] and o["outputs"]["transverse_modulus"] >= 9.0 and o["x"][0] <= 0.55]
        best = min(feasible, key=lambda o: o["outputs"]["density"])
        print(f"lightest feasible design: fraction {best['x'][0]:.3f}, fibre modulus {best['x'][1]:.0f} GPa, "
              f"density {best['outputs']['density']:.4f} g/cm³, transverse modulus "
              f"{best['outputs']['transverse_modulus']:.2f} GPa ({len(state['observations'])} RVE solves)")


if __name__ == "__main__":
    main()
