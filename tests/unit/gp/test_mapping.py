"""The spline-mapped GP mean: splines, agreement with the exact GP, physics, round trips."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from conlearn.atoms.gp.calculator import MappedGPCalculator
from conlearn.atoms.gp.gp import GaussianProcess
from conlearn.atoms.gp.io import gp_from_dict, gp_to_dict
from conlearn.atoms.gp.kernels import NBodyKernel
from conlearn.atoms.gp.mapping import MappedGP, map_gp
from conlearn.atoms.gp.splines import UniformSpline
from conlearn.testing.physics import assert_all_passed, run_all


def test_spline_is_exact_for_cubics_and_converges():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.2, 1.8, (200, 3))

    def cubic(p):
        return 1 + p[:, 0] ** 3 - 2 * p[:, 0] * p[:, 1] * p[:, 2] + 0.5 * p[:, 2] ** 2

    axis = np.arange(-0.3, 2.31, 0.1)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    s = UniformSpline.fit(np.full(3, axis[0]), 0.1, cubic(grid).reshape((len(axis),) * 3))
    v, g = s(x)
    assert np.allclose(v, cubic(x), atol=1e-10)
    grad = np.stack([3 * x[:, 0] ** 2 - 2 * x[:, 1] * x[:, 2], -2 * x[:, 0] * x[:, 2],
                     -2 * x[:, 0] * x[:, 1] + x[:, 2]], 1)
    assert np.allclose(g, grad, atol=1e-9)
    errs = []
    for h in (0.1, 0.05):  # gradient error O(h^3) for a Gaussian
        xs = np.arange(0.0, 3.0 + h / 2, h)
        s1 = UniformSpline.fit(0.0, h, np.exp(-(xs - 1.3) ** 2))
        t = np.linspace(0.5, 2.5, 400)
        errs.append(np.abs(s1(t[:, None])[1][:, 0] + 2 * (t - 1.3) * np.exp(-(t - 1.3) ** 2)).max())
    assert errs[1] < errs[0] / 6


def _emt(atoms):
    atoms.calc = EMT()
    return atoms.get_forces(), atoms.get_potential_energy()


def rattled_al(seed: int, stdev: float) -> "Atoms":
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(2)
    atoms.rattle(stdev, seed=seed)
    return atoms


@pytest.fixture(scope="module")
def al_gp():
    gp = GaussianProcess([NBodyKernel(2, 0.5, 0.8), NBodyKernel(3, 0.05, 0.9)], 5.0, 3.6,
                         noise=0.01)
    for seed in (0, 1):
        atoms = rattled_al(seed, stdev=0.15)
        f, e = _emt(atoms)
        gp.add(gp.environments(atoms, [0, 3, 7, 12, 20]), forces=f[[0, 3, 7, 12, 20]])
    a = rattled_al(2, stdev=0.15)
    f, e = _emt(a)
    gp.add(gp.environments(a), energy=[e])
    return gp


def test_mapped_mean_agrees_with_exact_gp(al_gp, structures):
    mapped = map_gp(al_gp)
    for seed, repeat in ((10, 2), (11, 3)):  # 32 and 108 atoms
        atoms = structures.rattled_al(seed, stdev=0.15, repeat=repeat)
        envs = al_gp.environments(atoms)
        assert mapped.covers(envs)
        exact, fast = al_gp.predict(envs, std=False), mapped.predict(envs)
        assert np.abs(fast["forces"] - exact["forces"]).max() < 1e-4  # eV/Å; measured 1e-5
        assert np.abs(fast["local_energies"] - exact["local_energies"]).max() < 1e-6
        assert np.isclose(fast["energy"][0], exact["energy"][0], atol=1e-5)


def test_mapped_calculator_passes_the_physics_kit(al_gp, structures):
    calc = MappedGPCalculator(map_gp(al_gp), al_gp)
    atoms = structures.rattled_al(5, stdev=0.15)
    assert_all_passed(run_all(calc, atoms, n_atoms=2))  # FD forces and stress, invariances
    assert calc.results["mapped"] and calc.n_exact == 0


def test_species_are_mapped_per_combination(structures):
    """Two species, clusters meeting their own periodic images, vertex orders shuffled."""
    gp = GaussianProcess([NBodyKernel(2, 1.0, 0.8), NBodyKernel(3, 0.2, 0.9)], 4.6, 3.7,
                         noise=0.02)
    for seed in (1, 2):
        atoms = structures.binary_cell(seed)
        gp.add(gp.environments(atoms), forces=_emt(atoms)[0])
    mapped = map_gp(gp, r_min=1.5)
    assert {(13, 13, 29), (13, 29, 29)} <= set(mapped.tables[3])
    for atoms in (structures.binary_cell(7), structures.binary_cell(8, ("Cu", "Al", "Al", "Al"))):
        envs = gp.environments(atoms)
        exact, fast = gp.predict(envs, std=False), mapped.predict(envs)
        assert np.abs(fast["forces"] - exact["forces"]).max() < 1e-4
        assert np.abs(fast["local_energies"] - exact["local_energies"]).max() < 1e-6
    # the per-environment prior in force_std = the dense one in predict (images, 2 species)
    envs = gp.environments(structures.binary_cell(9), indices=[0, 2, 3])
    assert np.allclose(gp.force_std(envs), gp.predict(envs)["force_std"], rtol=1e-9, atol=1e-12)


def test_outside_the_map_falls_back_to_the_exact_mean(al_gp, structures):
    mapped = map_gp(al_gp, r_min=2.4)
    atoms = structures.rattled_al(6, stdev=0.05)
    atoms.positions[1] = atoms.positions[0] + [1.6, 1.0, 0.0]  # 1.9 Å apart
    calc = MappedGPCalculator(mapped, al_gp)
    atoms.calc = calc
    forces = atoms.get_forces()
    assert not calc.results["mapped"] and calc.n_exact == 1
    assert np.allclose(forces, al_gp.predict(al_gp.environments(atoms), std=False)["forces"])


def test_round_trips_and_force_std(al_gp, structures):
    atoms = structures.rattled_al(9, stdev=0.15)
    envs = al_gp.environments(atoms)
    again = gp_from_dict(gp_to_dict(al_gp))
    a, b = al_gp.predict(envs), again.predict(envs)
    for key in ("forces", "force_std", "local_energies"):
        assert np.array_equal(a[key], b[key])
    assert np.allclose(al_gp.force_std(envs), a["force_std"], rtol=1e-10, atol=1e-12)
    mapped = map_gp(al_gp)
    back = MappedGP.from_dict(mapped.to_dict())
    assert np.array_equal(mapped.predict(envs)["forces"], back.predict(envs)["forces"])
