"""Strain/stress/tangent samples of a micro model, the training data of a surrogate.

Strains are drawn in a box of Mandel components (Latin hypercube or plain uniform) and the
micro model answers for all of them in one batched call. The samples are written as ``.npz``
with the arrays ``strain (n, m)``, ``stress (n, m)``, ``tangent (n, m, m)`` and the scalars
``strain_size`` and ``stress_unit``, the format ``scalelink train-surrogate`` reads.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from scalelink.bridge.errors import ConfigError
from scalelink.bridge.samples import ConstitutiveSamples

from .micro import LinearElastic, MicroModel, check_strain_batch
from .tensors import isotropic_stiffness, validate_strain_size

__all__ = ["MicroSamples", "SamplingSpec", "sample_micro_model", "strain_bounds"]

_METHODS = ("lhs", "uniform")
_BUILT_IN = ("linear_elastic", "atomistic")


# Samples of a micro model: one file format, defined (and read back) in the bridge.
MicroSamples = ConstitutiveSamples


def strain_bounds(strain_range: float | npt.ArrayLike, strain_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds ``(m,)`` of the sampled box.

    Args:
        strain_range: an amplitude ``a > 0`` (every component in ``[−a, a]``), or bounds of
            shape ``(2, m)`` (rows: lower, upper).
        strain_size: ``m``.
    """
    r = np.asarray(strain_range, dtype=np.float64)
    if r.ndim == 0:
        if not r > 0.0:
            raise ConfigError(f"strain amplitude must be positive, got {float(r)!r}")
        return np.full(strain_size, -float(r)), np.full(strain_size, float(r))
    if r.shape != (2, strain_size) or not np.all(r[1] > r[0]):
        raise ConfigError(
            f"strain_range {r.tolist()!r} is neither a positive amplitude nor bounds of shape "
            f"(2, {strain_size}) with upper > lower in every component"
        )
    return r[0].copy(), r[1].copy()


def sample_micro_model(
    model: MicroModel,
    *,
    num_samples: int,
    strain_range: float | npt.ArrayLike,
    method: str = "lhs",
    seed: int = 0,
) -> MicroSamples:
    """Evaluate ``model`` at strains drawn in a box, in one batched call.

    A history-dependent model is set up for ``num_samples`` points and answers from its
    initial state (trial only, nothing committed).

    Args:
        model: any :class:`~scalelink.fe2.micro.MicroModel`.
        num_samples: number of strains ``n``.
        strain_range: amplitude or ``(2, m)`` bounds, see :func:`strain_bounds`.
        method: ``"lhs"`` (Latin hypercube, one sample in each of ``n`` slices of every
            component) or ``"uniform"`` (independent uniform draws).
        seed: random seed.

    Returns:
        The strains and the model's stresses and tangents.
    """
    if num_samples < 2:
        raise ConfigError(f"num_samples must be at least 2, got {num_samples!r}")
    if method not in _METHODS:
        raise ConfigError(f"sampling method {method!r} is not one of {_METHODS}")
    m = model.strain_size
    lower, upper = strain_bounds(strain_range, m)
    if method == "lhs":
        from scipy.stats import qmc

        unit = qmc.LatinHypercube(d=m, seed=np.random.default_rng(seed)).random(num_samples)
    else:
        unit = np.random.default_rng(seed).random((num_samples, m))
    strain = check_strain_batch(lower + unit * (upper - lower), m)
    if model.has_state:
        model.setup(num_samples)
    stress, tangent = model.evaluate(strain)
    stress = np.asarray(stress, dtype=np.float64)
    tangent = np.asarray(tangent, dtype=np.float64)
    if stress.shape != (num_samples, m) or tangent.shape != (num_samples, m, m):
        raise ConfigError(
            f"{type(model).__name__}.evaluate returned stress {stress.shape} and tangent "
            f"{tangent.shape}, expected ({num_samples}, {m}) and ({num_samples}, {m}, {m})"
        )
    return MicroSamples(strain, stress, tangent, m, model.stress_unit)


