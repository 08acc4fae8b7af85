"""The ensemble-mean closure as one fused network, for a single moment solve of the ensemble.

Every member's moments span the same complete moment space (:func:`moments.moment_space`: two
fixed rows plus a learned basis of the rest), so member k's moments are an affine function of
member 0's, w_k = T_k w_0 + t_k (exact; checked when built). One solution can then be advanced
in member 0's moments with the mean of the members' closures,

    mu(w) = (1/K) sum_k mu_k(w_k),          terms(w) = functionals of member 0 applied to mu(w),

a closure in its own right: exact at a Maxwellian (each mu_k is), and each mu_k carries w_k,
so the mean carries w. All the linear algebra after the last tanh layer (output layer, the
mu_scale, net(0) and net'(0) subtractions, the projection onto the known moments, the
functionals, 1/K) is folded into one matrix per member, and the members' layers are stacked
along a leading member axis, so one closure evaluation of the whole ensemble is

    map and clip -> 2 batched tanh layers -> one matmul   (~12 numpy calls),

in float32 by default (the tanh costs 4x less; the closure then carries the Maxwellian and w
to ~1e-6 relative instead of round-off; float64 for the exactness tests).

Shapes (fields first, as the solver keeps them): w [M, N] (member 0's normalised moments at N
points) -> terms [6, M, N] (a, A0, A1, A2, B0, B1).
"""

from __future__ import annotations

import numpy as np

from . import moments as mom
from .closure import Member

NAMES = ("a", "A0", "A1", "A2", "B0", "B1")


