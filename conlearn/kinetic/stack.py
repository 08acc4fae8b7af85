"""The ensemble's closures stacked along a leading member axis, for one batched moment solve.

Same maths as :meth:`conlearn.kinetic.closure.Member.mu` / ``coefficients``, with every
array of the K members stacked ([K, ...]) so that one numpy call serves the whole ensemble
(the solver's cost is per call, not per flop, at 100 cells). Members must share M, D and
the network widths (an ensemble trained from one config does).
"""

from __future__ import annotations

import numpy as np

from . import moments as mom
from .closure import Member

NAMES = ("a", "A0", "A1", "A2", "B0", "B1")


class StackedClosure:
    """K members; w [K, N, M] -> closure terms [K, N, M] each."""

    def __init__(self, members: list[Member]):
        shapes = {(m.C.shape, tuple(W.shape for W, _ in m.closure)) for m in members}
        if len(shapes) != 1:
            raise ValueError(f"members differ in moments or network widths: {sorted(map(str, shapes))}")
        self.members = list(members)
        self.K, self.M, self.n = len(members), members[0].n_moments, members[0].n

        def st(f):
            return np.stack([f(m) for m in members])

        self.w_lo, self.w_hi, self.w_eq = st(lambda m: m.w_lo), st(lambda m: m.w_hi), st(lambda m: m.w_eq)
        self.w_scale = st(lambda m: m.w_scale)
        self.mu_scale = st(lambda m: m.mu_scale.reshape(-1))
        self.layers = [(st(lambda m, i=i: m.closure[i][0].transpose()), st(lambda m, i=i: m.closure[i][1])[:, None])
                       for i in range(len(members[0].closure))]
        self.net0 = st(lambda m: m._net0)[:, None]
        self.jac0T = st(lambda m: m._jac0.T)
        self.AT, self.PT = st(lambda m: m._A.T), st(lambda m: m._P.T)
        self.stackT = st(lambda m: m._stack.reshape(len(m._stack), -1).T)     # [K, 2n, 6M]
        self.e0 = mom.equilibrium(self.n).reshape(-1)
        self.cv = mom.CONSTRAINT_VALUES

    def clip(self, w: np.ndarray) -> np.ndarray:
        return np.clip(w, self.w_lo[:, None], self.w_hi[:, None])

    def coefficients(self, w: np.ndarray) -> dict[str, np.ndarray]:
        """Closure terms [K, N, M] (keys a, A0, A1, A2, B0, B1) of moments w [K, N, M]."""
        w = self.clip(w)
        z = (w - self.w_eq[:, None]) / self.w_scale[:, None]
        h = z
        for WT, b in self.layers[:-1]:
            h = np.tanh(h @ WT + b)
        WT, b = self.layers[-1]
        d = (h @ WT + b - self.net0 - z @ self.jac0T) * self.mu_scale[:, None]
        mu = self.e0 + d
        N = w.shape[1]
        rhs = np.concatenate([np.broadcast_to(self.cv, (self.K, N, 3)), w], axis=-1)
        mu = mu - (mu @ self.AT - rhs) @ self.PT
        vals = (mu @ self.stackT).reshape(self.K, N, 6, self.M)
        return {k: vals[:, :, i] for i, k in enumerate(NAMES)}
