"""The full scale bridge: EMT copper → GNN potential → LAMMPS atomistic RVE → surrogate → FE².

A plane-strain copper plate with a hole is pulled beyond the linear range; its constitutive law
comes, through a chain of ScaleLink steps, from an interatomic reference that needs nothing
outside ASE (the effective-medium theory, EMT, of copper). Every step is a ``scalelink``
command (run in-process here through :func:`scalelink.cli.main.main`, which is what the
console script calls) or a short Python call:

1. **Reference data** — fcc Cu cells, every strain component drawn in ±3 % and the atoms
   rattled, labelled with energies, forces and stresses by EMT (the strains put the
   elasticity into the stresses)::

       scalelink make-data OUT/cu_emt.extxyz --n 300 --species Cu

2. **Potential** — a 2-layer GNN trained on energies, forces and (weighted up) stresses for a
   fixed time budget, deployed in double precision for finite-difference tangents::

       scalelink train OUT/train.yaml --data OUT/cu_emt.extxyz --species Cu --out OUT/potential \\
           --overwrite --epochs 100000 --time-limit 200 --quiet
       scalelink deploy OUT/potential -o OUT/cu_gnn.pt --dtype float64

3. **Atomistic RVE** — :class:`~scalelink.fe2.AtomisticRVE` runs LAMMPS with
   ``pair_style scalelink`` on that file: the cubic 4-atom cell, relaxed to zero stress, is
   strained by the Cauchy–Born rule (plane strain, ``strain_size=3``) with its atoms moved
   affinely (``relax=False``: every atom of a monatomic Bravais lattice is a centre of
   inversion, so a relaxation would change nothing at six times the cost). Its elastic constants are
   compared with EMT's own, computed here by central differences of ASE's EMT stress at EMT's
   zero-pressure lattice constant (an independent path: no LAMMPS, no network).
4. **Surrogate** — the RVE's stress and tangent sampled in a strain box, a constitutive network
   fitted with a Sobolev loss on both, and deployed::

       scalelink sample-micro OUT/rve_samples.npz --model atomistic --structure OUT/cu_cell.extxyz \\
           --potential OUT/cu_gnn.pt --strain-size 3 --reference-relax --no-relax \\
           --num-samples 400 --strain-range 0.025
       scalelink train-surrogate OUT/rve_samples.npz -o OUT/surrogate --epochs 200
       scalelink deploy-surrogate OUT/surrogate -o OUT/cu_surrogate.pt

5. **FE²** — a quarter of a square plate (side 10 mm) with a central hole (radius 2 mm),
   symmetry on ``x = 0`` and ``y = 0``, the edge ``x = 10`` pulled. The load is chosen so that
   the largest strain component at any quadrature point fills 90 % of the sampled box (a linear
   pre-solve with the RVE's zero-strain stiffness predicts it; the converged maximum is checked
   and reported). :class:`~scalelink.fe2.FE2Problem` with
   :class:`~scalelink.fe2.SurrogateMicroModel` solves it in load steps;
   :class:`~scalelink.fe2.FE2Writer` writes ``OUT/plate_*.bp`` for ParaView.
6. **Validation** — (a) the atomistic RVE itself (and EMT) evaluated at the converged strains
   of the most strained quadrature points and a few random ones, against the surrogate's
   stresses there; (b) the same plate on a coarse mesh solved three ways: FE² with the
   surrogate, FE² with the atomistic RVE at every quadrature point (one LAMMPS calculation per
   point and Newton iteration), and linear elasticity with the RVE's zero-strain stiffness,
   compared by the grip stress (reaction force over the gripped edge) and the displacements.

Run::

    python examples/full_chain.py                 # about 6 minutes on 2 cores
    python examples/full_chain.py --quick         # tiny settings, about a minute (the tests)
    mpirun -n 2 python examples/full_chain.py     # steps 1-4 on rank 0, FE² on both ranks
    mpirun -n 2 python examples/full_chain.py --stage fe2   # FE² again on the files of a run

``SCALELINK_EXAMPLE_QUICK=1`` also selects the quick settings. The script prints a summary table
and writes ``OUT/summary.json`` (numbers and wall time per step); ``OUT`` is ``full_chain_out``
unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import time
import traceback
import warnings

# TorchScript still works in this torch but announces its deprecation when torch-geometric
# (imported with scalelink.training) scripts its classes.
warnings.filterwarnings("ignore", message=".*torch.jit.*is deprecated", category=FutureWarning)

import ase.parallel
import mpi4py.MPI as MPI  # noqa: I001  (before dolfinx and lammps)
import numpy as np
import ufl
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from dolfinx import fem, mesh
from scipy.optimize import brentq

from scalelink.coupling.exchange import idle_barrier
from scalelink.fe2 import (
    AtomisticRVE,
    FE2Problem,
    FE2Writer,
    LinearElastic,
    SurrogateMicroModel,
    mandel_from_tensor,
    tensor_from_mandel,
)
from scalelink.fe2.tensors import PLANE_STRAIN_INDICES

# ASE's file I/O broadcasts from rank 0 over COMM_WORLD once mpi4py is loaded; steps 1-4 run on
# rank 0 alone, so ASE must read and write serially on every rank.
ase.parallel.world.comm = ase.parallel.DummyMPI()

SIDE, RADIUS = 10.0, 2.0  # mm: quarter plate and hole
LATTICE = 3.61  # Å, the cubic cell the RVE starts from (relaxed to the potential's own)
# The full run trains the potential for a time budget; the quick one for a number of epochs, so
# that its result does not depend on the machine's load.
# mesh/coarse: (radial, angular) cells of the surrogate plate and of the three-way comparison.
FULL = dict(structures=300, train=("--epochs", 100000, "--time-limit", 200), samples=400, amplitude=0.025,
            surrogate_epochs=200, mesh=(16, 24), coarse=(6, 8), steps=3, probes=6)
QUICK = dict(structures=40, train=("--epochs", 20), samples=50, amplitude=0.025, surrogate_epochs=20,
             mesh=(4, 6), coarse=(2, 2), steps=1, probes=3)
BOX_FILL = 0.9  # share of the sampled strain box the most strained quadrature point may use
# stresses weigh more than by default: the RVE needs the potential's elasticity
TRAIN_YAML = "model: {num_layers: 2, features: 32, num_basis: 8}\nloss: {energy: 1.0, forces: 10.0, stress: 1000.0}\n"


def scalelink(*argv: object) -> None:
    """Run one ``scalelink`` command in this process, echoing it."""
    from scalelink.cli.main import main

    words = [str(a) for a in argv]
    print("$ scalelink " + " ".join(words), flush=True)
    if main(words) != 0:
        raise RuntimeError(f"scalelink {words[0]} failed (see its message above)")


# --------------------------------------------------------------------------- EMT, the reference

def _plane_cell(base, strain: np.ndarray):
    full = np.zeros(6)
    full[list(PLANE_STRAIN_INDICES)] = strain
    atoms = base.copy()
    atoms.set_cell(base.cell[:] @ (np.eye(3) + tensor_from_mandel(full)), scale_atoms=True)
    atoms.calc = EMT()
    return atoms


def emt_cell():
    """EMT's zero-pressure cubic Cu cell (the lattice constant by root-finding on the pressure)."""
    def pressure(a: float) -> float:
        atoms = bulk("Cu", "fcc", a=a, cubic=True)
        atoms.calc = EMT()
        return float(np.trace(atoms.get_stress(voigt=False)))
    return bulk("Cu", "fcc", a=brentq(pressure, 3.4, 3.8, xtol=1e-12), cubic=True)


