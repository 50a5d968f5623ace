"""Constitutive surrogates: a network from Mandel strain to stress, and its deployment.

:class:`ConstitutiveMLP` maps a strain ``ε`` (Mandel, ``m = 3`` or ``6`` components) to a stress
``σ`` through input and output normalisation::

    x = (ε − μ_ε) / s_ε,   h_0 = x,   z_l = W_l h_l + b_l,   h_{l+1} = a(z_l),
    σ = μ_σ + s_σ ⊙ (W_L h_L + b_L)

with a smooth activation ``a`` (SiLU, softplus or tanh), so that the tangent ``∂σ/∂ε`` is
continuous. Training fits stress and tangent (a Sobolev loss, see
:mod:`scalelink.surrogates.surrogate_trainer`).

:class:`DeployedConstitutive` is the TorchScript form written to a model file of kind
``constitutive``. Its forward call returns stress and tangent together in one pass: the
Jacobian is carried forward through the layers with the hidden values,
``J_{l+1} = diag(a'(z_l)) W_l J_l`` (``J_0 = diag(1/s_ε)``), as one matrix product per layer
for all ``m`` directions of all points, instead of ``m`` reverse-mode sweeps.

The ``energy`` variant is a hyperelastic surrogate: the network is a scalar energy ``ψ(x)`` and
``σ = μ_σ + c ∇_x ψ / s_ε`` (``c`` one energy scale), so the tangent ``c diag(1/s_ε) ∇²ψ diag(1/s_ε)``
is symmetric by construction. :class:`DeployedEnergyConstitutive` gets gradient and Hessian in
one pass: forward tangents of the layers, then a reverse sweep for ``∇ψ`` differentiated along
all ``m`` directions at once.
"""

from __future__ import annotations

import copy
import os
import warnings
from typing import List, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scalelink.bridge.errors import ConfigError
from scalelink.bridge.model_file import ConstitutiveInfo, ModelMetadata, check_finite_weights, package_versions, save_model
from scalelink.bridge.samples import ConstitutiveSamples, load_samples

__all__ = [
    "ACTIVATIONS",
    "ConstitutiveMLP",
    "ConstitutiveSamples",
    "DeployedConstitutive",
    "DeployedEnergyConstitutive",
    "VARIANTS",
    "export_constitutive",
    "load_samples",
]

ACTIVATIONS = ("silu", "softplus", "tanh")
VARIANTS = ("stress", "energy")
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _activation(z: Tensor, kind: str) -> Tuple[Tensor, Tensor]:
    """``(a(z), a'(z))`` of the activation called ``kind``, sharing the costly part."""
    if kind == "silu":
        s = torch.sigmoid(z)
        return z * s, s * (1.0 + z * (1.0 - s))
    if kind == "softplus":
        return F.softplus(z), torch.sigmoid(z)
    t = torch.tanh(z)
    return t, 1.0 - t * t


def _activation2(z: Tensor, kind: str) -> Tuple[Tensor, Tensor, Tensor]:
    """``(a(z), a'(z), a''(z))`` of the activation called ``kind``."""
    if kind == "silu":
        s = torch.sigmoid(z)
        return z * s, s * (1.0 + z * (1.0 - s)), s * (1.0 - s) * (2.0 + z * (1.0 - 2.0 * s))
    if kind == "softplus":
        s = torch.sigmoid(z)
        return F.softplus(z), s, s * (1.0 - s)
    t = torch.tanh(z)
    slope = 1.0 - t * t
    return t, slope, -2.0 * t * slope


