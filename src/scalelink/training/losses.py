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

where :math:`r_{E,f} = (E^{pred}_f + n_f \\cdot b_{s_f} - E_f) / N_f` is the energy-per-atom
residual of frame ``f`` (:math:`n_f` its species counts, :math:`b_s` the per-species energy
offsets of source ``s``, see below), :math:`r_{F,ic}` a force component residual and
:math:`L_S` the plain weighted stress MSE (weight ``loss.stress``) for frames with a stress
label. This is the negative log-likelihood per frame of independent Gaussian errors (up to a
constant), each frame contributing one energy and 3N force residuals. For fixed noise it is
a weighted sum of squared errors with per-source weights :math:`1/(2\\sigma^2)`; a learned
noise settles at the root-mean-square residual of its source, so a source the model cannot
fit (noisy or biased labels) weighs itself down.

**Energy zero.** A Gaussian noise model assumes errors of mean zero, but energies from
another method (code, pseudopotentials, functional, a cheaper model) typically differ by a
per-species reference energy, and any systematic difference near the target enters the
residuals as a mean. A learned σ then absorbs that offset instead of the model correcting
it, and the energy zero goes to whichever source carries the most weight, whatever its
bias. Two measures keep the energy zero where it belongs:

* a source with ``energy_offset`` gets its own per-species offsets :math:`b_s` (trained with
  the network; zero for the others). Its energies then only inform energy *differences*;
  the sources without offsets (at least one) fix the energy zero of the deployed model;
* the per-species reference energies of the network, fitted in closed form before and
  after training (:func:`fit_energy_reference`), are weighted as this loss weighs the
  energies, and after training the learned energy noise levels and offsets are solved for
  jointly with them, so that σ_E no longer carries the error of the energy zero.
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

from scalelink.bridge.errors import ConfigError, DataError

from .predict import predict

__all__ = ["SourceNoise", "StressOffset", "attach_sources", "fit_energy_reference", "prepare_sources", "source_nll"]


class SourceNoise(nn.Module):
    """Per-source noise levels as log-parameters, and per-source energy offsets.

    Args:
        names: source names, in the order of the ``source`` index attached to the graphs.
        noise_energy: initial (or fixed) energy-per-atom noise per source [S] (eV/atom).
        noise_forces: initial (or fixed) force-component noise per source [S] (eV/Å).
        learn: per source, whether its noise levels are trained [S].
        rate: the trained parameter is ``log σ / rate``. Adam moves every parameter by
            about its learning rate per step, so the log-noise moves ``rate`` times faster
            than the network weights and can travel the few e-folds from its initial guess
            to the data's noise level within a short run.
        energy_offset: per source, whether its energies carry their own per-species offsets
            [S] (default: none does); at least one source must have none.
        num_species: species of the model (the offsets' second dimension).

    Shapes:
        ``log_sigma`` [S, 2] (the trained parameter; columns: energy, forces);
        :meth:`sigma` returns σ [S, 2]; ``energy_offset`` [S, num_species] (eV per atom of
        each species; trained, used only for the sources that have offsets).

    Raises:
        ConfigError: every source has an energy offset (nothing would fix the energy zero).
    """

    def __init__(
        self,
        names: Sequence[str],
        noise_energy: Sequence[float],
        noise_forces: Sequence[float],
        learn: Sequence[bool],
        rate: float = 20.0,
        *,
        energy_offset: Sequence[bool] | None = None,
        num_species: int = 0,
    ) -> None:
        super().__init__()
        values = np.log(np.stack([np.asarray(noise_energy, float), np.asarray(noise_forces, float)], axis=1))
        self.names = list(names)
        self.rate = float(rate)
        self.log_sigma = nn.Parameter(torch.as_tensor(values / self.rate, dtype=torch.float64))
        self.register_buffer("learn", torch.as_tensor(list(learn), dtype=torch.bool).view(-1, 1))
        offset = [False] * len(self.names) if energy_offset is None else [bool(v) for v in energy_offset]
        if offset and all(offset):
            raise ConfigError(
                f"every source ({self.names}) has energy_offset: true, so nothing fixes the energy zero; "
                "set energy_offset: false for the reference source(s) whose energies the model should reproduce"
            )
        self.register_buffer("has_offset", torch.as_tensor(offset, dtype=torch.bool).view(-1, 1))
        self.energy_offset = nn.Parameter(torch.zeros((len(self.names), num_species), dtype=torch.float64))

    @classmethod
    def from_config(cls, sources: Mapping[str, Any], num_species: int = 0) -> "SourceNoise":
        """Build from ``TrainConfig.sources`` (name -> object with ``noise_energy``,
        ``noise_forces``, ``learn_noise`` and optionally ``energy_offset``)."""
        names = sorted(sources)
        return cls(
            names,
            [sources[n].noise_energy for n in names],
            [sources[n].noise_forces for n in names],
            [sources[n].learn_noise for n in names],
            energy_offset=[getattr(sources[n], "energy_offset", False) for n in names],
            num_species=num_species,
        )

    def sigma(self) -> Tensor:
        """Noise levels [S, 2] (eV/atom, eV/Å); fixed sources pass no gradient."""
        log_sigma = torch.where(self.learn, self.log_sigma, self.log_sigma.detach())
        return (self.rate * log_sigma).exp()

    def offsets(self) -> Tensor:
        """Per-species energy offsets [S, num_species] (eV); zero for sources without."""
        return torch.where(self.has_offset, self.energy_offset, torch.zeros_like(self.energy_offset))

    @torch.no_grad()
    def set_energy_noise(self, sigma_energy: np.ndarray) -> None:
        """Set the energy-per-atom noise [S] (eV/atom) of the sources whose noise is learned."""
        value = torch.as_tensor(np.log(sigma_energy) / self.rate, dtype=self.log_sigma.dtype)
        self.log_sigma[:, 0] = torch.where(self.learn[:, 0], value, self.log_sigma[:, 0])

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """Current noise levels, in meV/atom and meV/Å, and energy offsets (meV per atom of
        each species, model order) of the sources that have them."""
        sigma = self.sigma().detach().numpy()
        offsets = self.offsets().detach().numpy()
        out: dict[str, dict[str, Any]] = {}
        for k, (name, row) in enumerate(zip(self.names, sigma)):
            out[name] = {"noise_energy_meV_per_atom": 1e3 * float(row[0]), "noise_forces_meV_per_A": 1e3 * float(row[1])}
            if bool(self.has_offset[k]):
                out[name]["energy_offset_meV_per_atom"] = [1e3 * float(v) for v in offsets[k]]
        return out


