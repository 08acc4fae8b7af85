"""Frames as plain dicts: the payload atomistic tasks pass between loop stages.

A frame is a picklable, JSON-friendly-after-``tolist`` dict of numpy arrays::

    numbers   [n]      int, atomic numbers
    positions [n, 3]   Å
    cell      [3, 3]   Å, rows are lattice vectors (zeros when not periodic)
    pbc       [3]      bool
    energy    float    eV            (labelled frames)
    forces    [n, 3]   eV/Å          (labelled frames)
    virial    [3, 3]   eV            (labelled periodic frames; = -stress · volume)
    meta      dict     free-form provenance (condition, step, deviation, ...)
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from .stress import virial_to_stress
from .system import DataError, System


def atoms_to_frame(atoms: Atoms, meta: dict | None = None) -> dict:
    """An unlabelled frame from ASE Atoms."""
    return {
        "numbers": np.asarray(atoms.numbers, dtype=np.int64).copy(),
        "positions": np.asarray(atoms.positions, dtype=np.float64).copy(),
        "cell": np.asarray(atoms.cell.array, dtype=np.float64).copy(),
        "pbc": np.asarray(atoms.pbc, dtype=bool).copy(),
        "meta": dict(meta or {}),
    }


def frame_to_atoms(frame: dict) -> Atoms:
    """ASE Atoms from a frame (labels are not attached)."""
    return Atoms(numbers=frame["numbers"], positions=frame["positions"], cell=frame["cell"], pbc=frame["pbc"])


def is_finite(frame: dict) -> bool:
    """True when every label present is finite."""
    return all(np.all(np.isfinite(frame[k])) for k in ("energy", "forces", "virial") if frame.get(k) is not None)


def frame_stress(frame: dict) -> np.ndarray | None:
    """A labelled periodic frame's stress ``[3, 3]`` eV/Å^3 (ASE's sign, ``-virial / volume``);
    None without a virial or when the frame is not periodic in 3D."""
    if frame.get("virial") is None or not np.all(frame["pbc"]):
        return None
    volume = abs(float(np.linalg.det(np.asarray(frame["cell"], dtype=np.float64))))
    return virial_to_stress(frame["virial"], volume)


def frames_to_systems(frames: list[dict], type_map: list[str], name: str = "frames") -> list[System]:
    """Group labelled frames by (ordered atoms, pbc) into Systems (deepmd's unit of training data)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for f in frames:
        groups[(tuple(int(z) for z in f["numbers"]), tuple(bool(p) for p in f["pbc"]))].append(f)
    index = {s: k for k, s in enumerate(type_map)}
    systems = []
    for (numbers, pbc), fs in groups.items():
        symbols = [chemical_symbols[z] for z in numbers]
        unknown = sorted(set(symbols) - set(index))
        if unknown:
            raise ValueError(f"element(s) {unknown} in {name} are not in the type_map {type_map}")
        has_v = all(f.get("virial") is not None for f in fs) and all(pbc)
        systems.append(System(
            type_map=list(type_map),
            types=np.array([index[s] for s in symbols]),
            coords=np.stack([f["positions"] for f in fs]),
            cells=np.stack([f["cell"] for f in fs]) if any(pbc) else None,
            pbc=np.array(pbc),
            energies=np.array([f["energy"] for f in fs]),
            forces=np.stack([f["forces"] for f in fs]),
            virials=np.stack([f["virial"] for f in fs]) if has_v else None,
            name=f"{name}[{len(systems)}: {len(numbers)} atoms]",
        ))
    return systems


def system_to_frames(s: System, type_map: list[str], what: str = "the type_map", source=None) -> list[dict]:
    """The labelled frames of a System, in order: the inverse of :func:`frames_to_systems`.

    A System without energies or forces, or with an element outside ``type_map``, is a
    :class:`~conlearn.atoms.system.DataError` naming it (``what`` names the type map,
    ``source`` the file, for the hint when a deepmd system has no ``type_map.raw``).
    """
    from ase.data import atomic_numbers

    for label, value in (("energy", s.energies), ("forces", s.forces)):
        if value is None:
            raise DataError(f"{s.name}: frames without {label}; labelled frames need energy and forces")
    used = [s.type_map[t] for t in np.unique(s.types)]
    unknown = [el for el in used if el not in type_map]
    if unknown:
        hint = f" ({source} has no type_map.raw)" if any(el not in atomic_numbers for el in unknown) else ""
        raise DataError(f"{s.name}: element(s) {unknown} not in {what} {type_map}{hint}")
    numbers = np.array([atomic_numbers[el] for el in s.symbols], dtype=np.int64)
    out = []
    for i in range(s.n_frames):
        f = {"numbers": numbers.copy(), "positions": s.coords[i].copy(),
             "cell": s.cells[i].copy() if s.cells is not None else np.zeros((3, 3)),
             "pbc": np.asarray(s.pbc, dtype=bool).copy(),
             "energy": float(s.energies[i]), "forces": s.forces[i].copy()}
        if s.virials is not None:
            f["virial"] = s.virials[i].copy()
        out.append(f)
    return out
