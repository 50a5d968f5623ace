"""ScaleLink training: data sets, the training loop, metrics and deployment of potentials.

The architectures themselves live in :mod:`scalelink.potentials`; committees and active
learning in :mod:`scalelink.campaigns`; constitutive surrogates in :mod:`scalelink.surrogates`.

Typical use::

    from scalelink.training import load_config, train, export_potential
"""

from __future__ import annotations

from scalelink.potentials.behler_parrinello import BehlerParrinelloConfig, BehlerParrinelloPotential, fit_feature_scaling
from scalelink.potentials.gnn import GNNPotential, ModelConfig

from .config import LossWeights, SourceConfig, TrainConfig, load_config
from .evaluate import evaluate_model_file
from .export import (
    DeployedCommittee,
    DeployedEnergyModel,
    DeployedPotential,
    export_committee,
    export_potential,
)
from .importance import density_ratio_weights
from .losses import SourceNoise, source_nll
from .trainer import TrainResult, load_checkpoint, train

__all__ = [
    "BehlerParrinelloConfig",
    "BehlerParrinelloPotential",
    "DeployedCommittee",
    "DeployedEnergyModel",
    "DeployedPotential",
    "GNNPotential",
    "LossWeights",
    "ModelConfig",
    "SourceConfig",
    "SourceNoise",
    "TrainConfig",
    "TrainResult",
    "density_ratio_weights",
    "evaluate_model_file",
    "export_committee",
    "export_potential",
    "fit_feature_scaling",
    "load_checkpoint",
    "load_config",
    "source_nll",
    "train",
]
