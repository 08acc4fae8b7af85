"""Seeded random initial data: ranges of issue 12, reproducibility, Riemann cell averaging."""

import json

import numpy as np
import pytest

from conlearn.kinetic.euler import to_conserved
from conlearn.kinetic.initial import (benchmark_wave, initial_profiles, random_riemann, random_wave,
                                      sample_kn, sod)


def cells(nx):
    return (np.arange(nx) + 0.5) / nx


def test_wave_ranges_and_seed():
    rng = np.random.default_rng(0)
    x = cells(400)
    nmodes = set()
    for _ in range(200):
        spec = random_wave(rng)
        rho, u, T = initial_profiles(spec, x)
        assert rho.min() >= 0.3 and T.min() >= 0.3 and np.abs(u).max() <= 0.5
        nmodes.update(len(spec[f]["modes"]) for f in ("rho", "u", "T"))
        json.dumps(spec)
    assert nmodes == {1, 2, 3}
    assert random_wave(np.random.default_rng(5)) == random_wave(np.random.default_rng(5))


def test_riemann_ranges_and_cell_average():
    rng = np.random.default_rng(1)
    for _ in range(200):
        spec = random_riemann(rng)
        assert 0.3 <= spec["x0"] <= 0.7 and spec["bc"] == "neumann"
        for rho, u, p in (spec["left"], spec["right"]):
            assert 0.125 <= rho <= 1 and 0.1 <= p <= 1 and abs(u) <= 0.5
    spec = {"kind": "riemann", "bc": "neumann", "x0": 0.5125, "left": [1.0, 0.2, 1.0], "right": [0.125, -0.1, 0.1]}
    x = cells(40)   # x0 sits in cell 20 ([0.5, 0.525]), half way
    U = to_conserved(*initial_profiles(spec, x))
    UL, UR = to_conserved(1.0, 0.2, 1.0), to_conserved(0.125, -0.1, 0.8)
    assert np.allclose(U[19], UL) and np.allclose(U[21], UR) and np.allclose(U[20], 0.5 * (UL + UR))
    # conserved totals do not depend on the grid
    tot = [to_conserved(*initial_profiles(spec, cells(n))).mean(0) for n in (40, 160)]
    assert np.allclose(tot[0], tot[1], rtol=1e-14)


def test_kn_log_uniform():
    rng = np.random.default_rng(2)
    kn = np.array([sample_kn(rng) for _ in range(4000)])
    assert kn.min() >= 1e-3 and kn.max() <= 10
    counts = np.histogram(np.log10(kn), bins=4, range=(-3, 1))[0]
    assert np.all(np.abs(counts - 1000) < 120), counts


def test_named_cases_and_bad_spec():
    x = cells(100)
    rho, u, T = initial_profiles(benchmark_wave(), x)
    assert np.allclose(T, 1 + 0.3 * np.cos(2 * np.pi * x)) and np.allclose(u, 0.3 * np.sin(4 * np.pi * x + 0.5))
    rho, u, T = initial_profiles(sod(), x)
    assert np.allclose(rho * T, np.where(x < 0.5, 1.0, 0.1))
    with pytest.raises(ValueError, match="negative or zero density rho = -0.5 at cell 0"):
        initial_profiles({"kind": "riemann", "bc": "neumann", "x0": 0.5, "left": [-0.5, 0, 1], "right": [1, 0, 1]}, x)
    with pytest.raises(ValueError, match="unknown kind"):
        initial_profiles({"kind": "vortex"}, x)
