"""ScaleLink FE²: a macro finite-element problem (dolfinx) with a micro model at every
quadrature point — closed-form materials, viscoelasticity, periodic FE RVEs, atomistic RVEs in
LAMMPS, network surrogates — and the homogenization references they are checked against.

Public names are imported on first use, so that ``import scalelink.fe2`` loads neither dolfinx
nor LAMMPS::

    from scalelink.fe2 import FE2Problem, LinearElastic
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it
EXPORTS = {
    "LinearElastic": "micro",
    "MicroModel": "micro",
    "Phasewise": "micro",
    "TaylorResult": "micro",
    "quadrature_points": "macro",
    "taylor_test": "micro",
    "FE2Problem": "macro",
    "FE2SolveError": "macro",
    "NewtonResult": "macro",
    "mandel_strain": "macro",
    "FE2Writer": "macro_io",
    "J2Plasticity": "materials",
    "StiffeningElastic": "materials",
    "PronyFit": "prony",
    "PronySeries": "prony",
    "fit_prony": "prony",
    "fit_prony_frequency": "prony",
    "relaxation_time_grid": "prony",
    "stretched_exponential_modulus": "prony",
    "Viscoelastic": "viscoelastic",
    "cubic_stiffness": "tensors",
    "isotropic_stiffness": "tensors",
    "mandel_from_tensor": "tensors",
    "plane_strain": "tensors",
    "rotate_stiffness": "tensors",
    "tensor_from_mandel": "tensors",
    "PeriodicRVE": "rve",
    "RVEMicroModel": "rve",
    "RVESolution": "rve",
    "RVEConvergenceError": "rve",
    "effective_conductivity": "rve",
    "hill_mandel_gap": "rve",
    "unit_cell_mesh": "rve",
    "laminate": "rve",
    "circular_inclusion": "rve",
    "hexagonal_array": "rve",
    "checkerboard": "rve",
    "PeriodicOperator": "periodic",
    "voigt_bound": "homogenization",
    "reuss_bound": "homogenization",
    "hashin_shtrikman_bounds": "homogenization",
    "laminate_stiffness": "homogenization",
    "laminate_conductivity": "homogenization",
    "isotropic_moduli": "homogenization",
    "uniform_random_rotations": "homogenization",
    "fibre_texture_rotations": "homogenization",
    "polycrystal_voigt_reuss": "homogenization",
    "sphere_directions": "homogenization",
    "directional_young": "homogenization",
    "young_gap": "homogenization",
    "AtomisticRVE": "atomistic_rve",
    "cubic_constants": "alloys",
    "random_alloy": "alloys",
    "SurrogateMicroModel": "surrogate",
    "sample_micro_model": "sampling",
    "MicroSamples": "sampling",
    "SamplingSpec": "sampling",
}

__all__ = sorted(EXPORTS)


def __getattr__(name: str) -> Any:
    if name in EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
