"""The atomistic side of 2D atomistic–continuum coupling in LAMMPS: the relaxed spacing and
Cauchy–Born stiffness of the lattice of :mod:`.lattice`, and a relaxable atomistic region.

Units are LAMMPS ``metal`` (eV, Å). The lattice is two-dimensional, so stresses and
stiffnesses are per unit *area* (eV/Å², i.e. a unit thickness of 1 Å): LAMMPS computes the 2D
pressure with the cell area as "volume", and its ``nktv2p`` factor turns eV/Å² into bar·Å⁻¹·Å.

Atom IDs are a function of the lattice indices (:class:`HexLattice`), so every rank of either
group can name a site and recover its reference position without any stored table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mpi4py import MPI

from scalelink.bridge.errors import ConfigError, DataError, ScaleLinkError

from .lattice import HexLattice, LennardJones2D

__all__ = [
    "AtomisticRegion",
    "RelaxationError",
    "cauchy_born_stiffness",
    "relaxed_spacing",
    "set_coarse_rows",
    "set_field_rows",
]

_SQRT3 = float(np.sqrt(3.0))


class RelaxationError(ScaleLinkError):
    """A relaxation did not reach its force tolerance (raised on every rank of the region)."""


_SQRT2 = float(np.sqrt(2.0))


def _plugin() -> Any:
    """The loaded ScaleLink LAMMPS plugin library (ctypes), or the reason it is not there (a string)."""
    import ctypes
    import os

    from scalelink.bridge.lammps_env import plugin_library

    try:
        return ctypes.CDLL(plugin_library(), mode=os.RTLD_NOLOAD | os.RTLD_NOW)
    except OSError as err:
        return f"the ScaleLink LAMMPS plugin library is not loaded ({err})"


def _hand_rows(call: Any, lmp: Any, fix_id: str, first: int, columns: int, rows: np.ndarray) -> str:
    """Call a plugin entry point of the form ``(handle, fix_id, first, count, columns, values,
    message, length)``; returns ``""`` or why the rows were refused."""
    import ctypes

    matrix = np.ascontiguousarray(rows, dtype=np.float64)
    message = ctypes.create_string_buffer(512)
    status = call(lmp.lmp, fix_id.encode(), first, matrix.shape[0], columns,
                  matrix.ctypes.data if matrix.size else None, message, len(message))
    return message.value.decode() if status else ""


def set_coarse_rows(lmp: Any, fix_id: str, first: int, columns: int, rows: np.ndarray) -> str:
    """Hand rows ``first .. first + len(rows) - 1`` ``(m, columns)`` of the coarse matrix to
    ``fix fix_id scalelink/relax`` of LAMMPS instance ``lmp`` on this rank, through the plugin's
    C entry point ``scalelink_relax_set_coarse``. Returns ``""``, or why they were refused."""
    import ctypes

    library = _plugin()
    if isinstance(library, str):
        return library
    try:
        call = library.scalelink_relax_set_coarse
    except AttributeError as err:
        return f"the ScaleLink LAMMPS plugin library is too old ({err})"
    call.restype = ctypes.c_int
    call.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_long, ctypes.c_long, ctypes.c_long, ctypes.c_void_p,
                     ctypes.c_char_p, ctypes.c_int]
    return _hand_rows(call, lmp, fix_id, first, columns, rows)


def set_field_rows(lmp: Any, fix_id: str, first: int, columns: int, rows: np.ndarray) -> str:
    """Hand rows ``first .. first + len(rows) - 1`` ``(m, columns)`` of the field matrix to
    ``fix fix_id scalelink/padmap ... field`` of LAMMPS instance ``lmp`` on this rank, through the
    plugin's C entry point ``scalelink_padmap_set_field``. Returns ``""``, or why they were refused."""
    import ctypes

    library = _plugin()
    if isinstance(library, str):
        return library
    try:
        call = library.scalelink_padmap_set_field
    except AttributeError as err:
        return f"the ScaleLink LAMMPS plugin library is too old ({err})"
    call.restype = ctypes.c_int
    call.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_long, ctypes.c_long, ctypes.c_long, ctypes.c_void_p,
                     ctypes.c_char_p, ctypes.c_int]
    return _hand_rows(call, lmp, fix_id, first, columns, rows)


