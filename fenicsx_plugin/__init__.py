"""ScaleLink for FEniCSx (dolfinx): FE² with micro models at the quadrature points and
concurrent atomistic–continuum coupling with LAMMPS.

Import what you need from the package; submodules that need dolfinx import it (and
``mpi4py.MPI`` first) only when used::

    from scalelink.fenicsx import LinearElastic, taylor_test
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it
_EXPORTS = {
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
    "AtomisticRVE": "atomistic",
    "AtomElementMap": "coupling",
    "ContinuumRegion": "coupling",
    "CouplingResult": "coupling",
    "lattice_constants": "coupling",
    "solve_coupled": "coupling",
    "solve_condensed": "coupling_condensed",
    "condense": "coupling_condensed",
    "CouplingGeometry": "coupling_geometry",
    "affine_displacement": "coupling_geometry",
    "AtomisticRegion": "atomistic2d",
    "HexLattice": "atomistic2d",
    "LennardJones2D": "atomistic2d",
    "cauchy_born_stiffness": "atomistic2d",
    "relaxed_spacing": "atomistic2d",
    "Chain1D": "dispersion",
    "GaussianProcess1D": "dispersion",
    "fe_dispersion": "dispersion",
    "fit_mass_blend": "dispersion",
    "lammps_chain_forces": "dispersion",
    "lammps_dispersion_samples": "dispersion",
    "BridgingChain": "coupling_dynamics",
    "WaveConfig": "coupling_dynamics",
    "WaveResult": "coupling_dynamics",
    "hat_functions": "coupling_dynamics",
    "StripConfig": "wave_strip",
    "WaveStrip": "wave_strip",
    "plane_wave_omega": "wave_strip",
    "lattice_max_frequency": "wave_strip",
    "lammps_plane_wave_samples": "wave_strip",
    "RunStats": "coupling_md",
    "route_atoms": "coupling_md",
    "run_coupled": "coupling_md",
    "StripWaveResult": "coupling_md_runs",
    "PatchResult": "coupling_md_runs",
    "run_wave_packet": "coupling_md_runs",
    "run_patch_test": "coupling_md_runs",
    "dispersion_samples": "coupling_md_runs",
    "surrogate_mass_blend": "coupling_md_runs",
    "matched_gram_blend": "coupling_md_runs",
    "wave_speed": "coupling_md_runs",
    "ContinuumStrip": "coupling_md_continuum",
    "AtomisticStrip": "coupling_md_atoms",
    "StripMesh": "coupling_md_mesh",
    "BandAtoms": "coupling_md_mesh",
    "SurrogateMicroModel": "surrogate",
    "sample_micro_model": "sampling",
    "MicroSamples": "sampling",
    "SamplingSpec": "sampling",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'scalelink.fenicsx' has no attribute {name!r}")
