"""Cubic B-splines on uniform grids in 1 or 3 dimensions (values and gradients, vectorised).

A spline of ``n`` samples per axis has ``n + 2`` coefficients per axis; inside a cell with
local coordinate ``t in [0, 1)`` the value is ``sum_a B_a(t) c[i + a]`` (``a = 0..3``) per
axis, a tensor product in 3-D (64 coefficients per point).  Interpolation conditions at
every sample plus a vanishing fourth difference of the coefficients at both ends
(not-a-knot-like: exact for cubics) define the coefficients; one small dense solve per axis.

Errors: value O(h^4), gradient O(h^3) for a smooth function sampled with spacing ``h``.
Callers sample a few points beyond the region they evaluate, so the ends hardly matter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _collocation(n: int) -> np.ndarray:
    """``[n + 2, n + 2]``: end conditions (first and last row) and the interpolation rows."""
    a = np.zeros((n + 2, n + 2))
    a[0, :5] = a[-1, -5:] = (1.0, -4.0, 6.0, -4.0, 1.0)
    rows = np.arange(1, n + 1)
    a[rows, rows - 1], a[rows, rows], a[rows, rows + 1] = 1 / 6, 4 / 6, 1 / 6
    return a


def _basis(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Uniform cubic B-spline weights ``[N, 4]`` and their derivatives in ``t``."""
    s = 1.0 - t
    t2, t3 = t * t, t * t * t
    b = np.stack([s * s * s, 3 * t3 - 6 * t2 + 4, -3 * t3 + 3 * t2 + 3 * t + 1, t3], axis=1) / 6
    db = np.stack([-s * s, 3 * t2 - 4 * t, -3 * t2 + 2 * t + 1, t2], axis=1) / 2
    return b, db


@dataclass
class UniformSpline:
    """A cubic B-spline on a uniform grid.

    Attributes:
        lo: ``[d]`` position of the first sample per axis (Å here).
        h: ``[d]`` grid spacing per axis.
        coef: ``[n_0 + 2, ..., n_{d-1} + 2]`` coefficients (``n`` samples per axis).
    """

    lo: np.ndarray
    h: np.ndarray
    coef: np.ndarray

    @property
    def ndim(self) -> int:
        return self.coef.ndim

    @property
    def hi(self) -> np.ndarray:
        """Position of the last sample per axis."""
        return self.lo + self.h * (np.array(self.coef.shape) - 3)

    @classmethod
    def fit(cls, lo, h, values: np.ndarray) -> "UniformSpline":
        """Interpolate ``values`` (``[n_0, ..., n_{d-1}]``, ``n >= 4`` per axis) sampled at
        ``lo + h * index``."""
        c = np.asarray(values, dtype=np.float64)
        for axis in range(c.ndim):
            n = c.shape[axis]
            if n < 4:
                raise ValueError(f"a cubic spline needs >= 4 samples per axis, got {n}")
            y = np.moveaxis(c, axis, 0).reshape(n, -1)
            y = np.concatenate([np.zeros((1, y.shape[1])), y, np.zeros((1, y.shape[1]))])
            sol = np.linalg.solve(_collocation(n), y)
            shape = (n + 2,) + tuple(np.delete(c.shape, axis))
            c = np.moveaxis(sol.reshape(shape), 0, axis)
        d = c.ndim
        return cls(np.broadcast_to(np.asarray(lo, float), (d,)).copy(),
                   np.broadcast_to(np.asarray(h, float), (d,)).copy(), np.ascontiguousarray(c))

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values ``[N]`` and gradients ``[N, d]`` at points ``x [N, d]`` (a cubic
        polynomial continuation outside the grid)."""
        x = np.asarray(x, dtype=np.float64).reshape(len(x), self.ndim)
        n_cells = np.array(self.coef.shape) - 3
        u = (x - self.lo) / self.h
        i = np.clip(np.floor(u).astype(np.int64), 0, n_cells - 1)
        bs, dbs = zip(*(_basis(u[:, k] - i[:, k]) for k in range(self.ndim)))
        if self.ndim == 1:
            c = self.coef[i[:, :1] + np.arange(4)]  # [N, 4]
            return (np.einsum("na,na->n", c, bs[0]),
                    np.einsum("na,na->n", c, dbs[0])[:, None] / self.h)
        if self.ndim != 3:
            raise NotImplementedError("splines are implemented in 1 and 3 dimensions")
        s1, s2 = self.coef.shape[1], self.coef.shape[2]
        a = np.arange(4)
        flat = ((i[:, 0, None, None, None] + a[:, None, None]) * s1
                + i[:, 1, None, None, None] + a[None, :, None]) * s2 \
            + i[:, 2, None, None, None] + a[None, None, :]
        c = self.coef.reshape(-1)[flat]  # [N, 4, 4, 4]
        bx, by, bz = bs
        dx, dy, dz = dbs
        cyz = np.einsum("nabc,na->nbc", c, bx)
        dyz = np.einsum("nabc,na->nbc", c, dx)
        cz = np.einsum("nbc,nb->nc", cyz, by)
        value = np.einsum("nc,nc->n", cz, bz)
        grad = np.stack([np.einsum("nbc,nb,nc->n", dyz, by, bz),
                         np.einsum("nbc,nb,nc->n", cyz, dy, bz),
                         np.einsum("nc,nc->n", cz, dz)], axis=1)
        return value, grad / self.h

    def to_dict(self) -> dict:
        return {"lo": self.lo.tolist(), "h": self.h.tolist(), "coef": self.coef}

    @classmethod
    def from_dict(cls, d: dict) -> "UniformSpline":
        return cls(np.asarray(d["lo"], float), np.asarray(d["h"], float),
                   np.asarray(d["coef"], float))
