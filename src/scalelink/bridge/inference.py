"""Batched inference of constitutive models: Mandel strains in, stress and tangent out.

:class:`ConstitutiveEngine` loads a model file of kind ``constitutive`` (through
:mod:`scalelink.bridge.model_file`) onto a CPU or CUDA device and evaluates numpy float64
strains in chunks, so that memory stays bounded for any number of quadrature points. The
device-side input buffer is kept between calls; the returned arrays are new every call (a
caller such as a Taylor test keeps results of several calls).

On the CPU the engine shares the node's cores with the other ranks of an MPI job
(:func:`rank_thread_share`) and sets torch's process-wide thread count only for the duration
of its own calls, restoring the caller's afterwards.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt
import torch

from .errors import ConfigError, ModelFileError, NonFiniteError
from .model_file import ModelMetadata, load_model, select_device

__all__ = ["ConstitutiveEngine", "rank_thread_share", "select_device"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}

# The MPI job's ranks on this node as launchers put them in the environment (Hydra: MPICH,
# Intel MPI; Open MPI; MVAPICH2; Cray PALS), then the job's size where only that is known.
# The LAMMPS plugin reads the same node-local list (lammps_plugin/pair/pair_scalelink.cpp).
_NODE_RANKS_VARIABLES = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE",
                         "PALS_LOCAL_SIZE")
_JOB_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def _ranks_on_node() -> tuple[int, str]:
    """Ranks of this process's MPI job on its node and the variable that says so (``1, ""``: no launcher)."""
    for name in _NODE_RANKS_VARIABLES + _JOB_SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value), name
    return 1, ""


