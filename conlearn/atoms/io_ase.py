"""Anything ASE reads or writes (extxyz, traj, vasp, ...) <-> :class:`System`.

Labels travel as calculator results: ``energy`` eV, ``forces`` [n_atoms, 3] eV/Å and
``stress`` eV/Å^3 (ASE's sign), which maps to our virial as ``virial = -stress * volume``
[3, 3] eV. Only results already present are read: nothing is ever computed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.stress import voigt_6_to_full_3x3_stress

from .stress import stress_to_virial, virial_to_stress
from .system import DataError, System


def read_ase(path: str | os.PathLike, index=":", format: str | None = None) -> list[System]:
    """Read frames with ``ase.io.read`` and group them into Systems.

    Frames with the same ordered chemical symbols and pbc form one System (in order of first
    appearance); its ``type_map`` is the sorted unique symbols. Names are ``path`` or, when
    the file holds several groups, ``path#k``.
    """
    import ase.io

    f = Path(path)
    if not f.exists():
        raise DataError(f"{f}: file does not exist")
    try:
        frames = ase.io.read(f, index=index, format=format)
    except Exception as e:  # ASE raises many kinds for unreadable files
        raise DataError(f"{f}: ASE cannot read it ({type(e).__name__}: {e})") from None
    if isinstance(frames, Atoms):
        frames = [frames]
    if not frames:
        raise DataError(f"{f}: no frames (index={index!r})")
    groups: dict[tuple, list[Atoms]] = {}
    for a in frames:
        groups.setdefault((tuple(a.get_chemical_symbols()), tuple(bool(p) for p in a.pbc)), []).append(a)
    names = [str(f)] if len(groups) == 1 else [f"{f}#{k}" for k in range(len(groups))]
    return [atoms_to_system(g, name=nm) for g, nm in zip(groups.values(), names)]


def write_ase(systems: System | list[System], path: str | os.PathLike,
              format: str | None = None) -> None:
    """Write every frame of ``systems`` with ``ase.io.write`` (energy, forces, stress attached).

    A virial becomes a stress only for a cell of non-zero volume; extxyz keeps all values to
    1e-8 (positions and forces are printed with 8 decimals).
    """
    import ase.io

    if isinstance(systems, System):
        systems = [systems]
    frames = [system_to_atoms(s, i) for s in systems for i in range(s.n_frames)]
    ase.io.write(Path(path), frames, format=format)


def system_to_atoms(system: System, i: int) -> Atoms:
    """Frame ``i`` of ``system`` as ``ase.Atoms`` with a SinglePointCalculator of its labels."""
    cell = None if system.cells is None else system.cells[i]
    atoms = Atoms(symbols=system.symbols, positions=system.coords[i], cell=cell, pbc=system.pbc)
    results = {}
    if system.energies is not None:
        results["energy"] = float(system.energies[i])
    if system.forces is not None:
        results["forces"] = system.forces[i].copy()
    if system.virials is not None and cell is not None:
        volume = abs(np.linalg.det(cell))
        if volume > 0:
            results["stress"] = virial_to_stress(system.virials[i], volume)
    if results:
        atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def atoms_to_system(frames: list[Atoms], type_map: list[str] | None = None,
                    name: str = "<ase>") -> System:
    """Frames that share symbols and pbc as one System.

    Args:
        frames: ``ase.Atoms`` objects, same ordered symbols and pbc.
        type_map: element per type index; default the sorted unique symbols.
        name: used in error messages.
    Cells are kept when any direction is periodic. A label (energy, forces, stress) must be
    on every frame or on none.
    """
    if isinstance(frames, Atoms):
        frames = [frames]
    if not frames:
        raise DataError(f"{name}: no frames")
    symbols = frames[0].get_chemical_symbols()
    pbc = np.asarray(frames[0].pbc, dtype=bool)
    for k, a in enumerate(frames):
        if a.get_chemical_symbols() != symbols or not np.array_equal(a.pbc, pbc):
            raise DataError(f"{name}: frame {k} has other atoms or pbc than frame 0")
    type_map = sorted(set(symbols)) if type_map is None else list(type_map)
    index = {el: t for t, el in enumerate(type_map)}
    unknown = sorted(set(symbols) - set(index))
    if unknown:
        raise DataError(f"{name}: element '{unknown[0]}' is not in type_map {type_map}")
    periodic = bool(pbc.any())
    energies, forces, stresses = _labels(frames, name)
    cells = np.stack([a.cell.array for a in frames]) if periodic else None
    virials = None
    if stresses is not None and periodic:
        volumes = np.abs(np.linalg.det(cells))
        virials = stress_to_virial(stresses, volumes)
    return System(
        type_map=type_map,
        types=np.array([index[s] for s in symbols], dtype=np.int64),
        coords=np.stack([a.positions for a in frames]),
        cells=cells,
        pbc=pbc,
        energies=energies,
        forces=forces,
        virials=virials,
        name=name,
    )


def _labels(frames: list[Atoms], name: str):
    """energies [nf] eV, forces [nf, n, 3] eV/Å, stresses [nf, 3, 3] eV/Å^3 (each or None)."""
    found = {"energy": [], "forces": [], "stress": []}
    for a in frames:
        res = a.calc.results if a.calc is not None else {}
        for key in found:
            v = res.get(key)
            if v is None and key == "energy":
                v = res.get("free_energy")
            found[key].append(v)
    out = []
    for key, vals in found.items():
        have = [v is not None for v in vals]
        if not any(have):
            out.append(None)
            continue
        if not all(have):
            k = have.index(False) if have[0] else have.index(True)
            raise DataError(f"{name}: frame {k} {'lacks' if have[0] else 'has'} {key} "
                            f"but frame 0 {'has' if have[0] else 'does not'} (label on every frame or none)")
        if key == "stress":
            vals = [voigt_6_to_full_3x3_stress(v) if np.size(v) == 6 else np.reshape(v, (3, 3))
                    for v in vals]
        arr = np.array([np.asarray(v, dtype=np.float64) for v in vals])
        bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)
        if bad.any():
            raise DataError(f"{name}: non-finite {key} (NaN/inf) in frame {int(np.argmax(bad))}")
        out.append(arr)
    return tuple(out)
