"""Initial velocities: Maxwell-Boltzmann at the asked temperature, no drift, reproducible."""

import numpy as np
from ase.build import bulk

from conlearn.atoms.thermal import thermalize


def test_thermalize_gives_the_temperature_no_drift_and_is_reproducible():
    atoms = bulk("Al", "fcc", a=4.05, cubic=True) * (8, 8, 8)  # 2048 atoms
    thermalize(atoms, 800.0, np.random.default_rng(0))
    assert np.abs(atoms.get_momenta().sum(axis=0)).max() < 1e-10
    # 3N - 3 degrees of freedom after removing the drift: T within 3 standard errors
    assert abs(atoms.get_temperature() - 800.0) < 3 * 800.0 * np.sqrt(2 / (3 * len(atoms)))
    other = atoms.copy()
    thermalize(other, 800.0, np.random.default_rng(0))
    assert np.array_equal(other.get_momenta(), atoms.get_momenta())
    thermalize(other, 800.0, np.random.default_rng(1))
    assert not np.allclose(other.get_momenta(), atoms.get_momenta())
