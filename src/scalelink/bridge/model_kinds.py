"""What each model kind other than a potential stores in the file besides the common keys.

One frozen dataclass per kind, each the JSON object under its metadata key
(:data:`~scalelink.bridge.keys.CONSTITUTIVE`, :data:`~scalelink.bridge.keys.FREE_ENERGY`,
:data:`~scalelink.bridge.keys.GENERATOR`); :class:`scalelink.bridge.model_file.ModelMetadata`
holds the one that matches its ``kind``. Each checks its values when built and parses its
object strictly (missing or unknown keys are refused).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from . import keys
from .errors import ModelFileError
from .units import BOLTZMANN_EV_PER_K

__all__ = ["ConstitutiveInfo", "FreeEnergyInfo", "GeneratorInfo"]

_STRAIN_SIZES = (3, 6)

FREE_ENERGY_FORMS = ("redlich_kister",)
"""Closed forms a free-energy file may declare."""

_FREE_ENERGY_UNITS = {("eV/atom", "K"): BOLTZMANN_EV_PER_K}
"""(energy unit, temperature unit) -> Boltzmann's constant in those units."""


def _exact_object(cls: type, raw: Any, key: str, source: str) -> dict[str, Any]:
    """``raw`` when it is an object with exactly the fields of ``cls``; else a ModelFileError."""
    if not isinstance(raw, dict):
        raise ModelFileError(f"{source}: metadata '{key}' must be an object, got {raw!r}")
    names = [f.name for f in fields(cls)]
    missing = [n for n in names if n not in raw]
    unknown = sorted(set(raw) - set(names))
    if missing or unknown:
        raise ModelFileError(
            f"{source}: metadata '{key}' lacks {missing} / has unknown keys {unknown}; expected exactly "
            f"{names}; re-export the model"
        )
    return raw


def _finite(name: str, values: list[float]) -> None:
    if not all(math.isfinite(v) for v in values):
        raise ModelFileError(f"free_energy {name} must be finite numbers, got {values}")


