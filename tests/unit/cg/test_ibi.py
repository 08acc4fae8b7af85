"""IBI moves a pair potential towards a target RDF (made by cg_md with a known LJ table)."""

import numpy as np
import pytest

from conlearn.cg.analysis import rdf
from conlearn.cg.ibi import IBISettings, ibi, pressure_bar
from conlearn.cg.md import cg_md
from conlearn.cg.potential import lj_table


def _liquid():
    n, a = 5, 0.33
    R0 = (np.indices((n, n, n)).reshape(3, -1).T + 0.5) * a
    return R0, np.full(3, n * a), np.full(len(R0), 18.0)


def test_ibi_approaches_the_target_rdf():
    lj = lj_table(2.0, 0.3, 0.7)
    R0, box, m = _liquid()
    ref = cg_md(lj, R0, box, m, 3000, 5.0, 300.0, 2.0, 0, 20)
    r, g_t = rdf(ref["positions"][30:], box, r_max=0.8, n_bins=40)
    settings = IBISettings(n_steps=1200, equil_steps=300, save_every=20, alpha=0.8)
    table, hist = ibi(r, g_t, ref["state"]["positions"], box, m, 300.0, rcut=0.7, n_iter=3,
                      settings=settings, seed=1)
    err = [h["rdf_rmse"] for h in hist]
    assert all(h["ok"] for h in hist)
    assert err[-1] < 0.6 * err[0]                    # the PMF start is off at liquid density
    assert table(np.array([0.7]))[0][0] == 0.0 and np.isfinite(table.U).all()
    assert table._uniform                              # IBI tables take the fused kernel
    P = pressure_bar(lj, ref["positions"][30::10], box, 300.0)
    assert np.isfinite(P)


def test_ibi_rejects_a_short_target():
    R0, box, m = _liquid()
    with pytest.raises(ValueError, match="ends at 0.500 nm, before rcut=0.7"):
        ibi(np.linspace(0.01, 0.5, 50), np.ones(50), R0, box, m, 300.0, rcut=0.7, n_iter=1)


def test_virial_is_minus_the_scaling_derivative_and_ideal_gas_pressure():
    from conlearn.cg.md import KB
    from conlearn.cg.potential import PairTable

    lj = lj_table(2.0, 0.3, 0.7)
    R0, box, _ = _liquid()
    R = R0 + np.random.default_rng(0).normal(scale=0.02, size=R0.shape)
    h = 1e-6
    E = [float(lj.energy_forces(R * s, box * s)[0]) for s in (1 + h, 1 - h)]
    assert lj.virial(R, box) == pytest.approx(-(E[0] - E[1]) / (2 * h), rel=1e-6)
    zero = PairTable(lj.r, 0 * lj.U, 0 * lj.F, lj.cutoff)
    V = float(np.prod(box))
    assert pressure_bar(zero, R[None], box, 300.0) == pytest.approx(len(R) * KB * 300.0 / V * 16.6054)
