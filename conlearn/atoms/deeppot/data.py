"""Labelled frames prepared for a model: pair graphs built once, batches drawn by seed.

Neighbour lists of training data never change, so each frame's graph is built once (vesin)
and kept; a training step only gathers tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..dataset import remap_types
from ..graph import FrameGraph, Graph, collate, frame_graph
from ..system import System


@dataclass
class Batch:
    """A graph and its labels. energy ``[F]`` eV, forces ``[N,3]`` eV/Å, virial ``[F,3,3]`` eV;
    a label is None when its system has none."""

    graph: Graph
    energy: torch.Tensor | None
    forces: torch.Tensor | None
    virial: torch.Tensor | None
    n_atoms: int  # atoms per frame (all frames of a batch share their system)


def batch_size_for(spec: int | str, n_atoms: int) -> int:
    """deepmd's rule: an int, or ``auto[:N]`` = smallest b with b * n_atoms >= N (N = 32)."""
    if isinstance(spec, int):
        return max(1, spec)
    rule = int(spec.split(":")[1]) if ":" in spec else 32
    return max(1, math.ceil(rule / n_atoms))


def sel_from_data(systems: list[System], type_map: list[str], rcut: float, factor: float = 1.1) -> list[int]:
    """``sel = "auto"``: the largest neighbour count per type in the data times ``factor``."""
    from ..neighbors import neighbor_pairs

    best = np.zeros(len(type_map), dtype=np.int64)
    for s in systems:
        types = remap_types(s, type_map)
        for f in range(0, s.n_frames, max(1, s.n_frames // 10)):
            p = neighbor_pairs(s.coords[f], None if s.cells is None else s.cells[f], s.pbc, rcut)
            counts = np.zeros((s.n_atoms, len(type_map)), dtype=np.int64)
            np.add.at(counts, (p.i, types[p.j]), 1)
            best = np.maximum(best, counts.max(0))
    return [int(math.ceil(b * factor / 4.0) * 4) or 4 for b in best]


class FrameSet:
    """Frames of several systems with their graphs, for one model's rcut/sel/type_map.

    ``graphs`` reuses the neighbour lists of another FrameSet of the same systems and model.
    """

    def __init__(self, systems: list[System], *, type_map: list[str], rcut: float, sel: list[int],
                 batch_size: int | str = "auto", dtype=torch.float64, device="cpu", seed: int = 0,
                 graphs: list[list[FrameGraph]] | None = None):
        self.systems = systems
        self.n_types, self.dtype, self.device = len(type_map), dtype, device
        self.rng = np.random.default_rng(seed)
        self.graphs: list[list[FrameGraph]] = graphs if graphs is not None else []
        for s in (systems if graphs is None else []):
            types = remap_types(s, type_map)
            self.graphs.append([
                frame_graph(s.coords[f], None if s.cells is None else s.cells[f], s.pbc, types,
                            rcut=rcut, sel=sel, type_map=type_map, frame=f"{f} of {s.name}")
                for f in range(s.n_frames)
            ])
        self.batch_sizes = [batch_size_for(batch_size, s.n_atoms) for s in systems]
        sizes = np.array([s.n_frames for s in systems], dtype=float)
        self.probs = sizes / sizes.sum()  # deepmd's "prob_sys_size"
        self._cache: dict[tuple, Batch] = {}

    @property
    def n_frames(self) -> int:
        return sum(s.n_frames for s in self.systems)

    def batch(self, k: int, frames) -> Batch:
        """Frames ``frames`` (indices) of system ``k`` as a Batch on the set's device."""
        key = (k, tuple(int(f) for f in frames))
        if key in self._cache:
            return self._cache[key]
        s = self.systems[k]
        t = lambda a: None if a is None else torch.as_tensor(a[list(key[1])], dtype=self.dtype, device=self.device)  # noqa: E731
        g = collate([self.graphs[k][f] for f in key[1]], self.n_types, dtype=self.dtype, device=self.device)
        forces = t(s.forces)
        b = Batch(graph=g, energy=t(s.energies), forces=None if forces is None else forces.reshape(-1, 3),
                  virial=t(s.virials), n_atoms=s.n_atoms)
        if len(key[1]) == 1 and len(self._cache) < 20000:
            self._cache[key] = b  # single frames are reused: keep their tensors
        return b

    def sample(self) -> Batch:
        """A random batch: a system by its share of frames, then frames within it."""
        k = int(self.rng.choice(len(self.systems), p=self.probs))
        n = self.systems[k].n_frames
        bs = min(self.batch_sizes[k], n)
        return self.batch(k, self.rng.choice(n, size=bs, replace=False))

    def iter_batches(self, batch_size: int = 1):
        """Every frame once, in order, ``batch_size`` frames at a time (same system per batch)."""
        for k, s in enumerate(self.systems):
            for a in range(0, s.n_frames, batch_size):
                yield self.batch(k, range(a, min(a + batch_size, s.n_frames)))


def stat_graphs(fs: FrameSet, n_frames: int, seed: int = 0) -> list[Graph]:
    """Up to ``n_frames`` frame graphs spread over the systems (for descriptor statistics)."""
    rng = np.random.default_rng(seed)
    out = []
    per = max(1, n_frames // max(1, len(fs.systems)))
    for k, s in enumerate(fs.systems):
        pick = rng.choice(s.n_frames, size=min(per, s.n_frames), replace=False)
        out.append(collate([fs.graphs[k][f] for f in pick], fs.n_types, dtype=torch.float64))
    return out


__all__ = ["Batch", "FrameSet", "batch_size_for", "sel_from_data", "stat_graphs"]
