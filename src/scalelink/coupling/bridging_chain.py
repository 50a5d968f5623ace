"""Dynamic atomistic–continuum coupling of a 1D chain: bridging-domain handshake, fine-scale
absorption, and the reflection of wave packets.

Why 1D: the reflected energy fraction R(k) of a wave packet is the acceptance measure, and it is
only cleanly measurable when the incident, reflected and transmitted packets are separable in
space and time. A longitudinal wave in a straight chain is that case. The atoms interact through
the same ``lj/smooth/linear`` potential as the 2D coupling; their forces come from numpy
(:meth:`~scalelink.coupling.dispersion.Chain1D.forces`, checked against LAMMPS forces in the tests),
because driving LAMMPS per time step from Python for thousands of short steps is slower than the
whole numpy step. The continuum is a line of P1 elements assembled here in numpy (its matrices are
checked against dolfinx in the tests). Everything runs in one process.

Method (bridging domain, Xiao & Belytschko style, with a projection constraint):

* Atoms live on ``x < X_b``, elements on ``x > X_a``; in the overlap ``[X_a, X_b]`` (``W`` wide,
  whole elements) the continuum weight α(x) rises linearly from 0 to 1. Bond energies are
  weighted by ``1 − α`` at the bond midpoint, element energies and masses by α, atom masses by
  ``1 − α``. Atoms just right of ``X_b`` that weighted bonds still reach follow the FE
  interpolation (no mass of their own). The small static forces that linear blending leaves at the
  kinks of α ("ghost forces") are removed by a constant opposite load, so the reference state is
  an equilibrium; the system stays Hamiltonian.
* Constraint, for every node I of the overlap: ``Σ_i N_I(x_i) (u_i − u_h(x_i)) = 0``. It ties the
  part of the atomic motion the mesh can represent to the FE field and leaves the rest (wavelengths
  below ``2h``) free — a strong, atom-by-atom constraint would reflect those waves instead.
* Fine-scale damping: a force ``−(I − Q) Γ (I − Q) v`` on the overlap atoms, ``Q`` the least-squares
  projection onto the FE interpolation, ``Γ_i = η m (1 − α_i) α_i²`` (a graded absorbing layer, rate
  η α²). It does no work on motion the mesh carries, so it absorbs only what the mesh cannot.
* Time integration: velocity Verlet with the linear constraint enforced on velocities after each
  half kick (RATTLE; exact for linear constraints), mass matrix = weighted atom masses ⊕ blended FE
  mass ``(1 − β) M_lumped + β M_consistent``. β comes from the dispersion surrogate
  (:func:`~scalelink.coupling.dispersion.fit_mass_blend`) or is 0 (lumped) without it.

Units: metal (eV, Å, ps); masses in eV ps²/Å², forces eV/Å.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from scalelink.bridge.errors import ConfigError

from .dispersion import Chain1D

__all__ = ["BridgingChain", "WaveConfig", "WaveResult", "hat_functions"]


@dataclass(frozen=True)
class WaveConfig:
    """Set-up of one wave-packet run.

    Attributes:
        wavenumber: central wavenumber k of the packet, 1/Å (``0 < k a < π``).
        element_spacings: element size h in lattice spacings (the mesh supports ``k <= π/h``).
        overlap_elements: overlap width W in elements.
        packet_width: Gaussian envelope standard deviation, in lattice spacings.
        amplitude: displacement amplitude, Å (small: the measure is linear).
        fine_damping: peak rate η (1/ps) of the fine-scale damping; 0 switches it off.
        mass_blend: β in ``(1 − β) M_lumped + β M_consistent``.
        time_step_fraction: time step as a fraction of ``2/ω_max`` of the coupled system.
        projection_constraint: tie only the FE projection of the atomic motion (default); ``False``
            ties every overlap atom to the FE interpolation (the classic strong constraint).
    """

    wavenumber: float
    element_spacings: int = 4
    overlap_elements: int = 8
    packet_width: float = 20.0
    amplitude: float = 1e-3
    fine_damping: float = 10.0
    mass_blend: float = 0.0
    time_step_fraction: float = 0.2
    projection_constraint: bool = True


@dataclass
class WaveResult:
    """Energy balance of one run, all fractions of the incident packet energy.

    Attributes:
        wavenumber: central k, 1/Å.
        reflected: energy back in the purely atomistic region at the end (R).
        transmitted: energy in the purely continuum region at the end.
        absorbed: energy removed by the fine-scale damping.
        energy_error: max over the run of |E(t) − E(0) + dissipated(t)|, a fraction of E(0).
        time_step: ps; steps: number of steps; seconds: wall time.
    """

    wavenumber: float
    reflected: float
    transmitted: float
    absorbed: float
    energy_error: float
    time_step: float
    steps: int
    seconds: float


def hat_functions(points: np.ndarray, nodes: np.ndarray) -> sp.csr_matrix:
    """P1 shape functions ``(len(points), len(nodes))`` of the (uniform or not) 1D mesh ``nodes`` at ``points``."""
    e = np.clip(np.searchsorted(nodes, points, side="right") - 1, 0, len(nodes) - 2)
    t = (points - nodes[e]) / (nodes[e + 1] - nodes[e])
    inside = (points >= nodes[0]) & (points <= nodes[-1])
    rows = np.repeat(np.arange(len(points))[inside], 2)
    cols = np.column_stack([e, e + 1])[inside].ravel()
    vals = np.column_stack([1.0 - t, t])[inside].ravel()
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(points), len(nodes)))


class BridgingChain:
    """The coupled atoms + elements system for one wave packet (see the module docstring).

    Args:
        chain: the lattice (potential and spacing).
        config: the run's set-up.
    """

    def __init__(self, chain: Chain1D, config: WaveConfig) -> None:
        a, c = chain.spacing, config
        if not 0.0 < c.wavenumber * a < np.pi or c.element_spacings < 1 or c.overlap_elements < 1:
            raise ConfigError(
                f"WaveConfig wavenumber*a={c.wavenumber * a:.3f}, element_spacings={c.element_spacings}, "
                f"overlap_elements={c.overlap_elements}; expected 0 < k a < π and positive integers"
            )
        if c.fine_damping < 0.0 or not 0.0 <= c.mass_blend <= 1.0 or not 0.0 < c.time_step_fraction <= 1.0:
            raise ConfigError(
                f"WaveConfig fine_damping={c.fine_damping}, mass_blend={c.mass_blend}, time_step_fraction="
                f"{c.time_step_fraction}; expected fine_damping >= 0, 0 <= mass_blend <= 1, 0 < time_step_fraction <= 1"
            )
        self.chain, self.config = chain, c
        s_max = chain.shells
        h, width, sigma = c.element_spacings * a, c.overlap_elements * c.element_spacings * a, c.packet_width * a
        speed = np.sqrt(chain.modulus() * a / chain.mass)
        vg = float(chain.group_velocity(c.wavenumber))
        gap = 5.0 * sigma + 0.5 * width  # packet centre to overlap centre
        # room on the left so that fast (aliased) reflections do not come back to the overlap in time
        x0 = max(6.0 * sigma, gap * (speed / (2.0 * vg) - 1.0) + 2.0 * sigma)
        self.end_time = 2.0 * gap / vg
        self.x_a = (np.floor((x0 + gap - 0.5 * width) / a) + 0.5) * a
        self.x_b = self.x_a + width
        self.packet_centre, self._width = x0, width

        n_real = int(np.ceil(self.x_b / a))
        n_pad = s_max + 1
        x_all = a * np.arange(-s_max, n_real + n_pad)
        self.x_atoms = x_all
        self.real = slice(s_max, s_max + n_real)
        length = width + 0.5 * speed * self.end_time + 4.0 * sigma
        self.nodes = self.x_a + h * np.arange(int(np.ceil(length / h)) + 1)
        n_nodes = len(self.nodes) - 1  # the last node is held at 0
        self.n_real, self.n_nodes = n_real, n_nodes
        n = n_real + n_nodes

        # kinematics: full atom displacements = T q, q = [real atoms, free nodes]
        pad = hat_functions(x_all[s_max + n_real:], self.nodes)[:, :n_nodes]
        real_rows = sp.hstack([sp.identity(n_real), sp.csr_matrix((n_real, n_nodes))])
        pad_rows = sp.hstack([sp.csr_matrix((n_pad, n_real)), pad])
        self.T = sp.vstack([sp.csr_matrix((s_max, n)), real_rows, pad_rows]).tocsr()
        self.weights = [1.0 - self.alpha(0.5 * (x_all[s:] + x_all[:-s])) for s in range(1, s_max + 1)]

        # continuum: α-weighted element stiffness and (blended) mass; α is linear inside each element
        al, ar = self.alpha(self.nodes[:-1]), self.alpha(self.nodes[1:])
        rho, modulus = chain.mass / a, chain.modulus()
        k_e = modulus / h * 0.5 * (al + ar)
        lump = np.column_stack([2 * al + ar, al + 2 * ar]) * rho * h / 6.0
        cons = np.column_stack([3 * al + ar, al + ar, al + 3 * ar]) * rho * h / 12.0  # entries 00, 01, 11
        m00 = (1 - c.mass_blend) * lump[:, 0] + c.mass_blend * cons[:, 0]
        m11 = (1 - c.mass_blend) * lump[:, 1] + c.mass_blend * cons[:, 2]
        m01 = c.mass_blend * cons[:, 1]
        self._element = (k_e, m00, m01, m11)
        self.K_fe = self._assemble(k_e, -k_e, k_e)
        self.M_fe = self._assemble(m00, m01, m11)

        m_atoms = chain.mass * (1.0 - self.alpha(x_all[self.real]))
        self.M = sp.block_diag([sp.diags(m_atoms), self.M_fe]).tocsc()
        self._mass_lu = splu(self.M)

        # projection constraint on the overlap nodes
        self.overlap_atoms = np.flatnonzero((x_all[self.real] > self.x_a) & (x_all[self.real] < self.x_b))
        n_ov_nodes = c.overlap_elements + 1
        shape = hat_functions(x_all[self.real][self.overlap_atoms], self.nodes)[:, :n_ov_nodes].toarray()
        select = np.zeros((len(self.overlap_atoms), n))
        select[np.arange(len(self.overlap_atoms)), self.overlap_atoms] = 1.0
        select[:, n_real:n_real + n_ov_nodes] -= shape
        self.G = shape.T @ select if c.projection_constraint else select
        self._minv_gt = self._mass_lu.solve(np.ascontiguousarray(self.G.T))
        self._s_inv = np.linalg.inv(self.G @ self._minv_gt)

        # fine-scale damping on the overlap atoms
        fine = np.eye(len(shape)) - shape @ np.linalg.solve(shape.T @ shape, shape.T)
        alpha_ov = self.alpha(x_all[self.real][self.overlap_atoms])
        gamma = c.fine_damping * chain.mass * (1.0 - alpha_ov) * alpha_ov**2
        self.damping = fine @ (gamma[:, None] * fine)

        self._f0 = np.zeros(n)
        self._f0 = self.forces(np.zeros(n))[0]  # the blending's ghost forces at the reference state
        self.time_step = c.time_step_fraction * 2.0 / self.max_frequency()

    def alpha(self, x: np.ndarray) -> np.ndarray:
        """Continuum energy weight α ``(n,)`` at positions ``x`` ``(n,)`` (Å): 0 before ``X_a``, 1 after ``X_b``."""
        return np.clip((np.asarray(x, dtype=float) - self.x_a) / self._width, 0.0, 1.0)

    def _assemble(self, d0: np.ndarray, off: np.ndarray, d1: np.ndarray) -> sp.csc_matrix:
        """Tridiagonal matrix of the free nodes from per-element 2×2 blocks [[d0, off], [off, d1]]."""
        ne, n = len(d0), self.n_nodes
        e = np.arange(ne)
        rows = np.concatenate([e, e, e + 1, e + 1])
        cols = np.concatenate([e, e + 1, e, e + 1])
        vals = np.concatenate([d0, off, off, d1])
        keep = (rows < n) & (cols < n)
        return sp.csc_matrix((vals[keep], (rows[keep], cols[keep])), shape=(n, n))

    def max_frequency(self) -> float:
        """Largest angular frequency (rad/ps) of the linearised system without constraints (an upper bound)."""
        from scipy.linalg import eigh

        stiff = self.chain.bond_stiffness()
        n_all = len(self.x_atoms)
        k_all = sp.csr_matrix((n_all, n_all))
        for s, w in enumerate(self.weights, start=1):
            d = np.zeros(n_all)
            d[:-s] += w * stiff[s - 1]
            d[s:] += w * stiff[s - 1]
            k_all = k_all + sp.diags(d) - sp.diags(w * stiff[s - 1], s) - sp.diags(w * stiff[s - 1], -s)
        k_q = (self.T.T @ k_all @ self.T).toarray()
        k_q[self.n_real:, self.n_real:] += self.K_fe.toarray()
        top = eigh(k_q, self.M.toarray(), eigvals_only=True, subset_by_index=[len(k_q) - 1, len(k_q) - 1])
        return float(np.sqrt(top[0]))

    def forces(self, q: np.ndarray) -> tuple[np.ndarray, float]:
        """Generalised forces ``(n,)`` (eV/Å) and potential energy (eV) at displacements ``q`` ``(n,)``."""
        f_all, energy = self.chain.forces(self.x_atoms + self.T @ q, self.weights)
        u = q[self.n_real:]
        f = self.T.T @ f_all - self._f0
        f[self.n_real:] -= self.K_fe @ u
        return f, energy + float(self._f0 @ q) + 0.5 * float(u @ (self.K_fe @ u))

    def _project(self, v: np.ndarray) -> np.ndarray:
        return v - self._minv_gt @ (self._s_inv @ (self.G @ v))

    def _damping_force(self, v: np.ndarray) -> np.ndarray:
        f = np.zeros_like(v)
        f[self.overlap_atoms] = -self.damping @ v[self.overlap_atoms]
        return f

    def initial_state(self) -> tuple[np.ndarray, np.ndarray]:
        """A right-moving Gaussian packet ``(q, v)`` built on the lattice's own dispersion ω(k)."""
        c, x = self.config, self.x_atoms[self.real]
        k = c.wavenumber
        omega, vg = float(self.chain.omega(k)), float(self.chain.group_velocity(k))
        xi = x - self.packet_centre
        sigma = c.packet_width * self.chain.spacing
        env = c.amplitude * np.exp(-0.5 * (xi / sigma) ** 2)
        q = np.zeros(self.n_real + self.n_nodes)
        v = np.zeros_like(q)
        q[:self.n_real] = env * np.cos(k * xi)
        # u = env(x − v_g t) cos(k x − ω t): ∂u/∂t = ω env sin + v_g (x/σ²) env cos
        v[:self.n_real] = omega * env * np.sin(k * xi) + vg * xi / sigma**2 * env * np.cos(k * xi)
        q -= self._minv_gt @ (self._s_inv @ (self.G @ q))
        return q, self._project(v)

    def region_energies(self, q: np.ndarray, v: np.ndarray) -> tuple[float, float]:
        """Harmonic energy (eV) of the purely atomistic region ``x < X_a − rc`` and of the elements beyond ``X_b``."""
        s_max, a = self.chain.shells, self.chain.spacing
        u = self.T @ q
        per_atom = np.zeros(len(u))
        for s, c_s in enumerate(self.chain.bond_stiffness(), start=1):
            e_b = 0.25 * c_s * (u[s:] - u[:-s]) ** 2
            per_atom[:-s] += e_b
            per_atom[s:] += e_b
        vr = v[:self.n_real]
        per_atom[self.real] += 0.5 * self.chain.mass * vr**2
        atomistic = float(np.sum(per_atom[self.x_atoms < self.x_a - s_max * a]))
        k_e, m00, m01, m11 = self._element
        un = np.append(q[self.n_real:], 0.0)
        vn = np.append(v[self.n_real:], 0.0)
        du = un[1:] - un[:-1]
        ke = 0.5 * (m00 * vn[:-1] ** 2 + 2 * m01 * vn[:-1] * vn[1:] + m11 * vn[1:] ** 2)
        outside = self.nodes[:-1] >= self.x_b - 1e-9
        return atomistic, float(np.sum((0.5 * k_e * du**2 + ke)[outside]))

    def run(self) -> WaveResult:
        """Send the packet into the handshake and return the energy balance at ``end_time``."""
        start = time.perf_counter()
        dt = self.time_step
        steps = int(np.ceil(self.end_time / dt))
        q, v = self.initial_state()
        f, pot = self.forces(q)
        incident = self.region_energies(q, v)[0]

        def total(v: np.ndarray, pot: float) -> float:
            return 0.5 * float(v @ (self.M @ v)) + pot

        e0, dissipated, error = total(v, pot), 0.0, 0.0
        damped = self.config.fine_damping > 0.0
        for _ in range(steps):
            fd = self._damping_force(v) if damped else 0.0
            v = self._project(v + 0.5 * dt * self._mass_lu.solve(f + fd))
            if damped:
                dissipated -= dt * float(v @ self._damping_force(v))
            q = q + dt * v
            f, pot = self.forces(q)
            fd = self._damping_force(v) if damped else 0.0
            v = self._project(v + 0.5 * dt * self._mass_lu.solve(f + fd))
            error = max(error, abs(total(v, pot) - e0 + dissipated))
        atomistic, continuum = self.region_energies(q, v)
        absorbed = e0 - total(v, pot)
        return WaveResult(self.config.wavenumber, atomistic / incident, continuum / incident, absorbed / incident,
                          error / incident, dt, steps, time.perf_counter() - start)
