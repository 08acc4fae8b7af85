"""One finite-volume solve of the moment system with the ensemble-mean closure (:mod:`.fused`).

The system and its source terms are those of :mod:`conlearn.kinetic.mlsolver` (read its
docstring); this is the same scheme for one state [nx, ...] instead of K member states, written
with few numpy calls (the cost at 100 cells is per call), with a choice of flux for U:

* ``"rusanov"``: Rusanov with |u| + c sqrt(T) (c = ``wave_speed``), as mlsolver;
* ``"hllc"``: the Euler part of F by HLLC with the Euler wave speeds (the flux of the Euler and
  NS solvers), the non-equilibrium part (0, sigma, sigma u + q) by its central average. As
  Kn -> 0, sigma and q are the NS stresses (the production terms give them), so the scheme
  becomes the NS solver's Euler flux plus central viscous fluxes; the fast non-equilibrium
  waves are still upwinded in the W equations (Rusanov, ``w_damping`` times |u| + c sqrt(T)).

and a choice of time stepping (``scheme``):

* ``"hancock"`` (default): one stage per step, MUSCL-Hancock for U: the van Leer face values of
  (rho, u, T) are advanced half a step with the primitive Euler equations inside each cell
  (rho_t = -(u rho_x + rho u_x), u_t = -(u u_x + T_x + T rho_x / rho),
  T_t = -(u T_x + 2/3 T u_x); the non-equilibrium terms are left out of this predictor), then
  one flux evaluation and a forward step; W (first order in space) takes a forward step with
  the same fluxes and closure terms. One closure evaluation per step. Where a predicted face
  value would be rho <= 0 or T <= 0 the step uses the plain MUSCL faces instead.
* ``"rk2"``: SSP-RK2 (Heun) on the MUSCL faces, two closure evaluations per step (the scheme
  of mlsolver; stable for the same cfl * w_damping <= 1).

In both, the relaxation rho (rho w_eq - W)/Kn is integrated exactly with the other terms frozen,
and a step that leaves rho <= 0 or T <= 0 is redone first order with the Rusanov Euler flux,
then halved. Conservative to round-off in U. Arrays are fields first: U [3, nx], W [M, nx].
"""

from __future__ import annotations

import time

import numpy as np

from . import fv

FLUXES = ("rusanov", "hllc")
SCHEMES = ("hancock", "rk2")
GAMMA = 5.0 / 3.0
_SQG = float(np.sqrt(GAMMA))


def primitives(U):
    """P [3, nx] = (rho, u, T) of U [3, nx] = (rho, rho u, E)."""
    P = np.empty_like(U)
    rho = U[0]
    P[0] = rho
    u = np.divide(U[1], rho, out=P[1])
    P[2] = (U[2] / rho - 0.5 * u * u) * (2.0 / 3.0)
    return P


def _primitive(U):
    """(rho, u, T) [nx] of U [3, nx]."""
    return tuple(primitives(U))


def blend(rho, T, kn, dx, c):
    """Weight [nf] of the Rusanov flux for U at each face (1 - weight: HLLC), from the face
    states rho, T [2, nf]: min(1, lambda/dx) with lambda = Kn sqrt(T)/rho the mean free path
    (tau times the thermal speed). Non-equilibrium travels about a mean free path before it
    relaxes: on cells much wider than that it does not carry the solution and U's dissipation
    can be that of the Euler waves (as in the NS limit; measured: the NS solver's HLLC is far
    less diffusive than Rusanov at Kn = 1e-3 and worse than it at Kn = 1e-2 on Riemann problems)."""
    return np.minimum(1.0, (kn / dx) * np.maximum.reduce(np.sqrt(T) / rho))


def _hllc(rho, u, p, E, sq, central):
    """Euler HLLC flux minus ``central`` (the central average of the Euler fluxes) [3, nf] of
    face states rho, u, p, E, sqrt(T) [2, nf] (left, right)."""
    c = _SQG * sq
    sl, sr = np.minimum.reduce(u - c), np.maximum.reduce(u + c)
    m = rho * (np.stack([sl, sr]) - u)                       # [2, nf]
    ss = (p[1] - p[0] + u[0] * m[0] - u[1] * m[1]) / (m[0] - m[1])
    left = ss >= 0
    # the upwind side's flux and states, with its signal speed s (clipped: supersonic faces
    # take the upwind flux itself)
    X = np.stack([rho, u, p, E, m])                                    # [5, 2, nf]
    r, v, pp, e, mm = X[:, (~left).view(np.int8), np.arange(len(ss))]
    s = np.where(left, np.minimum(sl, 0.0), np.maximum(sr, 0.0))
    kk = mm / (np.where(left, sl, sr) - ss)
    mo = r * v
    F = np.stack([mo, mo * v + pp, (e + pp) * v])
    star = np.stack([kk, kk * ss, kk * (e / r + (ss - v) * (ss + pp / mm))])
    F += s * (star - np.stack([r, mo, e]))
    return F - central


