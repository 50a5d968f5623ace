"""The deployed image generator: the VAE decoder as one TorchScript file, metadata inside.

The metadata (JSON under ``microstructure.json`` in the archive's ``_extra_files``): format
version, latent size, image size, the calibrated cut of the probability maps and the training
set's volume fraction. The file loads without this package's Python classes (``torch.jit.load``),
like the model files of :mod:`scalelink.bridge`, whose kinds (potential, constitutive) do not
include image generators.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any

import torch

from scalelink.bridge.errors import ModelFileError

from .vae import PhaseDecoder

__all__ = ["GENERATOR_FORMAT", "load_decoder", "save_decoder"]

GENERATOR_FORMAT = 1
_METADATA = "microstructure.json"
_KEYS = ("format_version", "kind", "latent_size", "image_size", "threshold", "volume_fraction")


def save_decoder(decoder: PhaseDecoder, path: str | os.PathLike[str], *, threshold: float,
                 volume_fraction: float) -> None:
    """Script ``decoder`` and write it with its metadata to ``path``."""
    metadata = {"format_version": GENERATOR_FORMAT, "kind": "microstructure_generator",
                "latent_size": int(decoder.latent_size), "image_size": int(decoder.image_size),
                "threshold": float(threshold), "volume_fraction": float(volume_fraction)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
        scripted = torch.jit.script(decoder.eval())
        torch.jit.save(scripted, os.fspath(path), _extra_files={_METADATA: json.dumps(metadata)})


def load_decoder(path: str | os.PathLike[str]) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """Load a deployed decoder: the scripted module (eval mode) and its metadata."""
    extra = {_METADATA: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
            module = torch.jit.load(os.fspath(path), map_location="cpu", _extra_files=extra)
    except (RuntimeError, ValueError) as exc:
        raise ModelFileError(f"{os.fspath(path)!r} is not a readable TorchScript archive "
                             f"({str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r})"
                             ) from None
    try:
        metadata = json.loads(extra[_METADATA] or "null")
    except json.JSONDecodeError:
        metadata = None
    if not isinstance(metadata, dict) or sorted(metadata) != sorted(_KEYS) or (
            metadata["format_version"] != GENERATOR_FORMAT):
        raise ModelFileError(
            f"{os.fspath(path)!r} carries no microstructure-generator metadata of format "
            f"{GENERATOR_FORMAT} (found {metadata!r}); write it with save_decoder"
        )
    return module.eval(), metadata
