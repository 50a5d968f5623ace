"""Lattice dispersion of a 1D Lennard-Jones chain, a Gaussian-process surrogate of it, and the
finite-element dispersion the surrogate is used to correct.

The chain uses the potential of the 2D coupling (:class:`~scalelink.coupling.atomistic2d.LennardJones2D`,
LAMMPS ``lj/smooth/linear``) with atoms on a line and longitudinal motion only. Its dispersion is
the *data*: phonon frequencies ω(k) at the wavenumbers a periodic cell of ``N`` atoms allows,
from force constants measured by central finite differences of LAMMPS forces
(:func:`lammps_dispersion_samples`). A Gaussian process (:class:`GaussianProcess1D`, numpy only:
RBF kernel, hyperparameters maximising the log marginal likelihood) turns those samples into a
smooth ω(k) that the continuum queries. :func:`fit_mass_blend` then picks the blend of lumped and
consistent P1 mass whose discrete FE dispersion best matches the surrogate on the wavenumbers the
mesh supports (``k <= π/h``).

Units: metal (eV, Å, ps, g/mol). Frequencies are angular, rad/ps; wavenumbers 1/Å. Masses enter
the equations of motion as ``m · MVV2E`` (eV ps²/Å²), so accelerations come out in Å/ps².
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from scalelink.bridge.errors import ConfigError, DataError
from scalelink.bridge.units import MVV2E

from .lattice import LennardJones2D

__all__ = [
    "MVV2E",
    "Chain1D",
    "GaussianProcess1D",
    "fe_dispersion",
    "fit_mass_blend",
    "lammps_chain_forces",
    "lammps_dispersion_samples",
]


def _lj(potential: LennardJones2D, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain LJ energy, first and second derivative at ``r`` (Å)."""
    s6 = (potential.sigma / r) ** 6
    e = 4.0 * potential.epsilon * (s6 * s6 - s6)
    d1 = 4.0 * potential.epsilon * (-12.0 * s6 * s6 + 6.0 * s6) / r
    d2 = 4.0 * potential.epsilon * (156.0 * s6 * s6 - 42.0 * s6) / (r * r)
    return e, d1, d2


