"""Score trained potentials on an mlearn test set: each alone, per structure group, and every committee of them.

    python benchmarks/bench_mlearn_committee.py --test shared/data/mlearn/Mo/test.extxyz \\
        s0=run0/model.pt s1=run1/model.pt s2=run2/model.pt

Each model (a deployed ScaleLink file, for instance the ``model.pt`` that ``bench_mlearn.py`` leaves in
its work folder) is evaluated through :class:`~scalelink.bridge.ase.ScaleLinkCalculator`. Printed:
per model, the signed mean and MAE of the energy per atom and the force MAE for each ``config_type``
group of the test file; then, for every subset of the models, the errors of the mean of the members'
predictions (energy per atom and force components), the prediction of a committee of them. Errors as
published for the mlearn sets: energy MAE per atom over structures (meV/atom), force MAE over all
Cartesian components (meV/Å).
"""

from __future__ import annotations

import argparse
import itertools
from collections import defaultdict

import numpy as np
from ase.io import read

from scalelink.bridge.ase import ScaleLinkCalculator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test", required=True, help="extended XYZ test set with energies and forces")
    parser.add_argument("models", nargs="+", help="NAME=MODEL_FILE, one per model")
    args = parser.parse_args()
    models = {}
    for item in args.models:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            parser.error(f"a model is given as NAME=MODEL_FILE, got {item!r}")
        models[name] = path
    frames = read(args.test, ":")
    groups = [str(atoms.info.get("config_type", "all")) for atoms in frames]
    reference_energy = np.array([atoms.get_potential_energy() / len(atoms) for atoms in frames])
    reference_forces = [atoms.get_forces() for atoms in frames]
    by_group = defaultdict(list)
    for i, group in enumerate(groups):
        by_group[group].append(i)
    energies, forces = {}, {}
    for name, path in models.items():
        calc = ScaleLinkCalculator(path)
        e, f = [], []
        for atoms in frames:
            copy = atoms.copy()
            copy.calc = calc
            e.append(copy.get_potential_energy() / len(atoms))
            f.append(copy.get_forces())
        energies[name], forces[name] = np.array(e), f
        print(f"{name} ({path})")
        for group, index in by_group.items():
            de = 1e3 * (energies[name][index] - reference_energy[index])
            df = 1e3 * np.concatenate([np.abs(f[i] - reference_forces[i]).ravel() for i in index])
            print(f"  {group:12s} {len(index):3d} structures: energy signed {de.mean():+7.2f}, MAE {np.abs(de).mean():6.2f} "
                  f"meV/atom; force MAE {df.mean():6.1f} meV/Å")
    print("committee (mean of the members' predictions): energy MAE meV/atom / force MAE meV/Å")
    for size in range(1, len(models) + 1):
        for members in itertools.combinations(models, size):
            e = np.mean([energies[m] for m in members], axis=0)
            df = np.concatenate([np.abs(np.mean([forces[m][i] for m in members], axis=0) - reference_forces[i]).ravel()
                                 for i in range(len(frames))])
            print(f"  {' + '.join(members):30s} {1e3 * np.abs(e - reference_energy).mean():6.2f} / {1e3 * df.mean():6.1f}")


if __name__ == "__main__":
    main()