def emt_stress(base, strains: np.ndarray) -> np.ndarray:
    """EMT's plane-strain Mandel stress (GPa) at each strain ``(n, 3)``; a loop over a handful."""
    return np.array([mandel_from_tensor(_plane_cell(base, e).get_stress(voigt=False) / units.GPa)
                     [list(PLANE_STRAIN_INDICES)] for e in strains])


def emt_tangent(base, step: float = 1e-4) -> np.ndarray:
    """Central difference of EMT's stress at zero strain, ``(3, 3)`` Mandel, GPa."""
    return np.stack([(emt_stress(base, step * e[None])[0] - emt_stress(base, -step * e[None])[0])
                     / (2 * step) for e in np.eye(3)], axis=1)


def cubic_constants(tangent: np.ndarray) -> dict[str, float]:
    """C11, C12, C44 (GPa) from the plane-strain Mandel tangent of a cube-aligned crystal."""
    return {"C11": float(tangent[0, 0]), "C12": float(0.5 * (tangent[0, 1] + tangent[1, 0])),
            "C44": float(0.5 * tangent[2, 2])}


def rve(out: pathlib.Path) -> AtomisticRVE:
    """The atomistic RVE of step 3, as ``sample-micro --model atomistic --reference-relax
    --no-relax`` builds it (why no relaxation: see step 3 above)."""
    import ase.io

    return AtomisticRVE(ase.io.read(out / "cu_cell.extxyz"),
                        ["pair_style scalelink", f"pair_coeff * * {out / 'cu_gnn.pt'} Cu"],
                        strain_size=3, relax=False, reference_relax=True)


