"""The deployed form of a potential: TorchScript wrappers behind the dictionary contract of
:mod:`scalelink.bridge.keys`, and the forces and virials that follow from the gradient of the
energy with respect to the edge vectors (the one place they are computed in Python).

Each wrapper takes the graph in float64, runs the network in the precision of its weights and
returns energy, atomic energies, forces on every node and the virial, all in float64. A
committee of several networks is one module whose forward call evaluates every member.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn

from scalelink.bridge import keys

__all__ = [
    "DeployedCommittee",
    "DeployedEnergyModel",
    "DeployedPotential",
    "derivative_outputs",
    "forces_and_virial",
]


def forces_and_virial(
    edge_gradient: Tensor, edge_vectors: Tensor, edge_index: Tensor, num_nodes: int
) -> Tuple[Tensor, Tensor]:
    """Forces on the nodes and the per-edge virial from the gradient of the energy.

    With ``v_e = r_j - r_i`` the force on ``i`` gains ``+dE/dv_e`` and the force on ``j``
    gains ``-dE/dv_e``; the virial is :math:`W = -\\sum_e v_e \\otimes dE/dv_e`.

    Shapes:
        ``edge_gradient`` and ``edge_vectors`` [n_edges, 3], ``edge_index`` [2, n_edges];
        returns forces [num_nodes, 3] and per-edge virials [n_edges, 3, 3], in the dtype of
        ``edge_gradient``.
    """
    forces = torch.zeros((num_nodes, 3), dtype=edge_gradient.dtype, device=edge_gradient.device)
    forces.index_add_(0, edge_index[0], edge_gradient)
    forces.index_add_(0, edge_index[1], -edge_gradient)
    edge_virial = -edge_vectors.to(edge_gradient.dtype).unsqueeze(-1) * edge_gradient.unsqueeze(-2)
    return forces, edge_virial


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
    """Energy, forces and virial of a :class:`~scalelink.potentials.gnn.GNNPotential` behind the dictionary contract,
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


class DeployedCommittee(nn.Module):
    """Several :class:`~scalelink.potentials.gnn.GNNPotential` members evaluated in one forward call.

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
