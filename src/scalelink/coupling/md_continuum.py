"""The continuum side of dynamic LAMMPS–dolfinx coupling: explicit FE time stepping and the FE half of
the handshake (constraint multipliers, fine-scale damping, slave and pad kinematics). FE ranks only.

One time step is split so that little waits on the atoms (see :mod:`~scalelink.coupling.md`):

* :meth:`ContinuumStrip.predict` (while LAMMPS computes forces): FE accelerations with the slave
  nodes at zero, their share of the constraint residual, the FE velocity under each handshake atom
  and the pad atoms' next displacement before corrections;
* :meth:`ContinuumStrip.prepare` (once the positions and velocities of step n are in, still while
  LAMMPS computes forces): slave displacements (hat-weighted averages of the atoms), fine-scale
  damping, and the parts of the constraint residual and of the pad displacements that do not
  depend on the atoms' forces;
* :meth:`ContinuumStrip.complete` (once the forces are in; the MD ranks wait for this): the
  constraint residual ``G v* = Bᵀ v*_atoms − (BᵀB) v*_FE`` completed by ``Bᵀ f``, the multipliers
  ``S λ = G v*`` on the constrained DOFs only, the force on each handshake atom and the corrected pad
  displacement — small sparse products, precomputed where they involve the slave response
  ``Z = M⁻¹ K E_s``;
* :meth:`ContinuumStrip.advance` (after the reply has gone): the FE state at n + 1.

Factorisations (mass, constraint operator ``S = Bᵀ D⁻¹ B + (BᵀB) W⁻¹ (BᵀB)``) are done once.
Units: Å, ps, eV; masses eV ps²/Å².
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from mpi4py import MPI

from scalelink.bridge.errors import ConfigError, DataError

from .dispersion import MVV2E
from .md_kernel import EnvelopeSolver
from .md_mesh import BandAtoms, StripMesh, aij, lu_solver
from .wave_bar import WaveBar
from .wave_strip import WaveStrip

if TYPE_CHECKING:
    from .md_kernel import CriticalPath

__all__ = ["ContinuumStrip", "band_filter_matrix", "band_gain_polynomial"]

Field = Callable[[np.ndarray], np.ndarray]


def band_gain_polynomial(a: int, b: int) -> np.ndarray:
    """Coefficients (in increasing powers of s) of ``1 − I_s(a, b)``, the regularised incomplete beta
    function: ``1 − Σ_{k=a}^{n} C(n, k) s^k (1 − s)^(n − k)``, n = a + b − 1. It falls monotonically
    from 1 at s = 0 to 0 at s = 1, flat to order a at s = 0 and to order b at s = 1."""
    from math import comb

    if not (a >= 1 and b >= 1):
        raise ConfigError(f"band filter (a, b) = ({a}, {b}); expected integers a, b >= 1")
    n = a + b - 1
    s, one_minus = np.polynomial.Polynomial([0.0, 1.0]), np.polynomial.Polynomial([1.0, -1.0])
    poly = np.polynomial.Polynomial([1.0])
    for k in range(a, n + 1):
        poly = poly - comb(n, k) * s**k * one_minus ** (n - k)
    return np.pad(poly.coef, (0, n + 1 - len(poly.coef)))


def band_filter_matrix(keys: np.ndarray, a: int, b: int) -> Any:
    """The low-pass ``F = P(S)`` along x (scipy CSR), P of :func:`band_gain_polynomial`.

    Args:
        keys: ``(n, m)`` integers per node value: the x index first (nodes one element apart
            differ by 1), then anything that must match between neighbours (the other
            coordinates, the component).

    ``S = −D/4`` with D the second difference between a value and its x neighbours; a value
    missing a neighbour has a zero row, so F keeps constant and linear fields exactly. On a
    cosine of ``k x`` away from the ends, F multiplies by ``P(sin²(k h / 2))``.
    """
    import scipy.sparse as sp

    index = {tuple(k): i for i, k in enumerate(np.asarray(keys).tolist())}
    rows, cols, vals = [], [], []
    for i, k in enumerate(np.asarray(keys).tolist()):
        left, right = index.get((k[0] - 1, *k[1:])), index.get((k[0] + 1, *k[1:]))
        if left is not None and right is not None:
            rows += [i, i, i]
            cols += [i, left, right]
            vals += [0.5, -0.25, -0.25]
    n = len(index)
    s_op = sp.csr_matrix((vals, (rows, cols)), shape=(n, n))
    filt = sp.csr_matrix((n, n))
    for c in band_gain_polynomial(a, b)[::-1]:  # Horner
        filt = (filt @ s_op + c * sp.identity(n, format="csr")).tocsr()
    return filt


class ContinuumStrip:
    """The FE model of the strip and its half of the handshake. Collective on ``comm`` (the FE group).

    Args:
        comm: the FE group's communicator.
        strip: the geometry (the same on every rank of both groups): a 2D strip or a 3D bar.
        stiffness: Cauchy–Born Mandel stiffness, ``(3, 3)`` eV/Å² in 2D, ``(6, 6)`` eV/Å³ in 3D.
        mass_blend: β in ``(1 − β) M_lumped + β M_consistent`` (0: lumped, no solve).

    Attributes:
        handled_ids: ``(n,)`` sorted IDs of the coupling-band atoms this rank handles.
        is_pad: ``(n,)`` mask of the pad atoms among them.
    """

    def __init__(self, comm: MPI.Comm, strip: WaveStrip | WaveBar, stiffness: np.ndarray, *, mass_blend: float,
                 gram_blend: float = 0.0) -> None:
        from petsc4py import PETSc

        if not 0.0 <= mass_blend <= 1.0:
            raise ConfigError(f"mass_blend={mass_blend}; expected 0 <= β <= 1 (0 lumped, 1 consistent)")
        self.comm, self.strip, self.beta = comm, strip, float(mass_blend)
        self.dim = strip.dim
        self.theta = float(gram_blend)
        if not 0.0 <= self.theta <= 1.0:
            raise ConfigError(f"gram_blend={gram_blend}; expected 0 <= θ <= 1 (0: the L2 projection)")
        self.atom_mass = strip.potential.mass * MVV2E
        self.grid = StripMesh(comm, strip, stiffness)
        self.band = BandAtoms(self.grid)
        self.handled_ids, self.is_pad = self.band.ids, self.band.is_pad
        g = self.grid
        self.K, self.free, self.slave = g.K, g.free, g.slave_dofs
        lumped = g.lumped.getArray()
        fixed = (g.start + np.flatnonzero(~self.free)).astype(PETSc.IntType)
        if self.beta > 0.0:
            self.M = g.mass.copy()
            self.M.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, False)  # renamed rows lack a diagonal
            self.M.scale(self.beta)
            diag = self.M.getDiagonal()
            diag.array[:] += (1.0 - self.beta) * lumped
            self.M.setDiagonal(diag)
            self.M.zeroRowsColumns(fixed, diag=1.0)
            self._mass_ksp = lu_solver(self.M)
            self._mass_envelope = EnvelopeSolver.for_matrix(self.M, self.dim)  # the same solve, compiled (one FE rank)
        else:
            self._mass_ksp = self._mass_envelope = None
        self._inv_lumped = np.where(self.free, 1.0 / np.where(lumped > 0.0, lumped, 1.0), 0.0)
        self.u, self.v = self.K.createVecs()
        self.u.set(0.0)
        self.v.set(0.0)
        self._f, self._a, self._tmp, self._us, self._vs, self._u0 = (self.u.duplicate() for _ in range(6))
        self._us.set(0.0)
        self._u_previous, self._v_previous = self.u.copy(), self.v.copy()
        self._kick = 0.0
        self._force = np.zeros(0)
        self._reply_map: Any = None
        self._reply_dt = 0.0
        self._build_handshake(lumped)
        self._build_slave_response()

    def _build_handshake(self, lumped: np.ndarray) -> None:
        """Hat matrices, the constraint operator on the constrained DOFs and its factorisation."""
        from petsc4py import PETSc

        s, band, g = self.strip, self.band, self.grid
        self.B = band.hat_matrix(band.is_handshake)
        self.B_pad = band.hat_matrix(band.is_pad)
        self.F = band.hat_matrix(band.is_fit, g.slave_node)
        ones, den = self.F.createVecs()[::-1]
        ones.set(1.0)
        self.F.multTranspose(ones, den)
        if self.comm.allreduce(bool(np.any(den.array[self.slave] <= 0.0)), op=MPI.LOR):
            raise DataError("a slave node has no atoms around it; the coupling band does not reach X_a − h")
        den.array[:] = np.where(den.array > 0.0, 1.0 / np.where(den.array > 0.0, den.array, 1.0), 0.0)
        self.F.diagonalScale(R=den)  # hat-weighted averages: exact for affine fields

        alpha = s.alpha(band.x[:, 0])
        hs = band.is_handshake
        # fine-scale damping, 1/ps: rising with α from zero slope at X_a, a gradual (PML-like) ramp that
        # reflects little, and reaching η at X_b, where what was not absorbed on the way in would bounce
        ramp = np.minimum(1.0, alpha / s.config.damping_ramp)
        self.rate = np.where(hs, s.config.fine_damping * ramp, 0.0)[:, None]
        self.inv_weight = np.where(hs, 1.0 / np.where(hs, 1.0 - alpha, 1.0), 0.0)[:, None]  # 1/(1 − α)
        d_inv = self.B.createVecs()[1]
        d_inv.array[:] = np.repeat(self.inv_weight[:, 0] / self.atom_mass, self.dim)
        scaled = self.B.copy()
        scaled.diagonalScale(L=d_inv)
        gram = self.B.transposeMatMult(self.B)
        atoms_part = self.B.transposeMatMult(scaled)
        constrained = gram.getDiagonal().array > 0.0
        # G_θ = (1 − θ) BᵀB + θ diag(row sums): the FE nodal values the constraint matches to the atoms
        self.gram = gram.copy()
        self.gram.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, False)  # unconstrained rows are empty
        self.gram.scale(1.0 - self.theta)
        lumped_gram = gram.getRowSum()
        lumped_gram.scale(self.theta)
        self.gram.setDiagonal(lumped_gram, addv=PETSc.InsertMode.ADD_VALUES)
        node_alpha = np.repeat(s.alpha(g.node_x[:, 0]), self.dim)
        if np.any(constrained & ((node_alpha <= 0.0) | ~self.free)):
            raise DataError("a constrained node is held or has α = 0; the handshake must start one element after X_a")
        weight = self.gram.createVecs()[0]  # FE half of the metric: 1/(α m_lumped) on constrained DOFs
        weight.array[:] = np.where(constrained, 1.0 / np.where(constrained, node_alpha * lumped, 1.0), 0.0)
        self._weighted_gram = self.gram.copy()
        self._weighted_gram.diagonalScale(L=weight)
        op = self.gram.matMult(self._weighted_gram)
        op.axpy(1.0, atoms_part, structure=PETSc.Mat.Structure.DIFFERENT_NONZERO_PATTERN)
        # the constrained DOFs as a space of their own: the per-step solve touches nothing else
        self._j = np.flatnonzero(constrained)
        self._j_weight = weight.array[self._j].copy()
        self._is_j = PETSc.IS().createGeneral((g.start + self._j).astype(PETSc.IntType), comm=self.comm)
        self._is_fe = PETSc.IS().createStride(self.dim * g.n_own, first=g.start, step=1, comm=self.comm)
        first, last = self.B.getOwnershipRange()
        self._is_atoms = PETSc.IS().createStride(last - first, first=first, step=1, comm=self.comm)
        self.constraint_operator = op.createSubMatrix(self._is_j, self._is_j)
        self._constraint_ksp = lu_solver(self.constraint_operator)
        self.B_j = self.B.createSubMatrix(self._is_atoms, self._is_j)
        self.gram_j = self.gram.createSubMatrix(self._is_j, self._is_j)
        l2 = gram.createSubMatrix(self._is_j, self._is_j)  # L2 projection onto the mesh
        self._l2_ksp, self._l2_envelope = lu_solver(l2), EnvelopeSolver.for_matrix(l2, self.dim)
        self._band = self._band_filter(s.config.band_filter)
        self._atom_vecs = [self.B.createVecs()[1] for _ in range(6)]
        self._reply_pre = self.B.createVecs()[1]
        self._g, self._g0, self._lam, self._j_tmp, self._j_vec, self._j_coef, self._j_band = (
            self.constraint_operator.createVecs()[0] for _ in range(7))

    def _band_filter(self, design: tuple[int, int] | None) -> Any:
        """``F − I`` on the constrained DOFs (PETSc), F the low-pass along x of
        :attr:`~scalelink.coupling.wave_bar.BarConfig.band_filter`, or ``None``.

        F is the polynomial ``P(S) = 1 − I_S(a, b)`` of ``S = −D/4``, D the second difference along
        x between constrained nodes of the same y (and z) and component (eigenvalue
        ``sin²(k h/2)`` for ``cos k x``); a node whose left or right neighbour is not constrained
        has a zero row of S, so F keeps constant and linear fields exactly. The constrained nodes'
        coordinates are gathered on every FE rank to build it (a few thousand rows, once).
        """
        import scipy.sparse as sp

        if design is None:
            return None
        g, dim = self.grid, self.dim
        node, comp = self._j // dim, self._j % dim
        h = self.strip.element_size
        # integer keys: x in elements from the first constrained node, the other coordinates rounded to
        # 1e-6 Å, the component
        x0 = self.comm.allreduce(float(np.min(g.node_x[node, 0], initial=np.inf)), op=MPI.MIN)
        local = np.column_stack([np.round((g.node_x[node, 0] - x0) / h), np.round(g.node_x[node, 1:] * 1e6), comp])
        keys = np.concatenate(self.comm.allgather(local.astype(np.int64)))
        first = int(self.comm.exscan(len(self._j)) or 0)
        filt = band_filter_matrix(keys, *design)
        n = len(keys)
        minus = (filt - sp.identity(n, format="csr")).tocsr()[first:first + len(self._j)].tocoo()
        keep = np.abs(minus.data) > 1e-14
        return aij(self.comm, len(self._j), len(self._j), minus.row[keep], minus.col[keep], minus.data[keep])

    def _build_slave_response(self) -> None:
        """``Z = M⁻¹ K E_s`` (FE accelerations from unit slave displacements; one solve per slave DOF)
        and its products with the constraint and pad maps."""
        start = self.grid.start
        slaves = np.concatenate(self.comm.allgather(start + self.slave))
        column, response = self.u.duplicate(), self.u.duplicate()
        rows, cols, vals = [], [], []
        for dof in slaves.tolist():
            column.set(0.0)
            if start <= dof < start + len(self.free):
                column.setValue(dof, 1.0)
            column.assemble()
            self.K.mult(column, self._f)
            self._f.array[~self.free] = 0.0
            self._solve_mass(self._f, response)
            keep = np.flatnonzero(np.abs(response.array) > 1e-15 * np.max(np.abs(response.array), initial=0.0))
            rows.append(keep)
            cols.append(np.full(len(keep), dof))
            vals.append(response.array[keep])
        n = self.dim * self.grid.n_own
        self.Z = aij(self.comm, n, n, np.concatenate(rows), np.concatenate(cols), np.concatenate(vals))
        self._gram_z = self.gram.matMult(self.Z).createSubMatrix(self._is_j, self._is_fe)
        self._pad_z = self.B_pad.matMult(self.Z)
        self._pad_wg = self.B_pad.matMult(self._weighted_gram).createSubMatrix(self._is_atoms, self._is_j)

    def _solve_mass(self, rhs: Any, out: Any) -> None:
        if self._mass_envelope is not None:
            self._mass_envelope.solve(rhs.array, out.array)
            out.array[~self.free] = 0.0
        elif self._mass_ksp is not None:
            self._mass_ksp.solve(rhs, out)
            out.array[~self.free] = 0.0
        else:
            out.array[:] = rhs.array * self._inv_lumped

    def predict(self, kick: float, dt: float) -> None:
        """The part of a step that does not need this step's atoms (done while LAMMPS computes forces).

        Args:
            kick: the velocity update's length, ps (``dt``, or ``dt/2`` for the first step of a run).
            dt: time step, ps.
        """
        self._kick = kick
        u0 = self._u0
        u0.array[:] = self.u.array
        u0.array[self.slave] = 0.0
        self.K.mult(u0, self._f)
        self._f.scale(-1.0)
        self._f.array[~self.free] = 0.0
        self._solve_mass(self._f, self._a)
        self._v_previous.array[:] = self.v.array
        bv, pad0 = self._atom_vecs[4:]
        # the L2 projection of the atom velocities onto the mesh: (BᵀB)⁻¹ Bᵀ v_atoms = (BᵀB)⁻¹ G_θ v_FE
        self._j_vec.array[:] = self.v.array[self._j]
        self.gram_j.mult(self._j_vec, self._j_tmp)
        if self._l2_envelope is not None:
            self._l2_envelope.solve(self._j_tmp.array, self._j_coef.array)
        else:
            self._l2_ksp.solve(self._j_tmp, self._j_coef)
        if self._band is not None:  # the damping's target F Q v: the band near the mesh cutoff removed
            self._band.multAdd(self._j_coef, self._j_coef, self._j_band)
            self.B_j.mult(self._j_band, bv)
        else:
            self.B_j.mult(self._j_coef, bv)
        np.add(self.v.array, kick * self._a.array, out=self._vs.array)
        self._j_vec.array[:] = self._vs.array[self._j]
        self.gram_j.mult(self._j_vec, self._g0)
        np.add(self.u.array, dt * self._vs.array, out=u0.array)
        self.B_pad.mult(u0, pad0)

    def prepare(self, u_atoms: np.ndarray, v_atoms: np.ndarray, dt: float) -> None:
        """The part of a step that needs this step's atom kinematics but not their forces (done while
        LAMMPS computes forces): slave displacements, fine-scale damping, the force-free part of the
        constraint residual and of the pad displacements.

        Args:
            u_atoms: displacement ``(n, dim)`` (Å) of the handled atoms at step n.
            v_atoms: velocity ``(n, dim)`` (Å/ps) at n − 1/2 (at n for the first step of a run).
            dt: time step, ps.
        """
        kick = self._kick
        ua, va, out, _, bv, pad0 = self._atom_vecs
        ua.array[:] = u_atoms.ravel()
        self.F.multTranspose(ua, self._us)
        # the handshake atoms: fine-scale damping against the FE velocity under them
        self._force = (self.atom_mass * self.rate) * (bv.array.reshape(-1, self.dim) - v_atoms)
        va.array[:] = (v_atoms + (kick / self.atom_mass) * self._force).ravel()  # v* without the LAMMPS force
        self.B_j.multTranspose(va, self._g)
        self._g.axpy(-1.0, self._g0)
        self._gram_z.mult(self._us, self._j_tmp)  # the slave share of (BᵀB) v*_FE
        self._g.axpy(kick, self._j_tmp)
        self._pad_z.mult(self._us, out)
        # the reply before the multipliers: damping on handshake rows, the free-flight pad displacement on pad rows
        np.add(self._force.ravel(), pad0.array, out=self._reply_pre.array)
        self._reply_pre.array[:] -= (dt * kick) * out.array
        if self._reply_map is None or self._reply_dt != dt:
            self._reply_map, self._reply_dt = self.reply_matrix(dt, dt), dt

    def complete(self, f_atoms: np.ndarray, dt: float) -> np.ndarray:
        """The rest of the step, once the atoms' forces are in: what the handled atoms must do.

        Args:
            f_atoms: LAMMPS force ``(n, dim)`` (eV/Å) at step n of the atoms given to :meth:`prepare`.
            dt: time step, ps.

        Returns:
            ``(n, dim)``: on handshake atoms the coupling force (eV/Å), on pad atoms the displacement at
            n + 1 (Å), zero elsewhere (the rows are disjoint). A view, valid until the next step. Call
            :meth:`advance` afterwards.
        """
        kick = self._kick
        fa, reply = self._atom_vecs[1], self._atom_vecs[3]
        fa.array[:] = f_atoms.ravel()
        self.B_j.multTranspose(fa, self._j_tmp)
        self._g.axpy(kick / self.atom_mass, self._j_tmp)  # the constraint residual G v*, v* with the force
        self._constraint_ksp.solve(self._g, self._lam)
        # reply = what does not depend on λ + R λ, R = −(1/(1−α) kick) B_j on handshake rows, dt B_pad W G on pad rows
        response = self._reply_map if kick == dt else self.reply_matrix(kick, dt)
        response.multAdd(self._lam, self._reply_pre, reply)
        return reply.array.reshape(-1, self.dim)

    def complete_compiled(self, kernel: CriticalPath) -> None:
        """:meth:`complete` and the reply's send by the compiled ``kernel``, which also waits for the forces
        (the receives it posted); same result to round-off."""
        kernel.complete(self._g.array, self._reply_pre.array, self._lam.array, self._kick, self.atom_mass)

    def reply_matrix(self, kick: float, dt: float) -> Any:
        """``R`` of :meth:`complete` for a velocity kick ``kick`` (ps): how the multipliers move the atoms."""
        from petsc4py import PETSc

        scale = self.B_j.createVecs()[1]
        scale.array[:] = np.repeat(-self.inv_weight[:, 0] / kick, self.dim)
        response = self.B_j.copy()
        response.diagonalScale(L=scale)
        response.axpy(dt, self._pad_wg, structure=PETSc.Mat.Structure.DIFFERENT_NONZERO_PATTERN)
        return response

    def advance(self, dt: float) -> None:
        """Update the FE state to n + 1 with the multipliers of :meth:`complete` (after the reply is sent)."""
        self.Z.mult(self._us, self._tmp)
        self._vs.axpy(-self._kick, self._tmp)
        self.gram_j.mult(self._lam, self._j_tmp)
        v, u = self.v.array, self.u.array
        v[:] = self._vs.array
        v[self._j] += self._j_weight * self._j_tmp.array
        u[self.slave] = self._us.array[self.slave]
        self._u_previous.array[:] = u
        u[self.free] += dt * v[self.free]

    def finish_run(self) -> None:
        """Go back to the last completed step n (displacement u^n, on-step velocity v^n = mean of the two
        half-step velocities around it), where LAMMPS stops, so energies or another run start there."""
        self.u.array[:] = self._u_previous.array
        self.v.array[:] = 0.5 * (self.v.array + self._v_previous.array)

    def set_state(self, displacement: Field) -> None:
        """Every node at ``displacement(x (m, dim)) -> (m, dim)`` (Å), every velocity 0."""
        self.u.array[:] = np.asarray(displacement(self.grid.node_x), dtype=float).ravel()
        self.v.set(0.0)

    def node_force(self) -> float:
        """Largest FE nodal force ``|K u|`` (eV/Å) on a free DOF at the current state, over all FE ranks."""
        self.K.mult(self.u, self._f)
        return float(self.comm.allreduce(float(np.max(np.abs(self._f.array[self.free]), initial=0.0)), op=MPI.MAX))

    def max_deviation(self, displacement: Field) -> tuple[float, float]:
        """Largest ``|u − displacement(x)|`` (Å) and ``|v|`` (Å/ps) over the free DOFs of all FE ranks."""
        d = (self.u.array - np.asarray(displacement(self.grid.node_x), dtype=float).ravel())[self.free]
        local = (float(np.max(np.abs(d), initial=0.0)), float(np.max(np.abs(self.v.array[self.free]), initial=0.0)))
        return (float(self.comm.allreduce(local[0], op=MPI.MAX)), float(self.comm.allreduce(local[1], op=MPI.MAX)))

    def transmitted_energy(self) -> float:
        """Energy (eV) of the free nodes beyond ``X_b``, kinetic ``½ vᵀ M_β v`` plus strain ``½ uᵀ K u``, at the
        current (on-step) state. Collective on the FE group."""
        mask = self.grid.transmitted.astype(float)
        v, u, mv, ku = (self.u.duplicate() for _ in range(4))
        v.array[:] = self.v.array * mask
        u.array[:] = self.u.array * mask
        if self._mass_ksp is not None:
            self.M.mult(v, mv)
        else:
            mv.array[:] = self.grid.lumped.array * v.array
        self.K.mult(u, ku)
        return 0.5 * (v.dot(mv) + u.dot(ku))