class StressOffset(nn.Module):
    """An isotropic offset of the stress labels against the energies, trained with the network.

    The stress loss compares ``pred.stress + p I`` with the labels, so a constant pressure
    error of the data (Pulay stress) is absorbed by ``p`` instead of the network. The trained
    parameter is ``p / rate``: Adam moves it by about its learning rate per step, and
    ``rate`` turns that into a step of ``rate × lr`` eV/Å³ (0.03 GPa at 2e-3), fine enough
    to settle and fast enough to travel a few GPa within the first epoch.

    Shapes: :meth:`value` is a scalar tensor (eV/Å³, ASE sign: tensile positive).
    """

    def __init__(self, rate: float = 0.1) -> None:
        super().__init__()
        self.rate = float(rate)
        self.scaled = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def value(self) -> Tensor:
        """The offset ``p`` (eV/Å³) added to the predicted stress before it meets the labels."""
        return self.rate * self.scaled

    def shift(self, stress: Tensor) -> Tensor:
        """``stress`` [B, 3, 3] plus the offset on its diagonal."""
        eye = torch.eye(3, dtype=stress.dtype, device=stress.device)
        return stress + self.value().to(stress.dtype) * eye


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


def source_nll(
    model: nn.Module,
    batch: Data,
    noise: SourceNoise,
    stress_weight: float,
    *,
    create_graph: bool,
    stress_offset: StressOffset | None = None,
) -> Tensor:
    """The multi-source weighted negative log-likelihood of a batch (see the module docstring).

    Args:
        model: the potential, in the dtype of ``batch.edge_vectors``.
        batch: graphs with ``source`` attached by :func:`attach_sources`.
        noise: the per-source noise levels.
        stress_weight: weight of the plain stress MSE term (eV²/Å⁶ units of the loss).
        create_graph: keep the graph of the derivatives (needed to train on forces).
        stress_offset: a trained isotropic offset of the stress labels (``None``: none).

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
    energy = pred.energy
    if bool(noise.has_offset.any()):
        counts = torch.zeros((int(batch.num_graphs), noise.energy_offset.shape[1]), dtype=dtype)
        counts.index_put_((batch.batch, batch.species), torch.ones_like(batch.species, dtype=dtype), accumulate=True)
        energy = energy + (counts * noise.offsets().to(dtype).index_select(0, batch.source.view(-1))).sum(-1)
    r_energy = (energy - batch.energy) / natoms
    energy_term = (w * (r_energy**2 / (2.0 * sigma_e**2) + torch.log(sigma_e))).sum() / w.sum().clamp_min(1e-12)
    squared = ((pred.forces - batch.forces) ** 2).sum(-1)  # [N]
    frame_sq = torch.zeros_like(w).index_add_(0, batch.batch, squared)  # [B]
    per_frame = frame_sq / (2.0 * sigma_f**2) + 3.0 * natoms * torch.log(sigma_f)
    force_term = (w * per_frame).sum() / w.sum().clamp_min(1e-12)
    mask = batch.has_stress.to(dtype) * w
    stress = pred.stress if stress_offset is None else stress_offset.shift(pred.stress)
    stress_term = (mask.view(-1, 1, 1) * (stress - batch.stress) ** 2).sum() / (9.0 * mask.sum().clamp_min(1e-12))
    return energy_term + force_term + stress_weight * stress_term


def prepare_sources(
    config: Any, frames: Sequence[Atoms], graphs: Sequence[Data], num_species: int | None = None
) -> SourceNoise | None:
    """Apply ``config.importance_weights`` to the graphs' weights and, when ``config.sources``
    is set, attach source indices and return the noise model (``None``: plain MSE loss).
    ``num_species`` (default: the largest species index in ``graphs`` plus one) sizes the
    energy offsets.

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
        target = read(path, index=":", parallel=False)
        importance = density_ratio_weights(frames, target if isinstance(target, list) else [target])
    if not config.sources:
        if importance is not None:
            for graph, w in zip(graphs, importance):
                graph.weight = graph.weight * float(w)
        return None
    attach_sources(graphs, frames, sorted(config.sources), importance)
    if num_species is None:
        num_species = 1 + max((int(g.species.max()) for g in graphs if g.species.numel()), default=0)
    return SourceNoise.from_config(config.sources, num_species)


