"""Species-aware n-body kernels between labels of local environments (FLARE-style).

Each cluster energy (see ``environment``) is a Gaussian process with covariance::

    k(c, d) = sigma^2 f(c) f(d) sum_{pi} exp(-|r_c - P_pi r_d|^2 / (2 ell^2))

``r_c`` are the ``m`` edge lengths of cluster ``c`` (Å), ``f`` the product of the edge
cutoffs, and ``pi`` runs over the permutations of the atoms of ``d`` that map its species
onto those of ``c`` (``P_pi`` permutes the edges accordingly).  The sum makes the cluster
energy invariant under relabelling of its atoms; ``sigma`` is in eV, ``ell`` in Å.

Every label is a linear functional of the cluster energies,
``L = sum_c w_c phi(r_c) + sum_c v_c . d phi/d r_c``:

* ``"force"``: rows ``3 * n_envs`` (env-major, then x, y, z) — ``v_c = -J_c`` with ``J_c``
  the derivative of the anchor edges' lengths with respect to the anchor position;
* ``"local_energy"``: rows ``n_envs`` — ``w_c = 1 / n_body`` for the env's clusters;
* ``"energy"``: rows ``n_frames`` — the sum of the local energies of a frame;
* a tuple of these names: their rows stacked in that order (one pass over the clusters).

So ``cov(L, L') = sum_{c, d} [w w' k + w (dk/dr_d).v' + v.(dk/dr_c) w' + v.(d2k/dr_c dr_d).v']``,
evaluated with analytic derivatives on dense ``[chunk, M]`` cluster grids and contracted
with sparse functional matrices.  Derivatives with respect to ``sigma`` and ``ell`` come
from the same sums (``d exp / d ell = exp * |Δ|^2 / ell^3``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .environment import EDGES, Clusters, Environments

KINDS = ("force", "local_energy", "energy")
CHUNK = 1 << 19  # cluster pairs per dense block (memory ~ 30 arrays of this many float64)


def _perm_table(n_body: int) -> list[tuple[tuple[int, ...], list[tuple[int, ...]]]]:
    """Atom permutations grouped by the edge permutation they induce."""
    edge_id = {tuple(sorted(e)): k for k, e in enumerate(EDGES[n_body])}
    groups: dict[tuple[int, ...], list] = {}
    for p in itertools.permutations(range(n_body)):
        desc = tuple(edge_id[tuple(sorted((p[a], p[b])))] for a, b in EDGES[n_body])
        groups.setdefault(desc, []).append(p)
    return list(groups.items())


PERMS = {n: _perm_table(n) for n in EDGES}


def _code(z: np.ndarray) -> np.ndarray:
    return (z * 128 ** np.arange(z.shape[1])).sum(axis=1)


def _species_weights(zc, zd, n_body):
    """Per edge permutation: the number of atom permutations whose species match.

    Returns a list of scalars (one species everywhere) or ``[len(zc), len(zd)]`` arrays.
    """
    if len(np.unique(np.concatenate([zc.ravel(), zd.ravel()]))) <= 1:
        return [float(len(atom_perms)) for _, atom_perms in PERMS[n_body]]
    cc = _code(zc)[:, None]
    return [sum((cc == _code(zd[:, list(p)])[None, :]).astype(np.float64) for p in atom_perms)
            for _, atom_perms in PERMS[n_body]]


def _functional(c: Clusters, envs: Environments, kind: str):
    """Sparse matrices of one label kind over the clusters ``c`` of ``envs``.

    Returns ``(W, V)`` for the labels as functionals of the cutoff-free GP ``g``
    (``phi = fcut * g``): ``W`` ``[rows, N]`` weights of ``g``, ``V`` a list over edges ``e``
    of ``[rows, N]`` weights of ``dg/dr_e`` (None for energies).
    """
    n, nb = len(c), c.n_body
    edges = EDGES[nb]
    v_own, v_vert = np.nonzero(c.owner >= 0)  # (cluster, vertex) occurrences of envs
    owner = c.owner[v_own, v_vert]
    if kind == "force":
        unit = c.vec / c.dist[..., None]
        V = []
        for e, (a, b) in enumerate(edges):
            # force on the owner of vertex v: -d r_e / d x_v = -(+-unit_e)
            sign = np.where(v_vert == b, -1.0, np.where(v_vert == a, 1.0, 0.0))
            data = sign[:, None] * unit[v_own, e]
            rows = 3 * owner[:, None] + np.arange(3)
            V.append(sp.csc_matrix((data.ravel(), (rows.ravel(), np.repeat(v_own, 3))),
                                   shape=(3 * len(envs), n)))
        W = sum(Ve @ sp.diags(c.dfcut[:, e]) for e, Ve in enumerate(V))
        return sp.csc_matrix(W), [sp.csc_matrix(Ve @ sp.diags(c.fcut)) for Ve in V]
    if kind == "local_energy":
        rows, n_rows_ = owner, len(envs)
    elif kind == "energy":
        rows, n_rows_ = envs.frame[owner], envs.n_frames
    else:
        raise ValueError(f"unknown label kind {kind!r}; choose one of {KINDS}")
    W = sp.csc_matrix((c.fcut[v_own] / nb, (rows, v_own)), shape=(n_rows_, n))
    return W, None


def functional(c: Clusters, envs: Environments, kind):
    """``_functional`` of one kind, or of a tuple of kinds with their rows stacked."""
    if isinstance(kind, str):
        return _functional(c, envs, kind)
    parts = [_functional(c, envs, k) for k in kind]
    m = max(len(v or ()) for _, v in parts)
    W = sp.vstack([w for w, _ in parts], format="csc")
    V = [sp.vstack([v[e] if v else sp.csc_matrix(w.shape) for w, v in parts], format="csc")
         for e in range(m)]
    return W, V or None


def n_rows(envs: Environments, kind) -> int:
    """Number of labels of ``kind`` (a name or a tuple of names) for ``envs``."""
    if not isinstance(kind, str):
        return sum(n_rows(envs, k) for k in kind)
    return {"force": 3 * len(envs), "local_energy": len(envs), "energy": envs.n_frames}[kind]


def _pieces(dc, dd, weights, ell, kl, kr, grad):
    """Permutation sums G, dG/dr_c[k], dG/dr_d[l], d2G/dr_c[k]dr_d[l] on a ``[n, M]`` grid.

    Each is ``[C, n, M]`` with channel 0 the value and channel 1 (if ``grad``) d/d ell.
    """
    m = dc.shape[1]
    acc: dict = {}

    def add(key, x, s):
        acc[key] = acc.get(key, 0.0) + x
        if grad:
            acc[key + ("s",)] = acc.get(key + ("s",), 0.0) + x * s

    for (desc, _), w in zip(PERMS[2 if m == 1 else 3], weights):
        inv = np.argsort(desc)
        delta = [dc[:, j, None] - dd[None, :, desc[j]] for j in range(m)]
        s = sum(d * d for d in delta)
        g = np.exp(s * (-0.5 / ell**2)) * w
        add(("A0",), g, s)
        for k in range(kl):
            add(("A1", k), g * delta[k], s)
            for l in range(kr):
                if desc[k] == l:
                    add(("P0", k, l), g, s)
                add(("Q", k, l), g * delta[k] * delta[inv[l]], s)
        for l in range(kr):
            add(("B1", l), g * delta[inv[l]], s)

    def get(key):
        v = acc.get(key, 0.0)
        return np.broadcast_to(v, dc.shape[:1] + dd.shape[:1]) if np.isscalar(v) else v

    e2, e3, e4, e5, e7 = ell**-2, ell**-3, ell**-4, ell**-5, ell**-7
    stack = (lambda v, d: np.stack([v, d])) if grad else (lambda v, d: v[None])
    sg = (lambda key: get(key + ("s",))) if grad else (lambda key: 0.0)
    G = stack(get(("A0",)), sg(("A0",)) * e3)
    Gc = [stack(-get(("A1", k)) * e2, -sg(("A1", k)) * e5 + 2 * get(("A1", k)) * e3)
          for k in range(kl)]
    Gd = [stack(get(("B1", l)) * e2, sg(("B1", l)) * e5 - 2 * get(("B1", l)) * e3)
          for l in range(kr)]
    Gcd = [[stack(get(("P0", k, l)) * e2 - get(("Q", k, l)) * e4,
                  sg(("P0", k, l)) * e5 - 2 * get(("P0", k, l)) * e3
                  - sg(("Q", k, l)) * e7 + 4 * get(("Q", k, l)) * e5)
            for l in range(kr)] for k in range(kl)]
    return G, Gc, Gd, Gcd


def _spmm(a, x):
    """Sparse ``[r, n]`` times dense ``[C, n, M]`` -> ``[C, r, M]``."""
    return np.stack([a @ xc for xc in x])


@dataclass
class NBodyKernel:
    """One n-body kernel term.

    Attributes:
        body: 2 (pairs) or 3 (triplets).  sigma: eV, signal.  length: Å, ``ell``.
    """

    body: int
    sigma: float
    length: float

    hyper_names = ("sigma", "length")

    def clusters(self, envs: Environments) -> Clusters:
        return envs.pairs if self.body == 2 else envs.triplets

    def matrix(self, a: Environments, kind_a: str, b: Environments, kind_b: str,
               grad: bool = False):
        """Covariance ``[rows_a, rows_b]`` between labels; with ``grad`` also
        ``[2, rows_a, rows_b]`` derivatives with respect to (sigma, length)."""
        ca, cb = self.clusters(a), self.clusters(b)
        wa, va = functional(ca, a, kind_a)
        wb, vb = functional(cb, b, kind_b)
        kl, kr = len(va or ()), len(vb or ())
        C = 2 if grad else 1
        ra, rb = n_rows(a, kind_a), n_rows(b, kind_b)
        left = np.zeros((1 + kr, C, ra, len(cb)))  # contracted on the left; slot 0 for wb
        step = max(1, CHUNK // max(len(cb), 1))
        for s0 in range(0, len(ca) * (len(cb) > 0), step):
            s = slice(s0, min(s0 + step, len(ca)))
            weights = _species_weights(ca.species[s], cb.species, self.body)
            G, Gc, Gd, Gcd = _pieces(ca.dist[s], cb.dist, weights, self.length, kl, kr, grad)
            vas = [v[:, s] for v in va or ()]
            was = wa[:, s]
            left[0] += _spmm(was, G)
            for k in range(kl):
                left[0] += _spmm(vas[k], Gc[k])
            for l in range(kr):
                left[1 + l] += _spmm(was, Gd[l])
                for k in range(kl):
                    left[1 + l] += _spmm(vas[k], Gcd[k][l])
        out = np.zeros((C, ra, rb))
        for c in range(C):
            for slot, m in enumerate([wb] + list(vb or ())):
                out[c] += (m @ left[slot, c].T).T
        K = self.sigma**2 * out[0]
        if not grad:
            return K
        return K, np.stack([2 * self.sigma * out[0], self.sigma**2 * out[1]])


def kernel_matrix(kernels, a, kind_a, b, kind_b, grad=False):
    """Sum of ``kernels``; with ``grad`` also ``[2 * n_kernels, ra, rb]`` hyper-derivatives
    ordered (sigma_1, length_1, sigma_2, ...)."""
    parts = [k.matrix(a, kind_a, b, kind_b, grad) for k in kernels]
    if not grad:
        return sum(parts)
    return sum(p[0] for p in parts), np.concatenate([p[1] for p in parts])


def diagonal_blocks(kernels, envs: Environments, kind: str, group: int = 16) -> np.ndarray:
    """Prior covariance of each env with itself: ``[n_envs, 3, 3]`` ("force") or
    ``[n_envs]`` ("local_energy"), computed over groups of ``group`` envs."""
    out = []
    for g0 in range(0, len(envs), group):
        sub = envs.subset(np.arange(g0, min(g0 + group, len(envs))))
        K = kernel_matrix(kernels, sub, kind, sub, kind)
        if kind == "force":
            n = len(sub)
            out.append(K.reshape(n, 3, n, 3)[np.arange(n), :, np.arange(n), :])
        else:
            out.append(np.diag(K))
    return np.concatenate(out) if out else np.zeros((0, 3, 3) if kind == "force" else 0)
