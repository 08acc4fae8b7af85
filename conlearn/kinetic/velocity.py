"""Discrete x-velocities and the Chu-reduced Maxwellian of a monatomic gas.

Units are non-dimensional: gas constant R = 1, pressure p = rho*T, energy per volume
E = 0.5*rho*u^2 + 1.5*rho*T (three velocity dimensions, gamma = 5/3).

The 3-D distribution f(x, v) is carried as the Chu pair on the x-velocity nodes:
    g(x, v_x) = int f dv_y dv_z,   h(x, v_x) = int 0.5*(v_y^2 + v_z^2) f dv_y dv_z,
whose equilibrium is g_M = rho/sqrt(2 pi T) exp(-(v - u)^2/(2T)), h_M = T*g_M. Moments:
    rho = sum w g,  rho*u = sum w v g,  E = sum w (0.5 v^2 g + h).
Arrays of distributions have the velocity axis last: g, h [..., nv].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# vmax >= max|u| + SPREAD_MIN*sqrt(T) is required of a grid (input check); grids made by
# grid_for_state use SPREAD (Gaussian tail below 3e-11 of the peak beyond the last node).
SPREAD_MIN = 5.0
SPREAD = 7.0
# trapezoid moments of a Gaussian of width s on spacing dv err by ~exp(-2 pi^2 s^2/dv^2):
# dv <= 0.75 s keeps them below 1e-15; dv > 1.2 s (error > 1e-6) is refused.
DV_PER_SIGMA = 0.75
DV_PER_SIGMA_MAX = 1.2


@dataclass(frozen=True)
class VelocityGrid:
    """Uniform, symmetric x-velocity nodes (no node at 0 for even nv).

    v: [nv] nodes v_j = -vmax + (j + 0.5)*dv;  w: [nv] quadrature weights (all dv).
    """

    v: np.ndarray
    w: np.ndarray

    @property
    def nv(self) -> int:
        return int(self.v.size)

    @property
    def dv(self) -> float:
        return float(self.w[0])

    @property
    def vmax(self) -> float:
        return float(self.v[-1] + 0.5 * self.w[-1])

    def to_dict(self) -> dict:
        return {"nv": self.nv, "vmax": self.vmax}


def velocity_grid(nv: int = 64, vmax: float = 8.0) -> VelocityGrid:
    """nv uniform cells on [-vmax, vmax] (midpoint nodes, equal weights)."""
    if nv < 4 or nv % 2:
        raise ValueError(f"velocity grid: nv must be even and >= 4, got {nv}")
    if not vmax > 0:
        raise ValueError(f"velocity grid: vmax must be > 0, got {vmax}")
    dv = 2.0 * vmax / nv
    v = -vmax + dv * (np.arange(nv) + 0.5)
    v.setflags(write=False)
    w = np.full(nv, dv)
    w.setflags(write=False)
    return VelocityGrid(v=v, w=w)


def grid_for_state(rho, u, T, *, dv_max: float = 0.2, nv_min: int = 32) -> VelocityGrid:
    """A grid wide enough for the states (rho, u, T) [...] and fine enough for their Maxwellians.

    vmax = max|u| + 7 sqrt(max T + max u^2) (the u^2 allows for heating where streams collide);
    dv = min(dv_max, 0.75 sqrt(min T)), so discrete Maxwellian moments are exact to round-off.
    dv_max bounds the ray effect of free streaming (a staircase of step dv*t in x).
    """
    del rho
    u, T = np.asarray(u, float), np.asarray(T, float)
    umax = np.max(np.abs(u))
    vmax = umax + SPREAD * np.sqrt(np.max(T) + umax**2)
    dv = min(dv_max, DV_PER_SIGMA * np.sqrt(np.min(T)))
    nv = max(nv_min, 2 * int(np.ceil(vmax / dv)))
    return velocity_grid(nv, vmax)


def check_grid(grid: VelocityGrid, u, T, where: str = "state", spread: float = SPREAD_MIN,
               spacing: bool = True) -> None:
    """Raise ValueError when grid cannot carry the states u, T [n] (names the worst cell).

    Needs vmax >= |u| + spread sqrt(T) and (if spacing) dv <= 1.2 sqrt(T) in every cell.
    """
    u, T = np.atleast_1d(np.asarray(u, float)), np.atleast_1d(np.asarray(T, float))
    need = np.abs(u) + spread * np.sqrt(T)
    i = int(np.argmax(need))
    if need[i] > grid.vmax:
        raise ValueError(
            f"{where}: velocity grid too narrow at cell {i}: vmax = {grid.vmax:.4g} < |u| + "
            f"{spread:g} sqrt(T) = {need[i]:.4g} (u = {u[i]:.4g}, T = {T[i]:.4g}); widen vmax")
    j = int(np.argmin(T))
    if spacing and grid.dv > DV_PER_SIGMA_MAX * np.sqrt(T[j]):
        raise ValueError(
            f"{where}: velocity grid too coarse at cell {j}: dv = {grid.dv:.4g} > "
            f"{DV_PER_SIGMA_MAX:g} sqrt(T) = {DV_PER_SIGMA_MAX * np.sqrt(T[j]):.4g} (T = {T[j]:.4g}); raise nv")


def maxwellian(rho, u, T, grid: VelocityGrid) -> tuple[np.ndarray, np.ndarray]:
    """Chu-reduced Maxwellian (g_M, h_M) [..., nv] of rho, u, T [...] (pointwise, not corrected)."""
    rho, u, T = (np.asarray(a, float)[..., None] for a in (rho, u, T))
    g = rho / np.sqrt(2.0 * np.pi * T) * np.exp(-((grid.v - u) ** 2) / (2.0 * T))
    return g, T * g


def conserved(g, h, grid: VelocityGrid) -> np.ndarray:
    """Conserved variables U [..., 3] = (rho, rho*u, E) of distributions g, h [..., nv]."""
    w, v = grid.w, grid.v
    return np.stack([g @ w, g @ (w * v), g @ (0.5 * w * v * v) + h @ w], axis=-1)


def primitive(U) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rho, u, T) from U [..., 3] = (rho, rho*u, E)."""
    U = np.asarray(U, float)
    rho = U[..., 0]
    u = U[..., 1] / rho
    T = (U[..., 2] - 0.5 * U[..., 1] * u) / (1.5 * rho)
    return rho, u, T


