"""Energies, forces and stresses of a batch of structures from a potential network."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch

from scalelink.potentials.deployed import forces_and_virial

__all__ = ["Prediction", "predict"]


@dataclass
class Prediction:
    """Model outputs for a batch of B structures with N atoms in all.

    Shapes: ``energy`` [B] (eV), ``forces`` [N, 3] (eV/Å), ``stress`` [B, 3, 3] (eV/Å³,
    ASE sign: (1/V) dE/dε).
    """

    energy: Tensor
    forces: Tensor
    stress: Tensor


def predict(model: nn.Module, batch: Batch, *, create_graph: bool) -> Prediction:
    """Run ``model`` on a PyG batch.

    Args:
        model: the potential, in the dtype of ``batch.edge_vectors``.
        batch: graphs made by :func:`scalelink.training.data.atoms_to_data`.
        create_graph: keep the graph of the derivatives (needed to train on forces).
    """
    vectors = batch.edge_vectors.detach().requires_grad_(True)
    atomic = model(vectors, batch.edge_index, batch.species)
    num_graphs = int(batch.num_graphs)
    energy = torch.zeros(num_graphs, dtype=atomic.dtype, device=atomic.device).index_add_(0, batch.batch, atomic)
    (gradient,) = torch.autograd.grad(energy.sum(), vectors, create_graph=create_graph)
    forces, edge_virial = forces_and_virial(gradient, vectors, batch.edge_index, atomic.shape[0])
    edge_graph = batch.batch.index_select(0, batch.edge_index[0])
    virial = torch.zeros((num_graphs, 3, 3), dtype=atomic.dtype, device=atomic.device).index_add_(
        0, edge_graph, edge_virial
    )
    stress = -virial / batch.volume.view(-1, 1, 1)
    return Prediction(energy=energy, forces=forces, stress=stress)
