"""Dask executor: a scheduler address, a ``distributed.LocalCluster``, or jobqueue clusters.

One ``DaskExecutor`` may hold several clients, one per task kind, e.g. a GPU
``SLURMCluster`` for "train" and a CPU one for "explore" and "label" (see
:func:`conlearn.exec.resources.build_executor`). Kinds without their own client go to the
default one. Tasks are submitted with ``pure=False``: every submission runs.

``submit`` returns a :class:`DaskTaskFuture`, a ``concurrent.futures.Future`` over the Dask
future (``.dask_future``). ``as_completed`` fetches results concurrently on the client's
event loop as tasks finish (``distributed.as_completed(with_results=True)``), so the
caller's ``result()`` is then free; a blocking ``result()`` outside it fetches by itself.

Worker processes get one numeric thread per Dask thread: Dask's nanny already sets
OMP/MKL/OpenBLAS_NUM_THREADS=1 before spawning a worker, and a worker plugin applies
:func:`conlearn.exec.local.limit_threads` (torch included) on workers of other processes.
"""

from __future__ import annotations

import queue
import threading
import uuid
from concurrent.futures import CancelledError, Future
from typing import Any, Callable, Iterable, Iterator, Mapping

import distributed
from distributed.diagnostics.plugin import WorkerPlugin

from .base import Executor
from .local import limit_threads


class ThreadLimits(WorkerPlugin):
    """Worker plugin: limit numeric thread pools to ``n`` threads in each worker process."""

    name = "conlearn-thread-limits"

    def __init__(self, n: int = 1):
        self.n = n

    def setup(self, worker: Any) -> None:
        limit_threads(self.n)


class DaskTaskFuture(Future):
    """A ``concurrent.futures.Future`` resolved from a Dask future (kept as ``dask_future``)."""

    def __init__(self, dask_future: distributed.Future):
        super().__init__()
        self.dask_future = dask_future
        self._lock = threading.Lock()

    def resolve(self, status: str, value: Any) -> None:
        """Set the outcome once (``status`` as Dask reports it; for "error" ``value`` is
        Dask's ``(type, exception, traceback)``)."""
        with self._lock:
            if super().done():
                return
            self.set_running_or_notify_cancel()
            if status == "finished":
                self.set_result(value)
            elif status == "error":
                self.set_exception(value[1].with_traceback(value[2]) if isinstance(value, tuple) else value)
            else:
                self.set_exception(CancelledError(f"dask task {self.dask_future.key} {status}"))

    def _fetch(self, timeout: float | None = None) -> None:
        if super().done():
            return
        try:
            value, status = self.dask_future.result(timeout=timeout), "finished"
        except (CancelledError, distributed.client.FutureCancelledError):
            value, status = None, "cancelled"
        except Exception as err:
            if isinstance(err, TimeoutError) and not self.dask_future.done():
                raise
            value, status = err, "error"
        self.resolve(status, value)

    def done(self) -> bool:
        return super().done() or self.dask_future.done()

    def result(self, timeout: float | None = None) -> Any:
        self._fetch(timeout)
        return super().result(0)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._fetch(timeout)
        return super().exception(0)

    def cancel(self) -> bool:
        self.dask_future.cancel()
        return super().cancel()

    def add_done_callback(self, fn: Callable[[Future], Any]) -> None:
        if not super().done():  # fetch in Dask's callback thread when the task ends
            self.dask_future.add_done_callback(lambda _: self._fetch())
        super().add_done_callback(fn)


