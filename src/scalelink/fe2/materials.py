"""Batched pointwise micro models: J2 plasticity and a stiffening nonlinear-elastic law.

Both are plain numpy on ``(n, m)`` Mandel batches (see :mod:`scalelink.fe2.tensors`) and
satisfy the :class:`~scalelink.fe2.micro.MicroModel` contract, so they serve as constitutive
laws on their own and as references for data-driven micro models.

Both compute in 3D. A plane-strain batch (``strain_size == 3``) is embedded with
``ε_zz = ε_yz = ε_xz = 0`` and the in-plane rows/columns ``(xx, yy, √2·xy)`` of the 3D stress
and tangent are returned; that block *is* the consistent plane-strain tangent because the
out-of-plane strains are fixed, while the plastic strain and the stress along ``zz`` still evolve
(:attr:`J2Plasticity.out_of_plane_stress` holds the last trial's ``σ_zz``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from scalelink.bridge.errors import ConfigError

from .micro import MicroModel, check_strain_batch
from .tensors import PLANE_STRAIN_INDICES, validate_strain_size

__all__ = ["J2Plasticity", "StiffeningElastic"]

# Mandel identity and deviatoric projector in 3D.
_ONE = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
_VOLUMETRIC = np.outer(_ONE, _ONE) / 3.0
_DEVIATORIC = np.eye(6) - _VOLUMETRIC
_IN_PLANE = np.asarray(PLANE_STRAIN_INDICES)
_YIELD_TOLERANCE = 1e-10  # relative to the current flow stress


def _moduli(
    young: float | None, poisson: float | None, bulk: float | None, shear: float | None
) -> tuple[float, float]:
    if young is not None and poisson is not None and bulk is None and shear is None:
        if young <= 0.0 or not -1.0 < poisson < 0.5:
            raise ConfigError(
                f"elasticity needs young > 0 and -1 < poisson < 0.5, got young={young!r}, "
                f"poisson={poisson!r}"
            )
        return young / (3.0 * (1.0 - 2.0 * poisson)), young / (2.0 * (1.0 + poisson))
    if bulk is not None and shear is not None and young is None and poisson is None:
        if bulk <= 0.0 or shear <= 0.0:
            raise ConfigError(f"bulk and shear must be positive, got {bulk!r} and {shear!r}")
        return float(bulk), float(shear)
    raise ConfigError(
        "give exactly one pair of elastic moduli: (young, poisson) or (bulk, shear); got "
        f"young={young!r}, poisson={poisson!r}, bulk={bulk!r}, shear={shear!r}"
    )


def _to_3d(strain: np.ndarray) -> np.ndarray:
    """Mandel 6-vectors ``(n, 6)`` from a 3D or plane-strain batch."""
    if strain.shape[1] == 6:
        return strain
    out = np.zeros((strain.shape[0], 6))
    out[:, _IN_PLANE] = strain
    return out


def _from_3d(
    stress: np.ndarray, tangent: np.ndarray, strain_size: int
) -> tuple[np.ndarray, np.ndarray]:
    if strain_size == 6:
        return stress, tangent
    return (
        np.ascontiguousarray(stress[:, _IN_PLANE]),
        np.ascontiguousarray(tangent[:, _IN_PLANE[:, None], _IN_PLANE[None, :]]),
    )


class J2Plasticity(MicroModel):
    """Small-strain von Mises plasticity with linear isotropic hardening (radial return).

    Yield function ``f = q − (σ_y + H·p)``, ``q = √(3/2)·|s|``, associative flow. The return
    mapping is exact for linear hardening and the returned tangent is the consistent
    (algorithmic) one::

        C = K 1⊗1 + 2Gθ P_dev − 2G θ̄ n⊗n
        θ = 1 − 3GΔp/q_tr,   θ̄ = 3G/(3G+H) − 3GΔp/q_tr,   n = s_tr/|s_tr|

    Per-point state: plastic strain ``ε_p`` (3D Mandel, ``(n, 6)``, also in plane strain) and
    equivalent plastic strain ``p`` ``(n,)``. :meth:`evaluate` is a trial from the committed
    state; :meth:`commit` accepts the last trial.

    Args:
        strain_size: 3 (plane strain) or 6 (3D).
        yield_stress: initial yield stress ``σ_y`` (stress unit).
        hardening: linear isotropic hardening modulus ``H ≥ 0`` (stress unit).
        young, poisson, bulk, shear: one pair of elastic moduli (stress unit).
        stress_unit: unit of all moduli.

    Attributes:
        out_of_plane_stress: ``σ_zz`` ``(n,)`` of the last trial (useful in plane strain).
    """

    has_state = True

    def __init__(
        self,
        *,
        strain_size: int,
        yield_stress: float,
        hardening: float = 0.0,
        young: float | None = None,
        poisson: float | None = None,
        bulk: float | None = None,
        shear: float | None = None,
        stress_unit: str = "GPa",
    ) -> None:
        self.strain_size = validate_strain_size(strain_size)
        self.bulk, self.shear = _moduli(young, poisson, bulk, shear)
        if not yield_stress > 0.0:
            raise ConfigError(f"yield_stress must be > 0, got {yield_stress!r}")
        if not hardening >= 0.0:
            raise ConfigError(f"hardening must be >= 0 (no softening), got {hardening!r}")
        self.yield_stress = float(yield_stress)
        self.hardening = float(hardening)
        self.stress_unit = stress_unit
        self._plastic_strain: np.ndarray | None = None
        self._equivalent: np.ndarray | None = None
        self._trial: tuple[np.ndarray, np.ndarray] | None = None
        self.out_of_plane_stress: np.ndarray | None = None

    def setup(self, num_points: int) -> None:
        """Start ``num_points`` points from a virgin state (no plastic strain)."""
        if int(num_points) < 0:
            raise ConfigError(f"num_points must be >= 0, got {num_points!r}")
        self._plastic_strain = np.zeros((int(num_points), 6))
        self._equivalent = np.zeros(int(num_points))
        self._trial = None

    @property
    def plastic_strain(self) -> np.ndarray:
        """Committed plastic strain, 3D Mandel ``(n, 6)`` (copy)."""
        return self._state()[0].copy()

    @property
    def equivalent_plastic_strain(self) -> np.ndarray:
        """Committed equivalent plastic strain ``p`` ``(n,)`` (copy)."""
        return self._state()[1].copy()

    def _state(self) -> tuple[np.ndarray, np.ndarray]:
        if self._plastic_strain is None or self._equivalent is None:
            raise ConfigError(
                "J2Plasticity has no state yet: call setup(num_points) before evaluate/commit"
            )
        return self._plastic_strain, self._equivalent

    def evaluate(
        self, strain: np.ndarray, *, time_step: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        eps_p, p = self._state()
        s = check_strain_batch(strain, self.strain_size)
        if s.shape[0] != p.shape[0]:
            raise ConfigError(
                f"strain batch has {s.shape[0]} points but setup() allocated {p.shape[0]}; "
                "call setup(num_points) with the batch size"
            )
        k, g, h = self.bulk, self.shear, self.hardening
        elastic = _to_3d(s) - eps_p
        dev_trial = 2.0 * g * (elastic @ _DEVIATORIC)
        norm_trial = np.linalg.norm(dev_trial, axis=1)
        q_trial = np.sqrt(1.5) * norm_trial
        flow_stress = self.yield_stress + h * p
        overstress = q_trial - flow_stress
        # Points the last commit left on the yield surface count as yielding (elastoplastic
        # tangent, Δp = 0) whatever the round-off: the next load step's first Newton update then
        # assumes continued loading, and the Newton path does not depend on the partition.
        plastic = overstress > -_YIELD_TOLERANCE * flow_stress
        dp = np.where(plastic, np.maximum(overstress, 0.0), 0.0) / (3.0 * g + h)
        # The flow direction only matters where plastic, where |s_tr| ≈ q/√1.5 ≥ σ_y > 0.
        normal = dev_trial / np.where(plastic, norm_trial, 1.0)[:, None]
        flow = (np.sqrt(1.5) * dp)[:, None] * normal
        volumetric = (k * (elastic @ _ONE))[:, None] * _ONE
        stress = volumetric + dev_trial - 2.0 * g * flow
        ratio = np.where(plastic, 3.0 * g * dp / np.where(plastic, q_trial, 1.0), 0.0)
        theta = 1.0 - ratio
        theta_bar = np.where(plastic, 3.0 * g / (3.0 * g + h) - ratio, 0.0)
        tangent = (
            3.0 * k * _VOLUMETRIC
            + (2.0 * g * theta)[:, None, None] * _DEVIATORIC
            - (2.0 * g * theta_bar)[:, None, None] * np.einsum("ni,nj->nij", normal, normal)
        )
        self._trial = (eps_p + flow, p + dp)
        self.out_of_plane_stress = stress[:, 2].copy()
        return _from_3d(stress, tangent, self.strain_size)

    def commit(self) -> None:
        """Accept the plastic state of the last :meth:`evaluate`."""
        self._state()
        if self._trial is None:
            raise ConfigError("commit() before any evaluate(): there is no trial state to accept")
        self._plastic_strain, self._equivalent = self._trial


class StiffeningElastic(MicroModel):
    """Nonlinear (hyper)elastic small-strain law stiffening in volume and in shear.

    With ``e_v = tr ε`` and ``e = dev ε`` (Mandel, ``|e|`` the tensor norm)::

        W = K/2·e_v² + K·β_v/4·e_v⁴ + G·|e|² + G·β_d/2·|e|⁴
        σ = K(e_v + β_v e_v³)·1 + 2G(1 + β_d|e|²)·e
        C = K(1 + 3β_v e_v²)·1⊗1 + 2G(1 + β_d|e|²)·P_dev + 4Gβ_d·e⊗e

    ``C`` is symmetric positive definite for ``β_v, β_d ≥ 0``. No state.

    Args:
        strain_size: 3 (plane strain) or 6 (3D).
        bulk, shear: small-strain moduli ``K``, ``G`` (stress unit).
        volumetric_stiffening, deviatoric_stiffening: ``β_v``, ``β_d ≥ 0`` (1/strain²).
        stress_unit: unit of the moduli.
    """

    def __init__(
        self,
        *,
        strain_size: int,
        bulk: float,
        shear: float,
        volumetric_stiffening: float = 0.0,
        deviatoric_stiffening: float = 0.0,
        stress_unit: str = "GPa",
    ) -> None:
        self.strain_size = validate_strain_size(strain_size)
        self.bulk, self.shear = _moduli(None, None, bulk, shear)
        if volumetric_stiffening < 0.0 or deviatoric_stiffening < 0.0:
            raise ConfigError(
                "stiffening coefficients must be >= 0 (convex energy), got "
                f"volumetric_stiffening={volumetric_stiffening!r}, "
                f"deviatoric_stiffening={deviatoric_stiffening!r}"
            )
        self.volumetric_stiffening = float(volumetric_stiffening)
        self.deviatoric_stiffening = float(deviatoric_stiffening)
        self.stress_unit = stress_unit

    def _invariants(self, strain: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        e3 = _to_3d(check_strain_batch(strain, self.strain_size))
        return e3 @ _ONE, e3 @ _DEVIATORIC, np.einsum("ni,ij,nj->n", e3, _DEVIATORIC, e3)

    def energy(self, strain: npt.ArrayLike) -> np.ndarray:
        """Strain energy density ``W`` ``(n,)`` (stress unit) of strains ``(n, m)``."""
        ev, _, dev2 = self._invariants(strain)
        k, g = self.bulk, self.shear
        bv, bd = self.volumetric_stiffening, self.deviatoric_stiffening
        return 0.5 * k * ev**2 + 0.25 * k * bv * ev**4 + g * dev2 + 0.5 * g * bd * dev2**2

    def evaluate(
        self, strain: np.ndarray, *, time_step: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        ev, dev, dev2 = self._invariants(strain)
        k, g = self.bulk, self.shear
        bv, bd = self.volumetric_stiffening, self.deviatoric_stiffening
        shear_factor = 2.0 * g * (1.0 + bd * dev2)
        stress = (k * (ev + bv * ev**3))[:, None] * _ONE + shear_factor[:, None] * dev
        tangent = (
            (3.0 * k * (1.0 + 3.0 * bv * ev**2))[:, None, None] * _VOLUMETRIC
            + shear_factor[:, None, None] * _DEVIATORIC
            + 4.0 * g * bd * np.einsum("ni,nj->nij", dev, dev)
        )
        return _from_3d(stress, tangent, self.strain_size)
