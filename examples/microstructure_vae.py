"""Learned two-phase microstructures feeding periodic FE RVEs.

1. A training set of periodic two-phase images, 32 × 32 pixels, volume fraction 0.4 of the stiff
   phase, from thresholded Gaussian random fields (correlation length 2.5 pixels).
2. A small convolutional VAE (circular padding, 16 latent variables) trained on them on CPU; the
   cut of its probability maps is calibrated once: each map's most probable pixels become phase
   1, as many as ``offset + scale × mean probability`` of the map, the two numbers fixed so that
   the fractions of prior samples have the training images' mean and spread (one level for all
   maps turns the decoder's soft phase boundaries into extra scatter of fraction and stiffness).
3. The decoder deployed as a ScaleLink model file of kind ``generator`` (TorchScript, with latent
   size, image size, cuts and training volume fraction in its metadata), loaded back through the
   bridge, and sampled: standard-normal latent vectors → images cut as the file says.
4. Each image becomes a periodic dolfinx RVE with phase tags (one pixel = two triangles;
   plane strain, E = 1 and 10, ν = 0.3) whose effective stiffness comes from the periodic
   cell problem of ``scalelink.fe2``.

Compared, generated against training: mean volume fraction (bound 0.01), radially averaged
two-point probability ``S₂(r)`` (relative L2, bound 5 %), and the distribution of the in-plane
effective modulus ``(C₁₁ + C₂₂)/2`` of 50 generated and 50 training RVEs (two-sample
Kolmogorov–Smirnov, bound p > 0.05).

Run::

    python examples/microstructure_vae.py            # 512 images, 60 epochs
    python examples/microstructure_vae.py --quick    # 256 images, 20 epochs, for the tests
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import mpi4py.MPI  # noqa: F401  (loads libmpi before dolfinx)
import numpy as np
import torch
from scipy.stats import ks_2samp

from scalelink.fe2 import LinearElastic, isotropic_stiffness
from scalelink.microstructure import (
    VAETraining,
    calibrate_fraction_map,
    calibrate_threshold,
    effective_stiffnesses,
    gaussian_random_field_images,
    load_generator,
    sample_images,
    save_generator,
    train_vae,
    two_point_correlation,
    volume_fraction,
)

PHASES = {0: LinearElastic(isotropic_stiffness(young=1.0, poisson=0.3, strain_size=3)),
          1: LinearElastic(isotropic_stiffness(young=10.0, poisson=0.3, strain_size=3))}


def modulus(images: np.ndarray) -> np.ndarray:
    stiffness = effective_stiffnesses(images, PHASES)
    return 0.5 * (stiffness[:, 0, 0] + stiffness[:, 1, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="256 images, 20 epochs")
    parser.add_argument("--out", type=Path, default=None, help="folder for the generator model file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    count, epochs = (256, 20) if args.quick else (512, 60)

    training = gaussian_random_field_images(count, 32, volume_fraction=0.4,
                                            correlation_length=2.5, seed=1)
    start = time.perf_counter()
    model, losses = train_vae(training, VAETraining(epochs=epochs))
    seconds = time.perf_counter() - start
    threshold = calibrate_threshold(model, training)
    fraction_map = calibrate_fraction_map(model.decoder, training)

    folder = args.out or Path(tempfile.mkdtemp())
    path = folder / "microstructure_generator.pt"
    save_generator(model.decoder, path, threshold=threshold, volume_fraction=float(training.mean()),
                   fraction_map=fraction_map)
    decoder, metadata = load_generator(path)
    generated = sample_images(decoder, 200, threshold=metadata.generator.threshold,
                              fraction_map=metadata.generator.fraction_map, seed=5)
    fraction = generated.reshape(generated.shape[0], -1).mean(axis=1)
    two_phase = generated[(fraction > 0) & (fraction < 1)]

    vf_train, vf_gen = volume_fraction(training).mean(), volume_fraction(two_phase).mean()
    _, s2_train = two_point_correlation(training)
    _, s2_gen = two_point_correlation(two_phase)
    s2_error = np.linalg.norm(s2_gen - s2_train) / np.linalg.norm(s2_train)
    moduli_train, moduli_gen = modulus(training[:50]), modulus(two_phase[:50])
    ks = ks_2samp(moduli_gen, moduli_train)

    print(f"VAE: {count} images, {epochs} epochs, {seconds:.0f} s on CPU, loss "
          f"{losses[0]:.1f} -> {losses[-1]:.1f} nats/image; cut {threshold:.3f}, fraction map "
          f"{fraction_map[0]:.4f} + {fraction_map[1]:.4f} p; generator {path} "
          f"(kind {metadata.kind}, latent {metadata.generator.latent_size}, "
          f"{metadata.generator.image_size} x {metadata.generator.image_size})")
    print(f"generated {generated.shape[0]} images, {two_phase.shape[0]} with both phases")
    print(f"volume fraction: training {vf_train:.4f}, generated {vf_gen:.4f}, "
          f"difference {abs(vf_gen - vf_train):.4f} (bound 0.01)")
    print(f"two-point correlation: relative L2 difference {100 * s2_error:.2f} % (bound 5 %)")
    print(f"in-plane modulus: training {moduli_train.mean():.4f} ± {moduli_train.std():.4f}, "
          f"generated {moduli_gen.mean():.4f} ± {moduli_gen.std():.4f}; KS statistic "
          f"{ks.statistic:.3f}, p = {ks.pvalue:.3f} (bound p > 0.05)")


if __name__ == "__main__":
    main()
