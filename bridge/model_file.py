"""The ScaleLink model file: one TorchScript archive with its metadata inside.

This module is the only reader and writer of model files on the Python side. The metadata
travels as one JSON object in the archive's ``_extra_files`` under
:data:`scalelink.bridge.keys.METADATA_FILE`; the C++ plugin reads the same object.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from . import keys
from .errors import ModelFileError
from .units import unit_style

__all__ = [
    "FORMAT_VERSION",
    "ModelMetadata",
    "load_model",
    "read_metadata",
    "save_model",
]

FORMAT_VERSION = 1
"""The model file format this version of ScaleLink reads and writes."""

_KINDS = ("potential", "constitutive")
_DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class ModelMetadata:
    """What a consumer needs to know about a deployed model, stored inside the file.

    Attributes:
        species: chemical symbols, in the order of the model's species index.
        cutoff: radial cutoff in Å (model length units).
        num_layers: message-passing layers; the receptive field is ``num_layers * cutoff``.
        dtype: precision of the weights, ``"float32"`` or ``"float64"``.
        kind: ``"potential"`` or ``"constitutive"``.
        units: LAMMPS unit style the model works in.
        committee_size: number of members evaluated in one pass (1 for a single model).
        outputs: keys of the dictionary the model returns.
        versions: package versions at export time.
        format_version: model file format version.
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
        unit_style(self.units)

    def to_json(self) -> str:
        """Serialize to the JSON object stored in the file."""
        return json.dumps(asdict(self), sort_keys=True)

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
        unknown = sorted(set(raw) - set(keys.REQUIRED_METADATA))
        if unknown:
            raise ModelFileError(f"{source}: metadata has unknown keys {unknown}")
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
        )


def save_model(module: torch.jit.ScriptModule, path: str | os.PathLike[str], metadata: ModelMetadata) -> None:
    """Write a scripted model and its metadata to ``path``.

    Args:
        module: the scripted (``torch.jit.script``) model implementing the key contract of
            :mod:`scalelink.bridge.keys`.
        path: destination file; its folder must exist.
        metadata: what is stored beside the weights.
    """
    if not isinstance(module, torch.jit.ScriptModule):
        raise ModelFileError(
            f"save_model needs a torch.jit.ScriptModule, got {type(module).__name__}: "
            "script the model first with torch.jit.script"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
        torch.jit.save(module, os.fspath(path), _extra_files={keys.METADATA_FILE: metadata.to_json()})


def _extra_files_of(path: str) -> dict[str, Any]:
    if not os.path.isfile(path):
        raise ModelFileError(f"model file {path!r} does not exist; give the path of a file written by `scalelink deploy`")
    return {keys.METADATA_FILE: ""}


def read_metadata(path: str | os.PathLike[str]) -> ModelMetadata:
    """Read and validate the metadata of a model file without keeping the weights."""
    return load_model(path)[1]


def load_model(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[torch.jit.ScriptModule, ModelMetadata]:
    """Load a model file.

    Args:
        path: a file written by :func:`save_model`.
        device: where the weights go (``"cpu"``, ``"cuda"``, ``"cuda:1"``...).

    Returns:
        The scripted model in eval mode and its metadata.

    Raises:
        ModelFileError: the file is missing, is not a TorchScript archive, or carries no or
            bad metadata.
    """
    path = os.fspath(path)
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
