"""ParaView output of an :class:`~scalelink.fe2.macro.FE2Problem`.

:class:`FE2Writer` writes the displacement and the cell-averaged stress and strain (symmetric
``gdim × gdim`` tensors, DG0, averaged with the macro quadrature rule) with
:class:`dolfinx.io.VTXWriter` (ADIOS2 ``.bp`` folders that ParaView opens directly).
"""

from __future__ import annotations

import pathlib
from types import TracebackType

import mpi4py.MPI  # noqa: F401, I001  (loads libmpi before dolfinx)
from dolfinx import fem, io

from scalelink.bridge.errors import ConfigError

from .macro import FE2Problem
from .tensors import tensor_from_mandel

__all__ = ["FE2Writer"]


class FE2Writer:
    """Displacement and cell-averaged stress/strain of an FE² problem, one time per write.

    Writes ``<stem>_displacement.bp`` (``u``) and ``<stem>_cells.bp`` (``stress`` and
    ``strain``). In plane strain the out-of-plane stress is not part of the macro problem and is
    not written.

    Args:
        problem: the macro problem.
        stem: path without suffix, e.g. ``"out/bar"``; its folder must exist.
    """

    def __init__(self, problem: FE2Problem, stem: str | pathlib.Path) -> None:
        if not isinstance(problem, FE2Problem):
            raise ConfigError(f"problem must be an FE2Problem, got {type(problem).__name__}")
        stem = pathlib.Path(stem)
        if not stem.parent.is_dir():
            raise ConfigError(f"output folder {str(stem.parent)!r} does not exist; create it first")
        self._problem = problem
        mesh = problem.u.function_space.mesh
        gdim = mesh.geometry.dim
        tensors = fem.functionspace(mesh, ("DG", 0, (gdim, gdim)))
        self._width = gdim * gdim
        self._dofs = tensors.dofmap.list[: mesh.topology.index_map(gdim).size_local, 0]
        self._stress = fem.Function(tensors, name="stress")
        self._strain = fem.Function(tensors, name="strain")
        self._writers = (
            io.VTXWriter(mesh.comm, stem.with_name(stem.name + "_displacement.bp"), [problem.u]),
            io.VTXWriter(
                mesh.comm, stem.with_name(stem.name + "_cells.bp"), [self._stress, self._strain]
            ),
        )

    @property
    def cell_stress(self) -> fem.Function:
        """DG0 tensor Function of the cell-averaged stress at the last :meth:`write`."""
        return self._stress

    def write(self, time: float) -> None:
        """Write the current displacement and cell averages at ``time`` (collective)."""
        stress, strain, _ = self._problem.cell_averages()
        for target, mandel in ((self._stress, stress), (self._strain, strain)):
            values = target.x.array.reshape(-1, self._width)
            values[self._dofs] = tensor_from_mandel(mandel).reshape(-1, self._width)
            target.x.scatter_forward()
        for writer in self._writers:
            writer.write(float(time))

    def close(self) -> None:
        """Close both files (collective)."""
        for writer in self._writers:
            writer.close()

    def __enter__(self) -> FE2Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
