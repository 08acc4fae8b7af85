"""Small deterministic structures for tests (numpy + ASE only).

Every builder takes a ``seed`` and returns a fresh :class:`ase.Atoms`; the same
arguments always give bit-identical positions. Positions and lengths are in Å.
Every builder checks that no two atoms are closer than ``min_dist`` (minimum
image convention in periodic directions) and raises ``ValueError`` otherwise,
so a test never silently runs on an overlapping, unphysical structure.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk, molecule
from ase.geometry import get_distances

__all__ = [
    "min_distance",
    "jittered_bulk",
    "jittered_fcc",
    "jittered_bcc",
    "triclinic_cell",
    "molecule_cluster",
    "water_box",
    "random_rotation",
]


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random proper rotation matrix, shape ``[3, 3]``, det = +1."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def min_distance(atoms: Atoms) -> float:
    """Smallest interatomic distance in Å (minimum image where periodic).

    Returns ``inf`` for fewer than two atoms. Periodic self-images are not
    counted, so use supercells whose lattice vectors exceed ``min_dist``.
    """
    if len(atoms) < 2:
        return float("inf")
    d = atoms.get_all_distances(mic=bool(atoms.pbc.any()))
    return float(d[np.triu_indices(len(atoms), k=1)].min())


def _checked(atoms: Atoms, min_dist: float) -> Atoms:
    d = min_distance(atoms)
    if d < min_dist:
        raise ValueError(
            f"structure {atoms.get_chemical_formula()} has atoms {d:.3f} Å apart "
            f"(< min_dist={min_dist} Å); lower the jitter or change the seed"
        )
    return atoms


def jittered_bulk(
    symbol: str = "Cu",
    crystal: str = "fcc",
    a: float | None = None,
    repeat: tuple[int, int, int] = (2, 2, 2),
    jitter: float = 0.05,
    seed: int = 0,
    cubic: bool = True,
    min_dist: float = 1.0,
) -> Atoms:
    """A periodic ``ase.build.bulk`` supercell with Gaussian position noise.

    Args:
        symbol, crystal, a: passed to :func:`ase.build.bulk` (``a`` in Å; None
            uses ASE's tabulated lattice constant).
        repeat: supercell repetitions of the (cubic if ``cubic``) cell.
        jitter: standard deviation of the displacement of each coordinate, Å.
        seed: seed of the displacement noise.
        min_dist: smallest allowed interatomic distance, Å.
    """
    atoms = bulk(symbol, crystal, a=a, cubic=cubic).repeat(repeat)
    rng = np.random.default_rng(seed)
    atoms.positions += rng.normal(scale=jitter, size=atoms.positions.shape)
    return _checked(atoms, min_dist)


def jittered_fcc(symbol: str = "Cu", **kwargs) -> Atoms:
    """:func:`jittered_bulk` for an fcc crystal (default Cu, 32 atoms)."""
    return jittered_bulk(symbol, "fcc", **kwargs)


def jittered_bcc(symbol: str = "Fe", **kwargs) -> Atoms:
    """:func:`jittered_bulk` for a bcc crystal (default Fe, 16 atoms)."""
    return jittered_bulk(symbol, "bcc", **kwargs)


def triclinic_cell(
    symbol: str = "Cu",
    a: float | None = None,
    repeat: tuple[int, int, int] = (2, 2, 2),
    shear: float = 0.08,
    jitter: float = 0.05,
    seed: int = 0,
    min_dist: float = 1.0,
) -> Atoms:
    """A generic triclinic periodic cell: strained fcc primitive supercell.

    The fcc primitive cell (60° angles) is repeated and deformed by
    ``I + S`` with ``S`` a random matrix of entries uniform in
    ``[-shear, shear]``, so all lengths and angles differ; positions follow the
    cell and get ``jitter`` Å of Gaussian noise. ``len = prod(repeat)``.
    """
    rng = np.random.default_rng(seed)
    atoms = bulk(symbol, "fcc", a=a).repeat(repeat)
    deform = np.eye(3) + rng.uniform(-shear, shear, size=(3, 3))
    atoms.set_cell(atoms.cell.array @ deform, scale_atoms=True)
    atoms.positions += rng.normal(scale=jitter, size=atoms.positions.shape)
    return _checked(atoms, min_dist)


def _place_molecules(template, centers, rng, cell, pbc, inter_dist, tries=200):
    """Randomly rotated copies of ``template`` at ``centers`` ([n, 3], Å).

    Each copy is re-rotated until all its atoms are at least ``inter_dist`` Å
    (minimum image where periodic) from the atoms of earlier copies.
    """
    ref = template.positions - template.get_center_of_mass()
    placed = np.zeros((0, 3))
    for c in centers:
        for _ in range(tries):
            trial = ref @ random_rotation(rng).T + c
            if len(placed) == 0:
                break
            _, d = get_distances(trial, placed, cell=cell, pbc=pbc)
            if d.min() >= inter_dist:
                break
        else:
            raise ValueError(f"could not place a molecule at {c} after {tries} tries")
        placed = np.vstack([placed, trial])
    numbers = np.tile(template.numbers, len(centers))
    return Atoms(numbers=numbers, positions=placed, cell=cell, pbc=bool(pbc))


def molecule_cluster(
    name: str = "H2O",
    n_molecules: int = 4,
    spacing: float = 3.0,
    vacuum: float = 5.0,
    seed: int = 0,
    inter_dist: float = 1.6,
    min_dist: float = 0.7,
) -> Atoms:
    """A non-periodic cluster of randomly rotated molecules (``pbc=False``).

    Molecules (from :func:`ase.build.molecule`) sit on a jittered cubic grid
    of ``spacing`` Å and are centred in a box with ``vacuum`` Å. Atoms of
    different molecules are at least ``inter_dist`` Å apart; ``min_dist`` (Å)
    applies to all pairs, intramolecular ones included.
    """
    rng = np.random.default_rng(seed)
    side = int(np.ceil(n_molecules ** (1 / 3)))
    grid = np.array(np.meshgrid(*[np.arange(side)] * 3, indexing="ij")).reshape(3, -1).T
    centers = grid[:n_molecules] * spacing + rng.normal(scale=0.1 * spacing, size=(n_molecules, 3))
    atoms = _place_molecules(molecule(name), centers, rng, None, None, inter_dist)
    atoms.center(vacuum=vacuum)
    return _checked(atoms, min_dist)


def water_box(
    n_molecules: int = 8,
    density: float = 1.0,
    seed: int = 0,
    inter_dist: float = 1.5,
    min_dist: float = 0.9,
) -> Atoms:
    """A periodic cubic box of randomly oriented water molecules.

    Args:
        n_molecules: number of H2O molecules (``3 * n_molecules`` atoms).
        density: mass density in g/cm^3 (sets the cubic box edge, Å).
        seed: seed for the centres (jittered grid) and orientations.
        inter_dist: smallest distance between atoms of different molecules,
            Å, minimum image.
        min_dist: smallest distance between any two atoms, Å (the
            intramolecular O-H bond is 0.97 Å).
    """
    rng = np.random.default_rng(seed)
    mass_g = n_molecules * 18.015 * 1.66053907e-24
    edge = (mass_g / density) ** (1 / 3) * 1e8  # cm -> Å
    side = int(np.ceil(n_molecules ** (1 / 3)))
    grid = np.array(np.meshgrid(*[np.arange(side)] * 3, indexing="ij")).reshape(3, -1).T
    step = edge / side
    centers = (grid[:n_molecules] + 0.5) * step
    centers += rng.uniform(-0.1, 0.1, size=centers.shape) * step
    cell = np.eye(3) * edge
    atoms = _place_molecules(molecule("H2O"), centers, rng, cell, True, inter_dist)
    return _checked(atoms, min_dist)
