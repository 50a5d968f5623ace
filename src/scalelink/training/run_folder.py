"""The run folder of ``scalelink train``: what it holds, when a run may write into it, its
checkpoints, and the stop of a run whose loss is no longer finite.

A run never replaces another by accident: a folder that already holds a run (its
``config.yaml`` or a checkpoint) is continued only with ``resume`` (``--resume``) and replaced
only with ``overwrite`` (``--overwrite``). Nothing is written into the folder before the data
and the configuration have been read and checked, so a failed call leaves an existing run
(and its ``--resume``) as it was. A loss that becomes NaN or infinite stops the run at once,
before the diverged weights reach a checkpoint.
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Sequence
from typing import Any

import torch
import yaml
from torch_geometric.data import Data

from scalelink.bridge.errors import ConfigError, ModelFileError, NonFiniteError

from .config import TrainConfig
from .metrics import write_json

__all__ = [
    "RUN_FILES",
    "check_finite_loss",
    "check_run_folder",
    "holds_run",
    "load_state",
    "save_checkpoint",
    "start_run_folder",
]

RUN_FILES = (
    "config.yaml",
    "split.json",
    "checkpoint_last.pt",
    "checkpoint_best.pt",
    "history.json",
    "metrics.json",
    "parity.png",
    "learning_curves.png",
)
"""What a training run writes into its folder."""

_MARKERS = ("config.yaml", "checkpoint_last.pt", "checkpoint_best.pt")


def holds_run(run_dir: str) -> bool:
    """Whether ``run_dir`` holds (the start of) a training run."""
    return any(os.path.exists(os.path.join(run_dir, name)) for name in _MARKERS)


def check_run_folder(run_dir: str, *, resume: bool, overwrite: bool) -> None:
    """Refuse a run folder this run may not write into; touches nothing.

    Raises:
        ConfigError: ``run_dir`` is a file; both ``resume`` and ``overwrite``; or the folder
            holds a run and neither is given (the message names the folder and both flags).
    """
    if resume and overwrite:
        raise ConfigError(
            f"--resume and --overwrite exclude each other (run folder {run_dir!r}): continue the run "
            "with --resume, or start it again from scratch with --overwrite"
        )
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise ConfigError(f"the run folder {run_dir!r} is an existing file, not a folder; give --out a folder path")
    if not (resume or overwrite) and holds_run(run_dir):
        found = [name for name in _MARKERS if os.path.exists(os.path.join(run_dir, name))]
        raise ConfigError(
            f"the run folder {run_dir!r} already holds a run ({', '.join(found)}); continue it with "
            f"--resume {run_dir}, replace it with --overwrite, or choose another --out"
        )


def start_run_folder(run_dir: str, config: TrainConfig, split: dict[str, list[int]], *, overwrite: bool) -> None:
    """Create ``run_dir`` and write ``config.yaml`` and ``split.json``; with ``overwrite``,
    first delete what an earlier run wrote there (:data:`RUN_FILES`; other files stay)."""
    os.makedirs(run_dir, exist_ok=True)
    if overwrite:
        for name in RUN_FILES:
            for path in (os.path.join(run_dir, name), os.path.join(run_dir, name + ".tmp")):
                if os.path.isfile(path):
                    os.remove(path)
    with open(os.path.join(run_dir, "config.yaml"), "w", encoding="utf-8") as handle:
        yaml.safe_dump(config.to_dict(), handle, sort_keys=False)
    write_json(split, os.path.join(run_dir, "split.json"))


def load_state(path: str) -> dict[str, Any]:
    """A checkpoint's contents. Checkpoints hold tensors and plain Python values only, so they
    are read with ``weights_only=True``: loading a checkpoint from elsewhere runs no code.

    Raises:
        ModelFileError: the file is truncated or not a checkpoint.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(
            f"checkpoint {path!r} cannot be read ({first_line}); it is truncated or not a ScaleLink "
            "checkpoint: use the run's other checkpoint (--checkpoint best|last) or train the run again"
        ) from None


def save_checkpoint(path: str, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` through a temporary file, so that a run killed mid-write
    keeps its previous checkpoint."""
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def check_finite_loss(value: float, what: str, where: str, run_dir: str, graphs: Sequence[Data]) -> None:
    """Stop a diverged run, saying what happened, what the run folder still holds and what to change.

    Raises:
        NonFiniteError: ``value`` is NaN or infinite.
    """
    if math.isfinite(value):
        return
    kept = [name for name in ("checkpoint_best.pt", "checkpoint_last.pt") if os.path.isfile(os.path.join(run_dir, name))]
    saved = f"{' and '.join(kept)} in {run_dir!r} hold the last finite epoch" if kept else "no checkpoint was written"
    energy = max(float((g.energy / g.natoms).abs().max()) for g in graphs)
    force = max(float(g.forces.abs().max()) if g.forces.numel() else 0.0 for g in graphs)
    raise NonFiniteError(
        f"the {what} became {value} {where}: the network diverged; {saved}. Lower learning_rate, or "
        f"check the data for extreme labels (largest |energy| per atom {energy:.3g} eV, largest force "
        f"component {force:.3g} eV/Å)"
    )
