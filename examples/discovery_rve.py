"""Discovering the effective diffusion law of a periodic microstructure from its transients.

A unit cell with a circular inclusion (conductivity 5) in an anisotropic matrix
(``k = [[1, 0.3], [0.3, 0.7]]``) is tiled ``tiles × tiles`` times; a smooth macro-scale bump of
concentration diffuses through it (:func:`scalelink.discovery.diffusion_transient`, dolfinx,
BDF2, no-flux walls). From the recorded micro fields alone, the weak-form regression is asked
for a conservation law ``∂c/∂t = ∇·(K∇c) − ∇·F(c) + R(c)`` with a symmetric positive definite
``K``, advective fluxes ``c`` and ``c²`` per axis and reactions ``1, c, c²`` as candidates. The
test functions are broad (several cells), so they average the micro fluctuations; they stay a
cell away from the walls. Homogenization theory says the answer is pure diffusion with the
effective tensor of the periodic cell problem, which
:func:`scalelink.fe2.effective_conductivity` computes on the same cell mesh: the two are
compared component by component.

Run::

    python examples/discovery_rve.py                    # 16 × 16 cells of 8 × 8 elements
    python examples/discovery_rve.py --quick            # 12 × 12 cells of 6 × 6, for the tests
    mpirun -n 2 python examples/discovery_rve.py --quick
"""

from __future__ import annotations

import argparse

import mpi4py.MPI as MPI  # noqa: I001  (loads libmpi before dolfinx)
import numpy as np

from scalelink.discovery import (
    ConservationLibrary,
    assemble_weak_system,
    bump_centres,
    diffusion_transient,
    discover,
    tiled_mesh,
)
from scalelink.fe2 import circular_inclusion, effective_conductivity, unit_cell_mesh

MATRIX = np.array([[1.0, 0.3], [0.3, 0.7]])
INCLUSION = 5.0
RADIUS = 0.3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="12 × 12 cells of 6 × 6 elements")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    tiles, cells = (12, 6) if args.quick else (16, 8)
    conductivities = {0: MATRIX, 1: INCLUSION}
    marker = circular_inclusion(RADIUS)

    # Reference: the periodic cell problem on the cell mesh the tiles are made of.
    reference = effective_conductivity(unit_cell_mesh(2, cells), conductivities,
                                       cell_tags=marker)

    # Micro data: a Gaussian of width L/6 diffusing for 10 time units, recorded from t = 1
    # (after the micro modes of the initial field, decaying in ~cell²/k, are gone).
    length = float(tiles)
    width = length / 6.0

    def initial(x: np.ndarray) -> np.ndarray:
        return np.exp(-((x[0] - 0.45 * length) ** 2 + (x[1] - 0.55 * length) ** 2)
                      / (2.0 * width**2))

    domain = tiled_mesh(comm, tiles, cells)
    space, times, snapshots = diffusion_transient(
        domain, marker, conductivities, initial, time_step=0.05, steps=200, record_from=20,
        record_every=2)

    radius = length / 4.0
    system = assemble_weak_system(
        space, snapshots, times,
        library=ConservationLibrary(flux_powers=(1, 2), reaction_powers=(0, 1, 2)),
        centres=bump_centres(radius + 1.0, length - radius - 1.0, 4, dim=2), radius=radius,
        time_windows=8, time_radius=0.25 * (times[-1] - times[0]), quadrature_degree=2,
    )
    law = discover(system)
    error = np.abs(law.diffusion - reference).max() / np.abs(reference).max()
    if comm.rank == 0:
        print(law)
        print("K discovered:\n", np.array2string(law.diffusion, precision=5))
        print("K from the periodic cell problem:\n", np.array2string(reference, precision=5))
        print(f"largest component difference: {100 * error:.3f} % of max|K| "
              f"({comm.size} rank(s))")


if __name__ == "__main__":
    main()
