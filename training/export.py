"""Deployment: a thin TorchScript wrapper around a trained potential, written as one file.

The wrapper implements the key contract of :mod:`scalelink.bridge.keys`: it takes the graph
in float64, runs the network in the precision of its weights, and returns energy, atomic
energies, forces on every node and the virial, all in float64.
"""

from __future__ import annotations

import copy
import os
import warnings
from typing import Dict

import torch
from torch import Tensor, nn

from scalelink.bridge import keys
from scalelink.bridge.model_file import ModelMetadata, save_model

from .model import GNNPotential, forces_and_virial

__all__ = ["DeployedPotential", "export_potential", "package_versions"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class DeployedPotential(nn.Module):
    """Energy, forces and virial of a :class:`GNNPotential` behind the dictionary contract.

    Shapes (inputs): ``edge_index`` [2, E] int64, ``edge_vectors`` [E, 3] float64,
    ``species`` [N] int64, ``n_local`` [] int64. Outputs: ``energy`` [], ``atomic_energy``
    [N], ``forces`` [N, 3], ``virial`` [6] (xx yy zz xy xz yz), ``atomic_virial`` [N, 9]
    (xx yy zz xy xz yz yx zx zy), all float64.
    """

    def __init__(self, potential: GNNPotential, dtype: torch.dtype) -> None:
        super().__init__()
        self.potential = potential.to(dtype)
        self.dtype = dtype

    def forward(self, data: Dict[str, Tensor]) -> Dict[str, Tensor]:
        edge_index = data[keys.EDGE_INDEX]
        edge_vectors = data[keys.EDGE_VECTORS]
        species = data[keys.SPECIES]
        n_local = int(data[keys.N_LOCAL].item())
        num_nodes = species.shape[0]
        # callers must leave autograd enabled (no torch.no_grad / NoGradGuard around this)
        vectors = edge_vectors.detach().to(self.dtype).requires_grad_(True)
        atomic = self.potential(vectors, edge_index, species, n_local).to(torch.float64)
        energy = atomic[:n_local].sum()
        grads = torch.autograd.grad([energy], [vectors], allow_unused=True)
        gradient = grads[0]
        if gradient is None:
            gradient = torch.zeros_like(vectors)
        out = self.derivatives(gradient.to(torch.float64), edge_vectors, edge_index, num_nodes)
        out[keys.ENERGY] = energy.detach()
        out[keys.ATOMIC_ENERGY] = atomic.detach()
        return out

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
    potential: GNNPotential,
    species: list[str],
    path: str | os.PathLike[str],
    *,
    dtype: str = "float64",
) -> ModelMetadata:
    """Script ``potential`` and write it with its metadata to ``path``.

    Args:
        potential: a trained network (left untouched; a copy is converted).
        species: chemical symbols in the order of the network's species index.
        path: the model file to write.
        dtype: ``"float32"`` or ``"float64"``, the precision of the deployed weights.

    Returns:
        The metadata written into the file.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    wrapper = DeployedPotential(copy.deepcopy(potential).cpu().eval(), _DTYPES[dtype])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(wrapper)
    metadata = ModelMetadata(
        species=list(species),
        cutoff=potential.cutoff,
        num_layers=potential.num_layers,
        dtype=dtype,
        versions=package_versions(),
    )
    save_model(scripted, path, metadata)
    return metadata
