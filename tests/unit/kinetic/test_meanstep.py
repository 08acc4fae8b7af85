"""The MUSCL-Hancock moment solve with W's damping implicit (meanstep, solver.w_implicit)."""

import numpy as np
import pytest

from conlearn.kinetic import fv, simulate
from conlearn.kinetic.closure import Member
from conlearn.kinetic.fused import MeanClosure
from conlearn.kinetic.initial import benchmark_wave, initial_profiles, sod
from conlearn.kinetic.meansolve import solve
from conlearn.kinetic.meanstep import ImplicitHancock
from conlearn.kinetic.mlsolver import MomentClosure


def cells(nx):
    return (np.arange(nx) + 0.5) / nx


def totals(rho, u, T):
    return np.array([rho.sum(), (rho * u).sum(), (0.5 * rho * u * u + 1.5 * rho * T).sum()])


@pytest.fixture(scope="module")
def members():
    return [Member.random(4, seed=s, amplitude=1.0) for s in range(3)]


@pytest.mark.parametrize("w_eq_zero", [True, False])
@pytest.mark.parametrize("bc", ["periodic", "neumann"])
def test_implicit_relaxation_solves_its_linear_system(members, bc, w_eq_zero):
    """W1 = e W0 + (1 - e) rho w_eq + phi dt (L + D(W1)) holds to round-off, D the damping
    operator assembled densely (periodic corners; no flux through Neumann walls); with the
    normalised moments' w_eq = 0 and with any other w_eq."""
    nx, dx, kn, dt = 12, 1.0 / 12, 0.05, 0.01
    mc = MeanClosure(members)
    st = ImplicitHancock(mc, nx, dx, fv.ghost_index(nx, bc), kn, 3.0, 2.0)
    rng = np.random.default_rng(0)
    if not w_eq_zero:
        st.w_eq, st.eq = rng.normal(size=(mc.M, 1)), True
    W0, L = rng.normal(size=(mc.M, nx)), rng.normal(size=(mc.M, nx))
    rho1, alpha = 0.5 + rng.random(nx), 1.0 + rng.random(nx + 1)
    W1 = st._relax(W0, dt * L, rho1, dt, alpha)                   # (takes dt L)
    K = 0.5 * 2.0 * alpha
    if bc == "neumann":
        K[0] = K[-1] = 0.0
    A = np.zeros((nx, nx))
    for i in range(nx):                                  # D(W)_i = (K+ (W_i+1 - W_i) - K- (W_i - W_i-1))/dx
        A[i, (i + 1) % nx] += K[i + 1] / dx
        A[i, i] -= (K[i + 1] + K[i]) / dx
        A[i, (i - 1) % nx] += K[i] / dx
    x = rho1 * dt / kn
    e, phi = np.exp(-x), -np.expm1(-x) / x
    resid = W1 - (e * W0 + (1 - e) * rho1 * st.w_eq + phi * dt * (L + W1 @ A.T))
    assert np.abs(resid).max() < 1e-12 * np.abs(W1).max()


@pytest.mark.parametrize("kn", [1e-4, 0.1, 10.0])
def test_implicit_solve_conserves_to_round_off(members, kn):
    x = cells(64)
    rho, u, T = initial_profiles(benchmark_wave(), x)
    out = solve(MeanClosure(members), x, rho, u, T, kn, 0.05, "periodic", cfl=0.9, w_implicit=True)
    before, after = totals(rho, u, T), out["U"].sum(0)
    assert np.abs(after - before).max() < 1e-13 * np.abs(before).max()
    assert np.abs(out["w"] - members[0].w_eq).max() > 1e-4        # W did move


@pytest.mark.parametrize("kn", [1e-3, 0.1, 10.0])
def test_implicit_agrees_with_the_explicit_scheme_at_its_step(members, kn):
    """At the explicit scheme's own step (cfl 0.45) the two solutions of the wave differ by less
    than 3 % of how far either moved (they differ in W's damping in time and in the second-order
    coupling of sigma, q), and at cfl 0.9 by less than 6 %."""
    x = cells(100)
    rho, u, T = initial_profiles(benchmark_wave(), x)
    mc = MeanClosure(members)
    ref = solve(mc, x, rho, u, T, kn, 0.1, cfl=0.45)
    for cfl, tol in ((0.45, 0.03), (0.9, 0.06)):
        out = solve(mc, x, rho, u, T, kn, 0.1, cfl=cfl, w_implicit=True)
        assert out["fallbacks"] == 0
        for k, r0 in (("rho", rho), ("u", u), ("T", T)):
            moved = np.linalg.norm(ref[k] - r0)
            assert np.linalg.norm(out[k] - ref[k]) < tol * moved, (cfl, k)


