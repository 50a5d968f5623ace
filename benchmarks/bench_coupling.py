"""Cost of dynamic LAMMPS–dolfinx coupling against LAMMPS alone on the same atoms.

    python benchmarks/bench_coupling.py [--sizes 16:0 16:250 64:0] [--ranks 2] [--repeats 3]

For each size ``ROWS:LEAD`` it runs ``examples/coupled_wave_mpi.py`` under ``mpirun -n RANKS``
(one FE rank, the rest MD ranks) with no wave-packet sweep, only its timing run: a packet through a
strip ``ROWS`` cells high with ``LEAD`` extra lattice spacings of atoms, coupled, and then the same
atoms, the same number of steps, on the same MD ranks, by LAMMPS alone (pad atoms held, no coupling
fix). Waiting ranks spin (``--spin``), which is right when every rank has a core of its own; on a
machine with fewer free cores than ranks the wait turns into scheduling latency and the ratio says
more about the machine than about the coupling. Each size runs ``--repeats`` times; the table gives
the ratio of every repeat (coupled ÷ alone, both from the same run) and the per-step CPU split that
the example reports. Writes JSON to ``--out``.
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


def run(ranks: int, rows: int, lead: float, spin: float, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "numbers.json"
        command = [str(BIN / "mpirun"), "-n", str(ranks), sys.executable,
                   str(ROOT / "examples" / "coupled_wave_mpi.py"), "--wavenumbers", "--time-rows", str(rows),
                   "--time-lead", str(lead), "--spin", str(spin), "--json", str(out), *extra]
        proc = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
        return json.loads(out.read_text())["timing"]


# example flags of each variant
VARIANTS = {"both": [], "none": ["--no-compiled", "--no-defer"], "compiled": ["--no-defer"], "defer": ["--no-compiled"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["16:0", "16:250", "64:0"],
                        help="ROWS:LEAD pairs (strip height in cells, extra atomistic length in spacings)")
    parser.add_argument("--ranks", type=int, default=2, help="mpirun ranks (1 FE + the rest MD)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--spin", type=float, default=1.0, help="seconds a waiting rank spins before napping")
    parser.add_argument("--variants", nargs="+", default=["both"], choices=sorted(VARIANTS),
                        help="which of the two MD-side/FE-side speed-ups to use: both (default), none, "
                             "compiled (FE critical path only), defer (MD integrates meanwhile only)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results_coupling.json")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows = []
    print("| atoms | variant | steps | coupled s | alone s | ratio | LAMMPS alone ms/step CPU | coupling fix ms/step "
          "| FE critical ms/step | MD wait ms/step |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        height, lead = size.split(":")
        for _ in range(args.repeats):
            for variant in args.variants:  # interleaved, so that every variant sees the same machine
                t = run(args.ranks, int(height), float(lead), args.spin, VARIANTS[variant])
                t.update(size=size, rows=int(height), lead=float(lead), variant=variant,
                         ratio=t["coupled_s"] / t["alone_s"])
                rows.append(t)
                print(f"| {t['atoms']:,} | {variant} | {t['steps']} | {t['coupled_s']:.2f} | {t['alone_s']:.2f} | "
                      f"{t['ratio']:.3f} | {t['alone_cpu_ms']:.3f} | {t['md_work_ms']:.3f} | "
                      f"{t['fe_critical_cpu_ms']:.3f} | {t['md_wait_ms']:.3f} |", flush=True)
    print("\nfastest of the repeats: | atoms | variant | coupled s | alone s | ratio of the two |")
    for size in args.sizes:
        for variant in args.variants:
            mine = [t for t in rows if t["size"] == size and t["variant"] == variant]
            coupled, alone = min(t["coupled_s"] for t in mine), min(t["alone_s"] for t in mine)
            print(f"| {mine[0]['atoms']:,} | {variant} | {coupled:.3f} | {alone:.3f} | {coupled / alone:.3f} |")
    load_after = os.getloadavg()[0]
    record = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "ranks": args.ranks, "spin": args.spin, "load_average": [load_before, load_after], "rows": rows}
    args.out.write_text(json.dumps(record, indent=2))
    print(f"\nload average {load_before:.1f} before, {load_after:.1f} after; wrote {args.out}")


if __name__ == "__main__":
    main()
