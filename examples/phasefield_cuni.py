"""Phase separation of Cu–Ni with a free energy learned from LAMMPS Monte Carlo.

1. **Atomistics.** Semi-grand-canonical Monte Carlo (LAMMPS ``fix sgcmc`` with NPT dynamics,
   EAM ``CuNi.eam.alloy``, 2,048 atoms) gives the equilibrium Ni fraction ``c`` at imposed
   chemical-potential differences ``Δμ = μ_Ni − μ_Cu`` and temperatures ``T``. The samples are
   stored in ``examples/data/cuni_sgcmc.json`` (about ten minutes of LAMMPS on one core); pass
   ``--resample`` to run the Monte Carlo again (rank 0 runs it, every rank gets the result).
2. **Learned free energy.** A temperature-dependent Redlich–Kister model ``f(c, T)`` (eV/atom) is
   fitted to ``∂f/∂c = Δμ`` at the sampled ``(c, T)``; its error on the Monte Carlo chemical
   potentials is printed and stored. It is deployed as a ScaleLink model file
   (``free_energy.pt``, kind ``free_energy``: a TorchScript module for ``f`` and ``∂f/∂c`` and
   the closed form in the metadata) and loaded back from it, which checks the two agree.
3. **Phase field.** Cahn–Hilliard in dolfinx with the ``f`` loaded from that file, written in
   UFL from its closed form at ``--temperature``: a square of
   ``--size`` nm, zero-flux sides, a small deterministic perturbation of the mean composition
   (the same field on any number of ranks), adaptive backward Euler, VTX output
   (``concentration.bp``, open it in ParaView). The gradient coefficient ``κ`` (eV·nm²/atom)
   and mobility ``M`` (nm²/(eV·time unit)) are inputs, not learned: time is in units of
   ``1/M`` and the run shows the kinetics of spinodal decomposition and coarsening in that unit.

Run::

    python examples/phasefield_cuni.py                 # 40 nm square, 96×96 mesh, t = 4000
    python examples/phasefield_cuni.py --quick         # 20 nm, 32×32, t = 600, for the tests
    mpirun -n 2 python examples/phasefield_cuni.py     # the same numbers on 2 ranks
"""

from __future__ import annotations

import argparse
import json
import traceback
from pathlib import Path

import mpi4py.MPI as MPI  # noqa: I001  (loads libmpi before lammps and dolfinx)
import numpy as np
from dolfinx import mesh

from scalelink.mesoscale.deploy import load_free_energy, save_free_energy
from scalelink.mesoscale.free_energy import common_tangent, fit_redlich_kister
from scalelink.mesoscale.phasefield import CahnHilliard, TimeStepping

SAMPLES = Path(__file__).with_name("data") / "cuni_sgcmc.json"
MASSES = (63.546, 58.6934)


def monte_carlo_samples(comm: MPI.Comm, resample: bool, quick: bool) -> list[dict]:
    """Stored samples, or a fresh LAMMPS ``fix sgcmc`` scan on rank 0 broadcast to all."""
    samples = None
    if comm.rank == 0:
        if resample:
            from scalelink.mesoscale.neb import wheel_potential
            from scalelink.mesoscale.sgcmc import sample_semi_grand

            samples = []
            for t in (500.0, 700.0, 900.0):
                runs = sample_semi_grand(wheel_potential("CuNi.eam.alloy"), ["Cu", "Ni"], MASSES,
                                         temperature=t, delta_mu=list(-np.arange(0.60, 1.051, 0.05)),
                                         blocks=3 if quick else 5)
                samples += [r.as_dict() for r in runs]
        else:
            samples = json.loads(SAMPLES.read_text())["samples"]
    return comm.bcast(samples, root=0)


