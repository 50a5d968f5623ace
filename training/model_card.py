"""The model card: a JSON file beside each deployed model saying what it was trained on,
how well it does and with which software."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from typing import Any

import yaml

from scalelink.bridge.model_file import ModelMetadata

__all__ = ["model_card_path", "write_model_card"]


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


def write_model_card(model_path: str | os.PathLike[str], run_dir: str | os.PathLike[str], metadata: ModelMetadata) -> str:
    """Write the card of ``model_path`` from its training run folder; return the card's path."""
    run_dir = os.fspath(run_dir)

    def load(name: str, reader: Any) -> Any:
        path = os.path.join(run_dir, name)
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as handle:
            return reader(handle)

    config = load("config.yaml", yaml.safe_load) or {}
    card = {
        "model_file": os.path.basename(os.fspath(model_path)),
        "model_sha256": _sha256(os.fspath(model_path)),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "metadata": json.loads(metadata.to_json()),
        "training_run": os.path.abspath(run_dir),
        "training_data": [{"path": p, "sha256": _sha256(p)} for p in config.get("data", [])],
        "training_config": config,
        "metrics": load("metrics.json", json.load),
    }
    path = model_card_path(model_path)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(card, handle, indent=2)
        handle.write("\n")
    return path
