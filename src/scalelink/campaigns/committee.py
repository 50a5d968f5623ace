"""Training a committee in one call: N members, one model file, a calibration report.

The labelled data are split once into a training pool and a held-out set (the
configuration's ``test_fraction``). Each member trains on the pool, or on a random subsample
of it (``bootstrap``), with its own seed; the members are then deployed together as one
committee file (:func:`scalelink.training.export.export_committee`) with a model card.
The held-out set, which no member saw, measures the committee's accuracy and how well its
force deviation ranks the actual force errors (:mod:`scalelink.training.calibration`).

A run folder holds ``pool.extxyz``, ``heldout.extxyz``, ``member_K/`` (one ``scalelink
train`` run folder per member, with its ``data.extxyz``), the committee file, its model card,
``committee.json`` (held-out metrics and calibration) and ``calibration.png``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.io import write

from scalelink.bridge.errors import ConfigError

from scalelink.training.calibration import Calibration, calibration, calibration_plot
from scalelink.training.config import TrainConfig
from scalelink.training.data import infer_species, read_structures
from scalelink.training.evaluate import evaluate_model_file
from scalelink.training.export import export_committee
from scalelink.training.metrics import ErrorMetrics
from scalelink.training.model_card import write_model_card
from scalelink.training.trainer import load_checkpoint, train

__all__ = ["CommitteeResult", "train_committee"]


@dataclass(frozen=True)
class CommitteeResult:
    """What :func:`train_committee` produced.

    Attributes:
        model_path: the committee model file.
        card_path: its model card (JSON).
        member_dirs: the members' run folders, in member order.
        heldout: errors of the deployed committee on the held-out set (``None`` without one).
        calibration: deviation-vs-error calibration on the held-out set (``None`` without one).
    """

    model_path: str
    card_path: str
    member_dirs: list[str]
    heldout: ErrorMetrics | None
    calibration: Calibration | None


def train_committee(
    config: TrainConfig,
    out: str | os.PathLike[str],
    members: int,
    *,
    bootstrap: float | None = None,
    model_name: str = "committee.pt",
    dtype: str = "float64",
    progress: bool = False,
    warm_start: Sequence[str] | None = None,
) -> CommitteeResult:
    """Train ``members`` potentials as ``config`` says and deploy them as one committee file.

    Args:
        config: the members' configuration (``data``, model, budget...); member ``k`` uses
            seed ``config.seed + k``. Its ``test_fraction`` sets the held-out set shared by
            all members; each member's own split then has no test part.
        out: the committee's run folder; a committee trained there before is replaced.
        members: committee size M >= 2.
        bootstrap: if given, each member trains on a random subsample (without
            replacement) of this fraction of the pool, in (0, 1].
        model_name: file name of the committee inside ``out``.
        dtype: precision of the deployed weights.
        progress: show the members' progress bars.
        warm_start: run folders, one per member, whose best networks start the members
            (e.g. the previous committee when the data have grown).

    Returns:
        A :class:`CommitteeResult`.

    Raises:
        ConfigError: fewer than 2 members, a bootstrap fraction outside (0, 1], or a
            ``warm_start`` list of another length than ``members``.
    """
    _check_arguments(members, bootstrap, warm_start)
    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    pool, heldout, species = _split_pool(config, out, rng)
    heldout_path = os.path.join(out, "heldout.extxyz")
    member_dirs = [
        _train_member(config, out, k, pool, species, rng, bootstrap=bootstrap, progress=progress,
                      warm_start=None if warm_start is None else warm_start[k])
        for k in range(members)
    ]

    networks = [load_checkpoint(d, "best")[0] for d in member_dirs]
    model_path = os.path.join(out, model_name)
    metadata = export_committee(networks, species, model_path, dtype=dtype)
    card_path = write_model_card(model_path, member_dirs, metadata)

    metrics, result = None, None
    report: dict[str, object] = {
        "model": model_path,
        "members": members,
        "bootstrap": bootstrap,
        "pool_structures": len(pool),
        "heldout_structures": len(heldout),
    }
    if heldout:
        metrics, result = _score_heldout(model_path, heldout_path, out)
        report["heldout"] = metrics.as_dict()
        report["calibration"] = result.as_dict()
    with open(os.path.join(out, "committee.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    return CommitteeResult(model_path, card_path, member_dirs, metrics, result)


def _check_arguments(members: int, bootstrap: float | None, warm_start: Sequence[str] | None) -> None:
    if warm_start is not None and len(warm_start) != members:
        raise ConfigError(f"warm_start needs one run folder per member ({members}), got {len(warm_start)}")
    if members < 2:
        raise ConfigError(f"a committee needs at least 2 members, got {members}; use `scalelink train` for one model")
    if bootstrap is not None and not 0.0 < bootstrap <= 1.0:
        raise ConfigError(f"bootstrap must be a fraction in (0, 1], got {bootstrap}")


def _split_pool(config: TrainConfig, out: str,
                rng: np.random.Generator) -> tuple[list[Atoms], list[Atoms], list[str]]:
    """The structures of ``config.data`` split into the members' pool and the shared held-out
    set (``test_fraction`` of them), written to ``pool.extxyz`` and ``heldout.extxyz`` in ``out``.

    Returns the pool, the held-out structures and the species in model order.
    """
    frames = read_structures(config.data, config.species)
    species = list(config.species) if config.species else infer_species(frames)
    order = rng.permutation(len(frames))
    n_heldout = int(round(config.test_fraction * len(frames)))
    if len(frames) - n_heldout < 2:
        raise ConfigError(f"{len(frames)} structures leave too few for training with test_fraction={config.test_fraction}")
    pool = [frames[i] for i in order[n_heldout:]]
    heldout = [frames[i] for i in order[:n_heldout]]
    write(os.path.join(out, "pool.extxyz"), pool, format="extxyz", parallel=False)
    if heldout:
        write(os.path.join(out, "heldout.extxyz"), heldout, format="extxyz", parallel=False)
    return pool, heldout, species


def _train_member(config: TrainConfig, out: str, k: int, pool: list[Atoms], species: list[str],
                  rng: np.random.Generator, *, bootstrap: float | None, progress: bool,
                  warm_start: str | os.PathLike[str] | None) -> str:
    """Train member ``k`` in ``out/member_k`` on the pool (or a bootstrap subsample drawn from
    ``rng``) with seed ``config.seed + k``; returns its run folder."""
    member_dir = os.path.join(out, f"member_{k}")
    os.makedirs(member_dir, exist_ok=True)
    chosen = pool
    if bootstrap is not None:
        size = max(2, int(round(bootstrap * len(pool))))
        chosen = [pool[i] for i in np.sort(rng.choice(len(pool), size=size, replace=False))]
    data_path = os.path.join(member_dir, "data.extxyz")
    write(data_path, chosen, format="extxyz", parallel=False)
    member_config = dataclasses.replace(
        config, data=(data_path,), species=tuple(species), out=member_dir, seed=config.seed + k, test_fraction=0.0,
        init_from=None if warm_start is None else os.fspath(warm_start),
    )
    # the member folders belong to the committee, which is retrained as a whole
    train(member_config, progress=progress, overwrite=True)
    return member_dir


def _score_heldout(model_path: str, heldout_path: str, out: str) -> tuple[ErrorMetrics, Calibration]:
    """Errors of the committee file on the held-out set, and how well its force deviation ranks
    the force errors (with ``calibration.png`` in ``out``)."""
    metrics, collected = evaluate_model_file(model_path, [heldout_path])
    deviation = np.concatenate(collected.force_deviation)
    f_pred, f_ref = collected.arrays("forces")
    error = np.linalg.norm(f_pred - f_ref, axis=1)
    result = calibration(deviation, error)
    calibration_plot(result, deviation, error, os.path.join(out, "calibration.png"))
    return metrics, result
