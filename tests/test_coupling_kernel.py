"""The compiled FE side of the dynamic coupling (scalelink.coupling.md_kernel).

References: scipy's sparse direct solver for the envelope Cholesky, and the PETSc path of
:meth:`ContinuumStrip.complete` (LU from Python) for the compiled critical path, fed the same
forces through real MPI messages (to this rank itself).
"""

from __future__ import annotations

import numpy as np
import pytest

kernel = pytest.importorskip("scalelink.coupling.md_kernel")
if kernel.kernel_library() is None:
    pytest.skip("scalelink_couple_kernel.so is not built (pip install . builds it)", allow_module_level=True)

pytestmark = [pytest.mark.fenicsx]


def _laplacian(n: int, rng: np.random.Generator):  # type: ignore[no-untyped-def]
    """A scattered-numbering SPD matrix with the sparsity of a 2D grid (RCM has something to undo)."""
    import scipy.sparse as sp

    side = int(np.sqrt(n))
    one = sp.diags([-1.0, 2.5, -1.0], [-1, 0, 1], shape=(side, side))
    grid = (sp.kron(one, sp.eye(side)) + sp.kron(sp.eye(side), one)).tocsr()
    shuffle = rng.permutation(side * side)
    return grid[shuffle][:, shuffle]


def test_envelope_solver_matches_a_sparse_direct_solve() -> None:
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    rng = np.random.default_rng(3)
    scalar = _laplacian(144, rng)
    separable = sp.kron(scalar, sp.eye(2)).tocsr()  # both components alike, uncoupled
    coupled = separable + sp.kron(sp.eye(144), sp.csr_matrix([[0.0, 0.3], [0.3, 0.0]]))
    for a, width in ((separable, 2), (coupled, 1)):
        assert kernel.component_width(a, 2) == width
        solver = kernel.EnvelopeSolver(a)
        b = rng.standard_normal(a.shape[0])
        x = np.empty_like(b)
        solver.solve(b, x)
        reference = spla.spsolve(a.tocsc(), b)
        np.testing.assert_allclose(x, reference, rtol=1e-12, atol=1e-12 * np.abs(reference).max())
        solver.solve(b, b)  # in place
        np.testing.assert_allclose(b, x, rtol=0, atol=0)
        solver.close()


def test_envelope_factor_keeps_only_the_envelope() -> None:
    rng = np.random.default_rng(4)
    a = _laplacian(400, rng)
    perm, first, start, values = kernel.envelope_cholesky(a, 1)
    # after reverse Cuthill–McKee a 20 x 20 grid has bandwidth about 20: far less than the dense 400 x 401 / 2
    assert start[-1] == len(values) < 400 * 30
    assert np.all(first <= np.arange(400)) and sorted(perm.tolist()) == list(range(400))


@pytest.fixture(scope="module")
def strip_continuum():  # type: ignore[no-untyped-def]
    from mpi4py import MPI

    from scalelink.coupling.lattice import LennardJones2D
    from scalelink.coupling.md_continuum import ContinuumStrip
    from scalelink.coupling.md_runs import wave_speed
    from scalelink.coupling.wave_strip import StripConfig, WaveStrip

    potential, a = LennardJones2D(), 2.455537  # a close to the zero-stress spacing is enough here
    c11, c12 = 3.26268, 1.08756
    stiffness = np.array([[c11, c12, 0.0], [c12, c11, 0.0], [0.0, 0.0, c11 - c12]])
    strip = WaveStrip.for_packet(StripConfig(rows=4), potential, a, 1.0 / a, wave_speed(stiffness, a, potential.mass))
    return ContinuumStrip(MPI.COMM_SELF, strip, stiffness, mass_blend=0.57, gram_blend=0.21)


@pytest.mark.parametrize(("shuffled", "whole"), [(False, False), (True, False), (True, True)])
def test_compiled_critical_path_matches_the_petsc_path(strip_continuum, shuffled: bool, whole: bool,  # type: ignore
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from mpi4py import MPI

    from scalelink.coupling.exchange import TAG_FORCES, TAG_REPLY

    c = strip_continuum
    comm = MPI.COMM_SELF.Dup()
    dt = c.strip.time_step
    if whole:  # factorise the whole operator, as for one whose components are coupled
        monkeypatch.setattr(kernel, "component_width", lambda a, dim: 1)
    path = kernel.CriticalPath.for_continuum(c, comm.py2f(), dt, 1e-3)
    assert path is not None and path.width == (1 if whole else 2)
    rng = np.random.default_rng(5 + shuffled)
    n = len(c.handled_ids)
    u, v, f = 1e-3 * rng.standard_normal((n, 2)), 0.1 * rng.standard_normal((n, 2)), rng.standard_normal((n, 2))
    for kick in (0.5 * dt, dt):  # the first step of a run and the others
        c.predict(kick, dt)
        c.prepare(u, v, dt)
        g, pre = c._g.array.copy(), c._reply_pre.array.copy()
        reference = c.complete(f, dt).copy()
        lam_reference = c._lam.array.copy()
        c._g.array[:] = g
        c._reply_pre.array[:] = pre
        # one "MD rank" (this one) sends the forces in its own order; rows[k]: continuum row of sent row k
        rows = rng.permutation(n) if shuffled else None
        sent = np.ascontiguousarray(f[rows] if shuffled else f)
        path.post([(0, 0, n)], rows)
        back = np.empty((n, 2))
        requests = [comm.Irecv([back, MPI.DOUBLE], source=0, tag=TAG_REPLY),
                    comm.Isend([sent, MPI.DOUBLE], dest=0, tag=TAG_FORCES)]
        reply = np.empty(2 * n)
        path.complete(c._g.array, c._reply_pre.array, c._lam.array, kick, c.atom_mass, reply=reply)
        MPI.Request.Waitall(requests)
        scale = np.abs(reference).max()
        np.testing.assert_allclose(reply.reshape(-1, 2), reference, rtol=0, atol=1e-12 * scale)
        np.testing.assert_allclose(back, reference[rows] if shuffled else reference, rtol=0, atol=1e-12 * scale)
        np.testing.assert_allclose(c._lam.array, lam_reference, rtol=0, atol=1e-12 * np.abs(lam_reference).max())
        c.advance(dt)
    path.finish()
    with pytest.raises(Exception, match="reply maps for kicks"):
        path.complete(c._g.array, c._reply_pre.array, c._lam.array, 0.3 * dt, c.atom_mass)
    path.close()
    comm.Free()


def test_mass_and_projection_solves_use_the_compiled_factor(strip_continuum) -> None:  # type: ignore
    c = strip_continuum
    assert c._mass_envelope is not None and c._l2_envelope is not None
    rhs, out, reference = c._f.duplicate(), c._a.duplicate(), c._a.duplicate()
    rhs.setRandom()
    c._solve_mass(rhs, out)
    c._mass_ksp.solve(rhs, reference)
    reference.array[~c.free] = 0.0
    np.testing.assert_allclose(out.array, reference.array, rtol=0, atol=1e-12 * np.abs(reference.array).max())