def perturbation(mean: float, amplitude: float, size: float, seed: int = 5):
    """A smooth random field (a sum of 12 cosines), the same at any point on any rank."""
    rng = np.random.default_rng(seed)
    k = rng.integers(1, 9, size=(12, 2)) * np.pi / size
    phase = rng.uniform(0, 2 * np.pi, 12)
    weight = rng.normal(size=12) / np.sqrt(12)

    def field(x: np.ndarray) -> np.ndarray:
        waves = np.cos(k[:, :1] * x[0] + k[:, 1:] * x[1] + phase[:, None])
        return mean + amplitude * (weight @ waves)
    return field


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="coarse mesh and a short run, for the tests")
    parser.add_argument("--resample", action="store_true", help="rerun the LAMMPS Monte Carlo")
    parser.add_argument("--temperature", type=float, default=500.0, help="K, inside the sampled range")
    parser.add_argument("--mean", type=float, default=0.5, help="mean Ni fraction")
    parser.add_argument("--size", type=float, default=None, help="square side (nm)")
    parser.add_argument("--order", type=int, default=2, help="Redlich–Kister terms")
    parser.add_argument("--kappa", type=float, default=0.1, help="gradient coefficient (eV nm²/atom)")
    parser.add_argument("--t-end", type=float, default=None, help="end time (units of 1/M)")
    parser.add_argument("--out", type=Path, default=Path("phasefield_cuni_out"))
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    cells, size, t_end = (32, 20.0, 600.0) if args.quick else (96, 40.0, 4000.0)
    t_end = args.t_end if args.t_end is not None else t_end
    size = args.size if args.size is not None else size

    # 1–2: the learned free energy and its error on the Monte Carlo chemical potentials
    samples = monte_carlo_samples(comm, args.resample, args.quick)
    inside = [s for s in samples if 0.005 < s["composition"] < 0.995]
    c = np.array([s["composition"] for s in inside])
    t = np.array([s["temperature"] for s in inside])
    mu = np.array([s["delta_mu"] for s in inside])
    fit = fit_redlich_kister(c, t, mu, order=args.order)
    args.out.mkdir(parents=True, exist_ok=True)
    model_file = args.out / "free_energy.pt"
    if comm.rank == 0:
        save_free_energy(fit, model_file, species=["Cu", "Ni"])
    comm.barrier()
    # from here on the free energy is the one in the file, as any later run would read it
    deployed = load_free_energy(model_file)
    model = deployed.at(args.temperature)
    low, high = common_tangent(model)
    model.check_range(min(low, args.mean), max(high, args.mean))

    # 3: Cahn–Hilliard with the learned f
    domain = mesh.create_rectangle(comm, [[0.0, 0.0], [size, size]], [cells, cells],
                                   mesh.CellType.triangle)
    ch = CahnHilliard(domain, model, kappa=args.kappa, mobility=1.0,
                      stepping=TimeStepping(dt=1e-3, dt_max=5.0, target_change=0.05, reject_change=0.2))
    ch.set_concentration(perturbation(args.mean, 0.05, size))
    run = ch.run(t_end, output=args.out / "concentration.bp", output_every=20)
    c_range = ch.concentration_range()

    results = {
        "samples": len(samples), "fitted_samples": len(inside),
        "fit": {"rmse_eV": fit.rmse, "max_error_eV": fit.max_error,
                "composition_range": fit.composition_range, "temperature_range": fit.temperature_range},
        "free_energy_file": str(model_file),
        "temperature": args.temperature, "binodal": [low, high],
        "run": run, "concentration_range": list(c_range),
        "energy": ch.history.energy, "time": ch.history.time, "mass": ch.history.mass,
        "ranks": comm.size,
    }
    if comm.rank == 0:
        print(f"learned f(c, T) from {len(inside)} Monte Carlo runs: Δμ error {1e3 * fit.rmse:.2f} meV rms, "
              f"{1e3 * fit.max_error:.2f} meV max")
        print(f"deployed to {model_file} (kind {deployed.metadata.kind}, {' '.join(deployed.species)}) "
              "and loaded back: module and closed form agree")
        print(f"binodal at {args.temperature:.0f} K: c = {low:.4f}, {high:.4f}")
        print(f"{run['steps']} steps ({run['rejected']} rejected) to t = {run['time']:.3g}; "
              f"c in [{c_range[0]:.4f}, {c_range[1]:.4f}]; mass drift {run['mass_drift']:.2e}")
        (args.out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    try:
        main()
    except Exception:
        # one rank failing must not leave the others waiting in a collective
        traceback.print_exc()
        MPI.COMM_WORLD.Abort(1)
