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
import json
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

from scalelink.bridge import keys
from scalelink.bridge.errors import ConfigError, DataError, ModelFileError
from scalelink.bridge.model_file import GeneratorInfo, load_model
from scalelink.fe2 import LinearElastic, isotropic_stiffness, laminate_stiffness
from scalelink.microstructure import (
    PhaseDecoder,
    calibrate_fraction_map,
    convert_decoder_file,
    cut_maps,
    effective_stiffnesses,
    gaussian_random_field_images,
    load_generator,
    sample_images,
    save_generator,
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


def test_generator_file_round_trip(tmp_path) -> None:
    """The decoder through the bridge's model file: the same images, the metadata it was given."""
    torch.manual_seed(0)
    decoder = PhaseDecoder(latent_size=4, image_size=16, channels=8)
    save_generator(decoder, tmp_path / "d.pt", threshold=0.45, volume_fraction=0.3)
    loaded, metadata = load_generator(tmp_path / "d.pt")
    assert (metadata.kind, metadata.dtype, metadata.outputs) == ("generator", "float32", [keys.PHASE_PROBABILITY])
    info = metadata.generator
    assert (info.latent_size, info.image_size, info.threshold, info.volume_fraction) == (4, 16, 0.45, 0.3)
    np.testing.assert_array_equal(sample_images(loaded, 3, threshold=info.threshold, seed=2),
                                  sample_images(decoder, 3, threshold=0.45, seed=2))
    z = torch.randn(5, 4)
    with torch.no_grad():
        assert torch.equal(loaded(z), decoder(z))
    # the bridge's own reader sees the same file
    assert load_model(tmp_path / "d.pt")[1] == metadata


def test_per_image_cut_sets_the_most_probable_pixels() -> None:
    """With a fraction map each image holds round((offset + scale × mean p) N²) phase-1 pixels,
    clipped to one pixel of each phase, and they are the map's most probable ones."""
    rng = np.random.default_rng(3)
    maps = rng.uniform(size=(40, 8, 8)) ** rng.uniform(0.2, 5.0, size=(40, 1, 1))
    offset, scale = -0.3, 1.7
    images = cut_maps(maps, fraction_map=(offset, scale))
    for probability, image in zip(maps, images):
        wanted = min(max(round((offset + scale * probability.mean()) * 64), 1), 63)
        assert image.sum() == wanted
        assert probability[image == 1].min() > probability[image == 0].max()
    assert {int(images.reshape(40, -1).sum(axis=1).min()), int(images.reshape(40, -1).sum(axis=1).max())} == {1, 63}
    np.testing.assert_array_equal(cut_maps(maps, threshold=0.3), (maps > 0.3).astype(np.int8))


def test_fraction_map_gives_prior_samples_the_training_spread() -> None:
    """Calibrated on prior samples, the per-image cut gives generated fractions the training
    images' mean and standard deviation (to the pixel rounding), for a decoder whose maps are
    far from it."""
    torch.manual_seed(2)
    decoder = PhaseDecoder(latent_size=4, image_size=16, channels=8)
    training = gaussian_random_field_images(300, 16, volume_fraction=0.35, correlation_length=2.0, seed=6)
    offset, scale = calibrate_fraction_map(decoder, training, samples=2000, seed=9)
    generated = sample_images(decoder, 2000, fraction_map=(offset, scale), seed=9)
    fractions, wanted = volume_fraction(generated), training.reshape(300, -1).mean(axis=1)
    assert abs(fractions.mean() - wanted.mean()) < 1.0 / 256
    assert abs(fractions.std() - wanted.std()) < 0.05 * wanted.std()
    with pytest.raises(ConfigError, match="samples >= 2"):
        calibrate_fraction_map(decoder, training, samples=1)


def test_generator_fraction_map_in_the_file(tmp_path) -> None:
    """The fraction map travels in the file and gives the same images; files written without
    one read as ``None`` (one cut); a bad map is refused with its value."""
    torch.manual_seed(0)
    decoder = PhaseDecoder(latent_size=4, image_size=16, channels=8)
    save_generator(decoder, tmp_path / "d.pt", threshold=0.45, volume_fraction=0.3, fraction_map=(0.05, 0.9))
    loaded, metadata = load_generator(tmp_path / "d.pt")
    assert metadata.generator.fraction_map == (0.05, 0.9)
    np.testing.assert_array_equal(
        sample_images(loaded, 5, fraction_map=metadata.generator.fraction_map, seed=4),
        sample_images(decoder, 5, fraction_map=(0.05, 0.9), seed=4))
    assert load_model(tmp_path / "d.pt")[1] == metadata
    older = {"latent_size": 4, "image_size": 16, "threshold": 0.45, "volume_fraction": 0.3,
             "architecture": {"type": "conv_decoder"}}
    assert GeneratorInfo.from_dict(older, "old.pt").fraction_map is None
    with pytest.raises(ModelFileError, match=r"fraction_map \(0\.0, -1\.0\) must be \(offset, scale\)"):
        save_generator(decoder, tmp_path / "bad.pt", threshold=0.45, volume_fraction=0.3, fraction_map=(0.0, -1.0))
    with pytest.raises(ModelFileError, match="old.pt: .*fraction_map"):
        GeneratorInfo.from_dict({**older, "fraction_map": [0.1]}, "old.pt")


def test_generator_file_errors(tmp_path) -> None:
    decoder = PhaseDecoder(latent_size=4, image_size=16, channels=8)
    torch.jit.save(torch.jit.script(decoder), str(tmp_path / "bare.pt"))
    with pytest.raises(ModelFileError, match=r"bare\.pt' carries no ScaleLink metadata"):
        load_generator(tmp_path / "bare.pt")
    with pytest.raises(ModelFileError, match=r"generator threshold 1\.5 must lie in \(0, 1\)"):
        save_generator(decoder, tmp_path / "t.pt", threshold=1.5, volume_fraction=0.3)
    save_generator(decoder, tmp_path / "d.pt", threshold=0.45, volume_fraction=0.3)
    (tmp_path / "cut.pt").write_bytes((tmp_path / "d.pt").read_bytes()[:-200])
    with pytest.raises(ModelFileError, match=r"cut\.pt' is not a readable TorchScript archive"):
        load_generator(tmp_path / "cut.pt")


def test_earlier_decoder_files_are_refused_with_the_conversion(tmp_path) -> None:
    """A file as the former ``save_decoder`` wrote it (private ``microstructure.json``): refused by
    the loader, which names the converter; converted, it gives the same images."""
    torch.manual_seed(1)
    decoder = PhaseDecoder(latent_size=4, image_size=16, channels=8)
    legacy = {"format_version": 1, "kind": "microstructure_generator", "latent_size": 4, "image_size": 16,
              "threshold": 0.4, "volume_fraction": 0.35}
    old = tmp_path / "old.pt"
    torch.jit.save(torch.jit.script(decoder), str(old), _extra_files={"microstructure.json": json.dumps(legacy)})
    with pytest.raises(ModelFileError, match=r"old\.pt' is a decoder file of the earlier format.*convert_decoder_file"):
        load_generator(old)
    convert_decoder_file(old, tmp_path / "new.pt")
    loaded, metadata = load_generator(tmp_path / "new.pt")
    assert (metadata.generator.threshold, metadata.generator.volume_fraction) == (0.4, 0.35)
    np.testing.assert_array_equal(sample_images(loaded, 4, threshold=0.4, seed=3),
                                  sample_images(decoder, 4, threshold=0.4, seed=3))
    with pytest.raises(ModelFileError, match="only files written by the former save_decoder"):
        convert_decoder_file(tmp_path / "new.pt", tmp_path / "again.pt")


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
