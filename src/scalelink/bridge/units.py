"""Unit systems, and the one place conversions between them live.

Potentials work in LAMMPS ``metal`` units (eV, Å, ps). Factors below convert a quantity
given in a LAMMPS unit style into the same quantity in ``metal`` units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .errors import UnitsError

__all__ = ["LAMMPS_UNIT_STYLES", "UnitStyle", "conversion_to_metal", "unit_style"]

# Exact CODATA-derived constants used by LAMMPS' `update.cpp`.
_EV_IN_KCAL_PER_MOL: Final = 23.060549
_EV_IN_JOULE: Final = 1.602176634e-19
_ANGSTROM_IN_METRE: Final = 1.0e-10


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
