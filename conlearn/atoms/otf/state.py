"""Explicit state of an on-the-fly run and its crash-safe storage.

Run directory::

    checkpoint.pkl      the last state: MD (step, positions, momenta, RNG), the model
                        (training set, hyperparameters, factorisation, map), the calls so
                        far and the lengths of the append-only files; written atomically
    manifest.jsonl      one line per reference call, fsync'ed as it happens (the label)
    labelled.extxyz     the labelled frames, appended and fsync'ed with each call
    trajectory.extxyz   MD frames every ``md.trajectory_every`` steps
    log.jsonl           one line per MD step (temperature, energy, max std at checks)

On resume the append-only files are cut back to the lengths in the checkpoint and MD goes
on from its state; a call made after the checkpoint is replayed from the manifest instead
of calling the reference again.  Nothing is inferred from which files exist.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..gp.io import load, save

VERSION = 1
APPEND_FILES = ("labelled.extxyz", "trajectory.extxyz", "log.jsonl")


@dataclass
class OTFState:
    """Where the run stands.

    Attributes:
        step: MD steps done.  positions ``[n, 3]`` Å, momenta ``[n, 3]`` amu Å/(ASE time)
        at that step; numbers ``[n]``; cell ``[3, 3]`` Å; pbc ``[3]``.
        rng: ``numpy.random.PCG64`` state of the Langevin noise.
        p_eps: the NPT barostat's momentum (None in NVT).
        checked: whether this step's uncertainty check is done.
        calls: one dict per reference call (step, max_std, threshold, atoms added, ...).
        offsets: byte lengths of the append-only files.
        cpu_s, wall_s: seconds spent in the loop so far (replayed steps count twice).
        timers: CPU seconds per activity (md, check, label, update, optimize, map, io).
    """

    step: int
    positions: np.ndarray
    momenta: np.ndarray
    numbers: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    rng: dict
    checked: bool = False
    calls: list = field(default_factory=list)
    offsets: dict = field(default_factory=dict)
    cpu_s: float = 0.0
    wall_s: float = 0.0
    timers: dict = field(default_factory=dict)
    p_eps: np.ndarray | None = None


def save_checkpoint(path: Path, state: OTFState, model: dict) -> None:
    save({"version": VERSION, "state": asdict(state), "model": model}, path)


def load_checkpoint(path: Path) -> tuple[OTFState, dict]:
    d = load(path)
    if d.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {d.get('version')!r} is not {VERSION}")
    return OTFState(**d["state"]), d["model"]


class AppendFile:
    """An append-only file cut back to ``offset`` bytes when opened (resume)."""

    def __init__(self, path: Path, offset: int = 0):
        self.path = path
        self.fh = open(path, "ab")
        if os.path.getsize(path) != offset:
            self.fh.truncate(offset)
        self.fh.seek(0, os.SEEK_END)

    def write(self, text: str, sync: bool = False) -> None:
        self.fh.write(text.encode())
        if sync:
            self.sync()

    def sync(self) -> int:
        """Flush to disk; returns the file length."""
        self.fh.flush()
        os.fsync(self.fh.fileno())
        return self.fh.tell()

    def close(self) -> None:
        self.fh.close()


class Outputs:
    """The append-only files of a run directory, as :class:`AppendFile` by name."""

    def __init__(self, run_dir: Path, offsets: dict):
        self.files = {name: AppendFile(run_dir / name, offsets.get(name, 0)) for name in APPEND_FILES}

    def __getitem__(self, name: str) -> AppendFile:
        return self.files[name]

    def sync(self) -> dict:
        return {name: f.sync() for name, f in self.files.items()}

    def close(self) -> None:
        for f in self.files.values():
            f.close()
