"""Errors of a deployed model file on labelled data, through the ASE calculator."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from scalelink.bridge.ase import ScaleLinkCalculator

from .data import labels_of, read_structures
from .metrics import Collected, ErrorMetrics, error_metrics

__all__ = ["evaluate_model_file"]


def evaluate_model_file(
    model: str | os.PathLike[str], data: Sequence[str | os.PathLike[str]], *, device: str = "cpu"
) -> tuple[ErrorMetrics, Collected]:
    """Energy-per-atom, force and stress errors of ``model`` on every frame of ``data``.

    The deployed file is run exactly as users run it (through :class:`ScaleLinkCalculator`),
    so these numbers describe the artefact, not the training checkpoint. For a committee,
    ``Collected.force_deviation`` holds each atom's predicted force deviation (eV/Å).
    """
    calc = ScaleLinkCalculator(model, device=device)
    committee = calc.metadata.committee_size > 1
    collected = Collected()
    for k, atoms in enumerate(read_structures(data)):
        labels = labels_of(atoms, f"frame {k}")
        atoms = atoms.copy()
        atoms.calc = calc
        n = len(atoms)
        collected.energy_per_atom_pred.append(np.array([atoms.get_potential_energy() / n]))
        collected.energy_per_atom_ref.append(np.array([labels.energy / n]))
        collected.forces_pred.append(atoms.get_forces())
        collected.forces_ref.append(labels.forces)
        if committee:
            collected.force_deviation.append(np.asarray(calc.results["forces_deviation"], dtype=np.float64))
        if labels.stress is not None and atoms.pbc.all():
            s = labels.stress
            collected.stress_pred.append(atoms.get_stress()[None, :])
            collected.stress_ref.append(np.array([[s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]]]))
    return error_metrics(collected), collected
