"""Navier-Stokes equations of the BGK gas (Pr = 1) on the kinetic solver's cells.

    sigma = -(4/3) mu u_x,   q = -(5/2) mu T_x,   mu = Kn*T,

added to the Euler fluxes of :mod:`conlearn.kinetic.euler`. Each step is split (Lie):
the explicit Euler step (MUSCL-HLLC, SSP-RK2, dt = cfl*dx/max(|u| + c)), then a backward-Euler
viscous step with mu frozen at the intermediate state, so large Kn needs no viscous time-step
limit: momentum  rho (u' - u*)/dt = D(4/3 mu D u'),  then energy in conservative form
E' = E* + dt D(4/3 mu u' D u' + 5/2 mu D T'), linear in T' (tridiagonal, periodic corners).
Both conserve mass, momentum and energy to round-off on a periodic domain. Neumann boundaries
have no viscous flux through them.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_banded

from .euler import march, to_primitive


def face_coefficient(a: np.ndarray, bc: str) -> np.ndarray:
    """Face values [nx + 1] (faces 0 .. nx) of the cell values a [nx]; zero at Neumann walls."""
    af = np.empty(a.size + 1)
    af[1:-1] = 0.5 * (a[1:] + a[:-1])
    if bc == "periodic":
        af[0] = af[-1] = 0.5 * (a[0] + a[-1])
    else:
        af[0] = af[-1] = 0.0
    return af


def solve_implicit(d: np.ndarray, af: np.ndarray, y: np.ndarray, dx: float, bc: str) -> np.ndarray:
    """Solve (diag(d) - L) z = y [nx], (L z)_i = (af_{i+1}(z_{i+1} - z_i) - af_i (z_i - z_{i-1}))/dx^2.

    af: face coefficients [nx + 1]; periodic corners by Sherman-Morrison on a banded solve.
    """
    lo, hi = af[:-1] / dx**2, af[1:] / dx**2
    ab = np.zeros((3, d.size))
    ab[0, 1:] = -hi[:-1]
    ab[1] = d + lo + hi
    ab[2, :-1] = -lo[1:]
    if bc != "periodic":
        return solve_banded((1, 1), ab, y)
    alpha, beta = -hi[-1], -lo[0]        # A[n-1, 0], A[0, n-1]
    gamma = -ab[1, 0]
    ab[1, 0] -= gamma
    ab[1, -1] -= alpha * beta / gamma
    u = np.zeros_like(y)
    u[0], u[-1] = gamma, alpha
    yz = solve_banded((1, 1), ab, np.stack([y, u], -1))
    vy = yz[0, 0] + beta / gamma * yz[-1, 0]
    vz = yz[0, 1] + beta / gamma * yz[-1, 1]
    return yz[:, 0] - vy / (1.0 + vz) * yz[:, 1]


def viscous_step(U: np.ndarray, kn: float, dt: float, dx: float, bc: str) -> np.ndarray:
    """Backward-Euler viscous update of U [nx, 3] over dt (mu = Kn*T frozen)."""
    rho, u, p = to_primitive(U)
    T = p / rho
    mu = kn * T
    a = face_coefficient(4.0 / 3.0 * mu, bc)
    b = face_coefficient(2.5 * mu, bc)
    u_new = solve_implicit(rho / dt, a, rho * u / dt, dx, bc)
    uf = face_coefficient(u_new, bc)      # (zero at Neumann walls, where a is zero too)
    ux = np.empty(u.size + 1)
    ux[1:-1] = np.diff(u_new) / dx
    ux[0] = ux[-1] = (u_new[0] - u_new[-1]) / dx if bc == "periodic" else 0.0
    work = a * uf * ux
    rhs = U[:, 2] - 0.5 * rho * u_new**2 + dt * np.diff(work) / dx
    T_new = solve_implicit(1.5 * rho / dt, b, rhs / dt, dx, bc)
    return np.stack([rho, rho * u_new, 0.5 * rho * u_new**2 + 1.5 * rho * T_new], -1)


def ns_solve(x, rho, u, T, kn, t_end, bc: str = "periodic", *, cfl: float = 0.5) -> dict:
    """Navier-Stokes solution at t_end from rho, u, T [nx] on cell centres x [nx], mu = Kn*T.

    Returns {"x", "rho", "u", "T"} [nx], "steps", "wall_s".
    """
    return march(x, rho, u, T, kn, t_end, bc, cfl, "ns_solve", after=viscous_step)
