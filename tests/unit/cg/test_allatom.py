"""All-atom SPC/E reference: density, temperature, mapped forces, cache, restrained mean force."""

import numpy as np
import pytest

from conlearn.cg import analysis
from conlearn.cg.allatom import AllAtomSpec, restrained_mean_force, run_allatom
from conlearn.cg.mapping import com_mapping

SPEC = AllAtomSpec("spce", 64, cutoff_nm=0.6, friction_per_ps=5.0)


@pytest.fixture(scope="module")
def water(tmp_path_factory):
    cache = tmp_path_factory.mktemp("aa")
    res = run_allatom(SPEC, 1000, 50, seed=3, equil_steps=1000, cache_dir=cache)
    return res, cache


def test_spce_box_density_temperature_and_geometry(water):
    res, _ = water
    assert res["positions"].shape == (20, 192, 3) == res["forces"].shape
    assert analysis.density(res["masses"].sum(), res["box"]) == pytest.approx(0.997, rel=1e-9)
    assert abs(res["temperature"].mean() - 300.0) < 20.0   # 2 ps block means: 300 +- 8 K (measured)
    x = res["positions"].reshape(20, 64, 3, 3)                    # molecules stay whole (unwrapped)
    oh = np.linalg.norm(x[:, :, 1:] - x[:, :, :1], axis=-1)
    assert np.allclose(oh, 0.1, atol=1e-4)                        # rigid SPC/E, O-H 0.1 nm
    assert list(res["molecule_of_atom"][:6]) == [0, 0, 0, 1, 1, 1]


def test_mapped_forces_sum_to_zero_and_cache(water):
    res, cache = water
    m = com_mapping(res["masses"], res["molecule_of_atom"])
    F = m.map_forces(res["forces"])
    scale = np.sqrt((F ** 2).sum(-1).mean() * 64)                 # random-sum size
    assert np.abs(F.sum(1)).max() < 2e-3 * scale                   # measured ~3e-4 (PME, float32)
    assert np.sqrt((F ** 2).sum(-1).mean()) > 100.0               # and they are not zero
    again = run_allatom(SPEC, 1000, 50, seed=3, equil_steps=1000, cache_dir=cache)
    assert again["wall_s"] == res["wall_s"] and np.array_equal(again["forces"], res["forces"])
    assert len(list(cache.glob("*.npz"))) == 1


def test_restrained_mean_force_on_a_configuration(water):
    res, _ = water
    m = com_mapping(res["masses"], res["molecule_of_atom"])
    R = m.map_positions(res["positions"][-1], res["box"])
    out = restrained_mean_force(SPEC, m, R, res["box"], 5000.0, 400, seed=4, equil_steps=100,
                                template=res["positions"][-1])
    f, se = out["mean_force"], out["stderr"]
    assert f.shape == se.shape == (64, 3) and np.isfinite(f).all() and (se > 0).all()
    assert out["rms_offset"] < 0.07                                # sqrt(3 kT / k) = 0.039 nm
    # at equilibrium the restraint balances the mean physical force
    c = np.corrcoef(f.ravel(), -out["restraint_force"].ravel())[0, 1]
    assert c > 0.5
    assert np.median(se) < np.median(np.abs(f))


def test_spec_errors():
    with pytest.raises(ValueError, match="methanol box has 125 molecules"):
        AllAtomSpec("methanol", 64)
    with pytest.raises(ValueError, match="liquid 'argon' is not one of"):
        AllAtomSpec("argon", 64)
    with pytest.raises(ValueError, match="exceeds half the box"):
        run_allatom(AllAtomSpec("spce", 64, cutoff_nm=0.9), 10, 10, 0)


def test_methanol_box_from_openmmtools():
    res = run_allatom(AllAtomSpec("methanol", 125), 100, 50, seed=0)
    assert res["positions"].shape == (2, 750, 3)
    assert analysis.density(res["masses"].sum(), res["box"]) == pytest.approx(0.787, rel=1e-9)
    m = com_mapping(res["masses"], res["molecule_of_atom"])
    assert m.n_beads == 125 and np.allclose(m.bead_masses, 32.042, atol=0.01)
    F = m.map_forces(res["forces"])
    assert np.abs(F.sum(1)).max() < 2e-3 * np.sqrt((F ** 2).sum(-1).mean() * 125)