# --------------------------------------------------------------------------- steps 1-4 (rank 0)

def prepare(out: pathlib.Path, s: dict) -> dict:
    """Steps 1-4; returns their numbers and wall times."""
    import ase.io

    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, dict] = {}
    clock = time.perf_counter()

    scalelink("make-data", out / "cu_emt.extxyz", "--n", s["structures"], "--species", "Cu")
    report["1_reference_data"] = {"structures": s["structures"], "seconds": time.perf_counter() - clock}

    clock = time.perf_counter()
    (out / "train.yaml").write_text(TRAIN_YAML)
    scalelink("train", out / "train.yaml", "--data", out / "cu_emt.extxyz", "--species", "Cu",
              "--out", out / "potential", "--overwrite", *s["train"], "--quiet")
    scalelink("deploy", out / "potential", "-o", out / "cu_gnn.pt", "--dtype", "float64")
    test = json.loads((out / "potential" / "metrics.json").read_text())["test"]
    report["2_potential"] = {key: test[key] for key in ("energy_rmse_meV_per_atom", "force_rmse_meV_per_A",
                                                        "stress_rmse_GPa")}
    report["2_potential"]["seconds"] = time.perf_counter() - clock

    clock = time.perf_counter()
    ase.io.write(out / "cu_cell.extxyz", bulk("Cu", "fcc", a=LATTICE, cubic=True))
    with rve(out) as cell:
        start = time.perf_counter()
        _, tangent = cell.evaluate(np.zeros((1, 3)))
        point_seconds = time.perf_counter() - start
        gnn_lattice = float(cell.reference_cell[0, 0])
    reference = emt_cell()
    gnn, emt = cubic_constants(tangent[0]), cubic_constants(emt_tangent(reference))
    report["3_atomistic_rve"] = {
        "lattice_constant_A": {"gnn": gnn_lattice, "emt": float(reference.cell[0, 0])},
        "elastic_constants_GPa": {"gnn": gnn, "emt": emt},
        "elastic_constant_error_percent": {k: 100 * (gnn[k] - emt[k]) / emt[k] for k in gnn},
        "seconds_per_point_with_tangent": point_seconds, "seconds": time.perf_counter() - clock}

    clock = time.perf_counter()
    scalelink("sample-micro", out / "rve_samples.npz", "--model", "atomistic", "--structure", out / "cu_cell.extxyz",
              "--potential", out / "cu_gnn.pt", "--strain-size", 3, "--reference-relax", "--no-relax",
              "--num-samples", s["samples"], "--strain-range", s["amplitude"], "--seed", 1)
    sampled = time.perf_counter() - clock
    scalelink("train-surrogate", out / "rve_samples.npz", "-o", out / "surrogate", "--epochs", s["surrogate_epochs"])
    scalelink("deploy-surrogate", out / "surrogate", "-o", out / "cu_surrogate.pt")
    held_out = json.loads((out / "surrogate" / "metrics.json").read_text())["held_out"]
    report["4_surrogate"] = {"samples": s["samples"], "strain_amplitude": s["amplitude"],
                             "held_out_stress_relative_rmse": held_out["stress_relative_rmse"],
                             "held_out_tangent_relative_rmse": held_out["tangent_relative_rmse"],
                             "sampling_seconds": sampled, "seconds": time.perf_counter() - clock}
    return report


