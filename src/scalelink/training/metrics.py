"""Error metrics and parity plots against reference labels."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from scalelink.bridge.units import EV_PER_CUBIC_ANGSTROM_IN_GPA

__all__ = ["Collected", "ErrorMetrics", "error_metrics", "learning_curves", "parity_plot", "write_json"]



@dataclass
class Collected:
    """Predicted and reference values gathered over a data set (numpy, float64).

    Shapes: ``energy_per_atom`` [S] (eV/atom), ``forces`` [N, 3] (eV/Å), ``stress``
    [S', 6] (eV/Å³, only structures with a stress label).
    """

    energy_per_atom_pred: list[np.ndarray] = field(default_factory=list)
    energy_per_atom_ref: list[np.ndarray] = field(default_factory=list)
    forces_pred: list[np.ndarray] = field(default_factory=list)
    forces_ref: list[np.ndarray] = field(default_factory=list)
    stress_pred: list[np.ndarray] = field(default_factory=list)
    stress_ref: list[np.ndarray] = field(default_factory=list)
    forces_species: list[np.ndarray] = field(default_factory=list)
    species: list[str] = field(default_factory=list)
    force_deviation: list[np.ndarray] = field(default_factory=list)  # committees: [N] per atom

    def arrays(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Concatenated ``(predicted, reference)`` arrays for ``energy_per_atom``, ``forces`` or ``stress``."""
        pred, ref = getattr(self, f"{name}_pred"), getattr(self, f"{name}_ref")
        if not pred:
            return np.zeros(0), np.zeros(0)
        return np.concatenate(pred), np.concatenate(ref)


@dataclass(frozen=True)
class ErrorMetrics:
    """Root-mean-square and mean absolute errors; energies per atom, force components."""

    energy_rmse: float  # eV/atom
    energy_mae: float  # eV/atom
    force_rmse: float  # eV/Å
    force_mae: float  # eV/Å
    stress_rmse: float | None  # eV/Å³
    n_structures: int
    n_atoms: int
    force_rmse_per_species: dict[str, float] = field(default_factory=dict)  # eV/Å

    def as_dict(self) -> dict[str, float | int | None]:
        """Metrics with explicit unit suffixes, as written to JSON."""
        return {
            "energy_rmse_meV_per_atom": 1e3 * self.energy_rmse,
            "energy_mae_meV_per_atom": 1e3 * self.energy_mae,
            "force_rmse_meV_per_A": 1e3 * self.force_rmse,
            "force_mae_meV_per_A": 1e3 * self.force_mae,
            "stress_rmse_GPa": None if self.stress_rmse is None else EV_PER_CUBIC_ANGSTROM_IN_GPA * self.stress_rmse,
            "n_structures": self.n_structures,
            "n_atoms": self.n_atoms,
            "force_rmse_meV_per_A_by_species": {k: 1e3 * v for k, v in self.force_rmse_per_species.items()},
        }

    def summary(self) -> str:
        """One line for the terminal."""
        d = self.as_dict()
        stress = "n/a" if d["stress_rmse_GPa"] is None else f"{d['stress_rmse_GPa']:.4f} GPa"
        return (
            f"energy RMSE {d['energy_rmse_meV_per_atom']:.3f} meV/atom (MAE {d['energy_mae_meV_per_atom']:.3f}), "
            f"force RMSE {d['force_rmse_meV_per_A']:.2f} meV/Å (MAE {d['force_mae_meV_per_A']:.2f}), "
            f"stress RMSE {stress}  [{self.n_structures} structures, {self.n_atoms} atoms]"
        )


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def _mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a - b)))


def error_metrics(collected: Collected) -> ErrorMetrics:
    """Metrics of gathered predictions."""
    e_pred, e_ref = collected.arrays("energy_per_atom")
    f_pred, f_ref = collected.arrays("forces")
    s_pred, s_ref = collected.arrays("stress")
    per_species: dict[str, float] = {}
    if collected.species and collected.forces_species:
        kinds = np.concatenate(collected.forces_species)
        for index, name in enumerate(collected.species):
            mask = kinds == index
            if mask.any():
                per_species[name] = _rmse(f_pred[mask], f_ref[mask])
    return ErrorMetrics(
        energy_rmse=_rmse(e_pred, e_ref),
        energy_mae=_mae(e_pred, e_ref),
        force_rmse=_rmse(f_pred, f_ref),
        force_mae=_mae(f_pred, f_ref),
        stress_rmse=_rmse(s_pred, s_ref) if s_pred.size else None,
        n_structures=int(e_pred.size),
        n_atoms=int(f_pred.shape[0]) if f_pred.size else 0,
        force_rmse_per_species=per_species,
    )


def parity_plot(collected: Collected, path: str | os.PathLike[str], title: str = "") -> None:
    """Predicted vs reference energy per atom and force components, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    panels: Iterable[tuple[str, str, float]] = (
        ("energy_per_atom", "energy (eV/atom)", 1.0),
        ("forces", "force component (eV/Å)", 1.0),
    )
    for ax, (name, label, scale) in zip(axes, panels):
        pred, ref = collected.arrays(name)
        pred, ref = pred.ravel() * scale, ref.ravel() * scale
        ax.scatter(ref, pred, s=4, alpha=0.5)
        if ref.size:
            lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
            ax.set_title(f"RMSE {1e3 * _rmse(pred, ref):.2f} m{label.split('(')[1][:-1]}")
        ax.set_xlabel(f"reference {label}")
        ax.set_ylabel(f"predicted {label}")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=120)
    plt.close(fig)


def learning_curves(history: list[dict[str, float]], path: str | os.PathLike[str]) -> None:
    """Training loss and validation errors against epoch, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        return
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    panels = (
        ("train_loss", "training loss", axes[0]),
        ("energy_rmse_meV_per_atom", "validation energy RMSE (meV/atom)", axes[1]),
        ("force_rmse_meV_per_A", "validation force RMSE (meV/Å)", axes[2]),
    )
    for key, label, ax in panels:
        values = [h[key] for h in history]
        ax.plot(epochs, values)
        # a negative log-likelihood can go below zero; a log axis only where every value is positive
        if min(values) > 0.0:
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=110)
    plt.close(fig)


def write_json(data: dict[str, object], path: str | os.PathLike[str]) -> None:
    """Write ``data`` as indented JSON."""
    with open(os.fspath(path), "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
