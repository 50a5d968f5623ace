"""The YAML configuration of ``scalelink design``.

Example (the lightest fibre composite whose transverse stiffness reaches 8 GPa)::

    variables:                       # name: [lower, upper]
      fraction: [0.05, 0.6]          # fibre volume fraction
      fibre_modulus: [20.0, 400.0]   # GPa
    model:
      kind: periodic_rve             # periodic_rve | atomistic_rve | callable
      fibre_fraction: fraction       # numbers or expressions of the variables
      fibre_young: fibre_modulus
      fibre_density: 1.5 + 0.004 * fibre_modulus
    objective: density               # an expression of outputs and variables
    goal: minimize                   # or maximize
    constraints:
      - transverse_modulus >= 8.0    # outputs: modelled by a GP each
      - fraction <= 0.6              # variables only: checked before any run
    budget: 40                       # evaluations in all (failed ones count)
    initial: 8                       # space-filling first evaluations
    batch_size: 0                    # designs per batch; 0: one per MPI rank
    exploit: 0.33                    # last share of the budget: first design of a batch minimises the GP mean
    seed: 0
    state: design_state.json         # resume file, written after every batch
    plot: design_convergence.png

Keys are checked: an unknown key, a missing one or a value of the wrong kind raises
:class:`~scalelink.bridge.errors.ConfigError` naming it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from scalelink.bridge.errors import ConfigError

from .space import Constraint, DesignSpace, Expression

__all__ = ["DesignConfig", "load_design_config"]


@dataclasses.dataclass(frozen=True)
class DesignConfig:
    """A validated design study (see the module docstring for the keys)."""

    variables: dict[str, tuple[float, float]]
    model: dict[str, Any]
    objective: str = "value"
    goal: str = "minimize"
    constraints: tuple[str, ...] = ()
    budget: int = 30
    initial: int = 0
    batch_size: int = 0
    seed: int = 0
    state: str = "design_state.json"
    plot: str | None = "design_convergence.png"
    candidates: int = 2000
    restarts: int = 2
    exploit: float = 1.0 / 3.0

    def __post_init__(self) -> None:
        if self.goal not in ("minimize", "maximize"):
            raise ConfigError(f"goal: expected 'minimize' or 'maximize', got {self.goal!r}")
        for name in ("budget", "candidates"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name}: expected a positive integer, got {getattr(self, name)!r}")
        for name in ("initial", "batch_size", "restarts"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"{name}: expected an integer >= 0, got {getattr(self, name)!r}")
        if isinstance(self.exploit, bool) or not isinstance(self.exploit, (int, float)) or not 0.0 <= self.exploit < 1.0:
            raise ConfigError(f"exploit: expected a share of the budget in [0, 1), got {self.exploit!r}")
        if not isinstance(self.model, Mapping) or "kind" not in self.model:
            raise ConfigError(f"model: expected a mapping with a `kind`, got {self.model!r}")
        self.space()  # bounds and variable constraints checked now

    def parsed_constraints(self) -> list[Constraint]:
        return [Constraint.parse(text, where=f"constraints[{k}]") for k, text in enumerate(self.constraints)]

    def space(self) -> DesignSpace:
        """The design space with the constraints that name variables only."""
        names = set(self.variables)
        return DesignSpace(self.variables, [c for c in self.parsed_constraints() if c.names <= names])

    def output_constraints(self) -> list[Constraint]:
        """The constraints that read micro-model outputs (each modelled by a GP)."""
        names = set(self.variables)
        return [c for c in self.parsed_constraints() if not c.names <= names]

    def objective_expression(self) -> Expression:
        return Expression(self.objective, where="objective")

    def initial_count(self) -> int:
        """Space-filling evaluations before the first model-based batch (default ``2 d + 1``)."""
        return self.initial or 2 * len(self.variables) + 1


def load_design_config(path: str | os.PathLike[str], **overrides: Any) -> DesignConfig:
    """Read and check a design YAML file; ``overrides`` (not ``None``) replace single keys."""
    import yaml

    try:
        with open(path) as handle:
            raw = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the design configuration {os.fspath(path)!r} ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{os.fspath(path)}: a design configuration must be a mapping, got {type(raw).__name__}")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return config_from_mapping(raw, where=os.fspath(path))


def config_from_mapping(raw: Mapping[str, Any], *, where: str = "design configuration") -> DesignConfig:
    """A :class:`DesignConfig` from a plain mapping (the parsed YAML)."""
    fields = {f.name: f for f in dataclasses.fields(DesignConfig)}
    unknown = set(raw) - set(fields)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(fields)}")
    for required in ("variables", "model"):
        if required not in raw:
            raise ConfigError(f"{where}: `{required}` is missing")
    values = dict(raw)
    if not isinstance(values["variables"], Mapping):
        raise ConfigError(f"{where}: variables: expected {{name: [lower, upper]}}, got {values['variables']!r}")
    values["variables"] = {str(k): tuple(v) if isinstance(v, (list, tuple)) else v for k, v in values["variables"].items()}
    if isinstance(values.get("constraints"), str):
        values["constraints"] = (values["constraints"],)
    values["constraints"] = tuple(str(c) for c in values.get("constraints") or ())
    for name in ("budget", "initial", "batch_size", "seed", "candidates", "restarts"):
        if name in values and not isinstance(values[name], int):
            raise ConfigError(f"{where}: {name}: expected an integer, got {values[name]!r}")
    return DesignConfig(**values)
