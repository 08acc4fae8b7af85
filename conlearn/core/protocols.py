"""The contracts between the loop and its components (typing.Protocol, checked at runtime).

A domain plugs into the loop by providing four objects with one method each. The loop
submits those bound methods as tasks to an executor, so:

* components must be picklable (module-level classes holding plain settings) and hold no
  open files, clients or locks;
* each method is a pure function of its arguments: same arguments (including
  ``ctx.seed``) -> same result, whichever worker runs it and however often;
* results are records from :mod:`conlearn.core.records`, written to the run directory by
  the loop; large artefacts (model weights, trajectories) go to files in ``ctx.workdir``
  and are referred to by path.

``ctx`` (:class:`~conlearn.core.records.TaskContext`) is always the last argument.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence, runtime_checkable

from .records import Candidate, Condition, ExploredBatch, Selection, TaskContext, TrainResult


@runtime_checkable
class Trainer(Protocol):
    """Trains one committee member on the labelled data."""

    def train(self, data: Sequence[Any], previous: TrainResult | None, ctx: TaskContext) -> TrainResult:
        """Train member ``ctx.index`` and return where the model was written.

        data:     every labelled payload so far (initial data first, then labels in
                  iteration/key order); the same sequence for every member.
        previous: this member's result of the previous iteration (to fine-tune from), or
                  None in iteration 0.
        ctx.seed differs between members: use it for initialisation and resampling.

        Optional: a trainer may also have a ``final_trainer`` attribute (a Trainer, or None).
        When it is set, the loop trains the committee once more with it after the last
        iteration, on the whole data set, each member warm-started from its last model
        (stage ``"final"``), and returns those members as the result.
        """
        ...


@runtime_checkable
class Explorer(Protocol):
    """Samples new items with the current committee under one condition."""

    def explore(self, models: Sequence[TrainResult], condition: Condition, ctx: TaskContext) -> ExploredBatch:
        """Run the committee under ``condition``; return the items with their deviations.

        models: the whole committee of this iteration, ordered by member.
        Candidate keys are left empty: the loop names them ``"<ctx.key>/<n>"``.

        Optional: an explorer may also define ``follow(condition, previous) -> Condition``;
        the loop then calls it for every condition that was also explored in the previous
        iteration (``previous``: that ExploredBatch), e.g. to continue a trajectory from
        where it ended instead of restarting it.
        """
        ...


@runtime_checkable
class Selector(Protocol):
    """Splits explored items into accurate / candidate / failed and picks what to label."""

    def select(self, batches: Sequence[ExploredBatch], ctx: TaskContext) -> Selection:
        """Judge every candidate of this iteration (batches ordered by condition).

        Must be deterministic given ``ctx.seed`` (used when capping the selection).
        """
        ...


@runtime_checkable
class Labeler(Protocol):
    """Computes the reference label of one item (the expensive oracle)."""

    def label(self, candidate: Candidate, ctx: TaskContext) -> Any:
        """Return the labelled payload; raise on failure.

        The loop retries a raising call (``ctx.attempt`` counts the tries), treats NaN/inf
        anywhere in the returned payload as a failure, enforces the per-task time limit,
        and quarantines the item with the last reason when every try failed.
        """
        ...


class Executor(Protocol):
    """Where tasks run (see :mod:`conlearn.exec`): submit picklable callables, get futures."""

    def submit(self, fn: Callable[..., Any], *args: Any, kind: str = "task", key: str | None = None) -> Future:
        """Run ``fn(*args)`` somewhere; ``kind`` ("train", "explore", "label") picks resources."""
        ...

    def as_completed(self, futures: Iterable[Any]) -> Iterator[Any]:
        """Yield the futures as they finish (in any order)."""
        ...

    def close(self) -> None:
        ...


class Observer(Protocol):
    """Cross-cutting hooks (logging, progress bars, checkpoints); all methods optional.

    Subclass :class:`conlearn.core.observers.BaseObserver` and override what you need.
    Observers run in the engine process and their time counts as engine overhead.
    """

    def on_stage_start(self, iteration: int, stage: str, n_tasks: int, n_cached: int) -> None: ...

    def on_task_done(self, iteration: int, stage: str, key: str, value: Any, cached: bool) -> None: ...

    def on_stage_end(self, iteration: int, stage: str, seconds: float) -> None: ...

    def on_iteration_end(self, report: Any) -> None: ...

    def on_loop_end(self, report: Any) -> None: ...


@runtime_checkable
class Workflow(Protocol):
    """A whole domain run behind the CLI verbs ``conlearn run | status | report``.

    The run config's top-level ``workflow`` key names it (registered in
    :data:`conlearn.core.registry.WORKFLOWS`); the run directory's ``config.json`` records
    that name, so ``status`` and ``report`` find the workflow again. ``run`` typically
    builds the four components and hands them to :class:`~conlearn.core.loop.BatchLoop`.
    """

    def load(self, path: str) -> Any:
        """Read and validate the config file; every error names file, key and line. Writes nothing."""
        ...

    def run(self, cfg: Any, run_dir: Any, executor: Executor, observers: Sequence[Observer]) -> dict:
        """Run or resume (kill -9 safe) into ``run_dir``; write ``run_dir/config.json`` (with
        the ``workflow`` key) and ``run_dir/summary.json``; return the summary."""
        ...

    def status(self, run_dir: Any) -> str:
        """What the run has done so far (read-only; safe while it runs)."""
        ...

    def report(self, run_dir: Any) -> Any:
        """Write the plots and ``run_dir/report.html``; return the report's path."""
        ...


def check_component(obj: object, protocol: type, role: str) -> None:
    """Raise TypeError naming the missing method when ``obj`` does not implement ``protocol``."""
    if not isinstance(obj, protocol):
        missing = [m for m in ("train", "explore", "select", "label")
                   if hasattr(protocol, m) and not callable(getattr(obj, m, None))]
        raise TypeError(f"{role} {obj!r} does not implement {protocol.__name__}: missing method(s) {missing}")


__all__ = ["Trainer", "Explorer", "Selector", "Labeler", "Executor", "Observer", "Workflow", "check_component"]
