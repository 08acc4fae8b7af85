"""Neighbour matrices (conlearn.atoms.graph): slots against a brute-force construction."""

from __future__ import annotations

import numpy as np
import torch

from conlearn.atoms import graph as graph_mod
from conlearn.atoms.graph import collate, frame_graph
from conlearn.testing.structures import water_box


def _frames():
    out = []
    for seed, n in ((0, 8), (1, 5)):
        a = water_box(n_molecules=n, seed=seed)
        types = np.array([0 if s == "O" else 1 for s in a.get_chemical_symbols()])
        out.append(frame_graph(a.positions, a.cell.array, a.pbc, types, rcut=4.0, sel=[40, 80],
                               type_map=["O", "H"], frame=seed))
    return out


def test_slots_hold_each_pair_once_sorted_by_type():
    """Every (centre, neighbour, vector) of every frame appears exactly once, in its type's slot
    block and in pair order; empty slots are (far, 0, 0) with j = N."""
    frames = _frames()
    g = collate(frames, 2)
    n, k = g.nbr_j.shape
    order = g.order.numpy()
    inv = np.empty(n, dtype=np.int64)
    inv[order] = np.arange(n)
    offsets = np.cumsum([0] + [len(f.types) for f in frames])
    nbr_vec, nbr_j, types = g.nbr_vec.numpy(), g.nbr_j.numpy(), g.atom_types.numpy()
    seen = np.zeros((n, k), dtype=bool)
    for f, o in zip(frames, offsets):
        for p in range(len(f.pairs.i)):
            a, b = inv[f.pairs.i[p] + o], inv[f.pairs.j[p] + o]
            s0, e0 = g.slot_slices[types[b]]
            hits = [s for s in range(s0, e0) if not seen[a, s] and nbr_j[a, s] == b
                    and np.array_equal(nbr_vec[a, s], f.pairs.vec[p])]
            assert hits, (a, b)
            assert seen[a, s0:hits[0]].all()  # the first free slot: pair order
            seen[a, hits[0]] = True
    assert (nbr_j[~seen] == n).all()
    assert np.array_equal(nbr_vec[~seen], np.tile([5.0, 0.0, 0.0], ((~seen).sum(), 1)))
    assert int(seen.sum()) == sum(len(f.pairs.i) for f in frames) == int(g.counts.sum())


def test_compiled_and_numpy_fill_agree():
    frames = _frames()
    fast = collate(frames, 2, dtype=torch.float64)
    orig = graph_mod._fill_slots
    try:
        graph_mod._fill_slots = graph_mod._fill_slots_numpy
        ref = collate(frames, 2, dtype=torch.float64)
    finally:
        graph_mod._fill_slots = orig
    assert torch.equal(fast.nbr_vec, ref.nbr_vec) and torch.equal(fast.nbr_j, ref.nbr_j)
