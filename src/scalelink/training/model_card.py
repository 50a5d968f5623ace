"""The model card: a JSON file beside each deployed model saying what it was trained on,
how well it does and with which software (for a committee, every member's run)."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any

import yaml

from scalelink.bridge.model_file import ModelMetadata
from scalelink.potentials import registry

__all__ = ["architecture_of", "model_card_path", "write_model_card"]


def model_card_path(model_path: str | os.PathLike[str]) -> str:
    """``cuni.pt`` -> ``cuni.card.json``."""
    root, _ = os.path.splitext(os.fspath(model_path))
    return root + ".card.json"


def _sha256(path: str) -> str | None:
    if not os.path.isfile(path):
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def architecture_of(run_dir: str | os.PathLike[str]) -> str:
    """The architecture a training run folder trained (runs that do not say trained a GNN)."""
    path = os.path.join(os.fspath(run_dir), "config.yaml")
    if not os.path.isfile(path):
        return registry.UNNAMED
    with open(path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle) or {}
    return str(config.get("architecture", registry.UNNAMED))


def _run_entry(run_dir: str) -> dict[str, Any]:
    """What the card says about one training run folder."""

    def load(name: str, reader: Any) -> Any:
        path = os.path.join(run_dir, name)
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as handle:
            return reader(handle)

    config = load("config.yaml", yaml.safe_load) or {}
    return {
        "run": os.path.abspath(run_dir),
        "training_data": [{"path": p, "sha256": _sha256(p)} for p in config.get("data", [])],
        "training_config": config,
        "metrics": load("metrics.json", json.load),
    }


def write_model_card(
    model_path: str | os.PathLike[str],
    run_dirs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    metadata: ModelMetadata,
) -> str:
    """Write the card of ``model_path`` from its training run folder(s); return the card's path.

    Args:
        model_path: the deployed model file.
        run_dirs: the run folder of a single model, or those of a committee's members in
            member order; the card's ``training_runs`` lists each with its data (and their
            checksums), configuration and metrics; the card's ``architecture`` is that of
            the first run.
        metadata: the metadata written into the model file.
    """
    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    card = {
        "model_file": os.path.basename(os.fspath(model_path)),
        "model_sha256": _sha256(os.fspath(model_path)),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "architecture": architecture_of(os.fspath(run_dirs[0])),
        "metadata": json.loads(metadata.to_json()),
        "training_runs": [_run_entry(os.fspath(run_dir)) for run_dir in run_dirs],
    }
    path = model_card_path(model_path)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(card, handle, indent=2)
        handle.write("\n")
    return path
