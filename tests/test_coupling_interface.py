"""The coupling methods picked by name (:func:`scalelink.coupling.methods.couple`).

Reference: the methods' own functions. Each method picked by name runs on a freshly built problem
identical to one run by calling its function directly; the final states (atoms by ID, FE fields)
and the records' non-timing fields must be bit-for-bit the same. Unknown names, problems a method
does not solve and options it does not take must fail with a message naming the method and what
to use instead.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scalelink.bridge.errors import ConfigError
from scalelink.coupling.methods import (
    ChainWaveProblem,
    CouplingOutcome,
    StaticProblem,
    StripDynamicsProblem,
    couple,
    coupling_method,
    coupling_methods,
)

ROOT = Path(__file__).resolve().parents[1]
MPIRUN = str(Path(sys.executable).parent / "mpirun")


@pytest.fixture(scope="module")
def chain():  # type: ignore[no-untyped-def]
    import mpi4py.MPI  # noqa: F401  (libmpi first)

    from scalelink.coupling.dispersion import Chain1D
    from scalelink.coupling.lattice import LennardJones2D

    return Chain1D.zero_stress(LennardJones2D())


def _static() -> StaticProblem:
    """A static problem that never reaches a solver (the checks come first)."""
    return StaticProblem(link=None, geometry=None, lattice=None)  # type: ignore[arg-type]


def _strip() -> StripDynamicsProblem:
    return StripDynamicsProblem(link=None, steps=1)  # type: ignore[arg-type]


def test_the_four_methods_are_registered_with_their_kinds() -> None:
    assert {m.name: m.kind for m in coupling_methods()} == {
        "schwarz": "static", "condensed": "static", "bridging_chain": "dynamic", "bridging_strip": "dynamic"}
    assert [m.name for m in coupling_methods("static")] == ["schwarz", "condensed"]
    assert [m.name for m in coupling_methods("dynamic")] == ["bridging_chain", "bridging_strip"]
    with pytest.raises(ConfigError, match=r"kind must be 'static' or 'dynamic', got 'transient'"):
        coupling_methods("transient")


def test_options_are_keyword_arguments_of_the_method_functions() -> None:
    import mpi4py.MPI  # noqa: F401  (libmpi first)

    from scalelink.coupling.bridging_chain import BridgingChain
    from scalelink.coupling.condensed import solve_condensed
    from scalelink.coupling.md import run_coupled
    from scalelink.coupling.quasistatic import solve_coupled

    functions = {"schwarz": solve_coupled, "condensed": solve_condensed, "bridging_chain": BridgingChain.run,
                 "bridging_strip": run_coupled}
    for name, function in functions.items():
        parameters = inspect.signature(function).parameters
        # the keyword arguments other than the problem's own fields
        keyword = {p for p, v in parameters.items() if v.kind == v.KEYWORD_ONLY} - {"continuum", "atoms"}
        if name == "bridging_chain":
            keyword = {p for p in parameters if p != "self"}
        assert set(coupling_method(name).options) == keyword, name


def test_bridging_chain_by_name_is_the_direct_run(chain) -> None:  # type: ignore[no-untyped-def]
    from scalelink.coupling.bridging_chain import BridgingChain, WaveConfig

    config = WaveConfig(0.3 / chain.spacing, packet_width=8.0, mass_blend=0.5)
    direct = BridgingChain(chain, config).run()
    outcome = couple(ChainWaveProblem(chain, config), method="bridging_chain")
    assert isinstance(outcome, CouplingOutcome)
    assert (outcome.method, outcome.kind, outcome.converged) == ("bridging_chain", "dynamic", None)
    assert outcome.seconds == outcome.record.seconds > 0.0
    untimed = {k: v for k, v in dataclasses.asdict(direct).items() if k != "seconds"}
    assert untimed == {k: v for k, v in dataclasses.asdict(outcome.record).items() if k != "seconds"}
    assert direct.steps > 100 and direct.transmitted > 0.5  # the packet did cross: the run did something


def test_an_unknown_method_lists_the_registered_ones() -> None:
    with pytest.raises(ConfigError) as error:
        couple(_static(), method="arlequin")
    message = str(error.value)
    assert "'arlequin'" in message
    assert "static: schwarz, condensed" in message and "dynamic: bridging_chain, bridging_strip" in message


def test_a_static_method_refuses_a_dynamic_problem_and_names_the_one_to_use(chain) -> None:  # type: ignore
    from scalelink.coupling.bridging_chain import WaveConfig

    problem = ChainWaveProblem(chain, WaveConfig(0.3 / chain.spacing))
    with pytest.raises(ConfigError) as error:
        couple(problem, method="schwarz")
    message = str(error.value)
    assert "'schwarz' solves static problems given as StaticProblem" in message
    assert "got a dynamic problem (ChainWaveProblem)" in message
    assert "method='bridging_chain'" in message
    with pytest.raises(ConfigError, match=r"'condensed' solves static .* use method='bridging_strip'"):
        couple(_strip(), method="condensed")


def test_a_dynamic_method_refuses_a_static_problem_and_names_the_ones_to_use() -> None:
    with pytest.raises(ConfigError) as error:
        couple(_static(), method="bridging_strip")
    message = str(error.value)
    assert "'bridging_strip' solves dynamic problems given as StripDynamicsProblem" in message
    assert "got a static problem (StaticProblem)" in message
    assert "method='schwarz' or 'condensed'" in message
    # same kind, other problem description: the chain method does not run a strip
    with pytest.raises(ConfigError, match=r"'bridging_chain' solves dynamic .*StripDynamicsProblem.* "
                                          r"use method='bridging_strip'"):
        couple(_strip(), method="bridging_chain")


def test_something_that_is_no_problem_description_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"'schwarz' got a dict; expected a problem description: StaticProblem"):
        couple({"strain": np.zeros(3)}, method="schwarz")  # type: ignore[arg-type]


def test_an_option_the_method_does_not_take_is_named() -> None:
    with pytest.raises(ConfigError, match=r"'schwarz' got unknown option\(s\) minimizer; it takes: tol, "
                                          r"max_iterations, relaxation"):
        couple(_static(), method="schwarz", minimizer="fire")
    with pytest.raises(ConfigError, match=r"'bridging_chain' got unknown option\(s\) tol; it takes: none"):
        couple(ChainWaveProblem(None, None), method="bridging_chain", tol=1e-9)  # type: ignore[arg-type]


@pytest.mark.mpi
@pytest.mark.lammps
@pytest.mark.fenicsx
def test_mpi_methods_by_name_match_their_functions_exactly(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    proc = subprocess.run([MPIRUN, "-n", "2", sys.executable, str(ROOT / "tests" / "coupling_interface_driver.py"),
                           str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    for name, kind, converged in (("schwarz", "static", True), ("condensed", "static", True),
                                  ("bridging_strip", "dynamic", None)):
        assert r[f"{name}_outcome"] == [name, kind, converged, True], name
        assert r[f"{name}_state_difference"] == 0.0, name
        assert r[f"{name}_state_size"] > 1e-3, name  # the states compared are not empty or zero
        direct, by_name = r[f"{name}_records"]
        assert direct == by_name, name
    assert len(r["schwarz_records"][0]["increments"]) > 3  # the Schwarz loop had work to do
    assert r["condensed_records"][0]["evaluations"] > 10
    assert r["bridging_strip_records"][0]["steps"] == 12
