"""Material databases of data-driven mechanics: sets of material states ``(ε_i, σ_i)``.

Every state is a pair of Mandel vectors (the convention of :mod:`scalelink.fe2.tensors`):

* 2D plane strain, ``strain_size == 3``: ``[xx, yy, √2·xy]``
* 3D, ``strain_size == 6``: ``[xx, yy, zz, √2·yz, √2·xz, √2·xy]``

so that ``ε·σ`` is the energy-density product and a stiffness is a symmetric matrix. Files in
Voigt notation (engineering shear strain ``γ = 2ε_xy``, plain shear stress) are converted on
reading with ``convention="voigt"``.

Sources: a file of measurements (``.npz`` with ``strain`` and ``stress`` arrays, or ``.csv`` with
``m`` strain then ``m`` stress columns), the samples ``scalelink sample-micro`` writes (a ``.npz``
that also carries ``tangent``, read the same way), or a closed-form law sampled on a grid.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from scalelink.bridge.errors import DataError
from scalelink.bridge.samples import ConstitutiveSamples

__all__ = [
    "MaterialDatabase",
    "database_from_samples",
    "linear_elastic_database",
    "load_database",
]

_SQRT2 = float(np.sqrt(2.0))
_CONVENTIONS = ("mandel", "voigt")
# First shear component of a Mandel/Voigt vector, by strain size.
_FIRST_SHEAR = {3: 2, 6: 3}


def _first_bad(array: np.ndarray) -> str:
    row, col = np.argwhere(~np.isfinite(array))[0]
    return f"state {row} (counting from 0), component {col}: {float(array[row, col])}"


@dataclasses.dataclass(frozen=True)
class MaterialDatabase:
    """A set of material states: Mandel strains and stresses.

    Args:
        strain: ``(N, m)`` Mandel strains, ``m`` 3 (2D plane strain) or 6 (3D).
        stress: ``(N, m)`` Mandel stresses (any stress unit; the loads of the problem that uses
            the database must be in the same unit).
        source: where the states come from (a file name, a law), used in messages.

    Raises:
        DataError: no states, shapes that disagree, a strain size other than 3 or 6, NaN or inf.
    """

    strain: np.ndarray
    stress: np.ndarray
    source: str = "database"

    def __post_init__(self) -> None:
        strain = np.asarray(self.strain, dtype=np.float64)
        stress = np.asarray(self.stress, dtype=np.float64)
        where = self.source
        if strain.ndim != 2 or stress.ndim != 2:
            raise DataError(
                f"{where}: strain {strain.shape} and stress {stress.shape} must be 2D arrays "
                "(N states, m Mandel components)"
            )
        if strain.shape[0] == 0:
            raise DataError(f"{where}: the database is empty (0 states); give at least one state")
        if strain.shape[1] not in (3, 6):
            raise DataError(
                f"{where}: strain has {strain.shape[1]} components, expected 3 (2D plane strain "
                "[xx, yy, √2·xy]) or 6 (3D [xx, yy, zz, √2·yz, √2·xz, √2·xy])"
            )
        if stress.shape != strain.shape:
            raise DataError(
                f"{where}: stress {stress.shape} does not match strain {strain.shape}; every "
                "state needs as many stress as strain components"
            )
        for name, array in (("strain", strain), ("stress", stress)):
            if not np.isfinite(array).all():
                raise DataError(f"{where}: {name} is not finite at {_first_bad(array)}; remove "
                                "or repair that state")
        object.__setattr__(self, "strain", strain)
        object.__setattr__(self, "stress", stress)

    @property
    def strain_size(self) -> int:
        """``m``: 3 (2D plane strain) or 6 (3D)."""
        return int(self.strain.shape[1])

    def __len__(self) -> int:
        return int(self.strain.shape[0])

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the states as ``.npz`` (arrays ``strain`` and ``stress``, Mandel)."""
        np.savez(os.fspath(path), strain=self.strain, stress=self.stress)


def _to_mandel(strain: np.ndarray, stress: np.ndarray, convention: str) -> tuple[np.ndarray, np.ndarray]:
    if convention not in _CONVENTIONS:
        raise DataError(f"convention {convention!r} is not one of {_CONVENTIONS}")
    if convention == "mandel" or strain.ndim != 2 or strain.shape[1] not in _FIRST_SHEAR:
        return strain, stress
    k = _FIRST_SHEAR[strain.shape[1]]
    strain, stress = strain.copy(), stress.copy()
    strain[:, k:] /= _SQRT2  # γ = 2ε  ->  √2·ε
    if stress.shape == strain.shape:
        stress[:, k:] *= _SQRT2
    return strain, stress


def _read_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as raw:
            missing = [k for k in ("strain", "stress") if k not in raw.files]
            if missing:
                raise DataError(
                    f"{path!r} lacks the arrays {missing} (it has {sorted(raw.files)}); a "
                    "database file needs 'strain' (N, m) and 'stress' (N, m)"
                )
            return np.asarray(raw["strain"], dtype=np.float64), np.asarray(raw["stress"], dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path!r} is not a readable .npz file ({exc})") from None


