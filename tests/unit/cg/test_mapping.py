"""Mapping operators: COM across the box, summed forces, errors naming the atom or bead."""

import json

import numpy as np
import pytest

from conlearn.cg.mapping import (Mapping, MappingError, atom_mapping, cog_mapping, com_mapping,
                                 mapping_from_groups, mapping_from_template)

MASSES_H2O = np.array([15.9994, 1.008, 1.008])


def _water(o, rng):
    """A rigid SPC/E-like water at O position ``o`` with a random orientation (nm)."""
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    h = np.array([[0.1, 0.0, 0.0], [0.1 * np.cos(1.911), 0.1 * np.sin(1.911), 0.0]])
    return np.vstack([o, o + h @ q.T])


def test_com_of_water_split_across_box_is_mass_weighted_mean():
    rng = np.random.default_rng(0)
    box = np.array([1.2, 1.3, 1.4])
    whole = np.vstack([_water(rng.uniform(0, 1, 3), rng) for _ in range(5)])
    whole[0:3] = _water(np.array([0.01, 1.29, 0.7]), rng)   # straddles two faces
    wrapped = whole % box                                     # molecules broken by the box
    assert not np.allclose(wrapped, whole)
    mol = np.repeat(np.arange(5), 3)
    m = com_mapping(np.tile(MASSES_H2O, 5), mol)
    expect = (whole.reshape(5, 3, 3) * MASSES_H2O[:, None]).sum(1) / MASSES_H2O.sum()
    got = m.map_positions(wrapped, box)
    d = got - expect
    assert np.abs(d - box * np.round(d / box)).max() < 1e-12      # equal up to a lattice vector
    assert np.allclose(m.map_positions(whole, box), expect, atol=1e-12)
    assert np.allclose(m.bead_masses, MASSES_H2O.sum())
    # a trajectory [T, n_atoms, 3] with per-frame boxes maps frame by frame
    traj = np.stack([wrapped, whole])
    assert m.map_positions(traj, np.stack([box, box])).shape == (2, 5, 3)


def test_cog_and_atom_mappings():
    rng = np.random.default_rng(1)
    x = np.vstack([_water(rng.uniform(0.3, 0.7, 3), rng) for _ in range(2)])
    mol = np.repeat([0, 1], 3)
    box = np.full(3, 2.0)
    cog = cog_mapping(np.tile(MASSES_H2O, 2), mol).map_positions(x, box)
    assert np.allclose(cog, x.reshape(2, 3, 3).mean(1))
    oxy = atom_mapping(np.tile(MASSES_H2O, 2), mol, 0)
    assert np.allclose(oxy.map_positions(x, box), x[[0, 3]])
    assert np.allclose(oxy.bead_masses, MASSES_H2O.sum())      # all atoms count for the mass


def test_mapped_force_is_sum_of_atom_forces():
    rng = np.random.default_rng(2)
    f = rng.normal(size=(4, 9, 3))
    m = mapping_from_template(np.tile(MASSES_H2O, 3), np.repeat([0, 1, 2], 3), [[0, 1, 2]])
    F = m.map_forces(f)
    assert F.shape == (4, 3, 3)
    assert np.allclose(F, f.reshape(4, 3, 3, 3).sum(2))
    assert np.allclose(F.sum(1), f.sum(1))                       # total force conserved


def test_two_beads_per_molecule_template():
    masses = np.array([12.0, 1.0, 1.0, 16.0, 1.0] * 2)
    m = mapping_from_template(masses, np.repeat([0, 1], 5), [[0, 1, 2], [3, 4]])
    assert m.n_beads == 4
    assert list(m.bead_of_atom) == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]
    assert np.allclose(m.bead_masses, [14, 17, 14, 17])
    back = Mapping.from_dict(json.loads(json.dumps(m.to_dict())))
    x = np.random.default_rng(5).uniform(0, 1, size=(10, 3))
    box = np.full(3, 3.0)
    assert np.array_equal(back.map_positions(x, box), m.map_positions(x, box))


def test_errors_name_atom_and_bead():
    masses = np.array([16.0, 1.0, 1.0, 16.0, 1.0, 1.0])
    with pytest.raises(MappingError, match=r"atom 5 is not assigned to any bead"):
        mapping_from_groups([[0, 1, 2], [3, 4]], masses)
    with pytest.raises(MappingError, match=r"atom 2 is assigned twice \(beads 0 and 1\)"):
        mapping_from_groups([[0, 1, 2], [2, 3, 4, 5]], masses)
    with pytest.raises(MappingError, match=r"bead 1 has zero mass"):
        mapping_from_groups([[0, 1, 2], [3, 4, 5]], [16.0, 1, 1, 0, 0, 0])
    with pytest.raises(MappingError, match=r"cg.yaml:7 mapping: bead 1 names atom 9"):
        mapping_from_groups([[0, 1, 2], [3, 4, 5, 9]], masses, where="cg.yaml:7 mapping")
    with pytest.raises(MappingError, match=r"bead 0 names atom 3 of the molecule, but molecule 0 has 3 atoms"):
        mapping_from_template(masses, [0, 0, 0, 1, 1, 1], [[0, 1, 2, 3]])
    with pytest.raises(MappingError, match=r"kind 'xyz'"):
        mapping_from_groups([[0, 1, 2], [3, 4, 5]], masses, kind="xyz")
    m = com_mapping(masses, [0, 0, 0, 1, 1, 1])
    with pytest.raises(MappingError, match=r"expects \[T, 6, 3\]"):
        m.map_positions(np.zeros((2, 7, 3)), np.ones(3))           # topology != trajectory
    with pytest.raises(MappingError, match=r"weights of bead 0 sum to"):
        Mapping(np.array([0, 0]), np.array([0.5, 0.4]), np.array([2.0]))
