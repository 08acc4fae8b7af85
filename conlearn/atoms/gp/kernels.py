"""Species-aware n-body kernels between labels of local environments (FLARE-style).

Each cluster energy (see ``environment``) is a Gaussian process with covariance::

    k(c, d) = sigma^2 f(c) f(d) sum_{pi} exp(-|r_c - P_pi r_d|^2 / (2 ell^2))

``r_c`` are the ``m`` edge lengths of cluster ``c`` (Å), ``f`` the product of the edge
cutoffs, and ``pi`` runs over the permutations of the atoms of ``d`` that map its species
onto those of ``c`` (``P_pi`` permutes the edges accordingly).  The sum makes the cluster
energy invariant under relabelling of its atoms; ``sigma`` is in eV, ``ell`` in Å.

Every label is a linear functional of the cluster energies ``phi = f g``,
``L = sum_c w_c g(r_c) + sum_{c, e} v_ce dg/dr_ce`` (the cutoff's chain rule is folded into
``w`` and ``v``, so the grids below see only the Gaussian part ``g``):

* ``"force"``: rows ``3 * n_envs`` (env-major, then x, y, z): ``-dphi/dx`` of every vertex
  of every cluster that is the env's atom;
* ``"local_energy"``: rows ``n_envs``: ``phi / n_body`` per such vertex;
* ``"energy"``: rows ``n_frames``: the sum of the local energies of a frame;
* ``"virial"``: rows ``6 * n_frames`` (frame-major, Voigt order xx yy zz yz xz xy), eV:
  ``W_ab = -sum_{clusters, edges e} dphi/dr_e r_e,a r_e,b / r_e``, each cluster shared
  among its vertices like the local energy (a frame needs all of its environments);
* ``"stress"``: the same rows, ``-W / volume`` in eV/Å^3 (ASE's sign: ``dE/d eps / V``;
  frames periodic in all directions only);
* a tuple of these names: their rows stacked in that order (one pass over the clusters).

So ``cov(L, L') = sum_{c, d} [w w' k + w (dk/dr_d).v' + v.(dk/dr_c) w' + v.(d2k/dr_c dr_d).v']``
(without ``f``), evaluated on dense cluster-pair grids, in cache-sized tiles, with analytic
derivatives, and contracted with the sparse ``(w, v)`` matrices.  Derivatives with respect
to ``sigma`` and ``ell`` come from the same sums (``d exp/d ell = exp |Δ|^2 / ell^3``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from .environment import EDGES, Clusters, Environments

KINDS = ("force", "local_energy", "energy", "virial", "stress")
#: Voigt order of the 6 virial / stress rows of a frame (ASE's)
VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
CHUNK = 1 << 17  # cluster pairs per block of fields (up to 32 float64 arrays this size)
TILE = 1 << 14  # cluster pairs per cache-sized tile of the elementwise work


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
    """Per edge permutation: ``[len(zc), len(zd)]`` numbers of atom permutations whose
    species match."""
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
    if kind in ("virial", "stress"):
        return _virial_functional(c, envs, kind, v_own, envs.frame[owner])
    if kind == "local_energy":
        rows, n_rows_ = owner, len(envs)
    elif kind == "energy":
        rows, n_rows_ = envs.frame[owner], envs.n_frames
    else:
        raise ValueError(f"unknown label kind {kind!r}; choose one of {KINDS}")
    W = sp.csc_matrix((c.fcut[v_own] / nb, (rows, v_own)), shape=(n_rows_, n))
    return W, None


def _virial_functional(c: Clusters, envs: Environments, kind: str, v_own, frame):
    """``(W, V)`` of the virial (eV) or stress (eV/Å^3) rows; each vertex occurrence
    carries ``1/n_body`` of its cluster's virial ``-sum_e dphi/dr_e q_e`` with
    ``q_e = r_e (x) r_e / r_e`` (Voigt), and ``dphi/dr_e = dfcut_e g + fcut dg/dr_e``."""
    n, nb = len(c), c.n_body
    ia, ib = np.array(VOIGT).T
    q = c.vec[..., ia] * c.vec[..., ib] / c.dist[..., None]  # [N, m, 6] Å
    scale = np.full(len(v_own), -1.0 / nb)
    if kind == "stress":
        scale = -scale / envs.frame_volumes()[frame]
    rows = (6 * frame[:, None] + np.arange(6)).ravel()
    cols = np.repeat(v_own, 6)

    def mat(data):  # data [occurrences, 6]
        return sp.csc_matrix(((scale[:, None] * data).ravel(), (rows, cols)),
                             shape=(6 * envs.n_frames, n))

    W = mat(np.einsum("ne,nek->nk", c.dfcut, q)[v_own])
    return W, [mat(c.fcut[v_own, None] * q[v_own, e]) for e in range(q.shape[1])]


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
    sizes = {"force": 3 * len(envs), "local_energy": len(envs), "energy": envs.n_frames,
             "virial": 6 * envs.n_frames, "stress": 6 * envs.n_frames}
    if kind not in sizes:
        raise ValueError(f"unknown label kind {kind!r}; choose one of {KINDS}")
    return sizes[kind]


def _exp(x: np.ndarray) -> np.ndarray:
    """In-place exp (torch's vectorised exp is ~3x numpy's on CPUs without AVX-512)."""
    torch.from_numpy(x).exp_()
    return x


def _tile(dc, dd, weights, body, ell, grad, out):
    """Fill ``out`` (views of ``_fields``' arrays) on one small, cache-sized tile."""
    m, shape, V = dc.shape[1], (len(dd), len(dc)), 1 + grad
    left, right = "Gc" in out, "Gd" in out
    A0 = np.zeros((V,) + shape)
    A1 = np.zeros((V, m) + shape) if left else None
    B1 = np.zeros((V, m) + shape) if right else None
    P0 = np.zeros((V, m, m) + shape) if left and right else None
    Q = np.zeros((V, m, m) + shape) if left and right else None
    dcT, ddT = dc.T[:, None, :], dd.T[:, :, None]
    for (desc, _), w in zip(PERMS[body], weights):
        inv = np.argsort(desc)
        delta = dcT - ddT[list(desc)]  # [m, M, n]
        s = np.einsum("kij,kij->ij", delta, delta)
        g = _exp(s * (-0.5 / ell**2))
        g *= w
        for v, x in enumerate((g, g * s) if grad else (g,)):
            A0[v] += x
            if left or right:
                xd = x * delta
                if left:
                    A1[v] += xd
                if right:
                    B1[v] += xd[inv]
                if P0 is not None:
                    Q[v] += xd[:, None] * delta[inv][None]
                    for k in range(m):
                        P0[v, k, desc[k]] += x
    e2, e3, e4, e5, e7 = ell**-2, ell**-3, ell**-4, ell**-5, ell**-7
    out["G"][0] = A0[0]
    if left:
        np.multiply(A1[0], -e2, out=out["Gc"][0])
    if right:
        np.multiply(B1[0], e2, out=out["Gd"][0])
    if P0 is not None:
        np.subtract(e2 * P0[0], e4 * Q[0], out=out["Gcd"][0])
    if grad:  # d/d ell, using d g / d ell = g s / ell^3
        np.multiply(A0[1], e3, out=out["G"][1])
        if left:
            np.subtract(2 * e3 * A1[0], e5 * A1[1], out=out["Gc"][1])
        if right:
            np.subtract(e5 * B1[1], 2 * e3 * B1[0], out=out["Gd"][1])
        if P0 is not None:
            np.subtract(e5 * P0[1] - 2 * e3 * P0[0], e7 * Q[1] - 4 * e5 * Q[0],
                        out=out["Gcd"][1])


def _fields(dc, dd, zc, zd, body, ell, left, right, grad, single):
    """Permutation sums of ``g = exp(-|r_c - P r_d|^2 / 2 ell^2)`` on the grid of the
    ``n`` clusters ``c`` times the ``M`` clusters ``d``, stored transposed, ``[M, n]``.

    Returns arrays ``[C, ..., M, n]`` (channel 0: value, 1: d/d ell if ``grad``): ``"G"``;
    ``"Gc"`` ``[C, m]`` (d/d r_c[k]) if ``left``; ``"Gd"`` ``[C, m]`` (d/d r_d[l]) if
    ``right``; ``"Gcd"`` ``[C, m, m]`` (d2/d r_c[k] d r_d[l]) if both.
    """
    n, M, m, C = len(dc), len(dd), dc.shape[1], 1 + grad
    out = {"G": np.empty((C, M, n))}
    if left:
        out["Gc"] = np.empty((C, m, M, n))
    if right:
        out["Gd"] = np.empty((C, m, M, n))
    if left and right:
        out["Gcd"] = np.empty((C, m, m, M, n))
    tc = max(1, min(n, TILE))
    tr = max(1, TILE // tc)
    for r0 in range(0, M, tr):
        for c0 in range(0, n, tc):
            rs, cs = slice(r0, r0 + tr), slice(c0, c0 + tc)
            w = ([float(len(p)) for _, p in PERMS[body]] if single
                 else [x.T for x in _species_weights(zc[cs], zd[rs], body)])
            _tile(dc[cs], dd[rs], w, body, ell, grad, {k: v[..., rs, cs] for k, v in out.items()})
    return out


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

    def matrix(self, a: Environments, kind_a, b: Environments, kind_b,
               grad: bool = False):
        """Covariance ``[rows_a, rows_b]`` between labels; with ``grad`` also
        ``[2, rows_a, rows_b]`` derivatives with respect to (sigma, length)."""
        ca, cb = self.clusters(a), self.clusters(b)
        wa, va = functional(ca, a, kind_a)
        wb, vb = functional(cb, b, kind_b)
        lefts, rights = [wa] + (va or []), [wb] + (vb or [])
        C, ra, rb = 1 + grad, n_rows(a, kind_a), n_rows(b, kind_b)
        # same labels on both sides: only cluster columns from the chunk's start (half work)
        sym = a is b and kind_a == kind_b
        single = len(np.unique(np.concatenate([ca.species.ravel(), cb.species.ravel()]))) <= 1
        diag, off = np.zeros((C, ra, rb)), np.zeros((C, ra, rb) if sym else 0)
        step = max(1, CHUNK // max(len(cb), 1))
        for s0 in range(0, len(ca) if len(cb) else 0, step):
            s1 = min(s0 + step, len(ca))
            c0 = s0 if sym else 0
            f = _fields(ca.dist[s0:s1], cb.dist[c0:], ca.species[s0:s1], cb.species[c0:],
                        self.body, self.length, va is not None, vb is not None, grad, single)
            blocks = [[f["G"]] + [f["Gd"][:, l] for l in range(len(rights) - 1)]]
            blocks += [[f["Gc"][:, k]] + [f["Gcd"][:, k, l] for l in range(len(rights) - 1)]
                       for k in range(len(lefts) - 1)]
            # only the label rows that these clusters touch, as small dense blocks
            sub = [m[:, s0:s1] for m in lefts]
            rows = np.unique(np.concatenate([m.indices for m in sub]))
            sub = [m[rows].toarray() for m in sub]
            parts = [(diag, c0, s1 if sym else len(cb))] + ([(off, s1, len(cb))] if sym else [])
            for out, d0, d1 in parts:
                rs = [m[:, d0:d1] for m in rights]
                for c in range(C):
                    for p, row in enumerate(blocks):
                        z = sum(r @ x[c][d0 - c0:d1 - c0] for r, x in zip(rs, row))
                        out[c][rows] += sub[p] @ z.T
        out = diag + off + np.swapaxes(off, 1, 2) if sym else diag
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


def prior_variances(kernels, envs: Environments, group: int = 64):
    """Prior variances of each env's force components ``[n_envs, 3]`` (eV/Å)^2 and local
    energy ``[n_envs]`` eV^2, from kernels over groups of ``group`` envs."""
    force, energy = [], []
    kinds = ("force", "local_energy")
    for g0 in range(0, len(envs), group):
        sub = envs.subset(np.arange(g0, min(g0 + group, len(envs))))
        d = np.diag(kernel_matrix(kernels, sub, kinds, sub, kinds))
        force.append(d[:3 * len(sub)].reshape(-1, 3))
        energy.append(d[3 * len(sub):])
    if not force:
        return np.zeros((0, 3)), np.zeros(0)
    return np.concatenate(force), np.concatenate(energy)


def prior_stress_variances(kernels, envs: Environments) -> np.ndarray:
    """Prior variances ``[n_frames, 6]`` (eV/Å^3)^2 of each frame's stress components
    (Voigt order), frame by frame (a frame's clusters with themselves only)."""
    out = np.zeros((envs.n_frames, 6))
    for f in range(envs.n_frames):
        sub = envs.subset(np.flatnonzero(envs.frame == f))
        K = kernel_matrix(kernels, sub, "stress", sub, "stress")
        out[f] = np.diag(K)[6 * f:6 * f + 6]
    return out
