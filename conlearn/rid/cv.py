"""Collective variables: differentiable functions of atom positions (torch).

Units: positions nm; dihedrals and angles rad; distances nm. A dihedral is periodic with
range (-π, π]; differences of periodic CVs are wrapped with :func:`wrap`.

    specs = (CVSpec("phi", "dihedral", (4, 6, 8, 14)), CVSpec("psi", "dihedral", (6, 8, 14, 16)))
    s = cv_values(specs, positions)          # [n_frames, 2], differentiable in positions
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

N_ATOMS = {"dihedral": 4, "angle": 3, "distance": 2}
KINDS = (*N_ATOMS, "linear")


@dataclass(frozen=True)
class CVSpec:
    """One collective variable.

    name:    label ("phi").
    kind:    "dihedral" | "angle" | "distance" | "linear".
    atoms:   0-based atom indices (4 dihedral, 3 angle, 2 distance; none for linear).
    weights: "linear" only: s = Σ_k weights[k] · value(terms[k]).
    terms:   "linear" only: the CVs combined (the combination is never periodic).
    """

    name: str
    kind: str
    atoms: tuple[int, ...] = ()
    weights: tuple[float, ...] = ()
    terms: tuple["CVSpec", ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"CV {self.name!r}: unknown kind {self.kind!r}; allowed: {list(KINDS)}")
        if self.kind == "linear":
            if not self.terms or len(self.weights) != len(self.terms):
                raise ValueError(f"CV {self.name!r}: a linear CV needs as many weights as terms "
                                 f"(got {len(self.weights)} weights, {len(self.terms)} terms)")
        elif len(self.atoms) != N_ATOMS[self.kind]:
            raise ValueError(f"CV {self.name!r}: a {self.kind} needs {N_ATOMS[self.kind]} atoms, "
                             f"got {len(self.atoms)}: {list(self.atoms)}")

    @property
    def periodic(self) -> bool:
        """True for dihedrals (period 2π, range (-π, π])."""
        return self.kind == "dihedral"

    def all_atoms(self) -> tuple[int, ...]:
        """Every atom index this CV reads (the terms' for a linear CV)."""
        if self.kind == "linear":
            return tuple(a for t in self.terms for a in t.all_atoms())
        return self.atoms


def wrap(ds, periodic: Sequence[bool]):
    """``ds`` [..., d] with its periodic components wrapped to (-π, π] (numpy or torch)."""
    mask = np.asarray(periodic, dtype=bool)
    if not mask.any():
        return ds
    two_pi = 2.0 * math.pi
    if isinstance(ds, torch.Tensor):
        m = torch.as_tensor(mask, device=ds.device)
        return torch.where(m, ds - two_pi * torch.ceil((ds - math.pi) / two_pi), ds)
    ds = np.asarray(ds, dtype=float)
    return np.where(mask, ds - two_pi * np.ceil((ds - math.pi) / two_pi), ds)


def dihedral(p0: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor, p3: torch.Tensor) -> torch.Tensor:
    """Dihedral angle [n] in (-π, π] of the atoms p0-p1-p2-p3 ([n, 3] each); IUPAC sign
    (the convention of OpenMM, MDTraj and PLUMED)."""
    b1, b2, b3 = p1 - p0, p2 - p1, p3 - p2
    n1, n2 = torch.linalg.cross(b1, b2), torch.linalg.cross(b2, b3)
    y = torch.linalg.vector_norm(b2, dim=-1) * (b1 * n2).sum(-1)
    x = (n1 * n2).sum(-1)
    return torch.atan2(y, x)


def angle(p0: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor) -> torch.Tensor:
    """Angle [n] in [0, π] at p1 between p0 and p2 (atan2 form: finite gradients near 0 and π)."""
    a, b = p0 - p1, p2 - p1
    return torch.atan2(torch.linalg.vector_norm(torch.linalg.cross(a, b), dim=-1), (a * b).sum(-1))


def _value(spec: CVSpec, x: torch.Tensor) -> torch.Tensor:
    if spec.kind == "linear":
        return sum(w * _value(t, x) for w, t in zip(spec.weights, spec.terms))
    p = [x[:, i] for i in spec.atoms]
    if spec.kind == "dihedral":
        return dihedral(*p)
    if spec.kind == "angle":
        return angle(*p)
    return torch.linalg.vector_norm(p[1] - p[0], dim=-1)


def cv_values(specs: Sequence[CVSpec], positions: torch.Tensor) -> torch.Tensor:
    """CV values [n_frames, d] of ``positions`` [n_frames, n_atoms, 3] (nm); differentiable."""
    x = torch.as_tensor(positions)
    if x.ndim == 2:
        x = x.unsqueeze(0)
    return torch.stack([_value(s, x) for s in specs], dim=-1)


def periodic_of(specs: Sequence[CVSpec]) -> tuple[bool, ...]:
    return tuple(s.periodic for s in specs)


def check_atoms(specs: Sequence[CVSpec], n_atoms: int, where: str = "") -> None:
    """Raise ValueError naming the first CV that reads an atom index outside [0, n_atoms)
    (``where``: a prefix such as ``"config.yaml:12: cvs[0].atoms: "``)."""
    for s in specs:
        bad = [a for a in s.all_atoms() if not 0 <= a < n_atoms]
        if bad:
            raise ValueError(f"{where}CV {s.name!r} ({s.kind}) uses atom index {bad[0]}, but the system has "
                             f"{n_atoms} atoms (valid: 0..{n_atoms - 1})")
        if s.kind != "linear" and len(set(s.atoms)) != len(s.atoms):
            raise ValueError(f"{where}CV {s.name!r} ({s.kind}) repeats an atom: {list(s.atoms)}")
