"""The RiD ensemble bias in numpy with closed-form derivatives, for the engine's inner loop.

The linearised route evaluates the bias V(s) = -sigma(eps(s)) <A>(s) and dV/ds at a single
point every few MD steps. Torch's eager autograd (a double backward for grad eps) costs ~1-5 ms
per point here, 100x an MD step; this evaluator propagates, through the same tanh MLPs, the
value, the d first and the d(d+1)/2 second derivatives of every member by forward mode
(one batched matmul per layer), and costs ~0.1 ms. It reads the weights of a
:class:`conlearn.rid.bias.EnsembleBias`; :func:`fast_bias` falls back to the object's own
``energy_and_grad`` for any other bias. Tested equal to the torch bias to 1e-9.

Per member m (A_m kJ/mol, s [d]):  F_mj = -dA_m/ds_j,  eps^2 = (1/d) sum_j Var_m F_mj,
d eps/ds_k = (1/(d eps)) sum_j mean_m[(F_mj - <F_j>) dF_mj/ds_k],
dV/ds = -sigma'(eps) <A> d eps/ds - sigma(eps) d<A>/ds.
"""

from __future__ import annotations

import math

import numpy as np


class NumpyEnsembleBias:
    """V(s) and dV/ds of an ``EnsembleBias`` (same weights, trust levels and features)."""

    def __init__(self, bias):
        ens = bias.ensemble
        self.d, self.periodic = ens.d, tuple(ens.periodic)
        self.e0, self.e1 = float(bias.e0), float(bias.e1)
        self.offset = float(getattr(bias, "offset", 0.0))     # V = -sigma (<A> - offset), if the bias has one
        self.n_layers = len(ens.neurons) + 1
        self.w = [ens.params[f"w{k}"].detach().numpy().astype(float) for k in range(self.n_layers)]
        self.b = [ens.params[f"b{k}"].detach().numpy().astype(float) for k in range(self.n_layers)]
        self.residual = list(ens.residual)
        self.shift = ens.shift.detach().numpy().astype(float)
        self.scale = ens.scale.detach().numpy().astype(float)
        self.energy_scale = float(ens.energy_scale)
        jj, kk = np.triu_indices(self.d)
        self.pairs = (jj, kk)                                  # second-derivative rows (j <= k)

    def _features(self, s: np.ndarray, second: bool) -> np.ndarray:
        """Rows [n, R, F]: value, d first derivatives (and with ``second`` the d(d+1)/2 second
        derivatives, j <= k) of the features."""
        n, d = s.shape
        jj, kk = self.pairs if second else (np.zeros(0, int), np.zeros(0, int))
        cols = []
        for j, p in enumerate(self.periodic):
            rows = np.zeros((n, 1 + d + len(jj)))
            if p:
                c, si = np.cos(s[:, j]), np.sin(s[:, j])
                rc, rs = rows.copy(), rows
                rc[:, 0], rc[:, 1 + j] = c, -si
                rs[:, 0], rs[:, 1 + j] = si, c
                if second:
                    diag = 1 + d + np.flatnonzero((jj == j) & (kk == j))[0]
                    rc[:, diag], rs[:, diag] = -c, -si
                cols += [rc, rs]
            else:
                rows[:, 0] = (s[:, j] - self.shift[j]) / self.scale[j]
                rows[:, 1 + j] = 1.0 / self.scale[j]
                cols.append(rows)
        return np.stack(cols, axis=-1)

    def members(self, s: np.ndarray, second: bool = True) -> np.ndarray:
        """A_m and its derivatives: [M, n, R] rows (value, dA/ds_j, and with ``second``
        d2A/ds_j ds_k for j <= k)."""
        d = self.d
        jj, kk = self.pairs if second else (np.zeros(0, int), np.zeros(0, int))
        x = self._features(s, second)[None]                    # [1, n, R, F]
        n, r = x.shape[1:3]
        for k in range(self.n_layers - 1):
            z = np.matmul(x.reshape(x.shape[0], n * r, -1), self.w[k]).reshape(-1, n, r, self.w[k].shape[-1])
            z[:, :, 0] += self.b[k]
            h = np.tanh(z[:, :, 0])                            # [M, n, H]
            t = 1.0 - h * h
            y = np.empty_like(z)
            y[:, :, 0] = h
            y[:, :, 1:1 + d] = t[:, :, None] * z[:, :, 1:1 + d]
            y[:, :, 1 + d:] = (t[:, :, None] * z[:, :, 1 + d:]
                               - 2.0 * (h * t)[:, :, None] * z[:, :, 1 + jj] * z[:, :, 1 + kk])
            x = x + y if self.residual[k] else y
        last = self.n_layers - 1
        out = np.matmul(x.reshape(x.shape[0], n * r, -1), self.w[last]).reshape(-1, n, r)
        out[:, :, 0] += self.b[last][:, :, 0]
        return self.energy_scale * out

    def energy_and_grad(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """s [n, d] -> (V [n] kJ/mol, dV/ds [n, d] kJ/mol/unit)."""
        s = np.asarray(s, dtype=float).reshape(-1, self.d)
        d = self.d
        rows = self.members(s, second=False)                   # [M, n, 1 + d]
        a, grad = rows[:, :, 0], rows[:, :, 1:]                # A_m [M, n], dA_m/ds [M, n, d]
        dev = grad - grad.mean(0)                              # = -(F_m - <F>)
        eps = np.sqrt((dev**2).mean(0).mean(-1))               # [n]
        t = np.clip((eps - self.e0) / (self.e1 - self.e0), 0.0, 1.0)
        sigma = 0.5 * (1.0 + np.cos(math.pi * t))
        inside = (eps > self.e0) & (eps < self.e1)             # only there does grad eps matter
        deps = np.zeros_like(s)
        if inside.any():
            rows = self.members(s[inside])                     # [M, n_in, R] with second derivatives
            hess = np.empty(rows.shape[:2] + (d, d))
            jj, kk = self.pairs
            hess[:, :, jj, kk] = rows[:, :, 1 + d:]
            hess[:, :, kk, jj] = rows[:, :, 1 + d:]
            # d eps/ds_k = (1/(d eps)) sum_j mean_m (F_mj - <F_j>) dF_mj/ds_k,  dF_mj/ds_k = -H_m,jk
            deps[inside] = np.einsum("mnj,mnjk->nk", dev[:, inside], hess) / len(a) / d / eps[inside, None]
        dsigma = np.where(inside, -0.5 * math.pi / (self.e1 - self.e0) * np.sin(math.pi * t), 0.0)
        a_mean, grad_mean = a.mean(0) - self.offset, grad.mean(0)
        v = -sigma * a_mean
        g = -dsigma[:, None] * a_mean[:, None] * deps - sigma[:, None] * grad_mean
        return v, g


def fast_bias(bias):
    """A numpy twin of an ``EnsembleBias`` (same values, ~20x cheaper per point); else ``bias``."""
    ens = getattr(bias, "ensemble", None)
    if ens is not None and hasattr(ens, "params") and hasattr(bias, "e0"):
        return NumpyEnsembleBias(bias)
    return bias
