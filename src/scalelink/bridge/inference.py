"""Batched inference of constitutive models: Mandel strains in, stress and tangent out.

:class:`ConstitutiveEngine` loads a model file of kind ``constitutive`` (through
:mod:`scalelink.bridge.model_file`) onto a CPU or CUDA device and evaluates numpy float64
strains in chunks, so that memory stays bounded for any number of quadrature points. The
device-side input buffer is kept between calls; the returned arrays are new every call (a
caller such as a Taylor test keeps results of several calls).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
import torch

from .errors import ConfigError, ModelFileError
from .model_file import ModelMetadata, load_model

__all__ = ["ConstitutiveEngine", "select_device"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def select_device(device: str | torch.device) -> torch.device:
    """The torch device for ``"cpu"``, ``"cuda"``, ``"cuda:K"`` or ``"auto"``.

    ``"auto"`` is ``cuda`` when torch sees a GPU and ``cpu`` otherwise.

    Raises:
        ConfigError: a CUDA device is asked for but torch sees none (or fewer), or the name
            is not a device.
    """
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a device name; use 'cpu', 'cuda', 'cuda:K' or 'auto'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {name!r} was requested but torch sees no CUDA GPU (torch {torch.__version__}, "
                f"CUDA build {torch.version.cuda}); use device='cpu' or 'auto', or run on a GPU node"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"device {name!r} was requested but torch sees only {count} GPU(s)")
    elif dev.type != "cpu":
        raise ConfigError(f"device {name!r} is not supported; use 'cpu', 'cuda', 'cuda:K' or 'auto'")
    return dev


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
            each running torch on one thread (the engine sets torch's intra-op threads to 1,
            a process-wide setting). Independent chunks scale without the synchronisation of
            a thread team inside every small matrix product, which stalls when cores are
            shared. ``None`` evaluates chunks one after another with torch's own threading.
            Under MPI with several ranks per node give each rank its share of the cores.

    Attributes:
        metadata: the file's metadata.
        strain_size: ``m``, 3 or 6.
        stress_unit: unit of stress and tangent.
        device: the torch device the model runs on.

    Raises:
        ModelFileError: the file is missing, unreadable, or not of kind ``constitutive``.
        ConfigError: an unavailable device, an unknown dtype or a bad chunk size.
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
        if num_threads is not None and self.device.type == "cpu":
            torch.set_num_threads(1)
            if num_threads > 1:
                self._pool = ThreadPoolExecutor(num_threads, thread_name_prefix="scalelink-inference")
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
        """
        eps = np.ascontiguousarray(strain, dtype=np.float64)
        m = self.strain_size
        if eps.ndim != 2 or eps.shape[1] != m:
            raise ConfigError(
                f"strain batch has shape {eps.shape}, expected (num_points, {m}) Mandel vectors"
            )
        if not np.all(np.isfinite(eps)):
            raise ConfigError("strain batch contains NaN or inf; check the macro solution")
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
        if self._pool is not None and len(starts) > 1:
            list(self._pool.map(run, starts))
        else:
            for start in starts:
                run(start)
        return stress, tangent

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
