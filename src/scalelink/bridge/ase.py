"""ASE side of the bridge: periodic neighbour graphs and the ScaleLink calculator.

:class:`ScaleLinkCalculator` runs a deployed model file on an :class:`ase.Atoms` and is the
Python reference that ``pair_style scalelink`` in LAMMPS must reproduce.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.neighborlist import primitive_neighbor_list

from . import keys
from .errors import ModelFileError, NonFiniteError, SpeciesError, UnitsError
from .model_file import ModelMetadata, load_model, select_device

__all__ = ["ScaleLinkCalculator", "committee_deviations", "neighbor_graph", "species_indices"]


def neighbor_graph(atoms: Atoms, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """All pairs closer than ``cutoff``, every periodic image included.

    Cells smaller than twice the cutoff are handled: an atom may see several images of the
    same neighbour, and its own images.

    Args:
        atoms: the structure; periodic along the directions where ``atoms.pbc`` is true.
        cutoff: radius in Å.

    Returns:
        ``edge_index`` [2, n_edges] int64 (centre i, neighbour j) and ``edge_vectors``
        [n_edges, 3] float64 with ``r_j + shift - r_i`` in Å.
    """
    i, j, d = primitive_neighbor_list(
        "ijD",
        atoms.pbc,
        np.asarray(atoms.cell[:], dtype=np.float64),
        np.asarray(atoms.positions, dtype=np.float64),
        float(cutoff),
        self_interaction=False,
        use_scaled_positions=False,
    )
    return np.stack([i, j]).astype(np.int64), np.ascontiguousarray(d, dtype=np.float64)


def species_indices(symbols: list[str], species: list[str], source: str = "the model") -> np.ndarray:
    """Map chemical symbols to indices into ``species``.

    Raises:
        SpeciesError: a symbol is not in ``species``; the message lists both.
    """
    lookup = {s: k for k, s in enumerate(species)}
    unknown = sorted({s for s in symbols if s not in lookup})
    if unknown:
        raise SpeciesError(
            f"species {unknown} are not in {source}, which knows {species}; "
            "train a model that includes them or remove those atoms"
        )
    return np.fromiter((lookup[s] for s in symbols), dtype=np.int64, count=len(symbols))


def _voigt_stress_from_virial(virial: np.ndarray, volume: float) -> np.ndarray:
    # virial arrives as xx yy zz xy xz yz (LAMMPS); ASE stress is (1/V) dE/deps = -W/V in
    # the order xx yy zz yz xz xy.
    xx, yy, zz, xy, xz, yz = virial
    return -np.array([xx, yy, zz, yz, xz, xy]) / volume


class ScaleLinkCalculator(Calculator):
    """ASE calculator for a deployed ScaleLink potential.

    Args:
        model: path of a model file written by ``scalelink deploy``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.

    Results are in eV and Å: ``energy`` and ``free_energy`` (eV), ``forces`` [N, 3] (eV/Å),
    ``stress`` as a Voigt 6-vector (eV/Å³, fully periodic cells only), per-atom
    ``energies`` [N] (eV) and per-atom ``stresses`` [N, 6] (eV/Å³, summing to ``stress``).

    For a committee (``committee_size`` M > 1) these are the members' means, and the
    results also hold how far the members disagree, as population standard deviations
    over the M members: ``energy_deviation`` (eV), the standard deviation of the member
    energies; ``forces_deviation`` [N] (eV/Å), per atom
    :math:`\\sqrt{\\tfrac1M \\sum_m |F_{m,i} - \\bar F_i|^2}`; and ``max_force_deviation``
    (eV/Å), its largest value over the atoms.

    A structure with NaN or infinite positions or cell, and a model output (energy, forces,
    virial) that is not finite, raise :class:`~scalelink.bridge.errors.NonFiniteError` naming
    the atoms; a device torch cannot see raises :class:`~scalelink.bridge.errors.ConfigError`.
    """

    implemented_properties: list[str] = ["energy", "free_energy", "forces", "stress", "energies", "stresses"]
    committee_properties: ClassVar[list[str]] = ["energy_deviation", "forces_deviation", "max_force_deviation"]

    def __init__(self, model: str | os.PathLike[str], *, device: str = "cpu", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_path = os.fspath(model)
        self.device = select_device(device)
        self.module, self.metadata = load_model(self.model_path, device=self.device)
        if self.metadata.kind != "potential":
            raise ModelFileError(
                f"{self.model_path!r} is a {self.metadata.kind!r} model; the calculator needs a potential"
            )
        if self.metadata.units != "metal":
            raise UnitsError(
                f"{self.model_path!r} works in LAMMPS units {self.metadata.units!r}, but ASE works in eV and Å "
                "(LAMMPS 'metal'); re-export the model in metal units"
            )
        if self.metadata.committee_size > 1:
            self.implemented_properties = [*type(self).implemented_properties, *self.committee_properties]

    @property
    def model_metadata(self) -> ModelMetadata:
        """Metadata stored in the model file."""
        return self.metadata

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: list[str] | None = None,
        system_changes: list[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties or ["energy"], system_changes)
        assert self.atoms is not None
        _check_finite_structure(self.atoms)
        species = species_indices(list(self.atoms.get_chemical_symbols()), self.metadata.species, self.model_path)
        edge_index, edge_vectors = neighbor_graph(self.atoms, self.metadata.cutoff)
        inputs = {
            keys.EDGE_INDEX: torch.from_numpy(edge_index).to(self.device),
            keys.EDGE_VECTORS: torch.from_numpy(edge_vectors).to(self.device),
            keys.SPECIES: torch.from_numpy(species).to(self.device),
            keys.N_LOCAL: torch.tensor(len(self.atoms), dtype=torch.int64, device=self.device),
        }
        with torch.enable_grad():
            out = self.module(inputs)
        _check_finite_output(out, edge_index, edge_vectors, self.model_path)
        energy = float(out[keys.ENERGY].detach().cpu())
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["energies"] = out[keys.ATOMIC_ENERGY].detach().cpu().numpy().astype(np.float64)
        self.results["forces"] = out[keys.FORCES].detach().cpu().numpy().astype(np.float64)
        if self.atoms.pbc.all():
            volume = self.atoms.get_volume()
            virial = out[keys.VIRIAL].detach().cpu().numpy().astype(np.float64)
            self.results["stress"] = _voigt_stress_from_virial(virial, volume)
            # per-atom virials (xx yy zz xy xz yz yx zx zy), symmetrised; they sum to the stress
            w = out[keys.ATOMIC_VIRIAL].detach().cpu().numpy().astype(np.float64)
            symmetric = np.column_stack([w[:, 0], w[:, 1], w[:, 2], 0.5 * (w[:, 3] + w[:, 6]),
                                         0.5 * (w[:, 4] + w[:, 7]), 0.5 * (w[:, 5] + w[:, 8])])
            self.results["stresses"] = -symmetric[:, [0, 1, 2, 5, 4, 3]] / volume
        elif "stress" in (properties or []):
            raise PropertyNotImplementedError("stress needs a cell periodic in all three directions")
        if self.metadata.committee_size > 1:
            self.results.update(committee_deviations(out))


def _check_finite_structure(atoms: Atoms) -> None:
    """Positions and a cell of finite numbers; the neighbour search silently drops NaN atoms."""
    bad = np.flatnonzero(~np.isfinite(atoms.positions).all(axis=1))
    if bad.size:
        raise NonFiniteError(
            f"atoms {bad[:10].tolist()}{' ...' if bad.size > 10 else ''} ({bad.size} of {len(atoms)}) have NaN "
            f"or infinite positions (first: {atoms.positions[bad[0]].tolist()}); a dynamics or relaxation "
            "that produced them diverged: restart it from the last finite structure with a smaller step"
        )
    if not np.isfinite(atoms.cell.array).all():
        raise NonFiniteError(f"the cell {atoms.cell.array.tolist()} holds NaN or infinite numbers; give a finite cell")


def _check_finite_output(
    out: dict[str, torch.Tensor], edge_index: np.ndarray, edge_vectors: np.ndarray, model_path: str
) -> None:
    """Energy, forces and virial of finite numbers, or an error naming the atoms affected and the
    closest pair (overlapping atoms are the usual cause)."""
    forces = out[keys.FORCES].detach()
    finite_forces = torch.isfinite(forces).all(dim=1)
    if bool(finite_forces.all()) and bool(torch.isfinite(out[keys.ENERGY]).all()) and bool(
        torch.isfinite(out[keys.VIRIAL]).all()
    ):
        return
    bad = torch.nonzero(~finite_forces).flatten().cpu().tolist()
    closest = ""
    if edge_vectors.size:
        k = int(np.argmin(np.linalg.norm(edge_vectors, axis=1)))
        closest = (f"; closest pair: atoms {int(edge_index[0, k])} and {int(edge_index[1, k])} at "
                   f"{float(np.linalg.norm(edge_vectors[k])):.3g} Å")
    raise NonFiniteError(
        f"model {model_path!r} returned a NaN or infinite energy, forces or virial ({len(bad)} of "
        f"{forces.shape[0]} atoms with non-finite forces, first {bad[:10]}{closest}). Overlapping atoms "
        "or weights that are not finite cause this: check the structure, or re-deploy the model"
    )


def committee_deviations(out: dict[str, torch.Tensor]) -> dict[str, float | np.ndarray]:
    """How far the members of a committee disagree, from the outputs of one forward call.

    Args:
        out: the outputs of a committee model, with ``member_energy`` [M] (eV) and
            ``member_forces`` [M, N, 3] (eV/Å).

    Returns:
        ``energy_deviation`` (eV): the standard deviation of the M member energies;
        ``forces_deviation`` [N] (eV/Å): per atom, the root mean square over the members
        of ``|F_m,i - mean_m F_m,i|``; ``max_force_deviation`` (eV/Å): its maximum (0 for
        no atoms). Population statistics (divided by M, not M - 1), as LAMMPS'
        ``compute scalelink/deviation`` reports them.
    """
    member_energy = out[keys.MEMBER_ENERGY].detach().cpu().numpy().astype(np.float64)
    member_forces = out[keys.MEMBER_FORCES].detach().cpu().numpy().astype(np.float64)
    spread = member_forces - member_forces.mean(axis=0)
    forces_deviation = np.sqrt((spread**2).sum(axis=2).mean(axis=0))
    return {
        "energy_deviation": float(member_energy.std()),
        "forces_deviation": forces_deviation,
        "max_force_deviation": float(forces_deviation.max(initial=0.0)),
    }
