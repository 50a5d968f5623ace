"""ScaleLink for FEniCSx (dolfinx): the public names of :mod:`scalelink.fe2` (FE², micro models
at the quadrature points) and :mod:`scalelink.coupling` (concurrent atomistic–continuum coupling
with LAMMPS) in one namespace, for solver scripts.

Names are imported on first use; submodules that need dolfinx import it (and ``mpi4py.MPI``
first) only then::

    from scalelink.fenicsx import LinearElastic, taylor_test
"""

from __future__ import annotations

import importlib
from typing import Any

from scalelink import coupling, fe2

# public name -> module that defines it
_EXPORTS = {
    **{name: f"scalelink.fe2.{module}" for name, module in fe2.EXPORTS.items()},
    **{name: f"scalelink.coupling.{module}" for name, module in coupling.EXPORTS.items()},
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'scalelink.fenicsx' has no attribute {name!r}")
