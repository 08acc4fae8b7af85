"""Compressible Euler equations of the monatomic gas (gamma = 5/3) on the kinetic solver's cells.

Finite volumes: MUSCL reconstruction of (rho, u, p) with the van Leer limiter (first order
at a face where the reconstruction would give rho <= 0 or p <= 0), HLLC flux, SSP-RK2
(Heun) in time, dt = cfl*dx/max(|u| + c). U [nx, 3] = (rho, rho*u, E), p = rho*T.
:func:`exact_riemann` is Toro's exact Riemann solver for the tests and benchmarks.
"""

from __future__ import annotations

import time

import numpy as np

from . import fv

GAMMA = 5.0 / 3.0


def to_conserved(rho, u, T) -> np.ndarray:
    """U [..., 3] from rho, u, T [...]."""
    return np.stack([rho, rho * u, 0.5 * rho * u * u + 1.5 * rho * T], axis=-1)


def to_primitive(U) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rho, u, p) [...] from U [..., 3]."""
    rho = U[..., 0]
    u = U[..., 1] / rho
    return rho, u, (GAMMA - 1.0) * (U[..., 2] - 0.5 * U[..., 1] * u)


def hllc_flux(rl, ul, pl, rr, ur, pr) -> np.ndarray:
    """HLLC flux [nf, 3] between left and right states (rho, u, p) [nf]."""
    cl, cr = np.sqrt(GAMMA * pl / rl), np.sqrt(GAMMA * pr / rr)
    sl = np.minimum(ul - cl, ur - cr)
    sr = np.maximum(ul + cl, ur + cr)
    el = pl / (GAMMA - 1.0) + 0.5 * rl * ul * ul
    er = pr / (GAMMA - 1.0) + 0.5 * rr * ur * ur
    ml, mr = rl * (sl - ul), rr * (sr - ur)
    ss = (pr - pl + ul * ml - ur * mr) / (ml - mr)
    fl = np.stack([rl * ul, rl * ul * ul + pl, (el + pl) * ul], -1)
    fr = np.stack([rr * ur, rr * ur * ur + pr, (er + pr) * ur], -1)
    ul_ = np.stack([rl, rl * ul, el], -1)
    ur_ = np.stack([rr, rr * ur, er], -1)

    def star(r, u, p, e, s, m):
        k = m / (s - ss)
        return np.stack([k, k * ss, k * (e / r + (ss - u) * (ss + p / m))], -1)

    fsl = fl + sl[:, None] * (star(rl, ul, pl, el, sl, ml) - ul_)
    fsr = fr + sr[:, None] * (star(rr, ur, pr, er, sr, mr) - ur_)
    return np.where((sl >= 0)[:, None], fl, np.where((ss >= 0)[:, None], fsl,
                    np.where((sr > 0)[:, None], fsr, fr)))


def faces(U: np.ndarray, idx: np.ndarray):
    """MUSCL face states of U [nx, 3]: left and right (rho, u, p) at the nx + 1 faces."""
    nx = U.shape[0]
    W = np.stack(to_primitive(U[idx]), -1)          # [nx + 4, 3]
    s = fv.limited_slopes(W)                          # cells 1 .. nx + 2 of the padded array
    left = W[1:nx + 2] + 0.5 * s[0:nx + 1]
    right = W[2:nx + 3] - 0.5 * s[1:nx + 2]
    for face, first in ((left, W[1:nx + 2]), (right, W[2:nx + 3])):
        bad = (face[:, 0] <= 0) | (face[:, 2] <= 0)
        face[bad] = first[bad]
    return left, right


def euler_rhs(U: np.ndarray, idx: np.ndarray, dx: float) -> np.ndarray:
    """-dF/dx [nx, 3] of the Euler fluxes (HLLC)."""
    left, right = faces(U, idx)
    F = hllc_flux(*left.T, *right.T)
    return -(F[1:] - F[:-1]) / dx


def max_speed(U: np.ndarray) -> float:
    rho, u, p = to_primitive(U)
    return float(np.max(np.abs(u) + np.sqrt(GAMMA * p / rho)))


def check_positive(U: np.ndarray, t: float, solver: str) -> None:
    rho, u, p = to_primitive(U)
    bad = ~((rho > 0) & (p > 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise FloatingPointError(f"{solver}: rho = {rho[i]:.4g}, p = {p[i]:.4g} at cell {i}, t = {t:.4g}")


def ssp_rk2(U, rhs, dt):
    U1 = U + dt * rhs(U)
    return 0.5 * (U + U1 + dt * rhs(U1))


def prepare(x, rho, u, T, kn, t_end, bc):
    """Checked (dx, U [nx, 3], kn, ghost index, t_end) of a solver call."""
    dx = fv.check_cells(x)
    rho, u, T = fv.check_state(rho, u, T)
    if rho.size != len(x):
        raise ValueError(f"rho, u, T must have one value per cell of x ({len(x)}), got {rho.size}")
    kn = fv.check_kn(kn)
    t_end = float(fv.check_times(t_end)[-1])
    return dx, to_conserved(rho, u, T), kn, fv.ghost_index(len(x), bc), t_end


def result(x, U, steps, t0) -> dict:
    rho, u, p = to_primitive(U)
    return {"x": np.asarray(x, float), "rho": rho, "u": u, "T": p / rho, "steps": steps,
            "wall_s": time.perf_counter() - t0}


def euler_solve(x, rho, u, T, kn, t_end, bc: str = "periodic", *, cfl: float = 0.5) -> dict:
    """Euler solution at t_end from rho, u, T [nx] on cell centres x [nx] (kn is checked, unused).

    Returns {"x", "rho", "u", "T"} [nx], "steps", "wall_s".
    """
    return march(x, rho, u, T, kn, t_end, bc, cfl, "euler_solve")


def march(x, rho, u, T, kn, t_end, bc, cfl, name, after=None) -> dict:
    """The Euler time loop (MUSCL-HLLC, SSP-RK2, CFL step); ``after(U, kn, dt, dx, bc) -> U``
    runs after each Euler step (Navier-Stokes: the implicit viscous step)."""
    t0 = time.perf_counter()
    dx, U, kn, idx, t_end = prepare(x, rho, u, T, kn, t_end, bc)
    t, steps = 0.0, 0
    while t < t_end * (1 - 1e-14):
        dt = min(cfl * dx / max_speed(U), t_end - t)
        U = ssp_rk2(U, lambda V: euler_rhs(V, idx, dx), dt)
        if after is not None:
            U = after(U, kn, dt, dx, bc)
        t, steps = t + dt, steps + 1
        check_positive(U, t, name)
    return result(x, U, steps, t0)


def exact_riemann(left, right, x, t, x0: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact solution (rho, u, p) [n] at points x [n], time t > 0, of the Riemann problem
    left = (rho, u, p) for x < x0, right = (rho, u, p) for x > x0 (Toro, ch. 4), gamma = 5/3."""
    g = GAMMA
    rl, ul, pl = left
    rr, ur, pr = right
    cl, cr = np.sqrt(g * pl / rl), np.sqrt(g * pr / rr)

    def fk(p, r, pk, ck):
        if p > pk:   # shock
            a, b = 2 / ((g + 1) * r), (g - 1) / (g + 1) * pk
            q = np.sqrt(a / (p + b))
            return (p - pk) * q, q * (1 - 0.5 * (p - pk) / (p + b))
        e = (g - 1) / (2 * g)
        return 2 * ck / (g - 1) * ((p / pk) ** e - 1), (p / pk) ** (-(g + 1) / (2 * g)) / (r * ck)

    p = max(1e-8, 0.5 * (pl + pr))
    for _ in range(100):
        f1, d1 = fk(p, rl, pl, cl)
        f2, d2 = fk(p, rr, pr, cr)
        dp = (f1 + f2 + ur - ul) / (d1 + d2)
        p = max(1e-10, p - dp)
        if abs(dp) < 1e-14 * p:
            break
    us = 0.5 * (ul + ur) + 0.5 * (fk(p, rr, pr, cr)[0] - fk(p, rl, pl, cl)[0])
    s = (np.asarray(x, float) - x0) / t
    out = np.empty((3, s.size))
    for i, si in enumerate(s):
        out[:, i] = _sample(si, p, us, (rl, ul, pl, cl), (rr, ur, pr, cr), g)
    return out[0], out[1], out[2]


def _sample(s, ps, us, L, R, g):
    """Toro's sampling of the exact Riemann fan at x/t = s."""
    side = L if s <= us else R
    r, u, p, c = side
    sgn = 1.0 if side is L else -1.0   # mirror the right side onto the left formulas
    if ps > p:   # shock
        sh = u - sgn * c * np.sqrt((g + 1) / (2 * g) * ps / p + (g - 1) / (2 * g))
        if sgn * (s - sh) <= 0:
            return r, u, p
        rs = r * (ps / p + (g - 1) / (g + 1)) / ((g - 1) / (g + 1) * ps / p + 1)
        return rs, us, ps
    cs = c * (ps / p) ** ((g - 1) / (2 * g))
    head, tail = u - sgn * c, us - sgn * cs
    if sgn * (s - head) <= 0:
        return r, u, p
    if sgn * (s - tail) >= 0:
        return r * (ps / p) ** (1 / g), us, ps
    k = 2 / (g + 1) + sgn * (g - 1) / ((g + 1) * c) * (u - s)
    rf = r * k ** (2 / (g - 1))
    uf = 2 / (g + 1) * (sgn * c + (g - 1) / 2 * u + s)
    return rf, uf, p * k ** (2 * g / (g - 1))