def fit_energy_reference(
    composition: np.ndarray,
    residual: np.ndarray,
    weight: np.ndarray,
    source: np.ndarray | None = None,
    noise: SourceNoise | None = None,
    *,
    update_noise: bool = False,
    floor: float = 1e-4,
    max_iterations: int = 100,
) -> np.ndarray:
    """Per-species energies c that minimise the energy term of the loss over a data set.

    The term is :math:`\\sum_f w_f (r_f - x_f \\cdot (c + b_{s_f}))^2 / (2\\sigma_{E,s_f}^2)
    + w_f \\log\\sigma_{E,s_f}` with :math:`x_f` the species fractions of frame ``f``,
    :math:`r_f` its energy-per-atom residual (reference minus the network's prediction) and
    :math:`b_s` the energy offsets of source ``s`` (zero for sources without); without
    ``noise`` all σ are 1 and there are no offsets (the weighted MSE loss). Constants do not
    change forces, so they can be solved for exactly: c and the offsets by weighted least
    squares (the offsets are written into ``noise``). With ``update_noise`` the learned energy
    noise levels are solved for jointly with them (alternating the least squares with the
    per-source weighted RMS residual, the exact minimiser of each given the other) and
    written into ``noise``: during training a learned σ_E also absorbs the error of the
    energy zero, so it can sit far above the source's noise once the zero is right.

    Args:
        composition: species fractions per frame [F, num_species].
        residual: energy-per-atom residuals [F] (eV/atom).
        weight: frame weights [F] (label weight times importance).
        source: source index per frame [F] (with ``noise``).
        noise: the per-source noise model; ``None`` for the MSE loss.
        update_noise: also fit the learned energy noise levels and store them in ``noise``.
        floor: smallest learned energy noise (eV/atom), so that a source fitted exactly
            (no more frames than species) cannot take an infinite weight.
        max_iterations: alternations at most.

    Returns:
        c [num_species] (eV per atom of each species), to be added to the per-species
        reference energies.
    """
    num_species = composition.shape[1]
    if noise is None or source is None:
        root = np.sqrt(weight)
        return np.linalg.lstsq(composition * root[:, None], residual * root, rcond=None)[0]
    with_offset = np.flatnonzero(noise.has_offset.numpy()[:, 0])
    # columns: c, then one block of per-species offsets per source that has them
    design = np.concatenate([composition] + [composition * (source == s)[:, None] for s in with_offset], axis=1)
    sigma = noise.sigma().detach().numpy()[:, 0].astype(np.float64)
    learned = noise.learn.numpy()[:, 0]
    sums = np.bincount(source, weights=weight, minlength=sigma.shape[0])
    for _ in range(max_iterations if update_noise else 1):
        root = np.sqrt(weight) / sigma[source]
        solution = np.linalg.lstsq(design * root[:, None], residual * root, rcond=None)[0]
        if not update_noise:
            break
        squares = np.bincount(source, weights=weight * (residual - design @ solution) ** 2, minlength=sigma.shape[0])
        fitted = np.where(learned & (sums > 0), np.maximum(np.sqrt(squares / np.maximum(sums, 1e-300)), floor), sigma)
        converged = np.allclose(fitted, sigma, rtol=1e-9, atol=0.0)
        sigma = fitted
        if converged:
            break
    if update_noise:
        noise.set_energy_noise(sigma)
        root = np.sqrt(weight) / sigma[source]
        solution = np.linalg.lstsq(design * root[:, None], residual * root, rcond=None)[0]
    if with_offset.size:
        with torch.no_grad():
            offsets = torch.as_tensor(solution[num_species:].reshape(-1, num_species), dtype=noise.energy_offset.dtype)
            noise.energy_offset[torch.as_tensor(with_offset)] = offsets
    return solution[:num_species]