def _read_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
    with open(path, encoding="utf-8") as f:
        first = f.readline()
    try:
        [float(v) for v in first.replace(",", " ").split()]
        skip = 0
    except ValueError:
        skip = 1  # a header line
    try:
        with warnings.catch_warnings():  # an empty file is reported below, as an error
            warnings.simplefilter("ignore", UserWarning)
            table = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"{path!r}: cannot read the numbers ({exc}); expected comma-separated "
                        "rows of m strain then m stress values") from None
    if table.size == 0:
        raise DataError(f"{path!r}: the database is empty (no data rows)")
    if table.shape[1] not in (6, 12):
        raise DataError(
            f"{path!r} has {table.shape[1]} columns, expected 6 (2D: 3 strain + 3 stress) or 12 "
            "(3D: 6 strain + 6 stress)"
        )
    m = table.shape[1] // 2
    return table[:, :m], table[:, m:]


def load_database(path: str | os.PathLike[str], *, convention: str = "mandel") -> MaterialDatabase:
    """Read a database file.

    Args:
        path: ``.npz`` with arrays ``strain (N, m)`` and ``stress (N, m)`` (the files of
            :meth:`MaterialDatabase.save` and of ``scalelink sample-micro``, whose extra arrays
            are ignored) or ``.csv`` with ``m`` strain then ``m`` stress columns per row and an
            optional header line.
        convention: ``"mandel"`` (shear components ``√2·ε_xy``, ``√2·σ_xy``) or ``"voigt"``
            (``γ_xy = 2ε_xy`` and plain ``σ_xy``, converted to Mandel).

    Raises:
        DataError: missing or unreadable file, wrong shapes or sizes, NaN or inf (the message
            names the file, the row and the value).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"database file {path!r} does not exist")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npz":
        strain, stress = _read_npz(path)
    elif suffix == ".csv":
        strain, stress = _read_csv(path)
    else:
        raise DataError(f"database file {path!r} must end in .npz or .csv, not {suffix!r}")
    strain, stress = _to_mandel(strain, stress, convention)
    return MaterialDatabase(strain, stress, source=f"database file {path!r}")


def database_from_samples(samples: ConstitutiveSamples) -> MaterialDatabase:
    """The states of micro-model samples (:func:`scalelink.fe2.sample_micro_model`)."""
    return MaterialDatabase(samples.strain, samples.stress,
                            source=f"{len(samples.strain)} micro-model samples ({samples.stress_unit})")


def linear_elastic_database(
    stiffness: npt.ArrayLike,
    *,
    spacing: float,
    strain_range: float | Sequence[Sequence[float]],
    noise: float = 0.0,
    seed: int = 0,
) -> MaterialDatabase:
    """States ``(ε_i, C ε_i)`` of a linear law on a regular grid of Mandel strains.

    Args:
        stiffness: Mandel stiffness ``(m, m)`` of the law (e.g.
            :func:`scalelink.fe2.isotropic_stiffness`).
        spacing: grid spacing ``h`` of every strain component.
        strain_range: amplitude ``a`` (every component on ``[−a, a]``) or bounds ``(2, m)``.
            The grid holds ``∏ (span_k / h + 1)`` states.
        noise: standard deviation of Gaussian noise added to every stress component, relative
            to the largest stress magnitude of the grid (0: exact data).
        seed: random seed of the noise.

    Returns:
        A database of ``(ε_i, σ_i)``.
    """
    c = np.asarray(stiffness, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] not in (3, 6):
        raise DataError(f"stiffness has shape {c.shape}, expected (3, 3) or (6, 6)")
    m = c.shape[0]
    if not spacing > 0.0:
        raise DataError(f"spacing must be positive, got {spacing!r}")
    if not noise >= 0.0:
        raise DataError(f"noise must be >= 0, got {noise!r}")
    r = np.asarray(strain_range, dtype=np.float64)
    bounds = np.stack([-np.full(m, r), np.full(m, r)]) if r.ndim == 0 else r
    if bounds.shape != (2, m) or not np.all(bounds[1] >= bounds[0]):
        raise DataError(f"strain_range {r.tolist()!r} is neither an amplitude nor bounds (2, {m})")
    counts = np.floor((bounds[1] - bounds[0]) / spacing + 1e-9).astype(int) + 1
    total = int(np.prod(counts.astype(float)))
    if total > 50_000_000:
        raise DataError(f"spacing {spacing!r} makes a grid of {total:,} states; take a larger spacing")
    axes = [lo + spacing * np.arange(n) for lo, n in zip(bounds[0], counts)]
    strain = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, m)
    stress = strain @ c.T
    if noise > 0.0:
        scale = noise * float(np.abs(stress).max(initial=0.0))
        stress = stress + np.random.default_rng(seed).normal(0.0, scale, stress.shape)
    return MaterialDatabase(strain, stress, source=f"linear law on a grid of spacing {spacing:g}")
