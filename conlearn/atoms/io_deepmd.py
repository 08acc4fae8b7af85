"""deepmd-kit's npy system directory <-> :class:`System`.

Layout of one system directory::

    type.raw         one int per atom (whitespace separated)
    type_map.raw     optional, one element symbol per type (else "Type_0", "Type_1", ...)
    nopbc            optional empty file: not periodic (box.npy is then ignored)
    set.NNN/         frames, concatenated in sorted order
        coord.npy    [nf, 3 n_atoms] Å
        box.npy      [nf, 9] Å, rows of the cell (absent in every set => not periodic)
        energy.npy   [nf] eV                    (optional)
        force.npy    [nf, 3 n_atoms] eV/Å      (optional)
        virial.npy   [nf, 9] eV                 (optional)

An optional file must be in every set or in none. Every problem is a :class:`DataError`
that names the file. The layout cannot express partial periodicity: a cell read from
``box.npy`` is periodic in all three directions.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from .system import DataError, System

# label file stem -> System attribute
_LABELS = {"energy": "energies", "force": "forces", "virial": "virials"}


def read_deepmd(path: str | os.PathLike) -> System:
    """Read one deepmd-kit npy system directory (all its ``set.*``) into a float64 System."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: deepmd system directory does not exist")
    types = _read_types(root)
    type_map = _read_type_map(root, types)
    n = len(types)
    sets = sorted(p for p in root.glob("set.*") if p.is_dir())
    if not sets:
        raise DataError(f"{root}: no set.* directories in the deepmd system")
    periodic = not (root / "nopbc").exists() and _present(sets, "box") is not None
    labels = {stem: _present(sets, stem) for stem in _LABELS}

    coords, cells, values = [], [], {stem: [] for stem in _LABELS}
    for s in sets:
        c = _load(s / "coord.npy", 3 * n, None, n)
        nf = c.shape[0]
        coords.append(c.reshape(nf, n, 3))
        if periodic:
            cells.append(_load(s / "box.npy", 9, nf, n).reshape(nf, 3, 3))
        for stem, present in labels.items():
            if present:
                cols = {"energy": 1, "force": 3 * n, "virial": 9}[stem]
                values[stem].append(_load(s / f"{stem}.npy", cols, nf, n, labels=True))

    cat = lambda arrs: np.concatenate(arrs) if arrs else None  # noqa: E731
    nf_tot = sum(len(c) for c in coords)
    return System(
        type_map=type_map,
        types=types,
        coords=np.concatenate(coords),
        cells=cat(cells) if periodic else None,
        pbc=np.ones(3, dtype=bool) if periodic else np.zeros(3, dtype=bool),
        energies=None if not labels["energy"] else cat(values["energy"]).reshape(nf_tot),
        forces=None if not labels["force"] else cat(values["force"]).reshape(nf_tot, n, 3),
        virials=None if not labels["virial"] else cat(values["virial"]).reshape(nf_tot, 3, 3),
        name=str(root),
    )


def write_deepmd(system: System, path: str | os.PathLike, set_size: int = 5000,
                 overwrite: bool = False) -> Path:
    """Write ``system`` as a deepmd-kit npy directory with ``set_size`` frames per set.

    The directory is built beside ``path`` and renamed into place, so a reader never sees a
    half-written system. An existing non-empty ``path`` is an error unless ``overwrite``.
    A system without cells gets a ``nopbc`` file. Returns the directory.
    """
    if set_size < 1:
        raise ValueError(f"set_size must be >= 1, got {set_size}")
    root = Path(path)
    if root.exists() and any(root.iterdir()) and not overwrite:
        raise DataError(f"{root}: exists and is not empty (pass overwrite=True to replace it)")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    np.savetxt(tmp / "type.raw", system.types, fmt="%d")
    (tmp / "type_map.raw").write_text("".join(f"{t}\n" for t in system.type_map))
    if system.cells is None:
        (tmp / "nopbc").touch()
    nf, n = system.n_frames, system.n_atoms
    arrays = {"coord": system.coords.reshape(nf, 3 * n)}
    if system.cells is not None:
        arrays["box"] = system.cells.reshape(nf, 9)
    for stem, attr in _LABELS.items():
        a = getattr(system, attr)
        if a is not None:
            arrays[stem] = a.reshape(nf) if stem == "energy" else a.reshape(nf, -1)
    for k, start in enumerate(range(0, nf, set_size)):
        d = tmp / f"set.{k:03d}"
        d.mkdir()
        for stem, a in arrays.items():
            np.save(d / f"{stem}.npy", a[start:start + set_size])
    if root.exists():
        shutil.rmtree(root)
    os.replace(tmp, root)
    return root


