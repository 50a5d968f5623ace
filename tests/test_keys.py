"""The C++ key header mirrors the Python key registry."""

from __future__ import annotations

import re
from pathlib import Path

from scalelink.bridge import keys

HEADER = Path(__file__).resolve().parents[1] / "lammps_plugin" / "model" / "scalelink_keys.h"


def test_cpp_header_matches_python_registry() -> None:
    text = HEADER.read_text()
    cpp = dict(re.findall(r'constexpr\s+const\s+char\s*\*\s*(\w+)\s*=\s*"([^"]*)"\s*;', text))
    python = {name: getattr(keys, name) for name in keys.__all__ if isinstance(getattr(keys, name), str)}
    assert cpp, f"no key constants found in {HEADER}"
    assert cpp == python
