"""The ensemble-mean closure (fused network) and the single-solution moment solver."""

import numpy as np
import pytest

from conlearn.kinetic import moments as mom
from conlearn.kinetic import simulate
from conlearn.kinetic.closure import Member
from conlearn.kinetic.fused import MeanClosure, member_map
from conlearn.kinetic.initial import benchmark_wave, initial_profiles, sod
from conlearn.kinetic.meansolve import blend, solve
from conlearn.kinetic.mlsolver import MomentClosure


def cells(nx):
    return (np.arange(nx) + 0.5) / nx


def totals(rho, u, T):
    return np.array([rho.sum(), (rho * u).sum(), (0.5 * rho * u * u + 1.5 * rho * T).sum()])


@pytest.fixture(scope="module")
def members():
    return [Member.random(4, seed=s, amplitude=1.0) for s in range(3)]


def test_member_moments_are_affine_in_member_0s(members):
    """Random learned bases of the same complete space: w_k = T w_0 + t on any pair of distributions."""
    T, t = member_map(members[0], members[1])
    rng = np.random.default_rng(3)
    mu = mom.equilibrium(members[0].n) + 0.1 * rng.normal(size=(20, 2, members[0].n))
    mu[:, 0, :2] = (1.0, 0.0)      # mass and momentum of the local frame
    mu[:, 1, 0] = 1.5 - 0.5 - np.sqrt(2) / 2 * mu[:, 0, 2]
    w0, w1 = mom.apply(members[0].L["w"], mu), mom.apply(members[1].L["w"], mu)
    assert np.abs(w0 @ T.T + t - w1).max() < 1e-10
    assert np.abs(T - np.eye(len(T))).max() > 0.1        # and the bases do differ


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_fused_terms_equal_the_mean_of_the_members_closures(members, dtype, tol):
    mc = MeanClosure(members, dtype)
    rng = np.random.default_rng(0)
    w = mc.w_eq + rng.normal(scale=0.05, size=(40, mc.M))
    # slow path: every member's own closure mu_k(w_k), averaged, then member 0's functionals
    M = mc.M
    T_t = [member_map(members[0], m) for m in members]
    mus = [m.mu(w @ T.T + t) for m, (T, t) in zip(members, T_t)]
    slow = mom.apply(members[0]._stack, np.mean(mus, axis=0)).reshape(40, 6, M)
    fast = np.moveaxis(mc.terms(np.ascontiguousarray(w.T)), 2, 0)
    assert np.abs(fast - slow).max() < tol * np.abs(slow).max()
    # exact at a Maxwellian: the Maxwellian's flux and production functionals
    eq = mom.apply(members[0]._stack, mom.equilibrium(mc.n)).reshape(6, M)
    assert np.abs(mc.terms(mc.w_eq[:, None])[..., 0] - eq).max() < (1e-13 if dtype == np.float64 else 1e-5)
    # the mean closure carries w (inside every member's training range): its w functionals give w back
    w = mc.w_eq + rng.normal(scale=0.005, size=(40, mc.M))
    assert np.abs(mom.apply(members[0].L["w"], mc.mu(w)) - w).max() < (1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("scheme", ["hancock", "rk2"])
@pytest.mark.parametrize("kn", [1e-4, 0.1, 10.0])
def test_mean_solve_conserves_to_round_off(members, kn, scheme):
    x = cells(64)
    rho, u, T = initial_profiles(benchmark_wave(), x)
    out = solve(MeanClosure(members), x, rho, u, T, kn, 0.05, "periodic", scheme=scheme)
    before, after = totals(rho, u, T), out["U"].sum(0)
    assert np.abs(after - before).max() < 1e-13 * np.abs(before).max()
    assert np.abs(out["w"] - members[0].w_eq).max() > 1e-4


def test_one_member_mean_closure_matches_the_member_solve(members):
    """K = 1 and the Rusanov flux: the single-solution scheme is the ensemble scheme of mlsolver."""
    from conlearn.kinetic.mlsolver import solve_member

    x = cells(50)
    rho, u, T = initial_profiles(benchmark_wave(), x)
    a = solve(MeanClosure(members[:1], np.float64), x, rho, u, T, 0.1, 0.05, flux="rusanov", scheme="rk2")
    b = solve_member(members[0], x, rho, u, T, 0.1, 0.05)
    for k in ("rho", "u", "T", "w"):
        assert np.abs(a[k] - b[k]).max() < 1e-11, k


class _Counting:
    """A closure that counts its evaluations."""

    def __init__(self, closure):
        self.closure, self.calls = closure, 0
        self.w_eq, self.clip = closure.w_eq, closure.clip

    def terms(self, w):
        self.calls += 1
        return self.closure.terms(w)


def test_hancock_is_one_closure_evaluation_per_step_and_agrees_with_rk2(members):
    """MUSCL-Hancock evaluates the closure once per step (RK2: twice) and, both being second
    order in U, the two solutions of the wave differ by far less than either moved from the
    initial state."""
    x = cells(100)
    rho, u, T = initial_profiles(benchmark_wave(), x)
    out = {}
    for scheme, per_step in (("hancock", 1), ("rk2", 2)):
        c = _Counting(MeanClosure(members))
        out[scheme] = solve(c, x, rho, u, T, 0.1, 0.1, scheme=scheme)
        assert c.calls == per_step * out[scheme]["steps"] and out[scheme]["fallbacks"] == 0
    assert out["hancock"]["steps"] == out["rk2"]["steps"]
    for k, ref in (("rho", rho), ("u", u), ("T", T)):
        moved = np.linalg.norm(out["rk2"][k] - ref)
        assert np.linalg.norm(out["hancock"][k] - out["rk2"][k]) < 0.05 * moved, k


def test_hancock_converges_at_second_order_on_a_smooth_wave_near_equilibrium(members):
    """Kn = 1e-4 (W relaxes to the Maxwellian: the Euler limit), a smooth wave to t = 0.05:
    the error against 400 cells falls by >= 3x per doubling from 50 to 100 cells (first order: 2x)."""
    spec = benchmark_wave()
    mc = MeanClosure(members, np.float64)

    def run(nx):
        x = cells(nx)
        return solve(mc, x, *initial_profiles(spec, x), 1e-4, 0.05)["rho"]

    fine = run(400)
    err = [np.abs(run(nx) - fine.reshape(nx, -1).mean(1)).mean() for nx in (50, 100)]
    assert err[0] / err[1] > 3.0, err


def test_galilean_invariance_of_the_mean_solve(members):
    x = cells(100)
    rho, u, T = initial_profiles(benchmark_wave(), x)
    mc = MeanClosure(members)
    a = solve(mc, x, rho, u, T, 1e-3, 0.1)
    b = solve(mc, x, rho, u + 0.5, T, 1e-3, 0.1)
    for k, shift in (("rho", 0.0), ("u", 0.5), ("T", 0.0)):
        assert np.abs(b[k] - np.roll(a[k], 5) - shift).max() < 1.5e-2 * np.abs(a[k]).max(), k


def test_hllc_near_equilibrium_rusanov_beyond():
    """The blend weight of Rusanov is lambda/dx capped at 1, lambda = Kn sqrt(T)/rho."""
    rho, T = np.array([[1.0, 0.125], [1.0, 0.125]]), np.array([[1.0, 0.8], [1.0, 0.8]])
    th = blend(rho, T, 1e-3, 0.01, 3.0)
    assert th == pytest.approx([0.1, min(1.0, 0.1 * np.sqrt(0.8) / 0.125)])
    assert np.all(blend(rho, T, 0.1, 0.01, 3.0) == 1.0)


def test_small_kn_mean_solve_is_closer_to_ns_than_rusanov():
    """Sod at Kn = 1e-3: with HLLC on the Euler part the moment solution is within a third of
    the NS-to-Rusanov gap of NS (Rusanov with c sqrt(T) smears the contact and the shock)."""
    x = cells(100)
    rho, u, T = initial_profiles(sod(), x)
    model = [Member.random(4, seed=s, amplitude=0.3) for s in range(2)]
    ns = simulate("ns", x, rho, u, T, 1e-3, 0.1, "neumann")
    out = {f: simulate(MomentClosure(model, flux=f), x, rho, u, T, 1e-3, 0.1, "neumann") for f in ("hllc", "rusanov")}
    d = {f: np.linalg.norm(o["rho"] - ns["rho"]) / np.linalg.norm(ns["rho"]) for f, o in out.items()}
    assert d["hllc"] < 0.5 * d["rusanov"], d
    assert min(out["hllc"]["rho"].min(), out["hllc"]["T"].min()) > 0


@pytest.mark.parametrize("kn", [1e-4, 1e-3, 1.0])
def test_mean_solve_stays_positive_on_strong_riemann_problems(kn):
    x = cells(100)
    model = MomentClosure([Member.random(4, seed=s, amplitude=1.0, w_range=2.0) for s in (5, 6)])
    strong = (np.where(x < 0.5, 1.0, 0.125), np.zeros_like(x), np.where(x < 0.5, 10.0, 0.08))  # p 10 | 0.01
    vacuum = (np.ones_like(x), np.where(x < 0.5, -2.0, 2.0), np.full_like(x, 0.4))              # two rarefactions
    for rho, u, T in (strong, vacuum):
        out = simulate(model, x, rho, u, T, kn, 0.1, "neumann")
        assert np.all(np.isfinite(out["U"]))
        assert out["rho"].min() > 0 and out["T"].min() > 0


def test_speeds_match_the_solver_fluxes_and_the_hermite_roots():
    """hyperbolic.system_matrix equals the finite-difference matrix of mlsolver's flux and
    production at a non-equilibrium state, and the projection closure's speeds at equilibrium
    are the roots of He_5."""
    from conlearn.kinetic.hyperbolic import complex_fraction, speeds, system_matrix
    from conlearn.kinetic.mlsolver import _flux, production

    m = Member.random(4, seed=3, amplitude=1.0)
    mc = MeanClosure([m], np.float64)
    V = np.concatenate([[1.0, 0.0, 1.0], m.w_eq + 0.03 * np.arange(1, 6)])
    k, eps = len(V), 1e-6
    dQ, dF, dS = np.zeros((k, k)), np.zeros((k, k)), np.zeros((k, k))
    for j in range(k):
        e = np.zeros(k)
        e[j] = eps
        (Qp, Fp, _), (Qm, Fm, _) = (_flux(v[None], m.coefficients(v[None, 3:])["a"], 3.0, False) for v in (V + e, V - e))
        dQ[:, j], dF[:, j] = (Qp - Qm)[0] / (2 * eps), (Fp - Fm)[0] / (2 * eps)
        P = np.tile(V, (5, 1))      # a unit gradient of V_j: +-h over 2 cells of width h
        P[3, j] += 1e-4
        P[1, j] -= 1e-4
        coef = {kk: v[None, :1] for kk, v in m.coefficients(V[None, 3:]).items()}
        dS[3:, j] = production(P[None], coef, 1e-4)[0, 0]
    want = np.linalg.solve(dQ, dF - dS)
    assert np.abs(system_matrix(mc, V[None, 3:])[0] - want).max() < 1e-6 * np.abs(want).max()
    grad = MeanClosure([Member.random(4, seed=3, amplitude=0.0)], np.float64)
    s = speeds(grad, grad.w_eq[None])[0]
    roots = np.polynomial.hermite_e.hermeroots([0] * 5 + [1])
    assert np.abs(s.imag).max() < 1e-6 and np.sort(s.real).max() == pytest.approx(roots.max(), abs=1e-5)
    assert complex_fraction(grad, grad.w_eq[None]) == 0.0


def test_training_twin_of_the_system_matrix_and_the_penalty():
    """training.system_matrix (torch, differentiable) equals hyperbolic.system_matrix; the
    penalty is zero for the projection closure at equilibrium and positive where speeds are complex."""
    import torch

    from conlearn.kinetic.hyperbolic import system_matrix as np_matrix
    from conlearn.kinetic.training import _Closure, hyperbolicity_penalty, system_matrix

    m = Member.random(4, seed=4, amplitude=1.0)
    model = _Closure(m, (16,), torch.Generator().manual_seed(0))
    with torch.no_grad():                  # the member's own network in the torch twin
        lin = [x for x in model.net if isinstance(x, torch.nn.Linear)]
        for x, (W, b) in zip(lin, m.closure):
            x.weight.copy_(torch.as_tensor(W))
            x.bias.copy_(torch.as_tensor(b))
    fun = torch.as_tensor(m._stack.reshape(len(m._stack), -1))
    w = m.w_eq + 0.02 * np.random.default_rng(1).normal(size=(6, m.n_moments))
    got = system_matrix(model, torch.as_tensor(w), fun).detach().numpy()
    want = np_matrix(MeanClosure([m], np.float64), w)
    assert np.abs(got - want).max() < 1e-5 * np.abs(want).max()     # (da/dw: differences of step 1e-4)
    pen = hyperbolicity_penalty(model, torch.as_tensor(w), fun)
    pen.backward()
    assert float(pen.detach()) > 0 and all(torch.isfinite(p.grad).all() for p in model.net.parameters())


def test_hyperbolicity_penalty_makes_the_trained_closure_hyperbolic():
    """Same data, seed and steps (linear response learned): the penalty removes most complex speeds."""
    from conlearn.kinetic.bgk import kinetic_solve
    from conlearn.kinetic.data import snapshot_payload
    from conlearn.kinetic.hyperbolic import complex_fraction
    from conlearn.kinetic.training import TrainSettings, train_member

    x = (np.arange(32) + 0.5) / 32
    out = kinetic_solve(x, *initial_profiles(sod(), x), 1.0, 0.1, "neumann", save_times=[0.05, 0.1])
    data = [snapshot_payload(out, 4, {"kn": 1.0})]
    frac = {}
    for weight in (0.0, 1.0):
        s = TrainSettings(hidden=(16,), decoder_hidden=(16,), ae_steps=60, steps=250, batch=64, linear=True,
                          hyperbolic=weight, hyperbolic_batch=32)
        m, metrics = train_member(data, s, seed=0)
        w = mom.apply(m.L["w"], data[0]["mu"][:, :, :m.n])
        frac[weight] = complex_fraction(MeanClosure([m], np.float64), w)
        assert frac[weight] == pytest.approx(metrics["complex_fraction"], abs=0.25)
    assert frac[1.0] < 0.5 * frac[0.0] and frac[0.0] > 0.3, frac
