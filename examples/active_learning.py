"""Active learning with a committee and LAMMPS: from low-temperature data to 1200 K.

A potential trained only on gently rattled Cu–Ni crystals (what a few low-temperature
snapshots give) is asked to run molten-hot-ish MD at 1200 K, a regime its data never
covered. Active learning closes the gap with few extra reference calculations:

1. a committee of small GNN potentials is trained on the current data and deployed as one
   file (``scalelink train-committee`` does the same from the command line);
2. LAMMPS runs NVT MD at 1200 K with ``pair_style scalelink`` on that file;
   ``compute scalelink/deviation`` measures how much the members disagree on the forces
   and ``fix scalelink/collect`` writes out every checked frame where they disagree by more
   than a threshold;
3. the reference (ASE's EMT here; ``labeller="eam"`` uses LAMMPS' CuNi EAM instead, and
   ``"module:factory"`` any ASE calculator) labels a few of those frames;
4. they join the data and the committee is retrained from its previous weights.

After each committee the script reports its force error on a fixed held-out set of
reference MD snapshots at 1200 K, which the loop never trains on; it should fall
iteration by iteration. A falling error alone does not say *why* it falls: each committee
also trains longer in total, warm-started from the previous one. So a control arm trains a
second committee every iteration the same way (same members, seeds and per-member budget,
warm-started from the previous control committee) on the initial low-temperature data
only, and is scored on the same held-out set: the gap between the two curves is what the
collected frames bought. ``scalelink learn -o DIR [--control]`` runs the same loop.

Run::

    python examples/active_learning.py            # 5 to 8 minutes on 2 cores (with the control arm)
    python examples/active_learning.py --quick    # under a minute, no control arm (the test suite)

It writes ``active_learning_out/learning.json`` and ``learning.png`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import os

import mpi4py.MPI  # noqa: F401  (loads libmpi before the lammps module needs it)

from scalelink.campaigns.active_learning import LearnConfig, run_active_learning


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small settings (about a minute)")
    parser.add_argument("--out", default="active_learning_out")
    parser.add_argument("--labeller", default="emt", help="emt, eam or module:factory")
    args = parser.parse_args()
    quick = args.quick or os.environ.get("SCALELINK_EXAMPLE_QUICK") == "1"

    # start: 40 low-temperature structures (rattle 0.01-0.04 Å, strain 1 %); target: 1200 K
    # the control arm about doubles the training time; --quick (the test suite) leaves it out
    config = LearnConfig.quick(labeller=args.labeller) if quick else LearnConfig(labeller=args.labeller, control=True)
    records = run_active_learning(config, args.out)

    print()
    print(f"{'iteration':>9} {'structures':>10} {'target force RMSE':>18} {'control (no new data)':>22} "
          f"{'max deviation':>14} {'collected':>10}")
    for r in records:
        control = f"{r['control_force_rmse_meV_per_A']:>16.1f} meV/Å" if config.control else f"{'-':>21}"
        print(f"{r['iteration']:>9} {r['training_structures']:>10} {r['target_force_rmse_meV_per_A']:>12.1f} meV/Å "
              f"{control} {r['deviation_max_eV_per_A'] or 0.0:>9.3f} eV/Å {r['collected']:>5}/{r['checks']}")
    print(f"wrote {os.path.join(args.out, 'learning.json')} and learning.png")


if __name__ == "__main__":
    main()
