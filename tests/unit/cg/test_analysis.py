"""Analysis: ideal-gas RDF = 1, ADF of a lattice and of an ideal gas, diffusion of a random walk."""

import numpy as np
import pytest

from conlearn.cg import analysis


def test_rdf_of_ideal_gas_is_one_beyond_half_the_box():
    rng = np.random.default_rng(0)
    box = np.array([1.8, 2.0, 2.2])
    R = rng.uniform(0, 1, size=(20, 150, 3)) * box
    r, g = analysis.rdf(R, box, r_max=1.4, n_bins=28)        # r_max > half of every side
    assert r[0] == pytest.approx(0.025) and len(g) == 28
    assert abs(g[r > 0.3].mean() - 1.0) < 0.01
    assert np.abs(g[r > 0.3] - 1.0).max() < 0.12


def test_adf_of_simple_cubic_lattice_and_ideal_gas():
    a, n = 0.3, 4
    R = (np.indices((n, n, n)).reshape(3, -1).T + 0.5) * a
    theta, p = analysis.adf(R, np.full(3, n * a), cutoff=0.35, n_bins=36)
    mass = p * (theta[1] - theta[0])
    assert mass.sum() == pytest.approx(1.0)
    assert mass[np.abs(theta - 92.5) < 1].sum() == pytest.approx(12 / 15)   # 12 right angles
    assert mass[-1] == pytest.approx(3 / 15)                               # 3 straight ones
    rng = np.random.default_rng(1)
    gas = rng.uniform(0, 2.0, size=(10, 300, 3))
    theta, p = analysis.adf(gas, np.full(3, 2.0), cutoff=0.4, n_bins=30)
    ideal = np.sin(np.radians(theta)) * np.pi / 360.0                      # uniform directions
    assert analysis.adf_l1(p, ideal, theta) < 0.08
    assert analysis.first_peak(theta, p)[0] == pytest.approx(90.0, abs=25)


def test_diffusion_of_a_random_walk():
    rng = np.random.default_rng(2)
    D, dt = 0.05, 0.1                                                       # nm^2/ps, ps
    steps = rng.normal(scale=np.sqrt(2 * D * dt), size=(2000, 200, 3))
    R = np.cumsum(steps, axis=0)
    assert analysis.diffusion(R, dt) == pytest.approx(D, rel=0.08)
    t, m = analysis.msd(R, dt)
    assert t[0] == pytest.approx(dt) and np.all(np.diff(m) > 0)


def test_density_and_residuals():
    box = np.full(3, (64 * 18.01528 * 1.66053906660e-3 / 0.997) ** (1 / 3))
    assert analysis.density(64 * 18.01528, box) == pytest.approx(0.997, rel=1e-7)
    F = np.random.default_rng(3).normal(size=(5, 10, 3))
    assert analysis.fm_residual(F, F) == 0.0 and analysis.fm_residual(F, 0 * F) == 1.0
    r = np.linspace(0, 1, 11)
    assert analysis.rdf_rmse(r, np.ones(11), np.ones(11) + 0.1 * (r >= 0.2)) == pytest.approx(0.1)
