"""ScaleLink potential architectures: one module per architecture, each declaring its network,
its configuration section and how it is built and deployed; :mod:`.registry` lists them.

Typical use::

    from scalelink.potentials import registry
    architecture = registry.get("ace")
"""

from __future__ import annotations

from . import registry
from .ace import ACEConfig, ACEPotential
from .architecture import Architecture, GraphStatistics
from .behler_parrinello import BehlerParrinelloConfig, BehlerParrinelloPotential, fit_feature_scaling
from .deployed import DeployedCommittee, DeployedEnergyModel, DeployedPotential, forces_and_virial
from .gnn import GNNPotential, ModelConfig

__all__ = [
    "ACEConfig",
    "ACEPotential",
    "Architecture",
    "BehlerParrinelloConfig",
    "BehlerParrinelloPotential",
    "DeployedCommittee",
    "DeployedEnergyModel",
    "DeployedPotential",
    "GNNPotential",
    "GraphStatistics",
    "ModelConfig",
    "fit_feature_scaling",
    "forces_and_virial",
    "registry",
]
