"""One interface for every executor, and the in-process one for debugging.

An executor runs pure picklable callables somewhere and hands back
``concurrent.futures``-like futures (``result()``, ``exception()``, ``done()``,
``cancel()``, ``add_done_callback()``)::

    with LocalProcessExecutor(2) as ex:
        futures = [ex.submit(f, x, kind="label") for x in xs]
        for fut in ex.as_completed(futures):
            print(fut.result())

``kind`` names the resource class of the task ("train", "explore", "label"); executors
with per-kind resources (Dask on Slurm/PBS) route by it, the others ignore it. ``key`` is
a readable task name (shown on the Dask dashboard).
"""

from __future__ import annotations

import pickle
import queue
from concurrent.futures import Future
from typing import Any, Callable, Iterable, Iterator


def callback_as_completed(futures: Iterable[Any]) -> Iterator[Any]:
    """Yield futures as they finish, for any future type with ``add_done_callback``."""
    futures = list(futures)
    done: queue.SimpleQueue = queue.SimpleQueue()
    for fut in futures:
        fut.add_done_callback(done.put)
    for _ in futures:
        yield done.get()


class Executor:
    """Base class: ``submit`` and ``close`` to implement; ``as_completed``/``map`` shared.

    ``slots``: how many tasks can run at once (None: unknown); the loop reports its worker
    utilisation against it.
    """

    slots: int | None = None

    def submit(self, fn: Callable[..., Any], *args: Any, kind: str = "task", key: str | None = None) -> Any:
        raise NotImplementedError

    def as_completed(self, futures: Iterable[Any]) -> Iterator[Any]:
        return callback_as_completed(futures)

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], kind: str = "task") -> list[Any]:
        """``[fn(*args) for args in zip(*iterables)]`` run as tasks; results in input order."""
        futures = [self.submit(fn, *args, kind=kind) for args in zip(*iterables)]
        for _ in self.as_completed(futures):
            pass
        return [f.result() for f in futures]

    def close(self) -> None:
        pass

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _LazyFuture(Future):
    """A future that runs its call in the calling thread when first waited on."""

    def __init__(self, fn: Callable[..., Any], args: tuple):
        super().__init__()
        self._call = (fn, args)

    def run(self) -> None:
        if self._call is None or not self.set_running_or_notify_cancel():
            return
        fn, args = self._call
        self._call = None
        try:
            value = fn(*args)
        except BaseException as err:  # stored like a real executor would
            self.set_exception(err)
        else:
            self.set_result(value)

    def result(self, timeout: float | None = None) -> Any:
        self.run()
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self.run()
        return super().exception(timeout)


class InProcessExecutor(Executor):
    """Runs each task in this process, lazily, when its result is waited for.

    Tasks therefore run inside ``as_completed`` / ``result()``, in submission order, so the
    loop's timer counts them as task time, and pdb/print work as usual.
    check_pickle: round-trip every call through pickle first, to catch what would fail on
    a real cluster (closures, open handles, lambdas in components).
    """

    slots = 1

    def __init__(self, check_pickle: bool = False):
        self.check_pickle = check_pickle

    def submit(self, fn: Callable[..., Any], *args: Any, kind: str = "task", key: str | None = None) -> Future:
        if self.check_pickle:
            try:
                fn, args = pickle.loads(pickle.dumps((fn, args)))
            except Exception as err:
                raise TypeError(f"task {key or getattr(fn, '__name__', fn)!r} is not picklable: {err}") from err
        return _LazyFuture(fn, args)

    def as_completed(self, futures: Iterable[Any]) -> Iterator[Any]:
        for fut in futures:
            if isinstance(fut, _LazyFuture):
                fut.run()
            else:
                fut.exception()  # wait
            yield fut
