"""Importance weights of training frames for a target distribution (covariate shift).

When the training structures come from a different distribution than the one the model
will be used on, weighting each training frame by the density ratio
:math:`w(x) = p_\\text{target}(x) / p_\\text{train}(x)` makes the training loss an estimate
of the loss on the target distribution. The ratio is estimated in a small space of
per-structure descriptors that need no labels (so an unlabelled sample of target structures
is enough): volume per atom, mean and spread of the first-shell neighbour distances, and
mean first-shell coordination. Both densities are Gaussian kernel density estimates with
diagonal bandwidths (Scott's factor times each descriptor's spread in the sample, floored so
that a descriptor without spread, e.g. the same coordination in every target structure,
still gives a proper density), on descriptors standardised with the training frames' mean
and spread.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list
from scipy.special import logsumexp

from scalelink.bridge.errors import DataError

__all__ = ["DESCRIPTOR_NAMES", "density_ratio_weights", "structure_descriptors"]

DESCRIPTOR_NAMES = ("volume_per_atom", "mean_neighbor_distance", "std_neighbor_distance", "coordination")


def structure_descriptors(frames: Sequence[Atoms], shell: float = 3.0) -> np.ndarray:
    """Label-free descriptors of each structure, [F, 4]: volume per atom (Å³), mean and
    standard deviation of the neighbour distances inside ``shell`` (Å), and the mean number
    of neighbours inside ``shell``.

    One neighbour-list call per structure (a loop over structures, each vectorised).
    """
    rows = []
    for k, atoms in enumerate(frames):
        if not atoms.pbc.all():
            raise DataError(f"frame {k}: importance descriptors need periodic cells, got pbc={atoms.pbc.tolist()}")
        distances = neighbor_list("d", atoms, shell)
        if distances.size == 0:
            raise DataError(f"frame {k}: no neighbours within {shell} Å; is it a condensed structure?")
        rows.append([atoms.get_volume() / len(atoms), distances.mean(), distances.std(), distances.size / len(atoms)])
    return np.asarray(rows, dtype=np.float64)


def _log_kde(sample: np.ndarray, points: np.ndarray, floor: float = 0.1) -> np.ndarray:
    """Log density at ``points`` [P, D] of a Gaussian KDE of ``sample`` [S, D] (diagonal bandwidths)."""
    n, dim = sample.shape
    width = n ** (-1.0 / (dim + 4)) * np.maximum(sample.std(0), floor)  # Scott's rule per dimension
    z = (points[:, None, :] - sample[None, :, :]) / width  # [P, S, D]
    log_kernel = -0.5 * np.einsum("psd,psd->ps", z, z)
    return logsumexp(log_kernel, axis=1) - np.log(n) - np.log(width).sum() - 0.5 * dim * np.log(2.0 * np.pi)


def density_ratio_weights(
    train_frames: Sequence[Atoms],
    target_frames: Sequence[Atoms],
    *,
    clip: tuple[float, float] = (0.02, 50.0),
    shell: float = 3.0,
) -> np.ndarray:
    """Importance weights p_target/p_train of the training frames, normalised to mean 1.

    Args:
        train_frames: the labelled training structures.
        target_frames: an unlabelled sample of the target distribution (at least 2).
        clip: bounds of the weights before normalisation, relative to their median, so that
            a few frames cannot take over the loss (nor vanish entirely).
        shell: first-shell radius of the descriptors (Å).

    Returns:
        [len(train_frames)] non-negative weights with mean 1.

    Raises:
        DataError: fewer than 2 frames on either side.
    """
    if len(train_frames) < 2 or len(target_frames) < 2:
        raise DataError(
            f"density-ratio weights need at least 2 training and 2 target structures, got "
            f"{len(train_frames)} and {len(target_frames)}"
        )
    x_train = structure_descriptors(train_frames, shell)
    x_target = structure_descriptors(target_frames, shell)
    mean, scale = x_train.mean(0), x_train.std(0)
    scale = np.where(scale > 1e-12 * np.maximum(np.abs(mean), 1.0), scale, 1.0)
    z_train, z_target = (x_train - mean) / scale, (x_target - mean) / scale
    log_target = _log_kde(z_target, z_train)
    log_train = _log_kde(z_train, z_train)
    log_ratio = log_target - log_train
    middle = np.median(log_ratio)
    log_ratio = np.clip(log_ratio, middle + np.log(clip[0]), middle + np.log(clip[1]))
    ratio = np.exp(log_ratio - log_ratio.max())
    return ratio / ratio.mean()
