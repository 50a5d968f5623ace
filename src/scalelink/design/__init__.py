"""ScaleLink design: batch Bayesian optimisation over microstructure designs (fibre fraction and
moduli, alloy composition, …) whose micro model is a periodic FE RVE, an atomistic RVE or a user
callable, with constraints, failed runs as missing data and resumable state; the engine of
``scalelink design CONFIG.yaml``.

Public names are imported on first use, so that ``import scalelink.design`` loads neither
scikit-learn nor dolfinx::

    from scalelink.design import load_design_config, run_design
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it
EXPORTS = {
    "DesignConfig": "config",
    "config_from_mapping": "config",
    "load_design_config": "config",
    "Constraint": "space",
    "DesignSpace": "space",
    "Expression": "space",
    "BatchOptimizer": "optimizer",
    "Observation": "optimizer",
    "build_evaluator": "models",
    "DesignError": "runner",
    "DesignResult": "runner",
    "plot_convergence": "runner",
    "run_design": "runner",
}

__all__ = sorted(EXPORTS)


def __getattr__(name: str) -> Any:
    if name in EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
