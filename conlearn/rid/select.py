"""RiD selection: frames the ensemble does not trust, clustered in CV space, one label per cluster.

A frame with ε ≥ e0 is a candidate. Candidates are clustered by complete linkage on the
periodic-aware distance |wrap(s − s')| (every pair inside a cluster is closer than
``cluster_distance``), one representative per cluster (its medoid), at most ``max_select``
clusters per iteration (a seeded random choice).

Adaptive trust levels (adaptive RiD): when an iteration labelled fewer than ``min_clusters``
points, the next iteration's e0 and e1 are multiplied by ``factor`` (up to ``max_scale`` times
the configured values), letting the bias act further from the labelled region; an iteration
with enough labels resets them.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

from ..core.records import ExploredBatch, Selection, TaskContext
from .cv import wrap


@dataclass(frozen=True)
class TrustLevels:
    """e0 < e1 (kJ/mol/rad) and their adaptive schedule."""

    e0: float = 2.0
    e1: float = 3.0
    factor: float = 1.5
    max_scale: float = 4.0
    min_clusters: int = 4

    def at(self, labels_per_iteration: Sequence[int]) -> tuple[float, float]:
        """(e0, e1) for the iteration after those whose label counts are given (in order)."""
        scale = 1.0
        for n in labels_per_iteration:
            scale = min(scale * self.factor, self.max_scale) if n < self.min_clusters else 1.0
        return self.e0 * scale, self.e1 * scale


def periodic_distances(points: np.ndarray, periodic: Sequence[bool]) -> np.ndarray:
    """Condensed distance matrix (scipy's pdist layout) of points [n, d] with wrapped differences."""
    n = len(points)
    i, j = np.triu_indices(n, k=1)
    return np.linalg.norm(wrap(points[j] - points[i], periodic), axis=-1)


def clusters(points: np.ndarray, periodic: Sequence[bool], distance: float) -> np.ndarray:
    """Cluster ids [n] (0-based) by complete linkage: the largest distance within a cluster is
    at most ``distance``."""
    points = np.asarray(points, dtype=float)
    if len(points) < 2:
        return np.zeros(len(points), dtype=int)
    Z = linkage(periodic_distances(points, periodic), method="complete")
    return fcluster(Z, t=distance, criterion="distance") - 1


def representatives(points: np.ndarray, periodic: Sequence[bool], distance: float, max_select: int | None,
                    seed: int) -> list[int]:
    """Indices of one medoid per cluster, at most ``max_select`` clusters (seeded random
    choice), sorted."""
    ids = clusters(points, periodic, distance)
    picks = []
    for c in np.unique(ids):
        members = np.flatnonzero(ids == c)
        sub = points[members]
        d = np.linalg.norm(wrap(sub[:, None] - sub[None], periodic), axis=-1).sum(axis=1)
        picks.append(int(members[np.argmin(d)]))
    if max_select is not None and len(picks) > max_select:
        picks = random.Random(seed).sample(picks, max_select)
    return sorted(picks)


@dataclass(frozen=True)
class ClusterSelector:
    """The RiD :class:`~conlearn.core.protocols.Selector` (see the module docstring).

    The trust level e0 of the iteration is read from the batches' meta (set by the explorer).
    No frame counts as failed. converge_fraction: the loop stops when this fraction of the
    explored frames has ε < e0 *and* the trust levels have risen to their maximum (a walker
    that stays where the ensemble agrees has not shown that the ensemble is right elsewhere).
    max_candidates: candidates beyond this are thinned (evenly, in order) before clustering.
    """

    periodic: tuple[bool, ...]
    cluster_distance: float = 0.3
    max_select: int | None = 30
    converge_fraction: float = 1.0
    max_candidates: int = 3000

    def select(self, batches: Sequence[ExploredBatch], ctx: TaskContext) -> Selection:
        frames = [(c, b.meta["e0"]) for b in batches for c in b.candidates]
        cands = [c for c, e0 in frames if c.deviation >= e0]
        if len(cands) > self.max_candidates:
            keep = np.linspace(0, len(cands) - 1, self.max_candidates).round().astype(int)
            cands = [cands[i] for i in keep]
        picked = ()
        if cands:
            pts = np.array([np.asarray(c.payload["s"], dtype=float) for c in cands])
            picked = tuple(cands[i] for i in representatives(pts, self.periodic, self.cluster_distance,
                                                              self.max_select, ctx.seed))
        n_cand = sum(c.deviation >= e0 for c, e0 in frames)
        at_max = all(b.meta.get("trust_at_max", True) for b in batches)
        return Selection(n_explored=len(frames), n_accurate=len(frames) - n_cand, n_candidate=n_cand,
                         n_failed=0, selected=picked, threshold=self.converge_fraction if at_max else math.inf)
