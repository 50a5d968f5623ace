"""The ScaleLink model file: one TorchScript archive with its metadata inside.

This module is the only reader and writer of model files on the Python side. The metadata
travels as one JSON object in the archive's ``_extra_files`` under
:data:`scalelink.bridge.keys.METADATA_FILE`; the C++ plugin reads the same object.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

from . import keys
from .errors import ConfigError, ModelFileError, NonFiniteError
from .units import unit_style

__all__ = [
    "FORMAT_VERSION",
    "ConstitutiveInfo",
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

_KINDS = ("potential", "constitutive")
_DTYPES = ("float32", "float64")
_STRAIN_SIZES = (3, 6)


@dataclass(frozen=True)
class ConstitutiveInfo:
    """What a consumer of a constitutive (strain → stress) model needs, stored in the file.

    The deployed module applies the scaling itself; it is recorded so that users can see the
    range the model was trained on.

    Attributes:
        strain_size: length ``m`` of the Mandel vectors: 3 (2D plane strain) or 6 (3D).
        stress_unit: unit of the stress and tangent the model returns (e.g. ``"GPa"``).
        architecture: a summary of the network, e.g. ``{"type": "mlp", "width": 64,
            "depth": 3, "activation": "silu"}``.
        strain_mean: ``(m,)`` strain subtracted before the network (input normalisation).
        strain_scale: ``(m,)`` positive divisors of the centred strain.
        stress_mean: ``(m,)`` added to the network's scaled output (stress unit).
        stress_scale: ``(m,)`` positive factors of the network's output (stress unit).
        strain_lower: ``(m,)`` smallest strain component seen in training.
        strain_upper: ``(m,)`` largest strain component seen in training.
    """

    strain_size: int
    stress_unit: str
    architecture: dict[str, Any]
    strain_mean: list[float]
    strain_scale: list[float]
    stress_mean: list[float]
    stress_scale: list[float]
    strain_lower: list[float]
    strain_upper: list[float]

    def __post_init__(self) -> None:
        if self.strain_size not in _STRAIN_SIZES:
            raise ModelFileError(
                f"constitutive strain_size {self.strain_size!r} is not one of {_STRAIN_SIZES} "
                "(3: 2D plane strain, 6: 3D Mandel vectors)"
            )
        if not self.stress_unit:
            raise ModelFileError("a constitutive model needs a stress_unit, got an empty string")
        for name in ("strain_mean", "strain_scale", "stress_mean", "stress_scale", "strain_lower", "strain_upper"):
            values = getattr(self, name)
            if len(values) != self.strain_size:
                raise ModelFileError(
                    f"constitutive {name} has {len(values)} entries, expected strain_size = "
                    f"{self.strain_size}; re-export the model"
                )
        for name in ("strain_scale", "stress_scale"):
            if not all(v > 0.0 for v in getattr(self, name)):
                raise ModelFileError(f"constitutive {name} must be positive, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, raw: Any, source: str) -> ConstitutiveInfo:
        """Parse the ``constitutive`` object of the metadata; unknown or missing keys are refused."""
        if not isinstance(raw, dict):
            raise ModelFileError(f"{source}: metadata '{keys.CONSTITUTIVE}' must be an object, got {raw!r}")
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in raw]
        unknown = sorted(set(raw) - set(names))
        if missing or unknown:
            raise ModelFileError(
                f"{source}: metadata '{keys.CONSTITUTIVE}' lacks {missing} / has unknown keys "
                f"{unknown}; expected exactly {names}; re-export the model"
            )
        try:
            vectors = {n: [float(v) for v in raw[n]] for n in names[3:]}
            return cls(
                strain_size=int(raw["strain_size"]),
                stress_unit=str(raw["stress_unit"]),
                architecture=dict(raw["architecture"]),
                **vectors,
            )
        except (TypeError, ValueError) as exc:
            raise ModelFileError(
                f"{source}: metadata '{keys.CONSTITUTIVE}' has a value of the wrong type ({exc}); "
                "re-export the model"
            ) from None


@dataclass(frozen=True)
class ModelMetadata:
    """What a consumer needs to know about a deployed model, stored inside the file.

    Attributes:
        species: chemical symbols, in the order of the model's species index.
        cutoff: radial cutoff in Å (model length units).
        num_layers: message-passing layers; the receptive field is ``num_layers * cutoff``.
        dtype: precision of the weights, ``"float32"`` or ``"float64"``.
        kind: ``"potential"`` or ``"constitutive"``.
        units: LAMMPS unit style the model works in (potential), or the stress unit
            (constitutive, equal to ``constitutive.stress_unit``).
        committee_size: number of members evaluated in one pass (1 for a single model).
        outputs: keys of the dictionary the model returns.
        versions: package versions at export time.
        format_version: model file format version.
        constitutive: strain size, stress unit, scaling and architecture of a constitutive
            model (``kind == "constitutive"``); ``None`` for a potential. Build the metadata
            of a constitutive model with :meth:`for_constitutive`.
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
        if self.kind == "constitutive":
            self._check_constitutive()
        else:
            if self.constitutive is not None:
                raise ModelFileError("a potential carries no 'constitutive' metadata; set kind='constitutive'")
            unit_style(self.units)

    def _check_constitutive(self) -> None:
        if self.constitutive is None:
            raise ModelFileError(
                "a model of kind 'constitutive' needs its 'constitutive' metadata (strain size, "
                "stress unit, scaling); build it with ModelMetadata.for_constitutive"
            )
        if self.units != self.constitutive.stress_unit:
            raise ModelFileError(
                f"a constitutive model's units {self.units!r} must equal its stress unit "
                f"{self.constitutive.stress_unit!r}"
            )
        if self.committee_size != 1 or list(self.outputs) != list(keys.CONSTITUTIVE_OUTPUTS):
            raise ModelFileError(
                f"a constitutive model returns {list(keys.CONSTITUTIVE_OUTPUTS)} from one network, got "
                f"outputs {self.outputs} and committee_size {self.committee_size}"
            )

    def to_json(self) -> str:
        """Serialize to the JSON object stored in the file (no ``constitutive`` key for potentials)."""
        raw = asdict(self)
        if self.constitutive is None:
            del raw[keys.CONSTITUTIVE]
        return json.dumps(raw, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str = "<string>") -> ModelMetadata:
        """Parse and validate the metadata object of a model file.

        Raises:
            ModelFileError: the JSON is invalid, a required key is missing, or the format
                version is not :data:`FORMAT_VERSION`.
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
        constitutive = None
        if keys.CONSTITUTIVE in raw:
            constitutive = ConstitutiveInfo.from_dict(raw[keys.CONSTITUTIVE], source)
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
            constitutive=constitutive,
        )


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
