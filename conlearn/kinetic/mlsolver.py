"""Finite-volume solver of the ML moment system for K members at once (exploration's view), and
the ensemble model users load (whose solve is ONE solution with the ensemble-mean closure:
:mod:`conlearn.kinetic.fused`, :mod:`conlearn.kinetic.meansolve`).

Unknowns per cell: U = (rho, rho u, E) and W = rho w [M] (:mod:`conlearn.kinetic.moments`):

    d_t U + d_x F(U, W) = 0,        F = Euler flux + (0, sigma, sigma u + q),
                                    sigma = rho T w_0,  q = rho T^1.5 w_1
    d_t W + d_x G(U, W) = S(U, W, d_x) + rho (rho c - W)/Kn,
                                    G = u W + rho sqrt(T) a(w)

S holds the production terms of the local-frame moments (exact in terms of the closure's
functionals A0, A1, A2, B0, B1 times d_x u, d_x T, D_t u, D_t T; D_t u and D_t T from the
conservation laws) and rho (rho c - W)/Kn is the exact BGK source (c = w of a Maxwellian).
So a Maxwellian state closes exactly (Euler), and the system reproduces Navier-Stokes with
mu = Kn T, Pr = 1 as Kn -> 0 whatever the learned part.

Scheme: MUSCL for U (van Leer on rho, u, T: faces stay between neighbour values, so rho and
T there are positive), first order for W (closure evaluated once per cell), Rusanov flux with
the wave speed |u| + c sqrt(T) (c = ``wave_speed``, at least the largest equilibrium speed,
2.86 for D = 4) for U and ``w_damping`` times it for W, SSP-RK2 in time (stable for
cfl * w_damping <= 1). The extra damping of W is what keeps the learned closure, hyperbolic
at equilibrium but not everywhere, from growing wiggles on coarse grids (measured on the
benchmark cases, 100 cells: u errors 10.5 -> 4.2 % on Sod at Kn = 1, 17.5 -> 7.9 % on the
wave at Kn = 10, 1.6 -> 0.55 % at Kn = 0.01 against MUSCL for W and w_damping = 1); the relaxation is integrated exactly
with the other terms frozen (exponential integrator): small Kn is not stiff. Conservative
to round-off in U. A step that would leave rho <= 0 or T <= 0 anywhere is redone first-order
with the Euler flux (positive for CFL <= 1/2), and halved if that is not enough.
"""

from __future__ import annotations

import time

import numpy as np

from . import fv
from .closure import Member, load_members
from .stack import StackedClosure
from .velocity import primitive


def _conserved(rho, u, T):
    return np.stack([rho, rho * u, 0.5 * rho * u * u + 1.5 * rho * T], axis=-1)


def _flux(P: np.ndarray, a: np.ndarray, c: float, euler: bool):
    """Conserved states Q [..., 3+M], physical fluxes [..., 3+M] and wave speeds [...] of
    primitives P [..., 3+M] = (rho, u, T, w) with closure fluxes a [..., M]."""
    rho, u, T, w = P[..., 0], P[..., 1], P[..., 2], P[..., 3:]
    sq = np.sqrt(T)
    p = rho * T
    sig = np.zeros_like(p) if euler else p * w[..., 0]
    q = np.zeros_like(p) if euler else p * sq * w[..., 1]
    E = 0.5 * rho * u * u + 1.5 * p
    W = rho[..., None] * w
    Q = np.concatenate([np.stack([rho, rho * u, E], -1), W], -1)
    F = np.concatenate([np.stack([rho * u, rho * u * u + p + sig, u * (E + p + sig) + q], -1),
                        u[..., None] * W + (rho * sq)[..., None] * a], -1)
    return Q, F, np.abs(u) + c * sq


def rates(U, W, closure: StackedClosure, dx: float, idx: np.ndarray, c: float, safe: bool = False,
          w_damping: float = 2.0):
    """(dU/dt [K, nx, 3], dW/dt without relaxation [K, nx, M]) of the K members' states U [K, nx, 3],
    W [K, nx, M]; ``safe``: first order and the Euler flux for U. W is reconstructed first order
    and its Rusanov speed is ``w_damping`` times that of U (see the module docstring)."""
    nx = U.shape[1]
    rho, u, T = primitive(U)
    w = closure.clip(W / rho[..., None])
    P = np.concatenate([np.stack([rho, u, T], -1), w], -1)[:, idx]      # [K, nx + 4, 3 + M]
    left, right = P[:, 1:nx + 2], P[:, 2:nx + 3]
    if not safe:
        s = fv.limited_slopes(P[..., :3], axis=1, limiter=fv.van_leer)  # cells 1 .. nx + 2 of P
        left = np.concatenate([left[..., :3] + 0.5 * s[:, :-1], left[..., 3:]], -1)
        right = np.concatenate([right[..., :3] - 0.5 * s[:, 1:], right[..., 3:]], -1)
    coef = closure.coefficients(w)                                      # at the cells only
    a = coef["a"][:, idx]                                               # [K, nx + 4, M]
    QL, FL, sL = _flux(left, a[:, 1:nx + 2], c, safe)
    QR, FR, sR = _flux(right, a[:, 2:nx + 3], c, safe)
    alpha = np.maximum(sL, sR)[..., None]
    D = QR - QL
    D[..., 3:] *= w_damping
    F = 0.5 * (FL + FR) - 0.5 * alpha * D
    dQ = -(F[:, 1:] - F[:, :-1]) / dx
    return dQ[..., :3], dQ[..., 3:] + production(P, coef, dx)