def _new_lammps(comm: MPI.Comm) -> Any:
    from lammps import lammps

    return lammps(comm=comm, cmdargs=["-screen", "none", "-log", "none", "-nocite"])


def _periodic_cell(potential: LennardJones2D, spacing: float, comm: MPI.Comm) -> tuple[Any, float, float]:
    """A periodic, triclinic-capable LAMMPS cell of the perfect lattice (at least 2 cutoffs wide)."""
    nx = int(np.ceil(2.0 * potential.cutoff / spacing)) + 1
    ny = int(np.ceil(2.0 * potential.cutoff / (_SQRT3 * spacing))) + 1
    lx, ly = nx * spacing, ny * _SQRT3 * spacing
    lmp = _new_lammps(comm)
    lmp.commands_string(
        "units metal\ndimension 2\nboundary p p p\natom_style atomic\n"
        f"region cell prism 0 {lx} 0 {ly} -0.5 0.5 0 0 0\ncreate_box 1 cell\n" + potential.commands()
    )
    # every rank offers the whole (tiny) cell; LAMMPS keeps the atoms of each rank's subdomain
    i, j, b = np.meshgrid(np.arange(nx), np.arange(ny), [0, 1], indexing="ij")
    x = np.column_stack([((i + 0.5 * b) * spacing).ravel(), ((j + 0.5 * b) * _SQRT3 * spacing).ravel(),
                         np.zeros(i.size)])
    lmp.create_atoms(len(x), np.arange(1, len(x) + 1), np.ones(len(x), dtype=int), x.ravel())
    lmp.command("thermo_style custom step pe pxx pyy pxy")
    return lmp, lx, ly


def _stress(lmp: Any, nktv2p: float) -> np.ndarray:
    """Mandel 2D stress [σxx, σyy, √2 σxy] in eV/Å² from the LAMMPS pressure tensor."""
    lmp.command("run 0")
    p = np.array([lmp.get_thermo("pxx"), lmp.get_thermo("pyy"), _SQRT2 * lmp.get_thermo("pxy")])
    return -p / nktv2p


def _deform(lmp: Any, lx: float, ly: float, strain: np.ndarray) -> None:
    """Map the cell by F = [[1+e1, √2 e3], [0, 1+e2]] (symmetric part: the Mandel strain ``strain``)."""
    e1, e2, e3 = strain
    lmp.command(
        f"change_box all x final 0 {lx * (1 + e1):.17g} y final 0 {ly * (1 + e2):.17g} "
        f"xy final {_SQRT2 * e3 * ly * (1 + e2):.17g} remap units box"
    )


def relaxed_spacing(potential: LennardJones2D, comm: MPI.Comm, *, tol: float = 1e-12) -> float:
    """Nearest-neighbour distance (Å) at which the hexagonal lattice carries zero stress.

    Collective on ``comm``. A root of the mean in-plane pressure of the periodic cell, found with
    Brent's method in ``[0.9, 1.3] σ``.
    """
    from scipy.optimize import brentq

    guess = potential.sigma * 2.0 ** (1.0 / 6.0)
    lmp, lx, ly = _periodic_cell(potential, guess, comm)
    nktv2p = lmp.extract_global("nktv2p")

    def pressure(a: float) -> float:
        s = a / guess
        lmp.command(f"change_box all x final 0 {lx * s:.17g} y final 0 {ly * s:.17g} remap units box")
        return float(-_stress(lmp, nktv2p)[:2].mean())

    a0 = float(brentq(pressure, 0.9 * potential.sigma, 1.3 * potential.sigma, xtol=tol))
    lmp.close()
    return a0


