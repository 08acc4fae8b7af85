"""A fused pair-table kernel (numba, a core dependency) for the CG MD hot loop.

One pass over the pair list: distance, cutoff test, cubic evaluation, force accumulation.
Used by :class:`conlearn.cg.potential.PairTable` on uniform grids when numba imports; the
torch path is the reference it is tested against. Units: nm, kJ/mol, kJ/mol/nm.
"""

from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError:                     # pragma: no cover - numba is a core dependency
    numba = None


def _pair_table(R, i, j, shift, r0, inv_h, coef, cutoff):
    """``(E, F [N, 3])`` of a uniform-grid Hermite table over pairs ``R[j] - R[i] + shift``."""
    n_int = coef.shape[0]
    F = np.zeros_like(R)
    E = 0.0
    for p in range(i.shape[0]):
        a, b = i[p], j[p]
        dx = R[b, 0] - R[a, 0] + shift[p, 0]
        dy = R[b, 1] - R[a, 1] + shift[p, 1]
        dz = R[b, 2] - R[a, 2] + shift[p, 2]
        d = np.sqrt(dx * dx + dy * dy + dz * dz)
        if d >= cutoff:
            continue
        x = (d - r0) * inv_h
        k = int(np.floor(x))
        if k < 0:
            k = 0
        elif k > n_int - 1:
            k = n_int - 1
        t = x - k
        c0, c1, c2, c3 = coef[k, 0], coef[k, 1], coef[k, 2], coef[k, 3]
        if t < 0.0:                       # linear continuation below the grid
            du = c1 * inv_h
            u = c0 + c1 * t
        else:
            u = c0 + t * (c1 + t * (c2 + t * c3))
            du = (c1 + t * (2.0 * c2 + t * 3.0 * c3)) * inv_h
        E += u
        g = du / max(d, 1e-12)
        F[a, 0] += g * dx
        F[a, 1] += g * dy
        F[a, 2] += g * dz
        F[b, 0] -= g * dx
        F[b, 1] -= g * dy
        F[b, 2] -= g * dz
    return E, F


pair_table_kernel = numba.njit(cache=True)(_pair_table) if numba is not None else None


def _brute_pairs(R, box, cutoff, capacity):
    """Half pair list with all periodic images (orthorhombic): ``(n, i, j, shift)``; ``n = -1``
    when more than ``capacity`` pairs were found (call again with more room)."""
    n = R.shape[0]
    nimg = np.empty(3, np.int64)
    for c in range(3):
        nimg[c] = int(np.ceil(cutoff / box[c]))
    W = np.empty_like(R)
    cell = np.empty_like(R)
    for a in range(n):
        for c in range(3):
            cell[a, c] = np.floor(R[a, c] / box[c])
            W[a, c] = R[a, c] - cell[a, c] * box[c]
    ii = np.empty(capacity, np.int64)
    jj = np.empty(capacity, np.int64)
    sh = np.empty((capacity, 3))
    cut2 = cutoff * cutoff
    m = 0
    for a in range(n):
        for b in range(a, n):
            bx = W[b, 0] - W[a, 0]
            by = W[b, 1] - W[a, 1]
            bz = W[b, 2] - W[a, 2]
            for sx in range(-nimg[0], nimg[0] + 1):
                dx = bx + sx * box[0]
                if dx * dx >= cut2:
                    continue
                for sy in range(-nimg[1], nimg[1] + 1):
                    dy = by + sy * box[1]
                    if dx * dx + dy * dy >= cut2:
                        continue
                    for sz in range(-nimg[2], nimg[2] + 1):
                        if a == b and (sx, sy, sz) <= (0, 0, 0):
                            continue              # each self-image once, not the bead itself
                        dz = bz + sz * box[2]
                        if dx * dx + dy * dy + dz * dz >= cut2:
                            continue
                        if m == capacity:
                            return -1, ii, jj, sh
                        ii[m], jj[m] = a, b
                        sh[m, 0] = (sx - cell[b, 0] + cell[a, 0]) * box[0]
                        sh[m, 1] = (sy - cell[b, 1] + cell[a, 1]) * box[1]
                        sh[m, 2] = (sz - cell[b, 2] + cell[a, 2]) * box[2]
                        m += 1
    return m, ii, jj, sh


brute_pairs_kernel = numba.njit(cache=True)(_brute_pairs) if numba is not None else None
BRUTE_MAX_BEADS = 3000


def brute_pairs(R: np.ndarray, box: np.ndarray, cutoff: float):
    """``(i, j, shift)`` numpy arrays of every pair closer than ``cutoff`` (numba, O(N^2))."""
    n = len(R)
    est = int(1.3 * 0.5 * n * n * 4.19 * cutoff ** 3 / np.prod(box)) + 64
    while True:
        m, i, j, s = brute_pairs_kernel(R, box, cutoff, est)
        if m >= 0:
            return i[:m].copy(), j[:m].copy(), s[:m].copy()
        est *= 2
