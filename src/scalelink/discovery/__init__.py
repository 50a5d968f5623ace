"""Equation discovery: sparse conservation laws found from snapshots on dolfinx meshes.

Weak-form sparse regression (weak SINDy): the candidate terms of
``∂c/∂t = ∇·(K∇c) − ∇·F(c) + R(c)`` are integrated against space–time test functions on the
finite-element mesh of the data (summed over MPI ranks), and sequentially thresholded least
squares keeps the few that explain the time derivative. ``K`` is symmetric by construction and
checked positive definite. Data generators: Burgers' equation (spectral) and transient
diffusion through a tiled periodic microstructure (dolfinx).

Public names are imported on first use, so ``import scalelink.discovery`` loads neither dolfinx
nor pysindy::

    from scalelink.discovery import ConservationLibrary, assemble_weak_system, discover
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it
EXPORTS = {
    "burgers_snapshots": "burgers",
    "ConservationLibrary": "weak",
    "WeakSystem": "weak",
    "assemble_weak_system": "weak",
    "bump_centres": "weak",
    "DiscoveredLaw": "regression",
    "DiscoveryError": "regression",
    "discover": "regression",
    "tiled_mesh": "transient",
    "diffusion_transient": "transient",
}

__all__ = sorted(EXPORTS)


def __getattr__(name: str) -> Any:
    if name in EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
