"""MUSCL-Hancock step of the moment system with W's damping implicit (``solver.w_implicit``).

The explicit schemes of :mod:`.meansolve` damp W with a Rusanov term of speed w_damping times
alpha = |u| + c sqrt(T) (c = ``wave_speed``), explicit, so their step is bound by
cfl * w_damping <= 1 (cfl <= 0.5 for w_damping = 2). Here that damping,
D(W)_i = (K_{i+1/2} (W_{i+1} - W_i) - K_{i-1/2} (W_i - W_{i-1}))/dx with K = 0.5 w_damping alpha
on the faces, is taken at the new time inside the exponential relaxation,

    W1 = e W0 + (1 - e) rho w_eq + phi dt (L + D(W1)),   e = exp(-rho dt/Kn), phi = (1 - e)/(rho dt/Kn),

one tridiagonal solve (LAPACK gtsv) for all M moments per step, so the step follows U's wave
speed alone: dt = cfl dx / max(|u| + c sqrt(T)) with cfl up to 1 (``solver.implicit_cfl``, and
``solver.rarefied_cfl`` in steps where the mean free path is at least a cell everywhere).
The rest of the damping, the part that comes from U's reconstructed density at the faces
(rho_face - rho_cell) w, stays explicit as in :mod:`.meansolve`. At small Kn phi dt -> Kn/rho,
so the damping fades with the non-equilibrium as before (asymptotic preserving).

With the larger step the coupling of U to W is made second order in time: the stress and heat
flux (sigma, q) in U's flux are those of W advanced dt/2 in each cell (central differences of
W's flux, the production terms, exact relaxation), and the Hancock predictor of the face values
of (rho, u, T) includes the non-equilibrium terms (u_t -= sigma_x/rho,
T_t -= 2/3 (sigma u_x + q_x)/rho). Measured (100 cells, t = 0.1, the benchmark's Sod, wave and
random cases): at cfl 0.45 the scheme gives the explicit Hancock scheme's errors; its errors grow
with cfl only on Sod at Kn = 1e-3 (see docs/kinetic.md).

The step is written for few numpy calls (the cost at 100 cells is per call): cell quantities
are written once into one array with ghost columns, faces are strided views of it, work arrays
are allocated once per grid. Conservative to round-off in U. Arrays are fields first:
U [3, nx], W [M, nx], P [3, nx] = (rho, u, T).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided
from scipy.linalg.lapack import dgtsv

from .fv import step_with_fallback
from .meansolve import _SQG, blend, primitives

_min = np.minimum.reduce                                         # (ndarray.min's wrapper costs more)

# rows of the cell array (with two ghost columns each side)
_R, _U, _T, _P, _SIG, _Q, _FW0, _FW1, _W = range(9)


def _hllc_jump(r, v, p, E, mo, sq, dF):
    """Euler HLLC flux minus the central average of the Euler fluxes [3, nf] of the face states
    r, v, p, E, mo = r v, sq = sqrt(T) [2, nf] (left, right), dF = F_right - F_left [3, nf]
    (the flux of :func:`.meansolve._hllc`, both sides' star states at once)."""
    c = _SQG * sq
    SK = np.empty_like(r)                                        # the signal speeds S_L, S_R
    np.minimum.reduce(v - c, axis=0, out=SK[0])
    np.maximum.reduce(v + c, axis=0, out=SK[1])
    m = SK - v
    m *= r
    vm = v * m
    ss = (p[1] - p[0] + vm[0] - vm[1]) / (m[0] - m[1])          # contact speed S* [nf]
    kk = m / (SK - ss)                                           # star densities [2, nf]
    D = np.empty((3,) + r.shape)                                 # star minus own state, each side
    np.subtract(kk, r, out=D[0])
    np.multiply(kk, ss, out=D[1])
    D[1] -= mo
    e = D[2]
    np.divide(p, m, out=e)
    e += ss
    e *= ss - v
    e += E / r
    e *= kk
    e -= E
    np.minimum(SK[0], 0.0, out=SK[0])                            # supersonic faces take the upwind flux
    np.maximum(SK[1], 0.0, out=SK[1])
    D *= SK
    h = 0.5 * dF
    D[:, 0] -= h
    D[:, 1] += h
    return np.where(ss >= 0, D[:, 0], D[:, 1])


def _pairs(a: np.ndarray) -> np.ndarray:
    """View [rows, 2, n - 1] (left, right) of the neighbour pairs of a [rows, n] (no copy)."""
    r, c = a.strides
    return as_strided(a, (a.shape[0], 2, a.shape[1] - 1), (r, c, c), writeable=False)


class ImplicitHancock:
    """Stepper for one grid: nx cells of width dx, ghost index idx [nx + 4] (periodic or Neumann),
    Knudsen number kn, U's Rusanov speed coefficient c, W's damping w_damping, U's flux."""

    def __init__(self, closure, nx: int, dx: float, idx: np.ndarray, kn: float, c: float, w_damping: float,
                 flux: str = "hllc"):
        self.closure, self.nx, self.dx, self.kn, self.c, self.wd = closure, nx, dx, kn, c, w_damping
        self.periodic = bool(idx[0] != 0)
        self.flux = flux
        M = self.M = len(closure.w_eq)
        nf = nx + 1
        self.w_eq = closure.w_eq[:, None]
        self.eq = bool(np.any(self.w_eq != 0))                   # w_eq = 0 saves a few calls
        self.G = np.empty((_W + 2 * M, nx + 4))                  # cells with ghosts
        self.Gi = self.G[:, 2:nx + 2]                            # the cells
        self.wh = np.empty((2, nx + 2))                          # sigma/p, q/(p sqrt T) at t + dt/2, one ghost
        self.wa = _pairs(self.G[_W:, 1:nx + 3])                  # w, a at the faces' left, right [2M, 2, nf]
        self.whf = _pairs(self.wh)                               # [2, 2, nf]
        self.S = np.empty((3, 2, nf))                            # face rho, u, T
        self.Q = np.empty((3 + M, 2, nf))
        self.F = np.empty((3 + M, 2, nf))
        self.dr = np.empty((2, nf))                              # face rho - cell rho
        self.scale = np.ones((3 + M, 1))
        self.scale[3:] = w_damping
        self.Dq = np.empty((3 + M, nf))
        self.b = np.empty((M + 1, nx))                           # right-hand sides of the implicit solve
        self.g = np.empty((4, nx))
        self.lo, self.hi = getattr(closure, "_lo0", None), getattr(closure, "_hi0", None)   # else closure.clip
        st = getattr(closure, "solver_terms", None)
        self.terms = st if st is not None else self._solver_terms

    def _solver_terms(self, w):
        """solver_terms of a closure that has only terms (see :meth:`.fused.MeanClosure.solver_terms`)."""
        t = self.closure.terms(w)
        return np.stack([t[0], t[2], 0.5 * t[3] + t[5], -t[1], -(t[2] + 2.0 * t[4]) / 3.0])

    def _ghosts(self, rows=slice(None)):
        G, nx = self.G, self.nx
        if self.periodic:
            G[rows, :2] = G[rows, nx:nx + 2]
            G[rows, nx + 2:] = G[rows, 2:4]
        else:
            G[rows, :2] = G[rows, 2:3]
            G[rows, nx + 2:] = G[rows, nx + 1:nx + 2]

    def run(self, U, W, t_end: float, cfl: float, cfl_rarefied: float | None = None):
        """Advance U [3, nx], W [M, nx] to t_end with dt = cfl dx / max(|u| + c sqrt(T)), or with
        ``cfl_rarefied`` (default: cfl) in the steps where the mean free path Kn sqrt(T)/rho is at
        least a cell everywhere (Kn sqrt(min T)/max rho >= dx: no HLLC face). A step that leaves
        rho <= 0 or T <= 0 (or non-finite values) is redone ``safe``, then halved.
        Returns (U, W, P, steps, fallbacks)."""
        P = primitives(U)
        sq = np.sqrt(P[2])
        t, steps, fallbacks, c, dx = 0.0, 0, 0, self.c, self.dx
        cfl_r = cfl if cfl_rarefied is None else cfl_rarefied
        kdx = self.kn / dx
        while t < t_end * (1 - 1e-12):
            dense = kdx * _min(sq) < np.maximum.reduce(P[0])    # some mean free path below a cell
            sp = np.abs(P[1])
            sp += c * sq
            dt = min((cfl if dense else cfl_r) * dx / np.maximum.reduce(sp), t_end - t)
            (U, W, P), dt, redone = step_with_fallback(
                lambda dt, safe: self._admissible(self.step(U, W, P, sq, dt, safe, dense)), dt, t)
            t, steps, fallbacks = t + dt, steps + 1, fallbacks + redone
            sq = np.sqrt(P[2])
        return U, W, P, steps, fallbacks

    @staticmethod
    def _admissible(UW):
        """(U, W, P) of a step's (U, W), or None where rho or T <= 0 or a value is not finite."""
        Pn = primitives(UW[0])
        return (*UW, Pn) if _min(Pn[0:3:2], axis=None) > 0 and np.isfinite(Pn.sum()) else None

    def step(self, U, W, P, sq, dt, safe=False, dense=True):
        """(U1 [3, nx], W1 [M, nx]) one step dt after U, W with P = primitives(U), sq = sqrt(T);
        ``safe``: first order in space and time with the Rusanov Euler flux for U (W as always);
        ``dense``: False where Kn sqrt(min T)/max rho >= dx is known (no HLLC face)."""
        prod, D, Wc = self._cells(W, P, sq)
        if not safe:
            self._half_w(W, P, dt, prod, D, Wc)
            self._predict(dt, D)
        else:
            S, G, nx = self.S, self.G, self.nx
            S[:, 0], S[:, 1] = G[:3, 1:nx + 2], G[:3, 2:nx + 3]
        Gf, alpha = self._fluxes(P, safe, dense)
        dQ = Gf[:, :-1] - Gf[:, 1:]
        dQ *= dt / self.dx
        U1 = dQ[:3]
        U1 += U
        L = dQ[3:]
        L += dt * prod
        return U1, self._relax(W, L, U1[0], dt, alpha)

    def _cells(self, W, P, sq):
        """Fill the cell array (with ghosts) from W [M, nx], P, sq = sqrt(T) [nx]: evaluates the
        closure once. Returns (rho S [M, nx] the production terms, D [7, nx + 2] d/dx of
        u, T, p, sigma, q and W's first two fluxes at cells 1 .. nx + 2, rho w[:2] [2, nx])."""
        nx, M, G, Gi = self.nx, self.M, self.G, self.Gi
        rho, u, T = P
        Gi[:3] = P
        w = Gi[_W:_W + M]
        self._clip(W, rho, w)
        terms = self.terms(w)                                    # [5, M, nx] (fused.MeanClosure.solver_terms)
        a = terms[0]
        Gi[_W + M:] = a
        p = np.multiply(rho, T, out=Gi[_P])
        np.multiply(p, w[0], out=Gi[_SIG])
        psq = p * sq
        np.multiply(psq, w[1], out=Gi[_Q])
        Wc = rho * w[:2]                                         # the (clipped) sigma, q moments
        FW = Gi[_FW0:_FW1 + 1]
        np.multiply(u, Wc, out=FW)
        FW += (rho * sq) * a[:2]
        self._ghosts()
        D = G[_U:_FW1 + 1, 2:] - G[_U:_FW1 + 1, :-2]
        D *= 0.5 / self.dx
        Di = D[:, 1:nx + 1]
        g = self.g                                               # (u_x, T_x/sqrt T, (p + sigma)_x/(rho sqrt T),
        g[0] = Di[0]                                             #  (1 + w0) u_x + q_x/p)
        np.divide(Di[1], sq, out=g[1])
        np.add(Di[2], Di[3], out=g[2])
        g[2] /= rho * sq
        np.multiply(w[0], Di[0], out=g[3])
        g[3] += Di[0]
        g[3] += Di[4] / p
        g *= -rho
        return np.einsum("kn,kmn->mn", g, terms[1:]), D, Wc

    def _clip(self, W, rho, w):
        """w [M, nx] = the closure's clip of W/rho, written in place."""
        if self.lo is None:
            w[:] = self.closure.clip(W / rho)
            return
        np.divide(W, rho, out=w)
        np.maximum(w, self.lo, out=w)
        np.minimum(w, self.hi, out=w)

    def _half_w(self, W, P, dt, prod, D, Wc):
        """sigma/p and q/(p sqrt T) of W advanced dt/2 in each cell (central differences of W's
        flux, production, exact relaxation), into self.wh (with ghosts)."""
        nx, kn = self.nx, self.kn
        rho = P[0]
        x = rho * (0.5 * dt / kn)
        em = np.expm1(-x)                                        # e^(-x) - 1
        Lp = prod[:2] - D[5:, 1:nx + 1]
        wh = self.wh[:, 1:nx + 1]
        if self.eq:
            np.multiply(self.w_eq[:2], -em * rho, out=wh)       # (1 - e) rho w_eq
            wh += (1.0 + em) * Wc
        else:
            np.multiply(Wc, 1.0 + em, out=wh)
        Lp *= em * (-0.5 * dt) / x                              # phi dt/2
        wh += Lp
        wh /= rho
        self._ghost_wh()

    def _predict(self, dt, D):
        """Face values of rho, u, T (self.S) from van Leer slopes (half) and the Hancock predictor
        over dt/2 with the non-equilibrium terms; self.dr = face rho - cell rho."""
        nx, dx, G, S, dr = self.nx, self.dx, self.G, self.S, self.dr
        d = G[:3, 1:] - G[:3, :-1]
        lo, hi = d[:, :-1], d[:, 1:]
        s = lo * hi
        np.maximum(s, 0.0, out=s)
        s /= lo + hi + 1e-300                                    # [3, nx + 2], cells 1 .. nx + 2
        r, v, Tc = G[:3, 1:nx + 3]
        sr, su, sT = s
        dP = v * s
        dP[0] += r * su
        dP[1] += sT
        hx = 0.5 * dx
        dP[1] += (Tc * sr + hx * D[3]) / r
        dP[2] += ((Tc * r + G[_SIG, 1:nx + 3]) * su + hx * D[4]) * (2.0 / 3.0) / r
        dP *= -dt / dx
        pl = dP + s
        dP -= s
        np.add(G[:3, 1:nx + 2], pl[:, :-1], out=S[:, 0])
        np.add(G[:3, 2:nx + 3], dP[:, 1:], out=S[:, 1])
        dr[0], dr[1] = pl[0, :-1], dP[0, 1:]
        if _min(S[0:3:2], axis=None) <= 0.0:                     # back to the MUSCL faces
            np.add(G[:3, 1:nx + 2], s[:, :-1], out=S[:, 0])
            np.subtract(G[:3, 2:nx + 3], s[:, 1:], out=S[:, 1])
            dr[0], dr[1] = s[0, :-1], -s[0, 1:]

    def _fluxes(self, P, safe, dense):
        """(numerical fluxes of U and W [3 + M, nf] at the faces, Rusanov speeds alpha [nf]) from
        the face states (self.S, the cell array's w and a, self.wh, self.dr)."""
        M, dx, kn, S, Q, F = self.M, self.dx, self.kn, self.S, self.Q, self.F
        r, v, Tf = S
        wf, af = self.wa[:M], self.wa[M:]
        pf = r * Tf
        sqf = np.sqrt(Tf)
        Q[0] = r
        mo = np.multiply(r, v, out=Q[1])
        E = np.multiply(mo, v, out=Q[2])
        E *= 0.5
        E += 1.5 * pf
        np.multiply(r, wf, out=Q[3:])
        F[0] = mo
        np.multiply(mo, v, out=F[1])
        F[1] += pf
        Ep = E + pf
        hllc = dense and not (safe or self.flux == "rusanov")
        if hllc:                                                 # HLLC's weight 1 - theta > 0 on some face?
            theta = blend(r, Tf, kn, dx, self.c)
            hllc = _min(theta) < 1.0
        if hllc:
            np.multiply(Ep, v, out=F[2])
            dF = F[:3, 1] - F[:3, 0]                             # jump of the Euler fluxes
        if not safe:
            sig = pf * self.whf[0]
            F[1] += sig
            Ep += sig
            np.multiply(Ep, v, out=F[2])
            np.multiply(pf, sqf, out=sig)
            sig *= self.whf[1]
            F[2] += sig
        else:
            np.multiply(Ep, v, out=F[2])
        np.multiply(v, Q[3:], out=F[3:])
        F[3:] += (r * sqf) * af
        alpha = np.abs(v)
        alpha += self.c * sqf
        alpha = np.maximum.reduce(alpha)                         # [nf]
        Dq = self.Dq
        np.subtract(Q[:3, 1], Q[:3, 0], out=Dq[:3])
        if not safe:                                             # only (rho_face - rho_cell) w explicit for W
            X = self.dr * wf
            np.subtract(X[:, 1], X[:, 0], out=Dq[3:])
        else:
            Dq[3:] = 0.0
        Gf = F[:, 0] + F[:, 1]
        Gf *= 0.5
        if hllc:
            Gf[:3] += (1.0 - theta) * _hllc_jump(r, v, pf, E, mo, sqf, dF)
            half_a = 0.5 * alpha
            Gf[:3] -= (theta * half_a) * Dq[:3]
            Gf[3:] -= (self.wd * half_a) * Dq[3:]
        else:
            Dq *= self.scale
            Dq *= 0.5 * alpha
            Gf -= Dq
        return Gf, alpha

    def _ghost_wh(self):
        wh, nx = self.wh, self.nx
        if self.periodic:
            wh[:, 0], wh[:, nx + 1] = wh[:, nx], wh[:, 1]
        else:
            wh[:, 0], wh[:, nx + 1] = wh[:, 1], wh[:, nx]

    def _relax(self, W0, L, rho1, dt, alpha):
        """W1 [M, nx]: the implicit relaxation and damping (module docstring) at the new density
        rho1 [nx]; L: dt times W's explicit rate [M, nx] (overwritten); alpha [nx + 1]: U's Rusanov
        speeds at the faces."""
        M, b = self.M, self.b
        x = rho1 * (dt / self.kn)
        em = np.expm1(-x)                                        # e - 1
        phi = em / x
        phi *= -1.0                                              # phi = (1 - e)/x
        e = em + 1.0
        if self.eq:
            np.multiply(self.w_eq, (-em) * rho1, out=b[:M])    # (1 - e) rho w_eq
            b[:M] += e * W0
        else:                                                    # (w_eq = 0: normalised moments)
            np.multiply(W0, e, out=b[:M])
        L *= phi                                                 # (L arrives as dt L)
        b[:M] += L
        c = phi * (-0.5 * self.wd * dt / self.dx)                # -phi dt K / alpha / dx
        nlo = c * alpha[:-1]                                     # couplings to i - 1, i + 1 (negative)
        nhi = c * alpha[1:]
        d = 1.0 - nlo
        d -= nhi
        if not self.periodic:
            d[0] += nlo[0]
            d[-1] += nhi[-1]
            return dgtsv(nlo[1:], d, nhi[:-1], b[:M].T)[3].T
        # corners A[0, n-1] = nlo[0], A[n-1, 0] = nhi[n-1] removed by Sherman-Morrison:
        # A = T' + u v^T, u = (g, 0.., nhi[-1]), v = (1, 0.., nlo[0]/g)
        g = -d[0]
        d[0] -= g
        d[-1] -= nhi[-1] * nlo[0] / g
        b[M] = 0.0
        b[M, 0], b[M, -1] = g, nhi[-1]
        z = dgtsv(nlo[1:], d, nhi[:-1], b.T)[3].T                # [M + 1, n]
        vz = z[:, 0] + (nlo[0] / g) * z[:, -1]
        return z[:M] - np.multiply.outer(vz[:M] / (1.0 + vz[M]), z[M])