@dataclass(frozen=True)
class SamplingSpec:
    """Which micro model to sample and how, as read from YAML or command-line flags.

    Give either ``model: linear_elastic`` with ``young`` and ``poisson`` (isotropic,
    ``strain_size`` 3 for plane strain or 6), ``model: atomistic`` with a periodic
    ``structure`` and its interaction (an :class:`~scalelink.fe2.atomistic_rve.AtomisticRVE`
    relaxed by LAMMPS; stress in GPa), or ``module: "pkg.mod:factory"``, a callable that
    returns a :class:`~scalelink.fe2.micro.MicroModel` when called with
    ``module_kwargs``.

    Attributes:
        model: ``"linear_elastic"``, ``"atomistic"`` or ``None`` (with ``module``).
        young: Young's modulus in ``stress_unit``.
        poisson: Poisson's ratio.
        strain_size: 3 or 6 (built-in models).
        stress_unit: unit of the moduli (linear_elastic).
        structure: ASE-readable file of the periodic reference cell (atomistic, Å).
        potential: a ScaleLink model file (atomistic): ``pair_style scalelink`` with
            ``pair_coeff * * FILE`` and the structure's sorted symbols as types.
        pair_commands: LAMMPS ``pair_style``/``pair_coeff`` lines instead of ``potential``.
        relax: relax the atoms at every strain (atomistic).
        reference_relax: relax the reference cell to zero stress first (atomistic).
        module: ``"pkg.mod:factory"`` of a user micro model.
        module_kwargs: keyword arguments of the factory.
        num_samples: number of strains.
        strain_range: amplitude, or ``[[lower...], [upper...]]`` bounds.
        method: ``"lhs"`` or ``"uniform"``.
        seed: random seed.
    """

    model: str | None = None
    young: float | None = None
    poisson: float | None = None
    strain_size: int = 3
    stress_unit: str = "GPa"
    structure: str | None = None
    potential: str | None = None
    pair_commands: list[str] | None = None
    relax: bool = True
    reference_relax: bool = False
    module: str | None = None
    module_kwargs: dict[str, Any] = field(default_factory=dict)
    num_samples: int = 1000
    strain_range: Any = 1e-2
    method: str = "lhs"
    seed: int = 0

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], where: str = "sampling spec") -> SamplingSpec:
        """Build from a mapping (e.g. parsed YAML); unknown keys are refused."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(raw) - set(names))
        if unknown:
            raise ConfigError(f"{where}: unknown keys {unknown}; allowed keys are {names}")
        return cls(**dict(raw))

    def build_model(self) -> MicroModel:
        """The micro model this spec names."""
        if (self.model is None) == (self.module is None):
            raise ConfigError(
                f"give exactly one of model (built-in: {', '.join(map(repr, _BUILT_IN))}) and module "
                f"('pkg.mod:factory'); got model={self.model!r}, module={self.module!r}"
            )
        if self.module is not None:
            return _from_factory(self.module, self.module_kwargs)
        if self.model not in _BUILT_IN:
            raise ConfigError(f"built-in micro model {self.model!r} is unknown; the built-in ones are {_BUILT_IN}")
        if self.model == "atomistic":
            return self._atomistic()
        if self.young is None or self.poisson is None:
            raise ConfigError(
                f"model 'linear_elastic' needs young and poisson, got young={self.young!r}, poisson={self.poisson!r}"
            )
        stiffness = isotropic_stiffness(
            young=float(self.young), poisson=float(self.poisson), strain_size=validate_strain_size(self.strain_size)
        )
        return LinearElastic(stiffness, stress_unit=self.stress_unit)

    def _atomistic(self) -> MicroModel:
        if self.structure is None or (self.potential is None) == (self.pair_commands is None):
            raise ConfigError(
                f"model 'atomistic' needs structure and exactly one of potential (a ScaleLink model "
                f"file) and pair_commands (LAMMPS pair_style/pair_coeff lines); got structure="
                f"{self.structure!r}, potential={self.potential!r}, pair_commands={self.pair_commands!r}"
            )
        import ase.io

        from .atomistic_rve import AtomisticRVE

        try:
            # parallel=False: each MPI rank builds its own RVE; ASE would broadcast from rank 0
            atoms = ase.io.read(self.structure, parallel=False)
        except Exception as exc:  # ASE raises many kinds for unreadable files
            raise ConfigError(f"cannot read the RVE structure {self.structure!r} ({exc}); give an "
                              "ASE-readable file (extxyz, cif, POSCAR, ...)") from None
        if self.potential is not None:
            species = " ".join(sorted(set(atoms.get_chemical_symbols())))
            commands = ["pair_style scalelink", f"pair_coeff * * {self.potential} {species}"]
        else:
            commands = [str(line) for line in self.pair_commands or ()]
        return AtomisticRVE(atoms, commands, strain_size=validate_strain_size(self.strain_size),
                            relax=bool(self.relax), reference_relax=bool(self.reference_relax))

    def sample(self) -> MicroSamples:
        """Build the model and sample it (:func:`sample_micro_model`)."""
        model = self.build_model()
        try:
            return sample_micro_model(
                model, num_samples=int(self.num_samples), strain_range=self.strain_range,
                method=self.method, seed=int(self.seed),
            )
        finally:
            close = getattr(model, "close", None)
            if callable(close):  # an atomistic RVE frees its LAMMPS instance
                close()


def _from_factory(target: str, kwargs: Mapping[str, Any]) -> MicroModel:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"module {target!r} is not of the form 'package.module:factory'")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load the micro model factory {target!r} ({exc}); check the name and PYTHONPATH") from None
    try:
        model = factory(**dict(kwargs))
    except TypeError as exc:
        raise ConfigError(
            f"factory {target!r} cannot be called with the keyword arguments {dict(kwargs)!r} ({exc}); "
            "give the right ones as module_kwargs in the sampling spec"
        ) from None
    if not isinstance(model, MicroModel):
        raise ConfigError(
            f"factory {target!r} returned a {type(model).__name__}, expected a "
            "scalelink.fe2.micro.MicroModel"
        )
    return model
