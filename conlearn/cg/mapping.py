"""Linear atom -> bead mapping operators: mapped positions and mapped forces.

A :class:`Mapping` assigns every atom to exactly one bead. The bead position is a weighted
mean of its atoms' positions (weights normalised per bead: mass / bead mass for the centre of
mass, 1/n for the centre of geometry, 1 for one chosen atom and 0 for the others); the mapped
force is the sum of the forces on the bead's atoms (the MS-CG mapped force for these
operators). Units: nm, kJ/mol/nm, amu.

Errors name the atom or bead at fault (:class:`MappingError`, a ValueError).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.sparse as sp


class MappingError(ValueError):
    """A mapping that cannot be used (unassigned or twice-assigned atom, zero-mass bead, ...)."""


@dataclass(frozen=True, eq=False)
class Mapping:
    """One bead per group of atoms.

    Attributes:
        bead_of_atom: ``[n_atoms]`` int, the bead of every atom (0 .. n_beads-1, all used).
        weights: ``[n_atoms]`` float, position weights, summing to 1 over each bead.
        bead_masses: ``[n_beads]`` amu, the sum of the bead's atom masses.
    """

    bead_of_atom: np.ndarray
    weights: np.ndarray
    bead_masses: np.ndarray

    def __post_init__(self):
        b = np.asarray(self.bead_of_atom)
        if b.ndim != 1 or not np.issubdtype(b.dtype, np.integer):
            raise MappingError("bead_of_atom must be a 1-d integer array")
        n_beads = len(self.bead_masses)
        if b.size and (b.min() < 0 or b.max() >= n_beads):
            bad = int(np.flatnonzero((b < 0) | (b >= n_beads))[0])
            raise MappingError(f"atom {bad} is mapped to bead {int(b[bad])}, not in 0..{n_beads - 1}")
        counts = np.bincount(b, minlength=n_beads)
        if (counts == 0).any():
            raise MappingError(f"bead {int(np.flatnonzero(counts == 0)[0])} has no atoms")
        wsum = np.bincount(b, weights=self.weights, minlength=n_beads)
        if not np.allclose(wsum, 1.0, atol=1e-9):
            k = int(np.argmax(np.abs(wsum - 1.0)))
            raise MappingError(f"weights of bead {k} sum to {wsum[k]:.6g}, not 1")

    @property
    def n_atoms(self) -> int:
        return len(self.bead_of_atom)

    @property
    def n_beads(self) -> int:
        return len(self.bead_masses)

    def _matrix(self, weighted: bool) -> sp.csr_matrix:
        data = self.weights if weighted else np.ones(self.n_atoms)
        return sp.csr_matrix((data, (self.bead_of_atom, np.arange(self.n_atoms))),
                             shape=(self.n_beads, self.n_atoms))

    def _anchor_atom(self) -> np.ndarray:
        """``[n_beads]`` the first atom of every bead (the reference for making it whole)."""
        first = np.full(self.n_beads, self.n_atoms)
        np.minimum.at(first, self.bead_of_atom, np.arange(self.n_atoms))
        return first

    def _check(self, x: np.ndarray, what: str) -> tuple[np.ndarray, bool]:
        x = np.asarray(x, dtype=float)
        single = x.ndim == 2
        x = x[None] if single else x
        if x.ndim != 3 or x.shape[1:] != (self.n_atoms, 3):
            raise MappingError(f"{what} have shape {tuple(np.shape(x))}; the mapping expects "
                               f"[T, {self.n_atoms}, 3] (n_atoms of the topology)")
        return x, single

    def _apply(self, x: np.ndarray, weighted: bool) -> np.ndarray:
        t = x.shape[0]
        flat = x.transpose(1, 0, 2).reshape(self.n_atoms, t * 3)
        out = self._matrix(weighted) @ flat
        return np.asarray(out).reshape(self.n_beads, t, 3).transpose(1, 0, 2)

    def map_positions(self, x, box) -> np.ndarray:
        """Bead positions ``[T, n_beads, 3]`` nm from atom positions ``[T, n_atoms, 3]`` nm.

        Each bead is made whole first: its atoms are brought to the minimum image of the bead's
        first atom in the orthorhombic ``box`` (``[3]`` or ``[T, 3]`` nm), so a bead must span
        less than half the box. Bead positions follow the first atom's image (not wrapped), so
        continuous atom trajectories give continuous bead trajectories. A ``[n_atoms, 3]``
        input gives ``[n_beads, 3]``.
        """
        x, single = self._check(x, "positions")
        box = np.asarray(box, dtype=float)
        box = np.broadcast_to(box.reshape(-1, 1, 3) if box.ndim == 2 else box, (x.shape[0], 1, 3))
        anchor = x[:, self._anchor_atom()]                      # [T, n_beads, 3]
        d = x - anchor[:, self.bead_of_atom]
        d -= box * np.round(d / box)
        out = anchor + self._apply(d, weighted=True)
        return out[0] if single else out

    def to_dict(self) -> dict:
        """Plain lists for JSON (a run directory records its mapping)."""
        return {"bead_of_atom": self.bead_of_atom.tolist(), "weights": self.weights.tolist(),
                "bead_masses": self.bead_masses.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Mapping":
        return cls(np.asarray(d["bead_of_atom"], dtype=np.int64), np.asarray(d["weights"], dtype=float),
                   np.asarray(d["bead_masses"], dtype=float))

    def map_forces(self, f) -> np.ndarray:
        """Mapped forces ``[T, n_beads, 3]`` kJ/mol/nm: the sum over each bead's atoms."""
        f, single = self._check(f, "forces")
        out = self._apply(f, weighted=False)
        return out[0] if single else out


