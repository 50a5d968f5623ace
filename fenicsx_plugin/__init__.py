"""ScaleLink for FEniCSx (dolfinx): FE² with micro models at the quadrature points and
concurrent atomistic–continuum coupling with LAMMPS.

Nothing is exported yet; the solvers arrive with the FE² and coupling work.
"""

from __future__ import annotations

__all__: list[str] = []