class ConstitutiveMLP(nn.Module):
    """Strain → stress multilayer perceptron with built-in normalisation (the training form).

    Args:
        strain_size: ``m``, 3 (2D plane strain) or 6 (3D).
        width: neurons per hidden layer.
        depth: number of hidden layers (≥ 1).
        activation: one of :data:`ACTIVATIONS`.
        stress_unit: unit of the stresses the network is trained on.
        variant: ``"stress"`` (the network outputs the stress) or ``"energy"`` (it outputs a
            scalar energy whose strain gradient is the stress).

    Shapes:
        ``forward(strain (n, m)) -> stress (n, m)``; the normalisation buffers ``strain_mean``,
        ``strain_scale``, ``stress_mean``, ``stress_scale`` and the training range
        ``strain_lower``, ``strain_upper`` are ``(m,)``.
    """

    def __init__(
        self, strain_size: int, *, width: int = 64, depth: int = 3, activation: str = "silu",
        stress_unit: str = "GPa", variant: str = "stress",
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ConfigError(f"variant {variant!r} is not one of {VARIANTS}")
        if strain_size not in (3, 6):
            raise ConfigError(f"strain_size must be 3 (2D plane strain) or 6 (3D), got {strain_size!r}")
        if width < 1 or depth < 1:
            raise ConfigError(f"width and depth must be at least 1, got width={width!r}, depth={depth!r}")
        if activation not in ACTIVATIONS:
            raise ConfigError(
                f"activation {activation!r} is not one of {ACTIVATIONS}; the tangent needs a smooth one"
            )
        self.strain_size, self.width, self.depth = strain_size, width, depth
        self.activation, self.stress_unit, self.variant = activation, stress_unit, variant
        sizes = [strain_size] + [width] * depth + [strain_size if variant == "stress" else 1]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        for name, value in (("strain_mean", 0.0), ("strain_scale", 1.0), ("stress_mean", 0.0),
                            ("stress_scale", 1.0), ("strain_lower", 0.0), ("strain_upper", 0.0)):
            self.register_buffer(name, torch.full((strain_size,), value))
        self.register_buffer("energy_scale", torch.ones(1))

    def architecture(self) -> dict[str, object]:
        """Summary stored in a model file's metadata."""
        out: dict[str, object] = {"type": "mlp", "width": self.width, "depth": self.depth,
                                  "activation": self.activation, "variant": self.variant}
        if self.variant == "energy":
            out["energy_scale"] = float(self.energy_scale)
        return out

    def set_normalisation(self, strain: np.ndarray, stress: np.ndarray) -> None:
        """Centre and scale inputs and outputs by the statistics of training data ``(n, m)``.

        A component that does not vary (e.g. a shear strain never sampled) gets a scale of
        ``1e-6`` times the largest one instead of zero.
        """
        def scale(a: np.ndarray) -> np.ndarray:
            std = a.std(axis=0)
            return np.maximum(std, 1e-6 * max(float(std.max()), 1e-300))

        for name, value in (("strain_mean", strain.mean(axis=0)), ("strain_scale", scale(strain)),
                            ("stress_mean", stress.mean(axis=0)), ("stress_scale", scale(stress)),
                            ("strain_lower", strain.min(axis=0)), ("strain_upper", strain.max(axis=0))):
            buffer = getattr(self, name)
            buffer.copy_(torch.as_tensor(value, dtype=buffer.dtype))
        # energy variant: one scale c with c / s_ε,i ≈ s_σ,i on average (a gradient allows no per-component one)
        self.energy_scale.fill_(float(np.mean(scale(stress) * scale(strain))))

    def normalised(self, x: Tensor) -> Tensor:
        """The network between the normalisations: scaled strain ``(n, m)`` → scaled stress
        ``(n, m)``, or the energy ``(n, 1)`` of the energy variant."""
        h = x
        for layer in self.layers[:-1]:
            h = _activation(layer(h), self.activation)[0]
        return self.layers[-1](h)

    def forward(self, strain: Tensor) -> Tensor:
        x = (strain - self.strain_mean) / self.strain_scale
        if self.variant == "stress":
            return self.stress_mean + self.stress_scale * self.normalised(x)
        with torch.enable_grad():
            if not x.requires_grad:
                x = x.detach().requires_grad_(True)
            (gradient,) = torch.autograd.grad(self.normalised(x).sum(), x, create_graph=True)
        return self.stress_mean + self.energy_scale * gradient / self.strain_scale


class DeployedConstitutive(nn.Module):
    """Stress and tangent of a :class:`ConstitutiveMLP` in one forward-mode pass (TorchScript).

    The output normalisation is folded into the last layer; the input normalisation stays
    explicit so that float32 weights do not lose digits to a cancellation in the first bias.

    Shapes:
        ``forward(strain (n, m) float64) -> (stress (n, m), tangent (n, m, m))``, both float64,
        ``tangent[k, i, j] = ∂σ_i/∂ε_j`` of point ``k``; computed in the weights' precision, or
        the tangent alone in float32 with ``tangent_float32``.

    Why a float32 tangent: the forward-mode Jacobian is ``m`` times the work of the stress, and
    in a Newton solve it only steers the iteration, while the stress sets the residual, hence
    the converged answer. A tangent with relative error 1e-7 keeps Newton quadratic down to that
    level, so float64 stress with a float32 tangent converges to the same tight tolerances as
    float64 throughout (a float32 stress cannot go below about 1e-7 relative residual) at
    about twice the speed.
    """

    __constants__ = ["activation", "tangent_float32"]

    def __init__(self, mlp: ConstitutiveMLP, dtype: torch.dtype, tangent_float32: bool = False) -> None:
        super().__init__()
        mlp = copy.deepcopy(mlp).cpu().to(torch.float64).eval()
        self.activation = mlp.activation
        self.tangent_float32 = bool(tangent_float32)
        layers = list(mlp.layers)
        with torch.no_grad():
            inv_scale = 1.0 / mlp.strain_scale
            self.first = copy.deepcopy(layers[0])
            self.hidden = nn.ModuleList(copy.deepcopy(layer) for layer in layers[1:-1])
            self.last = copy.deepcopy(layers[-1])
            self.last.weight.copy_(mlp.stress_scale[:, None] * layers[-1].weight)
            self.last.bias.copy_(mlp.stress_scale * layers[-1].bias + mlp.stress_mean)
            self.register_buffer("strain_mean", mlp.strain_mean.clone())
            self.register_buffer("inv_scale", inv_scale)
            # J_1 rows: ∂h_1/∂ε_j = a'(z_0) ⊙ W_0[:, j] / s_ε,j, stored (m, width)
            self.register_buffer("first_tangent", (layers[0].weight * inv_scale[None, :]).t().contiguous())
        self.to(dtype)
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, strain: Tensor) -> Tuple[Tensor, Tensor]:
        x = (strain.to(self.inv_scale.dtype) - self.strain_mean) * self.inv_scale
        h, slope = _activation(F.linear(x, self.first.weight, self.first.bias), self.activation)
        n = h.shape[0]
        m = self.first_tangent.shape[0]
        tdt = torch.float32 if self.tangent_float32 else h.dtype
        # tangent rows t[k, j, :] = ∂h/∂ε_j at point k; one GEMM over all n·m rows per layer
        t = slope.to(tdt).unsqueeze(1) * self.first_tangent.to(tdt).unsqueeze(0)
        for layer in self.hidden:
            z = F.linear(h, layer.weight, layer.bias)
            h, slope = _activation(z, self.activation)
            t = torch.mm(t.reshape(n * m, -1), layer.weight.to(tdt).t()).view(n, m, -1) * slope.to(tdt).unsqueeze(1)
        stress = F.linear(h, self.last.weight, self.last.bias)
        tangent = torch.mm(t.reshape(n * m, -1), self.last.weight.to(tdt).t()).view(n, m, m).transpose(1, 2)
        return stress.to(torch.float64), tangent.to(torch.float64)


