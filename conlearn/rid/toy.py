"""The toy RiD engine: overdamped Langevin dynamics in (φ, ψ, z) with an exactly known FES.

    U(φ, ψ, z) = V(φ, ψ) + ½ k z² + c z cos φ                          (kJ/mol)
    V(φ, ψ)    = 6 cos φ + 10 cos 2ψ + 3 sin(φ + ψ) + 3 cos(φ − ψ)

Integrating out z gives the exact free energy of the CVs (φ, ψ):

    A(φ, ψ) = V(φ, ψ) − c² cos² φ / (2k)   (+ const)

Two basins, (−3.0, 1.5) and (2.9, −1.5) rad, 5.9 kJ/mol apart, joined over a 20.5 kJ/mol
saddle (k = 50, c = 20); 63 % of the torus lies below 10 kT at 300 K.

Dynamics: dx = −β D ∇U dt + sqrt(2 D) dW with per-coordinate diffusion D, integrated by the
Leimkuhler–Matthews scheme (x' = x − β D ∇U dt + sqrt(D dt / 2)(ξ_n + ξ_{n+1})), whose
sampled distribution is exact for harmonic potentials and second-order accurate otherwise.
Restrained MD runs ``n_replicas`` independent copies in lockstep (vectorised numpy) and
reports their frame-by-frame mean, so its frames form one time series with the statistics
of a single long run. Biased MD tabulates the bias gradient once per call on a periodic grid
and interpolates it bilinearly. Units: φ, ψ rad; z arbitrary length; time ps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .cv import CVSpec, wrap
from .engine import Bias, MDResult, kT

V_COEF = (6.0, 10.0, 3.0, 3.0)  # a cos φ + b cos 2ψ + e sin(φ+ψ) + f cos(φ−ψ)


def toy_V(phi, psi):
    """V(φ, ψ) kJ/mol (numpy, broadcasting)."""
    a, b, e, f = V_COEF
    return a * np.cos(phi) + b * np.cos(2 * psi) + e * np.sin(phi + psi) + f * np.cos(phi - psi)


def toy_fes(phi, psi, k: float = 50.0, c: float = 20.0):
    """The exact free energy A(φ, ψ) = V − c² cos² φ / (2k), kJ/mol (not shifted)."""
    return toy_V(phi, psi) - c * c * np.cos(phi) ** 2 / (2 * k)


def _grad_U(x: np.ndarray, k: float, c: float) -> np.ndarray:
    """∇U [..., 3] at x [..., 3] = (φ, ψ, z)."""
    a, b, e, f = V_COEF
    phi, psi, z = x[..., 0], x[..., 1], x[..., 2]
    cp, sm = np.cos(phi + psi), np.sin(phi - psi)
    g = np.empty_like(x)
    g[..., 0] = -a * np.sin(phi) + e * cp - f * sm - c * z * np.sin(phi)
    g[..., 1] = -2 * b * np.sin(2 * psi) + e * cp + f * sm
    g[..., 2] = k * z + c * np.cos(phi)
    return g


class GridBias:
    """A 2-D periodic bias gradient tabulated on an n × n grid, interpolated bilinearly."""

    def __init__(self, bias: Bias, n: int):
        self.n, self.h = n, 2 * math.pi / n
        g = -math.pi + self.h * np.arange(n)
        pts = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
        _, grad = bias.energy_and_grad(pts)
        self.table = np.asarray(grad, dtype=float).reshape(n, n, 2)

    def grad(self, s: np.ndarray) -> np.ndarray:
        """dV/ds [..., 2] at s [..., 2] (rad)."""
        u = (s + math.pi) / self.h
        i0 = np.floor(u).astype(int)
        t = u - i0
        i0 %= self.n
        i1 = (i0 + 1) % self.n
        T = self.table
        w0, w1 = (1 - t[..., 0])[..., None], t[..., 0][..., None]
        v0, v1 = (1 - t[..., 1])[..., None], t[..., 1][..., None]
        return (w0 * (v0 * T[i0[..., 0], i0[..., 1]] + v1 * T[i0[..., 0], i1[..., 1]])
                + w1 * (v0 * T[i1[..., 0], i0[..., 1]] + v1 * T[i1[..., 0], i1[..., 1]]))


@dataclass(frozen=True)
class ToyLangevinEngine:
    """Overdamped Langevin in (φ, ψ, z); the CVs are (φ, ψ). Plain settings, picklable.

    temperature:   K.
    dt:            time step of biased (exploration) MD, ps.
    dt_restrained: time step of restrained MD, ps (the restraint is stiff: keep β κ D dt ≲ 0.3).
    k, c:          the z well (kJ/mol/unit²) and the z–φ coupling (kJ/mol/unit).
    diffusion:     D of (φ, ψ, z) (rad²/ps, rad²/ps, unit²/ps).
    n_replicas:    independent copies per restrained MD run (steps counted over all of them).
    grid:          points per CV of the tabulated bias.
    """

    temperature: float = 300.0
    dt: float = 0.002
    dt_restrained: float = 0.0005
    k: float = 50.0
    c: float = 20.0
    diffusion: tuple[float, float, float] = (1.0, 1.0, 10.0)
    n_replicas: int = 32
    grid: int = 96
    cvs: tuple[CVSpec, ...] = (CVSpec("phi", "dihedral", (0, 1, 2, 3)), CVSpec("psi", "dihedral", (1, 2, 3, 4)))

    def __post_init__(self) -> None:
        object.__setattr__(self, "diffusion", tuple(float(v) for v in self.diffusion))
        if len(self.diffusion) != 3 or min(self.diffusion) <= 0:
            raise ValueError(f"toy engine: diffusion needs 3 positive values, got {list(self.diffusion)}")
        for name in ("temperature", "dt", "dt_restrained", "k"):
            if getattr(self, name) <= 0:
                raise ValueError(f"toy engine: {name} must be > 0, got {getattr(self, name)}")
        if self.n_replicas < 1 or self.grid < 8:
            raise ValueError("toy engine: n_replicas >= 1 and grid >= 8 needed")
        if [c.name for c in self.cvs] != ["phi", "psi"]:
            raise ValueError("toy engine: its CVs are fixed (phi, psi); give no cvs section")

    n_atoms = 5  # the CVs' nominal atoms (the toy has no atoms; its CVs are its coordinates φ, ψ)

    def exact_fes(self, s: np.ndarray) -> np.ndarray:
        """The exact A(s) [n] kJ/mol at s [n, 2] (unshifted)."""
        s = np.asarray(s, dtype=float)
        return toy_fes(s[:, 0], s[:, 1], self.k, self.c)

    def initial_state(self, seed: int) -> np.ndarray:
        """Near the global minimum (−3.0, 1.5), z at its conditional mean, small random offset."""
        rng = np.random.default_rng(seed)
        x = np.array([-3.0, 1.5, 0.0]) + rng.normal(0.0, 0.1, 3)
        x[2] = -self.c * math.cos(x[0]) / self.k
        x[:2] = wrap(x[:2], (True, True))
        return x

    def _run(self, x: np.ndarray, extra_grad, n_steps: int, frame_every: int, dt: float, rng):
        """LM integration of x [r, 3]; extra_grad(x) -> [r, 3] added to ∇U. Returns frames [f, r, 3]."""
        beta, D = 1.0 / kT(self.temperature), np.asarray(self.diffusion)
        drift, amp = beta * D * dt, np.sqrt(D * dt / 2)
        xi = rng.standard_normal(x.shape)
        frames = []
        for step in range(1, n_steps + 1):
            g = _grad_U(x, self.k, self.c)
            if extra_grad is not None:
                g += extra_grad(x)
            xi_new = rng.standard_normal(x.shape)
            x = x - drift * g + amp * (xi + xi_new)
            xi = xi_new
            if step % frame_every == 0:  # U is periodic in φ, ψ: wrapped only where recorded
                frames.append(x.copy())
        frames = np.array(frames).reshape(-1, *x.shape)
        frames[..., :2] = wrap(frames[..., :2], (True, True))
        x[:, :2] = wrap(x[:, :2], (True, True))
        return frames, x

    def biased_md(self, bias: Bias | None, n_steps: int, frame_every: int, seed: int,
                  start: np.ndarray | None) -> MDResult:
        """One walker under ``bias`` (tabulated on the grid); frames every ``frame_every`` steps."""
        rng = np.random.default_rng(seed)
        x = np.asarray(self.initial_state(seed) if start is None else start, dtype=float).reshape(1, 3)
        table = GridBias(bias, self.grid) if bias is not None else None

        def extra(y):
            out = np.zeros_like(y)
            out[:, :2] = table.grad(y[:, :2])
            return out

        frames, last = self._run(x, extra if table is not None else None, n_steps, frame_every, self.dt, rng)
        frames = frames[:, 0]
        return MDResult(cv=frames[:, :2].copy(), last=last[0], n_steps=n_steps, frames=frames)

    def restrained_md(self, center: np.ndarray, kappa: np.ndarray, n_steps: int, frame_every: int,
                      seed: int, start: np.ndarray | None) -> MDResult:
        """``n_replicas`` copies from ``start`` under 0.5 Σ κ_j wrap(s_j − center_j)², each
        ``n_steps`` long; frame t is the replicas' mean of wrap(s − center) + center."""
        rng = np.random.default_rng(seed)
        center, kappa = np.asarray(center, dtype=float), np.asarray(kappa, dtype=float)
        x0 = np.asarray(self.initial_state(seed) if start is None else start, dtype=float)
        x = np.repeat(x0.reshape(1, 3), self.n_replicas, axis=0)

        def extra(y):
            out = np.zeros_like(y)
            out[:, :2] = kappa * wrap(y[:, :2] - center, (True, True))
            return out

        frames, last = self._run(x, extra, n_steps, frame_every, self.dt_restrained, rng)
        dev = wrap(frames[:, :, :2] - center, (True, True)).mean(axis=1)
        return MDResult(cv=wrap(center + dev, (True, True)), last=last[0],
                        n_steps=n_steps * self.n_replicas)
