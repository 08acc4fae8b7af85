"""Moments of the Chu pair in the local frame: Hermite moments, generalized moments, closure functionals.

Normalised distributions. At a state (rho, u, T) the local frame is xi = (v - u)/sqrt(T) and

    g(v) = rho/sqrt(T) * ghat(xi),   h(v)/T = rho/sqrt(T) * hhat(xi),

so a Maxwellian is ghat = hhat = exp(-xi^2/2)/sqrt(2 pi) whatever rho, u, T: ghat, hhat are
Galilean and scale invariant. Averages <chi>_g = int chi(xi) ghat dxi, <chi>_h likewise.

Hermite moments. mu [..., 2, J] with mu[..., 0, j] = <P_j>_g, mu[..., 1, j] = <P_j>_h,
P_j = He_j/sqrt(j!) (probabilists' Hermite, normalised); a Maxwellian has mu = e0 (1 at j = 0).

Generalized moments. W_k = int (g phi_k(xi) + (h/T) psi_k(xi)) dv = rho w_k with phi_k, psi_k
polynomials of degree <= D given by coefficients C[k] [2, D + 1] in the P_j basis, so that
w_k = sum C[k] * mu[..., :D+1]. The first two are fixed (stress and heat flux):

    w_0 = sigma_hat = <xi^2 - 1>_g          sigma = rho T w_0     (sigma_xx = int (v-u)^2 g - p)
    w_1 = q_hat = <xi^3/2>_g + <xi>_h       q     = rho T^1.5 w_1

the rest are learned (:mod:`conlearn.kinetic.training`): a basis, chosen by the autoencoder,
of the rest of the complete space of :func:`moment_space` (so M = 2D - 3). Every quantity the moment system
needs (fluxes, the non-conservative production terms) is a linear functional of mu up to
degree D + 1 (:func:`functionals`).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.polynomial import hermite_e as He

XI_MAX = 6.0      # the normalised distributions are tabulated on xi in [-XI_MAX, XI_MAX]
N_XI = 49


def xi_grid(n: int = N_XI, xi_max: float = XI_MAX) -> np.ndarray:
    return np.linspace(-xi_max, xi_max, n)


def _norms(n: int) -> np.ndarray:
    return np.sqrt([math.factorial(j) for j in range(n)])


def hermite_table(xi: np.ndarray, n: int) -> np.ndarray:
    """P_j(xi) = He_j(xi)/sqrt(j!) for j < n: [..., n] for xi [...] (three-term recurrence)."""
    xi = np.asarray(xi, float)
    out = np.empty(xi.shape + (n,))
    out[..., 0] = 1.0
    if n > 1:
        out[..., 1] = xi
    for j in range(1, n - 1):  # He_{j+1} = xi He_j - j He_{j-1}, in the normalised basis
        out[..., j + 1] = (xi * out[..., j] - math.sqrt(j) * out[..., j - 1]) / math.sqrt(j + 1)
    return out


def local_state(g, h, grid):
    """(rho, u, T) [...] of g, h [..., nv] (same as velocity.macroscopic)."""
    from .velocity import macroscopic

    return macroscopic(g, h, grid)


def hermite_moments(g, h, grid, n: int) -> np.ndarray:
    """mu [..., 2, n] of distributions g, h [..., nv] in their own local frame."""
    rho, u, T = local_state(g, h, grid)
    xi = (grid.v - u[..., None]) / np.sqrt(T)[..., None]
    P = hermite_table(xi, n) * grid.w[:, None]             # [..., nv, n]
    mg = np.einsum("...v,...vj->...j", g, P) / rho[..., None]
    mh = np.einsum("...v,...vj->...j", h / T[..., None], P) / rho[..., None]
    return np.stack([mg, mh], axis=-2)


def normalised(g, h, grid, xi: np.ndarray | None = None) -> np.ndarray:
    """(ghat, hhat) [..., 2, n_xi] on the xi grid (linear interpolation of the nodes)."""
    xi = xi_grid() if xi is None else xi
    rho, u, T = local_state(g, h, grid)
    g2, h2 = np.reshape(g, (-1, grid.nv)), np.reshape(h, (-1, grid.nv))
    r, uu, TT = rho.ravel(), u.ravel(), T.ravel()
    out = np.empty((r.size, 2, xi.size))
    for i in range(r.size):
        s = math.sqrt(TT[i])
        v = uu[i] + s * xi
        out[i, 0] = np.interp(v, grid.v, g2[i], left=0.0, right=0.0) * s / r[i]
        out[i, 1] = np.interp(v, grid.v, h2[i], left=0.0, right=0.0) / (s * r[i])
    return out.reshape(rho.shape + (2, xi.size))


def maxwell_hat(xi: np.ndarray | None = None) -> np.ndarray:
    """(ghat, hhat) [2, n_xi] of every Maxwellian."""
    xi = xi_grid() if xi is None else xi
    m = np.exp(-0.5 * xi * xi) / math.sqrt(2 * math.pi)
    return np.stack([m, m])


def equilibrium(n: int) -> np.ndarray:
    """mu [2, n] of a Maxwellian: 1 at j = 0, else 0."""
    e = np.zeros((2, n))
    e[:, 0] = 1.0
    return e


# -- polynomials in the normalised Hermite basis -------------------------------------------------
def _to_std(c: np.ndarray) -> np.ndarray:
    return c / _norms(c.shape[-1])


def _from_std(p: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n)
    out[: min(n, p.size)] = p[:n]
    return out * _norms(n)


def poly_mulx(c: np.ndarray, n: int) -> np.ndarray:
    """Coefficients [n] of xi * p for p given by c (normalised basis)."""
    return _from_std(He.hermemulx(_to_std(c)), n)


def poly_der(c: np.ndarray, n: int) -> np.ndarray:
    """Coefficients [n] of p'."""
    return _from_std(He.hermeder(_to_std(c)) if c.size > 1 else np.zeros(1), n)


