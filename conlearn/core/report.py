"""What a loop run reports: per-iteration counts, quarantined items and where time went."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

from .records import LabelResult, Selection, TrainResult


@dataclass(frozen=True)
class IterationReport:
    """One iteration: the selection's counts and what labelling gave.

    selection:   the selector's verdict (counts, accurate fraction, converged).
    n_labelled:  labels that came back finite and were added to the data set.
    quarantined: labels that failed every try (with reasons); not added.
    n_data:      size of the data set the next iteration trains on.
    """

    iteration: int
    selection: Selection
    n_labelled: int
    quarantined: tuple[LabelResult, ...]
    n_data: int

    def summary(self) -> dict:
        return {"iteration": self.iteration, **self.selection.summary(), "n_labelled": self.n_labelled,
                "n_quarantined": len(self.quarantined), "n_data": self.n_data}


@dataclass(frozen=True)
class Timing:
    """Where the wall time of *this process's* run went, in seconds.

    wall:     from the loop's start to its end.
    waiting:  blocked on executor futures (tasks running elsewhere, or in-process tasks).
    engine:   wall - waiting: bookkeeping, (de)serialisation, manifest writes, observers.
    task:     sum of the task durations measured on the workers (can exceed wall when
              tasks run in parallel); tasks replayed from the manifest count 0.
    n_tasks:  tasks computed in this run; n_cached: tasks replayed from the manifest.
    slots:    tasks the executor can run at once (None: unknown).
    """

    wall: float
    waiting: float
    task: float
    n_tasks: int
    n_cached: int
    slots: int | None = None

    @property
    def engine(self) -> float:
        return max(self.wall - self.waiting, 0.0)

    @property
    def overhead_fraction(self) -> float:
        """Engine time / wall time (the product target is < 0.02 on real workloads)."""
        return self.engine / self.wall if self.wall > 0 else 0.0

    @property
    def utilisation(self) -> float | None:
        """Task time / (wall time x slots): how busy the workers were (None: slots unknown).
        Low values point at stages with fewer tasks than workers, or at waiting on stragglers."""
        if not self.slots or self.wall <= 0:
            return None
        return self.task / (self.wall * self.slots)

    def summary(self) -> dict:
        return {**asdict(self), "engine": self.engine, "overhead_fraction": self.overhead_fraction,
                "utilisation": self.utilisation}


@dataclass(frozen=True)
class LoopReport:
    """The outcome of :meth:`conlearn.core.loop.BatchLoop.run`.

    converged:  whether the last iteration's selection met the threshold.
    iterations: one report per iteration run (replayed ones included after a restart).
    models:     the committee of the last iteration (of the final training, if any).
    data:       the final data set (initial payloads, then labels in iteration/key order).
    timing:     engine vs task time of this process.
    """

    converged: bool
    iterations: tuple[IterationReport, ...]
    models: tuple[TrainResult, ...]
    data: tuple[Any, ...]
    timing: Timing

    @property
    def quarantined(self) -> tuple[LabelResult, ...]:
        return tuple(q for it in self.iterations for q in it.quarantined)

    @property
    def n_labelled(self) -> int:
        return sum(it.n_labelled for it in self.iterations)


@dataclass
class Clock:
    """Splits wall time into time blocked on tasks and the rest (the engine's own time)."""

    start: float = field(default_factory=time.perf_counter)
    waiting: float = 0.0
    task: float = 0.0
    n_tasks: int = 0
    n_cached: int = 0

    @contextmanager
    def waiting_for_tasks(self) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.waiting += time.perf_counter() - t0

    def timing(self, slots: int | None = None) -> Timing:
        return Timing(wall=time.perf_counter() - self.start, waiting=self.waiting, task=self.task,
                      n_tasks=self.n_tasks, n_cached=self.n_cached, slots=slots)
