"""Bead potentials: the protocol the CG MD engine drives, a tabulated pair potential, sums.

Units: nm, kJ/mol, kJ/mol/nm. Tensors are torch float64 on the CPU.

Every potential has ``cutoff`` (nm) and ``energy_forces(R, box, pairs=None) -> (E, F)`` with
``R`` ``[N, 3]``, ``box`` ``[3]`` (orthorhombic), ``E`` a scalar tensor (kJ/mol) and ``F``
``[N, 3]`` (kJ/mol/nm, ``-dE/dR``). ``pairs`` (:class:`conlearn.cg.neighbors.Pairs`) may hold
pairs beyond the cutoff (a Verlet list with a skin); potentials must ignore those. Without
``pairs`` a potential builds its own list.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from scipy.interpolate import CubicSpline

from conlearn.cg.kernels import pair_table_kernel
from conlearn.cg.neighbors import Pairs, build_pairs

DTYPE = torch.float64


@runtime_checkable
class BeadPotential(Protocol):
    cutoff: float

    def energy_forces(self, R: torch.Tensor, box: torch.Tensor, pairs: Pairs | None = None):
        """``(E scalar kJ/mol, F [N, 3] kJ/mol/nm)`` of bead positions ``R`` ``[N, 3]`` nm."""


def as_tensor(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=float) if not isinstance(x, torch.Tensor) else x,
                           dtype=DTYPE)


def _accepts_pairs(pot) -> bool:
    try:
        return "pairs" in inspect.signature(pot.energy_forces).parameters
    except (TypeError, ValueError):
        return False


def evaluate(pot, R, box, pairs: Pairs | None = None):
    """``pot.energy_forces`` with ``pairs`` passed only to potentials that take them."""
    R, box = as_tensor(R), as_tensor(box)
    if pairs is not None and _accepts_pairs(pot):
        return pot.energy_forces(R, box, pairs=pairs)
    return pot.energy_forces(R, box)


class PairTable:
    """A tabulated pair potential ``U(r)``: a cubic Hermite spline through ``(r_k, U_k, -F_k)``.

    ``F = -dU/dr`` of the interpolant exactly, so energies and forces are consistent. Below the
    first grid point U continues linearly (constant repulsive force); at and beyond ``cutoff``
    U = 0 (the table should reach U(cutoff) = 0 for a continuous energy).

    Args:
        r: ``[K]`` increasing grid, nm.
        U: ``[K]`` kJ/mol.
        F: ``[K]`` pair force ``-dU/dr`` kJ/mol/nm; default: from a cubic spline through U.
        cutoff: nm, at most ``r[-1]``; default ``r[-1]``.
    """

    format = "conlearn.cg.PairTable/1"

    def __init__(self, r, U, F=None, cutoff: float | None = None):
        r, U = np.asarray(r, dtype=float), np.asarray(U, dtype=float)
        if r.ndim != 1 or r.shape != U.shape or len(r) < 2 or not (np.diff(r) > 0).all():
            raise ValueError("PairTable needs an increasing grid r [K >= 2] and U of the same shape")
        if F is None:
            F = -CubicSpline(r, U)(r, 1)
        F = np.asarray(F, dtype=float)
        if F.shape != r.shape or not (np.isfinite(U).all() and np.isfinite(F).all()):
            raise ValueError("PairTable: F must match r and U and all values must be finite")
        self.cutoff = float(r[-1] if cutoff is None else cutoff)
        if not r[0] < self.cutoff <= r[-1] + 1e-12:
            raise ValueError(f"PairTable cutoff {self.cutoff} outside the grid [{r[0]}, {r[-1]}]")
        self.r, self.U, self.F = r, U, F
        self._coef, self._h = _hermite_coefficients(r, U, -F)
        self._coef_np = self._coef.numpy()
        self._r0 = float(r[0])
        self._uniform = bool(np.allclose(np.diff(r), r[1] - r[0], rtol=1e-9, atol=0.0))
        self._rt = as_tensor(r)

    def pair_energy(self, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(U(d), dU/dr(d))`` for distances ``d`` ``[P]`` nm (float64 tensors)."""
        n = len(self.r) - 1
        if self._uniform:
            x = (d - self._r0) * (1.0 / self._h[0])
            k = torch.clamp(x.floor(), 0, n - 1).long()
            t = x - k
        else:
            k = torch.clamp(torch.searchsorted(self._rt, d, right=True) - 1, 0, n - 1)
            t = (d - self._rt[k]) / self._h[k]
        c = self._coef[k]                                   # [P, 4]: u = c0 + c1 t + c2 t^2 + c3 t^3
        below = t < 0
        any_below = bool(below.any())
        tt = torch.clamp(t, 0.0, 1.0) if any_below else torch.clamp(t, max=1.0)
        h = self._h[k]
        u = c[:, 0] + tt * (c[:, 1] + tt * (c[:, 2] + tt * c[:, 3]))
        du = (c[:, 1] + tt * (2 * c[:, 2] + tt * 3 * c[:, 3])) / h
        if any_below:                                       # linear continuation below r[0]
            u = torch.where(below, u + du * t * h, u)
        keep = (d < self.cutoff).to(d.dtype)
        return u * keep, du * keep

    def __call__(self, r) -> tuple[np.ndarray, np.ndarray]:
        """``(U, F = -dU/dr)`` as numpy arrays at distances ``r`` nm (for plots and tests)."""
        u, du = self.pair_energy(as_tensor(np.atleast_1d(r)))
        return u.numpy(), -du.numpy()

    def energy_forces(self, R, box, pairs: Pairs | None = None, fused: bool = True):
        """``(E, F)``; ``fused``: the numba kernel when available (uniform grid, no autograd)."""
        R, box = as_tensor(R), as_tensor(box)
        if pairs is None:
            pairs = build_pairs(R, box, self.cutoff)
        if fused and self._uniform and pair_table_kernel is not None and not R.requires_grad:
            if not hasattr(pairs, "_np"):
                pairs._np = (pairs.i.numpy(), pairs.j.numpy(), pairs.shift.numpy())
            E, F = pair_table_kernel(R.numpy(), *pairs._np, self._r0, 1.0 / float(self._h[0]),
                                     self._coef_np, self.cutoff)
            return torch.tensor(E, dtype=DTYPE), torch.from_numpy(F)
        vec = pairs.vectors(R)
        d = torch.linalg.norm(vec, dim=1)
        u, du = self.pair_energy(d)
        g = (du / torch.clamp(d, min=1e-12)).unsqueeze(1) * vec   # dU/d(vec) [P, 3]
        F = torch.zeros_like(R).index_add_(0, pairs.i, g).index_add_(0, pairs.j, -g)
        return u.sum(), F

    def virial(self, R, box, pairs: Pairs | None = None) -> float:
        """Pair virial ``-sum_p r_p dU/dr(r_p)`` kJ/mol (for the pressure ``(2K + W) / 3V``)."""
        R, box = as_tensor(R), as_tensor(box)
        pairs = build_pairs(R, box, self.cutoff) if pairs is None else pairs
        d = torch.linalg.norm(pairs.vectors(R), dim=1)
        return float(-(d * self.pair_energy(d)[1]).sum())

    def save(self, path: str | Path) -> Path:
        """Write ``.npz`` (arrays + a JSON header; no pickle)."""
        path = Path(path)
        header = json.dumps({"format": self.format, "cutoff": self.cutoff})
        with open(path, "wb") as fh:
            np.savez(fh, r=self.r, U=self.U, F=self.F, header=np.array(header))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "PairTable":
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["header"]))
            if header.get("format") != cls.format:
                raise ValueError(f"{path}: not a {cls.format} file (format {header.get('format')!r})")
            return cls(z["r"], z["U"], z["F"], header["cutoff"])


