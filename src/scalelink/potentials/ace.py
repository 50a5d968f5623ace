"""An atomic cluster expansion (ACE) potential with learned radial functions and a
nonlinear readout: strictly local, angular, E(3)-invariant.

Each atom's neighbour density inside the cutoff is projected on radial channels and real
spherical harmonics up to degree ``lmax``,

.. math::

    A_{i,c\\,lm} = \\frac{1}{\\bar n} \\sum_{j \\in \\mathcal N(i)}
        R_{c,l}(r_{ij})\\, w_{c,l}(s_i, s_j)\\, Y_{lm}(\\hat r_{ij}),

where :math:`R` is an MLP of a Bessel basis times a polynomial envelope that vanishes
smoothly at the cutoff, and :math:`w` a learned weight per ordered species pair. Body-ordered
invariants follow as products of channel-mixed densities (the tensor-reduced ACE basis):

.. math::

    B^{(1)}_{i,c} = A_{i,c\\,00}, \\qquad
    B^{(2)}_{i,c\\,l} = \\sum_m (U A_i)_{c\\,lm} (V A_i)_{c\\,lm}, \\qquad
    B^{(3)}_{i,c\\,l_1 l_2 l_3} = \\sum_{m_1 m_2 m_3} G^{l_1 l_2 l_3}_{m_1 m_2 m_3}
        (U A_i)_{c\\,l_1 m_1} (V A_i)_{c\\,l_2 m_2} (W A_i)_{c\\,l_3 m_3},

with learned channel mixings :math:`U, V, W` per invariant and :math:`G` the real Gaunt
coefficients (the integral of three real spherical harmonics over the sphere), which make
every :math:`B` rotation invariant; only parity-even couplings (:math:`l_1 + l_2 + l_3`
even) exist, so the energy is also invariant under reflections. :math:`B^{(2)}` and
:math:`B^{(3)}` are three- and four-body correlations: bond angles and dihedral-like
information that a distance-only network cannot resolve. The standardised invariants feed
an MLP whose first layer depends on the atom's species and, beside it, a linear function per
species (a linear ACE, as MTP and linear ACE fit); their sum, scaled and shifted per species,
is the atomic energy. The linear part carries the trends the MLP would have to build from
saturating units: on the mlearn Mo set it lowered the errors of the two unseen test surfaces
and of the vacancies (``benchmarks/RESULTS.md``).

An atom's energy depends on its own edges only (no message passing), so LAMMPS needs a
ghost shell of one cutoff and exchanges nothing between ranks during the evaluation
(``num_layers`` is 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import List, Optional

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from scalelink.bridge.errors import ConfigError

from .architecture import Architecture, GraphStatistics
from .deployed import DeployedEnergyModel

__all__ = [
    "ACEConfig",
    "ACEPotential",
    "ARCHITECTURE",
    "coupling_paths",
    "fit_feature_scaling",
    "gaunt_coefficients",
    "spherical_harmonics",
]


MAX_DEGREE = 6


def _legendre_derivatives(z: Tensor, lmax: int) -> List[List[Tensor]]:
    """``q[l][m]`` = the m-th derivative of the Legendre polynomial P_l at ``z``, m <= l <= lmax.

    By the recurrence ``(l - m) q[l][m] = (2l - 1) z q[l-1][m] - (l + m - 1) q[l-2][m]`` from
    ``q[m][m] = (2m - 1)!!`` and ``q[m+1][m] = (2m + 1) z q[m][m]``: polynomials in ``z``, so the
    harmonics built from them are smooth at the poles.
    """
    q: List[List[Tensor]] = [[z] * (l + 1) for l in range(lmax + 1)]
    for m in range(lmax + 1):
        diagonal = 1.0
        for k in range(1, 2 * m, 2):
            diagonal *= float(k)
        q[m][m] = torch.full_like(z, diagonal)
        if m + 1 <= lmax:
            q[m + 1][m] = (2 * m + 1) * z * q[m][m]
        for l in range(m + 2, lmax + 1):
            q[l][m] = ((2 * l - 1) * z * q[l - 1][m] - (l + m - 1) * q[l - 2][m]) / float(l - m)
    return q


def spherical_harmonics(unit: Tensor, lmax: int) -> Tensor:
    """Real spherical harmonics of unit vectors, normalised to ``sum_m Y_lm^2 = 2l + 1``.

    Degrees up to 3 are written out; higher ones (to :data:`MAX_DEGREE`) follow from the
    Legendre recurrence times ``Re/Im (x + iy)^m``, without the Condon-Shortley phase, the
    same convention: ``Y_l0 = sqrt(2l + 1) P_l(z)`` and, for ``m > 0``,
    ``Y_l(+-m) = sqrt(2 (2l + 1) (l - m)! / (l + m)!) P_l^(m)(z) (Re | Im)(x + iy)^m``.

    Args:
        unit: unit vectors [E, 3].
        lmax: highest degree, 0 to :data:`MAX_DEGREE`.

    Returns:
        ``Y`` [E, (lmax + 1)^2], columns ordered by degree and m = -l..l within a degree.
    """
    x, y, z = unit[:, 0], unit[:, 1], unit[:, 2]
    columns: List[Tensor] = [torch.ones_like(x)]
    if lmax >= 1:
        s3 = math.sqrt(3.0)
        columns += [s3 * y, s3 * z, s3 * x]
    if lmax >= 2:
        s15 = math.sqrt(15.0)
        columns += [
            s15 * x * y,
            s15 * y * z,
            0.5 * math.sqrt(5.0) * (3.0 * z * z - 1.0),
            s15 * x * z,
            0.5 * s15 * (x * x - y * y),
        ]
    if lmax >= 3:
        zz = z * z
        columns += [
            0.25 * math.sqrt(70.0) * y * (3.0 * x * x - y * y),
            math.sqrt(105.0) * x * y * z,
            0.25 * math.sqrt(42.0) * y * (5.0 * zz - 1.0),
            0.5 * math.sqrt(7.0) * z * (5.0 * zz - 3.0),
            0.25 * math.sqrt(42.0) * x * (5.0 * zz - 1.0),
            0.5 * math.sqrt(105.0) * z * (x * x - y * y),
            0.25 * math.sqrt(70.0) * x * (x * x - 3.0 * y * y),
        ]
    if lmax >= 4:
        q = _legendre_derivatives(z, lmax)
        cos_m: List[Tensor] = [torch.ones_like(x)]
        sin_m: List[Tensor] = [torch.zeros_like(x)]
        for m in range(1, lmax + 1):
            cos_m.append(cos_m[m - 1] * x - sin_m[m - 1] * y)
            sin_m.append(cos_m[m - 1] * y + sin_m[m - 1] * x)
        for l in range(4, lmax + 1):
            norms: List[float] = [math.sqrt(2.0 * l + 1.0)]
            for m in range(1, l + 1):
                norms.append(math.sqrt(2.0 * (2 * l + 1) * math.factorial(l - m) / math.factorial(l + m)))
            for m in range(l, 0, -1):
                columns.append(norms[m] * q[l][m] * sin_m[m])
            columns.append(norms[0] * q[l][0])
            for m in range(1, l + 1):
                columns.append(norms[m] * q[l][m] * cos_m[m])
    return torch.stack(columns, dim=-1)


def _sphere_quadrature(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Points [P, 3] and weights [P] (summing to 1) exact for polynomials up to ``order``."""
    nodes, weights = np.polynomial.legendre.leggauss(order // 2 + 1)
    num_phi = order + 1
    phi = 2.0 * np.pi * np.arange(num_phi) / num_phi
    cos_t, phi_grid = np.meshgrid(nodes, phi, indexing="ij")
    sin_t = np.sqrt(1.0 - cos_t**2)
    points = np.stack([sin_t * np.cos(phi_grid), sin_t * np.sin(phi_grid), cos_t], axis=-1).reshape(-1, 3)
    w = np.repeat(weights, num_phi) / (2.0 * num_phi)
    return points, w


def gaunt_coefficients(l1: int, l2: int, l3: int) -> Tensor:
    """Real Gaunt coefficients ``<Y_l1m1 Y_l2m2 Y_l3m3>`` averaged over the sphere,
    [2l1+1, 2l2+1, 2l3+1] in float64, by a quadrature exact for their polynomial degree."""
    lmax = max(l1, l2, l3)
    points, weights = _sphere_quadrature(l1 + l2 + l3 + 2)
    y = spherical_harmonics(torch.as_tensor(points, dtype=torch.float64), lmax).numpy()

    def block(l: int) -> np.ndarray:
        return y[:, l * l : (l + 1) * (l + 1)]

    g = np.einsum("p,pa,pb,pc->abc", weights, block(l1), block(l2), block(l3))
    g[np.abs(g) < 1e-12] = 0.0
    return torch.as_tensor(g)


def coupling_paths(lmax: int) -> list[tuple[int, int, int]]:
    """Degree triples ``l1 <= l2 <= l3 <= lmax`` with a parity-even, non-zero invariant."""
    return [
        (a, b, c)
        for a in range(lmax + 1)
        for b in range(a, lmax + 1)
        for c in range(b, lmax + 1)
        if (a + b + c) % 2 == 0 and c <= a + b and not (a == 0 and b == 0 and c == 0)
    ]


class _Product(nn.Module):
    """One invariant per channel: the coupled product of two or three mixed densities.

    Two factors of degree l: :math:`\\sum_m X_m Y_m`; three factors: the Gaunt-coupled
    triple product. Shapes: ``mixed[l][slot]`` [C, 2l+1, N] (channels first); returns [C, N].
    """

    def __init__(self, degrees: Sequence[int], slots: Sequence[int], channels: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.channels = int(channels)
        self.degrees = [int(l) for l in degrees]
        self.slots = [int(s) for s in slots]
        self.order = len(self.degrees)
        if self.order == 3:
            g = gaunt_coefficients(*self.degrees)
            self.register_buffer("gaunt", (g / g.norm()).to(dtype))
        else:
            self.register_buffer("gaunt", torch.zeros(0, dtype=dtype))

    def forward(self, mixed: List[List[Tensor]]) -> Tensor:
        x = mixed[self.degrees[0]][self.slots[0]]
        y = mixed[self.degrees[1]][self.slots[1]]
        if self.order == 2:
            return (x * y).sum(1)
        z = mixed[self.degrees[2]][self.slots[2]]
        # the outer product of the first two factors, coupled to the third degree by one
        # matrix product per channel over all atoms: cheaper than coupling the third factor
        # first, which forms and multiplies a tensor of the outer product's size twice
        channels, n = x.shape[0], x.shape[2]
        outer = (x.unsqueeze(2) * y.unsqueeze(1)).reshape(channels, -1, n)
        coupled = torch.matmul(self.gaunt.reshape(outer.shape[1], -1).t(), outer)
        return (coupled * z).sum(1)


class ACEPotential(nn.Module):
    """Atomic energies of a single-layer ACE with learned radial functions and an MLP readout.

    Args:
        num_species: S, the species the model knows.
        cutoff: radial cutoff in Å.
        channels: C, radial channels per degree.
        lmax: highest spherical-harmonic degree (0 to :data:`MAX_DEGREE`).
        num_basis: Bessel functions of the radial basis.
        radial_hidden: widths of the hidden layers of the radial MLP.
        hidden: widths of the hidden layers of the readout MLP.
        correlation: highest body order of the invariants minus one (1, 2 or 3).
        four_body_lmax: highest degree in the four-body (three-factor) couplings; ``None``:
            ``lmax``. The three-body invariants use every degree up to ``lmax``: their cost
            grows like ``lmax^2``, that of the four-body couplings like ``lmax^4``.
        avg_num_neighbors: normalises the neighbour densities.
        energy_shift: per-species atomic reference energy [S] (eV).
        energy_scale: scale of the readout's output (eV).
        linear_readout: add a linear function of the standardised invariants per species to
            the MLP's output (weights start at zero). ``False`` here so that checkpoints
            written before it existed, whose keyword arguments lack it, rebuild as they were;
            :class:`ACEConfig`, from which training builds the model, turns it on.

    Shapes:
        ``edge_vectors`` [E, 3] (Å), ``edge_index`` [2, E] (row 0: centres), ``species``
        [N], ``n_local`` (nodes ``0..n_local-1`` are the atoms whose energies are wanted;
        -1: all); returns atomic energies [N] (eV) in the dtype of the weights, zero beyond
        ``n_local``.
    """

    def __init__(
        self,
        num_species: int,
        cutoff: float,
        channels: int = 8,
        lmax: int = 4,
        num_basis: int = 8,
        radial_hidden: Sequence[int] = (32,),
        hidden: Sequence[int] = (64, 64),
        correlation: int = 3,
        four_body_lmax: int | None = None,
        avg_num_neighbors: float = 30.0,
        energy_shift: list[float] | None = None,
        energy_scale: float = 1.0,
        linear_readout: bool = False,
    ) -> None:
        super().__init__()
        if not 0 <= lmax <= MAX_DEGREE:
            raise ConfigError(f"lmax must be 0 to {MAX_DEGREE}, got {lmax}")
        if correlation not in (1, 2, 3):
            raise ConfigError(f"correlation must be 1, 2 or 3, got {correlation}")
        four_body_lmax = lmax if four_body_lmax is None else int(four_body_lmax)
        if not 0 <= four_body_lmax <= lmax:
            raise ConfigError(f"four_body_lmax must be 0 to lmax ({lmax}), got {four_body_lmax}")
        self.cutoff = float(cutoff)
        self.num_layers = 1
        self.num_species = int(num_species)
        self.channels = int(channels)
        self.lmax = int(lmax)
        self.inv_neighbors = 1.0 / float(avg_num_neighbors)
        dtype = torch.get_default_dtype()
        self.register_buffer(
            "frequencies", torch.arange(1, num_basis + 1, dtype=dtype) * math.pi / self.cutoff
        )
        widths = [int(num_basis), *[int(h) for h in radial_hidden]]
        radial: List[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            radial += [nn.Linear(a, b), nn.SiLU()]
        radial.append(nn.Linear(widths[-1], (self.lmax + 1) * self.channels, bias=False))
        self.radial = nn.Sequential(*radial)
        self.pair_weights = nn.Parameter(torch.ones(num_species * num_species, (self.lmax + 1) * self.channels))
        self.degree_sizes = [2 * l + 1 for l in range(self.lmax + 1)]
        # where density (l, c, m) sits in the flattened [(lmax+1)^2, (lmax+1) C] product of
        # harmonics and radial values (derived, so not saved with the weights)
        block_index = [
            (l * l + m) * (self.lmax + 1) * self.channels + l * self.channels + c
            for l in range(self.lmax + 1)
            for c in range(self.channels)
            for m in range(2 * l + 1)
        ]
        self.register_buffer("block_index", torch.tensor(block_index, dtype=torch.int64), persistent=False)

        degrees = [[l, l] for l in range(self.lmax + 1)] if correlation >= 2 else []
        degrees += [list(t) for t in coupling_paths(four_body_lmax)] if correlation >= 3 else []
        # every product factor is a channel mixing of one degree's densities, gathered per degree
        counts = [0] * (self.lmax + 1)
        products: List[nn.Module] = []
        for ls in degrees:
            slots = []
            for l in ls:
                slots.append(counts[l])
                counts[l] += 1
            products.append(_Product(ls, slots, self.channels, dtype))
        self.products = nn.ModuleList(products)
        self.mixings = nn.ModuleList(
            [nn.Linear(self.channels, self.channels * max(n, 1), bias=False) for n in counts]
        )
        self.num_products = len(products)
        self.num_descriptors = self.channels * (1 + self.num_products)
        self.register_buffer("feature_mean", torch.zeros(self.num_descriptors, dtype=dtype))
        self.register_buffer("feature_std", torch.ones(self.num_descriptors, dtype=dtype))

        hidden = [int(h) for h in hidden]
        if not hidden:
            raise ConfigError("hidden must name at least one layer width")
        self.first = nn.Linear(self.num_descriptors, num_species * hidden[0])
        readout: List[nn.Module] = [nn.SiLU()]
        for a, b in zip(hidden[:-1], hidden[1:]):
            readout += [nn.Linear(a, b), nn.SiLU()]
        readout.append(nn.Linear(hidden[-1], 1))
        self.readout = nn.Sequential(*readout)
        self.first_width = hidden[0]
        # a linear function of the invariants per species beside the MLP (zero at the start)
        self.linear: Optional[nn.Linear] = None
        if linear_readout:
            self.linear = nn.Linear(self.num_descriptors, num_species, bias=False)
            nn.init.zeros_(self.linear.weight)
        shift = torch.zeros(num_species) if energy_shift is None else torch.tensor(energy_shift)
        self.register_buffer("energy_shift", shift.to(dtype))
        self.register_buffer("energy_scale", torch.tensor(float(energy_scale), dtype=dtype))

    def densities(self, edge_vectors: Tensor, edge_index: Tensor, species: Tensor, n_out: int) -> List[Tensor]:
        """Neighbour densities of nodes ``0..n_out-1``, one tensor [C, 2l+1, n_out] per degree
        (channels first: the layout of the mixings and products in :meth:`descriptors`).

        The edges are laid out per centre atom (padded to the largest neighbour count), so
        that the densities are one batched product of harmonics and radial values per atom and
        no per-edge [E, (lmax+1)^2, C] tensor is ever formed.
        """
        centre = edge_index[0]
        if centre.shape[0] > 1 and not bool((centre[1:] >= centre[:-1]).all()):
            order = torch.argsort(centre, stable=True)
            edge_vectors = edge_vectors.index_select(0, order)
            edge_index = edge_index.index_select(1, order)
            centre = edge_index[0]
        # the padded layout first, on the edge vectors alone: every per-edge quantity is then
        # computed in place in it, and the slots beyond an atom's neighbours hold a vector
        # beyond the cutoff, whose envelope, and so contribution to the densities, is exactly zero
        counts = torch.bincount(centre, minlength=n_out)
        width = max(int(counts.max()), 1) if centre.shape[0] > 0 else 1
        start = torch.cumsum(counts, 0) - counts
        slot = centre * width + torch.arange(centre.shape[0], device=centre.device) - start.index_select(0, centre)
        far = edge_vectors.new_zeros(n_out * width, 3)
        far[:, 0] = 2.0 * self.cutoff
        vectors = far.index_copy(0, slot, edge_vectors)
        pair = species.index_select(0, centre) * self.num_species + species.index_select(0, edge_index[1])
        pair = pair.new_zeros(n_out * width).index_copy(0, slot, pair)

        r = torch.linalg.vector_norm(vectors, dim=-1)
        x = r / self.cutoff
        envelope = (1.0 - 28.0 * x.pow(6) + 48.0 * x.pow(7) - 21.0 * x.pow(8)) * (x < 1.0).to(r.dtype)
        basis = torch.sin(self.frequencies * r.unsqueeze(-1)) / r.unsqueeze(-1)
        if self.num_species == 1:
            padded_r = self.radial(basis) * self.pair_weights[0]
        else:
            padded_r = self.radial(basis) * self.pair_weights.index_select(0, pair)
        # the envelope multiplies each neighbour's product of harmonics and radial values (the
        # MLP's biases would otherwise survive at the cutoff), carried by the narrower factor
        padded_y = spherical_harmonics(vectors / r.unsqueeze(-1), self.lmax) * envelope.unsqueeze(-1)
        # one batched product of all harmonics with all radial values, [N, (lmax+1)^2,
        # (lmax+1) C], of which the densities are the diagonal blocks (degree l harmonics
        # with degree l channels): (lmax+1) times the arithmetic of one product per degree,
        # but half the time on one CPU thread, forward and backward, as one call runs at the
        # matrix library's speed where (lmax+1) thin ones do not
        num_y, num_r = padded_y.shape[1], padded_r.shape[1]
        full = torch.bmm(padded_y.view(n_out, width, num_y).transpose(1, 2), padded_r.view(n_out, width, num_r))
        # the blocks in one gather, whose backward fills one zero tensor (slicing each block
        # would fill one per degree), turned channels first: rows (l, c, m), a column per atom
        blocks = (full.view(n_out, num_y * num_r).index_select(1, self.block_index) * self.inv_neighbors).t().contiguous()
        out: List[Tensor] = []
        row = 0
        for size in self.degree_sizes:
            out.append(blocks[row : row + size * self.channels].view(self.channels, size, n_out))
            row += size * self.channels
        return out

    def descriptors(self, edge_vectors: Tensor, edge_index: Tensor, species: Tensor, n_local: int = -1) -> Tensor:
        """Raw (unstandardised) invariants [n_out, num_descriptors] of nodes ``0..n_out-1``,
        ``n_out`` = ``n_local`` if in range, else all nodes."""
        num_nodes = species.shape[0]
        n_out = n_local if 0 <= n_local < num_nodes else num_nodes
        if n_out < num_nodes:
            keep = edge_index[0] < n_out
            edge_vectors = edge_vectors[keep]
            edge_index = edge_index[:, keep]
        a = self.densities(edge_vectors, edge_index, species, n_out)
        # channels first, [C, 2l+1, N]: each degree's mixing is one matrix product and every
        # product factor a contiguous block, so the couplings run along rows of all atoms
        # (about twice as fast as atom-major [N, 2l+1, C] on one CPU thread)
        mixed: List[List[Tensor]] = []
        for l, mixing in enumerate(self.mixings):
            a_l = a[l].reshape(self.channels, (2 * l + 1) * n_out)
            slots = mixing.weight.shape[0] // self.channels
            mixed.append(torch.mm(mixing.weight, a_l).view(slots, self.channels, 2 * l + 1, n_out).unbind(0))
        features: List[Tensor] = [a[0][:, 0, :].t()]
        if self.num_products > 0:
            outs: List[Tensor] = []
            for product in self.products:
                outs.append(product(mixed))
            blocks = torch.stack(outs, 0)
            features.append(blocks.permute(2, 0, 1).reshape(n_out, self.num_products * self.channels))
        return torch.cat(features, dim=-1)

    def forward(self, edge_vectors: Tensor, edge_index: Tensor, species: Tensor, n_local: int = -1) -> Tensor:
        num_nodes = species.shape[0]
        features = (self.descriptors(edge_vectors, edge_index, species, n_local) - self.feature_mean) / self.feature_std
        n_out = features.shape[0]
        centre = species[:n_out]
        first = self.first(features).view(n_out, self.num_species, self.first_width)
        first = first.gather(1, centre.view(-1, 1, 1).expand(n_out, 1, self.first_width)).squeeze(1)
        energy = self.readout(first).squeeze(-1)
        linear = self.linear
        if linear is not None:
            energy = energy + linear(features).gather(1, centre.view(-1, 1)).squeeze(1)
        energy = energy * self.energy_scale + self.energy_shift.index_select(0, centre)
        if n_out < num_nodes:
            energy = torch.cat([energy, energy.new_zeros(num_nodes - n_out)])
        return energy


@torch.no_grad()
def fit_feature_scaling(model: nn.Module, graphs: Sequence[Any], max_atoms: int = 20000) -> None:
    """Standardise the invariants with their mean and spread over training graphs.

    Graphs are taken in order until ``max_atoms`` atoms are seen. The spread is floored at
    1e-3 of the invariant's root mean square: an invariant that hardly varies in the training
    set (the odd-degree densities of near-perfect crystals) divided by its own tiny spread
    amplified round-off by 10⁸ and made the model hypersensitive to structures unlike its
    training set. It is also floored at 1e-6, the divisor with which the high-order products
    (spreads down to 1e-9) trained best on the mlearn Si set. Invariants that vanish on every
    graph keep a divisor of 1.
    """
    rows, atoms = [], 0
    for graph in graphs:
        vectors = graph.edge_vectors.to(model.feature_mean.dtype)
        rows.append(model.descriptors(vectors, graph.edge_index, graph.species))
        atoms += int(graph.species.shape[0])
        if atoms >= max_atoms:
            break
    if not rows:
        return
    features = torch.cat(rows)
    rms = features.pow(2).mean(0).sqrt()
    spread = features.std(0, unbiased=False) if features.shape[0] > 1 else torch.zeros_like(rms)
    # invariants of different body order differ by many orders of magnitude: only those that
    # are zero on every graph count as vanishing
    vanishing = rms <= torch.finfo(rms.dtype).tiny
    model.feature_mean.copy_(torch.where(vanishing, torch.zeros_like(rms), features.mean(0)))
    floor = torch.maximum(1e-3 * rms, torch.full_like(rms, 1e-6))
    model.feature_std.copy_(torch.where(vanishing, torch.ones_like(rms), torch.maximum(spread, floor)))


@dataclass(frozen=True)
class ACEConfig:
    """Hyperparameters of the ACE potential (``architecture: ace``, YAML section ``ace``).

    Attributes:
        channels: radial channels per spherical-harmonic degree.
        lmax: highest spherical-harmonic degree, 0 to :data:`MAX_DEGREE`.
        correlation: highest correlation order of the invariants (1: two-body, 2: three-body,
            3: four-body).
        four_body_lmax: highest degree in the four-body couplings (``None``: ``lmax``).
        num_basis: Bessel functions of the radial basis.
        radial_hidden: hidden layer widths of the radial MLP (may be empty: linear).
        hidden: hidden layer widths of the readout MLP (at least one).
        linear_readout: a linear function of the invariants per species beside the MLP.

    The defaults, 8 channels to degree 4 in the three- and four-body invariants, are those
    that reached the published MTP/GAP errors on the mlearn Cu and Mo sets: degree 4 holds
    the first angular invariants of perfect bcc and fcc environments (Steinhardt's q4),
    which degree 3 sees only through distortions, and 8 channels kept the accuracy of 16 at
    about the cost of degree 3 with 16 (``benchmarks/RESULTS.md``). The linear readout beside
    the MLP lowered the mlearn Mo test errors from 3.03 / 93 to 2.24 / 85 meV/atom / meV/Å in
    side-by-side 20-minute trainings.
    """

    channels: int = 8
    lmax: int = 4
    correlation: int = 3
    four_body_lmax: int | None = None
    num_basis: int = 8
    radial_hidden: tuple[int, ...] = (32,)
    hidden: tuple[int, ...] = (64, 64)
    linear_readout: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "radial_hidden", tuple(self.radial_hidden))
        object.__setattr__(self, "hidden", tuple(self.hidden))
        checks = [
            (isinstance(self.channels, int) and self.channels >= 1, f"ace.channels must be a positive integer, got {self.channels!r}"),
            (
                isinstance(self.lmax, int) and 0 <= self.lmax <= MAX_DEGREE,
                f"ace.lmax must be an integer from 0 to {MAX_DEGREE}, got {self.lmax!r}",
            ),
            (self.correlation in (1, 2, 3), f"ace.correlation must be 1, 2 or 3, got {self.correlation!r}"),
            (
                self.four_body_lmax is None
                or (isinstance(self.four_body_lmax, int) and 0 <= self.four_body_lmax <= self.lmax),
                f"ace.four_body_lmax must be an integer from 0 to lmax ({self.lmax}), got {self.four_body_lmax!r}",
            ),
            (isinstance(self.num_basis, int) and self.num_basis >= 1, f"ace.num_basis must be a positive integer, got {self.num_basis!r}"),
            (
                all(isinstance(h, int) and h >= 1 for h in self.radial_hidden),
                f"ace.radial_hidden must be positive layer widths, got {list(self.radial_hidden)}",
            ),
            (
                len(self.hidden) >= 1 and all(isinstance(h, int) and h >= 1 for h in self.hidden),
                f"ace.hidden must be one or more positive layer widths, got {list(self.hidden)}",
            ),
            (
                isinstance(self.linear_readout, bool),
                f"ace.linear_readout must be true or false, got {self.linear_readout!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


def model_kwargs(config: ACEConfig, stats: GraphStatistics) -> dict[str, Any]:
    """Keyword arguments of :class:`ACEPotential` for ``config`` and the training set's statistics."""
    return {
        "num_species": len(stats.species),
        "cutoff": stats.cutoff,
        "channels": config.channels,
        "lmax": config.lmax,
        "num_basis": config.num_basis,
        "radial_hidden": [int(h) for h in config.radial_hidden],
        "hidden": [int(h) for h in config.hidden],
        "correlation": config.correlation,
        "four_body_lmax": config.four_body_lmax,
        "avg_num_neighbors": stats.mean_neighbours,
        "energy_shift": list(stats.energy_shift),
        "energy_scale": stats.force_scale,
        "linear_readout": bool(config.linear_readout),
    }


ARCHITECTURE = Architecture(
    name="ace",
    section="ace",
    config=ACEConfig,
    network=ACEPotential,
    model_kwargs=model_kwargs,
    deployed=DeployedEnergyModel,
    prepare=fit_feature_scaling,
    # one structure per step at a lower rate: on the mlearn Si and Mo sets this reached lower
    # test errors in the same time than batches of 4 at 5e-3 (benchmarks/RESULTS.md)
    training_defaults={"batch_size": 1, "learning_rate": 2e-3},
)
