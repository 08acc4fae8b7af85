"""Plain labelled data: a ``System`` is many frames of the same atoms (deepmd's unit of data).

Units: positions and cells in Å, energies in eV, forces in eV/Å, virials in eV.
Virial convention (deepmd's): ``virial = -volume * stress`` with ASE's stress sign, i.e.
``virial = -sum_pairs r_ij ⊗ dE/dr_ij``; it is symmetric for a rotation-invariant energy.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


class DataError(ValueError):
    """Bad input data: the message names the file or system and what is wrong."""


@dataclass
class System:
    """Frames that share one list of atoms.

    Attributes:
        type_map: element symbol of each type index, e.g. ``["O", "H"]``.
        types: ``[n_atoms]`` int, index into ``type_map`` per atom.
        coords: ``[n_frames, n_atoms, 3]`` Å.
        cells: ``[n_frames, 3, 3]`` Å, rows are lattice vectors; ``None`` when not periodic.
        pbc: ``[3]`` bool, periodic directions (all False when ``cells`` is None).
        energies: ``[n_frames]`` eV, or None.
        forces: ``[n_frames, n_atoms, 3]`` eV/Å, or None.
        virials: ``[n_frames, 3, 3]`` eV, or None.
        name: where the data came from (a path), used in error messages.
    """

    type_map: list[str]
    types: np.ndarray
    coords: np.ndarray
    cells: np.ndarray | None = None
    pbc: np.ndarray = field(default_factory=lambda: np.ones(3, dtype=bool))
    energies: np.ndarray | None = None
    forces: np.ndarray | None = None
    virials: np.ndarray | None = None
    name: str = "<memory>"

    def __post_init__(self) -> None:
        self.types = np.asarray(self.types, dtype=np.int64).reshape(-1)
        n = len(self.types)
        self.coords = np.asarray(self.coords, dtype=np.float64)
        if self.coords.ndim == 2:
            self.coords = self.coords.reshape(-1, n, 3) if n else self.coords
        if self.coords.ndim != 3 or self.coords.shape[1:] != (n, 3):
            raise DataError(
                f"{self.name}: coordinates have shape {self.coords.shape}, expected "
                f"[n_frames, {n}, 3] for {n} atoms"
            )
        nf = self.coords.shape[0]
        if self.cells is None:
            self.pbc = np.zeros(3, dtype=bool)
        else:
            self.cells = _shaped(self.cells, (nf, 3, 3), "cells", self.name)
            self.pbc = np.broadcast_to(np.asarray(self.pbc, dtype=bool), (3,)).copy()
        if self.energies is not None:
            self.energies = _shaped(self.energies, (nf,), "energies", self.name)
        if self.forces is not None:
            self.forces = _shaped(self.forces, (nf, n, 3), "forces", self.name)
        if self.virials is not None:
            self.virials = _shaped(self.virials, (nf, 3, 3), "virials", self.name)
        if n and (self.types.min() < 0 or self.types.max() >= len(self.type_map)):
            raise DataError(
                f"{self.name}: atom types range {self.types.min()}..{self.types.max()} "
                f"but type_map has {len(self.type_map)} entries {self.type_map}"
            )

    @property
    def n_frames(self) -> int:
        return self.coords.shape[0]

    @property
    def n_atoms(self) -> int:
        return len(self.types)

    @property
    def symbols(self) -> list[str]:
        """Element symbol per atom."""
        return [self.type_map[t] for t in self.types]

    def subset(self, idx) -> "System":
        """The frames ``idx`` (an index array or slice) as a new System."""
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return replace(
            self,
            coords=self.coords[idx],
            cells=pick(self.cells),
            energies=pick(self.energies),
            forces=pick(self.forces),
            virials=pick(self.virials),
        )


def _shaped(a, shape: tuple, what: str, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.size != int(np.prod(shape)):
        raise DataError(f"{name}: {what} have {a.size} values, expected shape {list(shape)}")
    return a.reshape(shape)