class DaskExecutor(Executor):
    """Submit tasks to Dask clients, routed by task kind.

    clients:  one ``distributed.Client``, or a mapping kind -> Client (clients may repeat).
    default:  kind whose client takes kinds not in the mapping (default: the first).
    owned:    clusters to close with the executor (those this package created).
    """

    def __init__(self, clients: distributed.Client | Mapping[str, distributed.Client], *,
                 default: str | None = None, owned: Iterable[Any] = (), thread_limits: int | None = 1):
        self.clients = dict(clients) if isinstance(clients, Mapping) else {"task": clients}
        if not self.clients:
            raise ValueError("DaskExecutor needs at least one client")
        self.default = default or next(iter(self.clients))
        self._owned = list(owned)
        self._unique = list({id(c): c for c in self.clients.values()}.values())
        if thread_limits is not None:
            for client in self._unique:
                if not _same_process(client):
                    client.register_plugin(ThreadLimits(thread_limits))

    # -- constructors --------------------------------------------------------------------
    @classmethod
    def from_address(cls, address: str, **kw: Any) -> "DaskExecutor":
        """Connect to a running scheduler (``tcp://host:8786``)."""
        return cls(distributed.Client(address, set_as_default=False), **kw)

    @classmethod
    def local(cls, n_workers: int = 1, threads_per_worker: int = 1, processes: bool = False,
              **cluster_kwargs: Any) -> "DaskExecutor":
        """A ``LocalCluster`` over TCP on 127.0.0.1 (dashboard on a free port), owned by the executor.

        processes=False runs the workers as threads of this process (fast to start; tasks
        share the GIL), True spawns worker processes.
        """
        cluster_kwargs.setdefault("dashboard_address", "127.0.0.1:0")
        cluster_kwargs.setdefault("protocol", "tcp://")
        cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                                           processes=processes, host="127.0.0.1", **cluster_kwargs)
        return cls(distributed.Client(cluster, set_as_default=False), owned=[cluster])

    @classmethod
    def from_clusters(cls, clusters: Mapping[str, Any], *, default: str | None = None) -> "DaskExecutor":
        """One client per distinct cluster object in ``kind -> cluster``; owns the clusters."""
        by_id: dict[int, distributed.Client] = {}
        for cluster in clusters.values():
            if id(cluster) not in by_id:
                by_id[id(cluster)] = distributed.Client(cluster, set_as_default=False)
        clients = {kind: by_id[id(c)] for kind, c in clusters.items()}
        owned = list({id(c): c for c in clusters.values()}.values())
        return cls(clients, default=default, owned=owned)

    # -- the executor interface ----------------------------------------------------------
    def client_for(self, kind: str) -> distributed.Client:
        return self.clients.get(kind) or self.clients[self.default]

    def submit(self, fn: Callable[..., Any], *args: Any, kind: str = "task", key: str | None = None) -> DaskTaskFuture:
        name = f"{key or getattr(fn, '__name__', 'task')}-{uuid.uuid4().hex[:12]}"
        return DaskTaskFuture(self.client_for(kind).submit(fn, *args, key=name, pure=False))

    def as_completed(self, futures: Iterable[DaskTaskFuture]) -> Iterator[DaskTaskFuture]:
        """Yield the futures as they finish, results already fetched (one stream per client)."""
        futures = list(futures)
        groups: dict[int, list[DaskTaskFuture]] = {}
        for f in futures:
            groups.setdefault(id(f.dask_future.client), []).append(f)
        if len(groups) <= 1:
            yield from _stream(futures)
            return
        done: queue.SimpleQueue = queue.SimpleQueue()
        for group in groups.values():
            threading.Thread(target=lambda g=group: [done.put(f) for f in _stream(g)], daemon=True).start()
        for _ in futures:
            yield done.get()

    @property
    def slots(self) -> int | None:
        """Worker threads connected now, over all clients (clusters that scale change it)."""
        try:
            return sum(w.get("nthreads", 1) for c in self._unique
                       for w in c.scheduler_info().get("workers", {}).values()) or None
        except Exception:  # a closed or unreachable scheduler: unknown
            return None

    def close(self) -> None:
        for client in self._unique:
            client.close()
        for cluster in self._owned:
            cluster.close()
        self._unique, self._owned = [], []

    def __repr__(self) -> str:
        return f"DaskExecutor(kinds={sorted(self.clients)}, default={self.default!r})"


def _stream(futures: list[DaskTaskFuture]) -> Iterator[DaskTaskFuture]:
    """Futures of one client as they finish, resolved from results fetched concurrently."""
    by_key = {f.dask_future.key: f for f in futures}
    todo = [f.dask_future for f in futures]
    if not todo:
        return
    stream = distributed.as_completed(todo, loop=todo[0].client.loop, with_results=True, raise_errors=False)
    for dask_future, value in stream:
        wrapper = by_key[dask_future.key]
        wrapper.resolve(dask_future.status, value)
        yield wrapper


def _same_process(client: distributed.Client) -> bool:
    """True when the client's cluster runs its workers as threads of this process."""
    cluster = getattr(client, "cluster", None)
    workers = getattr(cluster, "workers", {}) or {}
    return bool(workers) and all(isinstance(w, distributed.Worker) for w in workers.values())
