"""The micro models a design study runs: a periodic FE RVE, an atomistic RVE, a user callable.

Each is built from the ``model:`` mapping of the configuration and called with one design
(``{variable: value}``); it returns ``{output: value}``. Numeric settings of the built-in models
may be numbers or expressions of the variables (``fibre_young: fibre_modulus``,
``fibre_density: 1.5 + 0.004 * fibre_modulus``).

``periodic_rve`` — a circular fibre centred in a square plane-strain cell
(:class:`scalelink.fe2.PeriodicRVE`, both phases isotropic and linear). Settings:
``fibre_fraction``, ``fibre_young``, ``fibre_poisson`` (0.2), ``matrix_young`` (3.5),
``matrix_poisson`` (0.35), ``fibre_density`` (1.8), ``matrix_density`` (1.2), ``cells`` (48).
Outputs: ``C11 C12 C22 C66`` (effective Mandel stiffness entries; ``C66`` is half the shear
entry), ``transverse_modulus = C11 − C12²/C22``, ``fibre_fraction`` (of the mesh, whose
cells are tagged whole) and ``density`` (rule of mixtures with that fraction).

``atomistic_rve`` — a random binary fcc alloy (:func:`scalelink.fe2.random_alloy`) in LAMMPS.
Settings: ``fraction`` (of the second species), ``species``, ``lattice_constants``,
``pair_commands``, ``cells`` (3), ``seed`` (0), ``relax`` (true). Outputs: ``C11 C12 C44``,
``bulk_modulus = (C11 + 2 C12)/3``, ``zener = 2 C44/(C11 − C12)``, in GPa.

``callable`` — ``function: "package.module:name"`` (importable, or a module in the current
folder), called as ``name(**design, **arguments)`` (``arguments``: optional fixed keyword
arguments); it returns a number (the output ``value``) or a mapping of outputs.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from scalelink.bridge.errors import ConfigError

from .space import Expression

__all__ = ["Evaluator", "build_evaluator"]

Evaluator = Callable[[Mapping[str, float]], dict[str, float]]

_RVE_DEFAULTS: dict[str, Any] = {
    "fibre_poisson": 0.2, "matrix_young": 3.5, "matrix_poisson": 0.35, "fibre_density": 1.8,
    "matrix_density": 1.2, "cells": 48,
}
_ALLOY_DEFAULTS: dict[str, Any] = {"cells": 3, "seed": 0, "relax": True}


def build_evaluator(model: Mapping[str, Any], variables: Sequence[str]) -> Evaluator:
    """The micro model of a ``model:`` mapping (module docstring) as a design → outputs function."""
    settings = dict(model)
    kind = settings.pop("kind", None)
    if kind == "callable":
        return _callable(settings)
    if kind == "periodic_rve":
        return _PeriodicFibreRVE(_numbers(settings, _RVE_DEFAULTS, ("fibre_fraction", "fibre_young"), variables))
    if kind == "atomistic_rve":
        fixed = {k: settings.pop(k) for k in ("species", "lattice_constants", "pair_commands", "relax")
                 if k in settings}
        missing = {"species", "lattice_constants", "pair_commands"} - set(fixed)
        if missing:
            raise ConfigError(f"model (atomistic_rve): `{sorted(missing)[0]}` is missing")
        numbers = _numbers(settings, {k: v for k, v in _ALLOY_DEFAULTS.items() if k != "relax"}, ("fraction",), variables)
        return _AlloyRVE(numbers, fixed)
    raise ConfigError(f"model.kind: expected periodic_rve, atomistic_rve or callable, got {kind!r}")


def _numbers(settings: dict[str, Any], defaults: dict[str, Any], required: Sequence[str],
             variables: Sequence[str]) -> dict[str, Expression]:
    known = set(defaults) | set(required)
    unknown = set(settings) - known
    if unknown:
        raise ConfigError(f"model: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    for name in required:
        if name not in settings:
            raise ConfigError(f"model: `{name}` is missing (a number or an expression of {list(variables)})")
    out = {}
    for name, value in {**defaults, **settings}.items():
        expression = Expression(str(value), where=f"model.{name}")
        stray = expression.names - set(variables)
        if stray:
            raise ConfigError(f"model.{name}: {value!r} names {sorted(stray)}, which are not variables {list(variables)}")
        out[name] = expression
    return out


def _values(numbers: Mapping[str, Expression], design: Mapping[str, float]) -> dict[str, float]:
    point = {k: np.asarray(v, dtype=float) for k, v in design.items()}
    return {name: float(expression(point)) for name, expression in numbers.items()}


def _callable(settings: dict[str, Any]) -> Evaluator:
    unknown = set(settings) - {"function", "arguments"}
    if unknown:
        raise ConfigError(f"model (callable): unknown keys {sorted(unknown)}; known: ['arguments', 'function']")
    target = settings.get("function")
    if not isinstance(target, str) or target.count(":") != 1:
        raise ConfigError(f"model.function: expected 'package.module:function', got {target!r}")
    module_name, name = target.split(":")
    if os.getcwd() not in sys.path:  # a study's own module next to its YAML file
        sys.path.append(os.getcwd())
    try:
        function = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"model.function: cannot load {target!r} ({exc}); is the module on PYTHONPATH?") from None
    arguments = dict(settings.get("arguments") or {})

    def evaluate(design: Mapping[str, float]) -> dict[str, float]:
        result = function(**design, **arguments)
        if isinstance(result, Mapping):
            return {str(k): float(v) for k, v in result.items()}
        return {"value": float(result)}

    return evaluate


class _PeriodicFibreRVE:
    def __init__(self, numbers: dict[str, Expression]) -> None:
        self.numbers = numbers
        self._meshes: dict[int, Any] = {}

    def __call__(self, design: Mapping[str, float]) -> dict[str, float]:
        import mpi4py.MPI  # noqa: F401  (loads libmpi before dolfinx)

        from scalelink.fe2.micro import LinearElastic
        from scalelink.fe2.rve import PeriodicRVE, circular_inclusion, unit_cell_mesh
        from scalelink.fe2.tensors import isotropic_stiffness

        v = _values(self.numbers, design)
        cells = int(round(v["cells"]))
        if cells not in self._meshes:
            self._meshes[cells] = unit_cell_mesh(2, cells)
        radius = float(np.sqrt(v["fibre_fraction"] / np.pi))
        phases = {
            0: LinearElastic(isotropic_stiffness(young=v["matrix_young"], poisson=v["matrix_poisson"], strain_size=3)),
            1: LinearElastic(isotropic_stiffness(young=v["fibre_young"], poisson=v["fibre_poisson"], strain_size=3)),
        }
        rve = PeriodicRVE(self._meshes[cells], phases, cell_tags=circular_inclusion(radius))
        c = rve.effective_stiffness()
        fraction = rve.volume_fractions.get(1, 0.0)
        return {
            "C11": float(c[0, 0]), "C12": float(c[0, 1]), "C22": float(c[1, 1]), "C66": float(c[2, 2] / 2.0),
            "transverse_modulus": float(c[0, 0] - c[0, 1] ** 2 / c[1, 1]),
            "fibre_fraction": fraction,
            "density": fraction * v["fibre_density"] + (1.0 - fraction) * v["matrix_density"],
        }


class _AlloyRVE:
    def __init__(self, numbers: dict[str, Expression], fixed: dict[str, Any]) -> None:
        self.numbers, self.fixed = numbers, fixed

    def __call__(self, design: Mapping[str, float]) -> dict[str, float]:
        import mpi4py.MPI  # noqa: F401  (loads libmpi before lammps)

        from scalelink.fe2.alloys import cubic_constants, random_alloy

        v = _values(self.numbers, design)
        species = list(self.fixed["species"])
        atoms = random_alloy(species, v["fraction"], self.fixed["lattice_constants"], cells=int(v["cells"]),
                             seed=int(v["seed"]))
        c11, c12, c44 = cubic_constants(atoms, self.fixed["pair_commands"], species=species,
                                        relax=bool(self.fixed.get("relax", True)))
        c11, c12, c44 = float(c11), float(c12), float(c44)
        return {"C11": c11, "C12": c12, "C44": c44, "bulk_modulus": (c11 + 2.0 * c12) / 3.0,
                "zener": 2.0 * c44 / (c11 - c12)}
