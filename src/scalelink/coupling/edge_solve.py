"""The continuum side of the Schwarz iteration, shared by the 2D and 3D regions: relax the
hole-boundary Dirichlet values towards the atoms, solve with the factorised operator, and
measure the free nodal residual."""

from __future__ import annotations

import numpy as np
from mpi4py import MPI

__all__ = ["EdgeDirichletSolve"]


class EdgeDirichletSolve:
    """Mixin of a continuum region whose hole edge takes Dirichlet values from the atoms.

    The region provides ``mesh``, ``u``, ``bc_values``, ``edge_nodes``, ``fit_weights``,
    ``fit_rows``, ``_edge_owned``, the forms ``_a`` and ``_residual``, the conditions ``_bc``
    and ``_bc_zero``, the right-hand side ``_b``, the factorised ``_ksp``, and ``_omega = 1``,
    ``_last_r = None``.
    """

    def _relax_edge(self, atom_u: np.ndarray, omega: float | None) -> tuple[float, float]:
        """Move the edge values by ``ω r`` (``r``: the fit of ``atom_u`` [m, dim] minus the
        current values); ``ω`` fixed, or Aitken's rule (Irons–Tuck form) from the last two
        ``r`` when ``None``. Returns (``max |r|`` over all FE ranks in Å, ``ω`` used). Collective."""
        dim = atom_u.shape[1]
        values = self.bc_values.x.array.reshape(-1, dim)
        fitted = np.einsum("nk,nkc->nc", self.fit_weights, atom_u[self.fit_rows])
        r = fitted - values[self.edge_nodes]
        comm = self.mesh.comm
        if omega is None:
            omega = self._omega
            if self._last_r is not None:
                dr = (r - self._last_r)[self._edge_owned]
                num, den = comm.allreduce(np.array([np.sum(self._last_r[self._edge_owned] * dr), np.sum(dr * dr)]))
                if den > 0.0:
                    omega = float(np.clip(-omega * num / den, 0.05, 2.0))
            self._omega, self._last_r = omega, r
        values[self.edge_nodes] += omega * r
        return float(comm.allreduce(float(np.max(np.abs(r), initial=0.0)), op=MPI.MAX)), omega

    def solve(self) -> None:
        """Solve for the displacement with the current Dirichlet data (factorisation reused)."""
        import dolfinx.fem.petsc
        from petsc4py import PETSc

        with self._b.localForm() as local:
            local.set(0.0)
        dolfinx.fem.petsc.apply_lifting(self._b, [self._a], bcs=[[self._bc]])
        self._b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        dolfinx.fem.petsc.set_bc(self._b, [self._bc])
        self._ksp.solve(self._b, self.u.x.petsc_vec)
        self.u.x.scatter_forward()

    def max_free_residual(self) -> float:
        """Largest nodal residual ``|K u|`` (eV/Å) over the unconstrained DOFs, all FE ranks."""
        import dolfinx.fem.petsc
        from petsc4py import PETSc

        r = dolfinx.fem.petsc.assemble_vector(self._residual)
        r.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        dolfinx.fem.petsc.set_bc(r, [self._bc_zero])
        value = r.norm(PETSc.NormType.NORM_INFINITY)
        r.destroy()
        return float(value)
