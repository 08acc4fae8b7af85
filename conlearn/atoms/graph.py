"""Frames as neighbour matrices: the input every conlearn atomistic model takes.

A batch of frames is flattened and its atoms are sorted by type (stable), so that each
type is one contiguous slice. Each atom's neighbours are sorted by type too and padded
per type to ``K_t`` = the largest count of type-t neighbours of any atom in the batch
(not to the model's ``sel``): ``nbr_vec [N, K, 3]`` with ``K = Σ_t K_t``. Empty slots
hold a vector longer than the cutoff, so every model sees them as absent neighbours and
their gradients are exactly zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .neighbors import Pairs, check_sel, neighbor_pairs


@dataclass
class FrameGraph:
    """One frame, numpy. types: ``[n]`` model type index; pairs within ``rcut``; counts ``[n, n_types]``."""

    types: np.ndarray
    pairs: Pairs
    counts: np.ndarray
    rcut: float


@dataclass
class Graph:
    """A batch of frames as tensors, atoms sorted by type.

    atom_types: ``[N]`` long.  atom_frame: ``[N]`` long.  order: ``[N]`` long, index of each
    (sorted) atom in the caller's concatenated atom order.  type_slices: per type ``(a, b)``.
    nbr_vec: ``[N, K, 3]`` Å, ``r_ij = x_j - x_i (+ shift)``; padding longer than the cutoff.
    nbr_j: ``[N, K]`` long, neighbour (sorted) index, ``N`` for padding.
    slot_slices: per neighbour type ``(s, e)`` along K.  counts: ``[N, n_types]`` real neighbours.
    """

    atom_types: torch.Tensor
    atom_frame: torch.Tensor
    order: torch.Tensor
    n_frames: int
    type_slices: list[tuple[int, int]]
    nbr_vec: torch.Tensor
    nbr_j: torch.Tensor
    slot_slices: list[tuple[int, int]]
    counts: torch.Tensor

    @property
    def n_atoms(self) -> int:
        return self.atom_types.shape[0]

    # flat views used by the derivatives utility
    @property
    def pair_vec(self) -> torch.Tensor:
        return self.nbr_vec

    @pair_vec.setter
    def pair_vec(self, value: torch.Tensor) -> None:
        self.nbr_vec = value

    def pair_index(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Flat ``(i, j, frame)`` of all ``N*K`` slots (``j = N`` for padding)."""
        n, k = self.nbr_j.shape
        i = torch.arange(n, device=self.nbr_j.device).repeat_interleave(k)
        return i, self.nbr_j.reshape(-1), self.atom_frame.repeat_interleave(k)


def frame_graph(positions, cell, pbc, types, *, rcut: float, sel: list[int],
                type_map: list[str], frame: int | str = 0) -> FrameGraph:
    """Pairs within ``rcut`` and neighbour counts, checked against ``sel``."""
    types = np.asarray(types, dtype=np.int64)
    pairs = neighbor_pairs(positions, cell, pbc, rcut, frame=frame)
    counts = check_sel(pairs, types, sel, type_map, frame=frame)
    return FrameGraph(types=types, pairs=pairs, counts=counts, rcut=float(rcut))


def _fill_slots_numpy(pi, pj, tj, vec, starts, n_types, far, nbr_vec, nbr_j) -> None:
    """Each pair into the next free slot of its centre's neighbour-type block, in pair order
    (a stable sort by (centre, type)); empty slots get the vector ``(far, 0, 0)``."""
    key = pi * n_types + tj
    srt = np.argsort(key, kind="stable")
    key_s = key[srt]
    first = np.searchsorted(key_s, key_s, side="left")
    slot = np.empty(len(key), dtype=np.int64)
    slot[srt] = starts[tj[srt]] + (np.arange(len(key)) - first)
    nbr_vec[:, :, 0] = far
    nbr_vec[pi, slot] = vec
    nbr_j[pi, slot] = pj


def _fill_slots_loop(pi, pj, tj, vec, starts, n_types, far, nbr_vec, nbr_j) -> None:
    """The same in one pass over the pairs (compiled with numba)."""
    n, k = nbr_j.shape
    for a in range(n):
        for s in range(k):
            nbr_vec[a, s, 0] = far
    used = np.zeros((n, n_types), dtype=np.int64)
    for p in range(len(pi)):
        a, t = pi[p], tj[p]
        s = starts[t] + used[a, t]
        used[a, t] += 1
        nbr_vec[a, s, 0], nbr_vec[a, s, 1], nbr_vec[a, s, 2] = vec[p, 0], vec[p, 1], vec[p, 2]
        nbr_j[a, s] = pj[p]


try:
    import numba

    _fill_slots = numba.njit(cache=True)(_fill_slots_loop)
except ImportError:  # pragma: no cover - numba is a dependency
    _fill_slots = _fill_slots_numpy


def collate(frames: list[FrameGraph], n_types: int, *, dtype=torch.float64, device="cpu") -> Graph:
    """Concatenate frames into one type-sorted, padded ``Graph`` on ``device``."""
    offsets = np.cumsum([0] + [len(f.types) for f in frames])
    types0 = np.concatenate([f.types for f in frames])
    n = len(types0)
    order = np.argsort(types0, kind="stable")  # sorted position -> original index
    inv = np.empty(n, dtype=np.int64)
    inv[order] = np.arange(n)
    types = types0[order]
    frame0 = np.repeat(np.arange(len(frames)), np.diff(offsets))
    pi = inv[np.concatenate([f.pairs.i + o for f, o in zip(frames, offsets)])]
    pj = inv[np.concatenate([f.pairs.j + o for f, o in zip(frames, offsets)])]
    vec = np.concatenate([f.pairs.vec for f in frames]).reshape(-1, 3)
    tj = types[pj]
    counts = np.concatenate([f.counts for f in frames])[order]
    k_t = counts.max(0) if n else np.zeros(n_types, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(k_t)])
    k = int(starts[-1])
    far = max(f.rcut for f in frames) + 1.0 if frames else 1.0
    nbr_vec = np.zeros((n, k, 3))
    nbr_j = np.full((n, k), n, dtype=np.int64)
    _fill_slots(pi, pj, tj, vec, starts, n_types, far, nbr_vec, nbr_j)
    bounds = np.searchsorted(types, np.arange(n_types + 1))
    t = lambda a, dt=torch.long: torch.as_tensor(a, dtype=dt, device=device)  # noqa: E731
    return Graph(
        atom_types=t(types), atom_frame=t(frame0[order]), order=t(order), n_frames=len(frames),
        type_slices=[(int(bounds[q]), int(bounds[q + 1])) for q in range(n_types)],
        nbr_vec=t(nbr_vec, dtype), nbr_j=t(nbr_j),
        slot_slices=[(int(starts[q]), int(starts[q + 1])) for q in range(n_types)],
        counts=t(counts),
    )
