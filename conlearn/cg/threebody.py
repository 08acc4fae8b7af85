"""A Stillinger-Weber-type three-body bead potential, linear in its coefficients.

For every bead ``i`` and every pair of its neighbours ``j < k`` closer than ``a``:

    E = sum_i sum_{j<k} g(r_ij) g(r_ik) P(cos theta_jik),
    g(r) = exp(gamma / (r - a))  (r < a; 0 beyond, every derivative vanishes at a),
    P(c) = sum_m lam_m c^m,  m = 0 .. degree.

The mW model's term is ``lam eps (c + 1/3)^2``: a quadratic P. Because E is linear in
``lam``, it is force-matched together with a pair table by one linear least-squares problem
(:class:`conlearn.cg.pair.PairForceMatch` with ``angular=``; Larini, Lu & Voth, JCP 132,
164107, 2010, fitted the same term to CG water). The explicit angular term is what favours
the tetrahedral ~105 deg angle that no pair potential gives.

Units: nm, kJ/mol, kJ/mol/nm. The MD hot loop is one numba kernel (:func:`basis_forces`);
:func:`torch_energy` is the autograd reference it is tested against.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from conlearn.cg.kernels import numba
from conlearn.cg.neighbors import Pairs, build_pairs

DTYPE = torch.float64


def _threebody(R, i, j, shift, gamma, a, W):
    """``(E [M], F [M, N, 3])`` for ``M`` coefficient vectors ``W`` ``[M, degree + 1]`` over the
    half pair list ``R[j] - R[i] + shift`` (pairs at or beyond ``a`` are skipped)."""
    n, M, D = R.shape[0], W.shape[0], W.shape[1]
    P = i.shape[0]
    count = np.zeros(n + 1, np.int64)
    vx = np.empty(P)
    vy = np.empty(P)
    vz = np.empty(P)
    d = np.empty(P)
    for p in range(P):
        vx[p] = R[j[p], 0] - R[i[p], 0] + shift[p, 0]
        vy[p] = R[j[p], 1] - R[i[p], 1] + shift[p, 1]
        vz[p] = R[j[p], 2] - R[i[p], 2] + shift[p, 2]
        d[p] = np.sqrt(vx[p] * vx[p] + vy[p] * vy[p] + vz[p] * vz[p])
        if d[p] < a:
            count[i[p] + 1] += 1
            count[j[p] + 1] += 1
    for b in range(n):
        count[b + 1] += count[b]
    fill = count[:-1].copy()
    nb = np.empty(count[n], np.int64)          # neighbour bead
    ux = np.empty(count[n])                     # unit vector centre -> neighbour
    uy = np.empty(count[n])
    uz = np.empty(count[n])
    rr = np.empty(count[n])
    for p in range(P):
        if d[p] < a:
            q = fill[i[p]]
            nb[q], ux[q], uy[q], uz[q], rr[q] = j[p], vx[p] / d[p], vy[p] / d[p], vz[p] / d[p], d[p]
            fill[i[p]] += 1
            q = fill[j[p]]
            nb[q], ux[q], uy[q], uz[q], rr[q] = i[p], -vx[p] / d[p], -vy[p] / d[p], -vz[p] / d[p], d[p]
            fill[j[p]] += 1
    g = np.empty(count[n])
    dg = np.empty(count[n])                     # d ln g / dr
    for q in range(count[n]):
        x = rr[q] - a
        g[q] = np.exp(gamma / x)
        dg[q] = -gamma / (x * x)
    E = np.zeros(M)
    F = np.zeros((M, n, 3))
    pw = np.empty(D)
    for c in range(n):
        for s in range(count[c], count[c + 1]):
            for t in range(s + 1, count[c + 1]):
                cos = ux[s] * ux[t] + uy[s] * uy[t] + uz[s] * uz[t]
                gg = g[s] * g[t]
                pw[0] = 1.0
                for m in range(1, D):
                    pw[m] = pw[m - 1] * cos
                for w in range(M):
                    pv = W[w, 0]
                    dp = 0.0
                    for m in range(1, D):
                        pv += W[w, m] * pw[m]
                        dp += m * W[w, m] * pw[m - 1]
                    E[w] += gg * pv
                    # dE/d(vec_s) = gg [pv dg_s u_s + dp (u_t - cos u_s) / r_s]; same for t
                    a_s = gg * (pv * dg[s] - dp * cos / rr[s])
                    b_s = gg * dp / rr[s]
                    a_t = gg * (pv * dg[t] - dp * cos / rr[t])
                    b_t = gg * dp / rr[t]
                    gx_s = a_s * ux[s] + b_s * ux[t]
                    gy_s = a_s * uy[s] + b_s * uy[t]
                    gz_s = a_s * uz[s] + b_s * uz[t]
                    gx_t = a_t * ux[t] + b_t * ux[s]
                    gy_t = a_t * uy[t] + b_t * uy[s]
                    gz_t = a_t * uz[t] + b_t * uz[s]
                    F[w, nb[s], 0] -= gx_s
                    F[w, nb[s], 1] -= gy_s
                    F[w, nb[s], 2] -= gz_s
                    F[w, nb[t], 0] -= gx_t
                    F[w, nb[t], 1] -= gy_t
                    F[w, nb[t], 2] -= gz_t
                    F[w, c, 0] += gx_s + gx_t
                    F[w, c, 1] += gy_s + gy_t
                    F[w, c, 2] += gz_s + gz_t
    return E, F


_kernel = numba.njit(cache=True)(_threebody) if numba is not None else None


def basis_forces(R, pairs: Pairs, gamma: float, a: float, W) -> tuple[np.ndarray, np.ndarray]:
    """``(E [M] kJ/mol, F [M, N, 3] kJ/mol/nm)`` of ``M`` coefficient vectors ``W`` ``[M, D]``
    (``W = I``: the basis, one column of the force-matching design per ``lam_m``)."""
    if _kernel is None:                         # pragma: no cover - numba ships with openmmtools
        raise ImportError("the three-body kernel needs numba")
    x = np.ascontiguousarray(R.detach().numpy() if isinstance(R, torch.Tensor) else R, dtype=np.float64)
    if not hasattr(pairs, "_np"):
        pairs._np = (pairs.i.numpy(), pairs.j.numpy(), pairs.shift.numpy())
    return _kernel(x, *pairs._np, float(gamma), float(a), np.ascontiguousarray(np.atleast_2d(W), dtype=np.float64))


def torch_energy(R: torch.Tensor, box: torch.Tensor, gamma: float, a: float, lam) -> torch.Tensor:
    """The same energy by plain torch ops (differentiable in ``R``): the reference for tests."""
    pairs = build_pairs(R.detach(), box, a)
    vec = pairs.vectors(R)
    full_i = torch.cat([pairs.i, pairs.j])
    full_v = torch.cat([vec, -vec])
    r = full_v.norm(dim=1)
    keep = r < a
    full_i, full_v, r = full_i[keep], full_v[keep], r[keep]
    g = torch.exp(gamma / (r - a))
    E = R.new_zeros(())
    lam = torch.as_tensor(np.asarray(lam, dtype=float), dtype=R.dtype)
    for c in torch.unique(full_i):
        idx = torch.nonzero(full_i == c).flatten()
        if len(idx) < 2:
            continue
        s, t = torch.triu_indices(len(idx), len(idx), 1)
        u, v = full_v[idx[s]], full_v[idx[t]]
        cos = (u * v).sum(1) / (r[idx[s]] * r[idx[t]])
        poly = sum(lam[m] * cos ** m for m in range(len(lam)))
        E = E + (g[idx[s]] * g[idx[t]] * poly).sum()
    return E


class ThreeBody:
    """The angular bead potential of the module docstring (a BeadPotential).

    Args:
        lam: ``[degree + 1]`` kJ/mol, coefficients of P(cos theta) in powers of cos theta.
        gamma: nm, range of the radial factor (mW: 1.2 x 0.23925).
        a: nm, the cutoff (mW: 1.8 x 0.23925 = 0.43065).
    """

    format = "conlearn.cg.ThreeBody/1"

    def __init__(self, lam, gamma: float = 0.2871, a: float = 0.43065):
        self.lam = np.atleast_1d(np.asarray(lam, dtype=float))
        if self.lam.ndim != 1 or not np.isfinite(self.lam).all():
            raise ValueError("ThreeBody: lam must be a finite vector [degree + 1]")
        if not (gamma > 0 and a > 0):
            raise ValueError(f"ThreeBody: gamma ({gamma}) and a ({a}) must be > 0 nm")
        self.gamma, self.a, self.cutoff = float(gamma), float(a), float(a)

    def energy_forces(self, R, box, pairs: Pairs | None = None):
        """``(E kJ/mol, F [N, 3] kJ/mol/nm)``; ``pairs`` may reach beyond ``a``."""
        R = torch.as_tensor(R, dtype=DTYPE)
        if pairs is None:
            pairs = build_pairs(R, torch.as_tensor(box, dtype=DTYPE), self.a)
        E, F = basis_forces(R, pairs.within(self.a), self.gamma, self.a, self.lam[None])
        return torch.tensor(E[0], dtype=DTYPE), torch.from_numpy(F[0])

    def save(self, path: str | Path) -> Path:
        """Write ``.npz`` (``lam`` and a JSON header; no pickle)."""
        path = Path(path)
        header = json.dumps({"format": self.format, "gamma": self.gamma, "a": self.a})
        with open(path, "wb") as fh:
            np.savez(fh, lam=self.lam, header=np.array(header))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ThreeBody":
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["header"]))
            if header.get("format") != cls.format:
                raise ValueError(f"{path}: not a {cls.format} file (format {header.get('format')!r})")
            return cls(z["lam"], header["gamma"], header["a"])


def mw_threebody(mw) -> ThreeBody:
    """The three-body term of a :class:`conlearn.cg.toy.MW` as a ThreeBody (``lam eps (c - c0)^2``)."""
    k = mw.three_body * mw.lam * mw.epsilon
    return ThreeBody([k * mw.cos0 ** 2, -2 * k * mw.cos0, k], mw.gamma * mw.sigma, mw.cutoff)
