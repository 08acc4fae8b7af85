"""MS-CG force matching of a pair potential: linear least squares on a B-spline basis in r.

The pair force ``f(r) = sum_k c_k B_k(r)`` (B-splines of degree 1 = hat functions, or 3) acts
along the pair axis; the model force on bead I is ``sum_J f(r_IJ) (R_I - R_J) / r_IJ``. It is
linear in ``c``, so the normal equations ``(G^T G) c = G^T F`` are accumulated frame by frame
(memory independent of the trajectory length) and solved once with a light smoothness
regulariser. The potential is its integral with ``U(rcut) = 0``; the last coefficient is fixed
at 0 so ``f(rcut) = 0`` as well. Units: nm, kJ/mol, kJ/mol/nm.

With ``angular=(gamma, a, degree)`` the same least squares also fits the coefficients of a
Stillinger-Weber-type three-body term (:class:`conlearn.cg.threebody.ThreeBody`), which is
linear in them too: ``force_match_pair(..., angular=...)`` then returns pair + three-body.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import vesin
from scipy.interpolate import BSpline

from conlearn.cg.neighbors import build_pairs
from conlearn.cg.potential import PairTable
from conlearn.cg.threebody import ThreeBody, basis_forces


def _knots(r_min: float, rcut: float, n_basis: int, degree: int) -> np.ndarray:
    inner = np.linspace(r_min, rcut, n_basis - degree + 1)
    return np.concatenate([[r_min] * degree, inner, [rcut] * degree])


class PairForceMatch:
    """Accumulates the MS-CG normal equations; ``add_frame`` then ``solve``.

    Args:
        rcut: nm, the pair cutoff (f = 0 and U = 0 there).
        r_min: nm, the basis starts here; pairs closer than r_min are an error (choose it below
            the closest sampled pair).
        n_basis: number of basis functions (the last one, at rcut, is fixed to 0).
        degree: 1 (hat functions) or 3 (cubic B-splines).
        angular: ``(gamma nm, a nm, degree)`` of a three-body term fitted with the pair
            (``degree + 1`` more coefficients, after the pair's); None: pair only.
    """

    def __init__(self, rcut: float, r_min: float, n_basis: int = 60, degree: int = 1,
                 angular: tuple[float, float, int] | None = None):
        if not 0 < r_min < rcut or n_basis <= degree + 1:
            raise ValueError(f"force matching needs 0 < r_min < rcut and n_basis > degree + 1 "
                             f"(r_min={r_min}, rcut={rcut}, n_basis={n_basis}, degree={degree})")
        if angular is not None and not (angular[0] > 0 and angular[1] > 0 and int(angular[2]) >= 0):
            raise ValueError(f"angular: (gamma > 0 nm, a > 0 nm, degree >= 0), got {angular}")
        self.rcut, self.r_min, self.degree = float(rcut), float(r_min), int(degree)
        self.knots = _knots(self.r_min, self.rcut, n_basis, self.degree)
        self.n_basis = n_basis - 1                 # free coefficients (the last is 0)
        self.angular = None if angular is None else (float(angular[0]), float(angular[1]), int(angular[2]))
        n_free = self.n_basis + (0 if angular is None else self.angular[2] + 1)
        self.A = np.zeros((n_free, n_free))
        self.b = np.zeros(n_free)
        self.ff = 0.0
        self.n_frames = 0

    def design(self, R, box) -> sp.csr_matrix:
        """The design matrix ``G`` ``[3N, n_basis]``: ``G @ c`` is the flattened model force."""
        R, box = np.asarray(R, dtype=float), np.asarray(box, dtype=float)
        nl = vesin.NeighborList(cutoff=self.rcut, full_list=False)
        i, j, D, d = nl.compute(R, np.diag(box), True, "ijDd")
        keep = (d < self.rcut) & (i != j)
        i, j, D, d = i[keep], j[keep], D[keep], d[keep]
        if len(d) and d.min() < self.r_min:
            raise ValueError(f"beads {int(i[d.argmin()])} and {int(j[d.argmin()])} are "
                             f"{d.min():.4f} nm apart, below the basis start r_min={self.r_min} nm")
        B = BSpline.design_matrix(d, self.knots, self.degree)[:, : self.n_basis]
        e = D / d[:, None]                          # unit vector i -> j
        p = np.arange(len(d))
        rows = np.concatenate([3 * i[:, None] + np.arange(3), 3 * j[:, None] + np.arange(3)])
        cols = np.concatenate([p, p])[:, None].repeat(3, 1)
        vals = np.concatenate([-e, e])               # force on i is -f e, on j +f e
        M = sp.csr_matrix((vals.ravel(), (rows.ravel(), cols.ravel())), shape=(3 * len(R), len(d)))
        G = (M @ B).tocsr()
        if self.angular is None:
            return G
        gamma, a, deg = self.angular
        pairs = build_pairs(R, box, a)
        _, Fb = basis_forces(R, pairs, gamma, a, np.eye(deg + 1))
        return sp.hstack([G, sp.csr_matrix(Fb.reshape(deg + 1, -1).T)]).tocsr()

    def add_frame(self, R, F, box) -> None:
        """Add one frame: bead positions ``R`` ``[N, 3]`` nm, mapped forces ``F`` ``[N, 3]``."""
        G = self.design(R, box)
        f = np.asarray(F, dtype=float).ravel()
        self.A += (G.T @ G).toarray()
        self.b += G.T @ f
        self.ff += float(f @ f)
        self.n_frames += 1

    def solve(self, smooth: float = 1e-4, ridge: float = 1e-9) -> np.ndarray:
        """Coefficients ``[n_basis]``: min |G c - F|^2 + smooth s |D2 c|^2 + ridge s |c|^2,
        ``s`` the mean diagonal of ``G^T G`` (so the regulariser is scale free)."""
        if self.n_frames == 0:
            raise ValueError("force matching: no frames added")
        nb, n = self.n_basis, len(self.b)
        s = max(np.mean(np.diag(self.A)[:nb]), 1e-300)
        D2 = np.zeros((nb - 2, n))
        D2[:, :nb] = np.diff(np.eye(nb), 2, axis=0)
        scale = np.maximum(np.diag(self.A), 1e-300)  # the ridge per coefficient, scale free
        lhs = self.A + smooth * s * D2.T @ D2 + ridge * np.diag(scale)
        self.coef = np.linalg.solve(lhs, self.b)
        return self.coef

    def residual(self) -> float:
        """Training residual ``|F - G c|^2 / |F|^2`` from the accumulated sums."""
        c = self.coef
        return float((self.ff - 2 * c @ self.b + c @ self.A @ c) / self.ff)

    def table(self, dr: float = 0.002) -> PairTable:
        """The fitted potential as a PairTable on a grid of spacing ``dr`` nm, U(rcut) = 0."""
        c = np.concatenate([self.coef[: self.n_basis], [0.0]])
        f = BSpline(self.knots, c, self.degree, extrapolate=False)
        n = max(int(np.ceil((self.rcut - self.r_min) / dr)) + 1, 8)
        r = np.linspace(self.r_min, self.rcut, n)
        anti = f.antiderivative()
        U = anti(self.rcut) - anti(r)               # U(r) = int_r^rcut f(s) ds
        return PairTable(r, U, f(r), self.rcut)

    def threebody(self) -> ThreeBody | None:
        """The fitted three-body term (None without ``angular``)."""
        if self.angular is None:
            return None
        gamma, a, _ = self.angular
        return ThreeBody(self.coef[self.n_basis:], gamma, a)


def closest_pair(R, box, probe: float = 0.5) -> float:
    """The smallest bead-bead distance nm over frames ``R`` ``[T, N, 3]`` (``probe`` if none closer)."""
    nl = vesin.NeighborList(cutoff=probe, full_list=False)
    best = probe
    for x in np.asarray(R, dtype=float).reshape(-1, *np.shape(R)[-2:]):
        i, j, d = nl.compute(x, np.diag(np.asarray(box, dtype=float)), True, "ijd")
        d = d[i != j]
        if len(d):
            best = min(best, float(d.min()))
    return best


def force_match_pair(R, F, box, rcut: float, n_basis: int = 60, *, r_min: float | None = None,
                     degree: int = 1, smooth: float = 1e-4, ridge: float = 1e-9,
                     dr: float = 0.002, angular: tuple[float, float, int] | None = None):
    """Fit a pair potential to mapped forces (MS-CG).

    Args:
        R: ``[T, N, 3]`` nm bead positions; F: ``[T, N, 3]`` kJ/mol/nm mapped forces.
        box: ``[3]`` (or ``[T, 3]``) nm; rcut: nm; n_basis: basis size.
        r_min: basis start (default: 0.01 nm below the closest pair in the data).
        smooth, ridge: regularisers (see :meth:`PairForceMatch.solve`); 0 and 0 for a pure fit.
        angular: ``(gamma nm, a nm, degree)``: fit a three-body term as well.
    Returns:
        PairTable (with ``angular``: a :class:`conlearn.cg.baseline.PairThreeBody`) with
        attributes ``fit_residual`` (training |F - F_model|^2/|F|^2) and ``n_frames``.
    """
    R, F = np.asarray(R, dtype=float), np.asarray(F, dtype=float)
    if R.ndim == 2:
        R, F = R[None], F[None]
    if R.shape != F.shape or R.shape[-1] != 3:
        raise ValueError(f"force_match_pair: positions {R.shape} and forces {F.shape} differ")
    boxes = np.broadcast_to(np.asarray(box, dtype=float), (len(R), 3))
    if r_min is None:
        r_min = max(closest_pair(R, boxes[0]) - 0.01, 0.01)
    fm = PairForceMatch(rcut, r_min, n_basis, degree, angular)
    for x, f, b in zip(R, F, boxes):
        fm.add_frame(x, f, b)
    fm.solve(smooth, ridge)
    table = fm.table(dr)
    if angular is not None:
        from conlearn.cg.baseline import PairThreeBody

        table = PairThreeBody(table, fm.threebody())
    table.fit_residual, table.n_frames = fm.residual(), fm.n_frames
    return table
