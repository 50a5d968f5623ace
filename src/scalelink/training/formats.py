"""Readers that turn DFT training data into labelled ``ase.Atoms``.

Every reader returns frames carrying a ``SinglePointCalculator`` with

* ``energy``: total energy, eV (float);
* ``forces``: eV/Å, shape (N, 3);
* ``stress`` (when the source has one): eV/Å³, ASE Voigt order (xx, yy, zz, yz, xz, xy), shape (6,),
  with ASE's sign: tensile positive, ``stress = (1/V) dE/dstrain``. A compressed crystal has a
  negative stress here, and a positive pressure in VASP's OUTCAR or a positive DeePMD virial.

Supported: DeePMD-kit npy systems, the mlearn JSON of Zuo et al. 2020, and everything ASE reads
(extxyz, vasprun.xml, OUTCAR, ...). :func:`validate_frames` checks labels before training.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ase.io
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.stress import full_3x3_to_voigt_6_stress
from ase.units import GPa

from scalelink.bridge.errors import DataError

__all__ = ["read_any", "read_deepmd", "read_mlearn_json", "validate_frames"]

KBAR = 0.1 * GPa  # 1 kBar in eV/Å³ (1 eV/Å³ = 160.21766 GPa)

# Cartesian index pair of each stress component name; either order of a shear pair is accepted.
_PAIRS = {
    "xx": (0, 0), "yy": (1, 1), "zz": (2, 2),
    "xy": (0, 1), "yx": (0, 1), "yz": (1, 2), "zy": (1, 2), "xz": (0, 2), "zx": (0, 2),
}



def _labelled(atoms: Atoms, energy: float, forces: np.ndarray, stress: np.ndarray | None) -> Atoms:
    results: dict[str, Any] = {"energy": float(energy), "forces": forces}
    if stress is not None:
        results["stress"] = stress
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def _load(file: Path, width: int, nframes: int | None = None) -> np.ndarray:
    """Load a DeePMD ``.npy`` array as float64 of shape [frames, width]."""
    try:
        arr = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {file}: {exc}; rewrite it with numpy.save") from exc
    n = arr.size // width if nframes is None else nframes
    if n == 0 or arr.size != n * width:
        raise DataError(
            f"{file} has shape {arr.shape}, expected [{n or 'frames'}, {width}]; "
            "check it against type.raw (atom count) and the other arrays of its set"
        )
    return arr.astype(np.float64).reshape(n, width)


def _read_deepmd_system(system: Path, type_map: Sequence[str] | None) -> list[Atoms]:
    try:
        types = np.loadtxt(system / "type.raw", dtype=int, ndmin=1)
    except ValueError as exc:
        raise DataError(f"{system}/type.raw must hold one integer type per atom: {exc}") from exc
    names = type_map
    if (system / "type_map.raw").is_file():
        names = (system / "type_map.raw").read_text().split()
        if type_map is not None and list(type_map) != names:
            raise DataError(
                f"{system}/type_map.raw lists {names} but type_map={list(type_map)} was given; "
                "drop the keyword (the file describes this data) or fix the file"
            )
    if names is None:
        raise DataError(f"{system} has no type_map.raw; pass type_map=[element names by type index]")
    if types.size == 0:
        raise DataError(f"{system}/type.raw is empty; it needs one integer type per atom")
    nopbc = (system / "nopbc").exists()
    sets = sorted(p for p in system.glob("set.*") if p.is_dir())
    if not sets:
        raise DataError(f"{system} has type.raw but no set.* folders with coord.npy, energy.npy, ...")
    n = types.size
    frames = []
    for folder in sets:
        coord = _load(folder / "coord.npy", 3 * n)
        f = len(coord)
        energy = _load(folder / "energy.npy", 1, f)[:, 0]
        force = _load(folder / "force.npy", 3 * n, f)
        box = _load(folder / "box.npy", 9, f) if not nopbc else np.zeros((f, 9))
        # real_atom_types.npy: DeePMD's "mixed type" systems, types vary per frame.
        real = folder / "real_atom_types.npy"
        ftypes = _load(real, n, f).astype(int) if real.is_file() else np.broadcast_to(types, (f, n))
        if ftypes.min() < 0 or ftypes.max() >= len(names):
            raise DataError(f"{real if real.is_file() else system / 'type.raw'} has types "
                            f"{sorted(set(ftypes.flat))}, beyond the type map {list(names)}")
        stress = None
        # A virial needs a volume; without periodic boundaries there is none, so it is dropped.
        if (folder / "virial.npy").is_file() and not nopbc:
            virial = _load(folder / "virial.npy", 9, f).reshape(f, 3, 3)
            volume = np.abs(np.linalg.det(box.reshape(f, 3, 3)))
            with np.errstate(divide="ignore", invalid="ignore"):  # validate_frames reports V = 0
                stress = full_3x3_to_voigt_6_stress(-virial / volume[:, None, None])
        for i in range(f):
            atoms = Atoms(
                symbols=[names[t] for t in ftypes[i]],
                positions=coord[i].reshape(n, 3),
                cell=box[i].reshape(3, 3),
                pbc=not nopbc,
            )
            atoms.info["source"] = f"{folder} frame {i}"
            frames.append(_labelled(atoms, energy[i], force[i].reshape(n, 3),
                                    None if stress is None else stress[i]))
    return frames


def read_deepmd(path: str | os.PathLike, type_map: Sequence[str] | None = None) -> list[Atoms]:
    """Read a DeePMD-kit npy system, or a folder holding several (any depth).

    A system folder holds ``type.raw`` (N ints), optional ``type_map.raw`` (element names by type
    index), optional ``nopbc`` and ``set.*/`` folders with, per set of F frames:
    ``coord.npy`` [F, N*3] Å; ``box.npy`` [F, 9] Å, rows are cell vectors (not read with
    ``nopbc``); ``energy.npy`` [F] eV; ``force.npy`` [F, N*3] eV/Å; optional ``virial.npy``
    [F, 9] eV (XX XY XZ YX YY YZ ZX ZY ZZ); optional ``real_atom_types.npy`` [F, N] (mixed type).

    DeePMD's virial is ``Xi = -dE/dstrain`` (energy units, positive under compression, as dpdata
    writes ``-V * ase_stress``, i.e. V times VASP's stress); it is converted to ASE stress as
    ``-sym(Xi) / V`` [eV/Å³]. Virials of ``nopbc`` systems are dropped (no volume).

    Args:
        path: a system folder (contains ``type.raw``) or a folder with systems below it.
        type_map: element names by type index, for systems without ``type_map.raw``.

    Returns:
        All frames, systems in sorted path order, sets in order; ``info["source"]`` names the set
        folder and frame.

    Raises:
        DataError: no system found, no type map, arrays missing, unreadable or of the wrong shape.
    """
    root = Path(path)
    systems = [root] if (root / "type.raw").is_file() else sorted(p.parent for p in root.rglob("type.raw"))
    if not systems:
        raise DataError(f"{root} is not a DeePMD system: no type.raw in it or in folders below it")
    frames: list[Atoms] = []
    for system in systems:
        frames.extend(_read_deepmd_system(system, type_map))
    return frames


def _stress_pairs(stress_order: str) -> list[tuple[int, int]]:
    tokens = stress_order.lower().split()
    pairs = [_PAIRS.get(t) for t in tokens]
    if len(pairs) != 6 or None in pairs or len(set(pairs)) != 6:
        raise ValueError(f"stress_order={stress_order!r} must name the six components once each, "
                         "e.g. 'xx yy zz xy yz zx'")
    return pairs  # type: ignore[return-value]


def read_mlearn_json(path: str | os.PathLike, stress_order: str = "xx yy zz xy yz zx") -> list[Atoms]:
    """Read the mlearn JSON format (Zuo et al., J. Phys. Chem. A 124, 731 (2020)).

    The file is a list of entries, each with ``structure`` (a pymatgen Structure dict:
    ``lattice.matrix`` 3x3 Å, rows are cell vectors; ``sites[k].species[0].element`` and
    ``sites[k].xyz`` Cartesian Å or ``abc`` fractional), ``outputs.energy`` (total, eV),
    ``outputs.forces`` (N x 3, eV/Å), optional ``outputs.virial_stress`` (6 values, kBar, VASP's
    sign: compression positive) and ``group`` (or ``tags``), stored as ``info["config_type"]``.

    The stress becomes ``-virial_stress * 0.1 GPa`` in eV/Å³ (ASE's sign). The order of its shear
    components is not recorded in the files and differs between mlearn elements: our conversion
    (``/work/shared/data/mlearn/*/provenance.json``, fitted against elastic-strain energies) found
    Si: ``"xx yy zz xy yz zx"`` (VASP's OUTCAR order, the default) but Cu and Mo:
    ``"xx yy zz xy xz yz"``. Pass the right one: a wrong order silently swaps shear stresses.

    Args:
        path: the JSON file.
        stress_order: names of the six ``virial_stress`` components in file order, separated by
            spaces; shear pairs may be written either way round (``zx`` = ``xz``).

    Returns:
        One frame per entry, periodic in all directions.

    Raises:
        DataError: unreadable JSON or an entry lacking a field (names the file and entry index).
        ValueError: ``stress_order`` does not name six distinct components.
    """
    pairs = _stress_pairs(stress_order)
    try:
        entries = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path} as JSON: {exc}") from exc
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected a JSON list of entries, got {type(entries).__name__}")
    frames = []
    for k, entry in enumerate(entries):
        try:
            lattice = np.array(entry["structure"]["lattice"]["matrix"], dtype=np.float64)
            sites = entry["structure"]["sites"]
            symbols = [site["species"][0]["element"] for site in sites]
            positions = [site["xyz"] if "xyz" in site else np.dot(site["abc"], lattice) for site in sites]
            outputs = entry["outputs"]
            energy, forces = float(outputs["energy"]), np.array(outputs["forces"], dtype=np.float64)
            virial_stress = outputs.get("virial_stress")
            if virial_stress is not None and len(virial_stress) != 6:
                raise ValueError(f"virial_stress has {len(virial_stress)} values, expected 6")
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise DataError(f"{path} entry {k}: missing or malformed field {exc}; expected the "
                            "mlearn layout (structure.lattice.matrix, structure.sites, outputs)") from exc
        stress = None
        if virial_stress is not None:
            vasp = np.zeros((3, 3))
            for value, (i, j) in zip(virial_stress, pairs, strict=True):
                vasp[i, j] = vasp[j, i] = value
            stress = full_3x3_to_voigt_6_stress(-vasp * KBAR)
        atoms = Atoms(symbols=symbols, positions=positions, cell=lattice, pbc=True)
        group = entry.get("group") or entry.get("tags")
        if group:
            atoms.info["config_type"] = group if isinstance(group, str) else ",".join(map(str, group))
        frames.append(_labelled(atoms, energy, forces, stress))
    return frames


def _nonfinite(**arrays: Any) -> str | None:
    for name, value in arrays.items():
        if value is not None and not np.all(np.isfinite(value)):
            return f"{name} contains NaN or Inf; fix or drop this frame"
    return None


def _check_frame(atoms: Atoms, species: Sequence[str] | None) -> str | None:
    """Return what is wrong with one frame and how to fix it, or None."""
    results = atoms.calc.results if atoms.calc is not None else {}
    n = len(atoms)
    if "energy" not in results:
        return "no energy label; give every frame a total energy in eV (extxyz: energy=...) or drop it"
    if "forces" not in results:
        return "no forces label; give every frame per-atom forces in eV/Å (extxyz: forces column)"
    forces = np.asarray(results["forces"])
    if forces.shape != (n, 3):
        return f"forces have shape {forces.shape}, expected ({n}, 3) for {n} atoms"
    stress = results.get("stress")
    if stress is not None and np.shape(stress) not in ((6,), (3, 3)):
        return f"stress has shape {np.shape(stress)}, expected (6,) Voigt or (3, 3)"
    if species is not None:
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(species))
        if unknown:
            return f"species {unknown} not in the species list {list(species)}; add them or drop the frame"
    bad = _nonfinite(positions=atoms.positions, cell=atoms.cell.array)
    if bad:
        return bad
    # Before the labels: a zero volume makes a stress converted from a virial Inf.
    periodic = atoms.cell.array[atoms.pbc]
    if len(periodic) and np.linalg.matrix_rank(periodic, tol=1e-8) < len(periodic):
        return (f"the cell {atoms.cell.array.tolist()} has zero volume along its periodic "
                f"directions (pbc={atoms.pbc.tolist()}); give a cell or set pbc=False")
    weight = atoms.info.get("weight", 1.0)
    if not (isinstance(weight, (int, float, np.number)) and np.isfinite(weight) and weight >= 0.0):
        return f"weight {weight!r} is not a finite non-negative number; fix the frame's weight or drop it"
    return _nonfinite(energy=results["energy"], forces=forces, stress=stress)


def validate_frames(frames: Sequence[Atoms], where: str, species: Sequence[str] | None = None) -> None:
    """Check that every frame is usable for training.

    Checks: an energy and (N, 3) forces are present; energy, forces, stress, positions and cell are
    finite; periodic directions have a non-degenerate cell; all species are in ``species``; a
    ``weight`` in ``atoms.info`` is a finite non-negative number.

    Args:
        frames: the frames, e.g. from :func:`read_any`.
        where: the file or folder they came from, quoted in messages.
        species: the allowed element symbols; None skips that check.

    Raises:
        DataError: for the first bad frame, naming ``where``, the frame index (and for DeePMD the
            set folder), the problem and how to fix it; or when ``frames`` is empty.
    """
    if not frames:
        raise DataError(f"{where}: no frames found")
    for k, atoms in enumerate(frames):
        problem = _check_frame(atoms, species)
        if problem is not None:
            source = atoms.info.get("source")
            raise DataError(f"{where} frame {k}{f' ({source})' if source else ''}: {problem}")


def read_any(path: str | os.PathLike, **kw: Any) -> list[Atoms]:
    """Read labelled frames from any supported source, chosen by what ``path`` is.

    * a folder: DeePMD-kit system(s), :func:`read_deepmd` (keyword ``type_map``);
    * ``*.json``: mlearn JSON, :func:`read_mlearn_json` (keyword ``stress_order``);
    * anything else: ``ase.io.read`` (extxyz, vasprun.xml, OUTCAR, ...); keywords go to it
      (``index`` defaults to ``":"``, all frames).

    Args:
        path: the file or folder.
        **kw: passed to the chosen reader.

    Returns:
        The frames, not validated: call :func:`validate_frames`.

    Raises:
        DataError: the path does not exist or cannot be read.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p} does not exist")
    if p.is_dir():
        return read_deepmd(p, **kw)
    if p.suffix.lower() == ".json":
        return read_mlearn_json(p, **kw)
    kw.setdefault("index", ":")
    try:
        # Not ASE's parallel mode: under mpirun it reads on rank 0 and broadcasts over COMM_WORLD,
        # a collective that ranks not reading data would never join.
        frames = ase.io.read(p, parallel=False, **kw)
    except Exception as exc:  # ASE raises many exception types for unreadable files
        raise DataError(f"cannot read {p} with ASE: {type(exc).__name__}: {exc}") from exc
    return frames if isinstance(frames, list) else [frames]
