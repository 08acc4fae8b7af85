"""MS-CG force matching recovers a known pair force exactly from data made by cg_md."""

import numpy as np
import pytest
from scipy.interpolate import BSpline

from conlearn.cg.md import cg_md
from conlearn.cg.pair import PairForceMatch, _knots, force_match_pair
from conlearn.cg.potential import PairTable, lj_table


def _hat_truth(r_min, rcut, n_basis):
    """A pair force that lies in the hat basis (LJ values at the knots, 0 at rcut) and its U."""
    knots = _knots(r_min, rcut, n_basis, 1)
    nodes = knots[1:-1]
    c = lj_table(1.0, 0.3, rcut)(nodes)[1]
    c[-1] = 0.0
    f = BSpline(knots, c, 1)
    r = np.linspace(r_min, rcut, 4 * (n_basis - 1) + 1)      # the knots are grid points
    anti = f.antiderivative()
    return PairTable(r, anti(rcut) - anti(r), f(r), rcut), f


def _samples(table, n_steps=1500, save_every=50, seed=0):
    n, a = 4, 0.36
    R0 = (np.indices((n, n, n)).reshape(3, -1).T + 0.5) * a
    box = np.full(3, n * a)
    res = cg_md(table, R0, box, np.full(len(R0), 18.0), n_steps, 4.0, 300.0, 2.0, seed, save_every)
    assert res["ok"]
    return res["positions"], res["forces"], box


def test_force_matching_is_exact_on_its_own_basis():
    truth, f = _hat_truth(0.24, 0.8, 29)
    R, F, box = _samples(truth)
    fit = force_match_pair(R, F, box, rcut=0.8, n_basis=29, r_min=0.24, smooth=0.0,
                           ridge=0.0)
    assert fit.fit_residual < 1e-12 and fit.n_frames == len(R)
    r = np.linspace(0.29, 0.79, 40)                          # where the data sample pairs
    assert np.allclose(fit(r)[1], f(r), rtol=1e-9, atol=1e-9)
    assert np.allclose(fit(r)[0], truth(r)[0], rtol=1e-7, atol=1e-6)   # and U(rcut) = 0
    assert fit(np.array([0.8]))[0][0] == 0.0


def test_force_matching_lj_with_cubic_splines_and_frame_by_frame_sums():
    lj = lj_table(1.0, 0.3, 0.8)
    R, F, box = _samples(lj)
    fit = force_match_pair(R, F, box, rcut=0.8, n_basis=40, degree=3, smooth=1e-6)
    r = np.linspace(0.3, 0.78, 30)
    err = np.abs(fit(r)[1] - lj(r)[1])
    assert err.max() < 0.02 * np.abs(lj(r)[1]).max() and fit.fit_residual < 1e-4
    fm = PairForceMatch(0.8, fit.r[0], 40, 3)                # accumulating = one big system
    for x, y in zip(R[:3], F[:3]):
        fm.add_frame(x, y, box)
    G = np.vstack([fm.design(x, box).toarray() for x in R[:3]])
    assert np.allclose(fm.A, G.T @ G) and np.allclose(fm.b, G.T @ F[:3].ravel())


def test_force_matching_errors():
    with pytest.raises(ValueError, match="r_min < rcut"):
        PairForceMatch(0.8, 0.9, 20)
    R = np.array([[[0.0, 0, 0], [0.1, 0, 0]]])
    with pytest.raises(ValueError, match="beads 0 and 1 are 0.1000 nm apart, below the basis start"):
        force_match_pair(R, np.zeros_like(R), np.full(3, 2.0), 0.8, 20, r_min=0.2)
    with pytest.raises(ValueError, match="differ"):
        force_match_pair(R, np.zeros((1, 3, 3)), np.full(3, 2.0), 0.8, 20)
