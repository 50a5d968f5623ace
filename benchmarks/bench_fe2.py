"""FE² wall time: surrogate vs full RVE vs DNS, serial and on 2 ranks.

Runs ``examples/fe2_plate.py`` (fibre-reinforced plate, nonlinear matrix) at the given
settings under ``mpirun -n 1`` and ``-n 2`` and tabulates, from one run each:

* wall time of each solve and the time inside the micro model's calls (slowest rank),
* the ratio full RVE / surrogate of both,
* each FE² solution's error against the DNS (plate-averaged stress, mid-line displacement).

Usage::

    python benchmarks/bench_fe2.py                       # macro 16 × 8 triangles pairs, P2
    python benchmarks/bench_fe2.py --macro-cells 8 --ranks 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(ranks: int, macro_cells: int, resolution: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, str(ROOT / "examples" / "fe2_plate.py"), "--out", tmp,
                   "--macro-cells", str(macro_cells), "--resolution", str(resolution),
                   "--steps", str(steps)]
        if ranks > 1:
            command = [str(BIN / "mpirun"), "-n", str(ranks), *command]
        proc = subprocess.run(command, capture_output=True, text=True,
                              env=dict(os.environ, OMP_NUM_THREADS="1"))
        if proc.returncode != 0:
            raise SystemExit(proc.stdout[-2000:] + proc.stderr[-2000:])
        return json.loads((Path(tmp) / "results.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--macro-cells", type=int, default=16)
    parser.add_argument("--resolution", type=int, default=12)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results_fe2.json")
    args = parser.parse_args()
    rows = []
    print(f"{'ranks':>5} {'solver':>13} {'points':>7} {'wall s':>8} {'micro s':>8} "
          f"{'err <σ> %':>9} {'err u %':>8}")
    for ranks in args.ranks:
        result = run(ranks, args.macro_cells, args.resolution, args.steps)
        for key in ("dns", "fe2_rve", "fe2_surrogate"):
            entry = result[key]
            row = {"ranks": ranks, "solver": key, "points": entry["points"],
                   "seconds": entry["seconds"], "micro_seconds": entry["micro_seconds"],
                   "stress_error": entry.get("stress_error"),
                   "displacement_error": entry.get("displacement_error")}
            rows.append(row)
            err = ("" if row["stress_error"] is None else
                   f"{100 * row['stress_error']:9.2f} {100 * row['displacement_error']:8.2f}")
            print(f"{ranks:5d} {key:>13} {row['points']:7d} {row['seconds']:8.2f} "
                  f"{row['micro_seconds']:8.3f} {err}")
        rve, sur = result["fe2_rve"], result["fe2_surrogate"]
        print(f"      full RVE / surrogate: wall {rve['seconds'] / sur['seconds']:.0f}×, "
              f"micro {rve['micro_seconds'] / sur['micro_seconds']:.0f}×")
    record = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "settings": vars(args) | {"out": str(args.out)}, "rows": rows}
    args.out.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
