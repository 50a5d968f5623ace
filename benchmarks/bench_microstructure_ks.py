"""How often the generated microstructures pass the stiffness KS test: one VAE, many sample draws.

    python benchmarks/bench_microstructure_ks.py [--epochs 60] [--images 512] [--draws 8] [--channels C] [--single-cut]

Trains the VAE of ``examples/microstructure_vae.py`` on the same training images (Gaussian random
fields, 32 × 32, φ = 0.4, correlation length 2.5 px, seed 1), then draws ``--draws`` independent
sets of 200 generated images (sampling seeds 0, 1, ...). Each draw's first 50 two-phase images are
scored as in the example: volume fraction difference, relative L2 of the two-point probability,
and the two-sample Kolmogorov–Smirnov p-value of the in-plane modulus against training RVEs 0–49
(the example's reference) and 50–99 (a second reference).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import mpi4py.MPI  # noqa: F401  (loads libmpi before dolfinx)
import numpy as np
import torch
from scipy.stats import ks_2samp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from microstructure_vae import modulus  # noqa: E402

from scalelink.microstructure import (  # noqa: E402
    VAETraining,
    calibrate_fraction_map,
    calibrate_threshold,
    gaussian_random_field_images,
    load_generator,
    sample_images,
    save_generator,
    train_vae,
    two_point_correlation,
    volume_fraction,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--draws", type=int, default=8)
    parser.add_argument("--single-cut", action="store_true", help="cut every map at one level (no fraction map)")
    parser.add_argument("--channels", type=int, default=VAETraining.channels, help="widest convolution of the VAE")
    args = parser.parse_args()
    torch.set_num_threads(1)
    training = gaussian_random_field_images(args.images, 32, volume_fraction=0.4, correlation_length=2.5, seed=1)
    start = time.perf_counter()
    model, _ = train_vae(training, VAETraining(epochs=args.epochs, channels=args.channels))
    print(f"VAE: {args.images} images, {args.epochs} epochs, {args.channels} channels, "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    threshold = calibrate_threshold(model, training)
    fraction_map = None if args.single_cut else calibrate_fraction_map(model.decoder, training)
    path = Path(tempfile.mkdtemp()) / "generator.pt"
    save_generator(model.decoder, path, threshold=threshold, volume_fraction=float(training.mean()),
                   fraction_map=fraction_map)
    decoder, metadata = load_generator(path)
    references = modulus(training[:100])
    _, s2_train = two_point_correlation(training)
    print(f"training moduli 0-49: {references[:50].mean():.3f} ± {references[:50].std():.3f}")
    for seed in range(args.draws):
        images = sample_images(decoder, 200, threshold=metadata.generator.threshold,
                               fraction_map=metadata.generator.fraction_map, seed=seed)
        fraction = images.reshape(images.shape[0], -1).mean(axis=1)
        images = images[(fraction > 0) & (fraction < 1)]
        moduli = modulus(images[:50])
        _, s2 = two_point_correlation(images)
        print(f"draw {seed}: vf difference {abs(volume_fraction(images).mean() - volume_fraction(training).mean()):.4f}, "
              f"S2 {100 * np.linalg.norm(s2 - s2_train) / np.linalg.norm(s2_train):.2f} %, modulus "
              f"{moduli.mean():.3f} ± {moduli.std():.3f}, KS p {ks_2samp(moduli, references[:50]).pvalue:.3f} "
              f"(training 0-49), {ks_2samp(moduli, references[50:100]).pvalue:.3f} (training 50-99)", flush=True)


if __name__ == "__main__":
    main()