def _hermite_coefficients(r: np.ndarray, U: np.ndarray, dU: np.ndarray):
    """Per interval ``[K-1, 4]`` power coefficients in ``t = (r - r_k) / h_k`` and ``h`` ``[K-1]``."""
    h = np.diff(r)
    u0, u1, m0, m1 = U[:-1], U[1:], dU[:-1] * h, dU[1:] * h
    coef = np.stack([u0, m0, 3 * (u1 - u0) - 2 * m0 - m1, 2 * (u0 - u1) + m0 + m1], axis=1)
    return as_tensor(coef), as_tensor(h)


class SumPotential:
    """The sum of bead potentials (baseline + ML correction: Delta); one pair list for all."""

    def __init__(self, *pots):
        if not pots:
            raise ValueError("sum_potentials needs at least one potential")
        self.terms = list(pots)
        self.cutoff = max(float(p.cutoff) for p in pots)

    def energy_forces(self, R, box, pairs: Pairs | None = None):
        R, box = as_tensor(R), as_tensor(box)
        if pairs is None:
            pairs = build_pairs(R, box, self.cutoff)
        E, F = 0.0, torch.zeros_like(R)
        for p in self.terms:
            e, f = evaluate(p, R, box, pairs)
            E, F = E + e, F + f
        return E, F


def sum_potentials(*pots) -> SumPotential:
    """``U = sum_k U_k``: e.g. ``sum_potentials(pair_table, ml_model)``."""
    return SumPotential(*pots)


def lj_table(epsilon: float, sigma: float, cutoff: float, r_min: float | None = None,
             n: int = 400) -> PairTable:
    """A shifted-force Lennard-Jones PairTable (U and F zero at the cutoff), for tests."""
    r = np.linspace(0.8 * sigma if r_min is None else r_min, cutoff, n)
    sr6 = (sigma / r) ** 6
    U = 4 * epsilon * (sr6 * sr6 - sr6)
    F = 24 * epsilon * (2 * sr6 * sr6 - sr6) / r
    return PairTable(r, U - U[-1] + (r - cutoff) * F[-1], F - F[-1], cutoff)
