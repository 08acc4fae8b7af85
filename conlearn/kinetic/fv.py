"""Finite-volume pieces shared by the kinetic, Euler and Navier-Stokes solvers.

Cells are the uniform centres x_i = (i + 0.5)/nx of [0, 1]; the cell axis of every array
is ``axis`` (default 0). Two ghost cells each side carry the boundary condition:
"periodic" (wrap) or "neumann" (zero gradient: copies of the edge cell).
"""

from __future__ import annotations

import numpy as np

BOUNDARIES = ("periodic", "neumann")
N_GHOST = 2


def check_cells(x, where: str = "x") -> float:
    """Cell width of the cell centres x [nx]; ValueError unless uniform centres of [0, 1]."""
    x = np.asarray(x, float)
    if x.ndim != 1 or x.size < 4:
        raise ValueError(f"{where}: need a 1-D array of at least 4 cell centres, got shape {x.shape}")
    nx = x.size
    want = (np.arange(nx) + 0.5) / nx
    bad = np.abs(x - want) > 1e-9
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{where}: cell centres must be uniform on [0, 1], x_i = (i + 0.5)/nx; "
            f"cell {i} is at {x[i]:.10g}, expected {want[i]:.10g}")
    return 1.0 / nx


def check_boundary(bc: str) -> str:
    if bc not in BOUNDARIES:
        raise ValueError(f"bc: unknown boundary condition {bc!r}; allowed: {', '.join(BOUNDARIES)}")
    return bc


def ghost_index(nx: int, bc: str) -> np.ndarray:
    """Indices [nx + 4] into the cell axis that add two ghost cells each side."""
    i = np.arange(-N_GHOST, nx + N_GHOST)
    if check_boundary(bc) == "periodic":
        return i % nx
    return np.clip(i, 0, nx - 1)


def van_leer(a, b):
    """Van Leer limited slope 2ab/(a + b) where ab > 0, else 0, of the one-sided differences a, b."""
    return (2.0 * np.maximum(a * b, 0.0)) / (a + b + 1e-300)


def minmod(a, b):
    """Minmod limited slope of the one-sided differences a, b."""
    return np.where(a * b > 0, np.where(np.abs(a) < np.abs(b), a, b), 0.0)


def limited_slopes(q, axis: int = 0, limiter=van_leer):
    """Limited differences of the padded q [nx + 4, ...] for cells 1 .. nx + 2 along axis.

    Returns slopes [nx + 2, ...] (per cell, in units of q, not q/dx).
    """
    d = np.diff(q, axis=axis)
    n = d.shape[axis]
    lo = np.take(d, np.arange(0, n - 1), axis=axis)
    hi = np.take(d, np.arange(1, n), axis=axis)
    return limiter(lo, hi)


def check_state(rho, u, T, where: str = "initial state") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """rho, u, T as float arrays [nx]; ValueError naming the cell if rho or T <= 0 or not finite."""
    arrs = [np.asarray(a, float) for a in (rho, u, T)]
    shapes = {a.shape for a in arrs}
    if len(shapes) != 1 or arrs[0].ndim != 1:
        raise ValueError(f"{where}: rho, u, T must be 1-D arrays of one length, got shapes "
                         f"{[a.shape for a in arrs]}")
    for name, a in zip(("rho", "u", "T"), arrs):
        bad = ~np.isfinite(a)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{where}: {name} is not finite at cell {i} ({a[i]})")
    for name, a, what in (("rho", arrs[0], "density"), ("T", arrs[2], "temperature")):
        if (a <= 0).any():
            i = int(np.argmin(a))
            raise ValueError(f"{where}: negative or zero {what} {name} = {a[i]:.4g} at cell {i}")
    return arrs[0], arrs[1], arrs[2]


def check_kn(kn) -> float:
    kn = float(kn)
    if not (np.isfinite(kn) and kn > 0):
        raise ValueError(f"kn: the Knudsen number must be > 0, got {kn}")
    return kn


def check_times(t_end, save_times=None) -> np.ndarray:
    """Sorted output times [ns] in (0, t_end] (t_end alone when save_times is None)."""
    t_end = float(t_end)
    if not (np.isfinite(t_end) and t_end > 0):
        raise ValueError(f"t_end: must be > 0, got {t_end}")
    if save_times is None:
        return np.array([t_end])
    ts = np.asarray(save_times, float).ravel()
    if ts.size == 0 or (ts < 0).any() or (ts > t_end * (1 + 1e-12)).any() or (np.diff(ts) <= 0).any():
        raise ValueError(f"save_times: must be increasing within [0, t_end = {t_end}], got {ts}")
    return ts


def step_with_fallback(attempt, dt: float, t: float):
    """One time step of a moment solver that must keep rho, T > 0: ``attempt(dt, safe)`` returns
    the new state, or None when it is not admissible. The first retry is ``safe`` (first order)
    at the same dt, each further one also halves dt (8 tries in all).

    Returns ``(state, dt taken, fallbacks)``; raises FloatingPointError naming the time t."""
    fallbacks = 0
    for k in range(8):
        state = attempt(dt, k > 0)
        if state is not None:
            return state, dt, fallbacks
        fallbacks += 1
        if k > 0:
            dt *= 0.5
    raise FloatingPointError(f"moment solver: no positive state at t = {t:.4g} even first order")
