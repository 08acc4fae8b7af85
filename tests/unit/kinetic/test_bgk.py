"""BGK kinetic solver: conservation, Maxwellian moments, asymptotic limits."""

import numpy as np
import pytest

from conlearn.kinetic.bgk import kinetic_solve
from conlearn.kinetic.velocity import conserved, maxwellian, macroscopic, velocity_grid


def cells(nx):
    return (np.arange(nx) + 0.5) / nx


def wave(x):
    return (1 + 0.5 * np.sin(2 * np.pi * x), 0.3 * np.sin(4 * np.pi * x + 0.5), 1 + 0.3 * np.cos(2 * np.pi * x))


@pytest.mark.parametrize("kn", [1e-5, 1e-2, 1.0, 1e4])
def test_conservation_periodic_to_round_off(kn):
    x = cells(64)
    out = kinetic_solve(x, *wave(x), kn, 0.1, save_times=[0.0, 0.1])
    U0 = conserved(out["g"][0], out["h"][0], out["grid"]).sum(0)
    U1 = conserved(out["g"][1], out["h"][1], out["grid"]).sum(0)
    assert np.abs(U1 - U0).max() < 1e-12 * np.abs(U0).max()
    # and the returned primitives are those of the saved distributions at t_end
    r, u, T = macroscopic(out["g"][1], out["h"][1], out["grid"])
    assert np.allclose(r, out["rho"], rtol=1e-14) and np.allclose(T, out["T"], rtol=1e-13)
    assert out["g"].min() >= 0 and out["h"].min() >= 0


def test_maxwellian_moments_exact():
    grid = velocity_grid(96, 9.0)
    rho, u, T = np.array([0.3, 1.0, 2.5]), np.array([-0.5, 0.0, 0.4]), np.array([0.3, 1.0, 1.4])
    r, uu, TT = macroscopic(*maxwellian(rho, u, T, grid), grid)
    assert np.abs(r - rho).max() < 1e-10 and np.abs(uu - u).max() < 1e-10 and np.abs(TT - T).max() < 1e-10
