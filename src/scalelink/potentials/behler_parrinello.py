"""A Behler–Parrinello potential: atom-centred symmetry functions and one MLP per species.

Each atom's environment inside the cutoff is described by species-resolved radial functions

.. math::

    G^2_{i,s}(\\eta, r_s) = \\sum_{j \\in \\mathcal N(i),\\, s_j = s}
        e^{-\\eta (r_{ij} - r_s)^2} f_c(r_{ij})

and angular functions (Behler's G5) resolved by the unordered species pair of the two
neighbours,

.. math::

    G^5_{i,ab}(\\zeta, \\lambda, \\eta) = 2^{1-\\zeta} \\sum_{j < k}
        (1 + \\lambda \\cos\\theta_{ijk})^{\\zeta}\\, e^{-\\eta (r_{ij}^2 + r_{ik}^2)}
        f_c(r_{ij}) f_c(r_{ik}),

with :math:`\\lambda = \\pm 1`. The cutoff function :math:`f_c` is either Behler's cosine
:math:`\\tfrac12(\\cos(\\pi r / r_c) + 1)` or the quintic :math:`1 - 10x^3 + 15x^4 - 6x^5`
(:math:`x = r / r_c`, value, slope and curvature zero at the cutoff). The functions are
standardised per species with statistics of the training set, fed to the MLP of the atom's
species, and the output is scaled and shifted per species.

The model takes the same graph as :class:`~scalelink.potentials.gnn.GNNPotential` (edge
vectors, edge index, species) and has no message passing: an atom's energy depends on its
own edges only, so LAMMPS needs a ghost shell of one cutoff (``num_layers`` is 1). Triplets
are the pairs of edges that share a centre, so they need no neighbours of the neighbours.

Registered as ``architecture: behler_parrinello`` with its hyperparameters in the YAML section
``behler_parrinello:`` (:class:`BehlerParrinelloConfig`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, List, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from scalelink.bridge.errors import ConfigError

from .architecture import Architecture, GraphStatistics
from .deployed import DeployedEnergyModel

__all__ = [
    "ARCHITECTURE",
    "BehlerParrinelloConfig",
    "BehlerParrinelloPotential",
    "edge_pairs",
    "fit_feature_scaling",
    "symmetry_function_set",
]

CUTOFF_FUNCTIONS = ("cosine", "polynomial")


@dataclass(frozen=True)
class BehlerParrinelloConfig:
    """Architecture of the Behler–Parrinello potential (``architecture: behler_parrinello``).

    Attributes:
        num_radial: radial (G2) functions per neighbour species.
        num_angular: angular (G5) widths; each pairs with every ``zetas`` entry and λ = ±1.
        zetas: angular exponents, positive integers.
        hidden: widths of the hidden layers of each species' MLP.
        cutoff_function: ``"polynomial"`` (zero value, slope and curvature at the cutoff)
            or ``"cosine"``.
    """

    num_radial: int = 8
    num_angular: int = 2
    zetas: tuple[int, ...] = (1, 2, 4)
    hidden: tuple[int, ...] = (32, 32)
    cutoff_function: str = "polynomial"

    def __post_init__(self) -> None:
        # YAML gives lists; keep the frozen config hashable and comparable
        object.__setattr__(self, "zetas", tuple(self.zetas))
        object.__setattr__(self, "hidden", tuple(self.hidden))
        checks = [
            (self.num_radial >= 1, f"behler_parrinello.num_radial must be at least 1, got {self.num_radial}"),
            (self.num_angular >= 1, f"behler_parrinello.num_angular must be at least 1, got {self.num_angular}"),
            (
                len(self.zetas) >= 1 and all(isinstance(z, (int, float)) and int(z) == z >= 1 for z in self.zetas),
                f"behler_parrinello.zetas must be positive integers, got {list(self.zetas)}",
            ),
            (
                len(self.hidden) >= 1 and all(isinstance(h, int) and h >= 1 for h in self.hidden),
                f"behler_parrinello.hidden must be positive layer widths, got {list(self.hidden)}",
            ),
            (
                self.cutoff_function in ("polynomial", "cosine"),
                f"behler_parrinello.cutoff_function must be polynomial or cosine, got {self.cutoff_function!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)



def edge_pairs(centres: Tensor, num_nodes: int) -> Tuple[Tensor, Tensor]:
    """All unordered pairs of distinct edges that share their centre atom.

    Args:
        centres: the centre node of every edge [E] (int64), in any order.
        num_nodes: N, the nodes of the graph (every centre is below N).

    Returns:
        Edge ids ``first`` and ``second`` [T] (int64) with ``centres[first] ==
        centres[second]`` and each pair once.
    """
    order = torch.argsort(centres, stable=True)
    sorted_centres = centres.index_select(0, order)
    degree = torch.bincount(sorted_centres, minlength=num_nodes)
    block_start = torch.cumsum(degree, 0) - degree
    edge_degree = degree.index_select(0, sorted_centres)
    # sorted edge p pairs with every edge of its centre's block, position by position
    first = torch.repeat_interleave(torch.arange(sorted_centres.shape[0], device=centres.device), edge_degree)
    run_start = torch.repeat_interleave(torch.cumsum(edge_degree, 0) - edge_degree, edge_degree)
    offset = torch.arange(first.shape[0], device=centres.device) - run_start
    second = block_start.index_select(0, sorted_centres.index_select(0, first)) + offset
    keep = first < second
    return order.index_select(0, first[keep]), order.index_select(0, second[keep])


def symmetry_function_set(
    cutoff: float, num_radial: int, num_angular: int
) -> tuple[list[float], list[float], list[float]]:
    """A default set of radial shifts and widths and of angular widths.

    Radial functions are Gaussians centred on ``num_radial`` points spread evenly from 0.5 Å
    to the cutoff, each as wide as their spacing; angular Gaussians have widths from
    ``cutoff / 4`` to ``cutoff`` (``num_angular`` of them).

    Returns:
        ``radial_shifts`` (Å), ``radial_etas`` (1/Å²), ``angular_etas`` (1/Å²).
    """
    shifts = np.linspace(0.5, cutoff, num_radial) if num_radial > 1 else np.array([0.0])
    spacing = (cutoff - 0.5) / max(num_radial - 1, 1)
    radial_etas = np.full(num_radial, 0.5 / spacing**2)
    widths = np.linspace(cutoff / 4.0, cutoff, num_angular) if num_angular > 1 else np.array([cutoff / 2.0])
    angular_etas = 0.5 / widths[:num_angular] ** 2
    return shifts.tolist(), radial_etas.tolist(), angular_etas.tolist()


class BehlerParrinelloPotential(nn.Module):
    """Atomic energies from symmetry functions and per-species MLPs.

    Args:
        num_species: S, the species the model knows.
        cutoff: radial cutoff in Å.
        radial_shifts, radial_etas: centres (Å) and widths (1/Å²) of the G2 functions.
        angular_etas: widths (1/Å²) of the G5 functions.
        zetas: angular exponents, positive integers (each with λ = +1 and -1).
        hidden: widths of the hidden layers of every species' MLP.
        energy_shift: per-species atomic reference energy [S] (eV).
        energy_scale: scale of the networks' output (eV).
        cutoff_function: ``"cosine"`` or ``"polynomial"``.

    Shapes:
        ``edge_vectors`` [E, 3] (Å), ``edge_index`` [2, E], ``species`` [N], ``n_local``
        (nodes ``0..n_local-1`` are the atoms whose energies are wanted; -1: all); returns
        atomic energies [N] (eV) in the dtype of the weights, zero beyond ``n_local``.
    """

    def __init__(
        self,
        num_species: int,
        cutoff: float,
        radial_shifts: Sequence[float],
        radial_etas: Sequence[float],
        angular_etas: Sequence[float],
        zetas: Sequence[float] = (1.0, 2.0, 4.0),
        hidden: Sequence[int] = (32, 32),
        energy_shift: list[float] | None = None,
        energy_scale: float = 1.0,
        cutoff_function: str = "polynomial",
    ) -> None:
        super().__init__()
        if cutoff_function not in CUTOFF_FUNCTIONS:
            raise ConfigError(f"cutoff_function must be one of {CUTOFF_FUNCTIONS}, got {cutoff_function!r}")
        if len(radial_shifts) != len(radial_etas) or not radial_shifts:
            raise ConfigError(
                f"radial_shifts ({len(radial_shifts)}) and radial_etas ({len(radial_etas)}) must be "
                "non-empty and of equal length"
            )
        if any(z < 1 or z != int(z) for z in zetas):
            raise ConfigError(f"zetas must be positive integers (smooth second derivatives), got {list(zetas)}")
        self.cutoff = float(cutoff)
        self.num_layers = 1
        self.num_species = int(num_species)
        self.polynomial = cutoff_function == "polynomial"
        dtype = torch.get_default_dtype()
        self.register_buffer("radial_shifts", torch.tensor(list(radial_shifts), dtype=dtype))
        self.register_buffer("radial_etas", torch.tensor(list(radial_etas), dtype=dtype))
        # angular columns run over (zeta, lambda, eta), zeta slowest
        self.register_buffer("angular_zetas", torch.tensor([float(z) for z in zetas for _ in (1, -1)], dtype=dtype))
        self.register_buffer("angular_lambdas", torch.tensor([lam for _ in zetas for lam in (1.0, -1.0)], dtype=dtype))
        self.register_buffer("angular_etas", torch.tensor([float(e) for e in angular_etas], dtype=dtype))
        pair = torch.zeros((num_species, num_species), dtype=torch.int64)
        count = 0
        for a in range(num_species):
            for b in range(a, num_species):
                pair[a, b] = pair[b, a] = count
                count += 1
        self.register_buffer("pair_index", pair)
        self.num_pairs = count
        self.num_radial = len(radial_shifts)
        self.num_angular = 2 * len(zetas) * len(angular_etas)
        self.num_descriptors = num_species * self.num_radial + count * self.num_angular
        self.register_buffer("feature_mean", torch.zeros((num_species, self.num_descriptors), dtype=dtype))
        self.register_buffer("feature_std", torch.ones((num_species, self.num_descriptors), dtype=dtype))
        self.networks = nn.ModuleList([self._mlp(self.num_descriptors, list(hidden)) for _ in range(num_species)])
        shift = torch.zeros(num_species) if energy_shift is None else torch.tensor(energy_shift)
        self.register_buffer("energy_shift", shift.to(dtype))
        self.register_buffer("energy_scale", torch.tensor(float(energy_scale), dtype=dtype))

    @staticmethod
    def _mlp(inputs: int, hidden: List[int]) -> nn.Sequential:
        widths = [inputs, *hidden]
        modules: List[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            modules += [nn.Linear(a, b), nn.Tanh()]
        modules.append(nn.Linear(widths[-1], 1))
        return nn.Sequential(*modules)

    def cutoff_function(self, r: Tensor) -> Tensor:
        """:math:`f_c(r)` [E] for distances [E] (Å); zero beyond the cutoff."""
        x = (r / self.cutoff).clamp(max=1.0)
        if self.polynomial:
            return 1.0 - x.pow(3) * (10.0 - 15.0 * x + 6.0 * x.pow(2))
        return 0.5 * (torch.cos(math.pi * x) + 1.0)

    def descriptors(self, edge_vectors: Tensor, edge_index: Tensor, species: Tensor, n_local: int = -1) -> Tensor:
        """Unscaled symmetry functions [N, D] (zero rows for nodes at or beyond ``n_local``).

        Columns: S blocks of radial functions (one per neighbour species), then one block of
        angular functions per unordered neighbour species pair.
        """
        num_nodes = species.shape[0]
        if 0 <= n_local < num_nodes:
            keep = edge_index[0] < n_local
            edge_vectors = edge_vectors[keep]
            edge_index = edge_index[:, keep]
        centre, neighbour = edge_index[0], edge_index[1]
        r = torch.linalg.vector_norm(edge_vectors, dim=-1)
        fc = self.cutoff_function(r)
        neighbour_species = species.index_select(0, neighbour)

        radial = torch.exp(-self.radial_etas * (r.unsqueeze(-1) - self.radial_shifts) ** 2) * fc.unsqueeze(-1)
        g2 = torch.zeros((num_nodes * self.num_species, self.num_radial), dtype=r.dtype, device=r.device)
        g2 = g2.index_add(0, centre * self.num_species + neighbour_species, radial)

        first, second = edge_pairs(centre, num_nodes)
        v1, v2 = edge_vectors.index_select(0, first), edge_vectors.index_select(0, second)
        cos = (v1 * v2).sum(-1) / (r.index_select(0, first) * r.index_select(0, second))
        base = 1.0 + self.angular_lambdas * cos.unsqueeze(-1)
        angle = torch.pow(2.0, 1.0 - self.angular_zetas) * base.pow(self.angular_zetas)
        # exp(-eta (r1^2 + r2^2)) fc(r1) fc(r2) factorises into one term per edge
        edge_term = torch.exp(-self.angular_etas * (r * r).unsqueeze(-1)) * fc.unsqueeze(-1)
        distance = edge_term.index_select(0, first) * edge_term.index_select(0, second)
        angular = (angle.unsqueeze(-1) * distance.unsqueeze(1)).reshape(-1, self.num_angular)
        pair = self.pair_index[neighbour_species.index_select(0, first), neighbour_species.index_select(0, second)]
        triplet_centre = centre.index_select(0, first)
        g5 = torch.zeros((num_nodes * self.num_pairs, self.num_angular), dtype=r.dtype, device=r.device)
        g5 = g5.index_add(0, triplet_centre * self.num_pairs + pair, angular)
        return torch.cat([g2.reshape(num_nodes, -1), g5.reshape(num_nodes, -1)], dim=1)

    def forward(self, edge_vectors: Tensor, edge_index: Tensor, species: Tensor, n_local: int = -1) -> Tensor:
        num_nodes = species.shape[0]
        g = self.descriptors(edge_vectors, edge_index, species, n_local)
        g = (g - self.feature_mean.index_select(0, species)) / self.feature_std.index_select(0, species)
        out = torch.zeros(num_nodes, dtype=g.dtype, device=g.device)
        for s, network in enumerate(self.networks):
            rows = torch.nonzero(species == s).squeeze(1)
            out = out.index_add(0, rows, network(g.index_select(0, rows)).squeeze(-1))
        energy = out * self.energy_scale + self.energy_shift.index_select(0, species)
        if 0 <= n_local < num_nodes:
            energy = torch.cat([energy[:n_local], energy.new_zeros(num_nodes - n_local)])
        return energy


@torch.no_grad()
def fit_feature_scaling(model: BehlerParrinelloPotential, graphs: Sequence[object]) -> None:
    """Set the per-species mean and standard deviation of the symmetry functions.

    Args:
        model: the potential whose ``feature_mean`` and ``feature_std`` [S, D] are set.
        graphs: training graphs with ``edge_vectors``, ``edge_index`` and ``species``
            (:func:`scalelink.training.data.atoms_to_data`).

    Species absent from ``graphs`` keep mean 0 and standard deviation 1; functions that do
    not vary for a species (standard deviation below 1e-6 of its mean magnitude, or zero)
    are divided by 1 rather than by a vanishing number.
    """
    rows, kinds = [], []
    for graph in graphs:
        vectors = graph.edge_vectors.to(model.feature_mean.dtype)  # type: ignore[attr-defined]
        rows.append(model.descriptors(vectors, graph.edge_index, graph.species))  # type: ignore[attr-defined]
        kinds.append(graph.species)  # type: ignore[attr-defined]
    if not rows:
        return
    features, species = torch.cat(rows), torch.cat(kinds)
    for s in range(model.num_species):
        chosen = features[species == s]
        if chosen.shape[0] == 0:
            continue
        mean = chosen.mean(0)
        std = chosen.std(0, unbiased=False) if chosen.shape[0] > 1 else torch.zeros_like(mean)
        flat = std <= 1e-6 * mean.abs().clamp_min(1e-12)
        model.feature_mean[s] = mean
        model.feature_std[s] = torch.where(flat, torch.ones_like(std), std)


def model_kwargs(config: BehlerParrinelloConfig, stats: GraphStatistics) -> dict[str, Any]:
    """Keyword arguments of :class:`BehlerParrinelloPotential` for ``config`` and the training set's statistics."""
    shifts, radial_etas, angular_etas = symmetry_function_set(stats.cutoff, config.num_radial, config.num_angular)
    return {
        "num_species": len(stats.species),
        "cutoff": stats.cutoff,
        "energy_shift": list(stats.energy_shift),
        "energy_scale": stats.force_scale,
        "radial_shifts": shifts,
        "radial_etas": radial_etas,
        "angular_etas": angular_etas,
        "zetas": [float(z) for z in config.zetas],
        "hidden": [int(h) for h in config.hidden],
        "cutoff_function": config.cutoff_function,
    }


ARCHITECTURE = Architecture(
    name="behler_parrinello",
    section="behler_parrinello",
    config=BehlerParrinelloConfig,
    network=BehlerParrinelloPotential,
    model_kwargs=model_kwargs,
    deployed=DeployedEnergyModel,
    prepare=fit_feature_scaling,
)
