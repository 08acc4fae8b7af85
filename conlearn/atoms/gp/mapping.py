"""The trained GP mean mapped onto splines: MD cost independent of the training set.

The posterior mean of a cluster energy is ``phi(c) = fcut(c) * m(r_c)`` with

    m(r) = sigma^2 sum_{c'} [a_c' G(r, r_c') + sum_e b_c'e dG/dr_c'e(r, r_c')]

a fixed function of the ``n_body(n_body - 1)/2`` edge lengths per species combination
(``G`` the permutation-summed Gaussian of ``kernels``, ``a = W^T alpha`` and
``b_e = V_e^T alpha`` the training functionals contracted with the GP weights).  The map
samples ``m`` on a uniform grid and interpolates it with cubic B-splines: 1-D per species
pair, 3-D per species triple (edges ``r_01, r_02, r_12`` with the vertices sorted by
species).  The cutoff ``fcut`` stays analytic, so energies, forces (``-grad``) and the
stress come from one smooth function and its exact derivatives.

The grid starts at ``r_min`` (Å): a frame with a shorter edge is outside the map
(:meth:`MappedGP.covers` is False) and callers fall back to the exact GP there.  A species
combination absent from the training set has a zero mean exactly (the kernel between
different species vanishes) and needs no table.  Only the mean is mapped; the variance
stays exact (see docs/otf.md for why and how often it is evaluated).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from .environment import EDGES, Clusters, Environments
from .kernels import _fields, functional
from .splines import UniformSpline

VERSION = 1
PAD = 3  # grid points beyond each end of the region that is evaluated


def _edge_id(n_body: int) -> dict[tuple[int, int], int]:
    return {tuple(sorted(e)): k for k, e in enumerate(EDGES[n_body])}


def _species_edge_perms(species: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Edge permutations ``q`` with ``m(r[q]) == m(r)``: atom permutations that keep the
    vertex species."""
    nb, eid = len(species), _edge_id(len(species))
    out = set()
    for p in itertools.permutations(range(nb)):
        if all(species[p[v]] == species[v] for v in range(nb)):
            out.add(tuple(eid[tuple(sorted((p[a], p[b])))] for a, b in EDGES[nb]))
    return sorted(out)


