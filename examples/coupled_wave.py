"""A wave packet leaving the atoms for the continuum: reflected energy against wavenumber.

Run with one line (one process; about half a minute)::

    python examples/coupled_wave.py            # add --json out.json to save the numbers

The atoms are a straight Lennard-Jones chain (the potential of the 2D coupling,
``lj/smooth/linear``); the continuum is a line of P1 elements four lattice spacings long, so the
mesh carries wavenumbers up to ``π/h`` (``k a <= 0.785``). They meet in a bridging-domain overlap
of eight elements (see :mod:`scalelink.coupling.bridging_chain`), the coupling method
``"bridging_chain"`` of :func:`scalelink.coupling.methods.couple`. A Gaussian packet of central
wavenumber k starts in the atoms, runs into the handshake, and we measure where its energy is
once it is gone: back in the atoms (R, reflected), in the elements (transmitted), or removed by
the fine-scale damping (absorbed).

The dispersion surrogate: LAMMPS force constants give the lattice's ω(k) at the 13 wavenumbers of
a 24-atom periodic cell; a Gaussian process trained on them is the continuum's ω(k); the FE mass
is the lumped/consistent blend whose discrete dispersion matches the GP on ``k <= π/h``. Without
the surrogate the mass is lumped (the usual explicit-dynamics choice).
"""

from __future__ import annotations

import argparse
import json
import time

import mpi4py.MPI as MPI  # noqa: F401  (loads libmpi before LAMMPS)
import numpy as np

from scalelink.coupling.lattice import LennardJones2D
from scalelink.coupling.bridging_chain import WaveConfig, WaveResult
from scalelink.coupling.dispersion import Chain1D, GaussianProcess1D, fit_mass_blend, lammps_dispersion_samples
from scalelink.coupling.methods import ChainWaveProblem, couple

ELEMENT_SPACINGS = 4
WAVENUMBERS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.9, 1.2, 1.5, 2.0, 2.5)  # k a
METHOD = "bridging_chain"  # the dynamic coupling method that runs a 1D chain in one process


def packet(chain: Chain1D, ka: float, **config: float) -> WaveResult:
    """The energy balance of one packet of central wavenumber ``k a`` (``config``: more of :class:`WaveConfig`)."""
    return couple(ChainWaveProblem(chain, WaveConfig(ka / chain.spacing, **config)), method=METHOD).record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    start = time.perf_counter()

    # 1. The lattice at zero stress, and its dispersion measured with LAMMPS.
    chain = Chain1D.zero_stress(LennardJones2D())
    k, omega = lammps_dispersion_samples(chain, 24)
    print(f"chain: a = {chain.spacing:.4f} Å, {chain.shells} neighbour shells, "
          f"c = {np.sqrt(chain.modulus() * chain.spacing / chain.mass):.2f} Å/ps")

    # 2. The GP surrogate: accuracy on held-out wavenumbers, then trained on all samples.
    held_out = GaussianProcess1D().fit(k[::2], omega[::2])
    error = np.abs(held_out.predict(k[1::2]) - omega[1::2]).max()
    print(f"GP on 7 of 13 samples: max held-out error {error:.2e} rad/ps ({error / omega.max():.1e} of ω_max)")
    gp = GaussianProcess1D().fit(k, omega)
    h = ELEMENT_SPACINGS * chain.spacing
    speed = np.sqrt(chain.modulus() * chain.spacing / chain.mass)
    beta = fit_mass_blend(gp, h, speed)
    print(f"mass blend from the GP: β = {beta:.4f} (0 lumped, 1 consistent); "
          f"mesh cutoff k a = {np.pi / ELEMENT_SPACINGS:.3f}")

    # 3. The coupled system conserves energy when nothing damps it.
    check = packet(chain, 0.3, fine_damping=0.0, mass_blend=beta)
    print(f"no damping, k a = 0.3: max |ΔE| = {check.energy_error:.1e} of the packet energy over {check.steps} steps")

    # 4. The sweep: with the surrogate, and with a lumped mass.
    rows = []
    print(f"\n{'k a':>5} {'kh/π':>5} | {'R (GP)':>9} {'T (GP)':>7} {'A (GP)':>7} | "
          f"{'R (lumped)':>10} {'T':>6} {'A':>6}")
    for ka in WAVENUMBERS:
        with_gp = packet(chain, ka, mass_blend=beta)
        lumped = packet(chain, ka, mass_blend=0.0)
        rows.append({"ka": ka, "gp": vars(with_gp), "lumped": vars(lumped)})
        print(f"{ka:5.2f} {ka * ELEMENT_SPACINGS / np.pi:5.2f} | {with_gp.reflected:9.2e} {with_gp.transmitted:7.3f} "
              f"{with_gp.absorbed:7.3f} | {lumped.reflected:10.2e} {lumped.transmitted:6.3f} {lumped.absorbed:6.3f}")
    seconds = time.perf_counter() - start
    print(f"\ntotal {seconds:.1f} s")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"spacing": chain.spacing, "gp_held_out_error": float(error), "omega_max": float(omega.max()),
                       "mass_blend": beta, "energy_error": check.energy_error, "rows": rows, "seconds": seconds},
                      out, indent=1)


if __name__ == "__main__":
    main()