def _read_types(root: Path) -> np.ndarray:
    f = root / "type.raw"
    if not f.is_file():
        raise DataError(f"{f}: missing (every deepmd system needs one int per atom in type.raw)")
    try:
        types = np.loadtxt(f, dtype=np.int64, ndmin=1).reshape(-1)
    except ValueError as e:
        raise DataError(f"{f}: not a list of integers ({e})") from None
    if types.size == 0:
        raise DataError(f"{f}: empty, expected one int per atom")
    if types.min() < 0:
        raise DataError(f"{f}: negative atom type {types.min()}")
    return types


def _read_type_map(root: Path, types: np.ndarray) -> list[str]:
    f = root / "type_map.raw"
    if not f.is_file():
        return [f"Type_{i}" for i in range(int(types.max()) + 1)]
    names = f.read_text().split()
    if int(types.max()) >= len(names):
        raise DataError(
            f"{root / 'type.raw'}: atom type {types.max()} but {f} names only {len(names)} types {names}"
        )
    return names


def _present(sets: list[Path], stem: str) -> bool | None:
    """True if ``stem.npy`` is in every set, None if in none; an error naming a set otherwise."""
    have = [(s / f"{stem}.npy").is_file() for s in sets]
    if all(have):
        return True
    if not any(have):
        return None
    missing = [s for s, h in zip(sets, have) if not h]
    found = [s for s, h in zip(sets, have) if h]
    raise DataError(
        f"{missing[0] / f'{stem}.npy'}: missing, but {found[0] / f'{stem}.npy'} exists "
        f"(a label must be in every set or in none)"
    )


def _load(f: Path, cols: int, nf: int | None, n_atoms: int, labels: bool = False) -> np.ndarray:
    """``f`` as float64 ``[nf, cols]``; ``nf`` None takes it from the file (coord.npy)."""
    if not f.is_file():
        raise DataError(f"{f}: missing")
    try:
        a = np.load(f)
    except (OSError, ValueError) as e:
        raise DataError(f"{f}: cannot be read as .npy ({e})") from None
    if nf is None:
        nf = a.shape[0] if a.ndim >= 2 else (1 if a.ndim == 1 and a.size == cols else -1)
    ok = a.ndim >= 1 and nf >= 0 and a.size == nf * cols and (a.ndim == 1 or a.shape[0] == nf)
    if not ok:
        want = f"[{nf}]" if cols == 1 else f"[{'n_frames' if nf < 0 else nf}, {cols}]"
        raise DataError(
            f"{f}: shape {list(a.shape)}, expected {want} for {n_atoms} atoms"
            + ("" if nf < 0 else f" and {nf} frames")
        )
    a = np.asarray(a, dtype=np.float64).reshape(nf, cols)
    bad = ~np.isfinite(a)
    if bad.any():
        frame, col = (int(i) for i in np.argwhere(bad)[0])
        kind = "label" if labels else "value"
        atom = f", atom {col // 3} ({'xyz'[col % 3]})" if cols == 3 * n_atoms else ""
        raise DataError(f"{f}: {int(bad.sum())} non-finite {kind}s (NaN/inf), first in frame {frame}{atom}")
    return a
