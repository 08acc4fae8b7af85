"""The closure member: exact at equilibrium, consistent with its inputs, files round trip, training."""

import json

import numpy as np
import pytest

from conlearn.kinetic import moments as mom
from conlearn.kinetic.bgk import kinetic_solve
from conlearn.kinetic.closure import Member, load_members, save_ensemble
from conlearn.kinetic.data import snapshot_payload
from conlearn.kinetic.initial import initial_profiles, sod
from conlearn.kinetic.mlsolver import MomentClosure, load_closure
from conlearn.kinetic.training import TrainSettings, train_member


def test_equilibrium_is_exact_and_outputs_match_inputs():
    m = Member.random(4, seed=1, amplitude=2.0)
    assert np.abs(m.mu(m.w_eq[None]) - mom.equilibrium(m.n)).max() < 1e-13
    w = m.w_eq + np.random.default_rng(0).normal(scale=0.1, size=(50, m.n_moments))
    mu = m.mu(w)
    assert np.abs(mom.apply(m.L["w"], mu) - m.clip(w)).max() < 1e-12       # w of the closure = w
    assert np.abs(mom.apply(mom.constraint_rows(m.n), mu) - mom.CONSTRAINT_VALUES).max() < 1e-12
    assert np.abs(mu - mom.equilibrium(m.n)).max() > 1e-3                   # and it is not trivial


def test_projection_closure_is_hyperbolic_at_equilibrium():
    """Complete moment space: the linearised speeds at a Maxwellian are the roots of He_(D+1)."""
    D = 4
    m = Member.random(D, seed=3, amplitude=0.0)
    n = m.n_moments
    V = np.concatenate([[1.0, 0.0, 1.0], m.w_eq])
    # the solver's quasi-linear matrix by finite differences of flux and production
    from conlearn.kinetic.mlsolver import _flux, production

    def qf(V):
        Q, F, _ = _flux(V[None], m.coefficients(V[None, 3:])["a"], 3.0, False)
        return Q[0], F[0]

    eps, k = 1e-6, 3 + n
    dQ, dF, dS = np.zeros((k, k)), np.zeros((k, k)), np.zeros((k, k))
    for j in range(k):
        e = np.zeros(k)
        e[j] = eps
        (Qp, Fp), (Qm, Fm) = qf(V + e), qf(V - e)
        dQ[:, j], dF[:, j] = (Qp - Qm) / (2 * eps), (Fp - Fm) / (2 * eps)
        P = np.tile(V, (5, 1))
        P[3, j] += 1.0   # a unit gradient of V_j: central differences over 2 dx, dx = 1
        P[1, j] -= 1.0
        coef = {kk: v[None, :1] for kk, v in m.coefficients(V[None, 3:]).items()}
        dS[3:, j] = production(P[None], coef, 1.0)[0, 0]
    speeds = np.linalg.eigvals(np.linalg.solve(dQ, dF - dS))
    assert np.abs(speeds.imag).max() < 1e-6
    roots = np.polynomial.hermite_e.hermeroots([0] * (D + 1) + [1])
    assert np.sort(speeds.real).max() == pytest.approx(roots.max(), abs=1e-5)


def test_member_and_ensemble_files_round_trip(tmp_path):
    members = [Member.random(4, seed=s, amplitude=1.0) for s in range(2)]
    w = members[0].w_eq + 0.05
    d = save_ensemble(members, tmp_path / "model", {"wave_speed": 2.5, "cfl": 0.4})
    loaded, meta = load_members(d)
    assert meta["solver"] == {"wave_speed": 2.5, "cfl": 0.4}
    for a, b in zip(members, loaded):
        assert np.array_equal(a.mu(w[None]), b.mu(w[None]))
    (tmp_path / "summary.json").write_text(json.dumps({"model": "model"}))
    model = load_closure(tmp_path)                  # a run directory finds its model
    assert isinstance(model, MomentClosure) and model.wave_speed == 2.5 and len(model.members) == 2
    with pytest.raises(FileNotFoundError, match="closure.json"):
        load_closure(tmp_path / "nothing")


def test_training_fits_the_closure_and_the_autoencoder():
    x = (np.arange(24) + 0.5) / 24
    out = kinetic_solve(x, *initial_profiles(sod(), x), 0.3, 0.05, "neumann", save_times=[0.025, 0.05])
    data = [snapshot_payload(out, 4, {"kn": 0.3})]
    s = TrainSettings(hidden=(16,), decoder_hidden=(16,), ae_steps=80, steps=150, batch=128)
    m, metrics = train_member(data, s, seed=0)
    mu = data[0]["mu"]
    w = mom.apply(m.L["w"], mu[:, :, :m.n])
    err = ((m.mu(w) - mu) / m.mu_scale) ** 2
    untrained = Member(C=m.C, w_scale=m.w_scale, w_lo=m.w_lo, w_hi=m.w_hi, mu_scale=m.mu_scale,
                       closure=[(W * 0, b * 0) for W, b in m.closure])
    err0 = ((untrained.mu(w) - mu) / m.mu_scale) ** 2
    assert err.mean() < 0.7 * err0.mean()
    rec = np.abs(m.decode(w) - data[0]["ghat"]).mean()
    assert rec < 0.9 * np.abs(mom.maxwell_hat() - data[0]["ghat"]).mean()   # 80 steps: better than Maxwell
    assert metrics["n_cells"] == 48 and not metrics["warm"]
    m2, metrics2 = train_member(data, s, seed=1, previous=m)      # warm start
    assert metrics2["warm"]