@dataclass(frozen=True)
class ConstitutiveInfo:
    """What a consumer of a constitutive (strain → stress) model needs, stored in the file.

    The deployed module applies the scaling itself; it is recorded so that users can see the
    range the model was trained on.

    Attributes:
        strain_size: length ``m`` of the Mandel vectors: 3 (2D plane strain) or 6 (3D).
        stress_unit: unit of the stress and tangent the model returns (e.g. ``"GPa"``).
        architecture: a summary of the network, e.g. ``{"type": "mlp", "width": 64,
            "depth": 3, "activation": "silu"}``.
        strain_mean: ``(m,)`` strain subtracted before the network (input normalisation).
        strain_scale: ``(m,)`` positive divisors of the centred strain.
        stress_mean: ``(m,)`` added to the network's scaled output (stress unit).
        stress_scale: ``(m,)`` positive factors of the network's output (stress unit).
        strain_lower: ``(m,)`` smallest strain component seen in training.
        strain_upper: ``(m,)`` largest strain component seen in training.
    """

    strain_size: int
    stress_unit: str
    architecture: dict[str, Any]
    strain_mean: list[float]
    strain_scale: list[float]
    stress_mean: list[float]
    stress_scale: list[float]
    strain_lower: list[float]
    strain_upper: list[float]

    def __post_init__(self) -> None:
        if self.strain_size not in _STRAIN_SIZES:
            raise ModelFileError(
                f"constitutive strain_size {self.strain_size!r} is not one of {_STRAIN_SIZES} "
                "(3: 2D plane strain, 6: 3D Mandel vectors)"
            )
        if not self.stress_unit:
            raise ModelFileError("a constitutive model needs a stress_unit, got an empty string")
        for name in ("strain_mean", "strain_scale", "stress_mean", "stress_scale", "strain_lower", "strain_upper"):
            values = getattr(self, name)
            if len(values) != self.strain_size:
                raise ModelFileError(
                    f"constitutive {name} has {len(values)} entries, expected strain_size = "
                    f"{self.strain_size}; re-export the model"
                )
        for name in ("strain_scale", "stress_scale"):
            if not all(v > 0.0 for v in getattr(self, name)):
                raise ModelFileError(f"constitutive {name} must be positive, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, raw: Any, source: str) -> ConstitutiveInfo:
        """Parse the ``constitutive`` object of the metadata; unknown or missing keys are refused."""
        raw = _exact_object(cls, raw, keys.CONSTITUTIVE, source)
        names = [f.name for f in fields(cls)]
        try:
            vectors = {n: [float(v) for v in raw[n]] for n in names[3:]}
            return cls(
                strain_size=int(raw["strain_size"]),
                stress_unit=str(raw["stress_unit"]),
                architecture=dict(raw["architecture"]),
                **vectors,
            )
        except (TypeError, ValueError) as exc:
            raise ModelFileError(
                f"{source}: metadata '{keys.CONSTITUTIVE}' has a value of the wrong type ({exc}); "
                "re-export the model"
            ) from None
        except ModelFileError as exc:
            raise ModelFileError(f"{source}: {exc}") from None


@dataclass(frozen=True)
class FreeEnergyInfo:
    """The closed form of a binary alloy's homogeneous free energy ``f(c, T)``, stored in the file.

    A consumer can rebuild ``f`` from these numbers alone (a Cahn–Hilliard solver writes it as a
    UFL expression); the module in the file evaluates the same function and ``∂f/∂c`` for
    batches of points. The form ``redlich_kister`` is

    .. math:: f(c, T) = c\\,Δg(T) + k_B T\\,[c \\ln c + (1-c)\\ln(1-c)]
              + c(1-c) \\sum_k L_k(T) (1 - 2c)^k ,

    with ``Δg = reference[0] + reference[1]·T``, ``L_k = interaction[k][0] + interaction[k][1]·T``
    and ``c`` the mole fraction of the model's second species.

    Attributes:
        form: the closed form, ``"redlich_kister"``.
        energy_unit: unit of ``f``, ``∂f/∂c`` and the coefficients: ``"eV/atom"``.
        temperature_unit: ``"K"``.
        boltzmann: ``k_B`` in energy unit per temperature unit.
        reference: ``(a, b)`` of ``Δg = g_B − g_A = a + bT``.
        interaction: ``[(a_k, b_k), …]`` of ``L_k = a_k + b_k T``, at least one term.
        composition_range: ``(c_min, c_max)`` the model was fitted on, inside (0, 1).
        temperature_range: ``(T_min, T_max)`` the model was fitted on (equal for one temperature).
        rmse: root-mean-square error of the fitted ``∂f/∂c`` on its data (energy unit).
        max_error: largest error of the fitted ``∂f/∂c`` on its data (energy unit).
    """

    form: str
    energy_unit: str
    temperature_unit: str
    boltzmann: float
    reference: list[float]
    interaction: list[list[float]]
    composition_range: list[float]
    temperature_range: list[float]
    rmse: float
    max_error: float

    def __post_init__(self) -> None:
        if self.form not in FREE_ENERGY_FORMS:
            raise ModelFileError(f"free_energy form {self.form!r} is not one of {FREE_ENERGY_FORMS}")
        units = (self.energy_unit, self.temperature_unit)
        if units not in _FREE_ENERGY_UNITS:
            raise ModelFileError(
                f"free_energy units (energy, temperature) {units} are not one of {sorted(_FREE_ENERGY_UNITS)}; "
                "convert the coefficients to eV/atom and K"
            )
        expected = _FREE_ENERGY_UNITS[units]
        if not abs(self.boltzmann - expected) <= 1e-9 * expected:
            raise ModelFileError(
                f"free_energy boltzmann {self.boltzmann!r} is not k_B = {expected!r} in {units[0]} per {units[1]}; "
                "fit the model with the physical constant"
            )
        if len(self.reference) != 2 or not self.interaction or any(len(t) != 2 for t in self.interaction):
            raise ModelFileError(
                f"free_energy reference {self.reference!r} and interaction {self.interaction!r} must be pairs "
                "(a, b) of a + bT, at least one interaction term"
            )
        _finite("reference", self.reference)
        _finite("interaction", [v for pair in self.interaction for v in pair])
        lo, hi = self.composition_range if len(self.composition_range) == 2 else (math.nan, math.nan)
        if not 0.0 < lo < hi < 1.0:
            raise ModelFileError(
                f"free_energy composition_range {self.composition_range!r} must be (c_min, c_max) with "
                "0 < c_min < c_max < 1"
            )
        t_lo, t_hi = self.temperature_range if len(self.temperature_range) == 2 else (math.nan, math.nan)
        if not 0.0 < t_lo <= t_hi < math.inf:
            raise ModelFileError(
                f"free_energy temperature_range {self.temperature_range!r} must be (T_min, T_max) with "
                "0 < T_min <= T_max"
            )
        if not (0.0 <= self.rmse <= self.max_error < math.inf):
            raise ModelFileError(
                f"free_energy rmse {self.rmse!r} and max_error {self.max_error!r} must satisfy "
                "0 <= rmse <= max_error"
            )

    @classmethod
    def from_dict(cls, raw: Any, source: str) -> FreeEnergyInfo:
        """Parse the ``free_energy`` object of the metadata; unknown or missing keys are refused."""
        raw = _exact_object(cls, raw, keys.FREE_ENERGY, source)
        try:
            return cls(
                form=str(raw["form"]),
                energy_unit=str(raw["energy_unit"]),
                temperature_unit=str(raw["temperature_unit"]),
                boltzmann=float(raw["boltzmann"]),
                reference=[float(v) for v in raw["reference"]],
                interaction=[[float(v) for v in pair] for pair in raw["interaction"]],
                composition_range=[float(v) for v in raw["composition_range"]],
                temperature_range=[float(v) for v in raw["temperature_range"]],
                rmse=float(raw["rmse"]),
                max_error=float(raw["max_error"]),
            )
        except (TypeError, ValueError) as exc:
            raise ModelFileError(
                f"{source}: metadata '{keys.FREE_ENERGY}' has a value of the wrong type ({exc}); "
                "re-deploy the free energy"
            ) from None
        except ModelFileError as exc:
            raise ModelFileError(f"{source}: {exc}; re-deploy the free energy") from None


@dataclass(frozen=True)
class GeneratorInfo:
    """What a consumer of an image generator (latent vectors → two-phase images) needs.

    The module maps standard-normal latent vectors ``(n, latent_size)`` to phase-1
    probabilities ``(n, image_size, image_size)``; an image is the map cut at ``threshold``.

    Attributes:
        latent_size: length of the latent vectors.
        image_size: ``N`` of the ``N × N`` periodic images.
        threshold: the cut of the probability maps, in (0, 1).
        volume_fraction: the training images' mean fraction of phase 1, in [0, 1].
        architecture: a summary of the network, e.g. ``{"type": "conv_decoder",
            "channels": 16, "padding": "circular"}``.
        fraction_map: ``(offset, scale)`` of the per-image cut, ``scale > 0``; ``None`` (files
            written without it) cuts every map at ``threshold``.
    """

    latent_size: int
    image_size: int
    threshold: float
    volume_fraction: float
    architecture: dict[str, Any]
    fraction_map: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.latent_size < 1 or self.image_size < 2:
            raise ModelFileError(
                f"generator latent_size {self.latent_size!r} and image_size {self.image_size!r} must be at "
                "least 1 and 2"
            )
        if not 0.0 < self.threshold < 1.0:
            raise ModelFileError(f"generator threshold {self.threshold!r} must lie in (0, 1)")
        if not 0.0 <= self.volume_fraction <= 1.0:
            raise ModelFileError(f"generator volume_fraction {self.volume_fraction!r} must lie in [0, 1]")
        if self.fraction_map is not None and not (
                len(self.fraction_map) == 2 and all(math.isfinite(v) for v in self.fraction_map)
                and self.fraction_map[1] > 0.0):
            raise ModelFileError(
                f"generator fraction_map {self.fraction_map!r} must be (offset, scale) with finite values and "
                "scale > 0; calibrate it with scalelink.microstructure.calibrate_fraction_map")

    @classmethod
    def from_dict(cls, raw: Any, source: str) -> GeneratorInfo:
        """Parse the ``generator`` object of the metadata; unknown or missing keys are refused
        (``fraction_map`` may be absent: files written before it existed)."""
        if isinstance(raw, dict) and "fraction_map" not in raw:
            raw = {**raw, "fraction_map": None}
        raw = _exact_object(cls, raw, keys.GENERATOR, source)
        try:
            fraction_map = raw["fraction_map"]
            return cls(
                latent_size=int(raw["latent_size"]),
                image_size=int(raw["image_size"]),
                threshold=float(raw["threshold"]),
                volume_fraction=float(raw["volume_fraction"]),
                architecture=dict(raw["architecture"]),
                fraction_map=None if fraction_map is None else tuple(float(v) for v in fraction_map),
            )
        except (TypeError, ValueError) as exc:
            raise ModelFileError(
                f"{source}: metadata '{keys.GENERATOR}' has a value of the wrong type ({exc}); "
                "re-deploy the generator"
            ) from None
        except ModelFileError as exc:
            raise ModelFileError(f"{source}: {exc}; re-deploy the generator") from None