def rates(U, W, closure, dx, idx, c, flux="hllc", w_damping=2.0, safe=False, kn=1.0, P=None, dt=0.0):
    """(dU/dt [3, nx], dW/dt without relaxation [M, nx]) of U [3, nx], W [M, nx] (fields first);
    ``safe``: first order and the Rusanov Euler flux for U. P: primitives(U) if known.
    dt > 0 (and not safe): MUSCL-Hancock, the face values predicted half a step dt/2 ahead."""
    nx = U.shape[1]
    M = W.shape[0]
    if P is None:
        P = primitives(U)
    rho, u, T = P
    w = closure.clip(W / rho)
    terms = closure.terms(w)                                           # [6, M, nx]
    C = np.empty((3 + 2 * M, nx))
    C[:3], C[3:3 + M], C[3 + M:] = P, w, terms[0]
    C = C[:, idx]                                                      # cells with ghosts [., nx + 4]
    S = np.empty((3 + 2 * M, 2, nx + 1))                               # face states, left and right
    S[:, 0], S[:, 1] = C[:, 1:nx + 2], C[:, 2:nx + 3]
    if not safe:
        d = C[:3, 1:] - C[:3, :-1]
        lo, hi = d[:, :-1], d[:, 1:]
        s = np.maximum(lo * hi, 0.0) / (lo + hi + 1e-300)              # half the van Leer slope [3, nx + 2]
        if dt > 0:
            # primitive Euler equations over dt/2 with the full slopes 2 s: dP = -(dt/dx) A(P) s
            r, v, Tc = C[:3, 1:nx + 3]
            sr, su, sT = s
            dP = v * s
            dP[0] += r * su
            dP[1] += sT + Tc * sr / r
            dP[2] += (2.0 / 3.0) * Tc * su
            dP *= -dt / dx
            pl, pr = dP + s, dP - s
            S[:3, 0] += pl[:, :-1]
            S[:3, 1] += pr[:, 1:]
            if S[0:3:2].min() <= 0.0:                                  # back to the MUSCL faces
                S[:3, 0] += (s - pl)[:, :-1]
                S[:3, 1] += (-s - pr)[:, 1:]
        else:
            S[:3, 0] += s[:, :-1]
            S[:3, 1] -= s[:, 1:]
    r, v, Tf, wf, af = S[0], S[1], S[2], S[3:3 + M], S[3 + M:]
    p = r * Tf
    sq = np.sqrt(Tf)
    mo = r * v
    E = 0.5 * mo * v + 1.5 * p
    F = np.empty((3 + M, 2, nx + 1))
    Q = np.empty((3 + M, 2, nx + 1))
    Q[0], Q[1], Q[2] = r, mo, E
    np.multiply(r, wf, out=Q[3:])
    F[0], F[1], F[2] = mo, mo * v + p, (E + p) * v
    hllc = not (safe or flux == "rusanov") and (kn / dx) * np.sqrt(T.min()) / rho.max() < 1.0
    if hllc:
        central = 0.5 * (F[:3, 0] + F[:3, 1])
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
    if hllc:
        theta = blend(r, Tf, kn, dx, c)
        G[:3] += (1.0 - theta) * _hllc(r, v, p, E, sq, central)  # HLLC where the faces are near equilibrium
    G[:3] -= (0.5 * theta * alpha) * D[:3]
    dQ = (G[:, :-1] - G[:, 1:]) * (1.0 / dx)
    return dQ[:3], dQ[3:] + production(rho, u, T, w, terms, idx, dx)


def production(rho, u, T, w, terms, idx, dx):
    """rho S [M, nx]: the production terms (central differences; see mlsolver.production)."""
    nx = len(rho)
    G = np.empty((4, nx))
    p = rho * T
    sq = np.sqrt(T)
    G[0], G[1] = u, T
    G[2] = p * (1.0 + w[0])                                            # p + sigma
    G[3] = (p * sq) * w[1]                                             # q
    G = G[:, idx[1:-1]]                                                # one ghost each side
    du, dT, dps, dq = (G[:, 2:] - G[:, :-2]) * (0.5 / dx)
    Du = -dps / rho
    DT = (G[2, 1:-1] * du + dq) * (-2.0 / 3.0) / rho
    coef = np.empty((5, 1, nx))
    rT = 1.0 / T
    dTs = dT / sq
    coef[0, 0], coef[1, 0], coef[2, 0], coef[3, 0], coef[4, 0] = (
        Du / sq, du + 0.5 * DT * rT, 0.5 * dTs, DT * rT, dTs)
    return -rho * (coef * terms[1:]).sum(0)


def _relax(W0, L, rho, w_eq, kn, dt):
    """Exact solution over dt of dW/dt = L + (rho/kn)(rho w_eq - W) with L, rho frozen."""
    x = rho * (dt / kn)
    e = np.exp(-x)
    phi = -np.expm1(-x) / np.maximum(x, 1e-300)
    phi[x < 1e-12] = 1.0
    return e * W0 + (1.0 - e) * rho * w_eq[:, None] + (phi * dt) * L


