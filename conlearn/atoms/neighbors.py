"""Neighbour pairs within a cutoff, by vesin (a maintained, fast cell-list library).

A pair ``(i, j, shift)`` means atom ``j`` (moved by ``shift`` lattice vectors) lies within
the cutoff of atom ``i``; its vector is ``r_ij = x_j - x_i + shift @ cell`` in Å.
Lists are full (both ``(i, j)`` and ``(j, i)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import vesin

MIN_DISTANCE = 0.1  # Å; closer atoms are an input error, not physics


class NeighborError(ValueError):
    """A structure that cannot be described: overlapping atoms, too many neighbours, a bad cell."""


class SelOverflowError(NeighborError):
    """An atom has more neighbours of one type than the model's ``sel`` allows."""


@dataclass
class Pairs:
    """Pair list of one frame.

    i, j: ``[n_pairs]`` int64 atom indices; vec: ``[n_pairs, 3]`` float64 Å, ``r_ij``.
    """

    i: np.ndarray
    j: np.ndarray
    vec: np.ndarray


def _box(positions: np.ndarray, cell: np.ndarray | None, pbc: np.ndarray, cutoff: float):
    """A box vesin accepts: the cell, with non-periodic directions replaced if degenerate."""
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    if cell is None or not pbc.any():
        return np.zeros((3, 3)), np.zeros(3, dtype=bool)
    cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
    if abs(np.linalg.det(cell)) < 1e-8:
        box = cell.copy()
        for d in np.flatnonzero(~pbc):
            if np.linalg.norm(box[d]) < 1e-8:
                box[d, d] = 1.0  # unused direction: any length will do
        if abs(np.linalg.det(box)) < 1e-8:
            raise NeighborError(f"the cell {cell.tolist()} is degenerate in a periodic direction")
        cell = box
    return cell, pbc.copy()


def neighbor_pairs(positions, cell, pbc, cutoff: float, *, frame: int | str = 0) -> Pairs:
    """All pairs closer than ``cutoff`` Å.

    Args:
        positions: ``[n_atoms, 3]`` Å.  cell: ``[3, 3]`` Å rows, or None (not periodic).
        pbc: ``[3]`` bool.  frame: label used in error messages.
    Raises:
        NeighborError: two atoms closer than ``MIN_DISTANCE`` (names both and the frame).
    """
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    box, periodic = _box(positions, cell, pbc, cutoff)
    if not np.isfinite(positions).all():
        bad = int(np.flatnonzero(~np.isfinite(positions).all(axis=1))[0])
        raise NeighborError(f"frame {frame}: atom {bad} has a non-finite position {positions[bad]}")
    nl = vesin.NeighborList(cutoff=float(cutoff), full_list=True)
    i, j, shifts, vec = nl.compute(points=positions, box=box, periodic=periodic, quantities="ijSD")
    i = i.astype(np.int64)
    j = j.astype(np.int64)
    if len(i):
        d2 = np.einsum("pk,pk->p", vec, vec)  # squared lengths: a third of np.linalg.norm's time
        k = int(np.argmin(d2))
        if d2[k] < MIN_DISTANCE**2:
            raise NeighborError(
                f"frame {frame}: atoms {i[k]} and {j[k]} overlap (distance {np.sqrt(d2[k]):.3g} Å < "
                f"{MIN_DISTANCE} Å)"
            )
    return Pairs(i=i, j=j, vec=np.asarray(vec, dtype=np.float64))


def check_sel(pairs: Pairs, types: np.ndarray, sel: list[int], type_map: list[str],
              *, frame: int | str = 0) -> np.ndarray:
    """Neighbour counts ``[n_atoms, n_types]``; raises SelOverflowError above ``sel``."""
    n_types = len(sel)
    counts = np.bincount(pairs.i * n_types + types[pairs.j],
                         minlength=len(types) * n_types).reshape(len(types), n_types)
    over = counts > np.asarray(sel)[None, :]
    if over.any():
        a, t = map(int, np.argwhere(over)[0])
        raise SelOverflowError(
            f"frame {frame}: atom {a} ({type_map[types[a]]}) has {counts[a, t]} "
            f"{type_map[t]} neighbours within the cutoff but sel[{t}] = {sel[t]}; "
            f"raise sel (largest count in this frame: {counts[:, t].max()})"
        )
    return counts
