"""Kill-and-resume helpers for workflow tests: run ``conlearn run`` in a subprocess, kill -9 it
once the manifest shows a given key, and count how often each key was recorded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable

from ..core.manifest import read_records


def recorded_key_counts(run: str | Path) -> Counter:
    """How many times each key was recorded in ``run/manifest.jsonl`` (a recomputed task
    appends its key again)."""
    lines = (Path(run) / "manifest.jsonl").read_text().splitlines()
    return Counter(json.loads(line)["key"] for line in lines if line.strip())


def run_killed_when(args: list[str], run: str | Path, recorded: Callable[[str], bool], *,
                    timeout_s: float = 120.0, root: str | Path | None = None) -> int:
    """Start ``python -m conlearn.cli *args`` (one thread), kill it with SIGKILL as soon as a key
    with ``recorded(key)`` is in ``run``'s manifest (or after ``timeout_s``, or when it ends by
    itself); return its exit status (``-SIGKILL`` when killed)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if root is not None:
        env["PYTHONPATH"] = str(root)
    p = subprocess.Popen([sys.executable, "-m", "conlearn.cli", *args], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    man, deadline = Path(run) / "manifest.jsonl", time.time() + timeout_s
    while time.time() < deadline and p.poll() is None:
        if man.exists() and any(recorded(k) for k, _ in read_records(man)):
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    return p.wait()
