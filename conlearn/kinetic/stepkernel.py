"""Compiled per-step kernel of the implicit MUSCL-Hancock moment step (``solver.kernel: numba``).

The same step as :class:`.meanstep.ImplicitHancock` (read its module docstring for the scheme),
with everything but the closure's matmuls in one numba function per step (float64, one thread,
loops over cells fused): the cell array with ghosts, production terms, W advanced dt/2, van Leer
faces and the Hancock predictor, the fluxes (central/Rusanov, HLLC where the step uses it), the
conservative update, the exponential relaxation with W's implicit damping (a Thomas solve for all
moments; periodic corners by Sherman-Morrison), the admissibility check of the new state and the
next step's speed. The closure (:meth:`.fused.MeanClosure.solver_terms`, flop-bound float32
matmuls) stays in numpy BLAS. At 100 cells the numpy step costs ~120 numpy calls (~0.3-1 us
each); here the step is the closure plus one compiled call.

Every arithmetic operation is the numpy step's, in the same order, so the two paths agree to
round-off (ulps from libm vs numpy's SIMD expm1 and from LAPACK's gtsv vs the Thomas loop); the
numpy path (``kernel: numpy``) stays the reference of the tests. Arrays are fields first as in
:mod:`.meanstep`: U [3, nx], W [M, nx], P [3, nx] = (rho, u, T).
"""

from __future__ import annotations

import math

import numpy as np

from .fv import step_with_fallback
from .meansolve import _SQG, primitives
from .meanstep import _FW0, _FW1, _P, _Q, _R, _SIG, _T, _U, _W, ImplicitHancock

try:
    import numba
except ImportError:                                   # pragma: no cover - numba is a core dependency
    numba = None

KERNELS = ("numba", "numpy")

# rows of the work array Z [_NZ(M), nx + 4] (besides the cell array G of meanstep)
_S, _DR, _SL, _PL, _PR, _DD, _GG, _WC, _AL, _TH, _TD, _LO, _HI, _PROD = (
    0, 6, 8, 11, 14, 17, 24, 28, 30, 31, 32, 33, 34, 35)


def _nz(M: int) -> int:
    """Rows of the work array: the fixed rows, production [M], fluxes [3 + M], right-hand sides [M + 1]."""
    return _PROD + M + (3 + M) + (M + 1)


def _cells(P, w, terms, G, Z, periodic, dx):
    """The cell array G (with ghosts), d/dx of its rows u .. FW1 (Z[_DD:]), rho w[:2] (Z[_WC:]) and
    the production terms rho S [M, nx] (Z[_PROD:]); as ImplicitHancock._cells."""
    M, nx = w.shape
    nr = G.shape[0]
    for i in range(nx):
        c = i + 2
        rho, u, T = P[0, i], P[1, i], P[2, i]
        sq = math.sqrt(T)
        G[_R, c], G[_U, c], G[_T, c] = rho, u, T
        for m in range(M):
            G[_W + m, c] = w[m, i]
            G[_W + M + m, c] = terms[0, m, i]
        p = rho * T
        G[_P, c] = p
        G[_SIG, c] = p * w[0, i]
        G[_Q, c] = (p * sq) * w[1, i]
        rs = rho * sq
        for k in range(2):
            wc = rho * w[k, i]
            Z[_WC + k, i] = wc
            G[_FW0 + k, c] = u * wc + rs * terms[0, k, i]
    for r in range(nr):
        if periodic:
            G[r, 0], G[r, 1] = G[r, nx], G[r, nx + 1]
            G[r, nx + 2], G[r, nx + 3] = G[r, 2], G[r, 3]
        else:
            G[r, 0] = G[r, 1] = G[r, 2]
            G[r, nx + 2] = G[r, nx + 3] = G[r, nx + 1]
    h = 0.5 / dx
    for r in range(7):                                   # rows _U .. _FW1, cells 1 .. nx + 2
        for j in range(nx + 2):
            Z[_DD + r, j] = (G[_U + r, j + 2] - G[_U + r, j]) * h
    for i in range(nx):
        rho, p, w0 = G[_R, i + 2], G[_P, i + 2], w[0, i]
        sq = math.sqrt(G[_T, i + 2])
        du = Z[_DD, i + 1]
        g0 = du
        g1 = Z[_DD + 1, i + 1] / sq
        g2 = (Z[_DD + 2, i + 1] + Z[_DD + 3, i + 1]) / (rho * sq)
        g3 = w0 * du
        g3 += du
        g3 += Z[_DD + 4, i + 1] / p
        mr = -rho
        g0, g1, g2, g3 = g0 * mr, g1 * mr, g2 * mr, g3 * mr
        for m in range(M):
            Z[_PROD + m, i] = g0 * terms[1, m, i] + g1 * terms[2, m, i] + g2 * terms[3, m, i] + g3 * terms[4, m, i]


