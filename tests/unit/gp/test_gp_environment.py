"""Clusters of local environments: counts against brute force, uniqueness, subsets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from conlearn.atoms.gp.environment import (CUTOFFS, Environments, atoms_environments,
                                           cosine_cutoff, quadratic_cutoff)


def _brute_force(atoms, r2, r3):
    """Anchored pairs and triplets by looping over images (FLARE's per-atom counting)."""
    reach = 2 if atoms.pbc.any() else 0
    images = [np.array(s) @ atoms.cell[:] for s in itertools.product(range(-reach, reach + 1),
                                                                       repeat=3)]
    pairs, triplets = [], []
    for i, xi in enumerate(atoms.positions):
        nb = [xj + s - xi for xj in atoms.positions for s in images]
        nb = [v for v in nb if 1e-8 < np.linalg.norm(v)]
        pairs += [np.linalg.norm(v) for v in nb if np.linalg.norm(v) < r2]
        near = [v for v in nb if np.linalg.norm(v) < r3]
        for a, b in itertools.combinations(range(len(near)), 2):
            if np.linalg.norm(near[a] - near[b]) < r3:
                triplets.append(sorted(np.linalg.norm([near[a], near[b], near[a] - near[b]],
                                                      axis=1)))
    return np.sort(pairs), _rows(np.array(triplets))


def _rows(x: np.ndarray) -> np.ndarray:
    """Rows sorted within and then lexicographically, rounded against float noise."""
    x = np.round(np.sort(x, axis=1), 8)
    return x[np.lexsort(x.T[::-1])]


@pytest.mark.parametrize("name,seed", [("binary_cell", 0), ("molecule", 1), ("rattled_al", 2)])
def test_clusters_match_brute_force(structures, name, seed):
    atoms = getattr(structures, name)(seed)
    r2, r3 = 4.6, 3.7
    env = atoms_environments(atoms, r2, r3)
    pairs, triplets = _brute_force(atoms, r2, r3)
    # each stored cluster stands for one anchored copy per vertex
    mult2 = (env.pairs.owner >= 0).sum(axis=1)
    assert np.allclose(np.sort(np.repeat(env.pairs.dist[:, 0], mult2)), pairs)
    mult3 = (env.triplets.owner >= 0).sum(axis=1)
    got = _rows(np.repeat(env.triplets.dist, mult3, axis=0))
    assert got.shape == triplets.shape and np.allclose(got, triplets)
    assert env.complete() and len(env) == len(atoms)
    assert np.all(mult2 == 2) and np.all(mult3 == 3)  # every cluster stored once
    assert np.allclose(env.triplets.dist, np.linalg.norm(env.triplets.vec, axis=-1))


def test_subset_keeps_clusters_of_chosen_atoms(structures):
    atoms = structures.binary_cell(3)
    full = atoms_environments(atoms, 4.6, 3.7)
    part = atoms_environments(atoms, 4.6, 3.7, indices=[2, 0])
    sub = full.subset([2, 0])
    assert not part.complete() and list(part.atom) == [2, 0]
    for a, b in ((part.pairs, sub.pairs), (part.triplets, sub.triplets)):
        ka = sorted(zip(map(tuple, np.sort(a.owner, 1)), np.round(np.sort(a.dist, 1), 10).tolist()))
        kb = sorted(zip(map(tuple, np.sort(b.owner, 1)), np.round(np.sort(b.dist, 1), 10).tolist()))
        assert ka == kb


def test_concat_renumbers_frames_and_owners(structures):
    e1, e2 = (atoms_environments(structures.binary_cell(s), 4.6, 3.7) for s in (4, 5))
    both = Environments.concat([e1, e2])
    assert both.n_frames == 2 and both.complete()
    assert both.frame.tolist() == [0] * 4 + [1] * 4
    assert both.pairs.owner[len(e1.pairs):].min() == 4
    with pytest.raises(ValueError, match="cutoffs"):
        Environments.concat([e1, atoms_environments(structures.binary_cell(4), 4.0, 3.7)])


@pytest.mark.parametrize("cut", [quadratic_cutoff, cosine_cutoff])
def test_cutoff_is_smooth(cut):
    rc, h = 3.7, 1e-6
    r = np.linspace(0.5, rc + 0.5, 41)
    f, df = cut(r, rc)
    assert np.allclose(df, (cut(r + h, rc)[0] - cut(r - h, rc)[0]) / (2 * h), atol=1e-7)
    f_end, df_end = cut(np.array([rc - 1e-9, rc, rc + 1.0]), rc)
    assert np.allclose(f_end, 0, atol=1e-12) and np.allclose(df_end, 0, atol=1e-8)
    assert set(CUTOFFS) == {"quadratic", "cosine"}


def test_unknown_cutoff_is_named(structures):
    with pytest.raises(ValueError, match="quadratic"):
        atoms_environments(structures.molecule(0), 4.0, 3.0, cutoff="gaussian")
