"""Local worker processes (``concurrent.futures.ProcessPoolExecutor``, spawn context).

Spawned workers start from a fresh interpreter (no fork of a process holding threads,
CUDA contexts or open sockets). Before any task is unpickled, each worker limits the
thread pools of the numeric libraries to ``threads_per_worker`` (OMP/MKL/OpenBLAS
environment variables, read by torch and numpy when they are first imported, and
``torch.set_num_threads`` should torch already be loaded), so that N workers use N cores.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import sys
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any, Callable, Iterable, Iterator

from .base import Executor

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS")


def limit_threads(n: int = 1) -> None:
    """Limit this process's numeric thread pools to ``n`` threads (worker initializer)."""
    for var in THREAD_VARS:
        os.environ[var] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)


def worker_info(probe_torch: bool = False) -> dict:
    """Where a task runs and with how many threads (submit it to check an executor).

    probe_torch: import torch (if installed) to report its thread count.
    """
    info = {"host": socket.gethostname(), "pid": os.getpid(),
            **{var: os.environ.get(var) for var in THREAD_VARS[:3]}}
    if probe_torch:
        try:
            import torch
        except ImportError:
            torch = None
        info["torch_threads"] = torch.get_num_threads() if torch is not None else None
    return info


class LocalProcessExecutor(Executor):
    """``max_workers`` spawned processes on this machine (default: one per core).

    threads_per_worker: numeric threads each worker may use (default 1).
    """

    def __init__(self, max_workers: int | None = None, threads_per_worker: int = 1):
        self.max_workers = max_workers or os.cpu_count() or 1
        self.threads_per_worker = threads_per_worker
        self._pool = ProcessPoolExecutor(max_workers=self.max_workers,
                                         mp_context=multiprocessing.get_context("spawn"),
                                         initializer=limit_threads, initargs=(threads_per_worker,))

    @property
    def slots(self) -> int:
        return self.max_workers

    def submit(self, fn: Callable[..., Any], *args: Any, kind: str = "task", key: str | None = None) -> Future:
        return self._pool.submit(fn, *args)

    def as_completed(self, futures: Iterable[Any]) -> Iterator[Any]:
        return as_completed(list(futures))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __repr__(self) -> str:
        return f"LocalProcessExecutor(max_workers={self.max_workers}, threads_per_worker={self.threads_per_worker})"
