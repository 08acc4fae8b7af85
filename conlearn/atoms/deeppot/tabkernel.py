"""Fused CPU kernels (numba) for the tabulated contraction of a compressed DeepPot.

``T[n, a, m] = Σ_k R̃[n, k, a] G_m(x[n, k])`` with ``G`` the piecewise quintic of a
:class:`~.tabulate.Table`, and its backward pass, each one loop over the pairs that evaluates
``G`` (and ``dG/dx``) by Horner's rule on the pair's six coefficient rows and accumulates at
once. Nothing of size ``[pairs, M]`` is ever stored: the torch path (``embedding_bag`` for
``G`` and ``dG/dx``, then batched products) writes and re-reads two such arrays per block,
and on a CPU the fresh memory alone (page faults) costs as much as the arithmetic.

Same interval location as :meth:`.tabulate.Table.locate` (clamp into ``[lower - step,
bound]``, fine grid below ``top``, coarse above); the torch path is the reference the tests
compare against (to round-off: the kernels sum in a different order). CPU, float32/float64,
contiguous arrays; :func:`available` says whether numba imports (else the caller keeps the
torch path).
"""

from __future__ import annotations

import math

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency; the torch path covers its absence
    numba = None

from .tabulate import COARSE


def available() -> bool:
    return numba is not None


def _interval(x, lower, step, n_fine, top, bound, n_int, nodes):
    """(k, t) of one input: its interval and offset, as Table.locate."""
    xc = min(max(x, lower - step), bound)
    if xc < top:
        k = int(math.floor((xc - lower) / step))
    else:
        k = n_fine + int(math.floor((xc - top) / (COARSE * step)))
    k = min(max(k, 0), n_int - 1)
    return k, xc - nodes[k]


def _forward(x, rows, coef, nodes, lower, step, n_fine, top, bound, out):
    """out [n, 4, M] = Σ_k rows[n, k, :]ᵀ ⊗ G(x[n, k]); x [n, K], rows [n, K, 4], coef [I, 6, M]."""
    n, K = x.shape
    M = coef.shape[2]
    n_int = coef.shape[0]
    for i in range(n):
        for j in range(K):
            k, t = _interval(x[i, j], lower, step, n_fine, top, bound, n_int, nodes)
            r0, r1, r2, r3 = rows[i, j, 0], rows[i, j, 1], rows[i, j, 2], rows[i, j, 3]
            for m in range(M):
                g = ((((coef[k, 5, m] * t + coef[k, 4, m]) * t + coef[k, 3, m]) * t + coef[k, 2, m]) * t
                     + coef[k, 1, m]) * t + coef[k, 0, m]
                out[i, 0, m] += r0 * g
                out[i, 1, m] += r1 * g
                out[i, 2, m] += r2 * g
                out[i, 3, m] += r3 * g


def _backward(x, rows, coef, nodes, lower, step, n_fine, top, bound, grad_t, grad_x, grad_rows, q):
    """grad_rows[n, k, a] = G(x[n, k]) · grad_t[n, a]; grad_x[n, k] = Σ_a rows[n, k, a] (dG/dx · grad_t[n, a]).

    q = (0, 2, 3, 4, 5) in the arrays' dtype (float32 stays float32: literals would promote)."""
    n, K = x.shape
    M = coef.shape[2]
    n_int = coef.shape[0]
    for i in range(n):
        for j in range(K):
            k, t = _interval(x[i, j], lower, step, n_fine, top, bound, n_int, nodes)
            r0, r1, r2, r3 = rows[i, j, 0], rows[i, j, 1], rows[i, j, 2], rows[i, j, 3]
            s0 = s1 = s2 = s3 = sx = q[0]
            for m in range(M):
                c1, c2, c3, c4, c5 = coef[k, 1, m], coef[k, 2, m], coef[k, 3, m], coef[k, 4, m], coef[k, 5, m]
                g = ((((c5 * t + c4) * t + c3) * t + c2) * t + c1) * t + coef[k, 0, m]
                dg = (((q[4] * c5 * t + q[3] * c4) * t + q[2] * c3) * t + q[1] * c2) * t + c1
                a0, a1, a2, a3 = grad_t[i, 0, m], grad_t[i, 1, m], grad_t[i, 2, m], grad_t[i, 3, m]
                s0 += g * a0
                s1 += g * a1
                s2 += g * a2
                s3 += g * a3
                sx += dg * (r0 * a0 + r1 * a1 + r2 * a2 + r3 * a3)
            grad_rows[i, j, 0], grad_rows[i, j, 1], grad_rows[i, j, 2], grad_rows[i, j, 3] = s0, s1, s2, s3
            grad_x[i, j] = sx


if numba is not None:
    _interval = numba.njit(cache=True, inline="always")(_interval)
    _forward_kernel = numba.njit(cache=True, fastmath=True)(_forward)
    _backward_kernel = numba.njit(cache=True, fastmath=True)(_backward)
else:  # pragma: no cover
    _forward_kernel = _backward_kernel = None


def _geometry(table, dtype) -> tuple:
    """lower, step, n_fine, top, bound as the kernels take them (floats in the arrays' dtype)."""
    f = np.dtype(dtype).type
    return (f(table.lower), f(table.step), table.n_fine, f(table.top), f(table.bound))


def forward(x: np.ndarray, rows: np.ndarray, table) -> np.ndarray:
    """``T [n, 4, M]`` (numpy, the table's dtype) of ``x [n, K]``, ``rows [n, K, 4]``."""
    coef, nodes = table_arrays(table)
    out = np.zeros((x.shape[0], 4, coef.shape[2]), dtype=coef.dtype)
    _forward_kernel(x, rows, coef, nodes, *_geometry(table, coef.dtype), out)
    return out


def backward(x: np.ndarray, rows: np.ndarray, table, grad_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(dL/dx [n, K], dL/drows [n, K, 4])`` of ``grad_t = dL/dT [n, 4, M]``."""
    coef, nodes = table_arrays(table)
    grad_x = np.empty(x.shape, dtype=coef.dtype)
    grad_rows = np.empty(rows.shape, dtype=coef.dtype)
    q = np.array([0, 2, 3, 4, 5], dtype=coef.dtype)
    _backward_kernel(x, rows, coef, nodes, *_geometry(table, coef.dtype), grad_t, grad_x, grad_rows, q)
    return grad_x, grad_rows


def table_arrays(table) -> tuple[np.ndarray, np.ndarray]:
    """The table's coefficients ``[I, 6, M]`` and nodes ``[I + 1]`` as numpy arrays in the
    coefficients' dtype (views of the CPU buffers, cached on the table)."""
    cache = getattr(table, "_numpy", None)
    if cache is None or cache[0] is not table.coef:
        coef = table.coef.detach().numpy().reshape(-1, 6, table.width)
        nodes = table.nodes.detach().numpy().astype(coef.dtype)
        cache = (table.coef, coef, nodes)
        table._numpy = cache
    return cache[1], cache[2]
