"""Observers: cross-cutting work (logging, progress, checkpoints) attached to the loop.

Subclass :class:`BaseObserver` and override what you need; pass instances to
``BatchLoop(..., observers=[...])``. Stages are ``"train"``, ``"explore"``, ``"select"``,
``"label"``. Observers run in the engine process: keep them quick.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .manifest import atomic_write_bytes
from .records import LabelResult
from .report import IterationReport, LoopReport

log = logging.getLogger("conlearn.loop")


class BaseObserver:
    """No-op implementation of every hook of :class:`conlearn.core.protocols.Observer`."""

    def on_stage_start(self, iteration: int, stage: str, n_tasks: int, n_cached: int) -> None:
        """``n_tasks`` tasks in the stage, ``n_cached`` of them replayed from the manifest."""

    def on_task_done(self, iteration: int, stage: str, key: str, value: Any, cached: bool) -> None:
        """One task finished (or was replayed when ``cached``); ``value`` is its record."""

    def on_stage_end(self, iteration: int, stage: str, seconds: float) -> None:
        """The stage's barrier was reached after ``seconds`` of wall time."""

    def on_iteration_end(self, report: IterationReport) -> None:
        """Counts of the finished iteration."""

    def on_loop_end(self, report: LoopReport) -> None:
        """The loop stopped (converged or out of iterations)."""


class LoggingObserver(BaseObserver):
    """Logs stage boundaries, quarantined labels and iteration summaries to ``logging``."""

    def __init__(self, logger: logging.Logger = log):
        self.log = logger

    def on_stage_start(self, iteration, stage, n_tasks, n_cached):
        self.log.info("iter %d %s: %d tasks (%d from manifest)", iteration, stage, n_tasks, n_cached)

    def on_task_done(self, iteration, stage, key, value, cached):
        if isinstance(value, LabelResult) and not value.ok and not cached:
            self.log.warning("%s quarantined after %d tries: %s", key, value.attempts, value.reason)

    def on_stage_end(self, iteration, stage, seconds):
        self.log.debug("iter %d %s done in %.3f s", iteration, stage, seconds)

    def on_iteration_end(self, report):
        s = report.summary()
        self.log.info("iter %d: accurate %.4f (%d/%d), candidates %d, failed %d, labelled %d, "
                      "quarantined %d, data %d", s["iteration"], s["accurate_fraction"], s["n_accurate"],
                      s["n_explored"], s["n_candidate"], s["n_failed"], s["n_labelled"],
                      s["n_quarantined"], s["n_data"])

    def on_loop_end(self, report):
        t = report.timing
        self.log.info("loop %s after %d iterations; engine overhead %.2f%% of %.2f s wall",
                      "converged" if report.converged else "stopped unconverged",
                      len(report.iterations), 100 * t.overhead_fraction, t.wall)


class SummaryFileObserver(BaseObserver):
    """Writes ``<run_dir>/summary.json`` (iterations so far, timing) atomically."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.iterations: list[dict] = []

    def on_iteration_end(self, report):
        self.iterations.append(report.summary())
        self._write({"iterations": self.iterations})

    def on_loop_end(self, report):
        quarantined = [{"key": q.key, **q.summary()} for q in report.quarantined]
        self._write({"converged": report.converged, "n_labelled": report.n_labelled,
                     "iterations": [it.summary() for it in report.iterations],
                     "quarantined": quarantined, "timing": report.timing.summary()})

    def _write(self, data: dict) -> None:
        atomic_write_bytes(self.path, json.dumps(data, indent=1, default=repr).encode())