def poly_values(c: np.ndarray, xi: np.ndarray) -> np.ndarray:
    """p(xi) for coefficients c [..., n] (normalised basis): [..., n_xi]."""
    return np.einsum("...j,xj->...x", c, hermite_table(xi, c.shape[-1]))


def fixed_coefficients(D: int) -> np.ndarray:
    """C [2, 2, D + 1] of the stress w_0 = <xi^2 - 1>_g and heat flux w_1 = <xi^3/2>_g + <xi>_h."""
    C = np.zeros((2, 2, D + 1))
    C[0, 0, 2] = math.sqrt(2.0)                  # xi^2 - 1 = sqrt(2) P_2
    C[1, 0, 3] = 0.5 * math.sqrt(6.0)            # xi^3 = sqrt(6) P_3 + 3 P_1; <P_1>_g = 0
    C[1, 0, 1] = 1.5
    C[1, 1, 1] = 1.0
    return C


def n_moments(D: int) -> int:
    """M of degree D: the complete space g: P_2..P_D, h: P_1..P_(D-2) (see :func:`moment_space`)."""
    return 2 * D - 3


def moment_space(D: int) -> np.ndarray:
    """Mask [2, D + 1] of the coefficients moments may use: g up to degree D, h up to D - 2,
    without the conserved ones (g: P_0, P_1; h: P_0). The projection closure of this complete
    set is hyperbolic at equilibrium (its speeds are the roots of He_(D+1), like Grad's);
    an incomplete set generally is not (complex speeds, measured)."""
    mask = np.zeros((2, D + 1), bool)
    mask[0, 2:] = True
    mask[1, 1:D - 1] = True
    return mask


def constraint_rows(n: int) -> np.ndarray:
    """Functionals [3, 2, n] that every normalised pair satisfies: <1>_g = 1, <xi>_g = 0,
    <xi^2/2>_g + <1>_h = 3/2 (mass, momentum and energy of the local frame); values (1, 0, 3/2)."""
    A = np.zeros((3, 2, n))
    A[0, 0, 0] = 1.0
    A[1, 0, 1] = 1.0
    A[2, 0, 0], A[2, 0, 2], A[2, 1, 0] = 0.5, math.sqrt(2.0) / 2, 1.0
    return A


CONSTRAINT_VALUES = np.array([1.0, 0.0, 1.5])


def functionals(C: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """The linear functionals on mu [..., 2, n] (n = D + 2) of the moments C [M, 2, D + 1].

    Returns arrays [M, 2, n]: "w" the moments, "a" the flux <xi phi>_g + <xi psi>_h,
    "A0" <phi'> + <psi'>, "A1" <xi phi'> + <xi psi'>, "A2" <xi^2 phi'> + <xi^2 psi'>,
    "B0" <psi>_h, "B1" <xi psi>_h (phi on g, psi on h).
    """
    M = C.shape[0]
    out = {k: np.zeros((M, 2, n)) for k in ("w", "a", "A0", "A1", "A2", "B0", "B1")}
    for k in range(M):
        for s in range(2):
            c = C[k, s]
            d = poly_der(c, n)
            out["w"][k, s] = _from_std(_to_std(c), n)
            out["a"][k, s] = poly_mulx(c, n)
            out["A0"][k, s] = d
            out["A1"][k, s] = poly_mulx(d, n)
            out["A2"][k, s] = poly_mulx(poly_mulx(d, n), n)
        out["B0"][k, 1] = out["w"][k, 1]
        out["B1"][k, 1] = out["a"][k, 1]
    return out


def apply(L: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Values [..., M] of functionals L [M, 2, n] on mu [..., 2, n]."""
    return np.einsum("kst,...st->...k", L, mu)
