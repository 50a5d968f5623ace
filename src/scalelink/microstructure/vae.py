"""A small convolutional variational autoencoder of periodic two-phase images.

Encoder and decoder use circular padding, so the learned images stay periodic like the RVEs
they feed. The decoder alone is deployed: latent vectors ``(n, latent_size)`` in, phase-1
probabilities ``(n, N, N)`` out; an image is the probability map cut at a calibrated level
(:func:`calibrate_threshold`), or each map at its own level (:func:`calibrate_fraction_map`). Training
maximises the evidence lower bound (binary cross-entropy of the pixels plus ``β`` times the KL
divergence of the posterior from the standard normal prior) with Adam on CPU.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from scalelink.bridge.errors import ConfigError

from .images import check_two_phase

__all__ = ["PhaseDecoder", "PhaseVAE", "VAETraining", "calibrate_fraction_map", "calibrate_threshold",
           "cut_maps", "sample_images", "train_vae"]


def _conv(inputs: int, outputs: int) -> nn.Conv2d:
    return nn.Conv2d(inputs, outputs, 3, padding=1, padding_mode="circular")


class PhaseDecoder(nn.Module):
    """Latent ``(n, latent_size)`` → phase-1 probability ``(n, N, N)``, ``N = 4 × base``.

    Attributes:
        latent_size: length of the latent vector.
        image_size: ``N``.
    """

    def __init__(self, latent_size: int, image_size: int, channels: int = 32) -> None:
        super().__init__()
        if image_size % 4 or image_size < 8:
            raise ConfigError(f"image size must be a multiple of 4, >= 8; got {image_size!r}")
        self.latent_size = latent_size
        self.image_size = image_size
        self.channels = channels
        self.base = image_size // 4
        self.linear = nn.Linear(latent_size, channels * self.base * self.base)
        self.body = nn.Sequential(
            nn.SiLU(), nn.Upsample(scale_factor=2.0, mode="nearest"), _conv(channels, channels // 2),
            nn.SiLU(), nn.Upsample(scale_factor=2.0, mode="nearest"), _conv(channels // 2, 16),
            nn.SiLU(), _conv(16, 1),
        )

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        h = self.linear(z).reshape(z.shape[0], self.channels, self.base, self.base)
        return self.body(h)[:, 0]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(z))


class PhaseVAE(nn.Module):
    """Encoder (two stride-2 circular convolutions) and :class:`PhaseDecoder`."""

    def __init__(self, latent_size: int, image_size: int, channels: int = 32) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            _conv(1, 16), nn.SiLU(),
            nn.Conv2d(16, channels // 2, 4, stride=2, padding=1, padding_mode="circular"),
            nn.SiLU(),
            nn.Conv2d(channels // 2, channels, 4, stride=2, padding=1, padding_mode="circular"),
            nn.SiLU(), nn.Flatten(),
        )
        features = channels * (image_size // 4) ** 2
        self.mean = nn.Linear(features, latent_size)
        self.log_variance = nn.Linear(features, latent_size)
        self.decoder = PhaseDecoder(latent_size, image_size, channels)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.encoder(images[:, None])
        mean, log_variance = self.mean(h), self.log_variance(h).clamp(-10.0, 10.0)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * log_variance)
        return self.decoder.logits(z), mean, log_variance


@dataclasses.dataclass(frozen=True)
class VAETraining:
    """Training settings.

    Attributes:
        latent_size: latent dimension.
        channels: widest convolution.
        epochs: passes over the images.
        batch_size: images per step.
        learning_rate: Adam step.
        beta: weight of the KL term (per image, relative to the summed pixel cross-entropy).
        seed: torch seed.
    """

    latent_size: int = 16
    channels: int = 32
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 2e-3
    beta: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.latent_size, self.channels, self.epochs, self.batch_size) < 1 or not (
                self.learning_rate > 0 and self.beta >= 0):
            raise ConfigError(f"VAE training settings must be positive, got {self}")


def train_vae(images: npt.ArrayLike, settings: VAETraining = VAETraining(), *,
              min_images: int = 64) -> tuple[PhaseVAE, list[float]]:
    """Train a :class:`PhaseVAE` on two-phase images ``(n, N, N)``.

    Returns:
        The trained model (eval mode) and the mean loss per epoch (nats per image).
    """
    array = check_two_phase(images)
    if array.shape[0] < min_images:
        raise ConfigError(
            f"{array.shape[0]} training images are too few for a VAE; give at least {min_images} "
            "(generate more with gaussian_random_field_images)"
        )
    torch.manual_seed(settings.seed)
    data = torch.as_tensor(array, dtype=torch.float32)
    model = PhaseVAE(settings.latent_size, array.shape[1], settings.channels)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, settings.epochs)
    history = []
    for _ in range(settings.epochs):
        order = torch.randperm(data.shape[0])
        total = 0.0
        for start in range(0, data.shape[0], settings.batch_size):
            batch = data[order[start:start + settings.batch_size]]
            logits, mean, log_variance = model(batch)
            reconstruction = nn.functional.binary_cross_entropy_with_logits(
                logits, batch, reduction="sum") / batch.shape[0]
            kl = -0.5 * torch.sum(1 + log_variance - mean**2 - log_variance.exp()) / batch.shape[0]
            loss = reconstruction + settings.beta * kl
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * batch.shape[0]
        schedule.step()
        history.append(total / data.shape[0])
    model.eval()
    return model, history


def calibrate_threshold(model: PhaseVAE, images: npt.ArrayLike) -> float:
    """The cut of the probability maps at which the reconstructions of the training images
    (posterior means decoded) have the training images' mean volume fraction.

    A decoder's probabilities are blurred at phase boundaries, so cutting at 0.5 shrinks the
    minority phase; the cut is fixed once on the training data, never on generated samples.
    """
    data = torch.as_tensor(check_two_phase(images), dtype=torch.float32)
    with torch.no_grad():
        mean = model.mean(model.encoder(data[:, None]))
        probability = model.decoder(mean)
    return float(torch.quantile(probability.flatten(), 1.0 - float(data.mean())))


def calibrate_fraction_map(decoder: torch.nn.Module, images: npt.ArrayLike, *, samples: int = 4096,
                           seed: int = 12345) -> tuple[float, float]:
    """``(offset, scale)`` of the per-image cut: an image's phase-1 fraction is
    ``offset + scale × p̄``, ``p̄`` the mean probability of its map.

    A single cut turns the decoder's soft boundaries into extra scatter of the volume fraction
    (and of everything that follows it, such as stiffness): generated fractions spread wider than
    the training set's. This map is fixed once, by matching the mean and standard deviation of
    ``p̄`` over ``samples`` standard-normal latent vectors to those of the training images'
    fractions; generated fractions and correlations remain independent checks.

    Raises:
        ConfigError: ``samples < 2``, or the decoder's maps all have the same mean probability.
    """
    if samples < 2:
        raise ConfigError(f"need samples >= 2 to calibrate the fraction map, got {samples!r}")
    array = check_two_phase(images)
    fractions = array.reshape(-1, array.shape[-1] * array.shape[-2]).mean(axis=1)
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(samples, int(decoder.latent_size), generator=generator)
    with torch.no_grad():
        soft = decoder(z).reshape(samples, -1).mean(dim=1).double().numpy()
    if not soft.std() > 0.0:
        raise ConfigError("the decoder's maps all have the same mean probability: it has not learned the "
                          "images (train longer), so the fraction map cannot be calibrated")
    scale = float(fractions.std() / soft.std()) if fractions.std() > 0.0 else float(np.finfo(float).eps)
    return float(fractions.mean() - scale * soft.mean()), scale


def cut_maps(probability: npt.ArrayLike, *, threshold: float = 0.5,
             fraction_map: tuple[float, float] | None = None) -> np.ndarray:
    """Probability maps ``(n, N, N)`` → two-phase images: cut at ``threshold``, or, with
    ``fraction_map = (offset, scale)``, each map's ``round(f N²)`` most probable pixels set to
    phase 1, ``f = offset + scale × mean(map)`` kept within one pixel of each phase."""
    maps = np.asarray(probability, dtype=np.float64)
    if fraction_map is None:
        return (maps > threshold).astype(np.int8)
    offset, scale = fraction_map
    flat = maps.reshape(maps.shape[0], -1)
    pixels = flat.shape[1]
    counts = np.clip(np.rint((offset + scale * flat.mean(axis=1)) * pixels), 1, pixels - 1)
    ranks = np.argsort(np.argsort(-flat, axis=1, kind="stable"), axis=1, kind="stable")
    return (ranks < counts[:, None]).reshape(maps.shape).astype(np.int8)


def sample_images(decoder: torch.nn.Module, count: int, *, threshold: float = 0.5,
                  fraction_map: tuple[float, float] | None = None, seed: int = 0) -> np.ndarray:
    """``count`` images ``(count, N, N)`` decoded from standard-normal latent vectors and cut by
    :func:`cut_maps`; ``decoder`` is a :class:`PhaseDecoder` or its deployed TorchScript copy
    (pass its metadata's ``threshold`` and ``fraction_map``)."""
    if count < 1 or not 0.0 < threshold < 1.0:
        raise ConfigError(f"need count >= 1 and 0 < threshold < 1, got {count!r}, {threshold!r}")
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(count, int(decoder.latent_size), generator=generator)
    with torch.no_grad():
        probability = decoder(z)
    return cut_maps(probability.numpy(), threshold=threshold, fraction_map=fraction_map)