def _half_w(P, wh, Z, w_eq, eq, dt, kn, periodic):
    """sigma/p, q/(p sqrt T) of W advanced dt/2 in each cell into wh [2, nx + 2] (one ghost each side)."""
    nx = P.shape[1]
    cx = 0.5 * dt / kn
    ch = -0.5 * dt
    for i in range(nx):
        rho = P[0, i]
        x = rho * cx
        em = math.expm1(-x)
        f = em * ch / x
        for k in range(2):
            lp = Z[_PROD + k, i] - Z[_DD + 5 + k, i + 1]
            if eq:
                v = w_eq[k] * (-em * rho)
                v += (1.0 + em) * Z[_WC + k, i]
            else:
                v = Z[_WC + k, i] * (1.0 + em)
            v += lp * f
            wh[k, i + 1] = v / rho
    for k in range(2):
        if periodic:
            wh[k, 0], wh[k, nx + 1] = wh[k, nx], wh[k, 1]
        else:
            wh[k, 0], wh[k, nx + 1] = wh[k, 1], wh[k, nx]


def _predict(G, Z, nx, dt, dx):
    """Face values of rho, u, T (Z[_S + 2 k + side]) from half van Leer slopes and the Hancock
    predictor over dt/2; Z[_DR:] = face rho - cell rho (as ImplicitHancock._predict)."""
    hx = 0.5 * dx
    cdt = -dt / dx
    for j in range(nx + 2):                              # cells 1 .. nx + 2 of G
        for q in range(3):
            lo = G[q, j + 1] - G[q, j]
            hi = G[q, j + 2] - G[q, j + 1]
            s = lo * hi
            if s < 0.0:
                s = 0.0
            Z[_SL + q, j] = s / (lo + hi + 1e-300)
        sr, su, sT = Z[_SL, j], Z[_SL + 1, j], Z[_SL + 2, j]
        r, v, Tc = G[0, j + 1], G[1, j + 1], G[2, j + 1]
        d0 = v * sr
        d0 += r * su
        d1 = v * su
        d1 += sT
        d1 += (Tc * sr + hx * Z[_DD + 3, j]) / r
        d2 = v * sT
        d2 += ((Tc * r + G[_SIG, j + 1]) * su + hx * Z[_DD + 4, j]) * (2.0 / 3.0) / r
        d0, d1, d2 = d0 * cdt, d1 * cdt, d2 * cdt
        Z[_PL, j], Z[_PL + 1, j], Z[_PL + 2, j] = d0 + sr, d1 + su, d2 + sT
        Z[_PR, j], Z[_PR + 1, j], Z[_PR + 2, j] = d0 - sr, d1 - su, d2 - sT
    mn = np.inf
    for f in range(nx + 1):
        for q in range(3):
            a = G[q, f + 1] + Z[_PL + q, f]
            b = G[q, f + 2] + Z[_PR + q, f + 1]
            Z[_S + 2 * q, f], Z[_S + 2 * q + 1, f] = a, b
            if q != 1:
                mn = min(mn, a, b)
        Z[_DR, f], Z[_DR + 1, f] = Z[_PL, f], Z[_PR, f + 1]
    if mn <= 0.0:                                        # back to the MUSCL faces
        for f in range(nx + 1):
            for q in range(3):
                Z[_S + 2 * q, f] = G[q, f + 1] + Z[_SL + q, f]
                Z[_S + 2 * q + 1, f] = G[q, f + 2] - Z[_SL + q, f + 1]
            Z[_DR, f], Z[_DR + 1, f] = Z[_SL, f], -Z[_SL, f + 1]


