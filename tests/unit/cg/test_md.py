"""cg_md: NVE energy conservation (second order in dt), Langevin temperature, blow-up detection."""

import numpy as np
import pytest

from conlearn.cg.md import KB, cg_md
from conlearn.cg.potential import lj_table

LJ = lj_table(1.0, 0.3, 0.7)


def _lattice(n=4, a=0.34):
    x = (np.indices((n, n, n)).reshape(3, -1).T + 0.5) * a
    return x, np.full(3, n * a), np.full(len(x), 18.0)


def _energy_spread(dt_fs, n_steps):
    R0, box, m = _lattice()
    res = cg_md(LJ, R0, box, m, n_steps, dt_fs, 200.0, 0.0, 0, 10)
    assert res["ok"]
    E = res["potential_energy"] + res["kinetic_energy"]
    return np.ptp(E), res


def test_nve_conserves_energy_to_second_order():
    spread4, res = _energy_spread(4.0, 400)           # 1.6 ps
    spread2, _ = _energy_spread(2.0, 800)
    kT_total = 1.5 * 64 * KB * 200.0                  # ~160 kJ/mol of kinetic energy
    assert spread4 < 5e-4 * kT_total                  # measured 0.05 kJ/mol over 2.4 ps
    assert 2.5 < spread4 / spread2 < 6.0              # BAOAB/velocity Verlet: error ~ dt^2
    assert np.abs(res["positions"][-1] - res["state"]["positions"]).max() == 0.0
    assert res["n_builds"] > 1                        # the Verlet list was rebuilt


def test_langevin_samples_the_temperature():
    R0, box, m = _lattice()
    res = cg_md(LJ, R0, box, m, 3000, 4.0, 300.0, 5.0, 1, 20)
    T = res["temperature"][25:]
    assert res["ok"] and abs(T.mean() - 300.0) < 12.0     # per-frame std ~30 K, ~120 frames
    assert res["positions"].shape == (150, 64, 3) and res["forces"].shape == (150, 64, 3)


def test_blow_up_is_detected_and_named():
    R0, box, m = _lattice()
    R0[1] = R0[0] + [0.05, 0.0, 0.0]                   # far inside the core: 0.05 nm apart
    res = cg_md(LJ, R0, box, m, 5, 4.0, 300.0, 1.0, 0, 1, min_distance=0.1)
    assert not res["ok"]
    assert "are" in res["reason"] and "< 0.1 nm" in res["reason"] or "non-finite" in res["reason"]
    assert res["steps"] == 1 and len(res["positions"]) == 0


def test_bad_shapes():
    with pytest.raises(ValueError, match="must be"):
        cg_md(LJ, np.zeros((4, 3)), np.ones(3), np.ones(3), 1, 1.0, 300.0, 1.0, 0, 1)


def test_continuing_from_state_equals_one_run_in_nve():
    R0, box, m = _lattice()
    one = cg_md(LJ, R0, box, m, 100, 4.0, 200.0, 0.0, 0, 100)
    half = cg_md(LJ, R0, box, m, 50, 4.0, 200.0, 0.0, 0, 50)
    two = cg_md(LJ, half["state"]["positions"], box, m, 50, 4.0, 200.0, 0.0, 9, 50,
                V0=half["state"]["velocities"])
    assert np.allclose(two["state"]["positions"], one["state"]["positions"], atol=1e-10)
    assert np.allclose(two["state"]["velocities"], one["state"]["velocities"], atol=1e-8)


def test_respa_split_force():
    """A slow force every k steps (r-RESPA): k = 1 is the plain sum; k = 4 conserves energy
    in NVE (second order in the outer step) and keeps the saved forces current."""
    from conlearn.cg.potential import sum_potentials

    R0, box, m = _lattice()
    slow = lj_table(0.5, 0.28, 0.7, r_min=0.2)         # a second, softer part
    whole = cg_md(sum_potentials(LJ, slow), R0, box, m, 100, 4.0, 200.0, 0.0, 0, 20)
    split = cg_md(LJ, R0, box, m, 100, 4.0, 200.0, 0.0, 0, 20, slow=slow, slow_every=1)
    assert np.allclose(split["positions"], whole["positions"], atol=1e-9)
    assert np.allclose(split["potential_energy"], whole["potential_energy"], rtol=1e-9)
    spread = {}
    for k in (2, 4, 8):
        res = cg_md(LJ, R0, box, m, 800, 2.0, 200.0, 0.0, 0, 40, slow=slow, slow_every=k)
        E = res["potential_energy"] + res["kinetic_energy"]
        spread[k] = np.ptp(E)
        F = (LJ.energy_forces(res["positions"][-1], box)[1] + slow.energy_forces(res["positions"][-1], box)[1])
        assert np.allclose(res["forces"][-1], F.numpy(), atol=1e-9)
    assert spread[4] < 5e-4 * 1.5 * 64 * KB * 200.0              # measured 0.046 kJ/mol
    assert 1.5 < spread[4] / spread[2] < 6 and 1.5 < spread[8] / spread[4] < 6   # ~ (k dt)^2
    with pytest.raises(ValueError, match="divide save_every"):
        cg_md(LJ, R0, box, m, 10, 2.0, 200.0, 0.0, 0, 10, slow=slow, slow_every=3)
