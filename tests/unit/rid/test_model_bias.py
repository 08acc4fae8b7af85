"""The ensemble (forces by autograd, ε with 1/d, vectorised = one-by-one training, files) and the bias."""

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from conlearn.rid.bias import EnsembleBias, switch
from conlearn.rid.model import Ensemble, FitSettings, deviation_of


def fd_grad(fn, s, h=1e-6):
    g = np.zeros_like(s)
    for j in range(s.shape[1]):
        d = np.zeros_like(s)
        d[:, j] = h
        g[:, j] = (fn(s + d) - fn(s - d)) / (2 * h)
    return g


def test_switch_values_edges_and_shape():
    e0, e1 = 1.0, 3.0
    eps = np.array([0.0, 1.0, 1.5, 2.0, 2.5, 3.0, 10.0])
    sig = switch(eps, e0, e1)
    assert np.allclose(sig, [1, 1, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 + math.cos(3 * math.pi / 4)), 0, 0])
    assert np.all(np.diff(switch(np.linspace(0, 4, 200), e0, e1)) <= 0)  # monotone
    t = switch(torch.tensor(eps), e0, e1)
    assert np.allclose(t.numpy(), sig)
    # continuous first derivative: zero slope at both ends
    h = 1e-6
    for e in (e0, e1):
        assert abs((switch(e + h, e0, e1) - switch(e - h, e0, e1)) / (2 * h)) < 1e-4
    with pytest.raises(ValueError, match="e0 < e1"):
        switch(eps, 2.0, 2.0)


def test_deviation_is_rms_over_cv_components_of_member_variance():
    F = torch.tensor([[[1.0, 0.0, 2.0]], [[3.0, 0.0, 2.0]], [[2.0, 6.0, 2.0]]])  # M=3, n=1, d=3
    var = [np.var([1, 3, 2]), np.var([0, 0, 6]), 0.0]  # population variance over members
    assert deviation_of(F).item() == pytest.approx(math.sqrt(sum(var) / 3))


@pytest.fixture(scope="module")
def ens():
    e = Ensemble((True, False, True), n_members=3, neurons=(8, 8), seed=5, shift=[0.5, 0, 0], scale=[1, 2.0, 1])
    e.n_trained = 1
    return e


def test_forces_are_minus_gradient_and_deviation_consistent(ens):
    s = np.random.default_rng(0).uniform(-3, 3, (6, 3))
    A, F = ens.energies_and_forces(s)
    for m in range(3):
        num = fd_grad(lambda x: ens.energies(torch.tensor(x))[m].detach().numpy(), s)
        assert np.allclose(F[m].detach().numpy(), -num, atol=1e-6)
    assert np.allclose(ens.deviation(s), np.sqrt(F.detach().var(0, unbiased=False).mean(-1).numpy()))
    # periodic in CVs 0 and 2, not in 1
    shifted = s + np.array([2 * math.pi, 0, -2 * math.pi])
    assert np.allclose(ens.energies(torch.tensor(shifted)).detach(), A.detach())
    assert not np.allclose(ens.energies(torch.tensor(s + [0, 2 * math.pi, 0])).detach(), A.detach())


def test_save_load_roundtrip_reads_tensors_only(ens, tmp_path):
    pt, js = ens.save(tmp_path / "m.pt")
    state = torch.load(pt, weights_only=True)  # plain tensors
    assert set(state) == set(ens.params)
    back = Ensemble.load(js)
    s = torch.tensor(np.random.default_rng(1).uniform(-3, 3, (4, 3)))
    assert torch.equal(back.energies(s), ens.energies(s))
    assert back.meta() == ens.meta()


def test_vectorised_training_equals_members_trained_one_by_one():
    rng = np.random.default_rng(2)
    s = rng.uniform(-3, 3, (40, 2))
    f = np.stack([np.sin(s[:, 0]) * 5, np.cos(s[:, 1]) * 3], 1)
    both = Ensemble((True, True), n_members=2, neurons=(8, 8), seed=7)
    singles = []
    for m in range(2):
        one = Ensemble((True, True), n_members=1, neurons=(8, 8), seed=0)
        one.params = {k: v[m:m + 1].clone() for k, v in both.params.items()}
        singles.append(one)
    fit = FitSettings(60, lr=3e-3, lr_final=1e-3)
    both.fit(s, f, fit)
    for m, one in enumerate(singles):
        one.fit(s, f, fit)
        for k in both.params:
            assert torch.allclose(both.params[k][m], one.params[k][0], atol=1e-10), k


