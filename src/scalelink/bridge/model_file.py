"""The ScaleLink model file: one TorchScript archive with its metadata inside.

This module is the only reader and writer of model files on the Python side. The metadata
travels as one JSON object in the archive's ``_extra_files`` under
:data:`scalelink.bridge.keys.METADATA_FILE`; the C++ plugin reads the same object.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from . import keys
from .errors import ConfigError, ModelFileError, NonFiniteError
from .model_kinds import ConstitutiveInfo, FreeEnergyInfo, GeneratorInfo
from .units import unit_style

__all__ = [
    "FORMAT_VERSION",
    "ConstitutiveInfo",
    "FreeEnergyInfo",
    "GENERATOR_UNITS",
    "GeneratorInfo",
    "ModelMetadata",
    "check_finite_weights",
    "load_model",
    "package_versions",
    "read_metadata",
    "save_model",
    "select_device",
]

FORMAT_VERSION = 1
"""The model file format this version of ScaleLink reads and writes."""

_KINDS = ("potential", "constitutive", "free_energy", "generator")
_DTYPES = ("float32", "float64")

GENERATOR_UNITS = "dimensionless"
"""The ``units`` of an image generator: it maps numbers to probabilities."""


@dataclass(frozen=True)
class ModelMetadata:
    """What a consumer needs to know about a deployed model, stored inside the file.

    Attributes:
        species: chemical symbols, in the order of the model's species index (a free
            energy: the two components, ``c`` being the mole fraction of the second).
        cutoff: radial cutoff in Å (model length units).
        num_layers: message-passing layers; the receptive field is ``num_layers * cutoff``.
        dtype: precision of the weights, ``"float32"`` or ``"float64"``.
        kind: ``"potential"``, ``"constitutive"``, ``"free_energy"`` or ``"generator"``.
        units: LAMMPS unit style the model works in (potential), the stress unit
            (constitutive, equal to ``constitutive.stress_unit``), the energy unit (free
            energy, equal to ``free_energy.energy_unit``) or :data:`GENERATOR_UNITS`.
        committee_size: number of members evaluated in one pass (1 for a single model).
        outputs: keys of the dictionary the model returns.
        versions: package versions at export time.
        format_version: model file format version.
        constitutive: strain size, stress unit, scaling and architecture of a constitutive
            model (``kind == "constitutive"``), else ``None``. Build the metadata of a
            constitutive model with :meth:`for_constitutive`.
        free_energy: the closed form, ranges and units of a free energy (``kind ==
            "free_energy"``), else ``None``; see :meth:`for_free_energy`.
        generator: latent and image size, threshold and volume fraction of an image
            generator (``kind == "generator"``), else ``None``; see :meth:`for_generator`.
    """

    species: list[str]
    cutoff: float
    num_layers: int
    dtype: str = "float64"
    kind: str = "potential"
    units: str = "metal"
    committee_size: int = 1
    outputs: list[str] = field(default_factory=lambda: list(keys.MODEL_OUTPUTS))
    versions: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    constitutive: ConstitutiveInfo | None = None
    free_energy: FreeEnergyInfo | None = None
    generator: GeneratorInfo | None = None

    @classmethod
    def for_constitutive(
        cls, info: ConstitutiveInfo, *, dtype: str, versions: dict[str, str]
    ) -> ModelMetadata:
        """Metadata of a constitutive model: no species, cutoff or layers; units = stress unit."""
        return cls(
            species=[],
            cutoff=0.0,
            num_layers=0,
            dtype=dtype,
            kind="constitutive",
            units=info.stress_unit,
            outputs=list(keys.CONSTITUTIVE_OUTPUTS),
            versions=versions,
            constitutive=info,
        )

    @classmethod
    def for_free_energy(
        cls, info: FreeEnergyInfo, *, species: Sequence[str], versions: dict[str, str]
    ) -> ModelMetadata:
        """Metadata of a binary free energy ``f(c, T)``: two species, float64, units = energy unit."""
        return cls(
            species=list(species),
            cutoff=0.0,
            num_layers=0,
            dtype="float64",
            kind="free_energy",
            units=info.energy_unit,
            outputs=list(keys.FREE_ENERGY_OUTPUTS),
            versions=versions,
            free_energy=info,
        )

    @classmethod
    def for_generator(cls, info: GeneratorInfo, *, dtype: str, versions: dict[str, str]) -> ModelMetadata:
        """Metadata of an image generator: no species, cutoff or layers; units dimensionless."""
        return cls(
            species=[],
            cutoff=0.0,
            num_layers=0,
            dtype=dtype,
            kind="generator",
            units=GENERATOR_UNITS,
            outputs=list(keys.GENERATOR_OUTPUTS),
            versions=versions,
            generator=info,
        )

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ModelFileError(f"model kind {self.kind!r} is not one of {_KINDS}")
        if self.dtype not in _DTYPES:
            raise ModelFileError(f"model dtype {self.dtype!r} is not one of {_DTYPES}")
        if self.kind == "potential":
            if not self.species or len(set(self.species)) != len(self.species):
                raise ModelFileError(
                    f"a potential needs a non-empty list of distinct species, got {self.species!r}"
                )
            if not self.cutoff > 0.0:
                raise ModelFileError(f"cutoff must be positive, got {self.cutoff!r}")
            if self.num_layers < 1:
                raise ModelFileError(f"num_layers must be at least 1, got {self.num_layers!r}")
        if self.committee_size < 1:
            raise ModelFileError(f"committee_size must be at least 1, got {self.committee_size!r}")
        missing = [key for key in keys.COMMITTEE_OUTPUTS if key not in self.outputs]
        if self.committee_size > 1 and missing:
            raise ModelFileError(
                f"a committee of {self.committee_size} must return {list(keys.COMMITTEE_OUTPUTS)}, "
                f"but its outputs {self.outputs} lack {missing}; re-export it with `scalelink deploy`"
            )
        for name in _KIND_OBJECTS:
            if name != self.kind and getattr(self, name) is not None:
                raise ModelFileError(
                    f"a model of kind {self.kind!r} carries no {name!r} metadata; set kind={name!r} or drop it"
                )
        if self.kind == "potential":
            unit_style(self.units)
        elif self.kind == "constitutive":
            self._check_constitutive()
        elif self.kind == "free_energy":
            self._check_free_energy()
        else:
            self._check_kind_object("image size, latent size, threshold", GENERATOR_UNITS, keys.GENERATOR_OUTPUTS)

    def _check_kind_object(self, contents: str, units: str, outputs: tuple[str, ...]) -> None:
        """The kind's own metadata object is there; units, outputs and committee size fit the kind."""
        if getattr(self, self.kind) is None:
            raise ModelFileError(
                f"a model of kind {self.kind!r} needs its {self.kind!r} metadata ({contents}); build it "
                f"with ModelMetadata.for_{self.kind}"
            )
        if self.units != units:
            raise ModelFileError(f"a model of kind {self.kind!r} must have units {units!r}, got {self.units!r}")
        if self.committee_size != 1 or list(self.outputs) != list(outputs):
            raise ModelFileError(
                f"a model of kind {self.kind!r} returns {list(outputs)} from one network, got "
                f"outputs {self.outputs} and committee_size {self.committee_size}"
            )

    def _check_constitutive(self) -> None:
        unit = self.constitutive.stress_unit if self.constitutive is not None else self.units
        self._check_kind_object("strain size, stress unit, scaling", unit, keys.CONSTITUTIVE_OUTPUTS)

    def _check_free_energy(self) -> None:
        unit = self.free_energy.energy_unit if self.free_energy is not None else self.units
        self._check_kind_object("closed form, ranges, units", unit, keys.FREE_ENERGY_OUTPUTS)
        if len(self.species) != 2 or len(set(self.species)) != 2:
            raise ModelFileError(
                f"a free energy of a binary alloy needs two distinct species (c is the mole fraction of the "
                f"second), got {self.species!r}"
            )
        if self.dtype != "float64":
            raise ModelFileError(
                f"a free energy is evaluated in float64 (its module is checked against the closed form to "
                f"1e-12), got dtype {self.dtype!r}"
            )

    def to_json(self) -> str:
        """Serialize to the JSON object stored in the file (only the kind's own object, if any)."""
        raw = asdict(self)
        for name in _KIND_OBJECTS:
            if getattr(self, name) is None:
                del raw[name]
        return json.dumps(raw, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str = "<string>") -> ModelMetadata:
        """Parse and validate the metadata object of a model file.

        Raises:
            ModelFileError: the JSON is invalid, a required key is missing, a value is out of
                its range, or the format version is not :data:`FORMAT_VERSION`. The message
                starts with ``source``.
        """
        try:
            raw: dict[str, Any] = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelFileError(f"{source}: metadata is not valid JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise ModelFileError(f"{source}: metadata must be a JSON object, got {type(raw).__name__}")
        version = raw.get(keys.FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise ModelFileError(
                f"{source}: model file format version {version!r} is not supported "
                f"(this ScaleLink reads version {FORMAT_VERSION}); re-export the model with "
                "`scalelink deploy` from a matching ScaleLink version"
            )
        missing = [k for k in keys.REQUIRED_METADATA if k not in raw]
        if missing:
            raise ModelFileError(f"{source}: metadata lacks the keys {missing}; re-export the model")
        unknown = sorted(set(raw) - set(keys.REQUIRED_METADATA) - set(keys.OPTIONAL_METADATA))
        if unknown:
            raise ModelFileError(f"{source}: metadata has unknown keys {unknown}")
        objects = {name: parse(raw[name], source) for name, parse in _KIND_OBJECTS.items() if name in raw}
        try:
            return cls(
                species=[str(s) for s in raw[keys.SPECIES_NAMES]],
                cutoff=float(raw[keys.CUTOFF]),
                num_layers=int(raw[keys.NUM_LAYERS]),
                dtype=str(raw[keys.DTYPE]),
                kind=str(raw[keys.KIND]),
                units=str(raw[keys.UNITS]),
                committee_size=int(raw[keys.COMMITTEE_SIZE]),
                outputs=[str(o) for o in raw[keys.OUTPUTS]],
                versions={str(k): str(v) for k, v in raw[keys.VERSIONS].items()},
                format_version=int(version),
                **objects,
            )
        except ModelFileError as exc:
            raise ModelFileError(f"{source}: {exc}") from None


_KIND_OBJECTS: dict[str, Any] = {
    keys.CONSTITUTIVE: ConstitutiveInfo.from_dict,
    keys.FREE_ENERGY: FreeEnergyInfo.from_dict,
    keys.GENERATOR: GeneratorInfo.from_dict,
}
"""Kind -> the parser of its metadata object (the object's key is the kind's name)."""


def package_versions() -> dict[str, str]:
    """Versions recorded in a model file's metadata."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"torch": torch.__version__}
    for name in ("scalelink", "ase", "torch-geometric"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "unknown"
    return out


def save_model(module: torch.jit.ScriptModule, path: str | os.PathLike[str], metadata: ModelMetadata) -> None:
    """Write a scripted model and its metadata to ``path``.

    Args:
        module: the scripted (``torch.jit.script``) model implementing the key contract of
            :mod:`scalelink.bridge.keys`.
        path: destination file; its folder must exist.
        metadata: what is stored beside the weights.

    Raises:
        ModelFileError: ``module`` is not scripted, or the folder of ``path`` does not exist.
        NonFiniteError: a weight (parameter or floating-point buffer) is NaN or infinite, in
            the precision written; the message names it.
    """
    if not isinstance(module, torch.jit.ScriptModule):
        raise ModelFileError(
            f"save_model needs a torch.jit.ScriptModule, got {type(module).__name__}: "
            "script the model first with torch.jit.script"
        )
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ModelFileError(
            f"cannot write the model file {path!r}: its folder {folder!r} does not exist; create it first "
            "or choose another path"
        )
    check_finite_weights(module, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
        torch.jit.save(module, path, _extra_files={keys.METADATA_FILE: metadata.to_json()})


def check_finite_weights(module: torch.nn.Module, path: str | os.PathLike[str], prefix: str = "") -> None:
    """Refuse to write weights that are NaN or infinite: engines would run such a file silently.

    Args:
        module: the network (or its scripted wrapper); parameters and floating-point buffers
            are checked.
        path: the model file about to be written, named in the message.
        prefix: put before the weight's name, e.g. ``"member 2: "`` in a committee.

    Raises:
        NonFiniteError: naming the first weight that holds NaN or infinite values.
    """
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        if not tensor.is_floating_point():
            continue
        bad = int((~torch.isfinite(tensor.detach())).sum())
        if bad:
            raise NonFiniteError(
                f"refusing to write {os.fspath(path)!r}: weight {prefix}{name!r} holds {bad} NaN or infinite "
                f"values of {tensor.numel()} ({tensor.dtype}); the training diverged or the weights overflow "
                "this precision. Deploy an earlier checkpoint (`scalelink deploy RUN --checkpoint best`) or "
                "retrain with a lower learning rate"
            )


def _extra_files_of(path: str) -> dict[str, Any]:
    if not os.path.isfile(path):
        raise ModelFileError(f"model file {path!r} does not exist; give the path of a file written by `scalelink deploy`")
    return {keys.METADATA_FILE: ""}


def select_device(device: str | torch.device) -> torch.device:
    """The torch device for ``"cpu"``, ``"cuda"``, ``"cuda:K"`` or ``"auto"``.

    ``"auto"`` is ``cuda`` when torch sees a GPU and ``cpu`` otherwise.

    Raises:
        ConfigError: a CUDA device is asked for but torch sees none (or fewer), or the name
            is not a device.
    """
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a device name; use 'cpu', 'cuda', 'cuda:K' or 'auto'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {name!r} was requested but torch sees no CUDA GPU (torch {torch.__version__}, "
                f"CUDA build {torch.version.cuda}); use device='cpu' or 'auto', or run on a GPU node"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"device {name!r} was requested but torch sees only {count} GPU(s)")
    elif dev.type != "cpu":
        raise ConfigError(f"device {name!r} is not supported; use 'cpu', 'cuda', 'cuda:K' or 'auto'")
    return dev


def read_metadata(path: str | os.PathLike[str]) -> ModelMetadata:
    """Read and validate the metadata of a model file without keeping the weights."""
    return load_model(path)[1]


def load_model(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[torch.jit.ScriptModule, ModelMetadata]:
    """Load a model file.

    Args:
        path: a file written by :func:`save_model`.
        device: where the weights go (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"auto"``; see
            :func:`select_device`).

    Returns:
        The scripted model in eval mode and its metadata.

    Raises:
        ModelFileError: the file is missing, is not a TorchScript archive, or carries no or
            bad metadata.
        ConfigError: the device is not available (e.g. ``"cuda"`` where torch sees no GPU).
    """
    path = os.fspath(path)
    device = select_device(device)
    extra = _extra_files_of(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
            module = torch.jit.load(path, map_location=device, _extra_files=extra)
    except (RuntimeError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(
            f"model file {path!r} is not a readable TorchScript archive ({first_line}); "
            "re-export it with `scalelink deploy`"
        ) from None
    text = extra[keys.METADATA_FILE]
    if isinstance(text, bytes):
        text = text.decode()
    if not text:
        raise ModelFileError(
            f"model file {path!r} carries no ScaleLink metadata ({keys.METADATA_FILE}); "
            "it was not written by `scalelink deploy`"
        )
    metadata = ModelMetadata.from_json(text, source=path)
    module.eval()
    return module, metadata
