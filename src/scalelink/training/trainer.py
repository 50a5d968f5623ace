"""The training loop: weighted energy/force/stress loss, Adam with a learning rate reduced on
plateaus (or decaying exponentially), an exponential moving average of the weights (the network validated and
deployed), early stopping on the validation loss, checkpoints, metrics and plots.

A run folder holds ``config.yaml``, ``split.json``, ``checkpoint_last.pt``,
``checkpoint_best.pt``, ``history.json``, ``metrics.json``, ``parity.png`` and
``learning_curves.png``. ``checkpoint_last.pt`` carries everything a killed run needs to
continue exactly where it stopped (``train(..., resume=True)``). A folder that holds a run is
continued or replaced only when asked (:mod:`scalelink.training.run_folder`).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader
from tqdm import tqdm

from scalelink.bridge.units import EV_PER_CUBIC_ANGSTROM_IN_GPA
from scalelink.potentials import registry
from scalelink.potentials.architecture import GraphStatistics

from .config import LossWeights, TrainConfig
from .data import atoms_to_data, infer_species, make_loader, read_structures, reference_energies, split_indices
from .losses import SourceNoise, StressOffset, fit_energy_reference, prepare_sources, source_nll
from .metrics import Collected, ErrorMetrics, error_metrics, learning_curves, parity_plot, write_json
from .predict import predict
from .run_folder import check_finite_loss, check_run_folder, load_state, save_checkpoint, start_run_folder

__all__ = ["TrainResult", "build_model", "collect", "load_checkpoint", "train"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced."""

    run_dir: str
    species: list[str]
    test: ErrorMetrics | None
    validation: ErrorMetrics
    epochs_run: int
    seconds: float


def build_model(model_kwargs: dict[str, Any], architecture: str = registry.UNNAMED) -> nn.Module:
    """Rebuild a network from the keyword arguments and architecture stored in a checkpoint."""
    return registry.get(architecture).network(**model_kwargs)


def _model_kwargs(config: TrainConfig, species: list[str], graphs: Sequence[Data], shift: np.ndarray) -> dict[str, Any]:
    """Keyword arguments of the network ``config.architecture`` names."""
    stats = GraphStatistics(
        species=tuple(species),
        cutoff=config.cutoff,
        energy_shift=tuple(float(s) for s in shift),
        force_scale=_force_scale(graphs),
        mean_neighbours=_mean_neighbors(graphs),
    )
    return registry.get(config.architecture).model_kwargs(config.hyperparameters, stats)


def load_checkpoint(run_dir: str | os.PathLike[str], which: str = "best") -> tuple[nn.Module, list[str]]:
    """Load the ``best`` or ``last`` network of a run folder, with its species list."""
    path = os.path.join(os.fspath(run_dir), f"checkpoint_{which}.pt")
    if not os.path.isfile(path):
        from scalelink.bridge.errors import ModelFileError

        raise ModelFileError(f"no checkpoint {path!r}; is {os.fspath(run_dir)!r} a finished `scalelink train` run folder?")
    state = load_state(path)
    model = build_model(state["model_kwargs"], state.get("architecture", registry.UNNAMED))
    model.load_state_dict(state["model_state"])
    return model.to(_DTYPES[state["dtype"]]), list(state["species"])


def _optimizer(parameters: list[torch.Tensor], config: TrainConfig) -> torch.optim.Optimizer:
    """Adam, or AdamW when ``config.weight_decay`` is positive."""
    if config.weight_decay > 0.0:
        return torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    return torch.optim.Adam(parameters, lr=config.learning_rate)


