"""Generated two-phase microstructures and their periodic RVEs, against closed forms.

References: the two-point probability of a level-cut Gaussian random field (the bivariate
normal orthant probability, e.g. Torquato, *Random Heterogeneous Materials* (2002), ch. 2 and
Teubner 1991), computed here from the generator's own filter spectrum; the exact laminate
stiffness (``scalelink.fe2.laminate_stiffness``) for a striped image; the fe2 ``PeriodicRVE``
for the batched stiffness.
"""

from __future__ import annotations

import contextlib
import io
import re
import runpy
import sys
from pathlib import Path

import mpi4py.MPI  # noqa: F401  (loads libmpi before dolfinx)
import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.stats import norm

from scalelink.bridge.errors import ConfigError, DataError, ModelFileError
from scalelink.fe2 import LinearElastic, isotropic_stiffness, laminate_stiffness
from scalelink.microstructure import (
    PhaseDecoder,
    effective_stiffnesses,
    gaussian_random_field_images,
    load_decoder,
    sample_images,
    save_decoder,
    train_vae,
    two_point_correlation,
    volume_fraction,
    voxel_rve,
)

pytestmark = pytest.mark.fenicsx

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

STIFF = {0: isotropic_stiffness(young=1.0, poisson=0.3, strain_size=3),
         1: isotropic_stiffness(young=10.0, poisson=0.3, strain_size=3)}
PHASES = {t: LinearElastic(c) for t, c in STIFF.items()}


def level_cut_s2(size: int, fraction: float, length: float) -> np.ndarray:
    """Radially averaged S₂ of a Gaussian field with the generator's spectrum (less its mean)
    cut at the level leaving ``fraction`` above it."""
    k = 2.0 * np.pi * np.fft.fftfreq(size)
    spectrum = np.exp(-(k[:, None] ** 2 + k[None, :] ** 2) * length**2)
    # the generator removes the cell mean: no k = 0 mode
    spectrum[0, 0] = 0.0
    covariance = np.fft.ifft2(spectrum).real
    rho = covariance / covariance[0, 0]
    level = norm.isf(fraction)

    def orthant(r: float) -> float:
        value, _ = quad(lambda t: np.exp(-level**2 / (1.0 + t)) / np.sqrt(1.0 - t * t), 0.0, r,
                        limit=200)
        return fraction**2 + value / (2.0 * np.pi)

    values = np.unique(np.round(rho, 12))
    table = {v: orthant(min(v, 1.0 - 1e-15)) for v in values}
    s2 = np.vectorize(lambda v: table[v])(np.round(rho, 12))
    s2[0, 0] = fraction
    offset = np.minimum(np.arange(size), size - np.arange(size))
    distance = np.rint(np.hypot(offset[:, None], offset[None, :])).astype(int).ravel()
    keep = distance <= size // 2
    return (np.bincount(distance[keep], s2.ravel()[keep])
            / np.bincount(distance[keep]))


def test_random_field_images_match_level_cut_closed_form() -> None:
    images = gaussian_random_field_images(300, 32, volume_fraction=0.4, correlation_length=2.5,
                                          seed=3)
    fractions = volume_fraction(images)
    assert abs(fractions.mean() - 0.4) <= 4.0 * fractions.std() / np.sqrt(fractions.size)
    exact = gaussian_random_field_images(20, 32, volume_fraction=0.4, correlation_length=2.5,
                                         seed=3, exact_fraction=True)
    assert np.all(np.abs(volume_fraction(exact) - 0.4) <= 1.0 / 32**2)
    _, s2 = two_point_correlation(images)
    reference = level_cut_s2(32, 0.4, 2.5)
    assert np.linalg.norm(s2 - reference) / np.linalg.norm(reference) <= 0.01
    # the correlated part alone (S₂ − φ²), which a wrong correlation length would change
    assert np.abs(s2 - reference)[1:6].max() <= 0.05 * (reference[1:6] - 0.16).max()


def test_striped_image_gives_exact_laminate() -> None:
    image = np.zeros((16, 16), dtype=np.int8)
    image[:6] = 1  # x < 6/16: layers normal to x
    stiffness = voxel_rve(image, PHASES).effective_stiffness()
    exact = laminate_stiffness(np.stack([STIFF[0], STIFF[1]]), [10 / 16, 6 / 16], axis=0)
    np.testing.assert_allclose(stiffness, exact, rtol=1e-9, atol=1e-12)


def test_batched_stiffness_equals_periodic_rve() -> None:
    images = gaussian_random_field_images(2, 16, volume_fraction=0.3, correlation_length=2.0,
                                          seed=4)
    batch = effective_stiffnesses(images, PHASES)
    for image, stiffness in zip(images, batch):
        np.testing.assert_allclose(stiffness, voxel_rve(image, PHASES).effective_stiffness(),
                                   rtol=1e-12, atol=1e-14)


def test_bad_images_are_refused() -> None:
    with pytest.raises(DataError, match="only one phase"):
        effective_stiffnesses(np.ones((2, 8, 8), dtype=np.int8), PHASES)
    with pytest.raises(DataError, match="phase tags 0 and 1 only"):
        volume_fraction(np.full((8, 8), 0.5))
    with pytest.raises(DataError, match="square"):
        two_point_correlation(np.zeros((2, 8, 6)))
    images = gaussian_random_field_images(10, 16, volume_fraction=0.5, correlation_length=2.0)
    with pytest.raises(ConfigError, match="too few"):
        train_vae(images)
    with pytest.raises(ConfigError, match="volume_fraction"):
        gaussian_random_field_images(2, 16, volume_fraction=1.0, correlation_length=2.0)


def test_decoder_file_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    decoder = PhaseDecoder(latent_size=4, image_size=16, channels=8)
    save_decoder(decoder, tmp_path / "d.pt", threshold=0.45, volume_fraction=0.3)
    loaded, metadata = load_decoder(tmp_path / "d.pt")
    assert metadata["latent_size"] == 4 and metadata["image_size"] == 16
    np.testing.assert_array_equal(sample_images(loaded, 3, threshold=0.45, seed=2),
                                  sample_images(decoder, 3, threshold=0.45, seed=2))
    torch.jit.save(torch.jit.script(decoder), str(tmp_path / "bare.pt"))
    with pytest.raises(ModelFileError, match="no microstructure-generator metadata"):
        load_decoder(tmp_path / "bare.pt")


def run_example(name: str, *args: str) -> str:
    """An example run in this process, its printed output returned."""
    buffer, argv = io.StringIO(), sys.argv
    sys.argv = [name, *args]
    try:
        with contextlib.redirect_stdout(buffer):
            runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    finally:
        sys.argv = argv
    return buffer.getvalue()


@pytest.mark.slow
def test_vae_example_quick() -> None:
    """The example end to end on a short training (its acceptance run is the full one, see
    benchmarks/RESULTS.md): a deployed decoder whose samples are two-phase, near the training
    fraction and two-point correlation, with the stiffness comparison computed."""
    out = run_example("microstructure_vae.py", "--quick")
    difference = float(re.search(r"difference ([0-9.]+) \(bound 0.01\)", out).group(1))
    s2 = float(re.search(r"relative L2 difference ([0-9.]+) %", out).group(1))
    p_value = float(re.search(r"p = ([0-9.]+)", out).group(1))
    assert difference <= 0.03 and s2 <= 10.0 and 0.0 <= p_value <= 1.0, out
