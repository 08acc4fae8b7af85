"""A real learning check: EMT aluminium, a few jittered 32-atom frames, the ASE calculator.

Measured (1 thread, 3 training frames = 96 environments, hyperparameters fitted on the
first frame): force RMSE 0.007 eV/Å on held-out 0.1 Å-jittered frames (RMS force
0.36-0.42 eV/Å); mean force std 0.001 eV/Å there and 0.04-0.05 eV/Å on a 0.3 Å-jittered frame.
"""

from __future__ import annotations

import numpy as np
from ase.calculators.emt import EMT

from conlearn.atoms.gp.calculator import GPCalculator
from conlearn.atoms.gp.gp import GaussianProcess
from conlearn.atoms.gp.kernels import NBodyKernel


def _emt(atoms):
    atoms.calc = EMT()
    return atoms.get_forces()


def _train(structures):
    gp = GaussianProcess([NBodyKernel(2, 1.0, 0.8), NBodyKernel(3, 40.0, 0.9)],
                         r_cut2=5.0, r_cut3=3.6, noise=0.05)
    frames = [structures.rattled_al(seed) for seed in range(3)]
    gp.add(gp.environments(frames[0]), forces=_emt(frames[0]))
    gp.optimize(noise_min=1e-3, maxiter=30)
    for atoms in frames[1:]:
        gp.add(gp.environments(atoms), forces=_emt(atoms))
    return gp


def test_gp_learns_emt_aluminium(structures):
    gp = _train(structures)
    assert gp.n_labels == 3 * 96
    stds = []
    for seed in (100, 101):
        atoms = structures.rattled_al(seed)
        ref = _emt(atoms)
        out = gp.predict(gp.environments(atoms))
        rmse = np.sqrt(((out["forces"] - ref) ** 2).mean())
        assert rmse < 0.03, rmse  # measured 0.007 eV/Å
        stds.append(out["force_std"].mean())
    far = structures.rattled_al(102, stdev=0.3)
    far_std = gp.predict(gp.environments(far))["force_std"].mean()
    assert far_std > 5 * max(stds)  # measured ~40x

    # the ASE calculator gives the same numbers
    atoms = structures.rattled_al(100)
    atoms.calc = GPCalculator(gp)
    forces = atoms.get_forces()
    out = gp.predict(gp.environments(atoms))
    assert np.allclose(forces, out["forces"])
    assert atoms.calc.results["force_std"].shape == (32, 3)
    assert np.allclose(atoms.calc.results["force_std"], out["force_std"])
    assert np.isclose(atoms.get_potential_energy(), atoms.calc.results["energies"].sum())
    assert atoms.calc.max_force_std() == out["force_std"].max()
