"""Mesoscale models fitted from atomistics: Cahn–Hilliard phase field with a free energy learned
from semi-grand-canonical Monte Carlo (deployed as a model file of kind ``free_energy`` by
``deploy``), and vacancy kinetic Monte Carlo with migration barriers from nudged-elastic-band runs.

Submodules are imported explicitly (``phasefield`` and ``neb`` need dolfinx and LAMMPS):
``from scalelink.mesoscale.kmc import VacancyKMC``.
"""

from __future__ import annotations

__all__: list[str] = []
