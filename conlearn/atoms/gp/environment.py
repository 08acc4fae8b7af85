"""Local atomic environments for the GP force field: anchored 2- and 3-body clusters.

The energy of a structure is modelled as a sum of cluster energies (FLARE, Vandermause et
al., npj Comput. Mater. 6, 20 (2020))::

    E = sum_{pairs p} phi2(p) + sum_{triplets t} phi3(t)

A pair is two atoms closer than ``r_cut2``; a triplet is three atoms whose three distances
are all below ``r_cut3`` (FLARE's definition).  The *environment* of atom ``i`` holds every
cluster that contains ``i``, written with ``i`` as vertex 0 (the anchor).  Then

* the force on ``i`` is ``-sum_{clusters anchored at i} d phi / d x_0`` (only the anchor
  moves), which is exactly ``-dE/dx_i`` also when ``i`` meets its own periodic image;
* the local energy ``eps_i = sum_{anchored clusters} phi / n_body`` sums to ``E``.

Edges: a pair has one edge (0, 1); a triplet has edges (0, 1), (0, 2), (1, 2).  Edge
vectors are ``x_b - x_a`` in Å.  Clusters are stored sorted by anchor.

Cutoffs (smooth, value and slope vanish at ``r_c``), one factor per edge, multiplied:

* ``"quadratic"`` (FLARE's default): ``(1 - r/r_c)^2`` — FLARE's ``(r_c - r)^2`` divided by
  ``r_c^2`` so that ``f(0) = 1``; the constant is absorbed into the signal ``sigma``.
* ``"cosine"``: ``(1 + cos(pi r / r_c)) / 2``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from conlearn.atoms.neighbors import neighbor_pairs


def quadratic_cutoff(r: np.ndarray, rc: float) -> tuple[np.ndarray, np.ndarray]:
    """``(f, df/dr)`` of ``(1 - r/rc)^2``; ``r`` in Å, any shape."""
    x = np.clip(1.0 - r / rc, 0.0, None)
    return x * x, -2.0 * x / rc


def cosine_cutoff(r: np.ndarray, rc: float) -> tuple[np.ndarray, np.ndarray]:
    """``(f, df/dr)`` of ``(1 + cos(pi r/rc))/2``; zero beyond ``rc``."""
    inside = r < rc
    a = np.pi * r / rc
    return (np.where(inside, 0.5 * (1.0 + np.cos(a)), 0.0),
            np.where(inside, -0.5 * np.pi / rc * np.sin(a), 0.0))


CUTOFFS = {"quadratic": quadratic_cutoff, "cosine": cosine_cutoff}

#: vertex pairs of the edges of a cluster with ``n_body`` atoms
EDGES = {2: ((0, 1),), 3: ((0, 1), (0, 2), (1, 2))}


@dataclass
class Clusters:
    """Clusters of one body order, anchored at their environment's central atom.

    Attributes:
        env: ``[N]`` int, environment (anchor) index, non-decreasing.
        species: ``[N, n_body]`` int atomic numbers, anchor first.
        vec: ``[N, m, 3]`` Å, edge vectors (``m = 1`` for pairs, 3 for triplets).
        dist: ``[N, m]`` Å, edge lengths (the descriptor).
        fcut: ``[N]`` product of the edge cutoff factors (dimensionless).
        dfcut: ``[N, m]`` 1/Å, derivative of ``fcut`` with respect to each edge length.
    """

    env: np.ndarray
    species: np.ndarray
    vec: np.ndarray
    dist: np.ndarray
    fcut: np.ndarray
    dfcut: np.ndarray

    @property
    def n_body(self) -> int:
        return self.species.shape[1]

    def __len__(self) -> int:
        return len(self.env)

    def anchor_jacobian(self) -> np.ndarray:
        """``[N, n_body - 1, 3]`` d(edge length)/d(anchor position) of the edges at vertex 0."""
        k = self.n_body - 1
        return -self.vec[:, :k] / self.dist[:, :k, None]

    def take(self, mask: np.ndarray, env_map: np.ndarray) -> "Clusters":
        """The clusters where ``mask`` holds, with env indices renamed by ``env_map``."""
        return Clusters(env_map[self.env[mask]], self.species[mask], self.vec[mask],
                        self.dist[mask], self.fcut[mask], self.dfcut[mask])


def _clusters(env, species, vec, rc, cutoff) -> Clusters:
    dist = np.linalg.norm(vec, axis=-1)
    f, df = CUTOFFS[cutoff](dist, rc)
    fcut = np.prod(f, axis=1)
    # d(prod_e f_e)/d r_k = df_k * prod_{e != k} f_e
    dfcut = np.stack([df[:, k] * np.prod(np.delete(f, k, axis=1), axis=1)
                      for k in range(f.shape[1])], axis=1)
    return Clusters(env, species, vec, dist, fcut, dfcut)


@dataclass
class Environments:
    """Local environments of some atoms of one or more frames.

    Attributes:
        numbers: ``[n_envs]`` atomic numbers of the central atoms.
        atom: ``[n_envs]`` index of the central atom in its frame.
        frame: ``[n_envs]`` frame index (0 for a single frame; renumbered by ``concat``).
        pairs, triplets: the anchored clusters (see the module docstring).
        r_cut2, r_cut3: Å; cutoff: name of the cutoff function.
        n_frame_atoms: ``[n_frames]`` atoms in each frame (a frame energy needs all of them).
    """

    numbers: np.ndarray
    atom: np.ndarray
    frame: np.ndarray
    pairs: Clusters
    triplets: Clusters
    r_cut2: float
    r_cut3: float
    cutoff: str
    n_frame_atoms: np.ndarray

    def __len__(self) -> int:
        return len(self.numbers)

    @property
    def n_frames(self) -> int:
        return len(self.n_frame_atoms)

    def complete(self) -> bool:
        """Whether every atom of every frame has its environment here (frame energies)."""
        counts = np.bincount(self.frame, minlength=self.n_frames)
        return bool(np.array_equal(counts, self.n_frame_atoms))

    def subset(self, idx) -> "Environments":
        """The environments ``idx`` (in that order) of the same frames."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        env_map = np.full(len(self), -1, dtype=np.int64)
        env_map[idx] = np.arange(len(idx))

        def pick(c: Clusters) -> Clusters:
            sub = c.take(env_map[c.env] >= 0, env_map)
            order = np.argsort(sub.env, kind="stable")
            return Clusters(*(getattr(sub, f)[order] for f in
                              ("env", "species", "vec", "dist", "fcut", "dfcut")))

        return replace(self, numbers=self.numbers[idx], atom=self.atom[idx],
                       frame=self.frame[idx], pairs=pick(self.pairs),
                       triplets=pick(self.triplets))

    @staticmethod
    def concat(items: list["Environments"]) -> "Environments":
        """Environments of several frames in one record; frame and env indices renumbered."""
        first = items[0]
        for e in items[1:]:
            if (e.r_cut2, e.r_cut3, e.cutoff) != (first.r_cut2, first.r_cut3, first.cutoff):
                raise ValueError(
                    f"cannot join environments with cutoffs ({e.r_cut2}, {e.r_cut3}, "
                    f"{e.cutoff}) and ({first.r_cut2}, {first.r_cut3}, {first.cutoff})")
        env_off = np.cumsum([0] + [len(e) for e in items])
        frame_off = np.cumsum([0] + [e.n_frames for e in items])

        def join(name: str) -> Clusters:
            parts = [getattr(e, name) for e in items]
            return Clusters(
                np.concatenate([c.env + o for c, o in zip(parts, env_off)]),
                *(np.concatenate([getattr(c, f) for c in parts])
                  for f in ("species", "vec", "dist", "fcut", "dfcut")))

        return replace(
            first,
            numbers=np.concatenate([e.numbers for e in items]),
            atom=np.concatenate([e.atom for e in items]),
            frame=np.concatenate([e.frame + o for e, o in zip(items, frame_off)]),
            pairs=join("pairs"), triplets=join("triplets"),
            n_frame_atoms=np.concatenate([e.n_frame_atoms for e in items]))


