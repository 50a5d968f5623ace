"""ScaleLink multi-fidelity fusion: Kennedy–O'Hagan AR1 co-kriging of a high-fidelity micro
model (atomistic RVE, fine FE RVE) on a cheap one (unrelaxed Cauchy–Born, coarse RVE, a
closed-form bound), with predictive variance, and an FE² micro model served from it that flags
the quadrature points whose prediction is too uncertain.

Public names are imported on first use, so that ``import scalelink.multifidelity`` loads
neither scikit-learn nor dolfinx::

    from scalelink.multifidelity import AR1CoKriging
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it
EXPORTS = {
    "AR1CoKriging": "cokriging",
    "FusedPrediction": "cokriging",
    "check_samples": "cokriging",
    "fit_gaussian_process": "cokriging",
    "FusedCubicElastic": "micro",
}

__all__ = sorted(EXPORTS)


def __getattr__(name: str) -> Any:
    if name in EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
