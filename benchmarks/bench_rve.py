"""Accuracy and cost of the periodic FE RVE against closed-form homogenization results.

    python benchmarks/bench_rve.py [--points 8]

Prints Markdown tables: laminate errors vs the exact layered-medium formula, the checkerboard
conductivity convergence to Keller's √(k₁k₂), a fibre composite's plane-strain stiffness vs the
Voigt/Reuss and Hashin bounds, and the time of one nonlinear RVE evaluation per macro point.
"""

from __future__ import annotations

import argparse
import time

import mpi4py.MPI  # noqa: F401  (loads libmpi before dolfinx)
import numpy as np

from scalelink.fe2.homogenization import (
    hashin_shtrikman_bounds,
    laminate_stiffness,
    reuss_bound,
    uniform_random_rotations,
    voigt_bound,
)
from scalelink.fe2.micro import LinearElastic, MicroModel
from scalelink.fe2.rve import (
    PeriodicRVE,
    RVEMicroModel,
    checkerboard,
    circular_inclusion,
    effective_conductivity,
    hexagonal_array,
    laminate,
    unit_cell_mesh,
)
from scalelink.fe2.tensors import (
    cubic_stiffness,
    isotropic_stiffness,
    plane_strain,
    rotate_stiffness,
)


class _Hardening(MicroModel):
    """``σ = C ε + β |ε|² ε``, a nonlinear elastic phase."""

    def __init__(self, stiffness: np.ndarray, beta: float) -> None:
        self.c, self.beta, self.strain_size = stiffness, beta, stiffness.shape[0]

    def evaluate(
        self, strain: np.ndarray, *, time_step: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        sq = np.einsum("na,na->n", strain, strain)
        tangent = self.c + self.beta * (sq[:, None, None] * np.eye(self.strain_size)
                                        + 2.0 * np.einsum("na,nb->nab", strain, strain))
        return strain @ self.c.T + self.beta * sq[:, None] * strain, tangent


def _phases(dim: int) -> tuple[np.ndarray, np.ndarray]:
    m = 6 if dim == 3 else 3
    return (isotropic_stiffness(young=20.0, poisson=0.2, strain_size=m),
            isotropic_stiffness(young=1.0, poisson=0.35, strain_size=m))


def laminates() -> None:
    print("| laminate | max abs error | max entry |\n|---|---|---|")
    rotation = uniform_random_rotations(1, seed=7)[0]
    cubic = rotate_stiffness(cubic_stiffness(168.4, 121.4, 75.4), rotation)
    for dim, axis, cells, fraction, aniso in [(2, 0, 8, 0.25, False), (2, 1, 8, 0.25, True),
                                              (3, 2, 4, 0.5, False), (3, 0, 4, 0.5, True)]:
        stiff, soft = _phases(dim)
        if aniso:
            stiff = cubic if dim == 3 else plane_strain(cubic)
        rve = PeriodicRVE(unit_cell_mesh(dim, cells),
                          {1: LinearElastic(stiff), 0: LinearElastic(soft)},
                          cell_tags=laminate(fraction, axis))
        ref = laminate_stiffness([stiff, soft], [fraction, 1 - fraction], axis=axis)
        err = np.abs(rve.effective_stiffness() - ref).max()
        kind = "cubic (rotated) / isotropic" if aniso else "isotropic / isotropic"
        print(f"| {dim}D normal {'xyz'[axis]}, {kind} | {err:.1e} | {np.abs(ref).max():.3g} |")


def checkerboard_table() -> None:
    print("\n| cells | degree | k_eff (k1=1, k2=4) | error vs 2 | observed order |"
          "\n|---|---|---|---|---|")
    for degree in (1, 2):
        previous = None
        for cells in (8, 16, 32, 64):
            k = effective_conductivity(unit_cell_mesh(2, cells), {0: 1.0, 1: 4.0},
                                       cell_tags=checkerboard(), degree=degree)
            err = np.trace(k) / 2 - 2.0
            order = "" if previous is None else f"{np.log2(previous / err):.3f}"
            print(f"| {cells} | {degree} | {np.trace(k) / 2:.6f} | {err:.2e} | {order} |")
            previous = err
    print(f"(corner singularity: expected order 2α = {4 / np.pi * np.arccos(0.6):.3f})")


def composite() -> None:
    stiff, soft = _phases(2)
    bulk = [(p[0, 0] + p[0, 1]) / 2 for p in (soft, stiff)]
    shear = [p[2, 2] / 2 for p in (soft, stiff)]
    print("\n| fibre array | cells | f_fibre | κ | μ_a = C33/2 | μ_b = (C11−C12)/2 "
          "| Hashin κ | HS μ | Reuss κ, μ | Voigt κ, μ |"
          "\n|---|---|---|---|---|---|---|---|---|---|")
    h = np.sqrt(3.0)
    for name, cells in [("square", 16), ("square", 32), ("square", 64),
                        ("hexagonal", 16), ("hexagonal", 32)]:
        if name == "square":
            mesh, marker = unit_cell_mesh(2, cells), circular_inclusion(0.3)
        else:
            mesh = unit_cell_mesh(2, (cells, round(h * cells)), size=(1.0, h), diagonal="crossed")
            marker = hexagonal_array(0.3)
        rve = PeriodicRVE(mesh, {0: LinearElastic(soft), 1: LinearElastic(stiff)},
                          cell_tags=marker)
        c = rve.effective_stiffness()
        f = [rve.volume_fractions[0], rve.volume_fractions[1]]
        kl, ku, gl, gu = hashin_shtrikman_bounds(bulk, shear, f, dim=2)
        v, r = voigt_bound([soft, stiff], f), reuss_bound([soft, stiff], f)
        kappa, mu_b = (c[0, 0] + c[1, 1] + 2 * c[0, 1]) / 4, (c[0, 0] + c[1, 1] - 2 * c[0, 1]) / 4
        print(f"| {name} r=0.3 | {cells} | {f[1]:.4f} | {kappa:.4f} "
              f"| {c[2, 2] / 2:.4f} | {mu_b:.4f} "
              f"| [{kl:.4f}, {ku:.4f}] | [{gl:.4f}, {gu:.4f}] "
              f"| {(r[0, 0] + r[0, 1]) / 2:.4f}, {r[2, 2] / 2:.4f} "
              f"| {(v[0, 0] + v[0, 1]) / 2:.4f}, {v[2, 2] / 2:.4f} |")


def timing(points: int) -> None:
    print("\n| RVE | free dofs | RVE quad. points | Newton its | ms / macro point |"
          "\n|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for dim, cells in [(2, 8), (2, 16), (2, 32), (3, 4), (3, 8)]:
        stiff, soft = _phases(dim)
        rve = PeriodicRVE(unit_cell_mesh(dim, cells),
                          {0: _Hardening(soft, 2000.0), 1: LinearElastic(stiff)},
                          cell_tags=circular_inclusion(0.3))
        model = RVEMicroModel(rve)
        strain = 0.01 * rng.standard_normal((points, rve.strain_size))
        model.setup(points)
        start = time.perf_counter()
        model.evaluate(strain)
        per_point = (time.perf_counter() - start) / points
        its = rve.solve(strain[0]).iterations
        print(f"| {dim}D {cells}^{dim} P1 | {rve.operator.num_free} | "
              f"{rve.operator.num_quadrature_points} | {its} | {1e3 * per_point:.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=8, help="macro points timed per RVE")
    args = parser.parse_args()
    laminates()
    checkerboard_table()
    composite()
    timing(args.points)