def _fluxes(G, wh, Z, M, nx, prm, safe, dense, rusanov):
    """Numerical fluxes of U and W [3 + M, nf] into Z[_PROD + M:] and U's Rusanov speeds into
    Z[_AL] from the face states (as ImplicitHancock._fluxes)."""
    dx, kn, c, wd = prm[0], prm[1], prm[2], prm[3]
    nf = nx + 1
    F0 = _PROD + M
    hllc = dense and not (safe or rusanov)
    if hllc:                                             # HLLC's weight 1 - theta > 0 on some face?
        kdx = kn / dx
        tmin = np.inf
        for f in range(nf):
            a = math.sqrt(Z[_S + 4, f]) / Z[_S, f]
            b = math.sqrt(Z[_S + 5, f]) / Z[_S + 1, f]
            th = min(1.0, kdx * (a if a >= b else b))
            Z[_TH, f] = th
            tmin = min(tmin, th)
        hllc = tmin < 1.0
    for f in range(nf):
        r0, r1 = Z[_S, f], Z[_S + 1, f]
        v0, v1 = Z[_S + 2, f], Z[_S + 3, f]
        T0, T1 = Z[_S + 4, f], Z[_S + 5, f]
        p0, p1 = r0 * T0, r1 * T1
        s0, s1 = math.sqrt(T0), math.sqrt(T1)
        m0, m1 = r0 * v0, r1 * v1
        E0 = m0 * v0 * 0.5 + 1.5 * p0
        E1 = m1 * v1 * 0.5 + 1.5 * p1
        f10 = m0 * v0 + p0
        f11 = m1 * v1 + p1
        e0, e1 = E0 + p0, E1 + p1
        if not safe:
            a0, a1 = p0 * wh[0, f], p1 * wh[0, f + 1]
            f20 = (e0 + a0) * v0 + p0 * s0 * wh[1, f]
            f21 = (e1 + a1) * v1 + p1 * s1 * wh[1, f + 1]
            g1 = (f10 + a0 + (f11 + a1)) * 0.5
        else:
            f20, f21 = e0 * v0, e1 * v1
            g1 = (f10 + f11) * 0.5
        al0 = abs(v0) + c * s0
        al1 = abs(v1) + c * s1
        al = al0 if al0 >= al1 else al1
        Z[_AL, f] = al
        g0 = (m0 + m1) * 0.5
        g2 = (f20 + f21) * 0.5
        q0, q1, q2 = r1 - r0, m1 - m0, E1 - E0
        ha = 0.5 * al
        kw = wd * ha
        if hllc:
            th = Z[_TH, f]
            j0, j1, j2 = _hllc_jump(r0, r1, v0, v1, p0, p1, E0, E1, m0, m1, s0, s1, f10, f11,
                                    e0 * v0, e1 * v1)
            om = 1.0 - th
            k = th * ha
            Z[F0, f] = g0 + om * j0 - k * q0
            Z[F0 + 1, f] = g1 + om * j1 - k * q1
            Z[F0 + 2, f] = g2 + om * j2 - k * q2
        else:
            Z[F0, f] = g0 - q0 * ha
            Z[F0 + 1, f] = g1 - q1 * ha
            Z[F0 + 2, f] = g2 - q2 * ha
        rs0, rs1 = r0 * s0, r1 * s1
        dr0, dr1 = Z[_DR, f], Z[_DR + 1, f]
        for m in range(M):
            w0, w1 = G[_W + m, f + 1], G[_W + m, f + 2]
            Q0, Q1 = r0 * w0, r1 * w1
            gw = (v0 * Q0 + rs0 * G[_W + M + m, f + 1] + (v1 * Q1 + rs1 * G[_W + M + m, f + 2])) * 0.5
            if safe:                                     # (no face-density damping)
                Z[F0 + 3 + m, f] = gw
            elif hllc:
                Z[F0 + 3 + m, f] = gw - kw * (dr1 * w1 - dr0 * w0)
            else:
                Z[F0 + 3 + m, f] = gw - (dr1 * w1 - dr0 * w0) * wd * ha
    return hllc


