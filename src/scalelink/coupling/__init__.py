"""ScaleLink atomistic–continuum coupling: a LAMMPS atomistic region and a dolfinx continuum,
two groups of one ``mpirun`` exchanging data over MPI.

Methods: the quasi-static Schwarz loop (:func:`~.quasistatic.solve_coupled`), the condensed
one-relaxation solve (:func:`~.condensed.solve_condensed`), the 1D bridging-domain chain
(:class:`~.bridging_chain.BridgingChain`) and LAMMPS–dolfinx dynamics
(:func:`~.md.run_coupled`). :func:`~.methods.couple` runs any of them by name on a problem
description (:mod:`~.methods`). In 3D, :func:`~.schwarz3d.solve_coupled_3d` couples an fcc LAMMPS
region of any pair style with a tetrahedral continuum. Public names are imported on first use::

    from scalelink.coupling import StaticProblem, couple, HexLattice
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it
EXPORTS = {
    "AtomElementMap": "quasistatic",
    "ContinuumRegion": "quasistatic",
    "CouplingResult": "quasistatic",
    "lattice_constants": "quasistatic",
    "solve_coupled": "quasistatic",
    "solve_condensed": "condensed",
    "ChainWaveProblem": "methods",
    "CouplingMethod": "methods",
    "CouplingOutcome": "methods",
    "StaticProblem": "methods",
    "StripDynamicsProblem": "methods",
    "couple": "methods",
    "coupling_method": "methods",
    "coupling_methods": "methods",
    "condense": "condensed",
    "CouplingGeometry": "geometry",
    "affine_displacement": "geometry",
    "AtomisticRegion": "atomistic2d",
    "HexLattice": "lattice",
    "LennardJones2D": "lattice",
    "cauchy_born_stiffness": "atomistic2d",
    "relaxed_spacing": "atomistic2d",
    "Chain1D": "dispersion",
    "GaussianProcess1D": "dispersion",
    "fe_dispersion": "dispersion",
    "fit_mass_blend": "dispersion",
    "lammps_chain_forces": "dispersion",
    "lammps_dispersion_samples": "dispersion",
    "BridgingChain": "bridging_chain",
    "WaveConfig": "bridging_chain",
    "WaveResult": "bridging_chain",
    "hat_functions": "bridging_chain",
    "StripConfig": "wave_strip",
    "WaveStrip": "wave_strip",
    "plane_wave_omega": "wave_strip",
    "lattice_max_frequency": "wave_strip",
    "lammps_plane_wave_samples": "wave_strip",
    "RunStats": "md",
    "route_atoms": "md",
    "run_coupled": "md",
    "StripWaveResult": "md_runs",
    "PatchResult": "md_runs",
    "run_wave_packet": "md_runs",
    "run_patch_test": "md_runs",
    "dispersion_samples": "md_runs",
    "surrogate_mass_blend": "md_runs",
    "matched_gram_blend": "md_runs",
    "wave_speed": "md_runs",
    "ContinuumStrip": "md_continuum",
    "AtomisticStrip": "md_atoms",
    "StripMesh": "md_mesh",
    "BandAtoms": "md_mesh",
    "FccLattice": "fcc",
    "Potential": "cauchy_born",
    "crystal_constants": "cauchy_born",
    "AtomisticRegion3D": "atomistic3d",
    "ContinuumRegion3D": "continuum3d",
    "solve_coupled_3d": "schwarz3d",
}

__all__ = sorted(EXPORTS)


def __getattr__(name: str) -> Any:
    if name in EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
