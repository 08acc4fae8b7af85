"""The public simulate(): dispatch to the solvers and to model objects, input errors."""

import numpy as np
import pytest

from conlearn.kinetic.bgk import kinetic_solve
from conlearn.kinetic.simulate import simulate


def cells(nx):
    return (np.arange(nx) + 0.5) / nx


def state(nx=32):
    x = cells(nx)
    return x, 1 + 0.2 * np.sin(2 * np.pi * x), 0.1 * np.cos(2 * np.pi * x), np.ones(nx)


def test_dispatch_names_and_objects():
    x, rho, u, T = state()
    k = simulate("kinetic", x, rho, u, T, 0.1, 0.05)
    assert np.array_equal(k["rho"], kinetic_solve(x, rho, u, T, 0.1, 0.05)["rho"])
    for name in ("euler", "ns"):
        out = simulate(name, x, rho, u, T, 0.1, 0.05, bc="neumann")
        assert out["rho"].shape == (32,) and abs(out["rho"].mean() - rho.mean()) < 0.01

    class Frozen:
        def solve(self, x, rho, u, T, kn, t_end, bc):
            return {"x": x, "rho": rho, "u": u, "T": T, "kn": kn, "bc": bc}

    out = simulate(Frozen(), x, rho, u, T, 0.5, 0.1, bc="neumann")
    assert out["kn"] == 0.5 and out["bc"] == "neumann" and out["rho"].dtype == float


@pytest.mark.parametrize("change,match", [
    (dict(kn=0.0), "Knudsen number must be > 0"),
    (dict(kn=-1.0), "Knudsen number must be > 0"),
    (dict(rho_at=(5, -0.1)), "negative or zero density rho = -0.1 at cell 5"),
    (dict(T_at=(7, 0.0)), "negative or zero temperature T = 0 at cell 7"),
    (dict(x_at=(3, 0.2)), "cell 3 is at 0.2"),
    (dict(bc="reflect"), "unknown boundary condition 'reflect'"),
    (dict(model="dsmc"), "unknown solver 'dsmc'"),
    (dict(t_end=0.0), "t_end"),
])
def test_bad_inputs(change, match):
    x, rho, u, T = state()
    x, rho, T = x.copy(), rho.copy(), T.copy()
    if "rho_at" in change:
        rho[change["rho_at"][0]] = change["rho_at"][1]
    if "T_at" in change:
        T[change["T_at"][0]] = change["T_at"][1]
    if "x_at" in change:
        x[change["x_at"][0]] = change["x_at"][1]
    with pytest.raises(ValueError, match=match):
        simulate(change.get("model", "kinetic"), x, rho, u, T, change.get("kn", 0.1), change.get("t_end", 0.1),
                 bc=change.get("bc", "periodic"))


def test_model_without_solve():
    x, rho, u, T = state()
    with pytest.raises(TypeError, match="no solve"):
        simulate(object(), x, rho, u, T, 0.1, 0.1)
