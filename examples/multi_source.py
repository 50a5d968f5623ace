"""Two data sources of unequal quality: weighted negative log-likelihood vs plain training.

A common situation: a few accurate ("high-fidelity") reference calculations near the
conditions the potential is meant for, and many cheaper ("low-fidelity") ones that are
biased, noisier and sampled elsewhere. Mixing them with one mean-squared error lets the many
cheap frames dominate. Here both sources are synthetic, built from ASE's EMT Cu–Ni:

* **target** distribution: fcc Cu–Ni cells rattled by 0.06–0.10 Å, strained by up to 1 %;
* **high-fidelity** source ``hf``: EMT itself on a few target structures;
* **low-fidelity** source ``lf``: EMT scaled by 1.1 (a 10 % too stiff model, energies, forces
  and stresses alike) plus Gaussian force noise (0.15 eV/Å) and energy noise (5 meV/atom),
  on many structures from a shifted distribution (rattle 0.01–0.25 Å, strain up to 4 %).

Two runs with the same time budget and the same data:

1. **plain**: the default weighted MSE loss, every frame alike;
2. **weighted NLL**: ``sources: {hf: ..., lf: ...}`` with learned noise levels, and
   ``importance_weights`` estimated as the density ratio target/training in a space of
   label-free structure descriptors, from an *unlabelled* sample of target structures.
   ``lf`` has ``energy_offset: true``: its energies come from another method, so they are
   trusted for energy differences only and ``hf`` alone fixes the energy zero.

The energy zero is what goes wrong without that. ``lf``'s energies sit about 10 meV/atom
above ``hf``'s near the target (and far more on its hotter structures). A learned noise level
absorbs such a systematic offset as if it were noise, and the per-species reference energies
then follow the weight of the data, which is mostly ``lf``: the weighted run ends with good
forces but an energy error that is almost entirely a constant shift, worse than plain
training's. With the offset the deployed energies follow ``hf``.

Both are scored on held-out high-fidelity target structures. Training is time-limited, so
on a loaded machine both runs get fewer epochs and the numbers move. Run::

    python examples/multi_source.py            # about 3 minutes on 2 cores
    python examples/multi_source.py --seed 1   # other synthetic data and initial weights
    python examples/multi_source.py --quick    # under a minute (the test suite)

It writes ``multi_source_out/summary.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from scalelink.training import load_config, train
from scalelink.training.reference import fcc_alloy_structures
from scalelink.training.data import atoms_to_data, make_loader, read_structures
from scalelink.training.metrics import error_metrics
from scalelink.training.trainer import collect, load_checkpoint

TARGET = dict(rattle=(0.06, 0.10), max_strain=0.01)
LOW_FIDELITY = dict(rattle=(0.01, 0.25), max_strain=0.04)
STIFFNESS_BIAS = 1.1  # low-fidelity labels are EMT times this
FORCE_NOISE = 0.15  # eV/Å, low-fidelity
ENERGY_NOISE = 0.005  # eV/atom, low-fidelity


def low_fidelity(frames, rng):
    """Biased, noisy copies of EMT-labelled frames."""
    out = []
    for atoms in frames:
        n = len(atoms)
        energy = STIFFNESS_BIAS * atoms.get_potential_energy() + ENERGY_NOISE * n * rng.normal()
        forces = STIFFNESS_BIAS * atoms.get_forces() + FORCE_NOISE * rng.normal(size=(n, 3))
        stress = STIFFNESS_BIAS * atoms.get_stress()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces, stress=stress)
        out.append(atoms)
    return out


def make_data(folder: str, n_hf: int, n_lf: int, n_target: int, n_test: int, seed: int = 0) -> dict[str, str]:
    """Write the training file (both sources tagged), the unlabelled target sample and the test set."""
    base = 10 * seed
    rng = np.random.default_rng(7 + base)
    hf = fcc_alloy_structures(n_hf, repeats=((2, 2, 2),), seed=base + 1, **TARGET)
    lf = low_fidelity(fcc_alloy_structures(n_lf, repeats=((2, 2, 2),), seed=base + 2, **LOW_FIDELITY), rng)
    for atoms in hf:
        atoms.info["source"] = "hf"
    for atoms in lf:
        atoms.info["source"] = "lf"
    paths = {name: os.path.join(folder, f"{name}.extxyz") for name in ("train", "target_sample", "test")}
    write(paths["train"], hf + lf, format="extxyz")
    # the target sample's labels are never used: it stands for structures one could not afford to label
    write(paths["target_sample"], fcc_alloy_structures(n_target, repeats=((2, 2, 2),), seed=base + 3, **TARGET),
          format="extxyz")
    write(paths["test"], fcc_alloy_structures(n_test, repeats=((2, 2, 2),), seed=base + 4, **TARGET), format="extxyz")
    return paths


def score(run_dir: str, test_path: str) -> dict[str, float]:
    """Held-out errors of a run's best network on the target test set."""
    model, species = load_checkpoint(run_dir, "best")
    graphs = [atoms_to_data(a, species, model.cutoff, next(model.parameters()).dtype) for a in read_structures([test_path])]
    metrics = error_metrics(collect(model.eval(), make_loader(graphs, 8, shuffle=False, seed=0), species))
    return {"energy_rmse_meV_per_atom": 1e3 * metrics.energy_rmse, "force_rmse_meV_per_A": 1e3 * metrics.force_rmse}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small data and budget (about a minute)")
    parser.add_argument("--out", default="multi_source_out")
    parser.add_argument("--seed", type=int, default=0, help="seeds the synthetic data and both training runs")
    args = parser.parse_args()
    quick = args.quick or os.environ.get("SCALELINK_EXAMPLE_QUICK") == "1"
    n_hf, n_lf, n_target, n_test, seconds, epochs = (8, 40, 30, 10, 12.0, 40) if quick else (12, 120, 60, 40, 75.0, 400)
    os.makedirs(args.out, exist_ok=True)
    paths = make_data(args.out, n_hf, n_lf, n_target, n_test, args.seed)
    print(f"data: {n_hf} high-fidelity + {n_lf} low-fidelity training structures, {n_target} unlabelled target "
          f"structures, {n_test} held-out target structures; {seconds:.0f} s of training per run")

    common = dict(
        data=[paths["train"]], species=["Cu", "Ni"], cutoff=4.0, epochs=epochs, time_limit=seconds,
        test_fraction=0.0, validation_fraction=0.1, batch_size=2, seed=args.seed, patience=epochs,
        model={"num_layers": 1, "features": 16, "num_basis": 6},
    )
    runs = {
        "plain": {},
        "weighted_nll": {
            "sources": {
                "hf": {"noise_energy": 0.005, "noise_forces": 0.1, "learn_noise": True},
                "lf": {"noise_energy": 0.005, "noise_forces": 0.1, "learn_noise": True, "energy_offset": True},
            },
            "importance_weights": paths["target_sample"],
        },
    }
    summary: dict[str, object] = {"quick": quick, "seed": args.seed, "train_seconds": seconds,
                                  "structures": {"hf": n_hf, "lf": n_lf, "target_sample": n_target, "test": n_test}}
    for name, extra in runs.items():
        t0 = time.perf_counter()
        run_dir = os.path.join(args.out, name)
        train(load_config(None, out=run_dir, **common, **extra), progress=False, overwrite=True)
        result = score(run_dir, paths["test"])
        with open(os.path.join(run_dir, "metrics.json"), encoding="utf-8") as handle:
            noise = json.load(handle).get("source_noise")
        summary[name] = {**result, "seconds": time.perf_counter() - t0, "learned_noise": noise}
        print(f"{name:>13}: held-out target energy RMSE {result['energy_rmse_meV_per_atom']:.2f} meV/atom, "
              f"force RMSE {result['force_rmse_meV_per_A']:.1f} meV/Å")
        if noise:
            for source, levels in noise.items():
                offset = levels.get("energy_offset_meV_per_atom")
                print(f"{'':>15}learned noise of {source}: {levels['noise_energy_meV_per_atom']:.1f} meV/atom, "
                      f"{levels['noise_forces_meV_per_A']:.0f} meV/Å"
                      + ("" if offset is None else f"; energy offset {offset[0]:.0f} (Cu), {offset[1]:.0f} (Ni) meV/atom"))
    with open(os.path.join(args.out, "summary.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    print(f"wrote {os.path.join(args.out, 'summary.json')}")


if __name__ == "__main__":
    main()
