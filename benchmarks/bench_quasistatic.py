"""Cost of the quasi-static coupling: the coupled solve against the atomistic region alone.

    python benchmarks/bench_quasistatic.py [--sizes 7:4:20 12:8:36 20:14:60] [--repeats 3] [--ranks 2] [--plain]

Each size ``A:H:L`` runs ``examples/coupled_vacancy.py --atoms A --hole H --size L`` (free atoms
within A lattice spacings, FE hole H, FE domain L) under ``mpirun -n ranks`` and reads its JSON:
the coupled solve (set-up excluded: the condensation of the continuum is reported apart), the
same atomistic region alone with its pad held at the far field (LAMMPS conjugate gradients, and
``fix scalelink/relax`` preconditioned by its own coarse grid), and the fully atomistic reference.
All timings of one row come from one run, measured one after the other on the same ranks.
``--plain`` adds the condensed solve without the coarse grid (plain Anderson steps, and the
region alone by plain steps too), ``--schwarz`` the alternating Schwarz iterations.
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


def run(ranks: int, size: str, method: str) -> dict[str, float]:
    atoms, hole, half = size.split(":")
    extra = ["--coarse", "0"] if method == "plain" else []
    method = "condensed" if method == "plain" else method
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "out.json"
        command = [str(Path(sys.executable).parent / "mpirun"), "-n", str(ranks), sys.executable,
                   str(ROOT / "examples" / "coupled_vacancy.py"), "--atoms", atoms, "--hole", hole, "--size", half,
                   "--method", method, "--json", str(out), *extra]
        proc = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["7:4:20", "12:8:36", "20:14:60"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--schwarz", action="store_true")
    parser.add_argument("--plain", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; load before "
          f"{os.getloadavg()[0]:.2f}; {args.ranks // 2} FE + {args.ranks - args.ranks // 2} MD ranks")
    header = ("size", "method", "atoms", "coupled ms", "alone cg ms", "alone relax ms", "÷ cg", "÷ relax",
              "evaluations", "alone steps cg / relax", "H / a", "condense s", "full ms", "error Å")
    print(" | ".join(header))
    rows = []
    methods = ["condensed"] + (["plain"] if args.plain else []) + (["schwarz"] if args.schwarz else [])
    for size in args.sizes:
        for _ in range(args.repeats):
            for method in methods:
                r = run(args.ranks, size, method)
                row = {"size": size, "method": method, **r}
                rows.append(row)
                print(f"{size} | {method} | {r['atoms_coupled']} | {r['time_coupled'] * 1e3:.1f} | "
                      f"{r['time_alone'] * 1e3:.1f} | {r['time_alone_same_method'] * 1e3:.1f} | "
                      f"{r['time_coupled'] / r['time_alone']:.2f} | {r['time_coupled'] / r['time_alone_same_method']:.2f} | "
                      f"{r['evaluations']} | {r['steps_alone']} / {r['steps_alone_same_method']} | "
                      f"{r['coarse_spacing']:g} | {r['time_condense']:.2f} | {r['time_full'] * 1e3:.0f} | "
                      f"{r['coupled_max']:.2e}", flush=True)
    print(f"load after {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
