"""The FE rank's per-step critical path of the dynamic coupling, compiled.

Between the arrival of the band atoms' forces and its reply, an FE rank of
:func:`~scalelink.coupling.md.run_coupled` adds ``c Bᵀ f`` to the constraint residual,
solves for the multipliers and maps them to the reply (see
:meth:`~scalelink.coupling.md_continuum.ContinuumStrip.complete`). The MD ranks wait for
exactly this, every step. From Python it is four PETSc calls and the message calls, whose
interpreter overhead is most of their cost; :class:`CriticalPath` does it in one call into
``scalelink_couple_kernel.so`` (built with the package), which also waits for the forces and
sends the reply itself.

The constraint operator is symmetric positive definite and, in 2D, the same scalar operator for
both components: it is ordered by reverse Cuthill–McKee and factorised once (dense Cholesky,
kept as its envelope), so a solve is two sweeps with two right-hand sides.

Used when the FE group is one rank (the constraint operator is then whole on it); on more FE
ranks the operator is distributed and the PETSc path (MUMPS) is used. Both give the same reply
to round-off (``tests/test_coupling_kernel.py``).
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from scalelink.bridge.errors import DataError

__all__ = [
    "CriticalPath",
    "EnvelopeSolver",
    "ReplyOperators",
    "component_width",
    "envelope_cholesky",
    "kernel_library",
]


class ReplyOperators(Protocol):
    """What the compiled path needs of the FE model of one rank (a
    :class:`~scalelink.coupling.md_continuum.ContinuumStrip`): its communicator, the constraint
    operator, the coupling matrix ``B_j`` and the reply map ``R`` for a kick (all PETSc)."""

    comm: Any
    dim: int
    constraint_operator: Any
    B_j: Any

    def reply_matrix(self, kick: float, dt: float) -> Any: ...

_LIBRARY_NAME = "scalelink_couple_kernel.so"
_library: ctypes.CDLL | None = None


def kernel_library() -> ctypes.CDLL | None:
    """The compiled kernel, or ``None`` when it was not built (a source checkout without ``pip install .``)."""
    global _library
    if _library is None:
        path = Path(__file__).with_name(_LIBRARY_NAME)
        if not path.exists():
            return None
        lib = ctypes.CDLL(str(path))
        p, i64, f64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double, ctypes.c_int
        lib.slk_create.restype = p
        lib.slk_create.argtypes = [i64, i64, i64, i64] + [p] * 13 + [f64]
        lib.slk_destroy.argtypes = [p]
        lib.slk_post.restype = i32
        lib.slk_post.argtypes = [p, i32, i32, p, p, p, p]
        lib.slk_complete.restype = i32
        lib.slk_complete.argtypes = [p, p, p, f64, i32, p, p, p]
        lib.slk_finish.restype = i32
        lib.slk_finish.argtypes = [p]
        lib.slk_wait_seconds.restype = f64
        lib.slk_wait_seconds.argtypes = [p]
        lib.slk_solve.argtypes = [p, p, p]
        lib.slk_factor_create.restype = p
        lib.slk_factor_create.argtypes = [i64, i64, p, p, p, p]
        lib.slk_factor_solve.argtypes = [p, p, p]
        lib.slk_factor_destroy.argtypes = [p]
        _library = lib
    return _library


def _scipy(mat: Any) -> Any:
    """A sequential PETSc matrix as a scipy CSR matrix."""
    import scipy.sparse as sp

    ptr, idx, val = mat.getValuesCSR()
    return sp.csr_matrix((val, idx, ptr), shape=mat.getSize())


def _csr(mat: Any, transpose: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR arrays (int64 pointers and columns, float64 values) of a sequential PETSc matrix."""
    m = _scipy(mat)
    if transpose:
        m = m.T.tocsr()
    m.sort_indices()
    return (np.ascontiguousarray(m.indptr, dtype=np.int64), np.ascontiguousarray(m.indices, dtype=np.int64),
            np.ascontiguousarray(m.data, dtype=np.float64))


def _is_symmetric(a: Any) -> bool:
    return bool(abs(a - a.T).max() <= 1e-13 * abs(a).max())


def component_width(a: Any, dim: int) -> int:
    """``dim`` when the sparse matrix ``a`` acts on each of ``dim`` interleaved components alike and
    separately, else 1."""
    import scipy.sparse as sp

    a = sp.csr_matrix(a)
    if a.shape[0] % dim:
        return 1
    block = a[0::dim, 0::dim]
    for c in range(dim):
        for d in range(dim):
            part = a[c::dim, d::dim]
            if (part - block if c == d else part).count_nonzero():
                return 1
    return dim