def _loss(
    model: nn.Module, batch: Data, weights: LossWeights, create_graph: bool, stress_offset: StressOffset | None = None
) -> torch.Tensor:
    pred = predict(model, batch, create_graph=create_graph)
    natoms = batch.natoms.to(pred.energy.dtype)
    w = batch.weight
    energy_term = (w * ((pred.energy - batch.energy) / natoms) ** 2).sum() / w.sum().clamp_min(1e-12)
    atom_w = w.index_select(0, batch.batch).unsqueeze(-1)
    force_term = (atom_w * (pred.forces - batch.forces) ** 2).sum() / (3.0 * atom_w.sum().clamp_min(1e-12))
    mask = batch.has_stress.to(pred.energy.dtype) * w
    stress = pred.stress if stress_offset is None else stress_offset.shift(pred.stress)
    stress_term = (mask.view(-1, 1, 1) * (stress - batch.stress) ** 2).sum() / (9.0 * mask.sum().clamp_min(1e-12))
    return weights.energy * energy_term + weights.forces * force_term + weights.stress * stress_term


def collect(
    model: nn.Module, loader: DataLoader, species: Sequence[str] = (), stress_offset: float = 0.0
) -> Collected:
    """Predictions and references over a loader, as float64 numpy arrays.

    With ``species`` (names in model order), force errors are also kept per species;
    ``stress_offset`` (eV/Å³) is added to the diagonal of the predicted stresses (the trained
    :class:`~scalelink.training.losses.StressOffset` of the labels).
    """
    out = Collected(species=list(species))
    for batch in loader:
        pred = predict(model, batch, create_graph=False)
        natoms = batch.natoms.to(pred.energy.dtype)
        out.energy_per_atom_pred.append((pred.energy / natoms).detach().double().numpy())
        out.energy_per_atom_ref.append((batch.energy / natoms).double().numpy())
        out.forces_pred.append(pred.forces.detach().double().numpy())
        out.forces_ref.append(batch.forces.double().numpy())
        out.forces_species.append(batch.species.numpy())
        mask = batch.has_stress.numpy().astype(bool)
        if mask.any():
            voigt = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
            sp = pred.stress.detach().double().numpy()[mask] + stress_offset * np.eye(3)
            sr = batch.stress.double().numpy()[mask]
            out.stress_pred.append(np.stack([sp[:, a, b] for a, b in voigt], axis=1))
            out.stress_ref.append(np.stack([sr[:, a, b] for a, b in voigt], axis=1))
    return out


def _mean_neighbors(graphs: Sequence[Data]) -> float:
    edges = sum(int(g.edge_index.shape[1]) for g in graphs)
    nodes = sum(int(g.num_nodes) for g in graphs)
    return max(edges / max(nodes, 1), 1.0)


def _force_scale(graphs: Sequence[Data]) -> float:
    forces = torch.cat([g.forces for g in graphs])
    return float(forces.double().pow(2).mean().sqrt().clamp_min(1e-3))


@torch.no_grad()
def _refit_energy_shift(
    model: nn.Module, loader: DataLoader, num_species: int, noise: SourceNoise | None = None, *,
    update_noise: bool = False,
) -> None:
    """Re-fit the per-species reference energies to the training residuals, weighted as the
    loss's energy term weighs them (:func:`scalelink.training.losses.fit_energy_reference`;
    with ``update_noise`` the learned energy noise levels are re-fitted with them).

    Forces do not see these constants; the optimiser, driven mostly by forces, leaves them
    a little off. The correction is linear and exact on the training set. It must weigh
    frames as the loss does: an unweighted fit hands the energy zero to whichever source
    has the most frames, however biased or down-weighted its energies are.
    """
    fractions, residuals, weights, sources = [], [], [], []
    for batch in loader:
        with torch.enable_grad():
            pred = predict(model, batch, create_graph=False)
        counts = torch.zeros((int(batch.num_graphs), num_species), dtype=torch.float64)
        counts.index_put_((batch.batch, batch.species), torch.ones(batch.species.shape[0], dtype=torch.float64), accumulate=True)
        natoms = batch.natoms.double()
        fractions.append((counts / natoms.unsqueeze(-1)).numpy())
        residuals.append(((batch.energy - pred.energy.detach()).double() / natoms).numpy())
        weights.append(batch.weight.double().numpy())
        if noise is not None:
            sources.append(batch.source.view(-1).numpy())
    correction = fit_energy_reference(
        np.concatenate(fractions), np.concatenate(residuals), np.concatenate(weights),
        np.concatenate(sources) if sources else None, noise, update_noise=update_noise,
    )
    model.energy_shift += torch.as_tensor(correction, dtype=model.energy_shift.dtype)


