"""An atomistic RVE micro model: stress and tangent of a periodic cell relaxed by LAMMPS.

At each quadrature point the macro small strain ``ε`` deforms a periodic reference cell by the
Cauchy–Born rule, ``H = H₀ (I + ε)`` (cell vectors as rows, atoms mapped affinely), the atoms
relax with the box held fixed (``minimize``), and the stress is the virial stress of the relaxed
cell, ``σ = −P`` (LAMMPS ``compute pressure ... virial``). The tangent is the central finite
difference of that stress in the ``m`` Mandel directions; the perturbed cells start from the
point's relaxed configuration, so each perturbation needs only a short relaxation.

Every evaluation of a point starts from the reference configuration, so results do not depend on
the order in which points are evaluated. The model is elastic (``has_state = False``): the
relaxed atomic positions are not carried from one macro step to the next, so it cannot represent
slip, phase changes or any path-dependent atomic rearrangement.

Each MPI rank owns one LAMMPS instance (on ``MPI.COMM_SELF`` by default) and evaluates the points
it owns; one relaxation per point is unavoidable, hence the Python loop over points.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.linalg
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers

from scalelink.bridge.errors import ConfigError, ScaleLinkError
from scalelink.bridge.units import AMU_IN_MASS_UNIT, PRESSURE_IN_GPA, unit_style

from .micro import MicroModel, check_strain_batch
from .tensors import PLANE_STRAIN_INDICES, mandel_from_tensor, tensor_from_mandel, validate_strain_size

__all__ = ["AtomisticRVE"]

_STRESS_COMPUTE = "scalelink_rve_stress"


class AtomisticRVE(MicroModel):
    """Cauchy–Born RVE whose stress and tangent come from LAMMPS.

    Args:
        atoms: the periodic reference cell, either an :class:`ase.Atoms` (positions and cell in
            Å) or LAMMPS commands that create the box, the atoms and their masses (they run
            after ``units``, ``atom_style atomic``, ``atom_modify map array`` and
            ``boundary p p p``).
        pair_commands: the interaction, e.g. ``["pair_style eam/alloy",
            "pair_coeff * * CuNi.eam.alloy Cu Ni"]`` or ``["pair_style scalelink",
            "pair_coeff * * model.pt Cu Ni"]``.
        strain_size: 6 (3D) or 3 (plane strain: ``ε_zz = ε_xz = ε_yz = 0``, the in-plane Mandel
            block of stress and tangent is returned).
        relax: relax the atomic positions at fixed cell; ``False`` gives the affine
            (unrelaxed, Cauchy–Born) answer, exact for monatomic Bravais lattices.
        fd_step: central finite-difference step of the tangent (Mandel strain units).
        units: LAMMPS unit style of ``pair_commands`` (``metal``, ``real`` or ``si``); stresses
            are returned in GPa whatever the style.
        species: chemical symbols of LAMMPS atom types 1, 2, …; by default the sorted distinct
            symbols of ``atoms`` (ignored when ``atoms`` are LAMMPS commands).
        force_tolerance: the relaxation stops when the largest force component is below this
            (eV/Å, whatever ``units``).
        max_residual_force: a relaxation that ends with a larger force component (eV/Å) raises
            (it hit ``max_iterations`` or the line search stalled far from a minimum).
        max_iterations: largest number of minimizer iterations per relaxation.
        max_strain: largest accepted absolute strain component; larger strains raise.
        reference_relax: first relax the reference cell (positions and all six cell components,
            ``fix box/relax tri 0``) to zero stress; the rotation-free part of the cell change is
            kept, so the crystal's orientation stays that of ``atoms``.
        comm: communicator of the LAMMPS instance (default ``MPI.COMM_SELF``); every rank of it
            must call :meth:`evaluate` with the same strains.

    Attributes:
        last_energy: potential energy (eV) of every point of the last :meth:`evaluate`, ``(n,)``.
        last_max_force: largest atomic force component (eV/Å) of every point after its
            relaxation (or of the affine configuration when ``relax`` is off), ``(n,)``.
    """

    has_state = False
    stress_unit = "GPa"

    def __init__(
        self,
        atoms: Atoms | Sequence[str],
        pair_commands: Sequence[str],
        *,
        strain_size: int = 6,
        relax: bool = True,
        fd_step: float = 1.0e-4,
        units: str = "metal",
        species: Sequence[str] | None = None,
        force_tolerance: float = 1.0e-8,
        max_residual_force: float = 1.0e-4,
        max_iterations: int = 10000,
        max_strain: float = 0.2,
        reference_relax: bool = False,
        comm: Any = None,
    ) -> None:
        import mpi4py.MPI as MPI

        self.strain_size = validate_strain_size(strain_size)
        self._style = unit_style(units)
        for name, value in (("fd_step", fd_step), ("force_tolerance", force_tolerance),
                            ("max_residual_force", max_residual_force), ("max_strain", max_strain)):
            if not np.isfinite(value) or value <= 0.0:
                raise ConfigError(f"{name} must be a positive number, got {value!r}")
        if max_iterations < 1:
            raise ConfigError(f"max_iterations must be at least 1, got {max_iterations!r}")
        if isinstance(pair_commands, str) or not pair_commands:
            raise ConfigError(
                f"pair_commands must be a non-empty list of LAMMPS commands, got {pair_commands!r}; "
                'e.g. ["pair_style eam", "pair_coeff 1 1 Cu_u3.eam"]'
            )
        self.units = units
        self.relax = bool(relax)
        self.fd_step = float(fd_step)
        self.max_strain = float(max_strain)
        self._force_tolerance = float(force_tolerance) / self._style.force
        self._max_iterations = int(max_iterations)
        self.max_residual_force = float(max_residual_force)
        self.species: list[str] | None = None
        self.last_energy = np.empty(0)
        self.last_max_force = np.empty(0)

        import lammps

        self._lmp: Any = lammps.lammps(
            cmdargs=["-screen", "none", "-log", "none", "-nocite"],
            comm=MPI.COMM_SELF if comm is None else comm,
        )
        try:
            self._initialise(atoms, species, list(pair_commands), reference_relax)
        except BaseException:
            self.close()
            raise

    # --------------------------------------------------------------------------- set-up

    def _initialise(
        self, atoms: Atoms | Sequence[str], species: Sequence[str] | None,
        pair_commands: list[str], reference_relax: bool,
    ) -> None:
        for line in ("units " + self.units, "atom_style atomic", "atom_modify map array sort 0 0.0",
                     "boundary p p p"):
            self._command(line)
        if isinstance(atoms, Atoms):
            self._create_from_atoms(atoms, species)
        elif isinstance(atoms, Sequence) and not isinstance(atoms, str):
            for line in atoms:
                self._command(str(line))
            if not self._lmp.extract_box()[5][0]:
                raise ConfigError("the LAMMPS set-up commands made a box that is not periodic in x")
            self._command("change_box all triclinic")
        else:
            raise ConfigError(
                f"atoms must be an ase.Atoms or a list of LAMMPS commands, got {type(atoms).__name__}"
            )
        for line in pair_commands:
            self._command(line)
        self._command(f"compute {_STRESS_COMPUTE} all pressure NULL virial")
        self._command(f"thermo_style custom step pe c_{_STRESS_COMPUTE}[*]")
        self._command("thermo_modify norm no")
        self._command("thermo 0")
        # LAMMPS' defaults are in the style's length unit (0.001 m of skin and 0.1 m of largest
        # minimizer step in si): fix them in Å
        angstrom = 1.0 / self._style.length
        self._command(f"neighbor {2.0 * angstrom!r} bin")
        self._command(f"min_modify norm max dmax {0.1 * angstrom!r}")
        if not isinstance(atoms, Atoms):
            lower, positions = self._read_lammps_frame()
            self._reference_cell = lower
            self._reference_fractional = positions @ np.linalg.inv(lower)
        if reference_relax:
            self._relax_reference()
        else:
            # run once so that a bad pair_coeff or missing mass fails here, not at the first point
            self._command("run 0")

    def _create_from_atoms(self, atoms: Atoms, species: Sequence[str] | None) -> None:
        if not np.all(atoms.pbc):
            raise ConfigError(f"the RVE must be periodic in x, y and z, got pbc={atoms.pbc.tolist()}")
        if len(atoms) == 0:
            raise ConfigError("the RVE has no atoms")
        symbols = atoms.get_chemical_symbols()
        names = sorted(set(symbols)) if species is None else list(species)
        unknown = sorted(set(symbols) - set(names))
        if unknown or len(set(names)) != len(names):
            raise ConfigError(
                f"species {names} must list every symbol of the RVE once; missing {unknown}"
            )
        if any(name not in atomic_numbers for name in names):
            raise ConfigError(f"species {names} must be chemical symbols known to ASE")
        self.species = names
        cell = np.asarray(atoms.cell[:], dtype=float) / self._style.length
        if abs(np.linalg.det(cell)) < 1e-12 * np.abs(cell).max() ** 3:
            raise ConfigError(f"the RVE cell is singular: {atoms.cell[:].tolist()}")
        # strains act on the cell as given (the user's crystal frame), not on LAMMPS' rotation of it
        self._reference_cell = cell
        self._reference_fractional = np.linalg.solve(cell.T, atoms.positions.T / self._style.length).T
        _, _, reduced = _lammps_box(cell)
        self._command(
            "region scalelink_rve prism 0 {} 0 {} 0 {} {} {} {} units box".format(*_box(reduced))
        )
        self._command(f"create_box {len(names)} scalelink_rve")
        lookup = {name: k + 1 for k, name in enumerate(names)}
        types = [lookup[s] for s in symbols]
        self._lmp.create_atoms(len(atoms), list(range(1, len(atoms) + 1)), types,
                               np.zeros(3 * len(atoms)).tolist())
        amu = AMU_IN_MASS_UNIT[self.units]
        for k, name in enumerate(names, start=1):
            self._command(f"mass {k} {atomic_masses[atomic_numbers[name]] * amu:.10g}")
        self._write_configuration(cell, self._reference_fractional)

    def _relax_reference(self) -> None:
        cell0 = self._reference_cell
        lower0, rotation, reduced0 = _lammps_box(cell0)
        self._write_configuration(cell0, self._reference_fractional)
        self._command("fix scalelink_box all box/relax tri 0.0 vmax 0.001")
        self._minimize()
        self._command("unfix scalelink_box")
        relaxed_reduced, positions = self._read_lammps_frame()
        # back to the unreduced basis: reduced = M · lower with M integer and unimodular
        basis_change = np.round(reduced0 @ np.linalg.inv(lower0))
        relaxed = np.linalg.solve(basis_change, relaxed_reduced)
        # the deformation in the user's frame, without the rotation box/relax may add
        deformation = rotation.T @ np.linalg.solve(lower0, relaxed) @ rotation
        stretch = scipy.linalg.polar(deformation.T, side="right")[1]
        self._reference_cell = cell0 @ stretch
        self._reference_fractional = positions @ np.linalg.inv(relaxed)

    @property
    def reference_cell(self) -> np.ndarray:
        """The reference cell ``H₀`` (rows are cell vectors, Å, frame of ``atoms``), ``(3, 3)``."""
        return self._reference_cell * self._style.length

    # --------------------------------------------------------------------------- LAMMPS I/O

    def _command(self, line: str) -> None:
        if self._lmp is None:
            raise ScaleLinkError(
                "this AtomisticRVE's LAMMPS instance stopped on an earlier error (or was closed); "
                "create a new AtomisticRVE"
            )
        try:
            self._lmp.command(line)
        except Exception as error:  # LAMMPS raises a bare Exception carrying its message
            # A LAMMPS instance that raised is abandoned, not closed: some pair styles crash in
            # their destructor after a failed set-up (pair eam with a missing funcfl file).
            self._lmp.opened = 0
            self._lmp = None
            raise ScaleLinkError(
                f"LAMMPS rejected {line!r}: {str(error).strip()}\nCheck that the pair style is "
                "installed, the potential file exists, pair_coeff maps every atom type and the "
                "strain is not so large that the cell or the relaxation breaks down"
            ) from None

    def _read_lammps_frame(self) -> tuple[np.ndarray, np.ndarray]:
        boxlo, boxhi, xy, yz, xz, _, _ = self._lmp.extract_box()
        lx, ly, lz = (np.asarray(boxhi) - np.asarray(boxlo)).tolist()
        lower = np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])
        n = self._lmp.get_natoms()
        data = self._lmp.gather_atoms("x", 1, 3)
        positions = np.ctypeslib.as_array(data, shape=(3 * n,)).reshape(n, 3).copy()
        return lower, positions - np.asarray(boxlo)

    def _write_configuration(
        self, cell: np.ndarray, fractional: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Set the LAMMPS box to ``cell`` (user frame) and atoms to ``fractional @ cell``.

        Returns ``L`` and ``Q`` with ``cell = L Q``: the lower-triangular cell in LAMMPS' frame
        (before tilt reduction) and the rotation from that frame to the user's.
        """
        lower, rotation, reduced = _lammps_box(cell)
        positions = _wrap(fractional @ lower, reduced)
        lx, ly, lz, xy, xz, yz = _box(reduced)
        # lammps_reset_box() refuses boxes holding atoms; change_box does not, and the positions
        # written next replace whatever it did to the atoms
        self._command(
            f"change_box all x final 0 {lx!r} y final 0 {ly!r} z final 0 {lz!r} "
            f"xy final {xy!r} xz final {xz!r} yz final {yz!r} units box"
        )
        data = np.ascontiguousarray(positions.ravel())
        self._lmp.scatter_atoms("x", 1, 3, data.ctypes.data_as(ctypes.POINTER(ctypes.c_double)))
        return lower, rotation

    def _minimize(self) -> None:
        self._command(
            f"minimize 0.0 {self._force_tolerance:.6g} {self._max_iterations} "
            f"{10 * self._max_iterations}"
        )

    # --------------------------------------------------------------------------- solving

    def _solve(self, strain_tensor: np.ndarray, fractional: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stress tensor (GPa, user frame) and relaxed fractional positions of one strain."""
        cell = self._reference_cell @ (np.eye(3) + strain_tensor)
        lower, rotation = self._write_configuration(cell, fractional)
        if self.relax:
            self._minimize()
        else:
            self._command("run 0")
        pressure = np.asarray(self._lmp.numpy.extract_compute(_STRESS_COMPUTE, 0, 1), dtype=float)
        xx, yy, zz, xy, xz, yz = pressure[:6]
        stress_lammps = -PRESSURE_IN_GPA[self.units] * np.array(
            [[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]]
        )
        stress = rotation.T @ stress_lammps @ rotation
        if not self.relax:
            return stress, fractional
        _, positions = self._read_lammps_frame()
        return stress, positions @ np.linalg.inv(lower)

    def _diagnostics(self) -> tuple[float, float]:
        energy = float(self._lmp.get_thermo("pe")) * self._style.energy
        n = self._lmp.get_natoms()
        forces = np.ctypeslib.as_array(self._lmp.gather_atoms("f", 1, 3), shape=(3 * n,))
        return energy, float(np.abs(forces).max()) * self._style.force

    def _full_strain(self, strain: np.ndarray) -> np.ndarray:
        if self.strain_size == 6:
            return strain
        full = np.zeros((strain.shape[0], 6))
        full[:, list(PLANE_STRAIN_INDICES)] = strain
        return full

    def evaluate(
        self, strain: np.ndarray, *, time_step: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Stress (GPa) and central finite-difference tangent (GPa) of every point.

        Each point costs ``2m + 1`` solves (relaxations when ``relax``).

        Args:
            strain: small strains, Mandel, ``(n, strain_size)``.
            time_step: unused (elastic model).

        Returns:
            ``(stress, tangent)``, shapes ``(n, m)`` and ``(n, m, m)``; ``tangent[i, :, k]`` is
            ``(σ(ε + h e_k) − σ(ε − h e_k)) / 2h`` with ``h = fd_step``.
        """
        return self._evaluate(strain, with_tangent=True)

    def stress(self, strain: npt.ArrayLike) -> np.ndarray:
        """Stress only (GPa), ``(n, strain_size)``: one solve per point instead of ``2m + 1``."""
        return self._evaluate(strain, with_tangent=False)[0]

    def _evaluate(self, strain: npt.ArrayLike, *, with_tangent: bool) -> tuple[np.ndarray, np.ndarray]:
        eps = self._full_strain(check_strain_batch(strain, self.strain_size))
        tensors = tensor_from_mandel(eps)
        reach = np.abs(tensors).max(axis=(1, 2)) + (self.fd_step if with_tangent else 0.0)
        if np.any(reach > self.max_strain):
            worst = int(np.argmax(reach))
            raise ConfigError(
                f"strain of point {worst} reaches a component of {reach[worst]:.4g} (finite-"
                f"difference step included), beyond the atomistic RVE's limit max_strain="
                f"{self.max_strain:g}; the Cauchy–Born cell is not meaningful there: reduce the "
                "load step or raise max_strain"
            )
        directions = [k for k in range(6) if self.strain_size == 6 or k in PLANE_STRAIN_INDICES]
        n = eps.shape[0]
        stress = np.empty((n, 6))
        tangent = np.zeros((n, 6, 6))
        energy = np.empty(n)
        max_force = np.empty(n)
        for i in range(n):  # one relaxation per point: the loop is the work itself
            sigma, relaxed = self._solve(tensors[i], self._reference_fractional)
            energy[i], max_force[i] = self._diagnostics()
            if self.relax and max_force[i] > self.max_residual_force:
                raise ScaleLinkError(
                    f"the relaxation of point {i} (strain {eps[i].tolist()}) ended with a force "
                    f"component of {max_force[i]:.3g} eV/Å, above max_residual_force="
                    f"{self.max_residual_force:g}; raise max_iterations, loosen max_residual_force "
                    "or check that the strained crystal is mechanically stable"
                )
            stress[i] = mandel_from_tensor(sigma)
            for k in directions if with_tangent else ():
                step = np.zeros(6)
                step[k] = self.fd_step
                plus, _ = self._solve(tensor_from_mandel(eps[i] + step), relaxed)
                minus, _ = self._solve(tensor_from_mandel(eps[i] - step), relaxed)
                tangent[i, :, k] = mandel_from_tensor(plus - minus) / (2.0 * self.fd_step)
        self.last_energy = energy
        self.last_max_force = max_force
        idx = np.asarray(PLANE_STRAIN_INDICES if self.strain_size == 3 else range(6))
        return stress[:, idx], tangent[:, idx[:, None], idx[None, :]]

    # --------------------------------------------------------------------------- lifetime

    def close(self) -> None:
        """Free the LAMMPS instance (idempotent)."""
        lmp = getattr(self, "_lmp", None)
        if lmp is not None:
            lmp.close()
            self._lmp = None

    def __enter__(self) -> AtomisticRVE:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _lammps_box(cell: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``cell = L Q``: LAMMPS' lower-triangular cell ``L`` (rows a, b, c) and rotation ``Q``.

    Also returns the tilt-reduced cell of the same lattice, the box LAMMPS is given.
    """
    q, r = np.linalg.qr(cell.T)
    sign = np.where(np.diag(r) < 0.0, -1.0, 1.0)
    lower = r.T * sign[None, :]
    lower[np.triu_indices(3, 1)] = 0.0
    return lower, sign[:, None] * q.T, _reduced(lower)


def _box(lower: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """``(lx, ly, lz, xy, xz, yz)`` of a lower-triangular cell."""
    return (float(lower[0, 0]), float(lower[1, 1]), float(lower[2, 2]), float(lower[1, 0]),
            float(lower[2, 0]), float(lower[2, 1]))


def _reduced(lower: np.ndarray) -> np.ndarray:
    """The same lattice with tilts ``|xy| ≤ lx/2``, ``|xz| ≤ lx/2``, ``|yz| ≤ ly/2``."""
    a, b, c = (row.copy() for row in lower)
    c -= np.round(c[1] / b[1]) * b
    c -= np.round(c[0] / a[0]) * a
    b -= np.round(b[0] / a[0]) * a
    return np.array([a, b, c])


def _wrap(positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """``positions`` moved by lattice vectors of ``cell`` into the cell ``[0, 1)³``."""
    fractional = positions @ np.linalg.inv(cell)
    fractional -= np.floor(fractional)
    fractional[fractional >= 1.0] = 0.0
    return fractional @ cell
