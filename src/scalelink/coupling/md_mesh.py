"""The periodic FE strip or bar and the atom ↔ element maps of dynamic LAMMPS–dolfinx coupling (FE ranks).

* :class:`StripMesh`: the dolfinx mesh of ``[X_a − h, x_end] × [0, L_y]`` (2D: structured triangles) or
  ``[X_a − h, x_end] × [0, L]²`` (3D: tetrahedra), whose nodes are lattice sites, the Cauchy–Born
  stiffness and the consistent mass made periodic across by a prolongation ``P`` (each node on a far
  face renamed to its image on the near faces, found by a rendezvous on the FE communicator;
  ``Pᵀ K P`` with petsc4py), and the classes of the degrees of
  freedom: held (the column at ``X_a − h``, which only serves to locate atoms, and the column at
  ``x_end``), slave (the column at ``X_a``), renamed (top) and free.
* :class:`BandAtoms`: the coupling-band atoms this FE rank *handles* — those whose site, nudged by a
  tiny fixed offset that is parallel to no mesh edge, lies in one of its owned cells, so every atom
  is handled by exactly one FE rank — with their cell and hat-function values, built once from the
  atom IDs (reference positions follow from the ID). Its matrices map FE vectors to handled atoms;
  their columns are FE degrees of freedom on any rank, so PETSc does the communication between FE
  ranks.

Units: Å, eV; stiffness eV/Å² (per unit area), masses eV ps²/Å².
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mpi4py import MPI

from scalelink.bridge.errors import DataError

from .dispersion import MVV2E
from .wave_bar import WaveBar
from .wave_strip import WaveStrip

__all__ = ["BandAtoms", "StripMesh", "aij", "lu_solver", "rendezvous"]

_NUDGE = np.array([1e-7, 3e-8, 1.7e-8])  # in lattice spacings; parallel to no edge or face of the mesh


def rendezvous(comm: MPI.Comm, keys: np.ndarray, values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Look up integer ``values`` offered under integer ``keys`` by any rank (directory rank: key mod size).

    Collective on ``comm``. Returns the values ``(m,)`` for ``wanted`` ``(m,)``; ``-1`` where no rank
    offered the key.
    """
    size = comm.size

    def alltoall(rows: np.ndarray, dest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(dest, kind="stable")
        counts = np.bincount(dest, minlength=size).astype(np.int64)
        got = np.empty(size, dtype=np.int64)
        comm.Alltoall(counts, got)
        out = np.empty((int(got.sum()), rows.shape[1]), dtype=np.int64)
        sc, rc = counts * rows.shape[1], got * rows.shape[1]
        comm.Alltoallv([np.ascontiguousarray(rows[order]), (sc, np.cumsum(sc) - sc), MPI.INT64_T],
                       [out, (rc, np.cumsum(rc) - rc), MPI.INT64_T])
        return out, got

    keys, values, wanted = (np.asarray(v, dtype=np.int64).ravel() for v in (keys, values, wanted))
    table, _ = alltoall(np.column_stack([keys, values]), keys % size)
    asked, asked_counts = alltoall(wanted[:, None], wanted % size)
    order = np.argsort(table[:, 0], kind="stable")
    pos = np.clip(np.searchsorted(table[order, 0], asked[:, 0]), 0, max(len(table) - 1, 0))
    found = table[order[pos], 0] == asked[:, 0] if len(table) else np.zeros(len(asked), dtype=bool)
    answer = np.where(found, table[order[pos], 1] if len(table) else -1, -1)
    replies, _ = alltoall(answer[:, None], np.repeat(np.arange(size), asked_counts))
    result = np.empty(len(wanted), dtype=np.int64)
    result[np.argsort(wanted % size, kind="stable")] = replies[:, 0]
    return result


def aij(comm: MPI.Comm, rows_local: int, cols_local: int, row: np.ndarray, col: np.ndarray, val: np.ndarray) -> Any:
    """A PETSc AIJ matrix from this rank's entries (local row numbers, global column numbers)."""
    from petsc4py import PETSc

    order = np.lexsort((col, row))
    row, col, val = row[order], col[order], val[order]
    indptr = np.zeros(rows_local + 1, dtype=PETSc.IntType)
    np.cumsum(np.bincount(row, minlength=rows_local), out=indptr[1:])
    mat = PETSc.Mat().createAIJ(((rows_local, PETSc.DETERMINE), (cols_local, PETSc.DETERMINE)),
                                csr=(indptr, col.astype(PETSc.IntType), val.astype(PETSc.ScalarType)), comm=comm)
    mat.assemble()
    return mat


def lu_solver(mat: Any) -> Any:
    """A factorised direct solver for ``mat`` (PETSc's LU on one rank, MUMPS on several)."""
    from petsc4py import PETSc

    ksp = PETSc.KSP().create(mat.getComm())
    ksp.setOperators(mat)
    ksp.setType("preonly")
    ksp.getPC().setType("lu")
    # PETSc's own LU solves small sequential systems several times faster than MUMPS
    ksp.getPC().setFactorSolverType("petsc" if mat.getComm().getSize() == 1 else "mumps")
    ksp.setUp()
    return ksp


class StripMesh:
    """The periodic P1 strip with its stiffness, consistent mass and DOF classes. Collective on ``comm``.

    Attributes:
        K: periodic stiffness ``Pᵀ K P`` (PETSc), eV/Å². mass: periodic consistent mass ``Pᵀ M P``.
        lumped: its row sums (PETSc vector). reduced: ``(local nodes,)`` global node index after renaming.
        free, slave_dofs, transmitted: masks / indices over the owned DOFs (dim per owned node).
        node_x: ``(owned nodes, dim)`` coordinates, Å. start: global index of the first owned DOF.
    """

    def __init__(self, comm: MPI.Comm, strip: WaveStrip | WaveBar, stiffness: np.ndarray) -> None:
        import dolfinx.fem.petsc
        import ufl
        from dolfinx import fem, mesh

        self.comm, self.strip = comm, strip
        s, h = strip, strip.element_size
        dim = self.dim = strip.dim
        x0 = s.x_a - h
        nx = int(round((s.x_end - x0) / h))
        across = int(round(s.height / s.element_height))  # elements across the period, in y (and z)
        if dim == 2:
            self.mesh = mesh.create_rectangle(comm, [[x0, 0.0], [s.x_end, s.height]], [nx, across],
                                              mesh.CellType.triangle)
            density = s.potential.mass * MVV2E / (0.5 * np.sqrt(3.0) * s.spacing**2)
        else:
            self.mesh = mesh.create_box(comm, [[x0, 0.0, 0.0], [s.x_end, s.height, s.height]], [nx, across, across],
                                        mesh.CellType.tetrahedron)
            density = 4.0 * s.potential.mass * MVV2E / s.spacing**3
        self.V = fem.functionspace(self.mesh, ("Lagrange", 1, (dim,)))
        u, w = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
        root2 = np.sqrt(2.0)

        def mandel(v: Any) -> Any:
            e = ufl.sym(ufl.grad(v))
            if dim == 2:
                return ufl.as_vector([e[0, 0], e[1, 1], root2 * e[0, 1]])
            return ufl.as_vector([e[0, 0], e[1, 1], e[2, 2], root2 * e[1, 2], root2 * e[0, 2], root2 * e[0, 1]])

        c = ufl.as_matrix(np.asarray(stiffness, dtype=float).tolist())
        k_full = dolfinx.fem.petsc.assemble_matrix(fem.form(ufl.inner(c * mandel(u), mandel(w)) * ufl.dx))
        m_full = dolfinx.fem.petsc.assemble_matrix(fem.form(density * ufl.inner(u, w) * ufl.dx))
        k_full.assemble()
        m_full.assemble()

        imap = self.V.dofmap.index_map
        self.n_own = imap.size_local
        self.start = dim * imap.local_range[0]
        self.x = self.V.tabulate_dof_coordinates()[:, :dim]
        gnode = imap.local_to_global(np.arange(len(self.x), dtype=np.int32)).astype(np.int64)
        column = np.rint((self.x[:, 0] - x0) / h).astype(np.int64)
        tol = 1e-6 * s.spacing
        # periodic across: a node on a far face (y or z = period) is renamed to its image on the near faces
        cell = np.rint(self.x[:, 1:] / s.element_height).astype(np.int64) % across
        key = column
        for axis in range(dim - 1):
            key = key * across + cell[:, axis]
        top = np.any(np.abs(self.x[:, 1:] - s.height) < tol, axis=1)
        owned_image = ~top & (np.arange(len(self.x)) < self.n_own)
        self.reduced = gnode.copy()
        self.reduced[top] = rendezvous(comm, key[owned_image], gnode[owned_image], key[top])
        if np.any(self.reduced < 0):
            raise DataError("a node on a periodic face of the FE mesh has no partner on the opposite face; the mesh "
                            "is not the structured strip expected")
        own = np.arange(self.n_own)
        components = np.arange(dim)
        dofs = (dim * own[:, None] + components).ravel()
        p = aij(comm, dim * self.n_own, dim * self.n_own, dofs,
                (dim * self.reduced[own][:, None] + components).ravel(), np.ones(len(dofs)))
        self.K = k_full.PtAP(p)
        self.mass = m_full.PtAP(p)
        self.lumped = self.mass.getRowSum()

        self.node_x = self.x[: self.n_own]
        self.slave_node = np.abs(self.x[:, 0] - s.x_a) < tol
        owned_col, owned_top = column[: self.n_own], top[: self.n_own]
        held = (owned_col == 0) | (owned_col == nx) | self.slave_node[: self.n_own] | owned_top
        self.free = np.repeat(~held, dim)
        self.slave_dofs = np.flatnonzero(np.repeat(self.slave_node[: self.n_own] & ~owned_top, dim))
        self.transmitted = np.repeat(self.node_x[:, 0] >= s.x_b - tol, dim) & self.free


class BandAtoms:
    """The coupling-band atoms handled by this FE rank, and their hat-function values.

    Attributes:
        ids: ``(n,)`` sorted atom IDs. x: ``(n, dim)`` reference positions, Å.
        is_handshake, is_pad, is_fit: ``(n,)`` masks: constrained atoms ``[X_a + h, X_b)``, pad atoms
            ``[X_b, X_b + pad)``, atoms averaged into the slave nodes (``|x − X_a| < h``).
    """

    def __init__(self, strip_mesh: StripMesh) -> None:
        from dolfinx import geometry

        self.strip_mesh = strip_mesh
        s, a, mesh = strip_mesh.strip, strip_mesh.strip.spacing, strip_mesh.mesh
        dim = strip_mesh.dim
        owned = np.arange(mesh.topology.index_map(dim).size_local, dtype=np.int32)
        corners = strip_mesh.x[strip_mesh.V.dofmap.list[owned]]
        if len(owned):
            ids, x = s.sites(float(corners[..., 0].min()) - a, float(corners[..., 0].max()) + a)
        else:
            ids, x = s.sites(0.0, 0.0)
        keep = s.in_band(x[:, 0])
        ids, x = ids[keep], x[keep]
        points = x + _NUDGE[:dim] * a
        if dim == 2:
            points = np.column_stack([points, np.zeros(len(x))])
        tree = geometry.bb_tree(mesh, dim, entities=owned)
        hits = geometry.compute_colliding_cells(mesh, geometry.compute_collisions_points(tree, points), points)
        found = np.diff(hits.offsets) > 0
        cells = hits.array[hits.offsets[:-1][found]]
        order = np.argsort(ids[found])
        self.ids, self.x, cells = ids[found][order], x[found][order], cells[order]
        self.nodes = strip_mesh.V.dofmap.list[cells]
        c = strip_mesh.x[self.nodes]
        edges = np.stack([c[:, v] - c[:, 0] for v in range(1, dim + 1)], axis=2)
        lam = np.linalg.solve(edges, (self.x - c[:, 0])[:, :, None])[:, :, 0] if len(self.x) else np.zeros((0, dim))
        self.hat = np.column_stack([1.0 - lam.sum(axis=1), lam])
        self.hat[np.abs(self.hat) < 1e-12] = 0.0
        tol = 1e-6 * a
        self.is_handshake = (self.x[:, 0] >= s.x_a + s.element_size - tol) & (self.x[:, 0] < s.x_b - tol)
        self.is_pad = self.x[:, 0] >= s.x_b - tol
        self.is_fit = np.abs(self.x[:, 0] - s.x_a) < s.element_size - tol
        total = strip_mesh.comm.allreduce(len(self.ids))
        expected = len(s.sites(*s.coupling_band())[0])
        if total != expected:
            raise DataError(f"the FE ranks handle {total} coupling atoms but the band holds {expected}; expected each "
                            "atom in exactly one owned cell (the mesh does not cover the band as the geometry says)")

    def hat_matrix(self, rows: np.ndarray, node_mask: np.ndarray | None = None) -> Any:
        """Matrix ``(dim n, FE DOFs)`` of hat values at the atoms ``rows`` (mask) on the nodes ``node_mask``.

        Rows ``dim i + c`` are component c of handled atom ``i``; other atoms' rows are empty.
        """
        m = self.strip_mesh
        dim = m.dim
        r = np.repeat(np.flatnonzero(rows), dim + 1)
        n = self.nodes[rows].ravel()
        w = self.hat[rows].ravel()
        keep = w != 0.0
        if node_mask is not None:
            keep &= node_mask[n]
        r, n, w = r[keep], m.reduced[n[keep]], w[keep]
        return aij(m.comm, dim * len(self.ids), dim * m.n_own, np.concatenate([dim * r + c for c in range(dim)]),
                   np.concatenate([dim * n + c for c in range(dim)]), np.tile(w, dim))
