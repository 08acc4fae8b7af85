"""The compiled implicit Hancock step (stepkernel, solver.kernel: numba) against the numpy step (meanstep)."""

import numpy as np
import pytest

from conlearn.kinetic.closure import Member
from conlearn.kinetic.config import Solver
from conlearn.kinetic.fused import MeanClosure
from conlearn.kinetic.initial import benchmark_wave, initial_profiles, sod
from conlearn.kinetic.meansolve import solve
from conlearn.kinetic.mlsolver import MomentClosure

KW = dict(cfl=0.75, cfl_rarefied=0.9, w_implicit=True)


def cells(nx):
    return (np.arange(nx) + 0.5) / nx


def riemann(x):
    """A Riemann problem with flow through the jump (rho, u, T = 0.6, 0.4, 0.3 | 0.2, -0.3, 1.2)."""
    left = x < 0.45
    return np.where(left, 0.6, 0.2), np.where(left, 0.4, -0.3), np.where(left, 0.3, 1.2)


CASES = {"sod": lambda x: initial_profiles(sod(), x), "wave": lambda x: initial_profiles(benchmark_wave(), x),
         "riemann": riemann}
BC = {"sod": "neumann", "wave": "periodic", "riemann": "neumann"}


@pytest.fixture(scope="module")
def closures():
    members = [Member.random(4, seed=s, amplitude=1.0) for s in range(3)]
    return {np.float64: MeanClosure(members, np.float64), np.float32: MeanClosure(members)}


def rel(a, b):
    return max(np.abs(a[k] - b[k]).max() / np.abs(b[k]).max() for k in ("rho", "u", "T", "w"))


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kn", [1e-3, 0.1, 10.0])
def test_numba_step_equals_the_numpy_step(closures, case, kn):
    """rho, u, T and w at t = 0.08 on 64 cells agree to 1e-12 relative with the float64 closure and with
    the float32 one (measured <= 1e-14 for both: the two paths do the same operations in the same order;
    only libm's expm1 against numpy's and the Thomas loop against LAPACK's gtsv differ, in the last
    ulp, and the closure's float32 input rounding has not amplified them), with the same steps."""
    x = cells(64)
    rho, u, T = CASES[case](x)
    for dtype, mc in closures.items():
        a = solve(mc, x, rho, u, T, kn, 0.08, BC[case], kernel="numpy", **KW)
        b = solve(mc, x, rho, u, T, kn, 0.08, BC[case], kernel="numba", **KW)
        assert (a["steps"], a["fallbacks"]) == (b["steps"], b["fallbacks"])
        assert rel(b, a) < 1e-12, (dtype, rel(b, a))


def test_numba_step_equals_numpy_on_the_other_paths(closures):
    """Rusanov flux, W's equilibrium moments w_eq != 0, a closure without solver_terms or clip
    bounds, and a near-vacuum problem: numba = numpy."""
    mc = closures[np.float64]
    x = cells(48)
    rho, u, T = initial_profiles(sod(), x)
    for kn in (1e-3, 1.0):
        a = solve(mc, x, rho, u, T, kn, 0.05, "neumann", flux="rusanov", kernel="numpy", **KW)
        b = solve(mc, x, rho, u, T, kn, 0.05, "neumann", flux="rusanov", kernel="numba", **KW)
        assert rel(b, a) < 1e-12

    class Shifted:                                        # w_eq != 0, only terms and clip
        w_eq = mc.w_eq + 0.01 * np.arange(1, mc.M + 1)
        clip = staticmethod(mc.clip)
        terms = staticmethod(mc.terms)

    for bc in ("periodic", "neumann"):
        rw, uw, Tw = initial_profiles(benchmark_wave(), x)
        a = solve(Shifted(), x, rw, uw, Tw, 0.05, 0.05, bc, kernel="numpy", **KW)
        b = solve(Shifted(), x, rw, uw, Tw, 0.05, 0.05, bc, kernel="numba", **KW)
        assert a["steps"] == b["steps"] and rel(b, a) < 1e-12
    vac = (np.ones_like(x), np.where(x < 0.5, -2.0, 2.0), np.full_like(x, 0.4))
    a = solve(mc, x, *vac, 1e-3, 0.1, "neumann", kernel="numpy", cfl=0.9, w_implicit=True)
    b = solve(mc, x, *vac, 1e-3, 0.1, "neumann", kernel="numba", cfl=0.9, w_implicit=True)
    assert a["fallbacks"] == b["fallbacks"] and a["steps"] == b["steps"]
    assert rel(b, a) < 1e-12


