"""virial <-> stress: the sign and the volume, checked against EMT by finite differences."""

import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.stress import voigt_6_to_full_3x3_stress

from conlearn.atoms.stress import stress_to_virial, virial_to_stress


def test_virial_is_minus_strain_derivative_of_energy():
    atoms = bulk("Al", "fcc", a=3.9, cubic=True)  # compressed: it wants to expand
    atoms.rattle(0.05, seed=1)
    atoms.calc = EMT()
    virial = stress_to_virial(voigt_6_to_full_3x3_stress(atoms.get_stress()), atoms.get_volume())
    h, cell0 = 1e-5, atoms.cell.array.copy()
    fd = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            e = []
            for s in (h, -h):
                eps = np.eye(3)
                eps[i, j] += s
                a = atoms.copy()
                a.calc = EMT()
                a.set_cell(cell0 @ eps, scale_atoms=True)
                e.append(a.get_potential_energy())
            fd[i, j] = -(e[0] - e[1]) / (2 * h)
    fd = 0.5 * (fd + fd.T)
    assert np.all(np.diag(virial) > 0.1)  # compressed cell: a positive virial
    np.testing.assert_allclose(virial, fd, atol=1e-6)


def test_round_trip_and_one_volume_per_matrix():
    rng = np.random.default_rng(0)
    virials = rng.normal(size=(5, 3, 3))
    volumes = rng.uniform(10, 100, size=5)
    stresses = virial_to_stress(virials, volumes)
    np.testing.assert_allclose(stresses[2], -virials[2] / volumes[2])
    np.testing.assert_allclose(stress_to_virial(stresses, volumes), virials)
    np.testing.assert_allclose(virial_to_stress(virials[0], 20.0), -virials[0] / 20.0)
