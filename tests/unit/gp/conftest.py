"""Small structures shared by the GP tests (``structures`` fixture)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk


def rattled_al(seed: int, stdev: float = 0.1, repeat: int = 2) -> Atoms:
    """Jittered cubic fcc Al, a = 4.05 Å (32 atoms for ``repeat=2``)."""
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(repeat)
    atoms.rattle(stdev, seed=seed)
    return atoms


def binary_cell(seed: int, symbols=("Al", "Cu", "Al", "Cu")) -> Atoms:
    """Four atoms in a 4.05 Å cube: with cutoffs above 4.05 Å atoms meet their own images."""
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.set_chemical_symbols(list(symbols))
    atoms.rattle(0.15, seed=seed)
    return atoms


def molecule(seed: int) -> Atoms:
    """A non-periodic 5-atom cluster of two species."""
    rng = np.random.default_rng(seed)
    pos = np.array([[0, 0, 0], [2.5, 0, 0], [0, 2.6, 0], [0, 0, 2.4], [2.2, 2.1, 0.3]], float)
    return Atoms("AlCuAlAlCu", positions=pos + rng.normal(scale=0.1, size=pos.shape))


@pytest.fixture
def structures() -> SimpleNamespace:
    """The structure factories above."""
    return SimpleNamespace(rattled_al=rattled_al, binary_cell=binary_cell, molecule=molecule)
