"""Unit systems, and the one place conversions between them live.

Potentials work in LAMMPS ``metal`` units (eV, Å, ps). Factors below convert a quantity
given in a LAMMPS unit style into the same quantity in ``metal`` units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .errors import UnitsError

__all__ = [
    "AMU_IN_MASS_UNIT",
    "BOLTZMANN_EV_PER_K",
    "EV_PER_CUBIC_ANGSTROM_IN_GPA",
    "JOULE_PER_SQUARE_METRE_IN_EV_PER_SQUARE_ANGSTROM",
    "LAMMPS_UNIT_STYLES",
    "MPA_ROOT_METRE_IN_EV_PER_ANGSTROM_2_5",
    "MVV2E",
    "PRESSURE_IN_GPA",
    "UnitStyle",
    "conversion_to_metal",
    "unit_style",
]

# Exact CODATA-derived constants used by LAMMPS' `update.cpp`. The plugin's
# lammps_plugin/model/scalelink_units.cpp holds the same; tests/test_contracts.py checks both.
_EV_IN_KCAL_PER_MOL: Final = 23.060549
_EV_IN_JOULE: Final = 1.602176634e-19
_ANGSTROM_IN_METRE: Final = 1.0e-10

MVV2E: Final = 1.0364269e-4
"""LAMMPS ``metal`` mvv2e: (g/mol)·(Å/ps)² in eV."""

BOLTZMANN_EV_PER_K: Final = 1.380649e-23 / _EV_IN_JOULE
"""Boltzmann's constant in eV/K (exact in the 2019 SI: 8.617333262e-5)."""

EV_PER_CUBIC_ANGSTROM_IN_GPA: Final = _EV_IN_JOULE / _ANGSTROM_IN_METRE**3 * 1.0e-9
"""A stress of 1 eV/Å³ in GPa (160.2176634)."""

JOULE_PER_SQUARE_METRE_IN_EV_PER_SQUARE_ANGSTROM: Final = _ANGSTROM_IN_METRE**2 / _EV_IN_JOULE
"""A surface energy of 1 J/m² in eV/Å² (0.0624150907)."""

MPA_ROOT_METRE_IN_EV_PER_ANGSTROM_2_5: Final = 1.0e6 * _ANGSTROM_IN_METRE**2.5 / _EV_IN_JOULE
"""A stress intensity factor of 1 MPa √m in eV/Å^2.5 (0.624150907)."""

PRESSURE_IN_GPA: Final = {"metal": 1.0e-4, "real": 1.01325e-4, "si": 1.0e-9}
"""One pressure unit of each LAMMPS unit style (bar, atm, Pa) in GPa."""

AMU_IN_MASS_UNIT: Final = {"metal": 1.0, "real": 1.0, "si": 1.66053906660e-27}
"""One atomic mass unit in each LAMMPS unit style's mass unit (g/mol, g/mol, kg)."""


@dataclass(frozen=True)
class UnitStyle:
    """Energy and length units of a LAMMPS unit style, expressed in eV and Å.

    Attributes:
        name: LAMMPS unit style (``metal``, ``real``, ``si``).
        energy: size of the style's energy unit in eV.
        length: size of the style's length unit in Å.
    """

    name: str
    energy: float
    length: float

    @property
    def force(self) -> float:
        """Size of the style's force unit in eV/Å."""
        return self.energy / self.length


LAMMPS_UNIT_STYLES: Final = {
    "metal": UnitStyle("metal", 1.0, 1.0),
    "real": UnitStyle("real", 1.0 / _EV_IN_KCAL_PER_MOL, 1.0),
    "si": UnitStyle("si", 1.0 / _EV_IN_JOULE, 1.0 / _ANGSTROM_IN_METRE),
}


def unit_style(name: str) -> UnitStyle:
    """Return the :class:`UnitStyle` called ``name``.

    Raises:
        UnitsError: ``name`` is not a supported style (``lj`` has no physical scale).
    """
    try:
        return LAMMPS_UNIT_STYLES[name]
    except KeyError:
        raise UnitsError(
            f"unit style {name!r} is not supported; use one of {sorted(LAMMPS_UNIT_STYLES)} "
            "(lj units carry no physical scale for a trained potential)"
        ) from None


def conversion_to_metal(name: str) -> tuple[float, float]:
    """Return ``(energy, length)`` factors that turn values in style ``name`` into metal units."""
    style = unit_style(name)
    return style.energy, style.length
