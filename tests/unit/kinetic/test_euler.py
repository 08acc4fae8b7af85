"""Euler baseline: Sod against the exact Riemann solution, conservation, positivity."""

import numpy as np
import pytest

from conlearn.kinetic.euler import euler_solve, exact_riemann, to_conserved
from conlearn.kinetic.initial import initial_profiles, sod


def cells(nx):
    return (np.arange(nx) + 0.5) / nx


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def test_exact_riemann_sod_star_state():
    """Star state of Sod with gamma = 5/3 solves the pressure equation; Rankine-Hugoniot at the shock."""
    x = np.linspace(0, 1, 2001)
    r, u, p = exact_riemann((1.0, 0.0, 1.0), (0.125, 0.0, 0.1), x, 0.1)
    ps, us = p[1200], u[1200]     # x = 0.6: between contact and shock
    assert 0.25 < ps < 0.35 and abs(u[1100] - us) < 1e-12
    # shock speed from mass conservation across the shock equals the fan's shock position
    rs = r[1200]
    s = rs * us / (rs - 0.125)
    shock = x[np.argmax(r < 0.126)]
    assert abs(0.5 + s * 0.1 - shock) < 1e-3
    # momentum jump condition
    assert abs((rs * us * (us - s) + ps) - 0.1) < 1e-9


@pytest.mark.parametrize("nx,tol", [(100, (0.03, 0.17, 0.07)), (400, (0.015, 0.06, 0.03))])
def test_sod_against_exact(nx, tol):
    x = cells(nx)
    out = euler_solve(x, *initial_profiles(sod(), x), 1e-3, 0.1, bc="neumann")
    r, u, p = exact_riemann((1.0, 0.0, 1.0), (0.125, 0.0, 0.1), x, 0.1)
    errs = rel(out["rho"], r), rel(out["u"], u), rel(out["T"], p / r)
    assert all(e < t for e, t in zip(errs, tol)), errs


def test_conservation_periodic():
    x = cells(80)
    rho, u, T = 1 + 0.5 * np.sin(2 * np.pi * x), 0.3 * np.sin(4 * np.pi * x + 0.5), 1 + 0.3 * np.cos(2 * np.pi * x)
    out = euler_solve(x, rho, u, T, 1e-3, 0.3)
    U0, U1 = to_conserved(rho, u, T).sum(0), to_conserved(out["rho"], out["u"], out["T"]).sum(0)
    assert np.abs(U1 - U0).max() < 1e-12 * np.abs(U0).max()


def test_positive_on_strong_rarefaction():
    """Two streams leaving each other at |u| = 0.5 from a cold gas: rho, T stay positive."""
    x = cells(100)
    rho, u, T = np.full(100, 0.125), np.where(x < 0.5, -0.5, 0.5), np.full(100, 0.8)
    out = euler_solve(x, rho, u, T, 1e-3, 0.1, bc="neumann")
    assert out["rho"].min() > 0 and out["T"].min() > 0
