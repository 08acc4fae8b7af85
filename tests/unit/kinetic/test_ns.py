"""Navier-Stokes baseline: Euler limit, conservation, closer to BGK than Euler at small Kn."""

import numpy as np

from conlearn.kinetic.bgk import kinetic_solve
from conlearn.kinetic.euler import euler_solve, to_conserved
from conlearn.kinetic.initial import benchmark_wave, initial_profiles, sod
from conlearn.kinetic.ns import ns_solve


def cells(nx):
    return (np.arange(nx) + 0.5) / nx


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def test_ns_reduces_to_euler():
    x = cells(100)
    for spec in (benchmark_wave(), sod()):
        s = initial_profiles(spec, x)
        e = euler_solve(x, *s, 1e-8, 0.1, bc=spec["bc"])
        n = ns_solve(x, *s, 1e-8, 0.1, bc=spec["bc"])
        assert max(rel(n[q], e[q]) for q in ("rho", "u", "T")) < 1e-6
        n3 = ns_solve(x, *s, 1e-3, 0.1, bc=spec["bc"])
        assert rel(n3["u"], e["u"]) > 1e-3     # and the viscous terms do act


def test_conservation_periodic_large_kn():
    x = cells(64)
    s = initial_profiles(benchmark_wave(), x)
    out = ns_solve(x, *s, 10.0, 0.1)
    U0, U1 = to_conserved(*s).sum(0), to_conserved(out["rho"], out["u"], out["T"]).sum(0)
    assert np.abs(U1 - U0).max() < 1e-12 * np.abs(U0).max()
    assert out["T"].min() > 0 and out["steps"] < 100    # implicit viscosity: no viscous dt limit


def test_ns_closer_to_bgk_than_euler_at_small_kn():
    x = cells(100)
    s = initial_profiles(benchmark_wave(), x)
    k = kinetic_solve(x, *s, 1e-2, 0.1)
    e_err = rel(euler_solve(x, *s, 1e-2, 0.1)["u"], k["u"])
    n_err = rel(ns_solve(x, *s, 1e-2, 0.1)["u"], k["u"])
    assert n_err < 0.2 * e_err and n_err < 0.02, (n_err, e_err)


def test_galilean_boost_euler_and_ns():
    """Boost by 0.5: the solution is the unboosted one shifted by 0.05 = 5 cells (100 cells, t = 0.1)."""
    x = cells(100)
    rho, u, T = initial_profiles(benchmark_wave(), x)
    for solve in (euler_solve, ns_solve):
        a = solve(x, rho, u, T, 1e-2, 0.1)
        b = solve(x, rho, u + 0.5, T, 1e-2, 0.1)
        assert rel(np.roll(a["rho"], 5), b["rho"]) < 1.5e-3 and rel(np.roll(a["T"], 5), b["T"]) < 1e-3
        assert np.abs(np.roll(a["u"], 5) + 0.5 - b["u"]).max() < 2e-3     # measured 1.0e-3 (Euler)
