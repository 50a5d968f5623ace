"""An invariant message-passing GNN potential.

The energy is a sum of atomic energies. Each atom starts from a learned embedding of its
species; each layer updates it with messages from the neighbours inside the cutoff,

.. math::

    h_i^{(t+1)} = h_i^{(t)} + \\phi^{(t)}\\Big(\\frac{1}{\\bar n}\\sum_{j \\in \\mathcal N(i)}
        W^{(t)}(r_{ij})\\, u(r_{ij}) \\odot A^{(t)} h_j^{(t)}\\Big),

where :math:`W` is an MLP of a Bessel radial basis and :math:`u` a polynomial envelope that
takes the filter smoothly to zero at the cutoff. A readout MLP turns the final features
into an atomic energy, scaled and shifted per species. The model sees positions only
through the edge vectors, so forces and the virial follow from one gradient with respect to
the edge vectors (:func:`forces_and_virial`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Tuple

import torch
from torch import Tensor, nn

from scalelink.bridge.errors import ConfigError

from .architecture import Architecture, GraphStatistics
from .deployed import DeployedPotential, forces_and_virial

__all__ = ["ARCHITECTURE", "GNNPotential", "Interaction", "ModelConfig", "RadialBasis", "forces_and_virial"]


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the GNN potential (YAML section ``model:``)."""

    num_layers: int = 2
    features: int = 32
    num_basis: int = 8

    def __post_init__(self) -> None:
        if self.num_layers < 1:
            raise ConfigError(f"model.num_layers must be at least 1, got {self.num_layers}")
        if self.features < 2:
            raise ConfigError(f"model.features must be at least 2, got {self.features}")


class RadialBasis(nn.Module):
    """Bessel radial basis and a smooth polynomial envelope.

    The envelope :math:`u(x) = 1 - \\tfrac{(p+1)(p+2)}{2} x^p + p(p+2) x^{p+1}
    - \\tfrac{p(p+1)}{2} x^{p+2}` (with :math:`x = r / r_c`) and its first ``p``
    derivatives vanish at the cutoff, so forces are smooth and MD conserves energy.

    Shapes:
        input ``r`` [n_edges] (Å); outputs ``basis`` [n_edges, num_basis] and
        ``envelope`` [n_edges].
    """

    def __init__(self, cutoff: float, num_basis: int = 8, p: int = 6) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.p = int(p)
        self.register_buffer("frequencies", torch.arange(1, num_basis + 1, dtype=torch.float64) * math.pi / cutoff)
        self.prefactor = math.sqrt(2.0 / cutoff)

    def forward(self, r: Tensor) -> Tuple[Tensor, Tensor]:
        x = r / self.cutoff
        p = float(self.p)
        envelope = (
            1.0
            - 0.5 * (p + 1.0) * (p + 2.0) * x.pow(self.p)
            + p * (p + 2.0) * x.pow(self.p + 1)
            - 0.5 * p * (p + 1.0) * x.pow(self.p + 2)
        ) * (x < 1.0).to(r.dtype)
        basis = self.prefactor * torch.sin(self.frequencies.to(r.dtype) * r.unsqueeze(-1)) / r.unsqueeze(-1)
        return basis, envelope


class Interaction(nn.Module):
    """One message-passing layer with a continuous radial filter and a residual update.

    Shapes:
        ``h`` [n_nodes, features], ``basis`` [n_edges, num_basis], ``envelope`` [n_edges],
        ``edge_index`` [2, n_edges] with every centre below ``n_out``; returns the updated
        features of nodes ``0..n_out-1``, [n_out, features].
    """

    def __init__(self, features: int, num_basis: int, avg_num_neighbors: float) -> None:
        super().__init__()
        self.filter = nn.Sequential(nn.Linear(num_basis, features), nn.SiLU(), nn.Linear(features, features))
        self.project = nn.Linear(features, features, bias=False)
        self.update = nn.Sequential(nn.Linear(features, features), nn.SiLU(), nn.Linear(features, features))
        self.inv_neighbors = 1.0 / float(avg_num_neighbors)

    def forward(self, h: Tensor, basis: Tensor, envelope: Tensor, edge_index: Tensor, n_out: int) -> Tensor:
        weights = self.filter(basis) * envelope.unsqueeze(-1)
        messages = weights * self.project(h).index_select(0, edge_index[1])
        aggregated = torch.zeros((n_out, h.shape[1]), dtype=h.dtype, device=h.device).index_add_(
            0, edge_index[0], messages
        )
        return h[:n_out] + self.update(aggregated * self.inv_neighbors)


