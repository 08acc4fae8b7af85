"""A cheap bead oracle: the mW one-bead water model (Molinero & Moore, JPCB 113, 4008, 2009).

mW is Stillinger-Weber with water's parameters: a pair term plus a three-body term that
favours tetrahedral angles. A pair potential cannot represent it, so it is the synthetic
test bed of Δ-learning: its forces are the "mapped forces" (exact, no unresolved degrees
of freedom, so the restrained mean force of a configuration is just the force there).

Units: nm, kJ/mol, kJ/mol/nm. Every interaction vanishes smoothly (all derivatives) at
``a σ`` = 0.43065 nm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import vesin

KCAL = 4.184


@dataclass(frozen=True)
class MW:
    """Stillinger-Weber parameters (defaults: mW water); ``epsilon`` kJ/mol, ``sigma`` nm."""

    epsilon: float = 6.189 * KCAL
    sigma: float = 0.23925
    a: float = 1.8
    lam: float = 23.15
    gamma: float = 1.2
    cos0: float = -1.0 / 3.0
    A: float = 7.049556277
    B: float = 0.6022245584
    three_body: float = 1.0  # scale of the three-body term (0: pair only)
    mass: float = 18.015  # amu per bead

    @property
    def cutoff(self) -> float:
        return self.a * self.sigma

    def energy_forces(self, R, box):
        """BeadPotential: ``R [N, 3]`` nm, ``box [3]`` nm -> (E kJ/mol, F [N, 3] kJ/mol/nm)."""
        R = torch.as_tensor(R, dtype=torch.float64).detach().requires_grad_(True)
        box_t = torch.as_tensor(box, dtype=torch.float64)
        i, j, shift = _pairs(R.detach().numpy(), box_t.numpy(), self.cutoff)
        vec = R[j] - R[i] + torch.as_tensor(shift, dtype=torch.float64) * box_t
        r = vec.norm(dim=-1)
        s, rc = self.sigma, self.cutoff
        phi2 = self.A * self.epsilon * (self.B * (s / r) ** 4 - 1.0) * torch.exp(s / (r - rc))
        energy = 0.5 * phi2.sum()
        if self.three_body:
            a, b = _triplets(i)
            cos = (vec[a] * vec[b]).sum(-1) / (r[a] * r[b])
            g = torch.exp(self.gamma * s / (r - rc))
            energy = energy + self.three_body * self.lam * self.epsilon * ((cos - self.cos0) ** 2 * g[a] * g[b]).sum()
        (grad,) = torch.autograd.grad(energy, R)
        return energy.detach(), -grad


def _pairs(R: np.ndarray, box: np.ndarray, cutoff: float):
    """Full pair list ``(i, j, shift [P, 3])`` within ``cutoff`` (vesin), sorted by i."""
    nl = vesin.NeighborList(cutoff=float(cutoff), full_list=True)
    i, j, S = nl.compute(points=np.ascontiguousarray(R), box=np.diag(box), periodic=True, quantities="ijS")
    order = np.lexsort((j, i))
    return torch.as_tensor(i[order].astype(np.int64)), torch.as_tensor(j[order].astype(np.int64)), S[order]


def _triplets(i: torch.Tensor):
    """Index pairs ``(a, b)``, ``a < b``, of pairs sharing their centre (``i`` sorted)."""
    i = i.numpy()
    starts = np.searchsorted(i, np.arange(i.max() + 1 if len(i) else 0))
    ends = np.searchsorted(i, np.arange(i.max() + 1 if len(i) else 0), side="right")
    a, b = [], []
    for s, e in zip(starts, ends):
        if e - s > 1:
            u, v = np.triu_indices(e - s, 1)
            a.append(u + s)
            b.append(v + s)
    if not a:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    return torch.as_tensor(np.concatenate(a)), torch.as_tensor(np.concatenate(b))


def lattice_liquid(n: int, density: float = 33.4, jitter: float = 0.02, seed: int = 0):
    """A jittered simple-cubic start ``(R [n, 3] nm, box [3] nm)`` of ``n`` beads at ``density``
    beads/nm³ (the first ``n`` sites of the smallest cubic lattice holding them)."""
    L = (n / density) ** (1.0 / 3.0)
    side = int(np.ceil(n ** (1.0 / 3.0) - 1e-9))
    grid = (np.indices((side,) * 3).reshape(3, -1).T[:n] + 0.5) * (L / side)
    rng = np.random.default_rng(seed)
    return (grid + rng.normal(0, jitter, grid.shape)) % L, np.full(3, L)