def _groups_to_mapping(groups: Sequence[Sequence[int]], masses, weight_of, where: str) -> Mapping:
    masses = np.asarray(masses, dtype=float)
    n_atoms = len(masses)
    bead_of_atom = np.full(n_atoms, -1)
    for k, group in enumerate(groups):
        if len(group) == 0:
            raise MappingError(f"{where}: bead {k} has no atoms")
        for a in group:
            a = int(a)
            if not 0 <= a < n_atoms:
                raise MappingError(f"{where}: bead {k} names atom {a}, but the topology has "
                                   f"{n_atoms} atoms (0..{n_atoms - 1})")
            if bead_of_atom[a] >= 0:
                raise MappingError(f"{where}: atom {a} is assigned twice (beads {bead_of_atom[a]} "
                                   f"and {k})")
            bead_of_atom[a] = k
    if (bead_of_atom < 0).any():
        missing = np.flatnonzero(bead_of_atom < 0)
        raise MappingError(f"{where}: atom {int(missing[0])} is not assigned to any bead "
                           f"({len(missing)} unassigned atoms)")
    bead_masses = np.bincount(bead_of_atom, weights=masses, minlength=len(groups))
    if (bead_masses <= 0).any():
        k = int(np.flatnonzero(bead_masses <= 0)[0])
        raise MappingError(f"{where}: bead {k} has zero mass (atoms {list(map(int, groups[k]))})")
    weights = np.zeros(n_atoms)
    for k, group in enumerate(groups):
        idx = np.asarray(group, dtype=int)
        weights[idx] = weight_of(k, idx, masses[idx])
    return Mapping(bead_of_atom, weights, bead_masses)


def _com(k, idx, m):
    return m / m.sum()


def _cog(k, idx, m):
    return np.full(len(idx), 1.0 / len(idx))


def mapping_from_groups(groups: Sequence[Sequence[int]], masses, kind: str = "com",
                        chosen: Sequence[int] | None = None, where: str = "mapping") -> Mapping:
    """A Mapping from explicit groups of atom indices (one list per bead).

    Args:
        groups: bead k's atoms (0-based indices into the topology).
        masses: ``[n_atoms]`` amu.
        kind: "com" (centre of mass), "cog" (centre of geometry) or "atom" (one chosen atom).
        chosen: for kind "atom", bead k's position is atom ``chosen[k]`` (one of its atoms).
        where: prefix of error messages (e.g. "cg.yaml:12 mapping.beads").
    Raises:
        MappingError naming the atom unassigned or assigned twice, or the bead of zero mass.
    """
    if kind == "com":
        return _groups_to_mapping(groups, masses, _com, where)
    if kind == "cog":
        return _groups_to_mapping(groups, masses, _cog, where)
    if kind != "atom":
        raise MappingError(f"{where}: kind {kind!r} is not one of com, cog, atom")
    if chosen is None or len(chosen) != len(groups):
        raise MappingError(f"{where}: kind 'atom' needs one chosen atom per bead")

    def one(k, idx, m):
        if int(chosen[k]) not in set(idx.tolist()):
            raise MappingError(f"{where}: bead {k}'s chosen atom {int(chosen[k])} is not one of "
                               f"its atoms {idx.tolist()}")
        return (idx == int(chosen[k])).astype(float)

    return _groups_to_mapping(groups, masses, one, where)


def _molecule_groups(molecule_of_atom) -> list[np.ndarray]:
    mol = np.asarray(molecule_of_atom)
    _, inverse = np.unique(mol, return_inverse=True)   # molecules in order of their ids
    order = np.argsort(inverse, kind="stable")
    return np.split(order, np.cumsum(np.bincount(inverse))[:-1])


def com_mapping(masses, molecule_of_atom) -> Mapping:
    """One bead per molecule at its centre of mass (beads in the order of molecule ids)."""
    return mapping_from_groups(_molecule_groups(molecule_of_atom), masses, "com")


def cog_mapping(masses, molecule_of_atom) -> Mapping:
    """One bead per molecule at its centre of geometry."""
    return mapping_from_groups(_molecule_groups(molecule_of_atom), masses, "cog")


def atom_mapping(masses, molecule_of_atom, atom_in_molecule: int) -> Mapping:
    """One bead per molecule at its ``atom_in_molecule``-th atom (0-based, topology order)."""
    groups = _molecule_groups(molecule_of_atom)
    for k, g in enumerate(groups):
        if not 0 <= atom_in_molecule < len(g):
            raise MappingError(f"molecule {k} has {len(g)} atoms; atom_in_molecule "
                               f"{atom_in_molecule} is not one of them")
    return mapping_from_groups(groups, masses, "atom", [g[atom_in_molecule] for g in groups])


def mapping_from_template(masses, molecule_of_atom, beads: Sequence[Sequence[int]],
                          kind: str = "com", chosen: Sequence[int] | None = None,
                          where: str = "mapping") -> Mapping:
    """The same beads in every molecule: ``beads[b]`` lists atom positions within a molecule.

    Bead ``m * len(beads) + b`` is bead b of molecule m; for kind "atom", ``chosen[b]`` is the
    chosen atom's position within the molecule. Errors name the molecule, bead and atom.
    """
    groups, picked = [], []
    for m, g in enumerate(_molecule_groups(molecule_of_atom)):
        for b, local in enumerate(beads):
            for a in local:
                if not 0 <= int(a) < len(g):
                    raise MappingError(f"{where}: bead {b} names atom {int(a)} of the molecule, "
                                       f"but molecule {m} has {len(g)} atoms")
            groups.append([int(g[int(a)]) for a in local])
            if chosen is not None:
                picked.append(int(g[int(chosen[b])]))
    return mapping_from_groups(groups, masses, kind, picked if chosen is not None else None,
                               where=where)


mapping_from_config = mapping_from_template