@pytest.mark.parametrize("bc", ["periodic", "neumann"])
def test_one_step_equals_numpy_first_order_and_second(closures, bc):
    """One step from a state with W away from equilibrium: the second-order step (HLLC faces and
    not) and the first-order fallback step (``safe``) of the kernel are meanstep's to round-off."""
    from conlearn.kinetic import fv
    from conlearn.kinetic.meansolve import primitives
    from conlearn.kinetic.meanstep import ImplicitHancock
    from conlearn.kinetic.stepkernel import KernelHancock

    mc, nx = closures[np.float64], 40
    x = cells(nx)
    rho, u, T = riemann(x)
    U = np.stack([rho, rho * u, 0.5 * rho * u * u + 1.5 * rho * T])
    W = rho * (0.05 * np.sin(2 * np.pi * np.arange(1, mc.M + 1)[:, None] * x))
    P = primitives(U)
    args = (mc, nx, 1.0 / nx, fv.ghost_index(nx, bc), 1e-3, 3.0, 2.0)
    ref, ker = ImplicitHancock(*args), KernelHancock(*args)
    for safe in (False, True):
        for dense in (True, False):
            U1, W1 = ref.step(U, W, P, np.sqrt(P[2]), 0.004, safe, dense)
            w = np.minimum(np.maximum(W / rho, mc._lo0), mc._hi0)
            K1, V1, Q1, w1, ok, _, _ = ker.kernel_step(U, W, P, w, 0.004, safe, dense)
            assert np.array_equal(w1, np.minimum(np.maximum(V1 / Q1[0], mc._lo0), mc._hi0))
            assert ok and np.allclose(Q1, primitives(U1), rtol=1e-14, atol=0)
            assert np.abs(K1 - U1).max() < 1e-14 * np.abs(U1).max(), (safe, dense)
            assert np.abs(V1 - W1).max() < 1e-13 * np.abs(W1).max(), (safe, dense)
            assert np.abs(V1 - W).max() > 1e-3                   # W moved


@pytest.mark.parametrize("kn", [1e-4, 0.1, 10.0])
def test_numba_step_conserves_to_round_off(closures, kn):
    x = cells(64)
    rho, u, T = initial_profiles(benchmark_wave(), x)
    out = solve(closures[np.float32], x, rho, u, T, kn, 0.05, "periodic", kernel="numba", **KW)
    before = np.array([rho.sum(), (rho * u).sum(), (0.5 * rho * u * u + 1.5 * rho * T).sum()])
    assert np.abs(out["U"].sum(0) - before).max() < 1e-13 * np.abs(before).max()


def test_bad_kernel_is_one_clear_error(closures):
    members = [Member.random(4, seed=0, amplitude=1.0)]
    assert MomentClosure(members).settings["kernel"] == "numba"
    assert MomentClosure(members, kernel="numpy").kernel == "numpy"
    with pytest.raises(ValueError, match=r"kernel: unknown step kernel 'cuda'; allowed: numba, numpy"):
        MomentClosure(members, kernel="cuda")
    x = cells(16)
    with pytest.raises(ValueError, match=r"kernel: unknown step kernel"):
        solve(closures[np.float64], x, *initial_profiles(sod(), x), 0.1, 0.01, kernel="c", **KW)
    assert Solver(kernel="numpy").kernel == "numpy" and Solver().kernel == "numba"
    with pytest.raises(ValueError, match="kernel"):
        Solver(kernel="cuda")