def _star(n, S, ss, p, v, E, r):
    """(star density, star energy - E) of one side of an HLLC face: n = (S - v) r, contact speed ss."""
    kk = n / (S - ss)
    e = p / n
    e += ss
    e *= ss - v
    e += E / r
    e *= kk
    e -= E
    return kk, e


def _hllc_jump(r0, r1, v0, v1, p0, p1, E0, E1, m0, m1, s0, s1, f10, f11, f20, f21):
    """Euler HLLC flux minus the central average of the Euler fluxes at one face (as
    meanstep._hllc_jump; f1, f2: the Euler momentum and energy fluxes of each side)."""
    c0, c1 = _SQG * s0, _SQG * s1
    a, b = v0 - c0, v1 - c1
    SL = a if a <= b else b
    a, b = v0 + c0, v1 + c1
    SR = a if a >= b else b
    n0 = (SL - v0) * r0
    n1 = (SR - v1) * r1
    ss = (p1 - p0 + v0 * n0 - v1 * n1) / (n0 - n1)
    if ss >= 0:                                          # the left star state
        kk, e = _star(n0, SL, ss, p0, v0, E0, r0)
        s = SL if SL < 0.0 else 0.0
        return ((kk - r0) * s - 0.5 * (m1 - m0), (kk * ss - m0) * s - 0.5 * (f11 - f10),
                e * s - 0.5 * (f21 - f20))
    kk, e = _star(n1, SR, ss, p1, v1, E1, r1)
    s = SR if SR > 0.0 else 0.0
    return ((kk - r1) * s + 0.5 * (m1 - m0), (kk * ss - m1) * s + 0.5 * (f11 - f10),
            e * s + 0.5 * (f21 - f20))


def _thomas(lo, d, hi, B, n_rhs, n):
    """Solve the tridiagonal system (sub lo[i] = A[i, i - 1], diagonal d, super hi[i] = A[i, i + 1])
    for the rows B[:n_rhs] [., n] in place, without pivoting (the damping matrix is diagonally
    dominant), in LAPACK gtsv's order; d is overwritten."""
    for i in range(n - 1):
        fact = lo[i + 1] / d[i]
        d[i + 1] = d[i + 1] - fact * hi[i]
        for k in range(n_rhs):
            B[k, i + 1] = B[k, i + 1] - fact * B[k, i]
    for k in range(n_rhs):
        B[k, n - 1] = B[k, n - 1] / d[n - 1]
        for i in range(n - 2, -1, -1):
            B[k, i] = (B[k, i] - hi[i] * B[k, i + 1]) / d[i]


def _relax(W0, U1, Z, M, nx, prm, w_eq, eq, periodic, W1):
    """W1 [M, nx]: the exponential relaxation with W's implicit damping (as ImplicitHancock._relax),
    from dt times W's explicit rate in Z[_PROD:] (production) and the flux differences."""
    dx, kn, wd, dt = prm[0], prm[1], prm[3], prm[4]
    F0 = _PROD + M
    B = Z[F0 + 3 + M:F0 + 3 + M + M + 1]
    d, lo, hi, al = Z[_TD], Z[_LO], Z[_HI], Z[_AL]
    cdx = dt / dx
    cx = dt / kn
    cK = -0.5 * wd * dt / dx
    for i in range(nx):
        rho1 = U1[0, i]
        x = rho1 * cx
        em = math.expm1(-x)
        phi = -(em / x)
        e = em + 1.0
        for m in range(M):
            L = (Z[F0 + 3 + m, i] - Z[F0 + 3 + m, i + 1]) * cdx + dt * Z[_PROD + m, i]
            if eq:
                b = w_eq[m] * (-em * rho1)
                b += e * W0[m, i]
            else:
                b = W0[m, i] * e
            B[m, i] = b + L * phi
        cc = phi * cK
        lo[i] = cc * al[i]
        hi[i] = cc * al[i + 1]
        d[i] = 1.0 - lo[i] - hi[i]
    if not periodic:
        d[0] += lo[0]
        d[nx - 1] += hi[nx - 1]
        _thomas(lo, d, hi, B, M, nx)
        for m in range(M):
            for i in range(nx):
                W1[m, i] = B[m, i]
        return
    # corners A[0, n-1] = lo[0], A[n-1, 0] = hi[n-1] removed by Sherman-Morrison (as ImplicitHancock)
    g = -d[0]
    d[0] -= g
    d[nx - 1] -= hi[nx - 1] * lo[0] / g
    for i in range(nx):
        B[M, i] = 0.0
    B[M, 0], B[M, nx - 1] = g, hi[nx - 1]
    _thomas(lo, d, hi, B, M + 1, nx)
    cv = lo[0] / g
    vzM = B[M, 0] + cv * B[M, nx - 1]
    for m in range(M):
        f = (B[m, 0] + cv * B[m, nx - 1]) / (1.0 + vzM)
        for i in range(nx):
            W1[m, i] = B[m, i] - f * B[M, i]