def test_training_fits_a_smooth_mean_force_and_warm_start_keeps_scale():
    rng = np.random.default_rng(3)
    s = rng.uniform(-math.pi, math.pi, (120, 2))
    f = np.stack([8 * np.sin(s[:, 0]), -6 * np.sin(2 * s[:, 1])], 1)  # −∇(8 cos φ − 3 cos 2ψ)
    e = Ensemble((True, True), n_members=4, neurons=(16, 16), seed=1)
    m = e.fit(s, f, FitSettings(400, lr=1e-2, lr_final=1e-3))
    assert m["rmse_f_mean"] < 0.5 and e.n_trained == 120
    scale = e.energy_scale
    m2 = e.fit(s, f, FitSettings(50, lr=1e-3, lr_final=1e-4))
    assert e.energy_scale == scale and m2["rmse_f_mean"] < m["rmse_f_mean"] * 1.5


def test_bias_is_minus_switched_mean_and_gradient_matches_fd(ens):
    s = np.random.default_rng(4).uniform(-3, 3, (5, 3))
    eps = ens.deviation(s)
    with torch.no_grad():
        meanA = ens.energies(torch.tensor(s)).mean(0).numpy()
    on = EnsembleBias(ens, eps.max() + 1, eps.max() + 2)   # trusted everywhere: V = −⟨A⟩
    assert np.allclose(on.energy_and_grad(s)[0], -meanA)
    off = EnsembleBias(ens, eps.min() / 3, eps.min() / 2)  # trusted nowhere: V = 0
    V, g = off.energy_and_grad(s)
    assert np.allclose(V, 0) and np.allclose(g, 0)
    mid = EnsembleBias(ens, float(np.median(eps)) * 0.7, float(np.median(eps)) * 1.4)  # σ' ∇ε matters
    V, g = mid.energy_and_grad(s)
    assert np.allclose(V, -switch(eps, mid.e0, mid.e1) * meanA)
    assert np.allclose(g, fd_grad(lambda x: mid.energy_and_grad(x)[0], s), atol=1e-5)


def test_early_stopping_keeps_each_members_best_validation_weights():
    rng = np.random.default_rng(6)
    s = rng.uniform(-math.pi, math.pi, (60, 2))
    f = np.stack([8 * np.sin(s[:, 0]), -6 * np.sin(2 * s[:, 1])], 1) + rng.normal(0, 3.0, (60, 2))  # noisy labels
    e = Ensemble((True, True), n_members=3, neurons=(16, 16), seed=2)
    train, val = e._split(60, 0.25, seed=4)
    assert val.shape == (3, 60) and torch.all(val.sum(1) == 15) and not torch.equal(val[0], val[1])
    assert torch.equal(train.bool(), ~val)
    start = e._val_error(torch.tensor(s), torch.tensor(f), val)
    m = e.fit(s, f, FitSettings(300, lr=1e-2, lr_final=1e-3, validation=0.25, check_every=10), seed=4)
    final = e._val_error(torch.tensor(s), torch.tensor(f), val)
    assert torch.all(final <= start) and m["rmse_f_val"] == pytest.approx(float(final.mean().sqrt()))
    # the kept weights are the best checked ones: continuing without validation only fits the noise more
    assert m["rmse_f_val"] < 4.5


def test_bias_zero_is_the_lowest_labelled_point(ens):
    s = np.random.default_rng(8).uniform(-3, 3, (5, 3))
    eps = ens.deviation(s)
    e0, e1 = float(np.median(eps)) * 0.7, float(np.median(eps)) * 1.4
    V0, g0 = EnsembleBias(ens, e0, e1, offset=0.0).energy_and_grad(s)
    V7, g7 = EnsembleBias(ens, e0, e1, offset=7.5).energy_and_grad(s)
    sig = switch(eps, e0, e1)
    assert np.allclose(V7, V0 + 7.5 * sig)  # V = −σ (⟨A⟩ − offset)
    band = (eps > e0) & (eps < e1)
    assert band.any() and not np.allclose(g7[band], g0[band])  # the σ' ∇ε force depends on the offset
    assert np.allclose(g7[sig == 1], g0[sig == 1])
    # a fit sets the default offset: ⟨A⟩ − a_ref is 0 at the lowest labelled point
    rng = np.random.default_rng(9)
    x = rng.uniform(-math.pi, math.pi, (30, 2))
    fit = Ensemble((True, True), n_members=2, neurons=(8,), seed=3)
    fit.fit(x, np.stack([np.sin(x[:, 0]), np.cos(x[:, 1])], 1), FitSettings(20))
    with torch.no_grad():
        assert fit.energies(torch.tensor(x)).mean(0).min().item() == pytest.approx(fit.a_ref)
    assert EnsembleBias(fit, 1.0, 2.0).offset == fit.a_ref
    assert Ensemble.load(fit.save(Path(tempfile.mkdtemp()) / "f.pt")[1]).a_ref == fit.a_ref