def test_implicit_takes_half_the_steps(members):
    x = cells(100)
    rho, u, T = initial_profiles(benchmark_wave(), x)
    mc = MeanClosure(members)
    a = solve(mc, x, rho, u, T, 0.1, 0.1, cfl=0.45)["steps"]
    b = solve(mc, x, rho, u, T, 0.1, 0.1, cfl=0.9, w_implicit=True)["steps"]
    assert abs(b - a / 2) <= 2, (a, b)


def test_implicit_converges_at_second_order_on_a_smooth_wave_near_equilibrium(members):
    """Kn = 1e-4 (the Euler limit), a smooth wave to t = 0.05 at cfl 0.9: the error against 400
    cells falls by >= 3x per doubling from 50 to 100 cells (first order: 2x)."""
    spec = benchmark_wave()
    mc = MeanClosure(members, np.float64)

    def run(nx):
        x = cells(nx)
        return solve(mc, x, *initial_profiles(spec, x), 1e-4, 0.05, cfl=0.9, w_implicit=True)["rho"]

    fine = run(400)
    err = [np.abs(run(nx) - fine.reshape(nx, -1).mean(1)).mean() for nx in (50, 100)]
    assert err[0] / err[1] > 3.0, err


@pytest.mark.parametrize("kn", [1e-4, 1e-3, 1.0])
def test_implicit_solve_stays_positive_on_strong_riemann_problems(kn):
    x = cells(100)
    model = MomentClosure([Member.random(4, seed=s, amplitude=1.0, w_range=2.0) for s in (5, 6)], implicit_cfl=0.9)
    strong = (np.where(x < 0.5, 1.0, 0.125), np.zeros_like(x), np.where(x < 0.5, 10.0, 0.08))
    vacuum = (np.ones_like(x), np.where(x < 0.5, -2.0, 2.0), np.full_like(x, 0.4))
    for rho, u, T in (strong, vacuum):
        out = simulate(model, x, rho, u, T, kn, 0.1, "neumann")
        assert np.all(np.isfinite(out["U"]))
        assert out["rho"].min() > 0 and out["T"].min() > 0


def test_galilean_invariance_of_the_implicit_solve(members):
    x = cells(100)
    rho, u, T = initial_profiles(benchmark_wave(), x)
    mc = MeanClosure(members)
    a = solve(mc, x, rho, u, T, 1e-3, 0.1, cfl=0.75, w_implicit=True)
    b = solve(mc, x, rho, u + 0.5, T, 1e-3, 0.1, cfl=0.75, w_implicit=True)
    for k, shift in (("rho", 0.0), ("u", 0.5), ("T", 0.0)):
        assert np.abs(b[k] - np.roll(a[k], 5) - shift).max() < 1.5e-2 * np.abs(a[k]).max(), k


def test_model_settings_and_bad_values(members):
    m = MomentClosure(members)
    assert m.settings["w_implicit"] is True and m.settings["implicit_cfl"] == 0.75
    x = cells(50)
    rho, u, T = initial_profiles(sod(), x)
    old = simulate(MomentClosure(members, w_implicit=False), x, rho, u, T, 0.1, 0.05, "neumann")
    new = simulate(m, x, rho, u, T, 0.1, 0.05, "neumann")
    assert new["steps"] < 0.7 * old["steps"]
    with pytest.raises(ValueError, match="w_implicit"):
        MomentClosure(members, w_implicit="yes")
    with pytest.raises(ValueError, match="implicit_cfl"):
        MomentClosure(members, implicit_cfl=1.5)
    with pytest.raises(ValueError, match="w_implicit.*hancock"):
        MomentClosure(members, scheme="rk2")
    with pytest.raises(ValueError, match="w_implicit.*hancock"):
        solve(MeanClosure(members), x, rho, u, T, 0.1, 0.05, scheme="rk2", w_implicit=True)