def rank_thread_share() -> tuple[int, str]:
    """CPU threads this process may use without oversubscribing its node, and why.

    The CPUs of the process's affinity (what the launcher bound it to), at most the node's
    cores divided by the ranks of the MPI job on the node: each of the ``N`` ranks of
    ``mpirun -n N`` on one machine gets ``cores // N`` (at least 1). The ranks are read from
    the launcher's environment (``MPI_LOCALNRANKS``, ``OMPI_COMM_WORLD_LOCAL_SIZE``, ...), so
    no MPI call is made; without a launcher the process is alone.

    Returns:
        ``(threads, reason)``; the reason names the numbers the share came from.
    """
    machine = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else machine
    ranks, variable = _ranks_on_node()
    share = max(1, min(usable, machine // ranks))
    where = f"{ranks} MPI ranks on this node ({variable})" if ranks > 1 else "one process"
    return share, f"{where}, {machine} cores, {usable} usable by this process"


class ConstitutiveEngine:
    """Stress and tangent of a deployed constitutive model for batches of quadrature points.

    Args:
        path: model file of kind ``constitutive`` (``scalelink deploy-surrogate``).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:K"`` or ``"auto"`` (GPU when there is one).
        dtype: ``"float32"`` or ``"float64"`` to run in another precision than the file's
            weights; ``None`` keeps the file's.
        chunk_size: points per forward call; bounds the memory of the forward-mode tangent
            (about ``chunk_size · (m + 1) · width`` numbers per layer). About a thousand
            points keep a chunk's work in the core's cache.
        num_threads: CPU threads: chunks are evaluated by this many worker threads at once,
            each running torch on one thread. Independent chunks scale without the
            synchronisation of a thread team inside every small matrix product, which stalls
            when cores are shared. ``None`` evaluates chunks one after another with torch's
            own threading.

    Threads on the CPU. torch's thread count is process-wide: the engine sets it only while
    :meth:`evaluate` runs and restores the caller's count when it returns. A thread count the
    user chose, ``num_threads`` or ``OMP_NUM_THREADS``, is used as given:

    * ``num_threads`` given: that many workers, torch on one thread each. More than this
      rank's share of the node (:func:`rank_thread_share`: ``cores // N`` under ``mpirun -n
      N`` on one machine) warns, naming the share.
    * ``num_threads=None`` with ``OMP_NUM_THREADS`` set: torch's count as the caller has it.
    * ``num_threads=None`` otherwise: torch's count, lowered during the call to this rank's
      share when it is larger (torch starts every rank with all the node's cores, which ``N``
      ranks on one node oversubscribe ``N`` times); never raised.

    Attributes:
        metadata: the file's metadata.
        strain_size: ``m``, 3 or 6.
        stress_unit: unit of stress and tangent.
        device: the torch device the model runs on.
        torch_threads: torch's thread count during :meth:`evaluate` (``None``: the caller's
            count as it stands; an upper bound without ``num_threads``).

    Raises:
        ModelFileError: the file is missing, unreadable, or not of kind ``constitutive``.
        ConfigError: an unavailable device, an unknown dtype or a bad chunk size.

    The file records the strain range the network was trained on; the first call that reaches
    strains far outside it (further beyond a component's range than the range is wide) warns
    once, naming the component, the value and the range.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        device: str = "cpu",
        dtype: str | None = None,
        chunk_size: int = 1024,
        num_threads: int | None = None,
    ) -> None:
        if chunk_size < 1:
            raise ConfigError(f"chunk_size must be at least 1, got {chunk_size!r}")
        if dtype is not None and dtype not in _DTYPES:
            raise ConfigError(f"dtype {dtype!r} is not one of {sorted(_DTYPES)} (or None for the file's)")
        if num_threads is not None and num_threads < 1:
            raise ConfigError(f"num_threads must be at least 1, got {num_threads!r}")
        self.device = select_device(device)
        self._pool: ThreadPoolExecutor | None = None
        self.torch_threads: int | None = None
        if self.device.type == "cpu":
            share, why = rank_thread_share()
            if num_threads is not None:
                self.torch_threads = 1
                if num_threads > share:
                    warnings.warn(
                        f"ConstitutiveEngine(num_threads={num_threads}) runs more threads than this rank's share "
                        f"of the node, {share} ({why}): the ranks will compete for cores; pass "
                        f"num_threads={share} or fewer",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                if num_threads > 1:
                    self._pool = ThreadPoolExecutor(num_threads, thread_name_prefix="scalelink-inference")
            elif "OMP_NUM_THREADS" not in os.environ:
                self.torch_threads = share
        module, metadata = load_model(path, device=self.device)
        if metadata.kind != "constitutive" or metadata.constitutive is None:
            raise ModelFileError(
                f"{os.fspath(path)!r} holds a model of kind {metadata.kind!r}, not a constitutive "
                "model; deploy a surrogate with `scalelink deploy-surrogate`"
            )
        if dtype is not None and dtype != metadata.dtype:
            module = module.to(_DTYPES[dtype])
        self.module = module
        self.metadata: ModelMetadata = metadata
        self.dtype = dtype or metadata.dtype
        self.strain_size = metadata.constitutive.strain_size
        self.stress_unit = metadata.constitutive.stress_unit
        self.chunk_size = int(chunk_size)
        self.path = os.fspath(path)
        self._range_warned = False
        # TorchScript's optimising executor profiles the first calls (tens of ms each) and has no fuser
        # for these graphs on the CPU, where it only keeps more intermediates alive; GPUs keep it
        self._optimize = self.device.type != "cpu"
        # staging buffers for a GPU (pinned host memory for asynchronous copies), kept between calls
        self._host: torch.Tensor | None = None
        self._input: torch.Tensor | None = None
        if self.device.type != "cpu":
            shape = (self.chunk_size, self.strain_size)
            self._host = torch.empty(shape, dtype=torch.float64, pin_memory=True)
            self._input = torch.empty(shape, dtype=torch.float64, device=self.device)

    def evaluate(self, strain: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Stress ``(n, m)`` and tangent ``(n, m, m)``, float64, of strains ``(n, m)`` (Mandel).

        Raises:
            ConfigError: ``strain`` is not an ``(n, m)`` array of finite numbers.
            NonFiniteError: the network returned NaN or inf stress or tangent.
        """
        eps = np.ascontiguousarray(strain, dtype=np.float64)
        m = self.strain_size
        if eps.ndim != 2 or eps.shape[1] != m:
            raise ConfigError(
                f"strain batch has shape {eps.shape}, expected (num_points, {m}) Mandel vectors"
            )
        if not np.all(np.isfinite(eps)):
            raise ConfigError("strain batch contains NaN or inf; check the macro solution")
        if not self._range_warned:
            self._warn_outside_training_range(eps)
        n = eps.shape[0]
        stress = np.empty((n, m))
        tangent = np.empty((n, m, m))
        source = torch.from_numpy(eps)
        stress_out, tangent_out = torch.from_numpy(stress), torch.from_numpy(tangent)

        def run(start: int) -> None:
            stop = min(start + self.chunk_size, n)
            # inference mode and the executor setting are per thread, so every worker sets them itself
            with torch.inference_mode(), torch.jit.optimized_execution(self._optimize):
                s, t = self.module(self._stage(source[start:stop]))
                stress_out[start:stop].copy_(s)
                tangent_out[start:stop].copy_(t)

        starts = range(0, n, self.chunk_size)
        with self._torch_threads():
            if self._pool is not None and len(starts) > 1:
                list(self._pool.map(run, starts))
            else:
                for start in starts:
                    run(start)
        # two sums are a cheap test (NaN and inf propagate); the points are found only after it fails
        if not (np.isfinite(stress.sum()) and np.isfinite(tangent.sum())):
            self._raise_if_non_finite(eps, stress, tangent)
        return stress, tangent

    def _raise_if_non_finite(self, eps: np.ndarray, stress: np.ndarray, tangent: np.ndarray) -> None:
        """Name the points whose stress or tangent is not finite (a sum of large finite values may
        overflow alone)."""
        n = len(eps)
        finite = np.isfinite(stress).all(axis=1) & np.isfinite(tangent).all(axis=(1, 2))
        if not finite.all():
            first = int(np.flatnonzero(~finite)[0])
            raise NonFiniteError(
                f"constitutive model {self.path!r} returned NaN or inf stress/tangent at "
                f"{int((~finite).sum())} of {n} points (first: point {first}, strain {eps[first].tolist()}); "
                "its weights are not finite or the strain overflows the network's precision "
                f"({self.dtype}); check the model file and the macro solution"
            )

    def _warn_outside_training_range(self, eps: np.ndarray) -> None:
        """Warn once when a strain component lies further outside its training range than the
        range is wide (no warning for files that record no range)."""
        info = self.metadata.constitutive
        assert info is not None  # checked in __init__
        lower, upper = np.asarray(info.strain_lower), np.asarray(info.strain_upper)
        width = upper - lower
        if not np.any(width > 0.0) or (
            np.all(eps.min(axis=0) >= lower - width) and np.all(eps.max(axis=0) <= upper + width)
        ):
            return
        distance = np.maximum(lower - eps, eps - upper)  # positive outside the range
        far = distance > width
        if not far.any():
            return
        excess = np.where(far, distance / np.maximum(width, np.finfo(float).tiny), 0.0)
        point, k = np.unravel_index(int(np.argmax(excess)), excess.shape)
        ranges = ", ".join(f"[{a:.3g}, {b:.3g}]" for a, b in zip(lower, upper))
        warnings.warn(
            f"constitutive model {self.path!r} evaluated far outside the strains it was trained on: "
            f"strain component {k} reached {eps[point, k]:.3g}, trained on [{lower[k]:.3g}, {upper[k]:.3g}]; "
            f"{int(far.any(axis=1).sum())} of {len(eps)} points lie further outside a component's range than "
            f"the range is wide (ranges per component: {ranges}). The network extrapolates there: sample a "
            "wider strain range (`scalelink sample-micro --strain-range`) and retrain. Warned once per engine",
            RuntimeWarning,
            stacklevel=3,
        )
        self._range_warned = True

    @contextmanager
    def _torch_threads(self) -> Iterator[None]:
        """torch's thread count for one call (see the class docstring); the caller's is restored after.

        A worker thread keeps the count that was set when it first ran torch.
        """
        before = torch.get_num_threads()
        during = before if self.torch_threads is None else self.torch_threads
        if self._pool is None:
            during = min(before, during)  # without num_threads, only ever lowered
        if during == before:
            yield
            return
        torch.set_num_threads(during)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def close(self) -> None:
        """Stop the worker threads (also done when the engine is garbage-collected)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _stage(self, chunk: torch.Tensor) -> torch.Tensor:
        """``chunk`` on the model's device; on the CPU the numpy memory itself, no copy."""
        if self._host is None or self._input is None:
            return chunk
        k = chunk.shape[0]
        self._host[:k].copy_(chunk)
        self._input[:k].copy_(self._host[:k], non_blocking=True)
        return self._input[:k]