class DeployedEnergyConstitutive(nn.Module):
    """Stress and symmetric tangent of an energy-variant :class:`ConstitutiveMLP` in one pass.

    Forward: hidden values and their tangents ``∂z_l/∂x`` for the ``m`` directions. Reverse:
    ``g_l = W_lᵀ (a'(z_l) ⊙ g_{l+1})`` for ``∇ψ``, and along each direction its derivative
    ``dg_l = W_lᵀ (a''(z_l) ⊙ ∂z_l ⊙ g_{l+1} + a'(z_l) ⊙ dg_{l+1})``, the Hessian of ``ψ``.

    Shapes:
        ``forward(strain (n, m) float64) -> (stress (n, m), tangent (n, m, m))``, both float64.
    """

    __constants__ = ["activation"]

    def __init__(self, mlp: ConstitutiveMLP, dtype: torch.dtype) -> None:
        super().__init__()
        mlp = copy.deepcopy(mlp).cpu().to(torch.float64).eval()
        self.activation = mlp.activation
        layers = list(mlp.layers)
        with torch.no_grad():
            self.hidden = nn.ModuleList(copy.deepcopy(layer) for layer in layers[:-1])
            self.register_buffer("readout", layers[-1].weight[0].clone())
            self.register_buffer("strain_mean", mlp.strain_mean.clone())
            self.register_buffer("inv_scale", 1.0 / mlp.strain_scale)
            self.register_buffer("stress_mean", mlp.stress_mean.clone())
            self.register_buffer("out_scale", mlp.energy_scale / mlp.strain_scale)
        self.to(dtype)
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, strain: Tensor) -> Tuple[Tensor, Tensor]:
        x = (strain.to(self.inv_scale.dtype) - self.strain_mean) * self.inv_scale
        n, m = x.shape[0], x.shape[1]
        weights: List[Tensor] = []
        slopes: List[Tensor] = []
        curvatures: List[Tensor] = []
        directions: List[Tensor] = []  # ∂z_l/∂x_j, (n or 1, m, width)
        h = x
        th = x  # ∂h/∂x_j, (n, m, width); set by the first layer
        for i, layer in enumerate(self.hidden):
            z = F.linear(h, layer.weight, layer.bias)
            if i == 0:
                tz = layer.weight.t().unsqueeze(0)
            else:
                tz = torch.mm(th.reshape(n * m, -1), layer.weight.t()).view(n, m, -1)
            h, slope, curvature = _activation2(z, self.activation)
            th = slope.unsqueeze(1) * tz
            weights.append(layer.weight)
            slopes.append(slope)
            curvatures.append(curvature)
            directions.append(tz)
        g = self.readout.unsqueeze(0).expand(n, -1)
        dg = torch.zeros((n, m, g.shape[1]), dtype=x.dtype, device=x.device)
        for i in range(len(weights) - 1, -1, -1):
            ddelta = curvatures[i].unsqueeze(1) * directions[i] * g.unsqueeze(1) + slopes[i].unsqueeze(1) * dg
            g = torch.mm(slopes[i] * g, weights[i])
            dg = torch.mm(ddelta.reshape(n * m, -1), weights[i]).view(n, m, -1)
        stress = self.stress_mean + self.out_scale * g
        tangent = self.out_scale.view(1, -1, 1) * dg * self.inv_scale.view(1, 1, -1)
        return stress.to(torch.float64), tangent.to(torch.float64)


