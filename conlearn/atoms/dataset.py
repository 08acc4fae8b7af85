"""Collections of Systems: load from paths, per-element energy shift, train/valid split,
mapping a system's elements onto a model's type indices."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np

from .io_ase import read_ase
from .io_deepmd import read_deepmd
from .system import DataError, System

_GLOB_CHARS = set("*?[")


def load_systems(paths: str | os.PathLike | list, base_dir: str | os.PathLike | None = None) -> list[System]:
    """Read every system named by ``paths`` (one path or a list), in the given order.

    Each path is one of: a deepmd system directory (has ``type.raw``); a directory holding
    deepmd systems at any depth (sorted); a glob pattern (its sorted matches, each handled
    as here); a file ASE can read. Relative paths are taken against ``base_dir`` (default:
    the working directory). A missing path or an empty glob is a DataError naming it.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    base = Path(base_dir) if base_dir is not None else None
    out: list[System] = []
    for p in paths:
        p = Path(p).expanduser()
        if base is not None and not p.is_absolute():
            p = base / p
        if _GLOB_CHARS & set(str(p)) and not p.exists():
            matches = sorted(glob.glob(str(p), recursive=True))
            if not matches:
                raise DataError(f"{p}: no file or directory matches this pattern")
            for m in matches:
                out.extend(_load_one(Path(m)))
        else:
            out.extend(_load_one(p))
    return out


def _load_one(p: Path) -> list[System]:
    if not p.exists():
        raise DataError(f"{p}: data path does not exist")
    if p.is_file():
        return read_ase(p)
    if (p / "type.raw").is_file():
        return [read_deepmd(p)]
    found = sorted(t.parent for t in p.rglob("type.raw") if t.is_file())
    if not found:
        raise DataError(f"{p}: no deepmd systems (directories with type.raw) under it")
    return [read_deepmd(d) for d in found]


def remap_types(system: System, type_map: list[str]) -> np.ndarray:
    """Model type index per atom, ``[n_atoms]`` int64, matching elements by symbol.

    Only elements that atoms use must be in ``type_map``; an unknown one is a DataError.
    """
    index = {el: t for t, el in enumerate(type_map)}
    used = np.unique(system.types)
    lut = np.full(len(system.type_map), -1, dtype=np.int64)
    for t in used:
        el = system.type_map[t]
        if el not in index:
            raise DataError(
                f"element '{el}' in {system.name} is not in the model's type_map {list(type_map)}"
            )
        lut[t] = index[el]
    return lut[system.types]


def element_counts(system: System, type_map: list[str]) -> np.ndarray:
    """Atoms of each model type in ``system``, ``[len(type_map)]`` int64."""
    return np.bincount(remap_types(system, type_map), minlength=len(type_map))


def energy_shift(systems: list[System], type_map: list[str], rcond: float | None = 1e-3) -> np.ndarray:
    """Per-element reference energies ``[len(type_map)]`` eV/atom.

    Least squares of frame energy on element counts, ``E_f ≈ sum_t n_ft e_t`` (numpy lstsq
    with ``rcond``, so collinear compositions give the minimum-norm solution, as deepmd-kit).
    Elements absent from the data get 0; systems without energies are skipped.
    """
    rows, energies = [], []
    for s in systems:
        if s.energies is None:
            continue
        rows.append(np.broadcast_to(element_counts(s, type_map), (s.n_frames, len(type_map))))
        energies.append(s.energies)
    if not rows:
        raise DataError(f"no energies in {[s.name for s in systems]} to fit an energy shift")
    counts = np.concatenate(rows).astype(np.float64)
    e = np.concatenate(energies)
    present = counts.any(axis=0)
    shift = np.zeros(len(type_map))
    shift[present] = np.linalg.lstsq(counts[:, present], e, rcond=rcond)[0]
    return shift


def split(systems: list[System], by: str = "frame", fraction: float = 0.1,
          seed: int = 0) -> tuple[list[System], list[System]]:
    """Split into ``(train, valid)``, reproducibly for a given ``seed``.

    ``by="system"``: ``round(fraction * n_systems)`` whole systems (at least one, at most all
    but one) go to validation. ``by="frame"``: ``round(fraction * n_frames)`` random frames
    of each system go to validation (kept in their original order). Empty parts are dropped.
    """
    if by not in ("frame", "system"):
        raise ValueError(f"split by must be 'frame' or 'system', got {by!r}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    if by == "system":
        if len(systems) < 2:
            raise DataError(f"cannot split {len(systems)} system(s) by system; use by='frame'")
        n_valid = min(max(1, round(fraction * len(systems))), len(systems) - 1)
        valid_idx = set(rng.permutation(len(systems))[:n_valid].tolist())
        return ([s for k, s in enumerate(systems) if k not in valid_idx],
                [s for k, s in enumerate(systems) if k in valid_idx])
    train, valid = [], []
    for s in systems:
        pick = np.zeros(s.n_frames, dtype=bool)
        pick[rng.permutation(s.n_frames)[:round(fraction * s.n_frames)]] = True
        if (~pick).any():
            train.append(s.subset(np.flatnonzero(~pick)))
        if pick.any():
            valid.append(s.subset(np.flatnonzero(pick)))
    return train, valid