def _step(U, W, P, w, terms, G, wh, Z, prm, w_eq, lohi, flags, U1, W1, P1, w1):
    """One implicit Hancock step dt = prm[4] (prm = dx, kn, c, w_damping, dt, kn/dx) of U, W with
    P = primitives(U), the clipped w and the closure's solver terms, into U1, W1, P1 = primitives(U1)
    and w1 = the clip of W1/rho1 to lohi [2, M] (the next step's closure input; flags[5]: clip here).
    flags = (safe, dense, eq, periodic, rusanov, clip). Returns (admissible, dense, max(|u| + c sqrt T))
    of the new state (rho, T > 0 and finite)."""
    M, nx = W.shape
    dx, kn, c, dt = prm[0], prm[1], prm[2], prm[4]
    safe, dense, eq, periodic, rusanov = flags[0], flags[1], flags[2], flags[3], flags[4]
    _cells(P, w, terms, G, Z, periodic, dx)
    if not safe:
        _half_w(P, wh, Z, w_eq, eq, dt, kn, periodic)
        _predict(G, Z, nx, dt, dx)
    else:
        for f in range(nx + 1):
            for q in range(3):
                Z[_S + 2 * q, f], Z[_S + 2 * q + 1, f] = G[q, f + 1], G[q, f + 2]
    _fluxes(G, wh, Z, M, nx, prm, safe, dense, rusanov)
    F0 = _PROD + M
    cdx = dt / dx
    for k in range(3):
        for i in range(nx):
            U1[k, i] = (Z[F0 + k, i] - Z[F0 + k, i + 1]) * cdx + U[k, i]
    _relax(W, U1, Z, M, nx, prm, w_eq, eq, periodic, W1)
    info = _primitives_info(U1, P1, c, prm[5])
    if info[0] and flags[5]:
        _clip(W1, P1[0], lohi[0], lohi[1], w1)
    return info


def _primitives_info(U, P, c, kdx):
    """P = primitives(U) in place; (rho, T > 0 and P finite, Kn sqrt(min T)/max rho < dx,
    max(|u| + c sqrt T)) of it."""
    nx = U.shape[1]
    ok = True
    smin, rmax, sp = np.inf, -np.inf, -np.inf
    for i in range(nx):
        rho = U[0, i]
        u = U[1, i] / rho
        T = (U[2, i] / rho - 0.5 * u * u) * (2.0 / 3.0)
        P[0, i], P[1, i], P[2, i] = rho, u, T
        if not (rho > 0.0 and T > 0.0 and math.isfinite(rho) and math.isfinite(u) and math.isfinite(T)):
            ok = False
            continue
        sq = math.sqrt(T)
        smin = min(smin, sq)
        rmax = max(rmax, rho)
        sp = max(sp, abs(u) + c * sq)
    return ok, kdx * smin < rmax, sp


def _clip(W, rho, lo, hi, w):
    """w [M, nx] = min(max(W/rho, lo), hi) (the closure's clip of the normalised moments)."""
    M, nx = W.shape
    for m in range(M):
        for i in range(nx):
            v = W[m, i] / rho[i]
            if v < lo[m]:
                v = lo[m]
            if v > hi[m]:
                v = hi[m]
            w[m, i] = v


if numba is not None:
    _jit = numba.njit(cache=True)
    _cells, _half_w, _predict, _star, _hllc_jump, _fluxes, _thomas, _relax, _primitives_info, _clip = (
        _jit(f) for f in (_cells, _half_w, _predict, _star, _hllc_jump, _fluxes, _thomas, _relax, _primitives_info,
                          _clip))
    _step = _jit(_step)                                   # the only entry point (loading it costs ~0.1 s once)