def envelope_cholesky(a: Any, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Envelope Cholesky factor of the sparse SPD matrix ``a`` ``(n w, n w)`` whose unknowns come in rows of ``w``.

    When ``a`` is the same scalar operator for each of the ``w`` components (no coupling between
    them; see :func:`component_width`), only that ``(n, n)`` operator is factorised; otherwise
    ``width`` must be 1. Reverse Cuthill–McKee ordering, then a banded factorisation (memory ``n``
    times the bandwidth), kept row by row from each row's first non-zero: Cholesky fill stays inside
    that envelope.

    Returns:
        ``(perm, first, start, values)``: factor row ``k`` is node ``perm[k]``; it holds columns
        ``first[k] .. k``, stored at ``values[start[k]:start[k + 1]]``.
    """
    import scipy.linalg
    import scipy.sparse as sp
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    scalar = sp.csr_matrix(a)[0::width, 0::width]
    perm = np.asarray(reverse_cuthill_mckee(scalar, symmetric_mode=True), dtype=np.int64)
    n = len(perm)
    lower = sp.tril(scalar[perm][:, perm]).tocsr()
    lower.eliminate_zeros()
    rows = np.repeat(np.arange(n), np.diff(lower.indptr))
    cols = lower.indices.astype(np.int64)
    first = np.arange(n, dtype=np.int64)
    np.minimum.at(first, rows, cols)
    band = int(np.max(np.arange(n) - first, initial=0))
    stored = np.zeros((band + 1, n))  # lower banded form: stored[i - j, j] = a[i, j]
    stored[rows - cols, cols] = lower.data
    factor = scipy.linalg.cholesky_banded(stored, lower=True, check_finite=False)
    lengths = np.arange(n) - first + 1
    start = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    row_of = np.repeat(np.arange(n), lengths)
    col_of = np.arange(start[-1]) - np.repeat(start[:-1], lengths) + np.repeat(first, lengths)
    return perm, first, start, np.ascontiguousarray(factor[row_of - col_of, col_of])


class EnvelopeSolver:
    """``x = A⁻¹ b`` for a sequential SPD PETSc matrix by the compiled envelope Cholesky (see
    :func:`envelope_cholesky`): for the band-like matrices of a strip several times faster than
    PETSc's LU called from Python, since a 2D operator is factorised once for both components.

    Build it with :meth:`for_matrix`, which returns ``None`` where it does not apply.
    """

    def __init__(self, a: Any, dim: int = 2) -> None:
        self._handle = None
        lib = kernel_library()
        if lib is None:
            raise DataError(f"{_LIBRARY_NAME} is not installed next to {__file__}; reinstall ScaleLink (pip install .)")
        self._lib, self.size = lib, a.shape[0]
        self.width = component_width(a, dim)
        self._arrays = envelope_cholesky(a, self.width)
        perm, first, start, values = self._arrays
        self._handle = lib.slk_factor_create(len(perm), self.width, perm.ctypes.data, first.ctypes.data,
                                             start.ctypes.data, values.ctypes.data)
        if not self._handle:
            raise MemoryError("the envelope factor could not allocate its buffers")

    @classmethod
    def for_matrix(cls, mat: Any, dim: int = 2) -> EnvelopeSolver | None:
        """The solver for a PETSc matrix on one rank whose unknowns come in rows of ``dim`` components, or
        ``None`` (several ranks, not built, not symmetric)."""
        if mat.getComm().getSize() != 1 or kernel_library() is None:
            return None
        a = _scipy(mat)
        return cls(a, dim) if _is_symmetric(a) else None

    def solve(self, b: np.ndarray, x: np.ndarray) -> None:
        """``x = A⁻¹ b`` (contiguous float64 arrays of the matrix's size; may be the same array)."""
        self._lib.slk_factor_solve(self._handle, b.ctypes.data, x.ctypes.data)

    def close(self) -> None:
        """Free the factor."""
        if self._handle:
            self._lib.slk_factor_destroy(self._handle)
            self._handle = None

    def __del__(self) -> None:
        self.close()


class CriticalPath:
    """The compiled critical path of one FE rank (see the module docstring).

    Build it with :meth:`for_continuum`, which returns ``None`` when the compiled path does not
    apply (several FE ranks) or is not built; :meth:`unavailable` says which.

    Args:
        continuum: the FE model (one FE rank).
        comm_handle: Fortran handle of the communicator of the per-step messages (``link.steps``).
        dt: the time step (ps) the reply maps are built for.
        spin: seconds a wait spins before napping.
    """

    def __init__(self, continuum: ReplyOperators, comm_handle: int, dt: float, spin: float) -> None:
        self._handle = None
        lib = kernel_library()
        if lib is None:
            raise DataError(f"{_LIBRARY_NAME} is not installed next to {__file__}; reinstall ScaleLink (pip install .)")
        self._lib, self.comm_handle, self.dt = lib, int(comm_handle), float(dt)
        c = continuum
        a = _scipy(c.constraint_operator)
        if not _is_symmetric(a):
            raise DataError("the constraint operator is not symmetric; the compiled path needs it SPD")
        self.width = component_width(a, c.dim)
        perm, first, start, values = envelope_cholesky(a, self.width)
        bt = _csr(c.B_j, transpose=True)
        full = _csr(c.reply_matrix(dt, dt))
        half = _csr(c.reply_matrix(0.5 * dt, dt))
        self.n_f = c.B_j.getSize()[0]
        arrays = [*bt, *full, *half, perm, first, start, values]
        self._keep = arrays
        pointers = [x.ctypes.data for x in arrays]
        self._handle = lib.slk_create(self.n_f, c.dim, len(perm), self.width, *pointers, float(spin))
        if not self._handle:
            raise MemoryError("the coupling kernel could not allocate its buffers")
        self.kick_slots = {self.dt: 0, 0.5 * self.dt: 1}
        self._wait_before = 0.0

    @staticmethod
    def unavailable(continuum: ReplyOperators) -> str:
        """Why the compiled path cannot serve ``continuum`` (``""``: it can)."""
        if continuum.comm.size != 1:
            return (f"the FE group has {continuum.comm.size} ranks and its constraint operator is distributed; "
                    "the compiled path needs the whole operator on one FE rank")
        if kernel_library() is None:
            return (f"{_LIBRARY_NAME} is not installed next to {__file__} (a source checkout without "
                    "`pip install .`); reinstall ScaleLink to build it")
        return ""

    @classmethod
    def for_continuum(cls, continuum: ReplyOperators, comm_handle: int, dt: float, spin: float) -> CriticalPath | None:
        """The compiled path for ``continuum``, or ``None`` when :meth:`unavailable` gives a reason."""
        if cls.unavailable(continuum):
            return None
        return cls(continuum, comm_handle, dt, spin)

    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            raise DataError(f"the coupling kernel's {what} failed with MPI error code {rc}")

    def post(self, sources: list[tuple[int, int, int]], rows: np.ndarray | None) -> None:
        """Post the receives of this step's forces (after the kinematics came from ``sources``)."""
        src = np.asarray(sources, dtype=np.int32).reshape(-1, 3)
        rank, start, count = (np.ascontiguousarray(src[:, k]) for k in range(3))
        rows64 = None if rows is None else np.ascontiguousarray(rows, dtype=np.int64)
        self._check(self._lib.slk_post(self._handle, self.comm_handle, len(src), rank.ctypes.data,
                                       start.ctypes.data, count.ctypes.data,
                                       None if rows64 is None else rows64.ctypes.data), "receive")

    def complete(self, g: np.ndarray, reply_pre: np.ndarray, lam: np.ndarray, kick: float, atom_mass: float,
                 reply: np.ndarray | None = None, forces: np.ndarray | None = None) -> None:
        """Wait for the forces, solve, send the reply. ``g`` is updated, ``lam`` written; ``reply`` and
        ``forces`` (continuum order) too when given."""
        slot = self.kick_slots.get(kick)
        if slot is None:
            raise DataError(f"the coupling kernel has reply maps for kicks {sorted(self.kick_slots)} ps, not {kick}")
        self._check(self._lib.slk_complete(self._handle, g.ctypes.data, reply_pre.ctypes.data, kick / atom_mass,
                                           slot, lam.ctypes.data, None if reply is None else reply.ctypes.data,
                                           None if forces is None else forces.ctypes.data), "step")

    def finish(self) -> None:
        """Wait until the last replies have gone."""
        self._check(self._lib.slk_finish(self._handle), "send")

    @property
    def wait_seconds(self) -> float:
        """Seconds the kernel waited (for forces, and for its sends) since it was made."""
        return float(self._lib.slk_wait_seconds(self._handle))

    def solve(self, g: np.ndarray) -> np.ndarray:
        """``A⁻¹ g`` with the kernel's factor (for tests)."""
        g = np.ascontiguousarray(g, dtype=np.float64)
        out = np.empty_like(g)
        self._lib.slk_solve(self._handle, g.ctypes.data, out.ctypes.data)
        return out

    def close(self) -> None:
        """Free the kernel (after :meth:`finish`)."""
        if self._handle:
            self._lib.slk_destroy(self._handle)
            self._handle = None

    def __del__(self) -> None:
        self.close()