def macroscopic(g, h, grid: VelocityGrid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rho, u, T) [...] of distributions g, h [..., nv]."""
    return primitive(conserved(g, h, grid))


def conservative_maxwellian(U, grid: VelocityGrid) -> tuple[np.ndarray, np.ndarray]:
    """Discrete Maxwellian (g, h) [..., nv] whose discrete moments equal U [..., 3] to round-off.

    g = g_M (c0 + c1 xi), xi = (v - u)/sqrt(T), with c0, c1 fixing mass and momentum; h = c2 T g
    with c2 fixing energy. On a grid that resolves the Maxwellian, c0 = c2 = 1, c1 = 0 to ~1e-15.
    """
    U = np.asarray(U, float)
    rho, u, T = primitive(U)
    g, _ = maxwellian(rho, u, T, grid)
    xi = (grid.v - u[..., None]) / np.sqrt(T)[..., None]
    gw = g * grid.w
    a0, a1, a2 = gw.sum(-1), (gw * xi).sum(-1), (gw * xi * xi).sum(-1)
    det = a0 * a2 - a1 * a1
    c0, c1 = rho * a2 / det, -rho * a1 / det
    g = g * (c0[..., None] + c1[..., None] * xi)
    c2 = (U[..., 2] - g @ (0.5 * grid.w * grid.v**2)) / (rho * T)
    return g, (c2 * T)[..., None] * g
