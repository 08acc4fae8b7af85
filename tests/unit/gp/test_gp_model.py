"""The GP: incremental Cholesky = from scratch, likelihood gradients, fits, invariances."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from ase.calculators.emt import EMT

from conlearn.atoms.gp.gp import GaussianProcess
from conlearn.atoms.gp.kernels import NBodyKernel

R2, R3 = 4.6, 3.7


def _labelled(atoms):
    atoms.calc = EMT()
    return atoms, atoms.get_forces(), atoms.get_potential_energy()


def _gp(structures, noise=0.05):
    gp = GaussianProcess([NBodyKernel(2, 1.5, 0.8), NBodyKernel(3, 40.0, 0.9)], R2, R3,
                         noise=noise, energy_noise=0.02)
    a, f, e = _labelled(structures.binary_cell(1))
    gp.add(gp.environments(a), forces=f, energy=e)
    b, f, _ = _labelled(structures.binary_cell(2))
    gp.add(gp.environments(b, indices=[0, 3]), forces=f[[0, 3]])
    return gp


def test_incremental_cholesky_equals_from_scratch(structures):
    gp = _gp(structures)
    c, f, e = _labelled(structures.binary_cell(3))
    gp.add(gp.environments(c), forces=f, energy=e)
    assert gp.n_labels == 12 + 1 + 6 + 12 + 1
    scratch = copy.deepcopy(gp)
    scratch.refactorize()
    assert np.allclose(gp.K, scratch.K, rtol=1e-12, atol=1e-14)
    assert np.allclose(gp.L, scratch.L, rtol=1e-9, atol=1e-12)
    assert np.allclose(gp.alpha, scratch.alpha, rtol=1e-8, atol=1e-10)


def test_log_likelihood_gradient(structures):
    gp = _gp(structures)
    ll, g = gp.log_likelihood(grad=True)
    theta = gp.hyperparameters
    for j in range(len(theta)):
        h = 1e-6 * theta[j]
        lp, lm = [], []
        for sign, store in ((1, lp), (-1, lm)):
            t = theta.copy()
            t[j] += sign * h
            gp.set_hyperparameters(t, refactorize=False)
            store.append(gp.log_likelihood())
        gp.set_hyperparameters(theta, refactorize=False)
        fd = (lp[0] - lm[0]) / (2 * h)
        assert abs(g[j] - fd) < 1e-5 * max(1.0, abs(fd)), gp.hyper_names[j]
    assert np.isclose(ll, gp.log_likelihood())


def test_optimize_raises_likelihood_and_keeps_noise_bound(structures):
    gp = _gp(structures, noise=0.5)
    before = gp.log_likelihood()
    res = gp.optimize(noise_min=0.03, maxiter=15)
    assert -res.fun > before and np.isclose(gp.log_likelihood(), -res.fun)
    assert gp.noise >= 0.03 * (1 - 1e-9)
    # the stored factor matches the new hyperparameters
    assert np.allclose(gp.L @ gp.L.T, gp.K + np.diag(gp._noise_diag()))


def test_predictions_are_covariant(structures):
    gp = _gp(structures)
    atoms = structures.binary_cell(4)
    ref = gp.predict(gp.environments(atoms))
    rot = atoms.copy()
    rot.rotate(37, (1, 2, 3), rotate_cell=True)
    rot.translate((0.3, -1.1, 2.0))
    R = np.linalg.solve(atoms.cell[:], rot.cell[:]).T  # x_rot = R x (+ shift)
    out = gp.predict(gp.environments(rot))
    assert np.allclose(out["forces"], ref["forces"] @ R.T, atol=1e-10)
    assert np.isclose(out["energy"][0], ref["energy"][0], atol=1e-12)
    assert np.allclose(out["local_energies"], ref["local_energies"], atol=1e-12)
    # the variance of a force vector (trace of its covariance) is rotation-invariant
    assert np.allclose((out["force_std"] ** 2).sum(1), (ref["force_std"] ** 2).sum(1))
    perm = [3, 1, 0, 2]
    out = gp.predict(gp.environments(atoms[perm]))
    for key in ("forces", "force_std", "local_energies", "local_energy_std"):
        assert np.allclose(out[key], ref[key][perm], atol=1e-12), key


def test_forces_are_minus_gradient_of_predicted_energy(structures):
    gp = _gp(structures)
    atoms = structures.binary_cell(5)
    forces = gp.predict(gp.environments(atoms), std=False)["forces"]
    h, fd = 1e-5, np.zeros_like(forces)
    for i in range(len(atoms)):
        for al in range(3):
            e = []
            for s in (h, -h):
                moved = atoms.copy()
                moved.positions[i, al] += s
                e.append(gp.predict(gp.environments(moved), std=False)["energy"][0])
            fd[i, al] = -(e[0] - e[1]) / (2 * h)
    assert np.abs(forces - fd).max() < 1e-7 * np.abs(forces).max()


def test_energy_labels_need_whole_frames_and_cutoffs_must_match(structures):
    gp = _gp(structures)
    a, f, e = _labelled(structures.binary_cell(6))
    with pytest.raises(ValueError, match="all atoms"):
        gp.add(gp.environments(a, indices=[0, 1]), energy=e)
    from conlearn.atoms.gp.environment import atoms_environments
    with pytest.raises(ValueError, match="cutoffs"):
        gp.add(atoms_environments(a, 5.0, R3), forces=f)
    # a labelled frame energy is reproduced within its noise
    gp.add(gp.environments(a), energy=e)
    assert abs(gp.predict(gp.environments(a), std=False)["energy"][0] - e) < 0.1