@dataclass(frozen=True)
class Chain1D:
    """A straight chain of atoms interacting through ``lj/smooth/linear``.

    The pair energy is ``E(r) = φ(r) − φ(rc) − (r − rc) φ'(rc)`` for ``r < rc`` (φ plain LJ), as in
    LAMMPS. :meth:`zero_stress` gives the spacing at which the infinite chain carries no force.

    Attributes:
        potential: the pair potential.
        spacing: atomic spacing a, Å.
    """

    potential: LennardJones2D
    spacing: float

    @classmethod
    def zero_stress(cls, potential: LennardJones2D) -> Chain1D:
        """The chain at the spacing where ``Σ_s s E'(s a) = 0`` (Brent's method in ``[0.9, 1.3] σ``)."""
        from scipy.optimize import brentq

        def tension(a: float) -> float:
            s = np.arange(1, int(potential.cutoff / (0.9 * potential.sigma)) + 1)
            return float(np.sum(s * cls(potential, a).pair(s * a)[1]))

        return cls(potential, float(brentq(tension, 0.9 * potential.sigma, 1.3 * potential.sigma, xtol=1e-14)))

    @property
    def shells(self) -> int:
        """Number of neighbour shells inside the cutoff."""
        return int(np.floor(self.potential.cutoff / self.spacing))

    @property
    def mass(self) -> float:
        """Atomic mass in eV ps²/Å²."""
        return self.potential.mass * MVV2E

    def pair(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pair energy (eV), its first (eV/Å) and second (eV/Å²) derivative at distances ``r`` ``(n,)``."""
        r = np.asarray(r, dtype=float)
        e, d1, d2 = _lj(self.potential, r)
        ec, d1c, _ = _lj(self.potential, np.array(self.potential.cutoff))
        inside = r < self.potential.cutoff
        energy = np.where(inside, e - ec - (r - self.potential.cutoff) * d1c, 0.0)
        return energy, np.where(inside, d1 - d1c, 0.0), np.where(inside, d2, 0.0)

    def bond_stiffness(self) -> np.ndarray:
        """Harmonic bond stiffness ``E''(s a)`` for shells ``s = 1..shells``, ``(shells,)`` eV/Å²."""
        return self.pair(self.spacing * np.arange(1, self.shells + 1))[2]

    def modulus(self) -> float:
        """Cauchy–Born 1D modulus ``a Σ_s s² E''(s a)`` (eV/Å: force per unit strain)."""
        s = np.arange(1, self.shells + 1)
        return float(self.spacing * np.sum(s * s * self.bond_stiffness()))

    def omega(self, k: np.ndarray) -> np.ndarray:
        """Exact harmonic dispersion ``ω(k) = √((2/m) Σ_s E''(s a)(1 − cos s k a))`` in rad/ps."""
        k = np.asarray(k, dtype=float)
        s = np.arange(1, self.shells + 1)
        w2 = 2.0 / self.mass * np.sum(self.bond_stiffness() * (1.0 - np.cos(np.multiply.outer(k, s) * self.spacing)),
                                      axis=-1)
        return np.sqrt(np.maximum(w2, 0.0))

    def group_velocity(self, k: np.ndarray) -> np.ndarray:
        """``dω/dk`` (Å/ps), by central differences of :meth:`omega`."""
        dk = 1e-6 / self.spacing
        return (self.omega(np.asarray(k) + dk) - self.omega(np.asarray(k) - dk)) / (2.0 * dk)

    def forces(self, x: np.ndarray, weights: list[np.ndarray] | None = None) -> tuple[np.ndarray, float]:
        """Forces ``(n,)`` (eV/Å) and energy (eV) of an open chain at positions ``x`` ``(n,)`` (sorted, Å).

        Args:
            x: atom positions.
            weights: optional bond weights, one ``(n − s,)`` array per shell ``s``, for blended energies.
        """
        f = np.zeros_like(x)
        energy = 0.0
        for s in range(1, self.shells + 1):
            e, d1, _ = self.pair(x[s:] - x[:-s])
            if weights is not None:
                e, d1 = e * weights[s - 1], d1 * weights[s - 1]
            energy += float(np.sum(e))
            f[:-s] += d1
            f[s:] -= d1
        return f, energy


def _chain_lammps(chain: Chain1D, num_atoms: int, comm: MPI.Comm) -> object:
    from lammps import lammps

    length = num_atoms * chain.spacing
    lmp = lammps(comm=comm, cmdargs=["-screen", "none", "-log", "none", "-nocite"])
    lmp.commands_string(
        "units metal\ndimension 2\nboundary p f p\natom_style atomic\natom_modify map array\n"
        f"region cell block 0 {length:.17g} -5 5 -0.5 0.5\ncreate_box 1 cell\n" + chain.potential.commands()
    )
    return lmp


def lammps_chain_forces(chain: Chain1D, displacement: np.ndarray, comm: MPI.Comm = MPI.COMM_SELF) -> np.ndarray:
    """LAMMPS forces ``(n,)`` (eV/Å, along x) on a periodic chain of ``n`` atoms displaced by ``displacement``.

    The reference for the numpy chain (:meth:`Chain1D.forces`): same potential, computed by LAMMPS.
    The cell is ``n a`` long and must exceed twice the cutoff.
    """
    n = len(displacement)
    if n * chain.spacing <= 2.0 * chain.potential.cutoff:
        raise ConfigError(
            f"a periodic chain of {n} atoms is {n * chain.spacing:.3f} Å long, not more than twice the cutoff "
            f"({chain.potential.cutoff} Å); use more atoms"
        )
    lmp = _chain_lammps(chain, n, comm)
    x = np.column_stack([np.arange(n) * chain.spacing + displacement, np.zeros(n), np.zeros(n)])
    lmp.create_atoms(n, np.arange(1, n + 1), np.ones(n, dtype=int), x.ravel())
    lmp.command("run 0")
    nlocal = lmp.extract_global("nlocal")
    ids = np.array(lmp.numpy.extract_atom("id")[:nlocal])
    f = np.array(lmp.numpy.extract_atom("f")[:nlocal, 0])
    lmp.close()
    out = np.zeros(n)
    out[ids - 1] = f
    return comm.allreduce(out)


def lammps_dispersion_samples(chain: Chain1D, num_atoms: int = 24, *, step: float = 1e-4,
                              comm: MPI.Comm = MPI.COMM_SELF) -> tuple[np.ndarray, np.ndarray]:
    """Phonon frequencies of the chain at the wavenumbers of a periodic cell of ``num_atoms`` atoms.

    Moves atom 0 by ``±step`` (Å) and reads the LAMMPS forces on all atoms: the force constants
    ``Φ_j = −∂F_j/∂u_0`` by central differences. ``ω²(k) = (1/m) Σ_j Φ_j cos(k x_j)`` at
    ``k = 2π n / (N a)``, ``n = 0..N/2``.

    Returns:
        ``(k (N/2 + 1,) in 1/Å, ω (N/2 + 1,) in rad/ps)``.
    """
    e = np.zeros(num_atoms)
    e[0] = step
    plus = lammps_chain_forces(chain, e, comm)
    minus = lammps_chain_forces(chain, -e, comm)
    phi = -(plus - minus) / (2.0 * step)
    j = np.arange(num_atoms)
    j = np.where(j > num_atoms // 2, j - num_atoms, j)  # nearest periodic image
    k = 2.0 * np.pi * np.arange(num_atoms // 2 + 1) / (num_atoms * chain.spacing)
    w2 = np.cos(np.multiply.outer(k, j * chain.spacing)) @ phi / chain.mass
    return k, np.sqrt(np.maximum(w2, 0.0))


class GaussianProcess1D:
    """Gaussian-process regression of a scalar function of one variable (numpy only).

    Kernel ``s² exp(−(x − x')² / (2 l²)) + σn² δ``; targets standardised; ``(s, l, σn)`` maximise
    the log marginal likelihood (L-BFGS-B over their logarithms, a few starting length scales).

    Attributes:
        amplitude, length_scale, noise: fitted hyperparameters (in standardised target units for
            ``amplitude`` and ``noise``, input units for ``length_scale``).
    """

    def __init__(self) -> None:
        self.amplitude = self.length_scale = self.noise = float("nan")
        self._x = self._y_raw = self._alpha = self._chol = np.zeros(0)
        self._mean, self._scale = 0.0, 1.0

    @staticmethod
    def _kernel(a: np.ndarray, b: np.ndarray, amplitude: float, length: float) -> np.ndarray:
        return amplitude**2 * np.exp(-0.5 * (np.subtract.outer(a, b) / length) ** 2)

    def _nll(self, theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
        amp, length, noise = np.exp(theta)
        kmat = self._kernel(x, x, amp, length) + (noise**2 + 1e-10) * np.eye(len(x))
        try:
            chol = np.linalg.cholesky(kmat)
        except np.linalg.LinAlgError:
            return 1e10
        alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, y))
        return float(0.5 * y @ alpha + np.sum(np.log(np.diag(chol))) + 0.5 * len(x) * np.log(2.0 * np.pi))

    def log_marginal_likelihood(self) -> float:
        """Log marginal likelihood of the standardised training targets at the fitted hyperparameters."""
        y = (self._y_raw - self._mean) / self._scale
        theta = np.log([self.amplitude, self.length_scale, self.noise])
        return -self._nll(theta, self._x, y)

    def fit(self, x: np.ndarray, y: np.ndarray) -> GaussianProcess1D:
        """Train on samples ``x`` ``(n,)``, ``y`` ``(n,)``; returns ``self``."""
        from scipy.optimize import minimize

        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if x.ndim != 1 or x.shape != y.shape or len(x) < 3 or not np.all(np.isfinite(y)):
            raise DataError(f"GaussianProcess1D.fit got x {x.shape}, y {y.shape}; expected two equal 1D arrays of "
                            "at least 3 finite samples")
        self._x, self._y_raw = x, y
        self._mean, self._scale = float(y.mean()), float(y.std()) or 1.0
        ys = (y - self._mean) / self._scale
        span = float(np.ptp(x)) or 1.0
        best = None
        for length in (0.1 * span, 0.3 * span, span):
            res = minimize(self._nll, np.log([1.0, length, 1e-3]), args=(x, ys), method="L-BFGS-B",
                           bounds=[(-5.0, 5.0), (np.log(1e-3 * span), np.log(10.0 * span)), (np.log(1e-8), 0.0)])
            if best is None or res.fun < best.fun:
                best = res
        self.amplitude, self.length_scale, self.noise = (float(v) for v in np.exp(best.x))
        kmat = self._kernel(x, x, self.amplitude, self.length_scale) + (self.noise**2 + 1e-10) * np.eye(len(x))
        self._chol = np.linalg.cholesky(kmat)
        self._alpha = np.linalg.solve(self._chol.T, np.linalg.solve(self._chol, ys))
        return self

    def predict(self, x: np.ndarray, *, return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Posterior mean ``(m,)`` at ``x`` ``(m,)`` (and standard deviation, noise excluded)."""
        if not np.isfinite(self.length_scale):
            raise ConfigError("GaussianProcess1D.predict called before fit; call fit(x, y) first")
        x = np.asarray(x, dtype=float)
        ks = self._kernel(x, self._x, self.amplitude, self.length_scale)
        mean = self._mean + self._scale * ks @ self._alpha
        if not return_std:
            return mean
        v = np.linalg.solve(self._chol, ks.T)
        var = np.maximum(self.amplitude**2 - np.sum(v * v, axis=0), 0.0)
        return mean, self._scale * np.sqrt(var)


def fe_dispersion(k: np.ndarray, element_size: float, wave_speed: float, mass_blend: float) -> np.ndarray:
    """Dispersion ω(k) (rad/ps) of uniform 1D P1 elements of size ``h`` with blended mass.

    Mass ``(1 − β) M_lumped + β M_consistent``: ``ω² = (c²/h²) 2(1 − cos kh) / (1 − β (1 − cos kh)/3)``.
    β = 0 is lumped (too soft), β = 1 consistent (too stiff).
    """
    q = 1.0 - np.cos(np.asarray(k, dtype=float) * element_size)
    return wave_speed / element_size * np.sqrt(2.0 * q / (1.0 - mass_blend * q / 3.0))


def fit_mass_blend(surrogate: GaussianProcess1D, element_size: float, wave_speed: float,
                   *, fraction: float = 0.9) -> float:
    """Mass blend β ∈ [0, 1] whose FE dispersion best matches the surrogate's ω(k).

    Least squares over 200 wavenumbers in ``(0, fraction · π/h]``, relative error (so long waves
    count as much as short ones). Only the surrogate is queried.
    """
    from scipy.optimize import minimize_scalar

    k = np.linspace(fraction * np.pi / element_size / 200, fraction * np.pi / element_size, 200)
    target = np.asarray(surrogate.predict(k))

    def misfit(beta: float) -> float:
        return float(np.sum((fe_dispersion(k, element_size, wave_speed, beta) / target - 1.0) ** 2))

    return float(minimize_scalar(misfit, bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-6}).x)
