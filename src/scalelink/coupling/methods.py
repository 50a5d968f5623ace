"""The coupling methods by name: one entry point, :func:`couple`, for every atomistic–continuum method.

A *problem* says what is coupled; a *method* says how. Three problem descriptions cover the
methods of this package:

* :class:`StaticProblem` (kind ``"static"``): a 2D atomistic region (LAMMPS) inside a linear
  continuum (dolfinx) under far-field strain, solved for its coupled equilibrium. Methods
  ``"schwarz"`` (alternating Schwarz iterations, :func:`~scalelink.coupling.quasistatic.solve_coupled`)
  and ``"condensed"`` (the continuum condensed onto the pad, one LAMMPS relaxation,
  :func:`~scalelink.coupling.condensed.solve_condensed`).
* :class:`ChainWaveProblem` (kind ``"dynamic"``): a wave packet leaving a 1D atom chain for a line
  of elements, in one process. Method ``"bridging_chain"``
  (:class:`~scalelink.coupling.bridging_chain.BridgingChain`).
* :class:`StripDynamicsProblem` (kind ``"dynamic"``): LAMMPS atoms and a dolfinx strip stepped
  together over MPI. Method ``"bridging_strip"`` (:func:`~scalelink.coupling.md.run_coupled`).

Every method returns a :class:`CouplingOutcome`: the method's name, the problem's kind, whether it
converged (static problems) and its timed wall seconds, around the method's own record, which is
exactly what calling the method's function directly returns. A method given a problem it does not
solve, an unknown name or an option it does not take raises :class:`~scalelink.bridge.errors.ConfigError`
naming the method and what to use instead::

    problem = StaticProblem(link, geometry, lattice, continuum=continuum, atoms=atoms)
    outcome = couple(problem, method="condensed", minimizer="fire")

The implementations are imported when a method runs, so this module loads no engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from scalelink.bridge.errors import ConfigError

if TYPE_CHECKING:
    from .atomistic2d import AtomisticRegion
    from .bridging_chain import WaveConfig, WaveResult
    from .dispersion import Chain1D
    from .exchange import CouplingLink
    from .geometry import CouplingGeometry
    from .lattice import HexLattice
    from .md import RunStats
    from .md_atoms import AtomisticStrip
    from .md_continuum import ContinuumStrip
    from .quasistatic import ContinuumRegion, CouplingResult

__all__ = [
    "ChainWaveProblem",
    "CouplingMethod",
    "CouplingOutcome",
    "StaticProblem",
    "StripDynamicsProblem",
    "couple",
    "coupling_method",
    "coupling_methods",
]

STATIC = "static"
DYNAMIC = "dynamic"


@dataclass(frozen=True)
class StaticProblem:
    """An atomistic region inside a linear continuum, solved for equilibrium (collective on ``link.world``).

    Attributes:
        link: communicators from :func:`~scalelink.coupling.exchange.split_world`.
        geometry: the regions (the same on every rank).
        lattice: the lattice (the same on every rank).
        continuum: the FE model (:class:`~scalelink.coupling.quasistatic.ContinuumRegion`) on FE
            ranks, ``None`` on MD ranks.
        atoms: the atomistic region (:class:`~scalelink.coupling.atomistic2d.AtomisticRegion`) on
            MD ranks, ``None`` on FE ranks. The atoms start where they are.
    """

    kind: ClassVar[str] = STATIC
    link: CouplingLink
    geometry: CouplingGeometry
    lattice: HexLattice
    continuum: ContinuumRegion | None = None
    atoms: AtomisticRegion | None = None


@dataclass(frozen=True)
class ChainWaveProblem:
    """One wave packet sent from a 1D atom chain into a line of elements (one process).

    Attributes:
        chain: the lattice (:class:`~scalelink.coupling.dispersion.Chain1D`: potential, spacing).
        config: the packet, mesh and handshake (:class:`~scalelink.coupling.bridging_chain.WaveConfig`).
    """

    kind: ClassVar[str] = DYNAMIC
    chain: Chain1D
    config: WaveConfig


@dataclass(frozen=True)
class StripDynamicsProblem:
    """LAMMPS atoms and a dolfinx strip advanced together (collective on ``link.world``).

    Attributes:
        link: communicators from :func:`~scalelink.coupling.exchange.split_world`.
        steps: MD steps to run (at least 1); both sides continue from their current state.
        continuum: the FE strip (:class:`~scalelink.coupling.md_continuum.ContinuumStrip`) on FE
            ranks, ``None`` on MD ranks.
        atoms: the atoms (:class:`~scalelink.coupling.md_atoms.AtomisticStrip`) on MD ranks,
            ``None`` on FE ranks; routed with :func:`~scalelink.coupling.md.route_atoms`.
    """

    kind: ClassVar[str] = DYNAMIC
    link: CouplingLink
    steps: int
    continuum: ContinuumStrip | None = None
    atoms: AtomisticStrip | None = None


CouplingProblem = StaticProblem | ChainWaveProblem | StripDynamicsProblem
_PROBLEMS: tuple[type, ...] = (StaticProblem, ChainWaveProblem, StripDynamicsProblem)


@dataclass(frozen=True)
class CouplingOutcome:
    """What :func:`couple` returns, the same for every method (and on every rank where it is collective).

    Attributes:
        method: the method's registered name.
        kind: the problem's kind, ``"static"`` or ``"dynamic"``.
        converged: static problems: the method's own convergence test passed; ``None`` for dynamic
            problems, which run a given time.
        seconds: wall time the method itself reports (its timed part; set-up as the method defines it).
        record: the method's own result, exactly what its function returns:
            :class:`~scalelink.coupling.quasistatic.CouplingResult` (static),
            :class:`~scalelink.coupling.bridging_chain.WaveResult` (``"bridging_chain"``),
            :class:`~scalelink.coupling.md.RunStats` (``"bridging_strip"``).
    """

    method: str
    kind: str
    converged: bool | None
    seconds: float
    record: CouplingResult | WaveResult | RunStats


@dataclass(frozen=True)
class CouplingMethod:
    """One registered coupling method.

    Attributes:
        name: what ``couple(..., method=name)`` and the examples' ``--method`` take.
        problem: the problem description it solves (its ``kind`` is the method's kind).
        summary: one line naming the method and its function.
        options: keyword options passed through to the function, with their defaults there.
        solve: ``(problem, options) -> record``, the call of the method's own function.
    """

    name: str
    problem: type
    summary: str
    options: tuple[str, ...]
    solve: Callable[[Any, dict[str, Any]], Any]

    @property
    def kind(self) -> str:
        """``"static"`` or ``"dynamic"``."""
        return str(self.problem.kind)


def _schwarz(problem: StaticProblem, options: dict[str, Any]) -> CouplingResult:
    from .quasistatic import solve_coupled

    return solve_coupled(problem.link, problem.geometry, problem.lattice, continuum=problem.continuum,
                         atoms=problem.atoms, **options)


def _condensed(problem: StaticProblem, options: dict[str, Any]) -> CouplingResult:
    from .condensed import solve_condensed

    return solve_condensed(problem.link, problem.geometry, problem.lattice, continuum=problem.continuum,
                           atoms=problem.atoms, **options)


def _bridging_chain(problem: ChainWaveProblem, options: dict[str, Any]) -> WaveResult:
    from .bridging_chain import BridgingChain

    return BridgingChain(problem.chain, problem.config).run(**options)


def _bridging_strip(problem: StripDynamicsProblem, options: dict[str, Any]) -> RunStats:
    from .md import run_coupled

    return run_coupled(problem.link, problem.steps, continuum=problem.continuum, atoms=problem.atoms, **options)


_REGISTERED: tuple[CouplingMethod, ...] = (
    CouplingMethod("schwarz", StaticProblem,
                   "alternating Schwarz iterations between the FE and MD groups (quasistatic.solve_coupled)",
                   ("tol", "max_iterations", "relaxation"), _schwarz),
    CouplingMethod("condensed", StaticProblem,
                   "the continuum condensed onto the pad, one LAMMPS relaxation (condensed.solve_condensed)",
                   ("minimizer", "max_iterations", "coarse_spacing", "precondition"), _condensed),
    CouplingMethod("bridging_chain", ChainWaveProblem,
                   "bridging-domain handshake of a 1D chain and P1 elements, numpy (bridging_chain.BridgingChain)",
                   (), _bridging_chain),
    CouplingMethod("bridging_strip", StripDynamicsProblem,
                   "bridging-domain dynamics of LAMMPS atoms and a dolfinx strip over MPI (md.run_coupled)",
                   ("spin_seconds", "compiled", "defer"), _bridging_strip),
)

_BY_NAME = {m.name: m for m in _REGISTERED}
if len(_BY_NAME) != len(_REGISTERED):
    raise RuntimeError(f"coupling methods must have distinct names: {[m.name for m in _REGISTERED]}")


def _quoted(names: list[str]) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def coupling_methods(kind: str | None = None) -> tuple[CouplingMethod, ...]:
    """The registered methods, all or those of one kind (``"static"`` or ``"dynamic"``).

    Raises:
        ConfigError: ``kind`` is neither.
    """
    if kind is None:
        return _REGISTERED
    if kind not in (STATIC, DYNAMIC):
        raise ConfigError(f"coupling problem kind must be {STATIC!r} or {DYNAMIC!r}, got {kind!r}")
    return tuple(m for m in _REGISTERED if m.kind == kind)


def coupling_method(name: str) -> CouplingMethod:
    """The method registered as ``name``.

    Raises:
        ConfigError: no method has that name (the message lists them by kind).
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        by_kind = "; ".join(f"{kind}: {', '.join(m.name for m in coupling_methods(kind))}"
                            for kind in (STATIC, DYNAMIC))
        raise ConfigError(f"coupling method must be {_quoted(list(_BY_NAME))} ({by_kind}), got {name!r}") from None


def _check_problem(method: CouplingMethod, problem: object) -> None:
    if isinstance(problem, method.problem):
        return
    if not isinstance(problem, _PROBLEMS):
        raise ConfigError(
            f"coupling method {method.name!r} got a {type(problem).__name__}; expected a problem description: "
            f"{', '.join(p.__name__ for p in _PROBLEMS)} (scalelink.coupling.methods)")
    instead = [m.name for m in _REGISTERED if isinstance(problem, m.problem)]
    raise ConfigError(
        f"coupling method {method.name!r} solves {method.kind} problems given as {method.problem.__name__}, "
        f"got a {problem.kind} problem ({type(problem).__name__}); for it use method={_quoted(instead)}")


def couple(problem: CouplingProblem, *, method: str, **options: Any) -> CouplingOutcome:
    """Solve (static) or advance (dynamic) ``problem`` with the coupling method called ``method``.

    Collective wherever the method is (on ``problem.link.world`` for the MPI methods).

    Args:
        problem: a :class:`StaticProblem`, :class:`ChainWaveProblem` or :class:`StripDynamicsProblem`.
        method: a registered name (:func:`coupling_methods` lists them): ``"schwarz"``,
            ``"condensed"``, ``"bridging_chain"``, ``"bridging_strip"``.
        **options: keyword options of the method's function (:attr:`CouplingMethod.options`), e.g.
            ``tol`` for ``"schwarz"``, ``minimizer`` for ``"condensed"``, ``compiled`` for
            ``"bridging_strip"``; the function's defaults apply to the others.

    Returns:
        The :class:`CouplingOutcome`, whose ``record`` is the method's own result.

    Raises:
        ConfigError: an unknown method, a problem the method does not solve (naming the methods
            that do), or an option the method does not take; and whatever the method raises for
            inconsistent inputs.
    """
    chosen = coupling_method(method)
    _check_problem(chosen, problem)
    unknown = sorted(set(options) - set(chosen.options))
    if unknown:
        accepted = ", ".join(chosen.options) if chosen.options else "none"
        raise ConfigError(f"coupling method {chosen.name!r} got unknown option(s) {', '.join(unknown)}; "
                          f"it takes: {accepted}")
    record = chosen.solve(problem, options)
    converged = bool(record.converged) if chosen.kind == STATIC else None
    return CouplingOutcome(chosen.name, chosen.kind, converged, float(record.seconds), record)
