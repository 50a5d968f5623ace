"""Reference data for equation discovery: viscous Burgers' equation solved spectrally.

``u_t + u u_x = ν u_xx`` on a periodic interval, Fourier pseudo-spectral in space (2/3-rule
dealiasing of the product) and an adaptive eighth-order Runge–Kutta method in time. The set-up
of Rudy et al. (Sci. Adv. 3, e1602614, 2017) is the default: ``ν = 0.1``, ``x ∈ [−8, 8)``,
``u(x, 0) = exp(−(x + 2)²)``, 101 snapshots on ``t ∈ [0, 10]``. The solution is computed on a
finer grid than the one returned, so that the returned samples carry no resolution error.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

from scalelink.bridge.errors import ConfigError

__all__ = ["burgers_snapshots"]


def burgers_snapshots(
    *,
    viscosity: float = 0.1,
    length: float = 16.0,
    points: int = 256,
    times: np.ndarray | None = None,
    resolution: int = 2,
    tolerance: float = 1e-10,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Snapshots of viscous Burgers' equation from ``u(x, 0) = exp(−(x + 2)²)``.

    Args:
        viscosity: ``ν`` (length² / time).
        length: period ``L``; the grid is ``x ∈ [−L/2, L/2)``.
        points: grid points returned per snapshot.
        times: snapshot times ``(n_t,)``; default 101 times on ``[0, 10]``.
        resolution: the solver uses ``resolution × points`` Fourier modes.
        tolerance: relative and absolute tolerance of the time integrator.

    Returns:
        ``x (points,)``, ``t (n_t,)`` and ``u (n_t, points)``.
    """
    if not viscosity > 0 or not length > 0 or points < 8 or resolution < 1:
        raise ConfigError(
            f"Burgers data need viscosity > 0, length > 0, points >= 8 and resolution >= 1; got "
            f"viscosity={viscosity!r}, length={length!r}, points={points!r}, "
            f"resolution={resolution!r}"
        )
    t = np.linspace(0.0, 10.0, 101) if times is None else np.asarray(times, dtype=float)
    if t.ndim != 1 or t.size < 2 or np.any(np.diff(t) <= 0):
        raise ConfigError(f"times must be an increasing 1D array of >= 2 values, got {t!r}")
    n = points * resolution
    x_fine = -0.5 * length + length * np.arange(n) / n
    k = 2.0 * np.pi * np.fft.rfftfreq(n, d=length / n)
    keep = np.abs(k) < (2.0 / 3.0) * np.abs(k).max()

    def rhs(_: float, u_hat: np.ndarray) -> np.ndarray:
        u = np.fft.irfft(u_hat, n)
        flux_hat = np.fft.rfft(0.5 * u * u) * keep
        return -1j * k * flux_hat - viscosity * k * k * u_hat

    u0_hat = np.fft.rfft(np.exp(-((x_fine + 2.0) ** 2)))
    solution = solve_ivp(rhs, (t[0], t[-1]), u0_hat.astype(complex), method="DOP853", t_eval=t,
                         rtol=tolerance, atol=tolerance)
    if not solution.success:
        raise ConfigError(f"the Burgers solver failed: {solution.message}; loosen the tolerance")
    u = np.fft.irfft(solution.y.T, n, axis=1)[:, ::resolution]
    return x_fine[::resolution], t, u
