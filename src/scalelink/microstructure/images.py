"""Two-phase voxel microstructures: a statistical generator and the statistics they are judged by.

Images are integer arrays ``(n, N, N)`` (or one ``(N, N)``) of phase tags 0 and 1, periodic in
both directions; index ``[i, j]`` is the pixel at ``x = (i + ½)/N``, ``y = (j + ½)/N`` of the
unit cell.

The statistical generator thresholds a Gaussian random field: white noise filtered in Fourier
space by ``exp(−|k|² ℓ² / 2)`` (periodic by construction, correlation length ``ℓ`` in pixels),
its cell mean removed and scaled to unit variance, cut at the level ``Φ⁻¹(1 − φ)`` of the
standard normal: the expected volume fraction of phase 1 is ``φ``, and each image's fraction
scatters about it as a finite sample of the medium does (or, with ``exact_fraction``, each image
is cut at its own quantile). porespy's ``blobs`` is the same construction; it is written out
here because
porespy would bring vtk, pyvista, numba and dask into the environment for these few lines and
its filter is not periodic by default, which an RVE needs.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from scalelink.bridge.errors import ConfigError, DataError

__all__ = [
    "check_two_phase",
    "gaussian_random_field_images",
    "two_point_correlation",
    "volume_fraction",
]


def gaussian_random_field_images(
    count: int,
    size: int,
    *,
    volume_fraction: float,
    correlation_length: float,
    seed: int | None = None,
    exact_fraction: bool = False,
) -> np.ndarray:
    """Periodic two-phase images from thresholded Gaussian random fields.

    Args:
        count: number of images.
        size: pixels per edge ``N``.
        volume_fraction: fraction of pixels in phase 1, in (0, 1).
        correlation_length: ``ℓ`` of the Gaussian filter in pixels (> 0, < N/2).
        seed: random seed.
        exact_fraction: cut every image at its own quantile, so that each has the volume
            fraction to one pixel (default: one level for all, the fraction scatters).

    Returns:
        ``(count, N, N)`` ``int8`` images of tags 0 and 1.
    """
    if count < 1 or size < 4 or not 0.0 < volume_fraction < 1.0 or not (
            0.0 < correlation_length < size / 2):
        raise ConfigError(
            f"need count >= 1, size >= 4, 0 < volume_fraction < 1 and 0 < correlation_length < "
            f"size/2; got count={count!r}, size={size!r}, volume_fraction={volume_fraction!r}, "
            f"correlation_length={correlation_length!r}"
        )
    rng = np.random.default_rng(seed)
    k = 2.0 * np.pi * np.fft.fftfreq(size)
    kr = 2.0 * np.pi * np.fft.rfftfreq(size)
    gain = np.exp(-0.5 * (k[:, None] ** 2 + kr[None, :] ** 2) * correlation_length**2)
    gain[0, 0] = 0.0
    full = np.exp(-0.5 * (k[:, None] ** 2 + k[None, :] ** 2) * correlation_length**2)
    std = np.sqrt((full**2).sum() - 1.0) / size  # pixel standard deviation of the field
    filtered = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((count, size, size))) * gain,
                             s=(size, size)) / std
    flat = filtered.reshape(count, -1)
    if exact_fraction:
        cut = np.quantile(flat, 1.0 - volume_fraction, axis=1)[:, None]
    else:
        cut = np.full((count, 1), _normal_quantile(1.0 - volume_fraction))
    return (flat > cut).reshape(count, size, size).astype(np.int8)


def _normal_quantile(p: float) -> float:
    from scipy.special import ndtri

    return float(ndtri(p))


def check_two_phase(images: npt.ArrayLike) -> np.ndarray:
    """``images`` as an ``(n, N, N)`` array, checked: square, tags 0 and 1 only, both present in
    every image (an RVE of one phase has nothing to homogenize)."""
    array = np.asarray(images)
    array = array[None] if array.ndim == 2 else array
    if array.ndim != 3 or array.shape[1] != array.shape[2] or array.shape[1] < 2:
        raise DataError(f"images must be (n, N, N) or (N, N) square arrays, got shape "
                        f"{np.shape(images)}")
    values = np.unique(array)
    if not np.isin(values, (0, 1)).all():
        raise DataError(f"images must hold phase tags 0 and 1 only, got values "
                        f"{values[:10].tolist()}; threshold grey images first")
    fraction = array.reshape(array.shape[0], -1).mean(axis=1)
    single = np.flatnonzero((fraction == 0.0) | (fraction == 1.0))
    if single.size:
        raise DataError(
            f"{single.size} image(s) hold only one phase (first: image {int(single[0])}, all "
            f"tag {int(array[single[0]].flat[0])}); a two-phase RVE needs both tags; drop "
            "them or generate with a volume fraction away from 0 and 1"
        )
    return array.astype(np.int8)


def volume_fraction(images: npt.ArrayLike) -> np.ndarray:
    """Fraction of phase 1 in each image ``(n,)``."""
    array = check_two_phase(images)
    return array.reshape(array.shape[0], -1).mean(axis=1)


def two_point_correlation(images: npt.ArrayLike, *, max_distance: int | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged periodic two-point probability ``S₂(r)`` of phase 1, averaged over the
    images: the probability that two pixels ``r`` apart both lie in phase 1 (``S₂(0)`` is the
    volume fraction, ``S₂ → φ²`` far away).

    Args:
        images: ``(n, N, N)`` two-phase images.
        max_distance: largest ``r`` in pixels (default ``N // 2``).

    Returns:
        ``r`` (integer pixel distances ``0 … max_distance``) and ``S₂(r)``.
    """
    array = check_two_phase(images).astype(float)
    n = array.shape[1]
    r_max = n // 2 if max_distance is None else int(max_distance)
    if not 0 < r_max <= n // 2:
        raise ConfigError(f"max_distance must lie in [1, {n // 2}], got {max_distance!r}")
    spectrum = np.fft.rfft2(array)
    s2 = np.fft.irfft2(spectrum * spectrum.conj(), s=(n, n)).mean(axis=0) / n**2
    offset = np.minimum(np.arange(n), n - np.arange(n))
    distance = np.rint(np.hypot(offset[:, None], offset[None, :])).astype(int).ravel()
    keep = distance <= r_max
    sums = np.bincount(distance[keep], s2.ravel()[keep], minlength=r_max + 1)
    counts = np.bincount(distance[keep], minlength=r_max + 1)
    return np.arange(r_max + 1), sums / counts