def member_map(ref: Member, other: Member, n_samples: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(T [M, M], t [M]) with other's moments = w_ref @ T.T + t on every normalised pair.

    Fitted on random Hermite moments that satisfy the constraints; ValueError if the map is
    not exact (the members' moments do not span the same space)."""
    rng = np.random.default_rng(seed)
    n = ref.n
    mu = rng.normal(size=(n_samples, 2 * n))
    A = mom.constraint_rows(n).reshape(3, -1)
    mu -= (mu @ A.T - mom.CONSTRAINT_VALUES) @ np.linalg.pinv(A).T
    mu = mu.reshape(n_samples, 2, n)
    w0, wk = mom.apply(ref.L["w"], mu), mom.apply(other.L["w"], mu)
    X = np.concatenate([w0, np.ones((n_samples, 1))], axis=1)
    sol, *_ = np.linalg.lstsq(X, wk, rcond=None)
    err = np.abs(X @ sol - wk).max()
    if err > 1e-8 * max(1.0, np.abs(wk).max()):
        raise ValueError(f"member moments are not an affine function of member 0's (residual {err:.2e})")
    return sol[:-1].T, sol[-1]


class MeanClosure:
    """The mean closure of ``members`` in member 0's moments (see the module docstring).

    dtype: of the hidden layers (float32: 4x cheaper tanh; the output stays float64, and at a
    Maxwellian the closure is exact to ~1e-7 of mu_scale instead of round-off)."""

    def __init__(self, members: list[Member], dtype=np.float32):
        if not members:
            raise ValueError("a mean closure needs at least one member")
        ref = members[0]
        self.members, self.K, self.M, self.n = list(members), len(members), ref.n_moments, ref.n
        self.w_eq, self.w_lo, self.w_hi = ref.w_eq, ref.w_lo, ref.w_hi
        self._lo0, self._hi0 = ref.w_lo[:, None], ref.w_hi[:, None]
        self.dtype = np.dtype(dtype)
        S0 = ref._stack.reshape(len(ref._stack), -1).T / self.K                      # [2n, 6M]
        maps = [member_map(ref, m) for m in members]
        dt = self.dtype
        self.T = np.stack([T for T, _ in maps]).astype(dt)                           # [K, M, M]
        self.t = np.stack([t for _, t in maps])[:, :, None].astype(dt)               # [K, M, 1]
        self.lo = np.stack([m.w_lo for m in members])[:, :, None].astype(dt)
        self.hi = np.stack([m.w_hi for m in members])[:, :, None].astype(dt)
        self.hidden = [(np.stack([m.closure[0][0] / m.w_scale for m in members]).astype(dt),
                        np.stack([m.closure[0][1] - (m.closure[0][0] / m.w_scale) @ m.w_eq
                                  for m in members])[:, :, None].astype(dt))]
        for i in range(1, len(ref.closure) - 1):
            self.hidden.append((np.stack([m.closure[i][0] for m in members]).astype(dt),
                                np.stack([m.closure[i][1] for m in members])[:, :, None].astype(dt)))
        out, c = [], np.zeros(S0.shape[1])
        for m in members:
            Wl, bl = m.closure[-1]
            ms = m.mu_scale.reshape(-1)
            Pt = m._P.T                                                              # [M + 3, 2n]
            Q = np.eye(2 * self.n) - m._A.T @ Pt                                     # mu -> projected mu
            Jz = (m._jac0.T / m.w_scale[:, None]) * ms                              # d/dw of z @ jac0.T * ms
            out.append(np.concatenate([(Wl.T * ms) @ Q @ S0, (-Jz @ Q + Pt[3:]) @ S0]).T)
            const = (bl - m._net0 + (m.w_eq / m.w_scale) @ m._jac0.T) * ms + mom.equilibrium(self.n).reshape(-1)
            c += const @ Q @ S0 + mom.CONSTRAINT_VALUES @ Pt[:3] @ S0
        H = len(ref.closure[-1][0][0])
        self.out = np.concatenate([np.concatenate([o[:, :H] for o in out], 1),
                                   np.concatenate([o[:, H:] for o in out], 1)], 1).astype(dt)   # [6M, K (H + M)]
        self.c = c[:, None]                                                         # [6M, 1]
        K, M = self.K, self.M
        self._Tc = self.T.reshape(K * M, M)                                          # member maps as one matmul
        self._tc, self._loc, self._hic = (a.reshape(K * M, 1) for a in (self.t, self.lo, self.hi))
        self._H = H
        self._buf: dict[int, tuple] = {}
        # the solver's combinations of the terms (rows of :meth:`solver_terms`)
        O, cc = self.out.reshape(6, self.M, -1), self.c.reshape(6, self.M, 1)
        self._out5, self._c5 = (np.concatenate([X[0], X[2], 0.5 * X[3] + X[5], -X[1], -(X[2] + 2.0 * X[4]) / 3.0])
                                for X in (O.astype(float), cc))
        self._out5 = self._out5.astype(dt)

    def clip(self, w: np.ndarray) -> np.ndarray:
        """Member-0 moments w [M, N] clipped to member 0's training range."""
        return np.minimum(np.maximum(w, self._lo0), self._hi0)     # (np.clip's wrapper costs more)

    def _member_moments(self, w: np.ndarray) -> np.ndarray:
        """Every member's clipped moments [K, M, N] of member-0 moments w [M, N]."""
        return np.minimum(np.maximum(self.T @ w.astype(self.dtype, copy=False) + self.t, self.lo), self.hi)

    def _buffers(self, N: int) -> tuple:
        """Work arrays for N points (kept: the solver calls terms with one N many times)."""
        if N not in self._buf:
            if len(self._buf) > 8:
                self._buf.clear()
            K, M, H = self.K, self.M, self._H
            x = np.empty((K * (H + M), N), self.dtype)                              # [last hidden; wk]
            hs = [np.empty((K, len(W[0]), N), self.dtype) for W, _ in self.hidden]
            self._buf[N] = (x, hs, np.empty((6 * M, N), self.dtype), np.empty((5 * M, N), self.dtype))
        return self._buf[N]

    def terms(self, w: np.ndarray) -> np.ndarray:
        """Closure terms [6, M, N] (order NAMES, float64) of member-0 moments w [M, N] (fields first).

        Written into work arrays kept per N (no large temporaries): the result is a new array."""
        x, o = self._hidden(w)
        np.matmul(self.out, x, out=o)
        return (o + self.c).reshape(6, self.M, -1)

    def solver_terms(self, w: np.ndarray) -> np.ndarray:
        """[5, M, N] float64: a, A1, A2/2 + B1, -A0, -(A1 + 2 B0)/3 of w [M, N]: with
        g = (u_x, T_x/sqrt(T), (p + sigma)_x/(rho sqrt(T)), (1 + w_0) u_x + q_x/p) the production
        terms are rho S = -rho sum_k g_k row_{k+1} (see mlsolver.production); fewer rows to compute."""
        x, _ = self._hidden(w)
        o = self._buf[w.shape[1]][3]
        np.matmul(self._out5, x, out=o)
        return (o + self._c5).reshape(5, self.M, -1)

    def _hidden(self, w: np.ndarray):
        """(x [K (H + M), N]: the last hidden layer and the members' moments, the output buffer)."""
        N = w.shape[1]
        K, M = self.K, self.M
        x, hs, o, _ = self._buffers(N)
        wk = x[K * self._H:]                                                         # [K M, N]
        np.matmul(self._Tc, w.astype(self.dtype, copy=False), out=wk)
        wk += self._tc
        np.maximum(wk, self._loc, out=wk)
        np.minimum(wk, self._hic, out=wk)
        h = wk.reshape(K, M, N)
        hs = hs[:-1] + [x[:K * self._H].reshape(K, self._H, N)]                     # the last layer writes into x
        for (W, b), out in zip(self.hidden, hs):
            np.matmul(W, h, out=out)
            out += b
            h = np.tanh(out, out=out)
        return x, o

    def coefficients(self, w: np.ndarray) -> dict[str, np.ndarray]:
        """As :meth:`Member.coefficients`: w [N, M] -> dict of [N, M]."""
        v = self.terms(np.ascontiguousarray(w.T))
        return {k: v[i].T for i, k in enumerate(NAMES)}

    def mu(self, w: np.ndarray) -> np.ndarray:
        """The mean of the members' closures [N, 2, n] (slow path, for tests and reports)."""
        wk = self._member_moments(np.ascontiguousarray(w.T)).astype(float)
        return np.mean([m.mu(wk[k].T) for k, m in enumerate(self.members)], axis=0)