def _warm_start(run_dir: str, species: list[str], architecture: str, dtype: torch.dtype) -> tuple[Any, dict[str, Any]]:
    """The best network of ``run_dir`` and its keyword arguments, to continue training from."""
    path = os.path.join(run_dir, "checkpoint_best.pt")
    if not os.path.isfile(path):
        from scalelink.bridge.errors import ModelFileError

        raise ModelFileError(f"init_from: no checkpoint {path!r}; give a finished `scalelink train` run folder")
    state = load_state(path)
    found = (list(state["species"]), state.get("architecture", registry.UNNAMED))
    if found != (species, architecture):
        from scalelink.bridge.errors import ConfigError

        raise ConfigError(
            f"init_from {run_dir!r} holds a {found[1]} network for species {found[0]}, but this run trains a "
            f"{architecture} network for {species}; warm-start only from a run of the same kind"
        )
    model = build_model(state["model_kwargs"], architecture)
    model.load_state_dict(state["model_state"])
    return model.to(dtype), dict(state["model_kwargs"])


class _WeightAverage:
    """Exponential moving average of a network's weights; buffers follow the network's.

    The decay ramps up as ``min(decay, (1 + n) / (10 + n))`` over the first updates, so the
    average does not hold on to the initial weights. With ``decay`` 0 the average is the
    network itself.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.updates = 0
        self.network = copy.deepcopy(model) if self.decay > 0.0 else model
        if self.network is not model:
            self.network.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        if self.network is model:
            return
        self.updates += 1
        weight = 1.0 - min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for average, current in zip(self.network.parameters(), model.parameters()):
            average.lerp_(current, weight)
        for average, current in zip(self.network.buffers(), model.buffers()):
            average.copy_(current)


def train(config: TrainConfig, *, progress: bool = True, resume: bool = False, overwrite: bool = False) -> TrainResult:
    """Train a potential of a registered architecture as ``config`` says and write the run folder.

    The data are read and checked before anything is written into ``config.out``
    (:mod:`scalelink.training.run_folder`).

    Args:
        config: the run's configuration.
        progress: show a progress bar.
        resume: continue from ``checkpoint_last.pt`` in ``config.out`` (weights, optimiser,
            schedule, history, random state), as if the run had never stopped.
        overwrite: replace a run already in ``config.out``; without it (or ``resume``) a
            folder holding a run is refused.

    Returns:
        A :class:`TrainResult` with validation and held-out test metrics of the best model.

    Raises:
        ConfigError: ``config.out`` is a file or holds a run, without ``resume`` or ``overwrite``.
        DataError: a data file is missing or unreadable, or a frame's labels are missing,
            misshaped or not finite (naming the file and frame).
        NonFiniteError: the training or validation loss became NaN or infinite.
    """
    run = _Run(config, resume=resume, overwrite=overwrite)
    epoch = run.first_epoch - 1
    bar = tqdm(range(run.first_epoch, config.epochs + 1), desc="training", disable=not progress, unit="epoch")
    for epoch in bar:
        train_loss, lr = run.train_epoch(epoch)
        val = run.validate(epoch, train_loss, lr)
        bar.set_postfix(
            E=f"{1e3 * val.energy_rmse:.2f}meV/at", F=f"{1e3 * val.force_rmse:.1f}meV/Å", lr=f"{lr:.1e}"
        )
        if run.should_stop(epoch):
            break
    bar.close()
    return run.finish(epoch)


class _Run:
    """One training run's state and its named steps: set-up (data, network), resume, one
    epoch, validation with the schedule and checkpoints, the stopping rules, and the finish
    (deployed energy zero, metrics, plots)."""

    def __init__(self, config: TrainConfig, *, resume: bool, overwrite: bool) -> None:
        self.config, self.start = config, time.perf_counter()
        torch.manual_seed(config.seed)
        self.dtype = _DTYPES[config.dtype]
        self.run_dir = config.out
        self.last_path = os.path.join(self.run_dir, "checkpoint_last.pt")
        if resume and not os.path.isfile(self.last_path):
            from scalelink.bridge.errors import ModelFileError

            raise ModelFileError(f"cannot resume: {self.last_path!r} does not exist; start the run without --resume")
        check_run_folder(self.run_dir, resume=resume, overwrite=overwrite)
        self._read_data()
        self._build_network(warm_start=config.init_from is not None and not resume)
        self.history: list[dict[str, float]] = []
        self.best, self.best_epoch, self.first_epoch, self.spent_before = float("inf"), 0, 1, 0.0
        self.plateau_rate, self.last_reduction = config.learning_rate, 0
        self.final_from = 0  # the epoch after which the final stage began; 0: not begun
        if resume:
            self._restore()
        split = {k: getattr(self.split, k).tolist() for k in ("train", "validation", "test")}
        start_run_folder(self.run_dir, config, split, overwrite=overwrite)
        self.steps_per_epoch = max(len(self.train_loader), 1)

    def _read_data(self) -> None:
        """Structures, species, the split, graphs, source noise and the per-species energy zero."""
        config = self.config
        frames = read_structures(config.data, config.species)
        self.species = list(config.species) if config.species else infer_species(frames)
        self.split = split_indices(len(frames), config.validation_fraction, config.test_fraction, config.seed)
        self.graphs = [atoms_to_data(a, self.species, config.cutoff, self.dtype) for a in frames]
        self.noise = prepare_sources(config, frames, self.graphs, len(self.species))
        with_stress = config.loss.stress > 0.0 and any(bool(g.has_stress) for g in self.graphs)
        self.stress_offset = StressOffset() if config.loss.stress_offset and with_stress else None
        self.extra_parameters = [] if self.noise is None else list(self.noise.parameters())
        if self.stress_offset is not None:
            self.extra_parameters.append(self.stress_offset.scaled)
        self.train_graphs = [self.graphs[i] for i in self.split.train]
        self.shift = reference_energies([frames[i] for i in self.split.train], self.species)

    def _build_network(self, warm_start: bool) -> None:
        """The network (fresh and prepared on the training graphs, or warm-started), the
        optimiser, the weight average and the loaders."""
        config, species = self.config, self.species
        self.model_kwargs = _model_kwargs(config, species, self.train_graphs, self.shift)
        self.model = build_model(self.model_kwargs, config.architecture).to(self.dtype)
        prepare = registry.get(config.architecture).prepare
        if prepare is not None:
            prepare(self.model, self.train_graphs)
        if warm_start:
            self.model, self.model_kwargs = _warm_start(config.init_from, species, config.architecture, self.dtype)
        elif self.noise is not None or any(float(g.weight) != 1.0 for g in self.train_graphs):
            # start from the energy zero the weighted loss wants, not the unweighted one of `shift`
            _refit_energy_shift(self.model, make_loader(self.train_graphs, config.batch_size, shuffle=False, seed=0),
                                len(species), self.noise)
            self.model_kwargs["energy_shift"] = self.model.energy_shift.double().tolist()
        self.optimizer = _optimizer([*self.model.parameters(), *self.extra_parameters], config)
        self.average = _WeightAverage(self.model, config.ema_decay)
        self.train_loader = make_loader(self.train_graphs, config.batch_size, shuffle=True, seed=config.seed)
        self.val_graphs = [self.graphs[i] for i in self.split.validation] or self.train_graphs
        self.val_loader = make_loader(self.val_graphs, config.batch_size, shuffle=False, seed=config.seed)

    def _restore(self) -> None:
        """Continue from ``checkpoint_last.pt``: weights, optimiser, average, schedule, history, random state."""
        state = load_state(self.last_path)
        self.model_kwargs = state["model_kwargs"]
        self.model = build_model(self.model_kwargs, self.config.architecture).to(self.dtype)
        self.model.load_state_dict(state.get("training_state") or state["model_state"])
        if self.noise is not None:
            self.noise.load_state_dict(state["noise_state"])
        if self.stress_offset is not None and state.get("stress_offset_state") is not None:
            self.stress_offset.load_state_dict(state["stress_offset_state"])
        self.optimizer = _optimizer([*self.model.parameters(), *self.extra_parameters], self.config)
        self.optimizer.load_state_dict(state["optimizer_state"])
        self.average = _WeightAverage(self.model, self.config.ema_decay)
        self.average.network.load_state_dict(state["model_state"])
        self.average.updates = int(state.get("ema_updates", 0))
        self.spent_before = state["seconds"]
        self.train_loader.generator.set_state(state["loader_rng"])
        torch.set_rng_state(state["torch_rng"])
        self.history, self.best, self.best_epoch = state["history"], state["best"], state["best_epoch"]
        self.plateau_rate = float(state.get("plateau_rate", self.config.learning_rate))
        self.last_reduction = int(state.get("last_reduction", 0))
        self.final_from = int(state.get("final_from", 0))
        self.first_epoch = state["epoch"] + 1
        tqdm.write(f"resuming {self.run_dir} at epoch {self.first_epoch}")

    @property
    def loss_weights(self) -> LossWeights:
        """The loss weights of the current stage (the final stage weighs energies more)."""
        weights = self.config.loss
        if self.final_from:
            weights = dataclasses.replace(weights, energy=weights.energy * self.config.final_energy_factor)
        return weights

    def offset_value(self) -> float:
        """The trained isotropic offset of the stress labels (eV/Å³; 0 without one)."""
        return 0.0 if self.stress_offset is None else float(self.stress_offset.value().detach())

    def seconds(self) -> float:
        """Training time so far, including the time before a resume."""
        return self.spent_before + time.perf_counter() - self.start

    def checkpoint(self, epoch: int) -> dict[str, Any]:
        average = self.average
        return {
            "architecture": self.config.architecture,
            "model_kwargs": self.model_kwargs,
            # the averaged network is the one validated and deployed; resuming needs both
            "model_state": average.network.state_dict(),
            "training_state": None if average.network is self.model else self.model.state_dict(),
            "ema_updates": average.updates,
            "species": self.species,
            "dtype": self.config.dtype,
            "epoch": epoch,
            "optimizer_state": self.optimizer.state_dict(),
            "seconds": self.seconds(),
            "loader_rng": self.train_loader.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": self.history,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "plateau_rate": self.plateau_rate,
            "last_reduction": self.last_reduction,
            "final_from": self.final_from,
            "noise_state": None if self.noise is None else self.noise.state_dict(),
            "stress_offset_state": None if self.stress_offset is None else self.stress_offset.state_dict(),
        }

    def learning_rate(self, epoch_progress: float) -> float:
        config = self.config
        if config.lr_schedule == "plateau" or self.final_from:
            return self.plateau_rate
        progress = epoch_progress / config.epochs
        if config.time_limit is not None:
            progress = max(progress, self.seconds() / config.time_limit)
        return config.learning_rate * config.lr_final ** min(progress, 1.0)

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        """One pass over the training loader; returns the mean training loss per structure and
        the last learning rate."""
        config, model = self.config, self.model
        model.train()
        total, count, lr = 0.0, 0, self.learning_rate(epoch - 1)
        for step, batch in enumerate(self.train_loader):
            lr = self.learning_rate(epoch - 1 + step / self.steps_per_epoch)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.optimizer.zero_grad(set_to_none=True)
            if self.noise is None:
                loss = _loss(model, batch, self.loss_weights, create_graph=True, stress_offset=self.stress_offset)
            else:
                loss = source_nll(model, batch, self.noise, config.loss.stress, create_graph=True,
                                  stress_offset=self.stress_offset)
            value = float(loss.detach())
            check_finite_loss(value, "training loss", f"at epoch {epoch}, step {step + 1} of {self.steps_per_epoch} "
                               f"(learning rate {lr:.3g})", self.run_dir, self.train_graphs)
            loss.backward()
            self.optimizer.step()
            self.average.update(model)
            total += value * int(batch.num_graphs)
            count += int(batch.num_graphs)
        return total / max(count, 1), lr

    def validate(self, epoch: int, train_loss: float, lr: float) -> ErrorMetrics:
        """Score the averaged network on the validation set, record the epoch, keep the best
        checkpoint, reduce the rate on a plateau and write the last checkpoint and history."""
        config, weights = self.config, self.loss_weights
        self.model.eval()
        val = error_metrics(collect(self.average.network, self.val_loader, self.species, self.offset_value()))
        # mean absolute errors, the measure of DFT benchmarks: a few high-temperature frames
        # dominate the root mean squares, which can rise while the model improves on the rest
        val_loss = weights.energy * val.energy_mae**2 + weights.forces * val.force_mae**2
        if val.stress_rmse is not None:
            val_loss += weights.stress * val.stress_rmse**2
        check_finite_loss(val_loss, "validation loss", f"at epoch {epoch}", self.run_dir, self.val_graphs)
        self.history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "lr": lr,
                             "stage": "final" if self.final_from else "main", **val.as_dict()})
        if val_loss < self.best:
            self.best, self.best_epoch = val_loss, epoch
            save_checkpoint(os.path.join(self.run_dir, "checkpoint_best.pt"), self.checkpoint(epoch))
        elif epoch - max(self.best_epoch, self.last_reduction) >= config.lr_patience:
            self.plateau_rate = max(self.plateau_rate * config.lr_factor, config.learning_rate * config.lr_final)
            self.last_reduction = epoch
        save_checkpoint(self.last_path, self.checkpoint(epoch))
        write_json({"history": self.history}, os.path.join(self.run_dir, "history.json"))
        return val

    def should_stop(self, epoch: int) -> bool:
        """Early stopping on the validation loss, or the time limit; the main stage's end
        (its share of the budget spent, or its patience) begins the final stage instead."""
        config = self.config
        if self.final_stage_due(epoch):
            self.begin_final_stage(epoch)
            return False
        if epoch - self.best_epoch >= config.patience:
            tqdm.write(f"early stop at epoch {epoch}: no validation improvement for {config.patience} epochs")
            return True
        if config.time_limit is not None and self.seconds() > config.time_limit:
            tqdm.write(f"time limit of {config.time_limit:.0f} s reached at epoch {epoch}")
            return True
        return False

    def final_stage_due(self, epoch: int) -> bool:
        config = self.config
        if self.final_from or config.final_stage <= 0.0 or self.noise is not None or epoch >= config.epochs:
            return False
        main_share = 1.0 - config.final_stage
        if config.time_limit is not None and self.seconds() >= main_share * config.time_limit:
            return True
        return epoch >= main_share * config.epochs or epoch - self.best_epoch >= config.patience

    def begin_final_stage(self, epoch: int) -> None:
        """Continue from the best network so far, its energies weighted
        ``final_energy_factor`` times more, at ``final_learning_rate``, with a fresh optimiser
        and a fresh record of the best validation loss (whose measure changes with the weights)."""
        config = self.config
        state = load_state(os.path.join(self.run_dir, "checkpoint_best.pt"))
        self.average.network.load_state_dict(state["model_state"])
        self.model.load_state_dict(state.get("training_state") or state["model_state"])
        if self.stress_offset is not None and state.get("stress_offset_state") is not None:
            self.stress_offset.load_state_dict(state["stress_offset_state"])
        if self.noise is not None:
            self.noise.load_state_dict(state["noise_state"])
        rate = config.final_learning_rate or config.learning_rate / 20.0
        self.optimizer = _optimizer([*self.model.parameters(), *self.extra_parameters], config)
        self.plateau_rate, self.last_reduction = rate, epoch
        self.final_from, self.best, self.best_epoch = epoch, float("inf"), epoch
        save_checkpoint(self.last_path, self.checkpoint(epoch))  # a resume continues in the final stage
        tqdm.write(f"final stage from epoch {epoch + 1} ({self.seconds():.0f} s): energies weighted "
                   f"{config.final_energy_factor:g} times more, learning rate {rate:.2g}, from the best network "
                   f"(epoch {state['epoch']})")

    def finish(self, epoch: int) -> TrainResult:
        """Refit the best network's energy zero on the training set, score it on the validation
        and test sets, and write the metrics and plots."""
        config, run_dir, species, noise = self.config, self.run_dir, self.species, self.noise
        learning_curves(self.history, os.path.join(run_dir, "learning_curves.png"))
        best_model, _ = load_checkpoint(run_dir, "best")
        best_model.eval()
        best_path = os.path.join(run_dir, "checkpoint_best.pt")
        state = load_state(best_path)
        if noise is not None:
            noise.load_state_dict(state["noise_state"])  # the noise levels that went with the best network
        if self.stress_offset is not None and state.get("stress_offset_state") is not None:
            self.stress_offset.load_state_dict(state["stress_offset_state"])
        offset = self.offset_value()
        _refit_energy_shift(best_model, make_loader(self.train_graphs, config.batch_size, shuffle=False, seed=0),
                            len(species), noise, update_noise=True)
        state["model_state"] = best_model.state_dict()
        if noise is not None:
            state["noise_state"] = noise.state_dict()
        state["model_kwargs"]["energy_shift"] = best_model.energy_shift.double().tolist()
        save_checkpoint(best_path, state)
        val_collected = collect(best_model, self.val_loader, species, offset)
        val_metrics = error_metrics(val_collected)
        test_metrics = None
        report: dict[str, object] = {"species": species, "best_epoch": self.best_epoch, "epochs_run": epoch,
                                     "final_stage_from_epoch": self.final_from or None,
                                     "validation": val_metrics.as_dict()}
        if noise is not None:
            report["source_noise"] = noise.as_dict()
        if self.stress_offset is not None:
            report["stress_offset_GPa"] = EV_PER_CUBIC_ANGSTROM_IN_GPA * offset
            if abs(report["stress_offset_GPa"]) > 0.5:
                tqdm.write(
                    f"the stress labels carry an isotropic offset of {report['stress_offset_GPa']:+.2f} GPa against "
                    "the energies (learned with the network, not part of the model; stress errors in metrics.json "
                    "are after it): a Pulay stress from too small a plane-wave basis? `loss: {stress_offset: false}` "
                    "fits the labels as they are"
                )
        if len(self.split.test):
            test_graphs = [self.graphs[i] for i in self.split.test]
            test_loader = make_loader(test_graphs, config.batch_size, shuffle=False, seed=config.seed)
            test_collected = collect(best_model, test_loader, species, offset)
            test_metrics = error_metrics(test_collected)
            report["test"] = test_metrics.as_dict()
            parity_plot(test_collected, os.path.join(run_dir, "parity.png"), "held-out test set")
        else:
            parity_plot(val_collected, os.path.join(run_dir, "parity.png"), "validation set")
        seconds = time.perf_counter() - self.start
        report["seconds"] = seconds
        write_json(report, os.path.join(run_dir, "metrics.json"))
        return TrainResult(run_dir, species, test_metrics, val_metrics, epoch, seconds)
