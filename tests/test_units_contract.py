"""The unit styles and constants of ``bridge/units.py`` and of the plugin's
``lammps_plugin/model/scalelink_units.cpp`` agree (the C++ file is parsed, not built)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scalelink.bridge import units

SOURCE = Path(__file__).resolve().parents[1] / "lammps_plugin" / "model" / "scalelink_units.cpp"


def _constant(text: str, name: str) -> float:
    match = re.search(rf"constexpr double {name} = ([0-9.eE+-]+);", text)
    assert match, f"{SOURCE} has no line `constexpr double {name} = ...;`"
    return float(match.group(1))


def test_the_plugin_knows_the_unit_styles_python_knows() -> None:
    text = SOURCE.read_text(encoding="utf-8")
    styles = set(re.findall(r'style == "(\w+)"', text))
    assert styles == set(units.LAMMPS_UNIT_STYLES)


def test_the_si_constants_agree() -> None:
    text = SOURCE.read_text(encoding="utf-8")
    si = units.unit_style("si")
    assert 1.0 / _constant(text, "EV_IN_JOULE") == pytest.approx(si.energy, rel=1e-15)
    assert _constant(text, "METRE_IN_ANGSTROM") == pytest.approx(si.length, rel=1e-15)