def environments(positions, cell, pbc, numbers, r_cut2: float, r_cut3: float,
                 atoms=None, cutoff: str = "quadratic") -> Environments:
    """Anchored pairs and triplets of the chosen atoms of one frame.

    Args:
        positions: ``[n_atoms, 3]`` Å.  cell: ``[3, 3]`` Å rows, or None.  pbc: ``[3]`` bool.
        numbers: ``[n_atoms]`` atomic numbers.
        r_cut2, r_cut3: Å, pair and triplet cutoffs (``r_cut3 <= r_cut2`` is usual, not needed).
        atoms: indices of the central atoms (default: all, in order).
        cutoff: a key of ``CUTOFFS``.
    """
    if cutoff not in CUTOFFS:
        raise ValueError(f"unknown cutoff {cutoff!r}; choose one of {sorted(CUTOFFS)}")
    numbers = np.asarray(numbers, dtype=np.int64).reshape(-1)
    n_atoms = len(numbers)
    atoms = np.arange(n_atoms) if atoms is None else np.asarray(atoms, dtype=np.int64)
    nl = neighbor_pairs(positions, cell, pbc, max(r_cut2, r_cut3))
    env_of = np.full(n_atoms, -1, dtype=np.int64)
    env_of[atoms] = np.arange(len(atoms))
    keep = env_of[nl.i] >= 0
    env, j, vec = env_of[nl.i[keep]], nl.j[keep], nl.vec[keep]
    order = np.argsort(env, kind="stable")
    env, j, vec = env[order], j[order], vec[order]
    dist = np.linalg.norm(vec, axis=1)
    centre = numbers[atoms]

    p = dist < r_cut2
    pairs = _clusters(env[p], np.stack([centre[env[p]], numbers[j[p]]], axis=1),
                      vec[p][:, None, :], r_cut2, cutoff)

    # triplets: two neighbours (a < b in the list) of the same anchor, all distances < r_cut3
    t = np.flatnonzero(dist < r_cut3)
    e3 = env[t]
    end = np.searchsorted(e3, e3, side="right")
    count = end - np.arange(len(t)) - 1
    a = np.repeat(np.arange(len(t)), count)
    b = a + 1 + np.arange(len(a)) - np.repeat(np.cumsum(count) - count, count)
    ta, tb = t[a], t[b]
    v01, v02 = vec[ta], vec[tb]
    v12 = v02 - v01
    ok = np.linalg.norm(v12, axis=1) < r_cut3
    ta, tb = ta[ok], tb[ok]
    triplets = _clusters(
        env[ta], np.stack([centre[env[ta]], numbers[j[ta]], numbers[j[tb]]], axis=1),
        np.stack([v01[ok], v02[ok], v12[ok]], axis=1), r_cut3, cutoff)
    return Environments(numbers=centre, atom=atoms, frame=np.zeros(len(atoms), dtype=np.int64),
                        pairs=pairs, triplets=triplets, r_cut2=float(r_cut2),
                        r_cut3=float(r_cut3), cutoff=cutoff,
                        n_frame_atoms=np.array([n_atoms], dtype=np.int64))


def atoms_environments(atoms, r_cut2: float, r_cut3: float, indices=None,
                       cutoff: str = "quadratic") -> Environments:
    """``environments`` of an ``ase.Atoms`` (duck-typed: positions, cell, pbc, numbers)."""
    cell = np.asarray(atoms.cell[:]) if atoms.pbc.any() else None
    return environments(atoms.positions, cell, atoms.pbc, atoms.numbers, r_cut2, r_cut3,
                        atoms=indices, cutoff=cutoff)
