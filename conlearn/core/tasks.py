"""The functions the loop submits to executors: they run on workers and must stay picklable.

:func:`run_task` wraps every stage call (workdir creation, timing, worker name);
:func:`label_recorded` labels a run's initial data as recorded tasks, outside the loop;
:func:`label_with_retries` adds the labelling policy: retries, a per-try time limit,
NaN/inf rejection and a quarantine record instead of an exception.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from dataclasses import fields, is_dataclass, replace
from typing import Any, Callable, Mapping, Sequence

from .records import (Candidate, Condition, ExploredBatch, LabelResult, Selection, TaskContext, TaskOutput,
                      TrainResult, derive_seed)


def run_task(fn: Callable[..., Any], ctx: TaskContext, *args: Any) -> TaskOutput:
    """Call ``fn(*args, ctx)`` in ``ctx.workdir`` (created); return value, seconds, worker."""
    os.makedirs(ctx.workdir, exist_ok=True)
    t0 = time.perf_counter()
    value = fn(*args, ctx)
    return TaskOutput(value=value, seconds=time.perf_counter() - t0,
                      worker=f"{socket.gethostname()}:{os.getpid()}")


def call_with_timeout(fn: Callable[..., Any], args: tuple, timeout_s: float | None) -> Any:
    """``fn(*args)``, raising TimeoutError after ``timeout_s`` seconds.

    The call runs in a daemon thread that is abandoned (not killed) on timeout: a labeler
    that drives an external program should also pass the limit to that program.
    """
    if timeout_s is None:
        return fn(*args)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn(*args)
        except BaseException as err:  # handed back to the caller below
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True, name="conlearn-timed-call")
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError(f"timed out after {timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def first_nonfinite(value: Any, where: str = "payload") -> str | None:
    """Path of the first NaN/inf inside ``value`` (floats, containers, dataclasses, arrays)."""
    if isinstance(value, (bool, int, str, bytes)) or value is None:
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else where
    if isinstance(value, complex):
        return None if math.isfinite(value.real) and math.isfinite(value.imag) else where
    if isinstance(value, Mapping):
        for k, v in value.items():
            bad = first_nonfinite(v, f"{where}[{k!r}]")
            if bad:
                return bad
        return None
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            bad = first_nonfinite(v, f"{where}[{i}]")
            if bad:
                return bad
        return None
    if is_dataclass(value) and not isinstance(value, type):
        for f in fields(value):
            bad = first_nonfinite(getattr(value, f.name), f"{where}.{f.name}")
            if bad:
                return bad
        return None
    if hasattr(value, "__array__") or hasattr(value, "dtype"):
        import numpy as np  # only when a payload holds arrays

        arr = np.asarray(value)
        if arr.dtype.kind in "fc":
            bad = np.argwhere(~np.isfinite(arr))
            if len(bad):
                return f"{where}[{','.join(str(int(i)) for i in bad[0])}]" if arr.ndim else where
        elif arr.dtype.kind == "O":
            for idx, v in np.ndenumerate(arr):
                b = first_nonfinite(v, f"{where}[{','.join(map(str, idx))}]")
                if b:
                    return b
        return None
    if hasattr(value, "__dict__"):
        return first_nonfinite(vars(value), where)
    return None


def label_with_retries(labeler: Any, candidate: Candidate, retries: int, timeout_s: float | None,
                       ctx: TaskContext) -> LabelResult:
    """Label ``candidate`` with up to ``1 + retries`` tries; never raises on a bad try.

    A try fails when the labeler raises, exceeds ``timeout_s``, or returns NaN/inf
    anywhere; after the last failed try the result is ``ok=False`` with every reason.
    """
    errors: list[str] = []
    for attempt in range(retries + 1):
        try:
            value = call_with_timeout(labeler.label, (candidate, replace(ctx, attempt=attempt)), timeout_s)
        except Exception as err:
            errors.append(f"try {attempt + 1}: {type(err).__name__}: {err}")
            continue
        bad = first_nonfinite(value)
        if bad is not None:
            errors.append(f"try {attempt + 1}: non-finite value at {bad}")
            continue
        return LabelResult(key=ctx.key, candidate_key=candidate.key, ok=True, payload=value,
                           attempts=attempt + 1, errors=tuple(errors))
    return LabelResult(key=ctx.key, candidate_key=candidate.key, ok=False, reason=errors[-1],
                       attempts=retries + 1, errors=tuple(errors))


def label_recorded(manifest: Any, executor: Any, labeler: Any, candidates: Sequence[Candidate], *, seed: int,
                   retries: int, timeout_s: float | None, prefix: str = "init/label",
                   meta: Callable[[int], Mapping[str, Any]] | None = None, log: Callable[[str], None] = print,
                   what: str = "items") -> list[LabelResult]:
    """Label ``candidates`` outside the loop (a run's initial data), each one a recorded task
    ``<prefix>/NNNNNN`` of the open ``manifest``: recorded ones are replayed, the others run on
    ``executor`` with :func:`label_with_retries` and are recorded as they finish (kill-safe).
    ``meta(i)``: extra JSON metadata of item ``i``'s record. Returns the results in order."""
    results: dict[str, LabelResult] = {}
    keys = [f"{prefix}/{i:06d}" for i in range(len(candidates))]
    pending = {}
    for i, (key, cand) in enumerate(zip(keys, candidates)):
        if key in manifest:
            results[key] = manifest.load(key)
            continue
        ctx = TaskContext(key=key, iteration=-1, index=i, seed=derive_seed(seed, key),
                          workdir=str(manifest.workdir(key)))
        fut = executor.submit(run_task, label_with_retries, ctx, labeler, cand, retries, timeout_s,
                              kind="label", key=key)
        pending[fut] = (i, key)
    if pending:
        log(f"labelling {len(pending)} initial {what} ({len(results)} already recorded)")
    for fut in executor.as_completed(list(pending)):
        (i, key), out = pending[fut], fut.result()
        manifest.record(key, out.value, meta={"seconds": out.seconds, "ok": out.value.ok,
                                              **(meta(i) if meta else {})})
        results[key] = out.value
    return [results[k] for k in keys]


def _expect(value: Any, cls: type, what: str) -> Any:
    if not isinstance(value, cls):
        raise TypeError(f"{what} must return a {cls.__name__}, got {type(value).__name__}")
    return value


def train_task(trainer: Any, data: tuple, previous: TrainResult | None, ctx: TaskContext) -> TrainResult:
    """Train member ``ctx.index``; the result's ``member`` is set to it."""
    result = _expect(trainer.train(data, previous, ctx), TrainResult, f"{type(trainer).__name__}.train")
    return replace(result, member=ctx.index, model_paths=tuple(result.model_paths))


def explore_task(explorer: Any, models: tuple, condition: Condition, ctx: TaskContext) -> ExploredBatch:
    """Explore one condition; candidates are named ``"<ctx.key>/<n:05d>"``."""
    batch = _expect(explorer.explore(models, condition, ctx), ExploredBatch, f"{type(explorer).__name__}.explore")
    named = tuple(replace(c, key=f"{ctx.key}/{i:05d}", deviation=float(c.deviation))
                  for i, c in enumerate(batch.candidates))
    return replace(batch, candidates=named)


def select_task(selector: Any, batches: tuple, ctx: TaskContext) -> Selection:
    return _expect(selector.select(batches, ctx), Selection, f"{type(selector).__name__}.select")
