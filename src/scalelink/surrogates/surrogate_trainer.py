"""Training of constitutive surrogates with a Sobolev loss on stress and tangent.

The loss is taken between normalised quantities, so that stress and tangent errors weigh the
same whatever the units::

    L = mean |ŝ − ŝ_ref|² + w_t · mean |Ĵ − Ĵ_ref|²,
    ŝ = (σ − μ_σ) / s_σ,   Ĵ_ij = ∂σ_i/∂ε_j · s_ε,j / s_σ,i

The network's tangent ``Ĵ`` comes from reverse-mode autograd (one sweep per stress
component, kept in the graph), an independent path from the forward-mode tangent of the
deployed model. A fraction of the samples is held out and never trained on; the metrics
reported on it are relative RMSEs, ``sqrt(Σ|pred − ref|²) / sqrt(Σ|ref|²)``.

A run folder holds ``config.json``, ``surrogate.pt`` (weights and normalisation) and
``metrics.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from scalelink.bridge.errors import ConfigError, DataError

from .constitutive import ACTIVATIONS, VARIANTS, ConstitutiveMLP, ConstitutiveSamples, load_samples

__all__ = [
    "SurrogateConfig",
    "SurrogateResult",
    "load_surrogate",
    "network_tangent",
    "relative_rmse",
    "train_surrogate",
]

CHECKPOINT = "surrogate.pt"
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class SurrogateConfig:
    """Settings of :func:`train_surrogate`.

    Attributes:
        width: neurons per hidden layer.
        depth: hidden layers.
        activation: one of ``silu``, ``softplus``, ``tanh``.
        variant: ``"stress"`` (the network gives the stress) or ``"energy"`` (a hyperelastic
            surrogate: stress is the gradient of a network energy, the tangent symmetric).
        tangent_weight: weight ``w_t`` of the tangent term (0: stress only).
        optimizer: ``"lbfgs"`` (full batch, quasi-Newton with a strong-Wolfe line search;
            fast and accurate for the small smooth fits of constitutive data) or ``"adam"``
            (mini-batches, for sample sets too large for one batch).
        epochs: L-BFGS steps of up to 20 iterations (it also stops when the loss no longer
            falls), or Adam passes over the training samples; an upper bound when
            ``time_limit`` is set.
        time_limit: stop after this many seconds of training; ``None`` for no limit.
        batch_size: Adam: samples per step.
        learning_rate: Adam: initial step; it decays to ``lr_final`` times this over the run.
        lr_final: Adam: ratio of the last to the first learning rate.
        held_out_fraction: fraction of samples kept out of training to measure errors on.
        seed: seed of the split, the initial weights and the batch order.
        dtype: ``float32`` or ``float64``, training precision.
        num_threads: torch CPU threads while training (restored afterwards); small networks
            train fastest on one, where thread synchronisation costs more than it saves.
    """

    width: int = 64
    depth: int = 3
    activation: str = "silu"
    variant: str = "stress"
    tangent_weight: float = 1.0
    optimizer: str = "lbfgs"
    epochs: int = 500
    time_limit: float | None = None
    batch_size: int = 128
    learning_rate: float = 5e-3
    lr_final: float = 1e-2
    held_out_fraction: float = 0.2
    seed: int = 0
    dtype: str = "float64"
    num_threads: int = 1

    def __post_init__(self) -> None:
        problems = []
        if self.activation not in ACTIVATIONS:
            problems.append(f"activation {self.activation!r} (expected one of {ACTIVATIONS})")
        if min(self.width, self.depth, self.epochs, self.batch_size, self.num_threads) < 1:
            problems.append(
                f"width={self.width}, depth={self.depth}, epochs={self.epochs}, "
                f"batch_size={self.batch_size}, num_threads={self.num_threads} (all must be ≥ 1)"
            )
        if self.variant not in VARIANTS:
            problems.append(f"variant={self.variant!r} (expected one of {VARIANTS})")
        if self.optimizer not in ("lbfgs", "adam"):
            problems.append(f"optimizer={self.optimizer!r} (expected 'lbfgs' or 'adam')")
        if self.tangent_weight < 0.0:
            problems.append(f"tangent_weight={self.tangent_weight} (must be ≥ 0)")
        if not 0.0 < self.held_out_fraction < 1.0:
            problems.append(f"held_out_fraction={self.held_out_fraction} (must lie in (0, 1))")
        if self.time_limit is not None and self.time_limit <= 0.0:
            problems.append(f"time_limit={self.time_limit} (must be positive)")
        if self.dtype not in _DTYPES:
            problems.append(f"dtype={self.dtype!r} (expected one of {sorted(_DTYPES)})")
        if problems:
            raise ConfigError("invalid surrogate training settings: " + "; ".join(problems))


@dataclass(frozen=True)
class SurrogateResult:
    """What :func:`train_surrogate` produced: the network, its folder and its errors."""

    model: ConstitutiveMLP
    run_dir: str
    metrics: dict[str, Any]


def network_tangent(model: ConstitutiveMLP, strain: Tensor, *, create_graph: bool = False) -> tuple[Tensor, Tensor]:
    """Stress ``(n, m)`` and autograd tangent ``(n, m, m)`` (``[k, i, j] = ∂σ_i/∂ε_j``) of ``model``."""
    x = strain.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        stress = model(x)
        rows = [
            torch.autograd.grad(stress[:, i].sum(), x, create_graph=create_graph, retain_graph=True)[0]
            for i in range(stress.shape[1])
        ]
    return stress, torch.stack(rows, dim=1)


def relative_rmse(pred: np.ndarray, ref: np.ndarray) -> float:
    """``sqrt(Σ|pred − ref|²) / sqrt(Σ|ref|²)`` over all entries."""
    return float(np.linalg.norm(pred - ref) / max(np.linalg.norm(ref), 1e-300))


def _errors(model: ConstitutiveMLP, strain: Tensor, stress: np.ndarray, tangent: np.ndarray) -> dict[str, float]:
    s, t = network_tangent(model, strain)
    return {
        "stress_relative_rmse": relative_rmse(s.detach().double().numpy(), stress),
        "tangent_relative_rmse": relative_rmse(t.detach().double().numpy(), tangent),
        "num_samples": int(strain.shape[0]),
    }


def train_surrogate(
    data: str | os.PathLike[str], run_dir: str | os.PathLike[str], config: SurrogateConfig = SurrogateConfig()
) -> SurrogateResult:
    """Fit a :class:`ConstitutiveMLP` to a sample file and write the run folder.

    Args:
        data: ``.npz`` with ``strain (n, m)``, ``stress (n, m)``, ``tangent (n, m, m)``,
            ``strain_size`` and ``stress_unit`` (see :func:`~scalelink.surrogates.constitutive.load_samples`).
        run_dir: folder for ``config.json``, ``surrogate.pt`` and ``metrics.json`` (created).
        config: network and optimiser settings.

    Returns:
        The trained network (training precision) with its folder and held-out errors.
    """
    samples = load_samples(data)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads)
    try:
        model, metrics = _fit(samples, config)
    finally:
        torch.set_num_threads(threads)
    metrics["data"] = os.fspath(data)
    out = os.fspath(run_dir)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(dataclasses.asdict(config), f, indent=2)
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    torch.save(
        {"state_dict": model.state_dict(), "strain_size": model.strain_size, "stress_unit": model.stress_unit,
         **model.architecture()},
        os.path.join(out, CHECKPOINT),
    )
    return SurrogateResult(model, out, metrics)


def _fit(samples: ConstitutiveSamples, config: SurrogateConfig) -> tuple[ConstitutiveMLP, dict[str, Any]]:
    """Split, normalise and train; the network and its errors on both parts."""
    strain, stress, tangent = samples.strain, samples.stress, samples.tangent
    n = strain.shape[0]
    num_held_out = int(round(config.held_out_fraction * n))
    if num_held_out < 1 or n - num_held_out < 1:
        raise DataError(
            f"{n} samples cannot be split with held_out_fraction={config.held_out_fraction}; "
            "sample more points"
        )
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(n)
    test, train = order[:num_held_out], order[num_held_out:]
    torch.manual_seed(config.seed)
    dtype = _DTYPES[config.dtype]
    model = ConstitutiveMLP(
        samples.strain_size, width=config.width, depth=config.depth,
        activation=config.activation, stress_unit=samples.stress_unit, variant=config.variant,
    ).to(dtype)
    model.set_normalisation(strain[train], stress[train])

    def tensor(a: np.ndarray) -> Tensor:
        return torch.as_tensor(a, dtype=dtype)

    e_train = tensor(strain[train])
    scale_e, scale_s, mean_s = model.strain_scale, model.stress_scale, model.stress_mean
    s_target = (tensor(stress[train]) - mean_s) / scale_s
    t_target = tensor(tangent[train]) * scale_e[None, None, :] / scale_s[None, :, None]

    def loss_of(batch: Tensor | slice) -> Tensor:
        s_pred, t_pred = network_tangent(model, e_train[batch], create_graph=True)
        loss = ((s_pred - mean_s) / scale_s - s_target[batch]).pow(2).mean()
        if config.tangent_weight > 0.0:
            t_hat = t_pred * scale_e[None, None, :] / scale_s[None, :, None]
            loss = loss + config.tangent_weight * (t_hat - t_target[batch]).pow(2).mean()
        return loss

    start = time.perf_counter()
    if config.optimizer == "lbfgs":
        epoch = _run_lbfgs(model, loss_of, config, start)
    else:
        epoch = _run_adam(model, loss_of, len(train), config, start)
    seconds = time.perf_counter() - start
    model.eval()
    metrics: dict[str, Any] = {
        "held_out": _errors(model, tensor(strain[test]), stress[test], tangent[test]),
        "train": _errors(model, e_train, stress[train], tangent[train]),
        "epochs": epoch,
        "seconds": seconds,
    }
    return model, metrics


def load_surrogate(run_dir: str | os.PathLike[str]) -> ConstitutiveMLP:
    """The network saved by :func:`train_surrogate` in ``run_dir`` (float64, eval mode)."""
    path = os.path.join(os.fspath(run_dir), CHECKPOINT)
    if not os.path.isfile(path):
        raise DataError(f"{path!r} does not exist; give a run folder written by `scalelink train-surrogate`")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = ConstitutiveMLP(
        int(saved["strain_size"]), width=int(saved["width"]), depth=int(saved["depth"]),
        activation=str(saved["activation"]), stress_unit=str(saved["stress_unit"]),
        variant=str(saved["variant"]),
    ).to(torch.float64)
    model.load_state_dict(saved["state_dict"])
    return model.eval()


def _out_of_time(config: SurrogateConfig, start: float) -> bool:
    return config.time_limit is not None and time.perf_counter() - start > config.time_limit


def _run_lbfgs(model: ConstitutiveMLP, loss_of: Callable[[slice], Tensor], config: SurrogateConfig, start: float) -> int:
    """Full-batch L-BFGS until the loss stops falling, ``epochs`` steps or the time limit."""
    optimiser = torch.optim.LBFGS(
        model.parameters(), lr=1.0, max_iter=20, history_size=50, line_search_fn="strong_wolfe"
    )

    def closure() -> Tensor:
        optimiser.zero_grad(set_to_none=True)
        loss = loss_of(slice(None))
        loss.backward()
        return loss

    previous = float("inf")
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        value = float(optimiser.step(closure).detach())
        if value >= previous or _out_of_time(config, start):
            break
        previous = value
    return epoch


def _run_adam(
    model: ConstitutiveMLP, loss_of: Callable[[Tensor], Tensor], num_train: int, config: SurrogateConfig,
    start: float,
) -> int:
    """Mini-batch Adam, the step decaying geometrically with the share of epochs or time spent."""
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        progress = epoch / config.epochs
        if config.time_limit is not None:
            progress = max(progress, (time.perf_counter() - start) / config.time_limit)
        for group in optimiser.param_groups:
            group["lr"] = config.learning_rate * config.lr_final ** min(progress, 1.0)
        for batch in torch.randperm(num_train).split(config.batch_size):
            loss = loss_of(batch)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        if _out_of_time(config, start):
            break
    return epoch