# --------------------------------------------------------------------------- step 5: the plate

class Plate:
    """Quarter plate ``[0, SIDE]²`` minus the hole: a structured mesh of the unit square mapped
    ray by ray (graded toward the hole), P2 displacement, symmetry and grip conditions."""

    def __init__(self, comm: MPI.Comm, cells: tuple[int, int]) -> None:
        radial, angular = cells[0], 2 * max(cells[1] // 2, 1)  # even: a vertex at the corner
        domain = mesh.create_rectangle(comm, [[0.0, 0.0], [1.0, 1.0]], [radial, angular], mesh.CellType.triangle)
        x = domain.geometry.x
        theta = 0.5 * np.pi * x[:, 1]
        c, s = np.cos(theta), np.sin(theta)
        reach = RADIUS + x[:, 0] ** 1.5 * (SIDE / np.maximum(c, s) - RADIUS)
        x[:, 0], x[:, 1] = reach * c, reach * s
        V = fem.functionspace(domain, ("Lagrange", 2, (2,)))
        self.u = fem.Function(V, name="displacement")
        self.grip = fem.Constant(domain, 0.0)  # displacement of the edge x = SIDE, mm

        def edge(component: int, where, value) -> fem.DirichletBC:
            facets = mesh.locate_entities_boundary(domain, 1, where)
            dofs = fem.locate_dofs_topological(V.sub(component), 1, facets)
            return fem.dirichletbc(value, dofs, V.sub(component))

        zero = np.float64(0.0)
        self.bcs = [edge(0, lambda p: np.isclose(p[0], 0.0), zero), edge(1, lambda p: np.isclose(p[1], 0.0), zero),
                    edge(0, lambda p: np.isclose(p[0], SIDE), self.grip)]
        one = fem.form(fem.Constant(domain, 1.0) * ufl.dx(domain=domain))
        self.area = comm.allreduce(fem.assemble_scalar(one), op=MPI.SUM)

    def grip_stress(self, problem: FE2Problem) -> float:
        """Reaction force on the gripped edge over its length (GPa). With ``w = (x/SIDE, 0)`` in
        the discrete virtual work, the reaction is ``∫σ_xx dA / SIDE`` (symmetry lines and the
        hole carry no work), so it follows from the volume average."""
        return float(problem.volume_average()[0][0] * self.area / SIDE**2)


def owned_rows(function: fem.Function) -> np.ndarray:
    """Values ``(n, m)`` of a quadrature Function at the rank's points, in batch order."""
    space = function.function_space
    cells = space.mesh.topology.index_map(space.mesh.topology.dim).size_local
    width = int(np.prod(space.value_shape))
    return function.x.array.reshape(-1, width)[space.dofmap.list[:cells].ravel()]


def box_usage(problem: FE2Problem, amplitude: float) -> float:
    """Largest |strain component| at any quadrature point over the sampled amplitude."""
    local = np.abs(owned_rows(problem.strain)).max(initial=0.0)
    return problem.u.function_space.mesh.comm.allreduce(local, op=MPI.MAX) / amplitude


def solve_plate(plate: Plate, micro, displacement: float, steps: int, amplitude: float,
                writer_stem: pathlib.Path | None = None) -> tuple[FE2Problem, dict]:
    """Pull the plate to ``displacement`` (mm) in ``steps`` from rest; return the problem and its
    load curve, Newton iterations, box usage and time."""
    comm = plate.u.function_space.mesh.comm
    plate.u.x.array[:] = 0.0
    problem = FE2Problem(plate.u, micro, bcs=plate.bcs)
    writer = None if writer_stem is None else FE2Writer(problem, writer_stem)
    curve, iterations, start = [], [], time.perf_counter()
    for k in range(1, steps + 1):
        plate.grip.value = displacement * k / steps
        iterations.append(problem.solve(rtol=1e-8).iterations)
        problem.commit()
        curve.append([displacement * k / steps, plate.grip_stress(problem)])
        if writer is not None:
            writer.write(k / steps)
    if writer is not None:
        writer.close()
    return problem, {"grip_stress_GPa": curve[-1][1], "load_curve": curve, "newton_iterations": iterations,
                     "box_usage": box_usage(problem, amplitude), "points": comm.allreduce(problem.num_points),
                     "seconds": time.perf_counter() - start,
                     "micro_seconds": comm.allreduce(problem.timings["micro"], op=MPI.MAX)}


# --------------------------------------------------------------------------- step 6: validation

def probe_points(problem: FE2Problem, amplitude: float, count: int, comm: MPI.Comm):
    """On rank 0: strains and surrogate stresses of the ``count`` most strained quadrature points
    and ``count`` random others (chosen in coordinate order, so any partition picks the same)."""
    rows = [problem.quadrature_points(), owned_rows(problem.strain), owned_rows(problem.stress)]
    gathered = comm.gather(rows, root=0)
    if comm.rank != 0:
        return None
    points, strain, stress = (np.concatenate(part) for part in zip(*gathered))
    order = np.lexsort((np.round(points[:, 1], 9), np.round(points[:, 0], 9)))
    strain, stress = strain[order], stress[order]
    usage = np.abs(strain).max(axis=1) / amplitude
    top = np.argsort(usage)[::-1][:count]
    rest = np.setdiff1d(np.arange(len(strain)), top)
    chosen = np.concatenate([top, np.random.default_rng(0).choice(rest, size=min(count, len(rest)), replace=False)])
    return strain[chosen], stress[chosen], usage[chosen]


def relative_errors(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Per-point |got − want| / |want| in % (Mandel norms)."""
    return 100 * np.linalg.norm(got - want, axis=1) / np.linalg.norm(want, axis=1)


def fe2(out: pathlib.Path, s: dict, amplitude: float, comm: MPI.Comm) -> dict:
    """Steps 5 and 6 on every rank; returns their numbers (the same on every rank)."""
    report: dict[str, dict] = {}
    clock = time.perf_counter()
    cell = rve(out)  # each rank's own LAMMPS instance, for the points it owns
    start = time.perf_counter()
    _, tangent = cell.evaluate(np.zeros((4, 3)))
    point_seconds = comm.allreduce((time.perf_counter() - start) / 4, op=MPI.MAX)
    linear = LinearElastic(0.5 * (tangent[0] + tangent[0].T))  # finite differences: nearly symmetric
    plate = Plate(comm, s["mesh"])
    unit = 0.01 * SIDE
    probe, _ = solve_plate(plate, linear, unit, 1, amplitude)
    displacement = BOX_FILL * unit / box_usage(probe, amplitude)  # linear: usage ∝ load
    linear_grip = plate.grip_stress(probe) * displacement / unit
    problem, main = solve_plate(plate, SurrogateMicroModel(out / "cu_surrogate.pt"), displacement, s["steps"],
                                amplitude, writer_stem=out / "plate_surrogate")
    main.update(grip_displacement_mm=displacement, nominal_strain=displacement / SIDE, strain_amplitude=amplitude,
                linear_grip_stress_GPa=linear_grip,
                nonlinearity_percent=100 * (main["grip_stress_GPa"] - linear_grip) / linear_grip)
    report["5_fe2"] = main
    report["5_fe2"]["seconds"] = time.perf_counter() - clock

    clock = time.perf_counter()
    probes = probe_points(problem, amplitude, s["probes"], comm)
    if comm.rank == 0:
        strain, surrogate_stress, usage = probes
        atomistic_stress = cell.stress(strain)
        emt = emt_stress(emt_cell(), strain)
        linear_stress, _ = linear.evaluate(strain)
        a = {"box_usage": usage.tolist(), "strain": strain.tolist(), "atomistic_stress_GPa": atomistic_stress.tolist(),
             "surrogate_error_percent": relative_errors(surrogate_stress, atomistic_stress).tolist(),
             "atomistic_vs_emt_percent": relative_errors(atomistic_stress, emt).tolist(),
             "linear_vs_atomistic_percent": relative_errors(linear_stress, atomistic_stress).tolist()}
    report["6a_pointwise"] = comm.bcast(a if comm.rank == 0 else None, root=0)
    report["6a_pointwise"]["seconds"] = time.perf_counter() - clock

    clock = time.perf_counter()
    coarse = Plate(comm, s["coarse"])
    cheap, sur = solve_plate(coarse, SurrogateMicroModel(out / "cu_surrogate.pt"), displacement, s["steps"], amplitude)
    u_surrogate = coarse.u.x.array.copy()
    busiest = comm.allreduce(cheap.num_points, op=MPI.MAX)
    estimate = busiest * point_seconds * s["steps"] * 4
    if comm.rank == 0:
        print(f"FE² with the atomistic RVE on the coarse mesh: {busiest} points on the busiest rank, "
              f"about {estimate:.0f} s (4 Newton iterations per step assumed)", flush=True)
    _, atom = solve_plate(coarse, cell, displacement, s["steps"], amplitude)
    u_atomistic = coarse.u.x.array.copy()
    _, lin = solve_plate(coarse, linear, displacement, 1, amplitude)
    scale = comm.allreduce(np.abs(u_atomistic).max(), op=MPI.MAX)
    gap = comm.allreduce(np.abs(u_surrogate - u_atomistic).max(), op=MPI.MAX)
    report["6b_coarse_fe2"] = {
        "surrogate": sur, "atomistic": atom, "linear": lin, "estimated_atomistic_seconds": estimate,
        "grip_stress_error_percent": 100 * (sur["grip_stress_GPa"] / atom["grip_stress_GPa"] - 1),
        "displacement_error_percent": 100 * gap / scale,
        "linear_vs_atomistic_percent": 100 * (lin["grip_stress_GPa"] / atom["grip_stress_GPa"] - 1),
        "speedup_micro": atom["micro_seconds"] / max(sur["micro_seconds"], 1e-12),
        "seconds": time.perf_counter() - clock}
    cell.close()
    return report


def print_summary(report: dict, total: float) -> None:
    r = report
    lines = [("1 reference data", f"{r['1_reference_data']['structures']} EMT-labelled Cu cells "
              "(strained ±3 %, rattled; energies, forces, stresses)", r["1_reference_data"])]
    p = r["2_potential"]
    lines.append(("2 GNN potential", f"held-out test: energy {p['energy_rmse_meV_per_atom']:.2f} meV/atom, force "
                  f"{p['force_rmse_meV_per_A']:.1f} meV/Å, stress {p['stress_rmse_GPa']:.3f} GPa RMSE", p))
    a = r["3_atomistic_rve"]
    gnn, emt, err = (a["elastic_constants_GPa"]["gnn"], a["elastic_constants_GPa"]["emt"],
                     a["elastic_constant_error_percent"])
    lines.append(("3 atomistic RVE", ", ".join(f"{k} {gnn[k]:.1f} (EMT {emt[k]:.1f}, {err[k]:+.1f} %)" for k in gnn)
                  + f"; a₀ {a['lattice_constant_A']['gnn']:.4f} Å (EMT {a['lattice_constant_A']['emt']:.4f})", a))
    g = r["4_surrogate"]
    lines.append(("4 surrogate", f"{g['samples']} RVE samples, |ε_i| ≤ {g['strain_amplitude']}; held-out relative "
                  f"RMSE stress {100 * g['held_out_stress_relative_rmse']:.3f} %, tangent "
                  f"{100 * g['held_out_tangent_relative_rmse']:.3f} %", g))
    if "5_fe2" in r:
        f = r["5_fe2"]
        lines.append(("5 FE² (surrogate)", f"{f['points']} points, grip {f['grip_displacement_mm']:.4f} mm "
                      f"(ε̄ {100 * f['nominal_strain']:.2f} %): grip stress {f['grip_stress_GPa']:.4f} GPa, linear "
                      f"{f['linear_grip_stress_GPa']:.4f} GPa ({f['nonlinearity_percent']:+.1f} %); max |ε_i| "
                      f"{100 * f['box_usage']:.0f} % of the box; Newton {f['newton_iterations']}", f))
        v = r["6a_pointwise"]
        e, k = np.asarray(v["surrogate_error_percent"]), len(v["surrogate_error_percent"]) // 2
        lines.append(("6a RVE at points", f"surrogate vs atomistic RVE: {e[:k].max():.3f} % (max, {k} most strained), "
                      f"{e[k:].max():.3f} % (max, {len(e) - k} random); linear law off by "
                      f"{v['linear_vs_atomistic_percent'][0]:.1f} % at the most strained; RVE vs EMT max "
                      f"{max(v['atomistic_vs_emt_percent']):.1f} %", v))
        c = r["6b_coarse_fe2"]
        lines.append(("6b coarse FE²", f"{c['atomistic']['points']} points: surrogate vs atomistic FE² grip stress "
                      f"{c['grip_stress_error_percent']:+.3f} %, displacement {c['displacement_error_percent']:.3f} %; "
                      f"linear vs atomistic {c['linear_vs_atomistic_percent']:+.1f} %; micro time "
                      f"{c['speedup_micro']:.0f}× less", c))
    print("\n" + "=" * 100)
    print(f"{'step':18s} {'result':70s} {'time (s)':>9s}")
    for name, text, entry in lines:
        print(f"{name:18s} {text} {entry['seconds']:9.1f}")
    print(f"total {total:.0f} s")
    print("=" * 100, flush=True)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings (the test suite)")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("full_chain_out"))
    parser.add_argument("--stage", choices=["all", "prepare", "fe2"], default="all",
                        help="prepare: steps 1-4 only; fe2: steps 5-6 on the files an earlier run left in --out")
    args = parser.parse_args(argv)
    quick = args.quick or os.environ.get("SCALELINK_EXAMPLE_QUICK") == "1"
    settings, comm, out = (QUICK if quick else FULL), MPI.COMM_WORLD, args.out.resolve()
    start = time.perf_counter()
    if args.stage != "fe2":
        if comm.rank == 0:
            (out / "prepare.json").parent.mkdir(parents=True, exist_ok=True)
            (out / "prepare.json").write_text(json.dumps(prepare(out, settings), indent=2))
        idle_barrier(comm)  # the other ranks sleep meanwhile instead of spinning on the cores
    report = comm.bcast(json.loads((out / "prepare.json").read_text()) if comm.rank == 0 else None, root=0)
    if args.stage != "prepare":
        report.update(fe2(out, settings, report["4_surrogate"]["strain_amplitude"], comm))
    summary = {"quick": quick, "ranks": comm.size, "stage": args.stage, "steps": report,
               "seconds_this_run": time.perf_counter() - start}
    if comm.rank == 0:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        print_summary(report, summary["seconds_this_run"])
        print(f"wrote {out / 'summary.json'} and the plate fields {out / 'plate_surrogate_*.bp'}")
    return summary


if __name__ == "__main__":
    try:
        main()
    except Exception:
        # One rank failing must not leave the others waiting in a collective.
        traceback.print_exc()
        MPI.COMM_WORLD.Abort(1)