class GNNPotential(nn.Module):
    """Atomic energies of an invariant message-passing network.

    Args:
        num_species: size of the species embedding.
        cutoff: radial cutoff in Å.
        num_layers: message-passing layers (at least 1).
        features: width of the node features.
        num_basis: radial basis functions.
        avg_num_neighbors: normalises the aggregated messages.
        energy_shift: per-species atomic reference energy [num_species] (eV).
        energy_scale: scale of the network's output (eV).

    Shapes:
        ``edge_vectors`` [n_edges, 3], ``edge_index`` [2, n_edges], ``species`` [n_nodes],
        ``n_local`` (nodes ``0..n_local-1`` are the atoms whose energies are wanted; -1: all);
        returns atomic energies [n_nodes] in the dtype of the weights for the first
        ``n_local`` nodes, zero for the others.
    """

    def __init__(
        self,
        num_species: int,
        cutoff: float,
        num_layers: int = 2,
        features: int = 32,
        num_basis: int = 8,
        avg_num_neighbors: float = 40.0,
        energy_shift: list[float] | None = None,
        energy_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        self.cutoff = float(cutoff)
        self.num_layers = int(num_layers)
        self.num_species = int(num_species)
        self.embedding = nn.Embedding(num_species, features)
        self.radial = RadialBasis(cutoff, num_basis)
        self.layers = nn.ModuleList(
            [Interaction(features, num_basis, avg_num_neighbors) for _ in range(num_layers)]
        )
        self.readout = nn.Sequential(nn.Linear(features, features // 2), nn.SiLU(), nn.Linear(features // 2, 1))
        shift = torch.zeros(num_species) if energy_shift is None else torch.tensor(energy_shift)
        self.register_buffer("energy_shift", shift.to(torch.get_default_dtype()))
        self.register_buffer("energy_scale", torch.tensor(float(energy_scale)))

    def forward(self, edge_vectors: Tensor, edge_index: Tensor, species: Tensor, n_local: int = -1) -> Tensor:
        num_nodes = species.shape[0]
        r = torch.linalg.vector_norm(edge_vectors, dim=-1)
        basis, envelope = self.radial(r)
        h = self.embedding(species)
        last = len(self.layers) - 1
        for k, layer in enumerate(self.layers):
            if k == last and 0 <= n_local < num_nodes:
                # only local atoms' energies count: the last layer needs their edges only
                keep = edge_index[0] < n_local
                h = layer(h, basis[keep], envelope[keep], edge_index[:, keep], n_local)
            else:
                h = layer(h, basis, envelope, edge_index, num_nodes)
        energy = self.atomic_energy(h, species[: h.shape[0]])
        if energy.shape[0] < num_nodes:
            energy = torch.cat([energy, energy.new_zeros(num_nodes - energy.shape[0])])
        return energy

    def atomic_energy(self, h: Tensor, species: Tensor) -> Tensor:
        """Readout: atomic energies [n] from final features [n, features] and species [n]."""
        return self.readout(h).squeeze(-1) * self.energy_scale + self.energy_shift.index_select(0, species)

    def layer(self, k: int, h: Tensor, edge_vectors: Tensor, edge_index: Tensor, n_out: int) -> Tensor:
        """Apply message-passing layer ``k`` alone (for callers that exchange features between
        layers): features of nodes ``0..n_out-1`` after the layer, [n_out, features]."""
        basis, envelope = self.radial(torch.linalg.vector_norm(edge_vectors, dim=-1))
        out = h[:n_out]
        for index, layer in enumerate(self.layers):
            if index == k:
                out = layer(h, basis, envelope, edge_index, n_out)
        return out


def model_kwargs(config: ModelConfig, stats: GraphStatistics) -> dict[str, Any]:
    """Keyword arguments of :class:`GNNPotential` for ``config`` and the training set's statistics."""
    return {
        "num_species": len(stats.species),
        "cutoff": stats.cutoff,
        "energy_shift": list(stats.energy_shift),
        "energy_scale": stats.force_scale,
        "num_layers": config.num_layers,
        "features": config.features,
        "num_basis": config.num_basis,
        "avg_num_neighbors": stats.mean_neighbours,
    }


ARCHITECTURE = Architecture(
    name="gnn",
    section="model",
    config=ModelConfig,
    network=GNNPotential,
    model_kwargs=model_kwargs,
    deployed=DeployedPotential,
    per_layer=True,
)
