"""The deployed image generator: the VAE decoder as a ScaleLink model file of kind ``generator``.

:func:`save_generator` scripts a :class:`~scalelink.microstructure.vae.PhaseDecoder` and writes
it through :mod:`scalelink.bridge` with the latent size, image size, the calibrated cut of the
probability maps (one level, and optionally the per-image fraction map) and the training set's
volume fraction in the metadata (``generator``);
:func:`load_generator` reads it back and checks the kind and that the scripted decoder has the
sizes the metadata states. The file loads without this package (``torch.jit.load``).

Decoder files written before the generator kind existed (their metadata in a private
``microstructure.json``) are refused by :func:`load_generator` with the fix:
:func:`convert_decoder_file` rewrites one as a model file once, with the same scripted decoder.
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile

import torch

from scalelink.bridge.errors import ModelFileError
from scalelink.bridge.model_file import GeneratorInfo, ModelMetadata, load_model, package_versions, save_model

from .vae import PhaseDecoder

__all__ = ["convert_decoder_file", "load_generator", "save_generator"]

_LEGACY_METADATA = "microstructure.json"
_LEGACY_FORMAT = 1
_LEGACY_KEYS = ("format_version", "kind", "latent_size", "image_size", "threshold", "volume_fraction")


def _save(scripted: torch.jit.ScriptModule, path: str | os.PathLike[str], *, threshold: float,
          volume_fraction: float, fraction_map: tuple[float, float] | None = None) -> None:
    weights = next(iter(scripted.parameters()))
    info = GeneratorInfo(
        latent_size=int(scripted.latent_size), image_size=int(scripted.image_size), threshold=float(threshold),
        volume_fraction=float(volume_fraction),
        architecture={"type": "conv_decoder", "channels": int(scripted.channels), "padding": "circular"},
        fraction_map=None if fraction_map is None else tuple(float(v) for v in fraction_map))
    dtype = str(weights.dtype).removeprefix("torch.")
    save_model(scripted, path, ModelMetadata.for_generator(info, dtype=dtype, versions=package_versions()))


def save_generator(decoder: PhaseDecoder, path: str | os.PathLike[str], *, threshold: float,
                   volume_fraction: float, fraction_map: tuple[float, float] | None = None) -> None:
    """Script ``decoder`` and write it as a model file of kind ``generator``.

    Args:
        decoder: the trained decoder (latent ``(n, L)`` → phase-1 probability ``(n, N, N)``).
        path: destination file; its folder must exist.
        threshold: the cut of the probability maps (:func:`~scalelink.microstructure.vae.calibrate_threshold`).
        volume_fraction: the training images' mean fraction of phase 1.
        fraction_map: ``(offset, scale)`` of the per-image cut
            (:func:`~scalelink.microstructure.vae.calibrate_fraction_map`); ``None``: one cut,
            ``threshold``, for every map.

    Raises:
        ModelFileError: ``threshold`` not in (0, 1), ``volume_fraction`` not in [0, 1],
            ``fraction_map`` not two finite numbers with a positive scale, or the folder of
            ``path`` is missing.
        NonFiniteError: a weight is NaN or infinite.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
        scripted = torch.jit.script(decoder.eval())
    _save(scripted, path, threshold=threshold, volume_fraction=volume_fraction, fraction_map=fraction_map)


def _is_legacy(path: str) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/extra/" + _LEGACY_METADATA) for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def load_generator(path: str | os.PathLike[str],
                   device: str | torch.device = "cpu") -> tuple[torch.jit.ScriptModule, ModelMetadata]:
    """Load a model file of kind ``generator``: the scripted decoder (eval mode) and its metadata
    (``metadata.generator`` holds latent size, image size, threshold, volume fraction and the
    fraction map, ``None`` in files written without one).

    Raises:
        ModelFileError: the file is missing or unreadable, is of another kind, has incomplete
            metadata, or its decoder's sizes differ from the metadata; a decoder file of the
            earlier format names :func:`convert_decoder_file`.
    """
    path = os.fspath(path)
    try:
        module, metadata = load_model(path, device=device)
    except ModelFileError:
        if _is_legacy(path):
            raise ModelFileError(
                f"{path!r} is a decoder file of the earlier format (metadata in '{_LEGACY_METADATA}', before "
                "generators were a kind of the ScaleLink model file); convert it once with "
                "scalelink.microstructure.convert_decoder_file(old, new), or deploy the trained VAE's "
                "decoder again with save_generator") from None
        raise
    if metadata.kind != "generator" or metadata.generator is None:
        raise ModelFileError(
            f"{path!r} holds a model of kind {metadata.kind!r}, not an image generator; deploy a decoder "
            "with scalelink.microstructure.save_generator")
    info = metadata.generator
    sizes = (int(getattr(module, "latent_size", -1)), int(getattr(module, "image_size", -1)))
    if sizes != (info.latent_size, info.image_size):
        raise ModelFileError(
            f"{path!r}: its decoder has (latent_size, image_size) = {sizes}, its metadata "
            f"{(info.latent_size, info.image_size)}; the file was edited or corrupted: deploy the decoder again")
    return module, metadata


def convert_decoder_file(old: str | os.PathLike[str], new: str | os.PathLike[str]) -> None:
    """Rewrite a decoder file of the earlier format (``microstructure.json``) as a model file of
    kind ``generator`` with the same scripted decoder, threshold and volume fraction.

    Raises:
        ModelFileError: ``old`` is not a readable decoder file of that format.
    """
    old = os.fspath(old)
    extra = {_LEGACY_METADATA: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
            module = torch.jit.load(old, map_location="cpu", _extra_files=extra)
        legacy = json.loads(extra[_LEGACY_METADATA] or "null")
    except (RuntimeError, ValueError) as exc:
        raise ModelFileError(f"{old!r} is not a readable TorchScript archive ({str(exc).strip()[:200]})") from None
    if not isinstance(legacy, dict) or sorted(legacy) != sorted(_LEGACY_KEYS) or (
            legacy["format_version"] != _LEGACY_FORMAT):
        raise ModelFileError(
            f"{old!r} carries no decoder metadata of the earlier format (found {legacy!r} in "
            f"'{_LEGACY_METADATA}'); only files written by the former save_decoder can be converted")
    _save(module, new, threshold=legacy["threshold"], volume_fraction=legacy["volume_fraction"])
