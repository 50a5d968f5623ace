"""Typed training configuration, loaded once from YAML; unknown keys are rejected.

A YAML file mirrors :class:`TrainConfig`, with ``loss:`` and ``sources:`` sections and one
section per registered potential architecture (:mod:`scalelink.potentials.registry`; ``model:``
for the GNN)::

    data: [train.extxyz]
    species: [Cu, Ni]
    cutoff: 5.0
    epochs: 200
    model: {num_layers: 2, features: 32}
    loss: {energy: 1.0, forces: 10.0, stress: 1.0}

A Behler–Parrinello potential instead of the GNN::

    architecture: behler_parrinello
    behler_parrinello: {num_radial: 8, num_angular: 2, zetas: [1, 2, 4], hidden: [32, 32]}
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from scalelink.bridge.errors import ConfigError

from scalelink.potentials import registry

__all__ = ["LossWeights", "SourceConfig", "TrainConfig", "load_config"]


@dataclass(frozen=True)
class LossWeights:
    """Weights of the energy-per-atom (eV²), force (eV²/Å²) and stress (eV²/Å⁶) terms.

    The defaults weigh a 1 meV/atom energy error like a 3 meV/Å force error: DFT forces are
    many numbers per structure and constrain energy differences only, so a weak energy term
    leaves energies tens of meV/atom off. A stress weight of 0 leaves stresses out.

    ``stress_offset`` (default on) trains one isotropic offset of the stress labels against
    the energies with the network, the Pulay stress of a plane-wave calculation whose basis
    is too small for the cell's volume changes (the mlearn Cu set carries about 2.4 GPa): the
    stresses then inform the shape of the energy surface (shear, pressure differences) and
    no longer fight the energies over the absolute pressure. The offset is a property of the
    data, not of the model: it is reported in ``metrics.json`` and not deployed. Data whose
    stresses are consistent with their energies get an offset near zero.
    """

    energy: float = 10.0
    forces: float = 1.0
    stress: float = 1.0
    stress_offset: bool = True

    def __post_init__(self) -> None:
        for name in ("energy", "forces", "stress"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and value >= 0.0):
                raise ConfigError(f"loss.{name} must be a non-negative number, got {value!r}")
        if not isinstance(self.stress_offset, bool):
            raise ConfigError(f"loss.stress_offset must be true or false, got {self.stress_offset!r}")


@dataclass(frozen=True)
class SourceConfig:
    """Noise model of one data source (frames tagged ``info["source"] = name``).

    Attributes:
        noise_energy: energy-per-atom noise σ_E (eV/atom), initial value if learned.
        noise_forces: force-component noise σ_F (eV/Å), initial value if learned.
        learn_noise: train log σ_E and log σ_F with the network.
        energy_offset: this source's energies carry their own per-species reference
            energies (another code, pseudopotentials or functional): train per-species
            offsets for it, so that its energies inform energy differences only. Sources
            without (at least one) fix the energy zero of the deployed model.
    """

    noise_energy: float = 0.005
    noise_forces: float = 0.1
    learn_noise: bool = False
    energy_offset: bool = False

    def __post_init__(self) -> None:
        if not (self.noise_energy > 0.0 and self.noise_forces > 0.0):
            raise ConfigError(
                f"source noise levels must be positive, got noise_energy={self.noise_energy}, "
                f"noise_forces={self.noise_forces}"
            )


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; see the module docstring for the YAML form.

    Attributes:
        data: ASE-readable files with energies and forces (stress optional).
        species: chemical symbols in model order; ``None`` takes those in the data.
        cutoff: radial cutoff in Å.
        epochs: maximum passes over the training set.
        out: run folder (checkpoints, metrics, plots).
        batch_size: structures per optimisation step.
        learning_rate: initial Adam learning rate.
            An architecture may train best with other values of these two and declares them
            (``Architecture.training_defaults``; ACE: 1 structure per step at 2e-3); they
            apply where the file and the command line leave the setting out.
        weight_decay: decoupled weight decay (AdamW) per unit learning rate; 0: plain Adam.
        lr_final: the lowest learning rate, as a fraction of the initial one.
        lr_schedule: ``"plateau"``: the rate is multiplied by ``lr_factor`` whenever the
            validation loss has not improved for ``lr_patience`` epochs (since the last
            improvement or reduction); ``"exponential"``: the rate decays exponentially to
            ``lr_final`` with the run's progress, the larger of epochs done / ``epochs`` and
            seconds spent / ``time_limit``. On real DFT data the plateau schedule reached
            lower errors within the same time: the exponential one spends half of a budget
            below a tenth of the initial rate.
        lr_patience, lr_factor: of the plateau schedule.
        patience: epochs without validation improvement before stopping early (or, in the
            main stage, before the final stage begins).
        final_stage: share of the budget (``time_limit``, else ``epochs``) spent at the end
            in a final stage that weighs energies ``final_energy_factor`` times more, from
            the best network so far at ``final_learning_rate`` (default 1/20 of
            ``learning_rate``); it also begins when the main stage runs out of
            ``patience``. 0: no final stage. Forces fix energy differences only and
            outnumber the energies a hundredfold, so a force-weighted fit leaves the
            energies noisy; on the mlearn Mo set the final stage took the test energy error
            from 3.48 to 2.73 meV/atom at 86.7 against 85 meV/Å, and a factor of 100 instead
            of 10 took three seeds' 1-hour models from 2.24, 2.70, 1.74 to 1.66, 2.21, 1.66
            meV/atom for at most 1.5 meV/Å of force, while Cu and Si moved little (seed 0:
            0.28 → 0.30 and 1.83 → 2.02 meV/atom; ``benchmarks/RESULTS.md``).
            Not used with ``sources`` (their noise levels weigh the energies).
        ema_decay: the network validated, checkpointed and deployed is an exponential
            moving average of the trained weights with this decay per step (0: the weights
            themselves). The average smooths the optimiser's step noise: lower validation
            errors at no cost.
        validation_fraction, test_fraction: random split of the data.
        seed: seeds the split, the initial weights and the batch order.
        dtype: training precision, ``"float32"`` or ``"float64"``.
        time_limit: stop after this many seconds (``None``: no limit).
        architecture: the name of a registered architecture (``"gnn"``, its hyperparameters
            in ``model``, or ``"behler_parrinello"``, in ``behler_parrinello``).
        sections: YAML section name -> hyperparameters (the config dataclass its architecture
            declares) of every registered architecture; absent sections get their defaults.
            Each is also an attribute (``config.model``, ``config.behler_parrinello``).
        sources: per-source noise models (name -> :class:`SourceConfig`); when given, the
            loss is the multi-source weighted negative log-likelihood of
            :mod:`scalelink.training.losses` instead of the weighted MSE (the ``loss``
            energy and force weights are then unused) and every frame needs a ``source`` tag.
        importance_weights: ``None`` (none), ``"info"`` (per frame ``info["importance"]``,
            default 1) or the path of an unlabelled sample of target structures, from which
            :func:`scalelink.training.importance.density_ratio_weights` estimates them. They
            multiply the per-frame ``weight``.
        init_from: a finished run folder whose best network (architecture, size and all)
            starts this run: a warm start, e.g. retraining on grown data.
    """

    data: tuple[str, ...] = ()
    species: tuple[str, ...] | None = None
    cutoff: float = 5.0
    epochs: int = 200
    out: str = "runs/scalelink"
    batch_size: int = 4
    learning_rate: float = 5e-3
    weight_decay: float = 0.0
    lr_final: float = 0.01
    lr_schedule: str = "plateau"
    lr_patience: int = 5
    lr_factor: float = 0.8
    patience: int = 100
    ema_decay: float = 0.99
    final_stage: float = 0.2
    final_energy_factor: float = 100.0
    final_learning_rate: float | None = None
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0
    dtype: str = "float32"
    time_limit: float | None = None
    loss: LossWeights = field(default_factory=LossWeights)
    architecture: str = registry.DEFAULT
    sections: Mapping[str, Any] = field(default_factory=dict)
    sources: dict[str, SourceConfig] = field(default_factory=dict)
    importance_weights: str | None = None
    init_from: str | None = None

    def __post_init__(self) -> None:
        checks = [
            (self.cutoff > 0.0, f"cutoff must be positive, got {self.cutoff}"),
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}"),
            (self.learning_rate > 0.0, f"learning_rate must be positive, got {self.learning_rate}"),
            (self.weight_decay >= 0.0, f"weight_decay must be zero or positive, got {self.weight_decay}"),
            (0.0 < self.lr_final <= 1.0, f"lr_final must be in (0, 1], got {self.lr_final}"),
            (
                self.lr_schedule in ("plateau", "exponential"),
                f"lr_schedule must be plateau or exponential, got {self.lr_schedule!r}",
            ),
            (self.lr_patience >= 1, f"lr_patience must be at least 1, got {self.lr_patience}"),
            (0.0 < self.lr_factor < 1.0, f"lr_factor must be in (0, 1), got {self.lr_factor}"),
            (0.0 <= self.ema_decay < 1.0, f"ema_decay must be in [0, 1), got {self.ema_decay}"),
            (0.0 <= self.final_stage < 1.0, f"final_stage must be in [0, 1), got {self.final_stage}"),
            (self.final_energy_factor > 0.0, f"final_energy_factor must be positive, got {self.final_energy_factor}"),
            (
                self.final_learning_rate is None or self.final_learning_rate > 0.0,
                f"final_learning_rate must be positive, got {self.final_learning_rate}",
            ),
            (self.time_limit is None or self.time_limit > 0, f"time_limit must be positive, got {self.time_limit}"),
            (self.dtype in ("float32", "float64"), f"dtype must be float32 or float64, got {self.dtype!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        registry.get(self.architecture)
        known = registry.sections()
        unknown = sorted(set(self.sections) - set(known))
        if unknown:
            raise ConfigError(f"unknown architecture sections {unknown}; registered sections are {sorted(known)}")
        filled: dict[str, Any] = {}
        for name, cls in known.items():
            value = self.sections.get(name)
            if value is None:
                value = cls()
            elif isinstance(value, dict):
                value = _build(cls, value, name)
            elif not isinstance(value, cls):
                raise ConfigError(f"section {name!r} must be a {cls.__name__} or a mapping, got {type(value).__name__}")
            filled[name] = value
        object.__setattr__(self, "sections", filled)

    def __getattr__(self, name: str) -> Any:
        # the architecture sections read as attributes: config.model, config.behler_parrinello
        sections = self.__dict__.get("sections")
        if sections is not None and name in sections:
            return sections[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def hyperparameters(self) -> Any:
        """The section of the architecture this run trains."""
        return self.sections[registry.get(self.architecture).section]

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form, as written to ``config.yaml`` in the run folder."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "sections"}
        out["loss"] = dataclasses.asdict(self.loss)
        out["sources"] = {k: dataclasses.asdict(v) for k, v in self.sources.items()}
        out["data"] = list(self.data)
        out["species"] = None if self.species is None else list(self.species)
        for name, section in self.sections.items():
            out[name] = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(section).items()}
        return out


def _build(cls: type, raw: dict[str, Any], where: str) -> Any:
    names = {f.name: f for f in dataclasses.fields(cls)}
    sections = registry.sections() if cls is TrainConfig else {}
    unknown = sorted(set(raw) - (set(names) - {"sections"}) - set(sections))
    if unknown:
        allowed = sorted((set(names) - {"sections"}) | set(sections))
        raise ConfigError(f"{where}: unknown keys {unknown}; allowed keys are {allowed}")
    _check_numbers(cls, raw, where)
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key in sections:
            kwargs.setdefault("sections", {})[key] = _build(sections[key], value or {}, f"{where}.{key}")
            continue
        if key == "loss":
            value = _build(LossWeights, value or {}, f"{where}.loss")
        elif key == "sources":
            if not isinstance(value or {}, dict):
                raise ConfigError(f"{where}.sources: expected a mapping name -> noise model, got {value!r}")
            value = {str(k): _build(SourceConfig, v or {}, f"{where}.sources.{k}") for k, v in (value or {}).items()}
        elif key in ("data", "species") and value is not None:
            value = tuple(str(v) for v in ([value] if isinstance(value, str) else value))
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _check_numbers(cls: type, raw: dict[str, Any], where: str) -> None:
    """Numeric keys hold numbers: ``cutoff: four`` names the key instead of failing in a comparison."""
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # annotations this check cannot resolve: the dataclass checks itself
        return
    for key, value in raw.items():
        accepted = _NUMERIC.get(hints.get(key))
        if accepted is None or (value is None and type(None) in typing.get_args(hints[key])):
            continue
        if isinstance(value, bool) or not isinstance(value, accepted):
            expected = "an integer" if accepted == (int,) else "a number"
            # YAML 1.1 reads 1e-3 (no decimal point) as text
            hint = " (write 1.0e-3, not 1e-3)" if isinstance(value, str) and re.fullmatch(r"[+-]?\d+[eE][+-]?\d+", value) else ""
            raise ConfigError(f"{where}: {key} must be {expected}, got {value!r}{hint}")


_NUMERIC: dict[Any, tuple[type, ...]] = {int: (int,), float: (int, float), int | None: (int,), float | None: (int, float)}


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: what the YAML parser found and where."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}; fix the syntax there"


def load_config(path: str | os.PathLike[str] | None = None, **overrides: Any) -> TrainConfig:
    """Read a YAML file (optional) and apply overrides (``None`` values are ignored).

    Without ``architecture``, a configuration that has the section of exactly one
    architecture trains that architecture; otherwise the registry's default.

    Raises:
        ConfigError: the file is missing or not a mapping, a key is unknown or a value is
            invalid.
    """
    raw: dict[str, Any] = {}
    where = "configuration"
    if path is not None:
        where = os.fspath(path)
        if not os.path.isfile(where):
            raise ConfigError(f"configuration file {where!r} does not exist")
        with open(where, encoding="utf-8") as handle:
            try:
                loaded = yaml.safe_load(handle)
            except yaml.YAMLError as exc:
                raise ConfigError(f"{where} is not valid YAML: {_yaml_problem(exc)}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{where}: expected a mapping at the top level, got {type(loaded).__name__}")
        raw = dict(loaded or {})
    raw.update({k: v for k, v in overrides.items() if v is not None})
    if "architecture" not in raw:
        # a configuration that sets the hyperparameters of one architecture only trains that
        # one: files written for the GNN before another architecture became the default
        given = [a.name for a in registry.architectures() if a.section in raw]
        if len(given) == 1:
            raw["architecture"] = given[0]
    name = raw.get("architecture", registry.DEFAULT)
    if isinstance(name, str) and name in registry.names():
        for key, value in registry.get(name).training_defaults.items():
            raw.setdefault(key, value)
    return _build(TrainConfig, raw, where)