def export_constitutive(
    mlp: ConstitutiveMLP,
    path: str | os.PathLike[str],
    *,
    dtype: str = "float64",
    tangent_dtype: str | None = None,
) -> ModelMetadata:
    """Script ``mlp`` as a :class:`DeployedConstitutive` and write it with its metadata.

    Args:
        mlp: a trained network (left untouched).
        path: the model file to write.
        dtype: ``"float32"`` or ``"float64"``, the precision of the deployed weights.
        tangent_dtype: ``"float32"`` computes the tangent in float32 while the stress keeps
            ``dtype`` (stress variant only; about twice as fast with float64 stress, for Newton
            solves to tight tolerances); ``None`` or ``dtype`` computes both in ``dtype``.
            Recorded in the file's architecture as ``tangent_dtype``.

    Returns:
        The metadata written into the file (kind ``constitutive``).

    Raises:
        ConfigError: an unknown dtype, or a separate tangent precision for the energy variant.
        NonFiniteError: a weight is NaN or infinite (named).
    """
    if dtype not in _DTYPES:
        raise ConfigError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    tangent_dtype = tangent_dtype or dtype
    if tangent_dtype not in _DTYPES:
        raise ConfigError(f"tangent_dtype must be one of {sorted(_DTYPES)} or None, got {tangent_dtype!r}")
    if tangent_dtype == "float64" and dtype == "float32":
        raise ConfigError("tangent_dtype='float64' with dtype='float32' gains nothing: the tangent cannot be more "
                          "precise than the weights; use dtype='float64', tangent_dtype='float32'")
    if tangent_dtype != dtype and mlp.variant != "stress":
        raise ConfigError(f"tangent_dtype={tangent_dtype!r} differs from dtype={dtype!r}, which only the stress "
                          f"variant supports; this network is the {mlp.variant!r} variant (its tangent is the "
                          "Hessian from the same sweep as the stress)")
    check_finite_weights(mlp, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        if mlp.variant == "stress":
            deployed = DeployedConstitutive(mlp, _DTYPES[dtype], tangent_float32=tangent_dtype != dtype)
        else:
            deployed = DeployedEnergyConstitutive(mlp, _DTYPES[dtype])
        scripted = torch.jit.script(deployed)

    def vec(name: str) -> list[float]:
        return [float(v) for v in getattr(mlp, name).detach().cpu().tolist()]

    info = ConstitutiveInfo(
        strain_size=mlp.strain_size,
        stress_unit=mlp.stress_unit,
        architecture=mlp.architecture() | {"tangent_dtype": tangent_dtype},
        **{name: vec(name) for name in ("strain_mean", "strain_scale", "stress_mean", "stress_scale",
                                        "strain_lower", "strain_upper")},
    )
    metadata = ModelMetadata.for_constitutive(info, dtype=dtype, versions=package_versions())
    save_model(scripted, path, metadata)
    return metadata


