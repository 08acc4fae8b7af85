"""The run directory's manifest: which tasks have finished, and where their outputs are.

Layout of a run directory::

    manifest.jsonl          one JSON line per finished task, appended, fsync'ed per line;
                            a small output (pickle < ``inline_bytes``) is stored in its line
    outputs/<key>.pkl       a larger output (pickled record), written atomically
    work/<key>/             the task's private working directory (see TaskContext.workdir)
    manifest.lock           held (flock) by the one process driving the run

A task counts as done exactly when its line is in ``manifest.jsonl``. An output file is
written (temp file + fsync + ``os.replace`` + directory fsync) *before* the line is
appended, so a recorded task always has its output; inlining small outputs makes the common
case one write and one fsync per task. A kill at any moment loses at most the tasks that
were running. A torn last line (kill in the middle of a write) is ignored and cut off on open.
Nothing is ever inferred from which folders exist.

Outputs are read back with :mod:`conlearn.core.safepickle` (:func:`record_value`): plain data
and conlearn's dataclasses only, so resuming or reporting a run never runs code named in
its files; a refused or damaged output is an error naming the file (or manifest line).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import pickle
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from . import safepickle

_KEY = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
VERSION = 1


class ManifestError(RuntimeError):
    """A manifest that cannot be trusted (corrupt line before the end, run dir in use)."""


@dataclass(frozen=True)
class Record:
    """One finished task: its key, output file (relative to the run dir) and metadata.

    ``data`` holds the pickled output when it was small enough to be stored inline.
    """

    key: str
    output: str | None
    meta: Mapping[str, Any] = field(default_factory=dict)
    time: float = 0.0
    data: bytes | None = field(default=None, repr=False)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def check_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key.split("/"):
        raise ValueError(f"bad task key {key!r}: use path-like words of [A-Za-z0-9_.-] joined by '/'")
    return key


class Manifest:
    """Append-only record of finished tasks in ``run_dir``; use as a context manager.

    ``get(key)`` / ``key in manifest`` ask whether a task is done, ``load(key)`` returns its
    recorded output, ``record(key, value, meta)`` stores a new one durably.
    """

    def __init__(self, run_dir: str | Path, inline_bytes: int = 16384):
        self.run_dir = Path(run_dir).resolve()
        self.inline_bytes = inline_bytes
        self.path = self.run_dir / "manifest.jsonl"
        self._records: dict[str, Record] = {}
        self._fd: int | None = None
        self._lock_fd: int | None = None

    # -- opening -------------------------------------------------------------------------
    def open(self) -> "Manifest":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.run_dir / "manifest.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise ManifestError(f"run directory {self.run_dir} is in use by another process") from None
        self._records = dict(read_records(self.path, repair=True))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return self

    def close(self) -> None:
        for attr in ("_fd", "_lock_fd"):
            fd = getattr(self, attr)
            if fd is not None:
                os.close(fd)
                setattr(self, attr, None)

    def __enter__(self) -> "Manifest":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- queries -------------------------------------------------------------------------
    def __contains__(self, key: str) -> bool:
        return key in self._records

    def __len__(self) -> int:
        return len(self._records)

    def get(self, key: str) -> Record | None:
        return self._records.get(key)

    def records(self, prefix: str = "") -> Iterator[Record]:
        """Records whose key starts with ``prefix``, in the order they were written."""
        return (r for k, r in self._records.items() if k.startswith(prefix))

    def load(self, key: str) -> Any:
        """The recorded output of ``key`` (KeyError when the task is not recorded)."""
        return record_value(self.run_dir, self._records[key])

    def workdir(self, key: str) -> Path:
        return self.run_dir / "work" / check_key(key)

    # -- writing -------------------------------------------------------------------------
    def record(self, key: str, value: Any = None, meta: Mapping[str, Any] | None = None) -> Record:
        """Store ``value`` atomically, then append the record line (fsync'ed)."""
        if self._fd is None:
            raise ManifestError("manifest is not open (use `with Manifest(run_dir) as m:`)")
        output, blob = None, None
        if value is not None:
            blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            if len(blob) > self.inline_bytes:
                output = f"outputs/{check_key(key)}.pkl"
                atomic_write_bytes(self.run_dir / output, blob)
                blob = None
        rec = Record(key=check_key(key), output=output, meta=dict(meta or {}), time=time.time(), data=blob)
        entry = {"v": VERSION, "key": rec.key, "output": rec.output, "meta": rec.meta, "time": rec.time}
        if blob is not None:
            entry["data"] = base64.b64encode(blob).decode()
        line = json.dumps(entry, default=_jsonable, allow_nan=True) + "\n"
        data = line.encode()
        while data:  # O_APPEND: one write per line unless the kernel splits a huge one
            data = data[os.write(self._fd, data):]
        os.fsync(self._fd)
        self._records[key] = rec
        return rec


def record_value(run_dir: str | Path, rec: Record) -> Any:
    """The recorded output of ``rec`` (inline or in its output file), unpickled without
    running code (:func:`conlearn.core.safepickle.loads`); None when it has none.

    A global outside the allowlist raises :class:`~conlearn.core.safepickle.UntrustedFileError`
    and a damaged output a ValueError, both naming the file (``manifest.jsonl``, record key,
    for an inline output).
    """
    run_dir = Path(run_dir)
    if rec.data is not None:
        return safepickle.loads(rec.data, f"{run_dir / 'manifest.jsonl'} (record {rec.key!r})")
    if rec.output is None:
        return None
    path = run_dir / rec.output
    if not path.is_file():
        raise FileNotFoundError(f"{path}: output of the recorded task {rec.key!r} is missing")
    return safepickle.load_file(path)


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy scalars/arrays in metadata
        return obj.tolist()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return repr(obj)


def _parse(line: bytes) -> Record | None:
    try:
        d = json.loads(line)
        data = base64.b64decode(d["data"]) if d.get("data") is not None else None
        return Record(key=d["key"], output=d.get("output"), meta=d.get("meta", {}), time=d.get("time", 0.0),
                      data=data)
    except (ValueError, KeyError, TypeError):  # binascii.Error is a ValueError
        return None


def read_records(path: str | Path, repair: bool = False) -> Iterator[tuple[str, Record]]:
    """Parse a manifest file; a torn last line is skipped (and cut off when ``repair``).

    A corrupt line followed by good ones is not a torn write: that raises ManifestError.
    """
    path = Path(path)
    if not path.exists():
        return iter(())
    raw = path.read_bytes()
    chunks = raw.split(b"\n")
    out: list[tuple[str, Record]] = []
    pos = good_end = 0
    for i, line in enumerate(chunks):
        end = pos + len(line) + (1 if i < len(chunks) - 1 else 0)
        if line.strip():
            rec = _parse(line)
            if rec is None:
                if any(c.strip() for c in chunks[i + 1:]):
                    raise ManifestError(f"{path}: line {i + 1} is corrupt and is not the last line")
                break
            out.append((rec.key, rec))
            good_end = end
        pos = end
    if repair and (good_end != len(raw) or not raw[:good_end].endswith(b"\n")) and raw:
        with open(path, "r+b") as fh:
            fh.truncate(good_end)
            if good_end and raw[good_end - 1:good_end] != b"\n":
                fh.seek(good_end)
                fh.write(b"\n")
            fh.flush()
            os.fsync(fh.fileno())
    return iter(out)
