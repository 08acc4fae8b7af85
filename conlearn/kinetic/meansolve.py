"""One finite-volume solve of the moment system with the ensemble-mean closure (:mod:`.fused`).

The system and its source terms are those of :mod:`conlearn.kinetic.mlsolver` (read its
docstring); this is the same scheme for one state [nx, ...] instead of K member states, written
with few numpy calls (the cost at 100 cells is per call), and with a choice of flux for U:

* ``"rusanov"``: Rusanov with |u| + c sqrt(T) (c = ``wave_speed``), as mlsolver;
* ``"hllc"``: the Euler part of F by HLLC with the Euler wave speeds (the flux of the Euler and
  NS solvers), the non-equilibrium part (0, sigma, sigma u + q) by its central average. As
  Kn -> 0, sigma and q are the NS stresses (the production terms give them), so the scheme
  becomes the NS solver's Euler flux plus central viscous fluxes; the fast non-equilibrium
  waves are still upwinded in the W equations (Rusanov, ``w_damping`` times |u| + c sqrt(T)).

In both, W is first order, the relaxation rho (rho w_eq - W)/Kn is integrated exactly with
the other terms frozen, SSP-RK2 in time, and a step that leaves rho <= 0 or T <= 0 is redone
first order with the Rusanov Euler flux, then halved. Conservative to round-off in U.
"""

from __future__ import annotations

import time

import numpy as np

from . import fv

FLUXES = ("rusanov", "hllc")
GAMMA = 5.0 / 3.0


def _primitive(U):
    """(rho, u, T) [nx] of U [3, nx]."""
    rho = U[0]
    u = U[1] / rho
    return rho, u, (U[2] / rho - 0.5 * u * u) * (2.0 / 3.0)


def blend(rho, T, kn, dx, c):
    """Weight [nf] of the Rusanov flux for U at each face (1 - weight: HLLC), from the face
    states rho, T [2, nf]: min(1, lambda/dx) with lambda = Kn sqrt(T)/rho the mean free path
    (tau times the thermal speed). Non-equilibrium travels about a mean free path before it
    relaxes: on cells much wider than that it does not carry the solution and U's dissipation
    can be that of the Euler waves (as in the NS limit; measured: the NS solver's HLLC is far
    less diffusive than Rusanov at Kn = 1e-3 and worse than it at Kn = 1e-2 on Riemann problems)."""
    return np.minimum(1.0, (kn / dx) * np.maximum.reduce(np.sqrt(T) / rho))


def _hllc(rho, u, p, E):
    """Euler HLLC flux minus the central average of the Euler fluxes [3, nf] of face states
    rho, u, p, E [2, nf] (left, right)."""
    c = np.sqrt(GAMMA * p / rho)
    sl, sr = np.minimum.reduce(u - c), np.maximum.reduce(u + c)
    m = rho * (np.stack([sl, sr]) - u)                       # [2, nf]
    ss = (p[1] - p[0] + u[0] * m[0] - u[1] * m[1]) / (m[0] - m[1])
    left = ss >= 0
    # the upwind side's flux and states, with its signal speed s (clipped: supersonic faces
    # take the upwind flux itself)
    k = np.where(left, 0, 1)
    j = np.arange(len(ss))
    r, v, pp, e, mm = rho[k, j], u[k, j], p[k, j], E[k, j], m[k, j]
    s = np.where(left, np.minimum(sl, 0.0), np.maximum(sr, 0.0))
    kk = mm / (np.where(left, sl, sr) - ss)
    mo = r * v
    F = np.stack([mo, mo * v + pp, (e + pp) * v])
    star = np.stack([kk, kk * ss, kk * (e / r + (ss - v) * (ss + pp / mm))])
    F += s * (star - np.stack([r, mo, e]))
    mo2 = rho * u
    return F - 0.5 * np.stack([mo2.sum(0), (mo2 * u + p).sum(0), ((E + p) * u).sum(0)])


def rates(U, W, closure, dx, idx, c, flux="hllc", w_damping=2.0, safe=False, kn=1.0):
    """(dU/dt [3, nx], dW/dt without relaxation [M, nx]) of U [3, nx], W [M, nx] (fields first);
    ``safe``: first order and the Rusanov Euler flux for U."""
    nx = U.shape[1]
    M = W.shape[0]
    rho, u, T = _primitive(U)
    w = closure.clip(W / rho)
    terms = closure.terms(w)                                           # [6, M, nx]
    C = np.empty((3 + 2 * M, nx))
    C[0], C[1], C[2], C[3:3 + M], C[3 + M:] = rho, u, T, w, terms[0]
    C = C[:, idx]                                                      # cells with ghosts [., nx + 4]
    S = np.empty((3 + 2 * M, 2, nx + 1))                               # face states, left and right
    S[:, 0], S[:, 1] = C[:, 1:nx + 2], C[:, 2:nx + 3]
    if not safe:
        d = C[:3, 1:] - C[:3, :-1]
        lo, hi = d[:, :-1], d[:, 1:]
        s = np.maximum(lo * hi, 0.0) / (lo + hi + 1e-300)              # half the van Leer slope
        S[:3, 0] += s[:, :-1]
        S[:3, 1] -= s[:, 1:]
    r, v, Tf, wf, af = S[0], S[1], S[2], S[3:3 + M], S[3 + M:]
    p = r * Tf
    sq = np.sqrt(Tf)
    mo = r * v
    E = 0.5 * mo * v + 1.5 * p
    F = np.empty((3 + M, 2, nx + 1))
    Q = np.empty((3 + M, 2, nx + 1))
    Q[0], Q[1], Q[2], Q[3:] = r, mo, E, r * wf
    F[0], F[1], F[2] = mo, mo * v + p, (E + p) * v
    if not safe:
        sig = p * wf[0]
        F[1] += sig
        F[2] += sig * v + p * sq * wf[1]
    F[3:] = v * Q[3:] + (r * sq) * af
    alpha = np.maximum.reduce(np.abs(v) + c * sq)                      # [nx + 1]
    D = Q[:, 1] - Q[:, 0]
    G = 0.5 * (F[:, 0] + F[:, 1])
    G[3:] -= (0.5 * w_damping * alpha) * D[3:]
    theta = 1.0
    # faces lie between neighbour cells: lambda/dx >= 1 on every face when it is at the cells' extremes
    if not (safe or flux == "rusanov") and (kn / dx) * np.sqrt(T.min()) / rho.max() < 1.0:
        theta = blend(r, Tf, kn, dx, c)
        G[:3] += (1.0 - theta) * _hllc(r, v, p, E)       # HLLC where the faces are near equilibrium
    G[:3] -= (0.5 * theta * alpha) * D[:3]
    dQ = (G[:, :-1] - G[:, 1:]) * (1.0 / dx)
    return dQ[:3], dQ[3:] + production(rho, u, T, w, terms, idx, dx)


