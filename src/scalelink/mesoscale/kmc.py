"""Rejection-free (BKL, residence-time) kinetic Monte Carlo of one vacancy on an fcc lattice.

Many independent replicas (each a periodic fcc crystal with one vacancy) advance together in
numpy arrays: in every step each replica lists the 12 exchanges of its vacancy with a first
neighbour, takes their rates ``Γ_k = ν exp(−E_k / k_B T)``, picks one with probability
``Γ_k / ΣΓ`` and advances its clock by ``−ln(u)/ΣΓ`` (``u`` uniform in (0, 1]), the residence
time of the state (Bortz, Kalos & Lebowitz 1975). Every atom's displacement is tracked, so the
tracer diffusion coefficient and the correlation factor come from the atoms' mean square
displacement.

Barriers ``E_k`` come from a barrier model: a constant (pure metal) or
:class:`EnvironmentBarriers`, which keys each jump by the species on the first-neighbour shells
of its two sites (the jumping atom included), reduced by the symmetry of the jump, and asks a
barrier source (e.g. nudged elastic band runs, :mod:`scalelink.mesoscale.neb`) once per new key.

Lengths are in lattice units of ``a/2`` inside; :attr:`FCCLattice.nn_distance` converts.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from scalelink.bridge.errors import ConfigError, DataError

from .free_energy import BOLTZMANN_EV

__all__ = [
    "EnvironmentBarriers",
    "FCCLattice",
    "KMCResult",
    "VacancyKMC",
    "jump_environment",
]

NEIGHBOURS = np.array([v for v in itertools.product((-1, 0, 1), repeat=3)
                       if sum(abs(x) for x in v) == 2], dtype=np.int64)
"""The 12 first-neighbour vectors of fcc in units of ``a/2``."""


class FCCLattice:
    """A periodic fcc crystal of ``n × n × n`` conventional cells (``4n³`` sites).

    Attributes:
        positions: ``(N, 3)`` integer site coordinates in units of ``a/2``.
        neighbours: ``(N, 12)`` site index of each site's neighbour along :data:`NEIGHBOURS`.
        nn_distance: first-neighbour distance ``a/√2`` in the unit of ``lattice_constant``.
    """

    def __init__(self, cells: int, lattice_constant: float = 1.0) -> None:
        if cells < 2:
            raise ConfigError(f"an fcc kMC box needs at least 2 cells per side, got {cells}")
        self.cells = cells
        self.lattice_constant = lattice_constant
        self.nn_distance = lattice_constant / np.sqrt(2.0)
        m = 2 * cells
        grid = np.stack(np.meshgrid(*[np.arange(m)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
        self.positions = grid[grid.sum(axis=1) % 2 == 0]
        self._index = -np.ones(m**3, dtype=np.int64)
        self._index[self._flat(self.positions)] = np.arange(len(self.positions))
        self.neighbours = self.site_at(self.positions[:, None, :] + NEIGHBOURS[None, :, :])

    def _flat(self, p: np.ndarray) -> np.ndarray:
        m = 2 * self.cells
        p = np.mod(p, m)
        return (p[..., 0] * m + p[..., 1]) * m + p[..., 2]

    def site_at(self, p: np.ndarray) -> np.ndarray:
        """Site indices of integer coordinates ``p`` (``(..., 3)``, wrapped periodically)."""
        return self._index[self._flat(p)]

    @property
    def size(self) -> int:
        """Number of sites."""
        return len(self.positions)


def _cubic_operations() -> np.ndarray:
    """The 48 signed permutation matrices of the cubic point group."""
    ops = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            g = np.zeros((3, 3), dtype=np.int64)
            g[range(3), perm] = signs
            ops.append(g)
    return np.array(ops)


def jump_environment() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The environment of a jump and its symmetry.

    Returns:
        ``offsets``: ``(K, 3)`` the first neighbours of the vacancy site or of the target site
        (in the frame of the reference jump ``[1, 1, 0]``), the two sites excluded;
        ``rotations``: ``(12, 3, 3)`` a cubic operation taking the reference jump onto each of
        :data:`NEIGHBOURS`; ``permutations``: ``(S, K)`` how the operations that keep the
        reference jump fixed permute the offsets.
    """
    ref = np.array([1, 1, 0])
    shell = {tuple(v) for v in NEIGHBOURS} | {tuple(v + ref) for v in NEIGHBOURS}
    shell -= {(0, 0, 0), tuple(ref)}
    offsets = np.array(sorted(shell), dtype=np.int64)
    ops = _cubic_operations()
    rotations = np.array([next(g for g in ops if np.array_equal(g @ ref, d)) for d in NEIGHBOURS])
    lookup = {tuple(v): i for i, v in enumerate(offsets)}
    permutations = np.array([[lookup[tuple(g @ v)] for v in offsets] for g in ops
                             if np.array_equal(g @ ref, ref)])
    return offsets, rotations, permutations


