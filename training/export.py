"""Deployment: a thin TorchScript wrapper around a trained potential, written as one file.

The wrapper implements the key contract of :mod:`scalelink.bridge.keys`: it takes the graph
in float64, runs the network in the precision of its weights, and returns energy, atomic
energies, forces on every node and the virial, all in float64. A committee of several
networks is written the same way, as one file whose forward call evaluates every member.
"""

from __future__ import annotations

import copy
import os
import warnings
from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn

from scalelink.bridge import keys
from scalelink.bridge.errors import CommitteeError
from scalelink.bridge.model_file import ModelMetadata, save_model

from .model import GNNPotential, forces_and_virial

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


def _graph_inputs(data: Dict[str, Tensor]) -> Tuple[Tensor, Tensor, Tensor, int]:
    """``edge_index``, ``edge_vectors``, ``species`` and ``n_local`` of the input dictionary."""
    return data[keys.EDGE_INDEX], data[keys.EDGE_VECTORS], data[keys.SPECIES], int(data[keys.N_LOCAL].item())


class DeployedEnergyModel(nn.Module):
    """Any potential mapping the graph to atomic energies behind the dictionary contract.

    On its own it has no per-layer interface and serves potentials without message passing
    (e.g. Behler–Parrinello, ``num_layers`` 1: LAMMPS needs a ghost shell of one cutoff and
    exchanges nothing between layers).

    Shapes (inputs): ``edge_index`` [2, E] int64, ``edge_vectors`` [E, 3] float64,
    ``species`` [N] int64, ``n_local`` [] int64. Outputs: ``energy`` [], ``atomic_energy``
    [N], ``forces`` [N, 3], ``virial`` [6] (xx yy zz xy xz yz), ``atomic_virial`` [N, 9]
    (xx yy zz xy xz yz yx zx zy), all float64.
    """

    def __init__(self, potential: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.potential = potential.to(dtype)
        self.dtype = dtype

    def forward(self, data: Dict[str, Tensor]) -> Dict[str, Tensor]:
        edge_index, edge_vectors, species, n_local = _graph_inputs(data)
        num_nodes = species.shape[0]
        # callers must leave autograd enabled (no torch.no_grad / NoGradGuard around this)
        vectors = edge_vectors.detach().to(self.dtype).requires_grad_(True)
        atomic = self.potential(vectors, edge_index, species, n_local).to(torch.float64)
        energy = atomic[:n_local].sum()
        grads = torch.autograd.grad([energy], [vectors], allow_unused=True)
        gradient = grads[0]
        if gradient is None:
            gradient = torch.zeros_like(vectors)
        out = derivative_outputs(gradient.to(torch.float64), edge_vectors, edge_index, num_nodes)
        out[keys.ENERGY] = energy.detach()
        out[keys.ATOMIC_ENERGY] = atomic.detach()
        return out


class DeployedPotential(DeployedEnergyModel):
    """Energy, forces and virial of a :class:`GNNPotential` behind the dictionary contract,
    with the per-layer interface below. Shapes as :class:`DeployedEnergyModel`.
    """

    # ---- per-layer interface ------------------------------------------------------------
    # A caller that exchanges node features between MPI ranks after every layer (so that
    # ghost atoms are needed out to one cutoff only) drives the network stage by stage:
    #   h = embed(species); h_local = layer(k, h, vectors, edge_index, n_local) for each k,
    #   completing h with the ghosts' features from their owners in between;
    #   energies = readout(h_local, species_local); then back-propagates stage by stage
    #   and turns the edge-vector gradient into forces and virials with derivatives().

    @torch.jit.export
    def num_features(self) -> int:
        """Width of the node features exchanged between layers."""
        return int(self.potential.embedding.weight.shape[1])

    @torch.jit.export
    def embed(self, species: Tensor) -> Tensor:
        """Initial node features [N, F] (model dtype) from species [N]."""
        return self.potential.embedding(species)

    @torch.jit.export
    def layer(self, k: int, h: Tensor, edge_vectors: Tensor, edge_index: Tensor, n_out: int) -> Tensor:
        """Layer ``k``: features [n_out, F] of nodes ``0..n_out-1`` from ``h`` [N, F];
        ``edge_vectors`` [E, 3] in the model dtype, every edge centre below ``n_out``."""
        return self.potential.layer(k, h, edge_vectors, edge_index, n_out)

    @torch.jit.export
    def readout(self, h: Tensor, species: Tensor) -> Tensor:
        """Atomic energies [n] (float64) from final features [n, F] and species [n]."""
        return self.potential.atomic_energy(h, species).to(torch.float64)

    @torch.jit.export
    def derivatives(
        self, edge_gradient: Tensor, edge_vectors: Tensor, edge_index: Tensor, num_nodes: int
    ) -> Dict[str, Tensor]:
        """Forces [N, 3], virial [6] and per-node virials [N, 9] from dE/d(edge vectors) (float64)."""
        return derivative_outputs(edge_gradient, edge_vectors, edge_index, num_nodes)


def derivative_outputs(
    edge_gradient: Tensor, edge_vectors: Tensor, edge_index: Tensor, num_nodes: int
) -> Dict[str, Tensor]:
    """The ``forces``, ``virial`` and ``atomic_virial`` outputs from the energy gradient.

    Args:
        edge_gradient: dE/d(edge vectors) [E, 3], float64 (eV/Å).
        edge_vectors: the edge vectors [E, 3] (Å).
        edge_index: centres and neighbours [2, E].
        num_nodes: N, the nodes of the graph.

    Returns:
        ``forces`` [N, 3] (eV/Å), ``virial`` [6] (xx yy zz xy xz yz, eV) and
        ``atomic_virial`` [N, 9] (xx yy zz xy xz yz yx zx zy, eV), all float64.
    """
    forces, edge_virial = forces_and_virial(edge_gradient, edge_vectors, edge_index, num_nodes)
    w = edge_virial.sum(0)
    virial = torch.stack([w[0, 0], w[1, 1], w[2, 2], w[0, 1], w[0, 2], w[1, 2]])
    # each edge's virial is shared equally by its two atoms, so the per-atom virials sum
    # to the total on every rank
    half = 0.5 * edge_virial.reshape(-1, 9)
    atomic_virial = torch.zeros((num_nodes, 9), dtype=torch.float64, device=half.device)
    atomic_virial.index_add_(0, edge_index[0], half)
    atomic_virial.index_add_(0, edge_index[1], half)
    # row-major 3x3 -> xx yy zz xy xz yz yx zx zy (LAMMPS centroid order)
    atomic_virial = atomic_virial[:, [0, 4, 8, 1, 2, 5, 3, 6, 7]]
    return {keys.FORCES: forces, keys.VIRIAL: virial, keys.ATOMIC_VIRIAL: atomic_virial}


def package_versions() -> dict[str, str]:
    """Versions recorded in a model file's metadata."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"torch": torch.__version__}
    for name in ("scalelink", "ase", "torch-geometric"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "unknown"
    return out


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
            :class:`GNNPotential` (written with the per-layer interface) or another potential
            with ``cutoff`` and ``num_layers == 1`` attributes and the same call signature,
            such as :class:`~scalelink.training.behler_parrinello.BehlerParrinelloPotential`.
        species: chemical symbols in the order of the network's species index.
        path: the model file to write.
        dtype: ``"float32"`` or ``"float64"``, the precision of the deployed weights.

    Returns:
        The metadata written into the file.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    module = copy.deepcopy(potential).cpu().eval()
    if isinstance(module, GNNPotential):
        wrapper: nn.Module = DeployedPotential(module, _DTYPES[dtype])
    else:
        wrapper = DeployedEnergyModel(module, _DTYPES[dtype])
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


class DeployedCommittee(nn.Module):
    """Several :class:`GNNPotential` members evaluated in one forward call.

    The usual outputs hold the members' mean; ``member_energy`` [M] and ``member_forces``
    [M, N, 3] hold each member's own, so that a caller can measure their disagreement.
    All members must share species, cutoff and number of layers (see
    :func:`export_committee`). The committee has no per-layer interface: LAMMPS runs it in
    ``ghost full`` mode.

    Shapes (inputs): as :class:`DeployedPotential`. Outputs: ``energy`` [], ``atomic_energy``
    [N], ``forces`` [N, 3], ``virial`` [6], ``atomic_virial`` [N, 9] (members' means),
    ``member_energy`` [M], ``member_forces`` [M, N, 3], all float64 (eV, Å).
    """

    def __init__(self, potentials: list[GNNPotential], dtype: torch.dtype) -> None:
        super().__init__()
        self.members = nn.ModuleList([potential.to(dtype) for potential in potentials])
        self.dtype = dtype

    def forward(self, data: Dict[str, Tensor]) -> Dict[str, Tensor]:
        edge_index, edge_vectors, species, n_local = _graph_inputs(data)
        num_nodes = species.shape[0]
        # one leaf per member: a single backward pass then gives every member's own gradient
        leaves: List[Tensor] = []
        atomic: List[Tensor] = []
        energies: List[Tensor] = []
        for member in self.members:
            vectors = edge_vectors.detach().to(self.dtype).requires_grad_(True)
            member_atomic = member(vectors, edge_index, species, n_local).to(torch.float64)
            leaves.append(vectors)
            atomic.append(member_atomic)
            energies.append(member_atomic[:n_local].sum())
        grads = torch.autograd.grad(energies, leaves, allow_unused=True)
        gradients: List[Tensor] = []
        for gradient in grads:
            if gradient is None:
                gradients.append(torch.zeros_like(edge_vectors))
            else:
                gradients.append(gradient.to(torch.float64))
        member_gradient = torch.stack(gradients)  # [M, E, 3]

        member_forces = torch.zeros(
            (len(gradients), num_nodes, 3), dtype=torch.float64, device=edge_vectors.device
        )
        member_forces.index_add_(1, edge_index[0], member_gradient)
        member_forces.index_add_(1, edge_index[1], -member_gradient)

        out = derivative_outputs(member_gradient.mean(0), edge_vectors, edge_index, num_nodes)
        member_energy = torch.stack(energies).detach()
        out[keys.ENERGY] = member_energy.mean()
        out[keys.ATOMIC_ENERGY] = torch.stack(atomic).detach().mean(0)
        out[keys.MEMBER_ENERGY] = member_energy
        out[keys.MEMBER_FORCES] = member_forces
        return out


def _check_members(potentials: list[GNNPotential], species: list[str]) -> None:
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
        known = potential.embedding.num_embeddings if isinstance(potential, GNNPotential) else potential.num_species
        if known != len(species):
            raise CommitteeError(
                f"committee member {k} knows {known} species, but "
                f"the committee has {len(species)} ({species}); train every member on the same "
                "species list"
            )


def export_committee(
    potentials: list[GNNPotential],
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
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    _check_members(potentials, list(species))
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