def canonical(c: Clusters) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices sorted by species: ``(species [N, nb], emap [N, m], dist [N, m])`` with
    ``dist[:, e] = c.dist[:, emap[:, e]]`` the edges in that order."""
    nb = c.n_body
    order = np.argsort(c.species, axis=1, kind="stable")
    eid = np.zeros((nb, nb), dtype=np.int64)
    for (a, b), k in _edge_id(nb).items():
        eid[a, b] = eid[b, a] = k
    emap = np.stack([eid[order[:, a], order[:, b]] for a, b in EDGES[nb]], axis=1)
    return (np.take_along_axis(c.species, order, 1), emap,
            np.take_along_axis(c.dist, emap, 1))


def _training_functional(gp, kernel):
    """Training clusters of ``kernel``'s body order with their contracted weights:
    ``(dist [N, m], species [N, nb], a [N], b [m, N])``."""
    parts = []
    for kind, envs in gp._sets.items():
        c = kernel.clusters(envs)
        if not len(c):
            continue
        W, V = functional(c, envs, kind)
        al = gp.alpha[gp._rows[kind]]
        b = np.stack([Ve.T @ al for Ve in V]) if V else np.zeros((c.dist.shape[1], len(c)))
        parts.append((c.dist, c.species, W.T @ al, b))
    if not parts:
        return None
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]), np.concatenate([p[3] for p in parts], 1))


def mean_function(gp, kernel, species: tuple[int, ...], points: np.ndarray,
                  chunk: int = 1 << 17) -> np.ndarray:
    """Cutoff-free posterior mean ``m`` of ``kernel``'s clusters with vertex ``species``
    at edge lengths ``points [P, m]`` (Å), eV; the part of ``gp``'s mean due to ``kernel``."""
    train = _training_functional(gp, kernel)
    out = np.zeros(len(points))
    if train is None:
        return out
    dist, spec, a, b = train
    zd = np.broadcast_to(np.asarray(species), (len(points), len(species)))
    single = len(np.unique(np.concatenate([spec.ravel(), list(species)]))) <= 1
    step = max(1, chunk // len(dist))
    for p0 in range(0, len(points), step):
        sl = slice(p0, p0 + step)
        f = _fields(dist, points[sl], spec, zd[sl], kernel.body, kernel.length,
                    True, False, False, single)
        out[sl] = f["G"][0] @ a + sum(f["Gc"][0, k] @ b[k] for k in range(len(b)))
    return kernel.sigma**2 * out


def _grid(lo: float, hi: float, h: float) -> np.ndarray:
    n = int(np.ceil((hi - lo) / h)) + 1 + 2 * PAD
    return lo - PAD * h + h * np.arange(n)


def _map_one(gp, kernel, species, lo, hi, h) -> UniformSpline:
    axis = _grid(lo, hi, h)
    m = len(EDGES[kernel.body])
    if m == 1:
        return UniformSpline.fit(axis[0], h, mean_function(gp, kernel, species, axis[:, None]))
    idx = np.stack(np.meshgrid(*[np.arange(len(axis))] * m, indexing="ij"), -1).reshape(-1, m)
    base = len(axis)
    codes = np.stack([(idx[:, list(q)] * base ** np.arange(m)[::-1]).sum(1)
                      for q in _species_edge_perms(species)])
    unique, inverse = np.unique(codes.min(0), return_inverse=True)  # one point per orbit
    rep = np.stack([(unique // base ** p) % base for p in range(m)[::-1]], 1)
    values = mean_function(gp, kernel, species, axis[rep])[inverse]
    return UniformSpline.fit(np.full(m, axis[0]), h, values.reshape((len(axis),) * m))


@dataclass
class MappedGP:
    """Spline tables of a GP's posterior mean (see the module docstring).

    Attributes:
        r_cut2, r_cut3: Å; cutoff: cutoff function name (as the GP's).
        r_min: ``{body: Å}`` shortest edge the tables cover.
        tables: ``{body: {species tuple: UniformSpline}}`` cutoff-free mean, eV.
    """

    r_cut2: float
    r_cut3: float
    cutoff: str
    r_min: dict[int, float]
    tables: dict[int, dict[tuple[int, ...], UniformSpline]] = field(default_factory=dict)

    def covers(self, envs: Environments) -> bool:
        """Whether every cluster of ``envs`` lies inside the tables."""
        return all(not len(c) or c.dist.min() >= self.r_min[b] - 1e-12
                   for b, c in ((2, envs.pairs), (3, envs.triplets)) if b in self.r_min)

    def cluster_energies(self, c: Clusters) -> tuple[np.ndarray, np.ndarray]:
        """``phi [N]`` (eV) and ``dphi/dr [N, m]`` (eV/Å, in ``c``'s edge order)."""
        g, dg = np.zeros(len(c)), np.zeros(c.dist.shape)
        if len(c) and self.tables.get(c.n_body):
            spec, emap, dist = canonical(c)
            code = (spec * 128 ** np.arange(c.n_body)).sum(1)
            grad = np.zeros(c.dist.shape)
            for key, spline in self.tables[c.n_body].items():
                sel = np.flatnonzero(code == (np.array(key) * 128 ** np.arange(c.n_body)).sum())
                if len(sel):
                    g[sel], grad[sel] = spline(dist[sel])
            np.put_along_axis(dg, emap, grad, 1)
        return c.fcut * g, c.dfcut * g[:, None] + c.fcut[:, None] * dg

    def predict(self, envs: Environments) -> dict:
        """Mean predictions of ``envs`` (must be covered).

        Returns ``forces [n, 3]`` eV/Å, ``local_energies [n]`` eV, ``energy [n_frames]`` eV
        and ``virial [3, 3]`` eV (``-sum_edges dphi/dr r_e (x) r_e / r``, all frames
        together; equal to ``-stress * volume`` when ``envs`` hold all atoms of one frame).
        """
        n = len(envs)
        forces, local = np.zeros((n, 3)), np.zeros(n)
        virial = np.zeros((3, 3))
        for c in (envs.pairs, envs.triplets):
            if not len(c):
                continue
            phi, dphi = self.cluster_energies(c)
            unit = c.vec / c.dist[..., None]
            virial -= np.einsum("ne,nei,nej->ij", dphi / c.dist, c.vec, c.vec)
            for v in range(c.n_body):
                own = c.owner[:, v] >= 0
                o = c.owner[own, v]
                # -dphi/dx_v: edge (a, b) has d r / d x_b = unit, d r / d x_a = -unit
                f = np.zeros((own.sum(), 3))
                for e, (a, b) in enumerate(EDGES[c.n_body]):
                    if v in (a, b):
                        f -= (1.0 if v == b else -1.0) * dphi[own, e, None] * unit[own, e]
                np.add.at(forces, o, f)
                local += np.bincount(o, phi[own], n) / c.n_body
        return {"forces": forces, "local_energies": local, "virial": virial,
                "energy": np.bincount(envs.frame, local, envs.n_frames)}

    def to_dict(self) -> dict:
        return {"version": VERSION, "r_cut2": self.r_cut2, "r_cut3": self.r_cut3,
                "cutoff": self.cutoff, "r_min": dict(self.r_min),
                "tables": {b: {k: s.to_dict() for k, s in t.items()}
                           for b, t in self.tables.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "MappedGP":
        if d.get("version") != VERSION:
            raise ValueError(f"mapped GP version {d.get('version')} is not {VERSION}")
        return cls(d["r_cut2"], d["r_cut3"], d["cutoff"], {int(b): float(r) for b, r in d["r_min"].items()},
                   {int(b): {tuple(k): UniformSpline.from_dict(s) for k, s in t.items()}
                    for b, t in d["tables"].items()})


def map_gp(gp, spacing: dict | None = None, r_min: float | dict | None = None) -> MappedGP:
    """Map ``gp``'s posterior mean onto splines.

    Args:
        gp: a trained :class:`~conlearn.atoms.gp.gp.GaussianProcess`.
        spacing: ``{body: grid spacing in units of that kernel's length scale}``; default
            ``{2: 0.05, 3: 0.12}`` (errors well below 1 meV/Å for smooth means, see the
            tests and benchmarks/otf_al.py).
        r_min: shortest edge mapped, Å (one value or per body); default: 0.75 x the
            shortest training edge of each body order.
    """
    spacing = {2: 0.05, 3: 0.12, **(spacing or {})}
    cuts = {2: gp.r_cut2, 3: gp.r_cut3}
    out = MappedGP(gp.r_cut2, gp.r_cut3, gp.cutoff, {})
    for kernel in gp.kernels:
        b = kernel.body
        train = _training_functional(gp, kernel)
        if train is None:
            continue
        dist, spec = train[0], train[1]
        lo = r_min.get(b) if isinstance(r_min, dict) else r_min
        lo = 0.75 * float(dist.min()) if lo is None else float(lo)
        out.r_min[b] = lo
        sorted_spec = np.sort(spec, axis=1)
        keys = sorted({tuple(int(z) for z in row) for row in np.unique(sorted_spec, axis=0)})
        h = spacing[b] * kernel.length
        out.tables[b] = {k: _map_one(gp, kernel, k, lo, cuts[b], h) for k in keys}
    return out


__all__ = ["MappedGP", "map_gp", "mean_function", "canonical"]