def cauchy_born_stiffness(
    potential: LennardJones2D, spacing: float, comm: MPI.Comm, *, step: float = 1e-5
) -> np.ndarray:
    """Cauchy–Born tangent of the lattice: the 2D Mandel stiffness ``(3, 3)`` in eV/Å².

    Collective on ``comm``. Central finite differences of the LAMMPS stress of the periodic
    perfect cell (a Bravais lattice: no internal relaxation) under homogeneous strains ``±step``.
    """
    lmp, lx, ly = _periodic_cell(potential, spacing, comm)
    nktv2p = lmp.extract_global("nktv2p")
    stiffness = np.empty((3, 3))
    for col in range(3):
        e = np.zeros(3)
        e[col] = step
        _deform(lmp, lx, ly, e)
        plus = _stress(lmp, nktv2p)
        _deform(lmp, lx, ly, -e)
        minus = _stress(lmp, nktv2p)
        stiffness[:, col] = (plus - minus) / (2.0 * step)
    lmp.close()
    return 0.5 * (stiffness + stiffness.T)


class AtomisticRegion:
    """A LAMMPS region of the lattice: free atoms plus a layer of prescribed (pad) atoms.

    Atoms of type 1 relax; atoms of type 2 are held (``fix setforce 0 0 0``) at positions set
    through :meth:`set_displacements`. Each MD rank creates only the sites of its own subdomain.

    Args:
        comm: the MD group's communicator.
        potential: the pair potential.
        lattice: the lattice naming the sites.
        free_half_width: sites with ``|x|∞ < free_half_width`` (Å) are free.
        pad_width: sites with ``free_half_width <= |x|∞ < free_half_width + pad_width`` are held;
            at least the cutoff, so free atoms see a full neighbour shell.
        removed: IDs of sites left empty (vacancies), ``(k,)``.
        force_tol: minimiser stopping tolerance on the global force norm, eV/Å.
    """

    def __init__(self, comm: MPI.Comm, potential: LennardJones2D, lattice: HexLattice, *,
                 free_half_width: float, pad_width: float, removed: np.ndarray | None = None,
                 force_tol: float = 1e-10) -> None:
        if pad_width < potential.cutoff:
            raise ConfigError(
                f"pad_width={pad_width} Å is thinner than the cutoff {potential.cutoff} Å; free atoms "
                "near the pad would miss neighbours. Use pad_width >= cutoff."
            )
        self.comm, self.lattice, self.force_tol = comm, lattice, force_tol
        self._map_shape: tuple[int, int] | None = None
        self._coarse: Any = None  # CoarseRows of precondition()
        self._coarse_defined = False
        self.restarts = 0  # Anderson history restarts in the last relax(method="anderson")
        half = free_half_width + pad_width
        box = half + 2.0 * lattice.spacing
        self.lmp = _new_lammps(comm)
        self.lmp.commands_string(
            "units metal\ndimension 2\nboundary s s p\natom_style atomic\natom_modify map array\n"
            f"region box block {-box} {box} {-box} {box} -0.5 0.5\ncreate_box 2 box\n"
            + potential.commands()
            + "neighbor 1.0 bin\nneigh_modify delay 0 every 1 check yes\n"
            "min_style cg\nmin_modify line quadratic\nthermo_style custom step pe fnorm\n"
        )
        lo = np.asarray(self.lmp.extract_global("sublo"))[:2]
        hi = np.asarray(self.lmp.extract_global("subhi"))[:2]
        lo = np.where(lo <= -box + 1e-3, -half, lo)
        hi = np.where(hi >= box - 1e-3, half, hi)
        ids, x = lattice.sites(lo, hi)
        keep = np.all(np.abs(x) < half, axis=1)
        if removed is not None:
            keep &= ~np.isin(ids, removed)
        ids, x = ids[keep], x[keep]
        types = np.where(np.max(np.abs(x), axis=1) < free_half_width, 1, 2)
        self.lmp.create_atoms(len(ids), ids, types, np.column_stack([x, np.zeros(len(ids))]).ravel())
        total = comm.allreduce(len(ids))
        if self.lmp.get_natoms() != total:
            raise DataError(
                f"LAMMPS kept {self.lmp.get_natoms()} of {total} lattice sites; expected all inside "
                "the box (the subdomain split does not match the site generator)"
            )
        # a static group: it must be defined once the atoms exist
        self.lmp.commands_string("group pad type 2\nfix hold pad setforce 0.0 0.0 0.0\nfix plane all enforce2d")

    def _local(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n = self.lmp.extract_global("nlocal")
        ids = np.array(self.lmp.numpy.extract_atom("id")[:n], dtype=np.int64)
        types = np.array(self.lmp.numpy.extract_atom("type")[:n])
        return ids, types, self.lmp.numpy.extract_atom("x")[:n], self.lmp.numpy.extract_atom("f")[:n]

    def local_ids(self, *, prescribed: bool) -> np.ndarray:
        """IDs ``(n,)`` of this rank's held (``prescribed=True``) or free atoms, as owned now."""
        ids, types, _, _ = self._local()
        return ids[types == (2 if prescribed else 1)]

    def set_displacements(self, ids: np.ndarray, displacement: np.ndarray) -> None:
        """Place atoms ``ids`` ``(n,)`` owned by this rank at reference + ``displacement`` ``(n, 2)`` Å.

        For held atoms this is the prescribed boundary data; for free atoms, a starting guess.
        """
        all_ids, _, x, _ = self._local()
        order = np.argsort(all_ids)
        rows = order[np.searchsorted(all_ids, ids, sorter=order)]
        x[rows, :2] = self.lattice.positions(ids) + displacement

    def displacements(self, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """IDs ``(n,)`` and displacements ``(n, 2)`` (Å) of this rank's atoms (all, or ``ids``)."""
        all_ids, _, x, _ = self._local()
        u = x[:, :2] - self.lattice.positions(all_ids)
        if ids is None:
            return all_ids, u
        keep = np.isin(all_ids, ids)
        return all_ids[keep], u[keep]

    def relax(self, max_iterations: int = 20000, *, method: str = "cg", step: float = 0.2, memory: int = 40) -> int:
        """Relax the free atoms until the force norm is at most :attr:`force_tol`; returns the
        number of iterations (LAMMPS steps). Collective on ``comm``.

        Args:
            max_iterations: iterations (steps) at most.
            method: ``"cg"`` (LAMMPS conjugate gradients, quadratic line search; needs forces that
                are the gradient of the energy), ``"anderson"`` (``fix scalelink/relax`` during a
                run: Anderson-accelerated steps, forces only; preconditioned by the coarse grid of
                :meth:`precondition` if one was given) or ``"fire"`` (LAMMPS FIRE, forces only).
            step: Anderson's plain step, Å²/eV (stable below 2 over the largest force constant).
            memory: Anderson's number of past steps.
        """
        start = int(self.lmp.extract_global("ntimestep"))
        if method == "cg":
            self.lmp.command(f"minimize 0.0 {self.force_tol:.17g} {max_iterations} {10 * max_iterations}")
        elif method == "anderson":
            coarse = "" if self._coarse is None else f" coarse {self._coarse.dofs} i2_slcnode d2_slcweight"
            self.lmp.commands_string(
                "group free type 1\n"
                f"fix relax free scalelink/relax ftol {self.force_tol:.17g} step {step:.17g} memory {memory}"
                f"{coarse}\n"
            )
            if self._coarse is not None:
                self._hand_coarse_rows()
            self.lmp.command(f"run {max_iterations} pre yes post no")
            converged = self.lmp.extract_fix("relax", 0, 1, 3) == 1.0
            self.restarts = int(self.lmp.extract_fix("relax", 0, 1, 2))
            self.lmp.command("unfix relax")
            if not converged:
                raise RelaxationError(
                    f"relax: fix scalelink/relax did not reach the force tolerance {self.force_tol} eV/Å in "
                    f"{max_iterations} steps; allow more steps or lower the step ({step} Å²/eV)")
        elif method == "fire":
            self.lmp.commands_string("min_style fire\ntimestep 0.002\nmin_modify tmax 10 delaystep 5 integrator verlet")
            try:
                self.lmp.command(f"minimize 0.0 {self.force_tol:.17g} {max_iterations} {10 * max_iterations}")
            finally:
                self.lmp.commands_string("min_style cg\nmin_modify line quadratic")
        else:
            raise ConfigError(f"relax: method={method!r}; expected 'cg', 'anderson' or 'fire'")
        return int(self.lmp.extract_global("ntimestep")) - start

    def precondition(self, grid: Any | None) -> None:
        """Precondition ``relax(method="anderson")`` by a coarse grid (a
        :class:`~scalelink.coupling.coarse.CoarseGrid` covering the free atoms), or stop doing so
        (``None``). Collective on ``comm``: each rank computes its block of rows of the coarse
        matrix and gives its free atoms their coarse nodes and weights (custom per-atom
        properties, carried along when atoms change rank)."""
        from .coarse import coarse_rows

        if grid is None:
            self._coarse = None
            return
        ids, types, _, _ = self._local()
        free = ids[types == 1]
        rows = coarse_rows(self.comm, grid, self.lattice.positions(free))
        if not self._coarse_defined:
            self.lmp.command("fix coarsedata all property/atom i2_slcnode 4 d2_slcweight 4 ghost no")
            self._coarse_defined = True
        n = len(ids)
        node = self.lmp.numpy.extract_atom("i2_slcnode")[:n]
        weight = self.lmp.numpy.extract_atom("d2_slcweight")[:n]
        node[:] = -1
        weight[:] = 0.0
        node[types == 1] = rows.node
        weight[types == 1] = rows.weight
        self._coarse = rows

    def _hand_coarse_rows(self) -> None:
        """Give fix ``relax`` this rank's rows of the coarse matrix (collective on ``comm``)."""
        rows = self._coarse
        problem = set_coarse_rows(self.lmp, "relax", rows.first, rows.dofs, rows.rows)
        problems = [p for p in self.comm.allgather(problem) if p]
        if problems:
            self.lmp.command("unfix relax")
            raise ConfigError(f"relax: the coarse preconditioner could not be set: {problems[0]}")

    def follow_map(self, nodes: int, fit: tuple[np.ndarray, np.ndarray], pad: tuple[np.ndarray, np.ndarray]) -> None:
        """Make the held atoms follow an affine map of the free atoms in :meth:`relax_with_map`.

        Defines (or refills) the per-atom data of ``fix scalelink/padmap`` (ScaleLink LAMMPS
        plugin) for the atoms this rank owns now; LAMMPS carries them along if atoms change rank.

        Args:
            nodes: number E of nodes of the map.
            fit: IDs ``(m,)`` of this rank's atoms feeding the nodes and their rows ``(m, 2K)``:
                K node indices (as floats, -1 for none), then K weights.
            pad: IDs ``(p,)`` of this rank's held atoms and their rows ``(p, 2 + 4E)``: the
                offset, then the x and y rows of the linear part.
        """
        (fit_ids, fit_rows), (pad_ids, pad_rows) = fit, pad
        slots, width = fit_rows.shape[1] // 2, 2 + 4 * nodes
        if pad_rows.shape[1] != width:
            raise DataError(f"follow_map: pad rows have {pad_rows.shape[1]} columns; expected 2 + 4 × {nodes} nodes")
        if not self.lmp.has_style("fix", "scalelink/padmap"):
            raise ConfigError("LAMMPS has no fix scalelink/padmap: the ScaleLink LAMMPS plugin is not loaded. "
                              "Install ScaleLink with its plugin (`pip install .` builds it) or put the folder "
                              "of scalelinkplugin.so on LAMMPS_PLUGIN_PATH")
        if self._map_shape != (nodes, slots):
            if self._map_shape is not None:
                self.lmp.commands_string("unfix padmap\nunfix padmapdata")
            self.lmp.commands_string(
                f"fix padmapdata all property/atom d2_slref 3 i2_slnode {max(slots, 1)} d2_slweight {max(slots, 1)} "
                f"d2_slmap {width} ghost no\n"
                f"fix padmap pad scalelink/padmap nodes {nodes} reference d2_slref fit i2_slnode d2_slweight "
                "map d2_slmap"
            )
            self._map_shape = (nodes, slots)
        ids, _, x, _ = self._local()
        n = len(ids)
        reference = self.lmp.numpy.extract_atom("d2_slref")[:n]
        node = self.lmp.numpy.extract_atom("i2_slnode")[:n]
        weight = self.lmp.numpy.extract_atom("d2_slweight")[:n]
        rows = self.lmp.numpy.extract_atom("d2_slmap")[:n]
        reference[:, :2] = self.lattice.positions(ids)
        reference[:, 2] = x[:, 2]
        node[:] = -1
        weight[:] = 0.0
        rows[:] = 0.0
        order = np.argsort(ids)

        def where(wanted: np.ndarray) -> np.ndarray:
            return order[np.searchsorted(ids, wanted, sorter=order)]

        at = where(fit_ids)
        node[at, :slots] = np.rint(fit_rows[:, :slots]).astype(node.dtype)
        weight[at, :slots] = fit_rows[:, slots:]
        rows[where(pad_ids)] = pad_rows

    def map_nodes(self) -> np.ndarray:
        """The node values ``g`` ``(2E,)`` of the map of :meth:`follow_map` (node-major), from the
        atoms' displacements now, summed over all MD ranks: what ``fix scalelink/padmap``
        computes before each force evaluation. Collective on ``comm``."""
        if self._map_shape is None:
            raise ConfigError("map_nodes before follow_map: give the map first")
        nodes, slots = self._map_shape
        ids, _, x, _ = self._local()
        n = len(ids)
        node = self.lmp.numpy.extract_atom("i2_slnode")[:n, :slots]
        weight = self.lmp.numpy.extract_atom("d2_slweight")[:n, :slots]
        u = x[:, :2] - self.lmp.numpy.extract_atom("d2_slref")[:n, :2]
        used = node >= 0
        rows = np.nonzero(used)[0]
        g = np.zeros((nodes, 2))
        np.add.at(g, node[used], weight[used][:, None] * u[rows])
        return self.comm.allreduce(g.ravel())

    def relax_with_map(self, method: str = "anderson", max_iterations: int = 100000, *,
                       step: float = 0.2, memory: int = 40) -> int:
        """:meth:`relax` with the held atoms following the map of :meth:`follow_map`; returns the
        number of force evaluations. The forces are then not the gradient of an energy, so
        ``method`` is ``"anderson"`` or ``"fire"`` (forces only). Collective on ``comm``."""
        if self._map_shape is None:
            raise ConfigError("relax_with_map before follow_map: give the map first")
        if method not in ("anderson", "fire"):
            raise ConfigError(f"relax_with_map: method={method!r}; expected 'anderson' or 'fire' (forces only: "
                              "line-search minimisers stop early on forces that are not an energy's gradient)")
        before = self.lmp.extract_fix("padmap", 0, 1, 0)
        self.relax(max_iterations, method=method, step=step, memory=memory)
        return int(self.lmp.extract_fix("padmap", 0, 1, 0) - before)

    def max_free_force(self) -> float:
        """Largest force norm (eV/Å) on any free atom, over all MD ranks."""
        self.lmp.command("run 0")
        _, types, _, f = self._local()
        local = float(np.max(np.linalg.norm(f[types == 1, :2], axis=1), initial=0.0))
        return self.comm.allreduce(local, op=MPI.MAX)

    def close(self) -> None:
        """Free the LAMMPS instance."""
        self.lmp.close()
