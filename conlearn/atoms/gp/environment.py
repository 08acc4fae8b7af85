"""Local atomic environments for the GP force field: the 2- and 3-body clusters of atoms.

The energy of a structure is modelled as a sum of cluster energies (FLARE, Vandermause et
al., npj Comput. Mater. 6, 20 (2020))::

    E = sum_{pairs p} phi2(p) + sum_{triplets t} phi3(t)

A pair is two atoms closer than ``r_cut2``; a triplet is three atoms whose three distances
are all below ``r_cut3`` (FLARE's definition).  The *environment* of atom ``i`` is the set
of clusters that contain ``i``; then

* the force on ``i`` is ``-sum_{clusters} sum_{vertices v that are i} d phi / d x_v``
  (a cluster may hold ``i`` twice, as itself and as a periodic image);
* the local energy ``eps_i = sum_{clusters} (number of vertices that are i) phi / n_body``,
  and ``sum_i eps_i = E``.

Each physical cluster is stored once (FLARE stores it once per atom it contains), with
``owner[c, v]`` the environment of vertex ``v`` (``-1`` for atoms without one here): a
frame's pair kernel grid shrinks 4x and its triplet grid 9x.

Edges: a pair has one edge (0, 1); a triplet has edges (0, 1), (0, 2), (1, 2); an edge
vector ``(a, b)`` is ``x_b - x_a`` in Å.  The edge vectors also give the virial: a strain
``eps`` maps ``r_e -> (1 + eps) r_e``, so ``dE/d eps_ab = sum_e dphi/dr_e r_e,a r_e,b / r_e``
(``kernels``' "virial" and "stress" labels; the stress needs the frame ``volume``).

Cutoffs (smooth: value and slope vanish at ``r_c``), one factor per edge, multiplied:

* ``"quadratic"`` (FLARE's default): ``(1 - r/r_c)^2`` — FLARE's ``(r_c - r)^2`` divided by
  ``r_c^2`` so that ``f(0) = 1``; the constant is absorbed into the signal ``sigma``.
* ``"cosine"``: ``(1 + cos(pi r / r_c)) / 2``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

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
    """Clusters of one body order, each stored once.

    Attributes:
        owner: ``[N, n_body]`` int, environment index of each vertex, -1 if it has none.
        species: ``[N, n_body]`` int atomic numbers.
        vec: ``[N, m, 3]`` Å, edge vectors (``m = 1`` for pairs, 3 for triplets).
        dist: ``[N, m]`` Å, edge lengths (the descriptor).
        fcut: ``[N]`` product of the edge cutoff factors (dimensionless).
        dfcut: ``[N, m]`` 1/Å, derivative of ``fcut`` with respect to each edge length.
    """

    owner: np.ndarray
    species: np.ndarray
    vec: np.ndarray
    dist: np.ndarray
    fcut: np.ndarray
    dfcut: np.ndarray

    @property
    def n_body(self) -> int:
        return self.species.shape[1]

    def __len__(self) -> int:
        return len(self.owner)

    def take(self, keep: np.ndarray, owner: np.ndarray) -> "Clusters":
        """Clusters ``keep`` (mask or indices) with new ``owner`` rows for them."""
        return Clusters(owner, *(getattr(self, f.name)[keep] for f in fields(self)[1:]))


def _clusters(owner, species, vec, rc, cutoff) -> Clusters:
    dist = np.linalg.norm(vec, axis=-1)
    f, df = CUTOFFS[cutoff](dist, rc)
    fcut = np.prod(f, axis=1)
    # d(prod_e f_e)/d r_k = df_k * prod_{e != k} f_e
    dfcut = np.stack([df[:, k] * np.prod(np.delete(f, k, axis=1), axis=1)
                      for k in range(f.shape[1])], axis=1)
    return Clusters(owner, species, vec, dist, fcut, dfcut)


@dataclass
class Environments:
    """Local environments of some atoms of one or more frames.

    Attributes:
        numbers: ``[n_envs]`` atomic numbers of the central atoms.
        atom: ``[n_envs]`` index of the central atom in its frame.
        frame: ``[n_envs]`` frame index (0 for a single frame; renumbered by ``concat``).
        pairs, triplets: the clusters (see the module docstring).
        r_cut2, r_cut3: Å; cutoff: name of the cutoff function.
        n_frame_atoms: ``[n_frames]`` atoms in each frame (a frame energy needs all of them).
        volume: ``[n_frames]`` Å^3 cell volume of each frame, NaN unless periodic in all
            three directions (None: unknown, e.g. environments saved before it existed).
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
    volume: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.numbers)

    @property
    def n_frames(self) -> int:
        return len(self.n_frame_atoms)

    def complete(self) -> bool:
        """Whether every atom of every frame has its environment here (frame energies)."""
        counts = np.bincount(self.frame, minlength=self.n_frames)
        return bool(np.array_equal(counts, self.n_frame_atoms))

    def frame_volumes(self) -> np.ndarray:
        """``[n_frames]`` Å^3 cell volumes; raises unless every frame is a periodic cell."""
        vol = np.full(self.n_frames, np.nan) if self.volume is None else self.volume
        if not np.all(np.isfinite(vol)):
            raise ValueError("a stress needs frames periodic in all three directions "
                             f"(cell volumes {vol})")
        return np.asarray(vol, dtype=np.float64)

    def subset(self, idx) -> "Environments":
        """The environments ``idx`` (in that order) of the same frames."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        env_map = np.full(len(self) + 1, -1, dtype=np.int64)  # slot -1 maps -1 to -1
        env_map[idx] = np.arange(len(idx))

        def pick(c: Clusters) -> Clusters:
            owner = env_map[c.owner]
            keep = (owner >= 0).any(axis=1)
            return c.take(keep, owner[keep])

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
            owner = np.concatenate([np.where(c.owner >= 0, c.owner + o, -1)
                                    for c, o in zip(parts, env_off)])
            return Clusters(owner, *(np.concatenate([getattr(c, f.name) for c in parts])
                                     for f in fields(Clusters)[1:]))

        return replace(
            first,
            numbers=np.concatenate([e.numbers for e in items]),
            atom=np.concatenate([e.atom for e in items]),
            frame=np.concatenate([e.frame + o for e, o in zip(items, frame_off)]),
            pairs=join("pairs"), triplets=join("triplets"),
            n_frame_atoms=np.concatenate([e.n_frame_atoms for e in items]),
            volume=np.concatenate([np.full(e.n_frames, np.nan) if e.volume is None
                                   else e.volume for e in items]))


def _lattice_shifts(diff, cell, pbc) -> np.ndarray:
    """Integer ``S [P, 3]`` with ``diff = S @ cell`` (zero along non-periodic directions)."""
    shifts = np.zeros((len(diff), 3), dtype=np.int64)
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    if cell is not None and pbc.any() and len(diff):
        rows = np.asarray(cell, dtype=np.float64).reshape(3, 3)[pbc]
        sol = np.linalg.lstsq(rows.T, diff.T, rcond=None)[0].T
        shifts[:, pbc] = np.rint(sol).astype(np.int64)
    return shifts


def _unique_clusters(atoms: np.ndarray, shifts: np.ndarray):
    """Each physical cluster once: ``atoms [T, n]``, ``shifts [T, n, 3]`` (images) of the
    vertices; translations and vertex orderings of one cluster collapse to one row."""
    if len(atoms) == 0:
        return atoms, shifts
    n = atoms.shape[1]
    span = 2 * int(np.abs(shifts).max()) + 1
    base = 2 * span + 1
    best = None
    for v in range(n):  # candidate origin vertex; the smallest sorted code list wins
        s = shifts - shifts[:, v:v + 1] + span
        code = np.sort(((atoms * base + s[..., 0]) * base + s[..., 1]) * base + s[..., 2], axis=1)
        if best is None:
            best = code
            continue
        differ = code != best
        first = np.argmax(differ, axis=1)
        rows = np.arange(len(code))
        less = differ.any(axis=1) & (code[rows, first] < best[rows, first])
        best[less] = code[less]
    best = np.unique(best, axis=0)
    s = np.stack([(best // base**p) % base for p in (2, 1, 0)], axis=-1) - span
    return best // base**3, s


def environments(positions, cell, pbc, numbers, r_cut2: float, r_cut3: float,
                 atoms=None, cutoff: str = "quadratic") -> Environments:
    """The pairs and triplets that contain the chosen atoms of one frame.

    Args:
        positions: ``[n_atoms, 3]`` Å.  cell: ``[3, 3]`` Å rows, or None.  pbc: ``[3]`` bool.
        numbers: ``[n_atoms]`` atomic numbers.
        r_cut2, r_cut3: Å, pair and triplet cutoffs.
        atoms: indices of the central atoms (default: all, in order).
        cutoff: a key of ``CUTOFFS``.
    """
    if cutoff not in CUTOFFS:
        raise ValueError(f"unknown cutoff {cutoff!r}; choose one of {sorted(CUTOFFS)}")
    positions = np.asarray(positions, dtype=np.float64)
    numbers = np.asarray(numbers, dtype=np.int64).reshape(-1)
    n_atoms = len(numbers)
    atoms = np.arange(n_atoms) if atoms is None else np.asarray(atoms, dtype=np.int64)
    env_of = np.full(n_atoms, -1, dtype=np.int64)
    env_of[atoms] = np.arange(len(atoms))
    nl = neighbor_pairs(positions, cell, pbc, max(r_cut2, r_cut3))
    keep = env_of[nl.i] >= 0
    i, j, vec = nl.i[keep], nl.j[keep], nl.vec[keep]
    order = np.argsort(i, kind="stable")
    i, j, vec = i[order], j[order], vec[order]
    shift = _lattice_shifts(vec - (positions[j] - positions[i]), cell, pbc)
    dist = np.linalg.norm(vec, axis=1)
    zero = np.zeros_like(shift)

    p = dist < r_cut2
    pair_atoms, pair_shifts = _unique_clusters(np.stack([i[p], j[p]], axis=1),
                                               np.stack([zero[p], shift[p]], axis=1))

    # triplets: two neighbours (a < b in the list) of one atom, all distances < r_cut3
    t = np.flatnonzero(dist < r_cut3)
    it = i[t]
    count = np.searchsorted(it, it, side="right") - np.arange(len(t)) - 1
    a = np.repeat(np.arange(len(t)), count)
    b = a + 1 + np.arange(len(a)) - np.repeat(np.cumsum(count) - count, count)
    ta, tb = t[a], t[b]
    ok = np.linalg.norm(vec[tb] - vec[ta], axis=1) < r_cut3
    ta, tb = ta[ok], tb[ok]
    tri_atoms, tri_shifts = _unique_clusters(np.stack([i[ta], j[ta], j[tb]], axis=1),
                                             np.stack([zero[ta], shift[ta], shift[tb]], axis=1))

    box = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=np.float64).reshape(3, 3)
    periodic = cell is not None and bool(np.all(np.broadcast_to(np.asarray(pbc, bool), (3,))))
    volume = abs(float(np.linalg.det(box))) if periodic else np.nan

    def build(at, sh, rc):
        x = positions[at] + sh @ box  # [N, n, 3] vertex positions
        vecs = np.stack([x[:, b] - x[:, a] for a, b in EDGES[at.shape[1]]], axis=1)
        return _clusters(env_of[at], numbers[at], vecs, rc, cutoff)

    return Environments(
        numbers=numbers[atoms], atom=atoms, frame=np.zeros(len(atoms), dtype=np.int64),
        pairs=build(pair_atoms.reshape(-1, 2), pair_shifts.reshape(-1, 2, 3), r_cut2),
        triplets=build(tri_atoms.reshape(-1, 3), tri_shifts.reshape(-1, 3, 3), r_cut3),
        r_cut2=float(r_cut2), r_cut3=float(r_cut3), cutoff=cutoff,
        n_frame_atoms=np.array([n_atoms], dtype=np.int64), volume=np.array([volume]))


def atoms_environments(atoms, r_cut2: float, r_cut3: float, indices=None,
                       cutoff: str = "quadratic") -> Environments:
    """``environments`` of an ``ase.Atoms`` (duck-typed: positions, cell, pbc, numbers)."""
    cell = np.asarray(atoms.cell[:]) if atoms.pbc.any() else None
    return environments(atoms.positions, cell, atoms.pbc, atoms.numbers, r_cut2, r_cut3,
                        atoms=indices, cutoff=cutoff)