def production(P: np.ndarray, coef: dict, dx: float) -> np.ndarray:
    """The production terms S [K, nx, M] from padded primitives P [K, nx + 4, 3 + M] (central differences)."""
    rho, u, T, w = P[..., 0], P[..., 1], P[..., 2], P[..., 3:]
    ps = rho * T * (1.0 + w[..., 0])          # p + sigma
    q = rho * T ** 1.5 * w[..., 1]

    def d(f):
        return (f[:, 3:-1] - f[:, 1:-3]) / (2.0 * dx)

    r, Tc, du, dT = rho[:, 2:-2], T[:, 2:-2], d(u), d(T)
    sq = np.sqrt(Tc)
    Du = -d(ps) / r
    DT = -(2.0 / (3.0 * r)) * (ps[:, 2:-2] * du + d(q))
    S = (-(Du / sq)[..., None] * coef["A0"] - (du + 0.5 * DT / Tc)[..., None] * coef["A1"]
         - (0.5 * dT / sq)[..., None] * coef["A2"] - (DT / Tc)[..., None] * coef["B0"]
         - (dT / sq)[..., None] * coef["B1"])
    return r[..., None] * S


def _relax(W0, L, rho, w_eq, kn, dt):
    """Exact solution over dt of dW/dt = L + (rho/kn)(rho w_eq - W) with L, rho frozen."""
    x = (rho * dt / kn)[..., None]
    e = np.exp(-x)
    phi = np.where(x > 1e-12, -np.expm1(-x) / np.maximum(x, 1e-300), 1.0)
    return e * W0 + (1.0 - e) * rho[..., None] * w_eq[:, None] + phi * dt * L


def _admissible(UW):
    """The step's (U, W), or None when :func:`_ok` refuses U."""
    return UW if _ok(UW[0]) else None


def _ok(U) -> bool:
    rho, _, T = primitive(U)
    return bool(np.all(rho > 0) and np.all(T > 0) and np.all(np.isfinite(U)))


def step(U, W, closure, kn, dt, dx, idx, c, safe=False, w_damping=2.0):
    """One SSP-RK2 step with exponential relaxation; returns (U, W)."""
    dU0, L0 = rates(U, W, closure, dx, idx, c, safe, w_damping)
    U1 = U + dt * dU0
    if not _ok(U1):
        return U1, W
    W1 = _relax(W, L0, U1[..., 0], closure.w_eq, kn, dt)
    dU1, L1 = rates(U1, W1, closure, dx, idx, c, safe, w_damping)
    U2 = 0.5 * (U + U1 + dt * dU1)
    return U2, _relax(W, 0.5 * (L0 + L1), U2[..., 0], closure.w_eq, kn, dt)


def solve_stack(closure: StackedClosure, x, rho, u, T, kn, t_end, bc="periodic", *, wave_speed=3.0,
                cfl=0.45, w_damping=2.0) -> list[dict]:
    """Every member's moment-system solution at t_end from the Maxwellian state rho, u, T [nx].

    The members advance together (one time step, the smallest any needs; a step that leaves
    a member non-positive is redone first-order for all). Returns per member
    {"x", "rho", "u", "T", "w" [nx, M], "U" [nx, 3], "steps", "fallbacks", "wall_s"}
    (wall_s: the whole solve's)."""
    t0 = time.perf_counter()
    dx = fv.check_cells(x)
    rho, u, T = fv.check_state(rho, u, T)
    kn = fv.check_kn(kn)
    t_end = float(fv.check_times(t_end)[-1])
    idx = fv.ghost_index(len(x), bc)
    U = np.broadcast_to(_conserved(rho, u, T), (closure.K, len(x), 3)).copy()
    W = rho[None, :, None] * closure.w_eq[:, None, :]
    t, steps, fallbacks = 0.0, 0, 0
    while t < t_end * (1 - 1e-12):
        r, uu, TT = primitive(U)
        dt = min(cfl * dx / np.max(np.abs(uu) + wave_speed * np.sqrt(TT)), t_end - t)
        (U, W), dt, redone = fv.step_with_fallback(lambda dt, safe: _admissible(
            step(U, W, closure, kn, dt, dx, idx, wave_speed, safe, w_damping)), dt, t)
        t, steps, fallbacks = t + dt, steps + 1, fallbacks + redone
    r, uu, TT = primitive(U)
    wall = time.perf_counter() - t0
    return [{"x": np.asarray(x, float), "rho": r[k], "u": uu[k], "T": TT[k], "w": W[k] / r[k][:, None],
             "U": U[k], "steps": steps, "fallbacks": fallbacks, "wall_s": wall} for k in range(closure.K)]


