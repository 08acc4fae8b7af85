"""Prior variances of force components, environment by environment (no dense grids).

``Var(F_ia)`` needs the kernel only between the clusters of one environment, so instead of
``kernels.prior_variances`` (dense kernel blocks over groups of environments, whose
off-diagonal work is thrown away) this evaluates the double sum over the cluster pairs of
each environment directly, in closed form per permutation group::

    Var(L) = sigma^2 sum_{p, q} sum_pi g [w_p w_q + (w_p v_q.d - w_q v_p.d) / ell^2
                                           - (v_p.d)(v_q.d) / ell^4 + v_p.v_q / ell^2]

with ``L = sum_p (w_p g(r_p) + v_p . dg/dr_p)`` the force functional of one component
(``kernels`` docstring), ``d = r_p - P_pi r_q``, ``v_q`` permuted by ``pi`` and
``g = exp(-|d|^2 / 2 ell^2)`` weighted by the species-matching atom permutations.
Cost ~ n_envs x (clusters per env)^2 / 2: 0.12 s instead of 0.58 s on 108 Al atoms.
"""

from __future__ import annotations

import numpy as np

from .environment import EDGES, Clusters, Environments
from .kernels import PERMS, _code


def _items(c: Clusters, n_envs: int):
    """Force functionals per (env, cluster): ``env [I]``, ``cluster [I]``, ``w [I, 3]``,
    ``v [I, 3, m]`` (component-major), sorted by env."""
    v_own, v_vert = np.nonzero(c.owner >= 0)
    env = c.owner[v_own, v_vert]
    unit = c.vec / c.dist[..., None]  # [N, m, 3]
    # W[e, a] = -sum over the env's vertices v of d r_e / d x_v^a
    W = np.zeros((len(v_own), c.dist.shape[1], 3))
    for e, (a, b) in enumerate(EDGES[c.n_body]):
        sign = np.where(v_vert == b, -1.0, np.where(v_vert == a, 1.0, 0.0))
        W[:, e] = sign[:, None] * unit[v_own, e]
    key = env * len(c) + v_own
    uniq, inv = np.unique(key, return_inverse=True)  # a cluster holding the env twice
    Wsum = np.zeros((len(uniq),) + W.shape[1:])
    np.add.at(Wsum, inv, W)
    env, cl = uniq // len(c), uniq % len(c)
    w = np.einsum("iea,ie->ia", Wsum, c.dfcut[cl])
    v = np.transpose(Wsum, (0, 2, 1)) * c.fcut[cl, None, None]
    return env, cl, w, v


def _pairs(env: np.ndarray):
    """Item pairs ``(p, q)`` with ``p <= q`` within the same env (``env`` sorted)."""
    count = np.searchsorted(env, env, side="right") - np.arange(len(env))  # q from p on
    p = np.repeat(np.arange(len(env)), count)
    q = p + np.arange(len(p)) - np.repeat(np.cumsum(count) - count, count)
    return p, q


def _one_kernel(kernel, c: Clusters, n_envs: int, chunk: int = 1 << 16) -> np.ndarray:
    out = np.zeros((n_envs, 3))
    if not len(c):
        return out
    env, cl, w, v = _items(c, n_envs)
    P, Q = _pairs(env)
    ell2 = kernel.length**2
    zc = c.species[cl]
    single = len(np.unique(zc)) == 1
    for s0 in range(0, len(P), chunk):
        p, q = P[s0:s0 + chunk], Q[s0:s0 + chunk]
        rp, rq, wp, wq, vp, vq_all = c.dist[cl[p]], c.dist[cl[q]], w[p], w[q], v[p], v[q]
        wpq = wp * wq
        acc = np.zeros((len(p), 3))
        zp, zq = _code(zc[p]), zc[q]
        for desc, atom_perms in PERMS[kernel.body]:
            if single:
                weight = float(len(atom_perms))
            else:
                weight = sum((zp == _code(zq[:, list(pi)])).astype(np.float64) for pi in atom_perms)
                if not weight.any():
                    continue
            d = rp - rq[:, list(desc)]
            g = np.exp(-0.5 / ell2 * np.einsum("pk,pk->p", d, d)) * weight
            vq = vq_all[:, :, list(desc)]
            vpd, vqd = np.einsum("pak,pk->pa", vp, d), np.einsum("pak,pk->pa", vq, d)
            term = np.einsum("pak,pak->pa", vp, vq)
            term += wp * vqd - wq * vpd
            term /= ell2
            term += wpq
            term -= vpd * vqd / ell2**2
            acc += g[:, None] * term
        acc[p != q] *= 2.0  # (p, q) and (q, p)
        out += np.stack([np.bincount(env[p], acc[:, a], n_envs) for a in range(3)], axis=1)
    return kernel.sigma**2 * out


def prior_force_variances(kernels, envs: Environments) -> np.ndarray:
    """Prior variance of every force component ``[n_envs, 3]`` (eV/Å)^2."""
    return sum(_one_kernel(k, k.clusters(envs), len(envs)) for k in kernels)
