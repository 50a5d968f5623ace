"""How well a committee's spread ranks its true error, on labelled data.

For every atom, the committee's force deviation (spread of the members' forces) is set
against the actual error of the committee-mean force, ``|F_mean - F_ref|``. A useful
uncertainty ranks the errors well (Spearman correlation near 1) and is calibrated (the
binned mean error follows the predicted deviation).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

__all__ = ["Calibration", "calibration", "calibration_plot"]


@dataclass(frozen=True)
class Calibration:
    """Summary of predicted deviation vs actual per-atom force error (eV/Å).

    Attributes:
        spearman: rank correlation of predicted deviation and actual error.
        bin_deviation: mean predicted deviation in each bin (equal-count bins).
        bin_error: root-mean-square actual error in each bin.
        n_atoms: atoms used.
    """

    spearman: float
    bin_deviation: np.ndarray
    bin_error: np.ndarray
    n_atoms: int

    def as_dict(self) -> dict[str, object]:
        """JSON form, in meV/Å."""
        return {
            "spearman_force_deviation_vs_error": self.spearman,
            "bins_mean_deviation_meV_per_A": (1e3 * self.bin_deviation).tolist(),
            "bins_rms_error_meV_per_A": (1e3 * self.bin_error).tolist(),
            "n_atoms": self.n_atoms,
        }


def calibration(deviation: np.ndarray, error: np.ndarray, bins: int = 10) -> Calibration:
    """Spearman correlation and equal-count binning of ``deviation`` [N] against ``error`` [N]."""
    deviation = np.asarray(deviation, dtype=np.float64).ravel()
    error = np.asarray(error, dtype=np.float64).ravel()
    if deviation.shape != error.shape or deviation.size < 2:
        raise ValueError(f"need two equal-length arrays of at least 2 atoms, got {deviation.shape} and {error.shape}")
    rho = float(spearmanr(deviation, error).statistic)
    order = np.argsort(deviation)
    groups = np.array_split(order, min(bins, deviation.size))
    return Calibration(
        spearman=rho,
        bin_deviation=np.array([deviation[g].mean() for g in groups]),
        bin_error=np.array([np.sqrt(np.mean(error[g] ** 2)) for g in groups]),
        n_atoms=int(deviation.size),
    )


def calibration_plot(result: Calibration, deviation: np.ndarray, error: np.ndarray, path: str | os.PathLike[str]) -> None:
    """Per-atom scatter and binned RMS error against predicted deviation, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.scatter(1e3 * np.asarray(deviation), 1e3 * np.asarray(error), s=3, alpha=0.3, label="atoms")
    ax.plot(1e3 * result.bin_deviation, 1e3 * result.bin_error, "o-", color="C3", label="binned RMS error")
    top = 1e3 * max(float(np.max(deviation)), float(np.max(error)))
    ax.plot([0, top], [0, top], "k--", lw=0.8, label="error = deviation")
    ax.set_xlabel("committee force deviation (meV/Å)")
    ax.set_ylabel("|force error| of the mean (meV/Å)")
    ax.set_title(f"Spearman ρ = {result.spearman:.2f}")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=120)
    plt.close(fig)
