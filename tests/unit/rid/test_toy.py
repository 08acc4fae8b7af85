"""The toy engine: its exact FES, restrained mean forces against quadrature, the applied bias."""

import math

import numpy as np
import pytest
from scipy.integrate import quad

from conlearn.rid.engine import ENGINES, MDResult, kT
from conlearn.rid.label import mean_force
from conlearn.rid.toy import GridBias, ToyLangevinEngine, toy_fes, toy_V

BETA = 1 / kT(300.0)


def test_exact_fes_is_the_z_marginal():
    k, c = 50.0, 20.0
    for phi, psi in [(0.3, -1.0), (2.0, 1.5), (-3.0, 0.2)]:
        Z = quad(lambda z: math.exp(-BETA * (0.5 * k * z * z + c * z * math.cos(phi))), -5, 5)[0]
        A = toy_V(phi, psi) - math.log(Z) / BETA + math.log(math.sqrt(2 * math.pi / (BETA * k))) / BETA
        assert A == pytest.approx(toy_fes(phi, psi, k, c), abs=1e-9)
    assert ENGINES.get("toy") is ToyLangevinEngine


def exact_restrained_force(center, kappa, n=721):
    """−∇A_κ(s*) = κ ⟨wrap(s − s*)⟩ under exp(−β[A + ½ κ wrap²]) by quadrature on the torus."""
    g = np.linspace(-math.pi, math.pi, n)[:-1]
    P, S = np.meshgrid(g, g, indexing="ij")
    dp = (P - center[0] + math.pi) % (2 * math.pi) - math.pi
    ds = (S - center[1] + math.pi) % (2 * math.pi) - math.pi
    w = np.exp(-BETA * (toy_fes(P, S) + 0.5 * kappa * (dp ** 2 + ds ** 2) - toy_fes(*center)))
    return kappa * np.array([(w * dp).sum(), (w * ds).sum()]) / w.sum()


def test_restrained_mean_forces_match_quadrature():
    eng = ToyLangevinEngine(dt_restrained=0.001)
    kappa = 1000.0
    for i, center in enumerate([np.array([-2.0, 1.0]), np.array([0.8, -0.6]), np.array([3.1, -3.1])]):
        start = np.array([center[0], center[1], -eng.c * math.cos(center[0]) / eng.k])
        res = eng.restrained_md(center, np.array([kappa, kappa]), 1500, 1, seed=i, start=start)
        assert isinstance(res, MDResult) and res.n_steps == 1500 * eng.n_replicas and res.cv.shape == (1500, 2)
        f, err = mean_force(res.cv, center, [kappa, kappa], (True, True), 0.2, 10)
        exact = exact_restrained_force(center, kappa)
        assert np.all(np.abs(f - exact) < 4 * err + 0.1), (center, f, exact, err)
        assert np.all(err < 1.0)


class ExactFlattening:
    """The bias −A(φ, ψ): biased MD then samples (φ, ψ) uniformly."""

    d, periodic = 2, (True, True)

    def energy_and_grad(self, s):
        h = 1e-6
        A = lambda x: toy_fes(x[:, 0], x[:, 1])
        g = np.stack([(A(s + [h, 0]) - A(s - [h, 0])) / (2 * h), (A(s + [0, h]) - A(s - [0, h])) / (2 * h)], 1)
        return -A(s), -g


def test_tabulated_bias_is_close_and_flattens_the_fes():
    bias = ExactFlattening()
    grid = GridBias(bias, 96)
    s = np.random.default_rng(0).uniform(-math.pi, math.pi, (200, 2))
    assert np.abs(grid.grad(s) - bias.energy_and_grad(s)[1]).max() < 0.3  # bilinear on a 0.065 rad grid
    eng = ToyLangevinEngine()
    res = eng.biased_md(bias, 30000, 20, seed=3, start=None)
    assert res.frames.shape == (1500, 3) and np.array_equal(res.frames[:, :2], res.cv)
    assert np.all(np.abs(res.cv) <= math.pi)
    quarter = np.histogram2d(res.cv[:, 0], res.cv[:, 1], bins=2, range=[[-math.pi, math.pi]] * 2)[0] / len(res.cv)
    assert np.all(np.abs(quarter - 0.25) < 0.12), quarter
    unbiased = eng.biased_md(None, 30000, 20, seed=3, start=None)  # stays in its basin near (−3, 1.5)
    assert np.mean(np.abs(unbiased.cv[:, 1] - 1.5) < 1.0) > 0.9
