"""Deployment: a trained potential (or a committee of them) scripted in the TorchScript wrapper
its architecture declares (:mod:`scalelink.potentials.deployed`) and written as one model file
with its metadata.
"""

from __future__ import annotations

import copy
import os
import warnings

import torch
from torch import nn

from scalelink.bridge import keys
from scalelink.bridge.errors import CommitteeError
from scalelink.bridge.model_file import ModelMetadata, check_finite_weights, package_versions, save_model
from scalelink.potentials import registry
from scalelink.potentials.deployed import (
    DeployedCommittee,
    DeployedEnergyModel,
    DeployedPotential,
    derivative_outputs,
)

__all__ = [
    "DeployedCommittee",
    "DeployedEnergyModel",
    "DeployedPotential",
    "derivative_outputs",
    "export_committee",
    "export_potential",
    "package_versions",
]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def export_potential(
    potential: nn.Module,
    species: list[str],
    path: str | os.PathLike[str],
    *,
    dtype: str = "float64",
) -> ModelMetadata:
    """Script ``potential`` and write it with its metadata to ``path``.

    Args:
        potential: a trained network (left untouched; a copy is converted): a
            network of a registered architecture (:mod:`scalelink.potentials.registry`; written
            in the wrapper it declares, e.g. with the per-layer interface for the GNN) or another
            potential with ``cutoff`` and ``num_layers == 1`` attributes and the same call
            signature (written as a plain energy model).
        species: chemical symbols in the order of the network's species index.
        path: the model file to write.
        dtype: ``"float32"`` or ``"float64"``, the precision of the deployed weights.

    Returns:
        The metadata written into the file.

    Raises:
        NonFiniteError: a weight is NaN or infinite (named), before or after conversion to ``dtype``.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    check_finite_weights(potential, path)
    module = copy.deepcopy(potential).cpu().eval()
    architecture = registry.of_network(module)
    wrapper_class = DeployedEnergyModel if architecture is None else architecture.deployed
    wrapper = wrapper_class(module, _DTYPES[dtype])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(wrapper)
    metadata = ModelMetadata(
        species=list(species),
        cutoff=float(potential.cutoff),
        num_layers=int(potential.num_layers),
        dtype=dtype,
        versions=package_versions(),
    )
    save_model(scripted, path, metadata)
    return metadata


def _check_members(potentials: list[nn.Module], species: list[str]) -> None:
    """Raise :class:`CommitteeError` unless the members can share one graph and species list."""
    if len(potentials) < 2:
        raise CommitteeError(
            f"a committee needs at least 2 members, got {len(potentials)}; "
            "write a single model with export_potential"
        )
    first = potentials[0]
    for k, potential in enumerate(potentials):
        if potential.cutoff != first.cutoff:
            raise CommitteeError(
                f"committee members must share one cutoff: member 0 has {first.cutoff} Å, "
                f"member {k} has {potential.cutoff} Å; train every member with the same cutoff"
            )
        if potential.num_layers != first.num_layers:
            raise CommitteeError(
                f"committee members must share the number of message-passing layers: member 0 "
                f"has {first.num_layers}, member {k} has {potential.num_layers}; train every "
                "member with the same num_layers"
            )
        known = potential.num_species
        if known != len(species):
            raise CommitteeError(
                f"committee member {k} knows {known} species, but "
                f"the committee has {len(species)} ({species}); train every member on the same "
                "species list"
            )


def export_committee(
    potentials: list[nn.Module],
    species: list[str],
    path: str | os.PathLike[str],
    *,
    dtype: str = "float64",
) -> ModelMetadata:
    """Script a committee of trained networks and write it as one model file.

    Args:
        potentials: M >= 2 trained networks sharing species, cutoff and number of layers
            (left untouched; copies are converted).
        species: chemical symbols in the order of the networks' species index.
        path: the model file to write.
        dtype: ``"float32"`` or ``"float64"``, the precision of the deployed weights.

    Returns:
        The metadata written into the file (``committee_size = M``; ``outputs`` include
        ``member_energy`` and ``member_forces``).

    Raises:
        CommitteeError: fewer than 2 members, or members that differ in cutoff, number of
            layers or number of species.
        NonFiniteError: a member's weight is NaN or infinite (named with the member).
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    _check_members(potentials, list(species))
    for k, potential in enumerate(potentials):
        check_finite_weights(potential, path, prefix=f"member {k}: ")
    copies = [copy.deepcopy(potential).cpu().eval() for potential in potentials]
    wrapper = DeployedCommittee(copies, _DTYPES[dtype])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(wrapper)
    metadata = ModelMetadata(
        species=list(species),
        cutoff=potentials[0].cutoff,
        num_layers=potentials[0].num_layers,
        dtype=dtype,
        committee_size=len(potentials),
        outputs=[*keys.MODEL_OUTPUTS, *keys.COMMITTEE_OUTPUTS],
        versions=package_versions(),
    )
    save_model(scripted, path, metadata)
    return metadata
