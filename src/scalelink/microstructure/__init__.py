"""Generative two-phase microstructures feeding periodic FE RVEs.

A statistical generator (thresholded periodic Gaussian random fields), a learned one (a small
convolutional VAE trained on CPU whose decoder is deployed as a ScaleLink model file of kind
``generator``), the statistics they are compared by (volume fraction, two-point correlation) and
the step from a voxel image to a periodic dolfinx RVE with phase tags
(``scalelink.fe2.PeriodicRVE``).

Public names are imported on first use, so ``import scalelink.microstructure`` loads neither
torch nor dolfinx::

    from scalelink.microstructure import gaussian_random_field_images, effective_stiffnesses
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it
EXPORTS = {
    "check_two_phase": "images",
    "gaussian_random_field_images": "images",
    "two_point_correlation": "images",
    "volume_fraction": "images",
    "effective_stiffnesses": "rve",
    "image_marker": "rve",
    "voxel_mesh": "rve",
    "voxel_rve": "rve",
    "PhaseDecoder": "vae",
    "PhaseVAE": "vae",
    "VAETraining": "vae",
    "calibrate_fraction_map": "vae",
    "calibrate_threshold": "vae",
    "cut_maps": "vae",
    "sample_images": "vae",
    "train_vae": "vae",
    "convert_decoder_file": "deploy",
    "load_generator": "deploy",
    "save_generator": "deploy",
}

__all__ = sorted(EXPORTS)


def __getattr__(name: str) -> Any:
    if name in EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
