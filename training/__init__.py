"""ScaleLink training: data sets, GNN potentials, the training loop, deployment.

Typical use::

    from scalelink.training import load_config, train, export_potential
"""

from __future__ import annotations

from .config import LossWeights, ModelConfig, TrainConfig, load_config
from .evaluate import evaluate_model_file
from .export import DeployedCommittee, DeployedPotential, export_committee, export_potential
from .model import GNNPotential
from .trainer import TrainResult, load_checkpoint, train

__all__ = [
    "DeployedCommittee",
    "DeployedPotential",
    "GNNPotential",
    "LossWeights",
    "ModelConfig",
    "TrainConfig",
    "TrainResult",
    "evaluate_model_file",
    "export_committee",
    "export_potential",
    "load_checkpoint",
    "load_config",
    "train",
]
