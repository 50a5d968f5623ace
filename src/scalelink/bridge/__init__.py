"""ScaleLink bridge: the model file format, key registry, units and engine adapters.

Submodules that pull in optional engines are imported explicitly::

    from scalelink.bridge.ase import ScaleLinkCalculator

This package stays light to import (no torch at import time) because the LAMMPS plugin
path hook in :mod:`scalelink.bridge.lammps_env` runs at every interpreter start-up.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "FORMAT_VERSION",
    "ConstitutiveEngine",
    "ModelMetadata",
    "load_model",
    "read_metadata",
    "save_model",
    "select_device",
]


def __getattr__(name: str) -> Any:
    if name in ("ConstitutiveEngine", "select_device"):
        from . import inference

        return getattr(inference, name)
    if name in __all__:
        from . import model_file

        return getattr(model_file, name)
    raise AttributeError(f"module 'scalelink.bridge' has no attribute {name!r}")
