"""What a potential architecture declares to the rest of ScaleLink.

Training, deployment, the CLI and model cards know an architecture only through its
:class:`Architecture` record in :mod:`scalelink.potentials.registry`; none of them names one.

A network built by an architecture is an ``nn.Module`` with float attributes ``cutoff`` (Å),
int attributes ``num_layers`` and ``num_species``, a buffer ``energy_shift`` [num_species] (eV),
and ``forward(edge_vectors [E, 3], edge_index [2, E], species [N], n_local: int = -1)``
returning atomic energies [N] (eV, zero beyond ``n_local``); it must be TorchScript-able.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

__all__ = ["Architecture", "GraphStatistics"]


@dataclass(frozen=True)
class GraphStatistics:
    """What a builder may know about the training set (computed once by the trainer).

    Attributes:
        species: chemical symbols in model order.
        cutoff: radial cutoff (Å).
        energy_shift: per-species atomic reference energies [num_species] (eV).
        force_scale: root mean square force component of the training set (eV/Å).
        mean_neighbours: mean number of edges per node of the training graphs (at least 1).
    """

    species: tuple[str, ...]
    cutoff: float
    energy_shift: tuple[float, ...]
    force_scale: float
    mean_neighbours: float


@dataclass(frozen=True)
class Architecture:
    """One potential architecture, declared once in its own module.

    Attributes:
        name: the value of ``architecture:`` in a training YAML file and in checkpoints.
        section: the YAML section of its hyperparameters (``model`` for the GNN).
        config: frozen dataclass of that section; it validates itself in ``__post_init__``
            (raising :class:`~scalelink.bridge.errors.ConfigError`) and its defaults are used
            when the section is absent.
        network: the ``nn.Module`` class; checkpoints rebuild it as ``network(**model_kwargs)``.
        model_kwargs: ``(config section, GraphStatistics) -> keyword arguments`` of ``network``;
            plain Python values only (they are stored in checkpoints).
        prepare: optional ``(network, training graphs) -> None`` run once on a freshly built
            network before training (e.g. fitting descriptor scaling).
        per_layer: the network offers ``embedding``, ``layer(k, ...)`` and ``atomic_energy``
            (see :class:`~scalelink.potentials.deployed.DeployedPotential`), so LAMMPS can
            exchange node features after every layer with a ghost shell of one cutoff.
        deployed: the TorchScript wrapper class ``deployed(network, dtype)`` that export writes.
        training_defaults: top-level training settings (``batch_size``, ``learning_rate``, ...)
            that this architecture trains best with; they replace the generic defaults of
            :class:`~scalelink.training.config.TrainConfig` when the configuration and the
            command line leave the setting out.
    """

    name: str
    section: str
    config: type
    network: type[nn.Module]
    model_kwargs: Callable[[Any, GraphStatistics], dict[str, Any]]
    deployed: type[nn.Module]
    per_layer: bool = False
    prepare: Callable[[nn.Module, Sequence[Any]], None] | None = None
    training_defaults: Mapping[str, Any] = field(default_factory=dict)
