"""ScaleLink for FEniCSx (dolfinx): FE² with micro models at the quadrature points and
concurrent atomistic–continuum coupling with LAMMPS.

Import what you need from the package; submodules that need dolfinx import it (and
``mpi4py.MPI`` first) only when used::

    from scalelink.fenicsx import LinearElastic, taylor_test
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it
_EXPORTS = {
    "LinearElastic": "micro",
    "MicroModel": "micro",
    "TaylorResult": "micro",
    "taylor_test": "micro",
    "cubic_stiffness": "tensors",
    "isotropic_stiffness": "tensors",
    "mandel_from_tensor": "tensors",
    "plane_strain": "tensors",
    "rotate_stiffness": "tensors",
    "tensor_from_mandel": "tensors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'scalelink.fenicsx' has no attribute {name!r}")
