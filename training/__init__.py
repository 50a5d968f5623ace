"""ScaleLink training: data sets, GNN and Behler–Parrinello potentials, the training loop, deployment.

Typical use::

    from scalelink.training import load_config, train, export_potential
"""

from __future__ import annotations

from .active_learning import LearnConfig, load_learn_config, run_active_learning
from .committee import CommitteeResult, train_committee
from .behler_parrinello import BehlerParrinelloPotential, fit_feature_scaling
from .config import (
    BehlerParrinelloConfig,
    LossWeights,
    ModelConfig,
    SourceConfig,
    TrainConfig,
    load_config,
)
from .constitutive import ConstitutiveMLP, export_constitutive, load_samples
from .evaluate import evaluate_model_file
from .export import (
    DeployedCommittee,
    DeployedEnergyModel,
    DeployedPotential,
    export_committee,
    export_potential,
)
from .importance import density_ratio_weights
from .labelling import label_structures, make_labeller
from .losses import SourceNoise, source_nll
from .model import GNNPotential
from .surrogate_trainer import SurrogateConfig, load_surrogate, train_surrogate
from .trainer import TrainResult, load_checkpoint, train

__all__ = [
    "BehlerParrinelloConfig",
    "BehlerParrinelloPotential",
    "CommitteeResult",
    "ConstitutiveMLP",
    "DeployedCommittee",
    "DeployedEnergyModel",
    "DeployedPotential",
    "GNNPotential",
    "LearnConfig",
    "LossWeights",
    "ModelConfig",
    "SourceConfig",
    "SourceNoise",
    "SurrogateConfig",
    "TrainConfig",
    "TrainResult",
    "density_ratio_weights",
    "evaluate_model_file",
    "export_committee",
    "export_constitutive",
    "export_potential",
    "fit_feature_scaling",
    "label_structures",
    "load_checkpoint",
    "load_config",
    "load_learn_config",
    "load_samples",
    "load_surrogate",
    "make_labeller",
    "run_active_learning",
    "source_nll",
    "train",
    "train_committee",
    "train_surrogate",
]