def test_lean_hllc_equals_the_reference_hllc():
    """meanstep's HLLC (both star states at once) is meansolve's HLLC, subsonic and supersonic faces."""
    from conlearn.kinetic.meansolve import _hllc
    from conlearn.kinetic.meanstep import _hllc_jump

    rng = np.random.default_rng(1)
    r, v, T = 0.1 + rng.random((2, 200)), 2.0 * rng.normal(size=(2, 200)), 0.1 + rng.random((2, 200))
    p, mo = r * T, r * v
    E = 0.5 * mo * v + 1.5 * p
    F = np.stack([mo, mo * v + p, (E + p) * v])
    ref = _hllc(r, v, p, E, np.sqrt(T), 0.5 * (F[:, 0] + F[:, 1]))
    assert np.abs(_hllc_jump(r, v, p, E, mo, np.sqrt(T), F[:, 1] - F[:, 0]) - ref).max() < 1e-13 * np.abs(ref).max()
    assert (np.abs(v) > 1.3 * np.sqrt(T)).any()                  # supersonic faces among them


def test_rarefied_steps_take_the_rarefied_cfl(members):
    """Kn = 10 on 50 cells: the mean free path exceeds a cell everywhere, so every step takes
    rarefied_cfl; Kn = 1e-4: none does (implicit_cfl)."""
    x = cells(50)
    rho, u, T = initial_profiles(benchmark_wave(), x)
    mc = MeanClosure(members)
    steps = {}
    for kn in (1e-4, 10.0):
        for cr in (0.45, 0.9):
            steps[kn, cr] = solve(mc, x, rho, u, T, kn, 0.05, cfl=0.45, w_implicit=True, cfl_rarefied=cr)["steps"]
    assert steps[1e-4, 0.45] == steps[1e-4, 0.9]
    assert abs(steps[10.0, 0.9] - steps[10.0, 0.45] / 2) <= 1, steps
    with pytest.raises(ValueError, match="rarefied_cfl"):
        MomentClosure(members, rarefied_cfl=0.0)


class _Counting:
    """A closure with only terms, clip and w_eq (the protocol of meansolve), counting evaluations."""

    def __init__(self, closure):
        self.closure, self.calls = closure, 0
        self.w_eq, self.clip = closure.w_eq, closure.clip

    def terms(self, w):
        self.calls += 1
        return self.closure.terms(w)


def test_one_closure_evaluation_per_step_and_any_closure(members):
    """The implicit step evaluates the closure once per step; a closure without solver_terms (its
    combinations formed from terms) gives the same solution."""
    x = cells(64)
    rho, u, T = initial_profiles(benchmark_wave(), x)
    mc = MeanClosure(members, np.float64)
    c = _Counting(mc)
    a = solve(c, x, rho, u, T, 0.1, 0.05, cfl=0.75, w_implicit=True)
    b = solve(mc, x, rho, u, T, 0.1, 0.05, cfl=0.75, w_implicit=True)
    assert c.calls == a["steps"] == b["steps"] and a["fallbacks"] == 0
    for k in ("rho", "u", "T", "w"):
        assert np.abs(a[k] - b[k]).max() < 1e-10, k


def test_general_w_eq_branch_equals_the_zero_w_eq_branch(members):
    """The code path for closures with w_eq != 0, run with w_eq = 0, gives the zero-w_eq path's
    solution to round-off (both branches of the half-step predictor and the relaxation)."""
    nx = 40
    x = cells(nx)
    rho, u, T = initial_profiles(benchmark_wave(), x)
    mc = MeanClosure(members)
    out = []
    for eq in (False, True):
        st = ImplicitHancock(mc, nx, 1.0 / nx, fv.ghost_index(nx, "periodic"), 0.1, 3.0, 2.0)
        st.eq = eq
        U = np.stack([rho, rho * u, 0.5 * rho * u * u + 1.5 * rho * T])
        out.append(st.run(U, rho * mc.w_eq[:, None], 0.05, 0.75)[:2])
    for a, b in zip(*out):
        assert np.abs(a - b).max() < 1e-13 * np.abs(a).max()
