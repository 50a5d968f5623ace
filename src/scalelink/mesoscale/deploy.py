"""A learned free energy as a ScaleLink model file (kind ``free_energy``).

:func:`save_free_energy` writes a :class:`~scalelink.mesoscale.free_energy.RedlichKisterFit` as one
model file of :mod:`scalelink.bridge`: a TorchScript module that evaluates ``f(c, T)`` and
``∂f/∂c`` for batches of points in float64, and the closed form itself (coefficients, fitted
composition and temperature ranges, units eV/atom and K) in the metadata.
:func:`load_free_energy` reads it back and checks that the module and the closed form agree; the
Cahn–Hilliard solver then writes the closed form ``fit.at(T)`` as a UFL expression, and other
consumers (C++, scripts without this package) can call the module.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Tuple

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from scalelink.bridge.errors import DataError, ModelFileError
from scalelink.bridge.model_file import FreeEnergyInfo, ModelMetadata, load_model, package_versions, save_model

from .free_energy import RedlichKister, RedlichKisterFit

__all__ = ["DeployedFreeEnergy", "RedlichKisterModule", "load_free_energy", "save_free_energy"]

_AGREEMENT = 1e-12
"""Largest difference (eV/atom, relative above 1 eV/atom) between the module and the closed form."""


class RedlichKisterModule(torch.nn.Module):
    """``(c, T) → (f, ∂f/∂c)`` of a temperature-dependent Redlich–Kister free energy, in float64.

    .. math:: f = c\\,Δg + k_B T\\,[c \\ln c + (1-c) \\ln(1-c)] + c(1-c) \\sum_k L_k u^k, \\quad u = 1 - 2c,

    .. math:: ∂f/∂c = Δg + k_B T \\ln\\frac{c}{1-c} + \\sum_k L_k\\,[u^{k+1} - 2k\\,c(1-c)\\,u^{k-1}],

    with ``Δg = a + bT`` and ``L_k = a_k + b_k T``.

    Args:
        reference: ``(a, b)`` of ``Δg`` (eV/atom, eV/atom/K).
        interaction: ``[(a_k, b_k), …]`` of the ``L_k``.
        boltzmann: ``k_B`` in eV/K.

    Shapes:
        composition ``(n,)`` mole fractions of the second species in (0, 1), temperature
        ``(n,)`` in K → ``f`` ``(n,)`` and ``∂f/∂c`` ``(n,)``, eV/atom.
    """

    def __init__(self, reference: Sequence[float], interaction: Sequence[Sequence[float]], boltzmann: float) -> None:
        super().__init__()
        self.register_buffer("reference", torch.tensor(list(reference), dtype=torch.float64))
        self.register_buffer("interaction", torch.tensor([list(p) for p in interaction], dtype=torch.float64))
        self.boltzmann = float(boltzmann)

    def forward(self, composition: Tensor, temperature: Tensor) -> Tuple[Tensor, Tensor]:
        c, t = composition, temperature
        u = 1.0 - 2.0 * c
        mixed = c * (1.0 - c)
        excess, d_excess = torch.zeros_like(c), torch.zeros_like(c)
        power, previous = torch.ones_like(c), torch.zeros_like(c)  # u^k and u^(k-1)
        for k in range(self.interaction.shape[0]):
            l_k = self.interaction[k, 0] + self.interaction[k, 1] * t
            excess = excess + l_k * power
            d_excess = d_excess + l_k * (u * power - 2.0 * k * mixed * previous)
            previous = power
            power = power * u
        kt = self.boltzmann * t
        delta_g = self.reference[0] + self.reference[1] * t
        log_c, log_1mc = torch.log(c), torch.log(1.0 - c)
        density = delta_g * c + kt * (c * log_c + (1.0 - c) * log_1mc) + mixed * excess
        return density, delta_g + kt * (log_c - log_1mc) + d_excess


def _info_of(fit: RedlichKisterFit) -> FreeEnergyInfo:
    return FreeEnergyInfo(
        form="redlich_kister", energy_unit="eV/atom", temperature_unit="K", boltzmann=fit.boltzmann,
        reference=list(fit.reference), interaction=[list(p) for p in fit.interaction],
        composition_range=list(fit.composition_range), temperature_range=list(fit.temperature_range),
        rmse=fit.rmse, max_error=fit.max_error)


def _fit_of(info: FreeEnergyInfo) -> RedlichKisterFit:
    lo, hi = info.reference
    return RedlichKisterFit(
        reference=(lo, hi), interaction=[(a, b) for a, b in info.interaction],
        composition_range=(info.composition_range[0], info.composition_range[1]),
        temperature_range=(info.temperature_range[0], info.temperature_range[1]),
        rmse=info.rmse, max_error=info.max_error, boltzmann=info.boltzmann)


def _check_agreement(module: torch.nn.Module, fit: RedlichKisterFit, path: str) -> None:
    """The module against the numpy closed form on 7 compositions × 3 temperatures of the ranges."""
    c = np.linspace(*fit.composition_range, 7)
    for t in sorted({fit.temperature_range[0], float(np.mean(fit.temperature_range)), fit.temperature_range[1]}):
        closed = fit.at(t)
        expected = np.stack([closed.density(c), closed.chemical_potential(c)])
        with torch.no_grad():
            got = np.stack([x.numpy() for x in module(torch.from_numpy(c), torch.full_like(torch.from_numpy(c), t))])
        bad = np.abs(got - expected) > _AGREEMENT * np.maximum(1.0, np.abs(expected))
        if np.any(bad) or not np.all(np.isfinite(got)):
            i = int(np.argmax(bad.any(axis=0) | ~np.isfinite(got).all(axis=0)))
            raise ModelFileError(
                f"{path!r}: its module and the closed form in its metadata disagree at c = {c[i]:.6g}, T = {t:g} K: "
                f"module f = {got[0, i]!r}, ∂f/∂c = {got[1, i]!r}; closed form {expected[0, i]!r}, {expected[1, i]!r} "
                "(eV/atom). The file was edited or corrupted; deploy the fit again with save_free_energy")


def save_free_energy(fit: RedlichKisterFit, path: str | os.PathLike[str], *, species: Sequence[str]) -> None:
    """Write ``fit`` as a model file of kind ``free_energy``.

    Args:
        fit: the fitted ``f(c, T)`` in eV/atom and K (``boltzmann`` the physical ``k_B``).
        path: destination file; its folder must exist.
        species: the two components ``(A, B)``; ``c`` is the mole fraction of ``B``.

    Raises:
        ModelFileError: the fit is not in eV/atom and K, its ranges are not inside (0, 1) and
            positive temperatures, ``species`` is not two distinct names, or the folder is missing.
    """
    path = os.fspath(path)
    metadata = ModelMetadata.for_free_energy(_info_of(fit), species=species, versions=package_versions())
    module = RedlichKisterModule(fit.reference, fit.interaction, fit.boltzmann)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
        scripted = torch.jit.script(module)
    _check_agreement(scripted, fit, path)
    save_model(scripted, path, metadata)


@dataclass(frozen=True)
class DeployedFreeEnergy:
    """A free energy read from a model file.

    Attributes:
        path: the file.
        module: the scripted ``(c, T) → (f, ∂f/∂c)`` (see :class:`RedlichKisterModule`).
        metadata: the file's metadata (``metadata.free_energy`` holds the closed form).
        fit: the closed form rebuilt from the metadata, equal to the fit that was saved.
    """

    path: str
    module: torch.jit.ScriptModule
    metadata: ModelMetadata
    fit: RedlichKisterFit

    @property
    def species(self) -> list[str]:
        """The components ``[A, B]``; ``c`` is the fraction of ``B``."""
        return list(self.metadata.species)

    def at(self, temperature: float) -> RedlichKister:
        """The closed form at ``temperature`` (K), for UFL; raises outside the fitted temperatures."""
        return self.fit.at(temperature)

    def evaluate(self, composition: npt.ArrayLike, temperature: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """``f`` and ``∂f/∂c`` (eV/atom) from the file's module at broadcast ``composition`` and
        ``temperature`` (K), any shape.

        Raises:
            DataError: a composition or temperature outside the ranges the model was fitted on.
        """
        c, t = np.broadcast_arrays(np.asarray(composition, dtype=np.float64), np.asarray(temperature, dtype=np.float64))
        for name, values, (lo, hi), fix in (
                ("compositions", c, self.fit.composition_range,
                 "sample the Monte Carlo over a wider range of chemical potentials and fit again"),
                ("temperatures", t, self.fit.temperature_range, "run the Monte Carlo at these temperatures")):
            if values.size and not (values.min() >= lo - 1e-9 and values.max() <= hi + 1e-9):
                raise DataError(
                    f"{self.path!r}: {name} [{values.min():.6g}, {values.max():.6g}] leave the range "
                    f"[{lo:.6g}, {hi:.6g}] the free energy was fitted on; evaluate inside it, or {fix}")
        with torch.no_grad():
            density, potential = self.module(torch.from_numpy(c.ravel().copy()), torch.from_numpy(t.ravel().copy()))
        return density.numpy().reshape(c.shape), potential.numpy().reshape(c.shape)


def load_free_energy(path: str | os.PathLike[str]) -> DeployedFreeEnergy:
    """Read a model file of kind ``free_energy`` and check its module against its closed form.

    Raises:
        ModelFileError: the file is missing or unreadable, is of another kind, its metadata is
            incomplete or out of range, or its module and closed form disagree (by more than
            1e-12 eV/atom on 21 points of the fitted ranges).
    """
    path = os.fspath(path)
    module, metadata = load_model(path)
    if metadata.kind != "free_energy" or metadata.free_energy is None:
        raise ModelFileError(
            f"{path!r} holds a model of kind {metadata.kind!r}, not a free energy; write one with "
            "scalelink.mesoscale.deploy.save_free_energy")
    fit = _fit_of(metadata.free_energy)
    _check_agreement(module, fit, path)
    return DeployedFreeEnergy(path=path, module=module, metadata=metadata, fit=fit)
