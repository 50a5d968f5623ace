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
        forces, edge_virial = forces_and_virial(gradient.to(torch.float64), edge_vectors, edge_index, num_nodes)
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
        return {
            keys.ENERGY: energy.detach(),
            keys.ATOMIC_ENERGY: atomic.detach(),
            keys.FORCES: forces,
            keys.VIRIAL: virial,
            keys.ATOMIC_VIRIAL: atomic_virial,
        }


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