def check_kernel(kernel: str) -> str:
    if kernel not in KERNELS:
        raise ValueError(f"kernel: unknown step kernel {kernel!r}; allowed: {', '.join(KERNELS)}")
    if kernel == "numba" and numba is None:                # pragma: no cover
        raise ValueError("kernel: numba is not installed; use kernel 'numpy'")
    return kernel


class KernelHancock(ImplicitHancock):
    """:class:`.meanstep.ImplicitHancock` with the step compiled (:func:`_step`); same arguments."""

    def __init__(self, closure, nx, dx, idx, kn, c, w_damping, flux="hllc"):
        super().__init__(closure, nx, dx, idx, kn, c, w_damping, flux)
        M = self.M
        self.Z = np.zeros((_nz(M), nx + 4))
        self.wh[:] = 0.0
        self.weq = np.ascontiguousarray(self.w_eq[:, 0], dtype=float)
        clip = self.lo is not None
        self.lohi = np.zeros((2, M))
        if clip:
            self.lohi[0], self.lohi[1] = np.broadcast_to(self.lo, (M, 1))[:, 0], np.broadcast_to(self.hi, (M, 1))[:, 0]
        self.prm = np.array([dx, kn, c, w_damping, 0.0, kn / dx])
        self.flags = np.array([False, True, self.eq, self.periodic, flux == "rusanov", clip])
        self.bufs = [tuple(np.empty(s) for s in ((3, nx), (M, nx), (3, nx), (M, nx))) for _ in range(2)]

    def run(self, U, W, t_end: float, cfl: float, cfl_rarefied: float | None = None):
        """As :meth:`.meanstep.ImplicitHancock.run`."""
        U, W = np.ascontiguousarray(U, float), np.ascontiguousarray(W, float)
        P = primitives(U)
        w = self._clipped(W, P[0], np.empty_like(W))
        sq = np.sqrt(P[2])
        dense = self.kn / self.dx * sq.min() < P[0].max()
        sp = (np.abs(P[1]) + self.c * sq).max()
        t, steps, fallbacks, dx = 0.0, 0, 0, self.dx
        cfl_r = cfl if cfl_rarefied is None else cfl_rarefied
        k = 0
        while t < t_end * (1 - 1e-12):
            dt = min((cfl if dense else cfl_r) * dx / sp, t_end - t)

            def attempt(dt, safe, U=U, W=W, P=P, w=w, dense=dense, out=self.bufs[k]):
                *new, ok, dn, s = self.kernel_step(U, W, P, w, dt, safe, dense, out)
                return (*new, dn, s) if ok else None

            (U, W, P, w, dense, sp), dt, redone = step_with_fallback(attempt, dt, t)
            t, steps, fallbacks, k = t + dt, steps + 1, fallbacks + redone, 1 - k
        return U.copy(), W.copy(), P.copy(), steps, fallbacks

    def _clipped(self, W, rho, w):
        """w = the closure's clip of W/rho (numpy; the kernel clips the next step's w itself)."""
        self._clip(W, rho, w)
        return w

    def kernel_step(self, U, W, P, w, dt, safe=False, dense=True, out=None):
        """(U1, W1, P1 = primitives(U1), w1 = clip(W1/rho1), admissible, dense, max(|u| + c sqrt T)
        of U1): one step dt (as :meth:`.meanstep.ImplicitHancock.step`) of C-contiguous float64 U, W
        with P = primitives(U) and w = clip(W/rho), into ``out`` (four arrays like U, W, P, w; new
        ones if None)."""
        self.prm[4] = dt
        self.flags[0], self.flags[1] = safe, dense
        terms = np.ascontiguousarray(self.terms(w), dtype=float)
        if out is None:
            out = (np.empty_like(U), np.empty_like(W), np.empty_like(P), np.empty_like(W))
        ok, dn, s = _step(U, W, P, w, terms, self.G, self.wh, self.Z, self.prm, self.weq, self.lohi, self.flags, *out)
        if ok and not self.flags[5]:
            self._clip(out[1], out[2][0], out[3])
        return (*out, ok, dn, s)