class BarrierSource(Protocol):
    """Computes the migration barrier (eV) of a jump from its environment."""

    def __call__(self, jumping: int, environment: np.ndarray) -> float:
        """``jumping``: species of the atom that jumps; ``environment``: ``(K,)`` species on the
        offsets of :func:`jump_environment`."""


@dataclass
class EnvironmentBarriers:
    """Barriers cached by the local environment of a jump (first-neighbour shells of its sites).

    Attributes:
        source: called once per new environment (up to the jump's symmetry).
        cache: canonical key → barrier (eV); may be pre-filled or saved.
    """

    source: Callable[[int, np.ndarray], float]
    cache: dict[bytes, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.offsets, self.rotations, self.permutations = jump_environment()
        self.calls = 0

    def key(self, jumping: int, environment: np.ndarray) -> bytes:
        """The canonical key of one environment (the smallest of its symmetric images)."""
        images = environment[self.permutations].astype(np.int8)
        best = min(bytes(row) for row in images)
        return bytes([jumping]) + best

    def barriers(self, lattice: FCCLattice, species: np.ndarray, vacancy: np.ndarray) -> np.ndarray:
        """``(R, 12)`` barriers of the 12 jumps of each replica's vacancy.

        Args:
            species: ``(R, N)`` species of each site (the vacancy site's value is ignored).
            vacancy: ``(R,)`` vacancy site of each replica.
        """
        pos = lattice.positions[vacancy]                                     # (R, 3)
        env_vec = np.einsum("jab,kb->jka", self.rotations, self.offsets)     # (12, K, 3)
        sites = lattice.site_at(pos[:, None, None, :] + env_vec[None])       # (R, 12, K)
        env = species[np.arange(len(vacancy))[:, None, None], sites]
        jumping = species[np.arange(len(vacancy))[:, None], lattice.neighbours[vacancy]]
        codes = np.concatenate([jumping[..., None], env], axis=-1).astype(np.int8)
        flat = codes.reshape(-1, codes.shape[-1])
        unique, inverse = np.unique(flat, axis=0, return_inverse=True)
        values = np.empty(len(unique))
        for i, row in enumerate(unique):  # one lookup per distinct environment, not per jump
            k = self.key(int(row[0]), row[1:])
            if k not in self.cache:
                self.cache[k] = float(self.source(int(row[0]), row[1:].copy()))
                self.calls += 1
            values[i] = self.cache[k]
        return values[inverse.ravel()].reshape(codes.shape[:2])


@dataclass(frozen=True)
class KMCResult:
    """What one kMC run measured (per replica arrays have shape ``(R,)``).

    Attributes:
        time: simulated time of each replica (s when the attempt frequency is in 1/s).
        jumps: vacancy jumps per replica.
        tracer_msd_sum: ``Σ_i |R_i|²`` over the atoms of each replica (length unit²).
        vacancy_msd: ``|R_v|²`` of each replica's vacancy (length unit²).
        solute_msd_sum: ``Σ |R_i|²`` over solute atoms (species ≠ 0) of each replica.
        correlation_factor: ``Σ_R Σ_i |R_i|² / (Σ_R jumps · d²)`` with ``d`` the jump length.
        tracer_diffusion: ``Σ_R Σ_i |R_i|² / (6 N Σ_R t)``, the tracer diffusion coefficient at
            a vacancy fraction ``1/N``.
    """

    time: np.ndarray
    jumps: np.ndarray
    tracer_msd_sum: np.ndarray
    vacancy_msd: np.ndarray
    solute_msd_sum: np.ndarray
    correlation_factor: float
    tracer_diffusion: float


class VacancyKMC:
    """BKL kinetic Monte Carlo of one vacancy in each of ``replicas`` periodic fcc crystals.

    Args:
        lattice: the crystal.
        temperature: in K.
        barriers: a constant barrier (eV) or an :class:`EnvironmentBarriers`.
        attempt_frequency: ``ν`` (1/s, or any time unit⁻¹).
        replicas: number of independent crystals.
        species: ``(N,)`` or ``(R, N)`` species per site (0 = host); default all host.
        seed: random seed.
    """

    def __init__(self, lattice: FCCLattice, *, temperature: float, barriers: float | EnvironmentBarriers,
                 attempt_frequency: float = 1e13, replicas: int = 1, species: np.ndarray | None = None,
                 seed: int = 0) -> None:
        if temperature <= 0 or attempt_frequency <= 0 or replicas < 1:
            raise ConfigError(f"need temperature > 0, attempt_frequency > 0, replicas >= 1; got "
                              f"{temperature}, {attempt_frequency}, {replicas}")
        self.lattice = lattice
        self.beta = 1.0 / (BOLTZMANN_EV * temperature)
        self.barrier_model = barriers
        self.nu = attempt_frequency
        n = lattice.size
        if species is not None and np.shape(species) not in ((n,), (replicas, n)):
            raise DataError(f"species must have shape ({n},) or ({replicas}, {n}), got {np.shape(species)}")
        self.species = np.zeros((replicas, n), dtype=np.int8) if species is None else \
            np.broadcast_to(np.asarray(species, dtype=np.int8), (replicas, n)).copy()
        self.rng = np.random.default_rng(seed)
        self.vacancy = np.zeros(replicas, dtype=np.int64)
        occupied = self.species[:, 0] != 0
        if occupied.any():
            raise DataError("site 0 holds the vacancy; put solutes on other sites")
        self.displacement = np.zeros((replicas, n, 3))     # of the atom on each site, in a/2 units
        self.vacancy_displacement = np.zeros((replicas, 3))
        self.time = np.zeros(replicas)
        self.jumps = np.zeros(replicas, dtype=np.int64)

    def rates(self) -> np.ndarray:
        """``(R, 12)`` rates of the vacancy's exchanges with its 12 neighbours."""
        if isinstance(self.barrier_model, EnvironmentBarriers):
            e = self.barrier_model.barriers(self.lattice, self.species, self.vacancy)
        else:
            e = np.full((len(self.vacancy), 12), float(self.barrier_model))
        return self.nu * np.exp(-self.beta * e)

    def step(self) -> None:
        """One BKL event in every replica."""
        r = np.arange(len(self.vacancy))
        rates = self.rates()
        total = rates.sum(axis=1)
        cumulative = np.cumsum(rates, axis=1)
        pick = (cumulative < (self.rng.random(len(r)) * total)[:, None]).sum(axis=1)
        pick = np.minimum(pick, 11)
        self.time += -np.log(1.0 - self.rng.random(len(r))) / total
        v = self.vacancy
        target = self.lattice.neighbours[v, pick]
        jump = NEIGHBOURS[pick]
        # the atom on `target` moves to `v` by -jump; the vacancy moves by +jump
        self.displacement[r, v] = self.displacement[r, target] - jump
        self.displacement[r, target] = 0.0
        self.species[r, v] = self.species[r, target]
        self.species[r, target] = 0
        self.vacancy_displacement += jump
        self.vacancy = target
        self.jumps += 1

    def run(self, steps: int) -> KMCResult:
        """Advance ``steps`` events in every replica and return the measurements."""
        for _ in range(steps):
            self.step()
        d = self.lattice.nn_distance
        scale = (d / np.sqrt(2.0)) ** 2                 # (a/2)² per squared lattice unit
        sq = (self.displacement**2).sum(axis=-1) * scale
        tracer = sq.sum(axis=1)
        solute = np.where(self.species != 0, sq, 0.0).sum(axis=1)
        n_atoms = self.lattice.size - 1
        return KMCResult(
            time=self.time.copy(), jumps=self.jumps.copy(), tracer_msd_sum=tracer,
            vacancy_msd=(self.vacancy_displacement**2).sum(axis=-1) * scale, solute_msd_sum=solute,
            correlation_factor=float(tracer.sum() / (self.jumps.sum() * d**2)),
            tracer_diffusion=float(tracer.sum() / (6.0 * n_atoms * self.time.sum())))