def production(rho, u, T, w, terms, idx, dx):
    """rho S [M, nx]: the production terms (central differences; see mlsolver.production)."""
    nx = len(rho)
    G = np.empty((4, nx))
    p = rho * T
    G[0], G[1] = u, T
    G[2] = p * (1.0 + w[0])                                            # p + sigma
    G[3] = p * np.sqrt(T) * w[1]                                       # q
    G = G[:, idx[1:-1]]                                                # one ghost each side
    du, dT, dps, dq = (G[:, 2:] - G[:, :-2]) * (0.5 / dx)
    ps = G[2, 1:-1]
    sq = np.sqrt(T)
    Du = -dps / rho
    DT = -(2.0 / (3.0 * rho)) * (ps * du + dq)
    coef = np.empty((5, 1, nx))
    coef[0, 0], coef[1, 0], coef[2, 0], coef[3, 0], coef[4, 0] = (
        Du / sq, du + 0.5 * DT / T, 0.5 * dT / sq, DT / T, dT / sq)
    return -rho * (coef * terms[1:]).sum(0)


def _relax(W0, L, rho, w_eq, kn, dt):
    """Exact solution over dt of dW/dt = L + (rho/kn)(rho w_eq - W) with L, rho frozen."""
    x = rho * (dt / kn)
    e = np.exp(-x)
    phi = -np.expm1(-x) / np.maximum(x, 1e-300)
    phi[x < 1e-12] = 1.0
    return e * W0 + (1.0 - e) * rho * w_eq[:, None] + (phi * dt) * L


def _ok(U) -> bool:
    rho, _, T = _primitive(U)
    return bool(rho.min() > 0 and T.min() > 0 and np.isfinite(U).all())


def step(U, W, closure, kn, dt, dx, idx, c, flux="hllc", w_damping=2.0, safe=False):
    """One SSP-RK2 step with exponential relaxation; returns (U, W)."""
    dU0, L0 = rates(U, W, closure, dx, idx, c, flux, w_damping, safe, kn)
    U1 = U + dt * dU0
    if not _ok(U1):
        return U1, W
    W1 = _relax(W, L0, U1[0], closure.w_eq, kn, dt)
    dU1, L1 = rates(U1, W1, closure, dx, idx, c, flux, w_damping, safe, kn)
    U2 = 0.5 * (U + U1 + dt * dU1)
    return U2, _relax(W, 0.5 * (L0 + L1), U2[0], closure.w_eq, kn, dt)


def solve(closure, x, rho, u, T, kn, t_end, bc="periodic", *, wave_speed=3.0, cfl=0.45, w_damping=2.0,
          flux="hllc") -> dict:
    """The moment-system solution at t_end from the Maxwellian rho, u, T [nx] with one closure
    (``terms(w [N, M]) -> [N, 6, M]``, ``clip``, ``w_eq``; e.g. :class:`.fused.MeanClosure`).

    Returns {"x", "rho", "u", "T", "w" [nx, M], "U" [nx, 3], "steps", "fallbacks", "wall_s"}."""
    if flux not in FLUXES:
        raise ValueError(f"flux: unknown flux {flux!r}; allowed: {', '.join(FLUXES)}")
    t0 = time.perf_counter()
    dx = fv.check_cells(x)
    rho, u, T = fv.check_state(rho, u, T)
    kn = fv.check_kn(kn)
    t_end = float(fv.check_times(t_end)[-1])
    idx = fv.ghost_index(len(x), bc)
    U = np.stack([rho, rho * u, 0.5 * rho * u * u + 1.5 * rho * T])
    W = rho * closure.w_eq[:, None]
    t, steps, fallbacks = 0.0, 0, 0
    while t < t_end * (1 - 1e-12):
        r, uu, TT = _primitive(U)
        dt = min(cfl * dx / (np.abs(uu) + wave_speed * np.sqrt(TT)).max(), t_end - t)
        for attempt in range(8):
            Un, Wn = step(U, W, closure, kn, dt, dx, idx, wave_speed, flux, w_damping, attempt > 0)
            if _ok(Un):
                break
            fallbacks += 1
            if attempt > 0:
                dt *= 0.5
        else:
            raise FloatingPointError(f"moment solver: no positive state at t = {t:.4g} even first order")
        U, W, t, steps = Un, Wn, t + dt, steps + 1
    r, uu, TT = _primitive(U)
    return {"x": np.asarray(x, float), "rho": r, "u": uu, "T": TT, "w": (W / r).T, "U": U.T, "steps": steps,
            "fallbacks": fallbacks, "wall_s": time.perf_counter() - t0}
