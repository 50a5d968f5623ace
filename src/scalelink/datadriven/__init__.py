"""ScaleLink data-driven mechanics: a distance-minimising solver (Kirchdoerfer & Ortiz 2016)
whose material law is a database of states ``(ε_i, σ_i)`` — measurements, micro-model samples
(``scalelink sample-micro``) or a closed-form law sampled on a grid.

Public names are imported on first use, so that ``import scalelink.datadriven`` loads neither
dolfinx nor scipy::

    from scalelink.datadriven import DataDrivenProblem, load_database
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it
EXPORTS = {
    "MaterialDatabase": "database",
    "database_from_samples": "database",
    "linear_elastic_database": "database",
    "load_database": "database",
    "StateSearch": "search",
    "check_stiffness": "search",
    "fit_stiffness": "search",
    "DataDrivenProblem": "solver",
    "DataDrivenResult": "solver",
    "DataDrivenSolveError": "solver",
}

__all__ = sorted(EXPORTS)


def __getattr__(name: str) -> Any:
    if name in EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