def solve_member(member: Member, x, rho, u, T, kn, t_end, bc="periodic", *, wave_speed=3.0, cfl=0.45,
                 w_damping=2.0) -> dict:
    """One member's solution (see :func:`solve_stack`)."""
    return solve_stack(StackedClosure([member]), x, rho, u, T, kn, t_end, bc, wave_speed=wave_speed, cfl=cfl,
                       w_damping=w_damping)[0]


class MomentClosure:
    """The learned ensemble as a model for :func:`conlearn.kinetic.simulate`.

    ``solve`` advances ONE solution with the ensemble-mean closure (:class:`.fused.MeanClosure`,
    scheme :mod:`.meansolve` with ``flux``); ``solve(..., members=True)`` also runs every member
    (batched, this module's scheme) and adds their solutions under "members" and their
    disagreement under "deviation" (see :func:`deviation`), as exploration does.
    """

    def __init__(self, members: list[Member], wave_speed: float = 3.0, cfl: float = 0.45, w_damping: float = 2.0,
                 flux: str = "hllc", dtype: str = "float32", scheme: str = "hancock", w_implicit: bool = True,
                 implicit_cfl: float = 0.75, rarefied_cfl: float = 0.9, kernel: str = "numba"):
        from .fused import MeanClosure
        from .meansolve import FLUXES, SCHEMES
        from .stepkernel import check_kernel

        if not members:
            raise ValueError("a moment closure needs at least one member")
        if flux not in FLUXES:
            raise ValueError(f"flux: unknown flux {flux!r}; allowed: {', '.join(FLUXES)}")
        if scheme not in SCHEMES:
            raise ValueError(f"scheme: unknown time stepping {scheme!r}; allowed: {', '.join(SCHEMES)}")
        self.members = list(members)
        self.stacked = StackedClosure(self.members)
        self.mean = MeanClosure(self.members, np.dtype(dtype))
        self.wave_speed, self.cfl, self.w_damping, self.flux = float(wave_speed), float(cfl), float(w_damping), flux
        self.scheme = scheme
        if not isinstance(w_implicit, bool):
            raise ValueError(f"w_implicit: must be true or false, got {w_implicit!r}")
        for key, v in (("implicit_cfl", implicit_cfl), ("rarefied_cfl", rarefied_cfl)):
            if not (isinstance(v, (int, float)) and 0 < v <= 1):
                raise ValueError(f"{key}: must be in (0, 1], got {v!r}")
        if w_implicit and scheme != "hancock":
            raise ValueError("w_implicit: the implicit W damping needs scheme 'hancock'")
        self.w_implicit, self.implicit_cfl, self.rarefied_cfl = w_implicit, float(implicit_cfl), float(rarefied_cfl)
        self.kernel = check_kernel(kernel)                # the implicit step compiled (numba) or numpy's

    @property
    def settings(self) -> dict:
        return {"wave_speed": self.wave_speed, "cfl": self.cfl, "w_damping": self.w_damping, "flux": self.flux,
                "scheme": self.scheme, "w_implicit": self.w_implicit, "implicit_cfl": self.implicit_cfl,
                "rarefied_cfl": self.rarefied_cfl, "kernel": self.kernel}

    def solve(self, x, rho, u, T, kn, t_end, bc="periodic", members: bool = False) -> dict:
        from .meansolve import solve

        out = solve(self.mean, x, rho, u, T, kn, t_end, bc, wave_speed=self.wave_speed,
                    cfl=self.implicit_cfl if self.w_implicit else self.cfl, w_damping=self.w_damping,
                    flux=self.flux, scheme=self.scheme, w_implicit=self.w_implicit,
                    cfl_rarefied=self.rarefied_cfl if self.w_implicit else None, kernel=self.kernel)
        if members:
            runs = solve_stack(self.stacked, x, rho, u, T, kn, t_end, bc, wave_speed=self.wave_speed, cfl=self.cfl,
                               w_damping=self.w_damping)
            out.update(members=runs, deviation=deviation(runs))
        return out

    def save(self, directory):
        from .closure import save_ensemble

        return save_ensemble(self.members, directory, self.settings)


def deviation(runs: list[dict]) -> float:
    """The ensemble's disagreement on the solution: max over cells of the member std of
    rho/mean(rho), u/sqrt(mean T) and T/mean(T) (dimensionless); inf if a member failed."""
    if len(runs) < 2:
        return 0.0
    rho = np.stack([r["rho"] for r in runs])
    u = np.stack([r["u"] for r in runs])
    T = np.stack([r["T"] for r in runs])
    if not (np.all(np.isfinite(rho)) and np.all(np.isfinite(u)) and np.all(np.isfinite(T))):
        return float("inf")
    r_m, T_m = rho.mean(0), T.mean(0)
    d = np.concatenate([rho.std(0) / r_m, u.std(0) / np.sqrt(T_m), T.std(0) / T_m])
    return float(d.max())


def load_closure(path) -> MomentClosure:
    """The ensemble in ``path``: a closure directory (closure.json + member-<k>.pt) or a run directory."""
    members, meta = load_members(path)
    return MomentClosure(members, **meta.get("solver", {}))
