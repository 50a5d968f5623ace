"""Multi-source weighted negative log-likelihood loss.

Frames from several data sources (say a few high-fidelity calculations and many cheaper,
biased or noisier ones) carry a source tag (``atoms.info["source"]``). Each source ``s`` has
a Gaussian noise model with standard deviations :math:`\\sigma_{E,s}` (energy per atom,
eV/atom) and :math:`\\sigma_{F,s}` (force components, eV/Å), given or learned as
log-parameters. With per-frame weights :math:`w_f` (the ``weight`` label times the
importance weight), the loss is

.. math::

    L = \\frac{1}{\\sum_f w_f} \\sum_f w_f \\Big[\\frac{r_{E,f}^2}{2\\sigma_{E,s_f}^2} + \\log\\sigma_{E,s_f}
      + \\sum_{i \\in f,\\, c} \\Big(\\frac{r_{F,ic}^2}{2\\sigma_{F,s_f}^2} + \\log\\sigma_{F,s_f}\\Big)\\Big]
      + \\lambda_S\\, L_S,

where :math:`r_{E,f}` is the energy-per-atom residual of frame ``f``, :math:`r_{F,ic}` a force
component residual and :math:`L_S` the plain weighted stress MSE (weight
``loss.stress``) for frames with a stress label. This is the negative log-likelihood per
frame of independent Gaussian errors (up to a constant), each frame contributing one energy
and 3N force residuals. For fixed noise it is a weighted sum of squared errors with
per-source weights :math:`1/(2\\sigma^2)`; a learned noise settles at the root-mean-square
residual of its source, so a source the model cannot fit (noisy or biased labels) weighs
itself down.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from ase import Atoms
from torch import Tensor, nn
from torch_geometric.data import Data

from scalelink.bridge.errors import DataError

from .predict import predict

__all__ = ["SourceNoise", "attach_sources", "prepare_sources", "source_nll"]


class SourceNoise(nn.Module):
    """Per-source noise levels as log-parameters.

    Args:
        names: source names, in the order of the ``source`` index attached to the graphs.
        noise_energy: initial (or fixed) energy-per-atom noise per source [S] (eV/atom).
        noise_forces: initial (or fixed) force-component noise per source [S] (eV/Å).
        learn: per source, whether its noise levels are trained [S].
        rate: the trained parameter is ``log σ / rate``. Adam moves every parameter by
            about its learning rate per step, so the log-noise moves ``rate`` times faster
            than the network weights and can travel the few e-folds from its initial guess
            to the data's noise level within a short run.

    Shapes:
        ``log_sigma`` [S, 2] (the trained parameter; columns: energy, forces);
        :meth:`sigma` returns σ [S, 2].
    """

    def __init__(
        self,
        names: Sequence[str],
        noise_energy: Sequence[float],
        noise_forces: Sequence[float],
        learn: Sequence[bool],
        rate: float = 20.0,
    ) -> None:
        super().__init__()
        values = np.log(np.stack([np.asarray(noise_energy, float), np.asarray(noise_forces, float)], axis=1))
        self.names = list(names)
        self.rate = float(rate)
        self.log_sigma = nn.Parameter(torch.as_tensor(values / self.rate, dtype=torch.float64))
        self.register_buffer("learn", torch.as_tensor(list(learn), dtype=torch.bool).view(-1, 1))

    @classmethod
    def from_config(cls, sources: Mapping[str, Any]) -> "SourceNoise":
        """Build from ``TrainConfig.sources`` (name -> object with ``noise_energy``,
        ``noise_forces``, ``learn_noise``)."""
        names = sorted(sources)
        return cls(
            names,
            [sources[n].noise_energy for n in names],
            [sources[n].noise_forces for n in names],
            [sources[n].learn_noise for n in names],
        )

    def sigma(self) -> Tensor:
        """Noise levels [S, 2] (eV/atom, eV/Å); fixed sources pass no gradient."""
        log_sigma = torch.where(self.learn, self.log_sigma, self.log_sigma.detach())
        return (self.rate * log_sigma).exp()

    def as_dict(self) -> dict[str, dict[str, float]]:
        """Current noise levels, in meV/atom and meV/Å, per source."""
        sigma = self.sigma().detach().numpy()
        return {
            name: {"noise_energy_meV_per_atom": 1e3 * float(row[0]), "noise_forces_meV_per_A": 1e3 * float(row[1])}
            for name, row in zip(self.names, sigma)
        }


def attach_sources(
    graphs: Sequence[Data], frames: Sequence[Atoms], names: Sequence[str], importance: np.ndarray | None = None
) -> None:
    """Give every graph its ``source`` index [1] (int64) and fold ``importance`` [F] into its ``weight``.

    Raises:
        DataError: a frame has no ``source`` tag, or one not in ``names``.
    """
    lookup = {name: k for k, name in enumerate(names)}
    for k, (graph, atoms) in enumerate(zip(graphs, frames)):
        tag = atoms.info.get("source")
        if tag is None or str(tag) not in lookup:
            raise DataError(
                f"frame {k} has source {tag!r}, but the configuration's `sources:` are {list(names)}; "
                "tag every frame with info['source'] (extxyz: source=NAME) naming one of them"
            )
        graph.source = torch.tensor([lookup[str(tag)]], dtype=torch.int64)
        if importance is not None:
            graph.weight = graph.weight * float(importance[k])


def source_nll(model: nn.Module, batch: Data, noise: SourceNoise, stress_weight: float, *, create_graph: bool) -> Tensor:
    """The multi-source weighted negative log-likelihood of a batch (see the module docstring).

    Args:
        model: the potential, in the dtype of ``batch.edge_vectors``.
        batch: graphs with ``source`` attached by :func:`attach_sources`.
        noise: the per-source noise levels.
        stress_weight: weight of the plain stress MSE term (eV²/Å⁶ units of the loss).
        create_graph: keep the graph of the derivatives (needed to train on forces).

    Returns:
        The scalar loss (dimensionless but for the stress term).
    """
    pred = predict(model, batch, create_graph=create_graph)
    dtype = pred.energy.dtype
    sigma = noise.sigma().to(dtype)
    sigma_e = sigma[batch.source, 0]  # [B]
    sigma_f = sigma[batch.source, 1]  # [B]
    natoms = batch.natoms.to(dtype)
    w = batch.weight.to(dtype)
    r_energy = (pred.energy - batch.energy) / natoms
    energy_term = (w * (r_energy**2 / (2.0 * sigma_e**2) + torch.log(sigma_e))).sum() / w.sum().clamp_min(1e-12)
    squared = ((pred.forces - batch.forces) ** 2).sum(-1)  # [N]
    frame_sq = torch.zeros_like(w).index_add_(0, batch.batch, squared)  # [B]
    per_frame = frame_sq / (2.0 * sigma_f**2) + 3.0 * natoms * torch.log(sigma_f)
    force_term = (w * per_frame).sum() / w.sum().clamp_min(1e-12)
    mask = batch.has_stress.to(dtype) * w
    stress_term = (mask.view(-1, 1, 1) * (pred.stress - batch.stress) ** 2).sum() / (9.0 * mask.sum().clamp_min(1e-12))
    return energy_term + force_term + stress_weight * stress_term


def prepare_sources(config: Any, frames: Sequence[Atoms], graphs: Sequence[Data]) -> SourceNoise | None:
    """Apply ``config.importance_weights`` to the graphs' weights and, when ``config.sources``
    is set, attach source indices and return the noise model (``None``: plain MSE loss).

    Raises:
        DataError: the target sample is missing or unreadable, or a frame's source is unknown.
    """
    importance = None
    if config.importance_weights == "info":
        importance = np.array([float(a.info.get("importance", 1.0)) for a in frames])
        if not np.all(importance >= 0.0):
            raise DataError(f"info['importance'] must be non-negative, got a minimum of {importance.min()}")
    elif config.importance_weights is not None:
        from ase.io import read

        from .importance import density_ratio_weights

        path = config.importance_weights
        if not os.path.isfile(path):
            raise DataError(
                f"importance_weights: {path!r} is neither 'info' nor an existing file of target structures; "
                "give an ASE-readable file with an unlabelled sample of the target distribution"
            )
        target = read(path, index=":")
        importance = density_ratio_weights(frames, target if isinstance(target, list) else [target])
    if not config.sources:
        if importance is not None:
            for graph, w in zip(graphs, importance):
                graph.weight = graph.weight * float(w)
        return None
    attach_sources(graphs, frames, sorted(config.sources), importance)
    return SourceNoise.from_config(config.sources)