def _ok(U, P=None) -> bool:
    """rho > 0 and T > 0 everywhere, and finite (P: primitives(U) if known)."""
    if P is None:
        P = primitives(U)
    rT = P[0:3:2]
    return bool(rT.min() > 0 and np.isfinite(rT.max()) and np.isfinite(P[1]).all())


def step(U, W, closure, kn, dt, dx, idx, c, flux="hllc", w_damping=2.0, safe=False, P=None):
    """One SSP-RK2 step with exponential relaxation; returns (U, W)."""
    dU0, L0 = rates(U, W, closure, dx, idx, c, flux, w_damping, safe, kn, P)
    U1 = U + dt * dU0
    if not _ok(U1):
        return U1, W
    W1 = _relax(W, L0, U1[0], closure.w_eq, kn, dt)
    dU1, L1 = rates(U1, W1, closure, dx, idx, c, flux, w_damping, safe, kn)
    U2 = 0.5 * (U + U1 + dt * dU1)
    return U2, _relax(W, 0.5 * (L0 + L1), U2[0], closure.w_eq, kn, dt)


def hancock_step(U, W, closure, kn, dt, dx, idx, c, flux="hllc", w_damping=2.0, safe=False, P=None):
    """One MUSCL-Hancock step (first order in time and space when ``safe``) with exponential
    relaxation; returns (U, W)."""
    dU, L = rates(U, W, closure, dx, idx, c, flux, w_damping, safe, kn, P, 0.0 if safe else dt)
    U1 = U + dt * dU
    return U1, _relax(W, L, U1[0], closure.w_eq, kn, dt)


def solve(closure, x, rho, u, T, kn, t_end, bc="periodic", *, wave_speed=3.0, cfl=0.45, w_damping=2.0,
          flux="hllc", scheme="hancock", w_implicit=False, cfl_rarefied=None, kernel="numba") -> dict:
    """The moment-system solution at t_end from the Maxwellian rho, u, T [nx] with one closure
    (``terms(w [M, N]) -> [6, M, N]``, ``clip``, ``w_eq``; e.g. :class:`.fused.MeanClosure`).
    Time step dt = cfl dx / max(|u| + wave_speed sqrt(T)) (stable for cfl * w_damping <= 1; with
    ``w_implicit``, W's damping implicit (:mod:`.meanstep`, scheme "hancock" only), for cfl <= 1, and
    cfl_rarefied (default cfl) in the steps where the mean free path is at least a cell everywhere).
    ``kernel``: "numba" (the implicit step compiled, :mod:`.stepkernel`) or "numpy" (:mod:`.meanstep`,
    the reference); the explicit schemes are numpy either way.

    Returns {"x", "rho", "u", "T", "w" [nx, M], "U" [nx, 3], "steps", "fallbacks", "wall_s"}."""
    if flux not in FLUXES:
        raise ValueError(f"flux: unknown flux {flux!r}; allowed: {', '.join(FLUXES)}")
    if scheme not in SCHEMES:
        raise ValueError(f"scheme: unknown time stepping {scheme!r}; allowed: {', '.join(SCHEMES)}")
    if w_implicit and scheme != "hancock":
        raise ValueError(f"w_implicit: the implicit W damping needs scheme 'hancock', got {scheme!r}")
    from .stepkernel import check_kernel

    check_kernel(kernel)
    advance = hancock_step if scheme == "hancock" else step
    t0 = time.perf_counter()
    dx = fv.check_cells(x)
    rho, u, T = fv.check_state(rho, u, T)
    kn = fv.check_kn(kn)
    t_end = float(fv.check_times(t_end)[-1])
    idx = fv.ghost_index(len(x), bc)
    U = np.stack([rho, rho * u, 0.5 * rho * u * u + 1.5 * rho * T])
    W = rho * closure.w_eq[:, None]
    P = primitives(U)
    t, steps, fallbacks = 0.0, 0, 0
    if w_implicit:
        from .meanstep import ImplicitHancock
        from .stepkernel import KernelHancock

        stepper = (KernelHancock if kernel == "numba" else ImplicitHancock)(closure, len(x), dx, idx, kn, wave_speed, w_damping, flux)
        U, W, P, steps, fallbacks = stepper.run(U, W, t_end, cfl, cfl_rarefied)

    def attempt(dt, safe):
        Un, Wn = advance(U, W, closure, kn, dt, dx, idx, wave_speed, flux, w_damping, safe, P)
        Pn = primitives(Un)
        return (Un, Wn, Pn) if _ok(Un, Pn) else None

    while t < t_end * (1 - 1e-12) and not w_implicit:
        dt = min(cfl * dx / (np.abs(P[1]) + wave_speed * np.sqrt(P[2])).max(), t_end - t)
        (U, W, P), dt, redone = fv.step_with_fallback(attempt, dt, t)
        t, steps, fallbacks = t + dt, steps + 1, fallbacks + redone
    r, uu, TT = P
    return {"x": np.asarray(x, float), "rho": r, "u": uu, "T": TT, "w": (W / r).T, "U": U.T, "steps": steps,
            "fallbacks": fallbacks, "wall_s": time.perf_counter() - t0}
