"""Local-frame moments: Maxwellian values, exact functionals against direct quadrature, invariance."""

import math

import numpy as np
import pytest

from conlearn.kinetic import moments as mom
from conlearn.kinetic.velocity import macroscopic, maxwellian, velocity_grid

GRID = velocity_grid(128, 12.0)


def two_stream(u0=0.0):
    """A non-Maxwellian pair: two Maxwellians (h of the second one hotter), boosted by u0."""
    g1, h1 = maxwellian(0.6, 0.8 + u0, 0.7, GRID)
    g2, h2 = maxwellian(0.4, -0.9 + u0, 1.3, GRID)
    return g1 + g2, h1 + 1.5 * h2


def test_hermite_table_is_orthonormal_under_the_gaussian():
    xi, wq = np.polynomial.hermite_e.hermegauss(30)
    P = mom.hermite_table(xi, 8)
    gram = (P * (wq / math.sqrt(2 * math.pi))[:, None]).T @ P
    assert np.abs(gram - np.eye(8)).max() < 1e-12


@pytest.mark.parametrize("rho,u,T", [(1.0, 0.0, 1.0), (0.125, 0.7, 0.3), (2.0, -1.5, 1.5)])
def test_moments_of_a_maxwellian_are_e0(rho, u, T):
    g, h = maxwellian(rho, u, T, GRID)
    mu = mom.hermite_moments(g, h, GRID, 7)
    assert np.abs(mu - mom.equilibrium(7)).max() < 1e-10
    w = mom.apply(mom.functionals(mom.fixed_coefficients(5), 7)["w"], mu)
    assert np.abs(w).max() < 1e-10           # no stress, no heat flux
    hat = mom.normalised(g, h, GRID)
    assert np.abs(hat - mom.maxwell_hat()).max() < 1e-2   # linear interpolation, dxi <= 0.35


def test_stress_heat_flux_and_all_functionals_equal_quadrature():
    g, h = two_stream()
    rho, u, T = macroscopic(g, h, GRID)
    v, wv = GRID.v, GRID.w
    mu = mom.hermite_moments(g, h, GRID, 7)
    sigma = (wv * (v - u) ** 2 * g).sum() - rho * T
    q = (wv * (v - u) * (0.5 * (v - u) ** 2 * g + h)).sum()
    L = mom.functionals(mom.fixed_coefficients(5), 7)
    w = mom.apply(L["w"], mu)
    assert w == pytest.approx([sigma / (rho * T), q / (rho * T ** 1.5)], rel=1e-12)
    assert np.abs(mom.apply(mom.constraint_rows(7), mu) - mom.CONSTRAINT_VALUES).max() < 1e-12
    # random polynomials phi (on g), psi (on h/T): every functional by direct quadrature
    C = np.random.default_rng(0).normal(size=(3, 2, 6))
    L = mom.functionals(C, 7)
    xi = (v - u) / math.sqrt(T)
    gh = g * math.sqrt(T) / rho      # ghat at the nodes (dxi = dv/sqrt(T))
    hh = h / T * math.sqrt(T) / rho
    dxi = wv / math.sqrt(T)
    for k in range(3):
        phi, psi = (mom.poly_values(C[k, s], xi) for s in range(2))
        dphi, dpsi = (np.polynomial.hermite_e.hermeval(xi, np.polynomial.hermite_e.hermeder(
            C[k, s] / np.sqrt([math.factorial(j) for j in range(6)]))) for s in range(2))
        want = {"w": (dxi * (gh * phi + hh * psi)).sum(), "a": (dxi * xi * (gh * phi + hh * psi)).sum(),
                "A0": (dxi * (gh * dphi + hh * dpsi)).sum(), "A1": (dxi * xi * (gh * dphi + hh * dpsi)).sum(),
                "A2": (dxi * xi ** 2 * (gh * dphi + hh * dpsi)).sum(), "B0": (dxi * hh * psi).sum(),
                "B1": (dxi * xi * hh * psi).sum()}
        for name, value in want.items():
            assert mom.apply(L[name], mu)[k] == pytest.approx(value, rel=1e-9, abs=1e-11), name


def test_moments_are_galilean_invariant():
    """A boosted distribution has the same local-frame moments (to quadrature error)."""
    a = mom.hermite_moments(*two_stream(0.0), GRID, 7)
    b = mom.hermite_moments(*two_stream(0.37), GRID, 7)
    assert np.abs(a - b).max() < 1e-9
