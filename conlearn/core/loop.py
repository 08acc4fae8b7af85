"""The batch concurrent-learning loop (DP-GEN style), written only against the protocols.

One iteration::

    train n_models members (parallel)  ->  explore every condition (parallel)
    ->  select (trust window)  ->  stop if converged
    ->  label the selection (parallel; retried, time-limited, NaN-checked, quarantined)
    ->  add the good labels to the data set  ->  next iteration

After the last iteration (converged or not), a trainer that offers a ``final_trainer``
(see :class:`~conlearn.core.protocols.Trainer`) trains the committee once more on the whole
data set, warm-started from the last iteration's members: the production training that
DP-GEN users run by hand. Those members are the loop's result.

Task kinds sent to the executor: "train", "explore" (exploration and selection), "label".
Every task has a stable key (``iter-003/train/001``, ``iter-003/explore/0002``,
``iter-003/select``, ``iter-003/label/000017``, ``iter-005/final/001``) and goes through the
run directory's :class:`~conlearn.core.manifest.Manifest`: a recorded task is replayed from
its stored output, never recomputed, and each result is recorded the moment it arrives. A
run killed at any moment (``kill -9``) and started again with the same arguments therefore ends with
the same data set, without recomputing any recorded label. Seeds come from the task keys,
so the replayed and the recomputed parts agree.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from .manifest import Manifest
from .protocols import Executor, Explorer, Labeler, Observer, Selector, Trainer, check_component
from .records import Candidate, Condition, ExploredBatch, LabelResult, Selection, TaskContext, TrainResult, derive_seed
from .report import Clock, IterationReport, LoopReport
from .tasks import explore_task, label_with_retries, run_task, select_task, train_task

_WIDTH = {"train": 3, "final": 3, "explore": 4, "label": 6}


class StageError(RuntimeError):
    """Tasks of a stage raised; finished tasks are recorded, a re-run retries the others."""


@dataclass(frozen=True)
class LoopSettings:
    """Science settings of the loop (where tasks run is the executor's business).

    n_models:        committee size (train tasks per iteration).
    max_iterations:  stop after this many iterations even if not converged (may be raised
                     on a re-run to continue a finished run).
    label_retries:   extra tries of a failing reference call before quarantine.
    label_timeout_s: time limit of one reference call, seconds (None: no limit).
    seed:            root of every task's seed.
    label_last:      label the selection of the last iteration too. Off by default: no
                     iteration trains on those labels, the last exploration only measures
                     the last committee (raising max_iterations on a re-run labels them).
                     A final training (the trainer's ``final_trainer``) uses them when on.
    """

    n_models: int = 4
    max_iterations: int = 10
    label_retries: int = 2
    label_timeout_s: float | None = None
    seed: int = 0
    label_last: bool = False

    def __post_init__(self) -> None:
        if self.n_models < 1 or self.max_iterations < 1 or self.label_retries < 0:
            raise ValueError(f"need n_models >= 1, max_iterations >= 1, label_retries >= 0: {self}")


Conditions = Sequence[Condition] | Callable[[int], Sequence[Condition]]
_Call = tuple[str, int, Callable[..., Any], tuple]


class BatchLoop:
    """Train -> explore -> select -> label until converged; see the module docstring.

    conditions:   the exploration grid, or ``iteration -> grid`` for a schedule.
    initial_data: labelled payloads to start from (what trainers receive).
    run_dir:      where the manifest, task outputs and task work directories live.
    executor:     where tasks run (:mod:`conlearn.exec`); the loop does not close it.
    """

    def __init__(self, *, trainer: Trainer, explorer: Explorer, selector: Selector, labeler: Labeler,
                 conditions: Conditions, initial_data: Iterable[Any], run_dir: str | Path,
                 executor: Executor, settings: LoopSettings = LoopSettings(),
                 observers: Sequence[Observer] = ()):
        for obj, proto, role in ((trainer, Trainer, "trainer"), (explorer, Explorer, "explorer"),
                                 (selector, Selector, "selector"), (labeler, Labeler, "labeler")):
            check_component(obj, proto, role)
        self.final_trainer = getattr(trainer, "final_trainer", None)
        if self.final_trainer is not None:
            check_component(self.final_trainer, Trainer, "final trainer")
        self.trainer, self.explorer, self.selector, self.labeler = trainer, explorer, selector, labeler
        self.conditions = conditions
        self.initial_data = tuple(initial_data)
        self.run_dir = Path(run_dir)
        self.executor = executor
        self.settings = settings
        self.observers = list(observers)
        self.manifest = Manifest(self.run_dir)
        self.clock = Clock()
        self._previous: list[ExploredBatch] = []  # the last explored iteration's batches

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> LoopReport:
        self.clock, self._previous = Clock(), []
        with self.manifest:
            self._check_settings()
            data, models, reports = list(self.initial_data), None, []
            for it in range(self.settings.max_iterations):
                models = self.train(it, data, models)
                selection = self.select(it, self.explore(it, models))
                final = it == self.settings.max_iterations - 1 and not self.settings.label_last
                labels = [] if selection.converged or final else self.label(it, selection.selected)
                data += [r.payload for r in labels if r.ok]
                reports.append(IterationReport(it, selection, sum(r.ok for r in labels),
                                               tuple(r for r in labels if not r.ok), len(data)))
                self._notify("on_iteration_end", reports[-1])
                if selection.converged:
                    break
            if self.final_trainer is not None and models is not None:
                models = self.train(it, data, models, stage="final")
            timing = self.clock.timing(slots=getattr(self.executor, "slots", None))
            report = LoopReport(converged=bool(reports and reports[-1].selection.converged),
                                iterations=tuple(reports), models=tuple(models or ()),
                                data=tuple(data), timing=timing)
            self._notify("on_loop_end", report)
        return report

    # -- stages --------------------------------------------------------------------------
    def train(self, it: int, data: list[Any], previous: Sequence[TrainResult] | None,
              stage: str = "train") -> list[TrainResult]:
        """Train the committee; ``stage="final"``: the final trainer, after iteration ``it``."""
        trainer = self.final_trainer if stage == "final" else self.trainer
        frozen = tuple(data)
        calls = [(self._key(it, stage, m), m, train_task,
                  (trainer, frozen, previous[m] if previous else None))
                 for m in range(self.settings.n_models)]
        return self._run_stage(it, stage, "train", calls)

    def explore(self, it: int, models: Sequence[TrainResult]) -> list[ExploredBatch]:
        grid = list(self.conditions(it) if callable(self.conditions) else self.conditions)
        follow = getattr(self.explorer, "follow", None)
        if follow is not None and self._previous:  # continue where the last iteration ended
            prev = {b.condition.name: b for b in self._previous}
            grid = [follow(c, prev[c.name]) if c.name in prev else c for c in grid]
        calls = [(self._key(it, "explore", i), i, explore_task, (self.explorer, tuple(models), cond))
                 for i, cond in enumerate(grid)]
        self._previous = self._run_stage(it, "explore", "explore", calls)
        return self._previous

    def select(self, it: int, batches: Sequence[ExploredBatch]) -> Selection:
        # one small task on the explore resources: recorded, so a restart selects the same items
        calls = [(f"iter-{it:03d}/select", 0, select_task, (self.selector, tuple(batches)))]
        return self._run_stage(it, "select", "explore", calls)[0]

    def label(self, it: int, selected: Sequence[Candidate]) -> list[LabelResult]:
        s = self.settings
        calls = [(self._key(it, "label", i), i, label_with_retries,
                  (self.labeler, cand, s.label_retries, s.label_timeout_s))
                 for i, cand in enumerate(selected)]
        return self._run_stage(it, "label", "label", calls)

    # -- machinery -----------------------------------------------------------------------
    def _run_stage(self, it: int, stage: str, kind: str, calls: list[_Call]) -> list[Any]:
        """Replay recorded tasks, submit the rest, record each result as it arrives."""
        t0 = time.perf_counter()
        results: dict[str, Any] = {}
        n_cached = sum(key in self.manifest for key, *_ in calls)
        self._notify("on_stage_start", it, stage, len(calls), n_cached)
        pending = {}
        for key, index, fn, args in calls:
            if key in self.manifest:
                results[key] = self.manifest.load(key)
                self.clock.n_cached += 1
                self._notify("on_task_done", it, stage, key, results[key], True)
                continue
            ctx = TaskContext(key=key, iteration=it, index=index, seed=derive_seed(self.settings.seed, key),
                              workdir=str(self.manifest.workdir(key)))
            pending[self.executor.submit(run_task, fn, ctx, *args, kind=kind, key=key)] = key
        errors = []
        for fut in self._completed(pending):
            key = pending[fut]
            try:
                out = fut.result()
            except Exception as err:
                errors.append(f"{key}: {type(err).__name__}: {err}")
                continue
            summary = out.value.summary() if hasattr(out.value, "summary") else {}
            self.manifest.record(key, out.value, {"seconds": out.seconds, "worker": out.worker, **summary})
            self.clock.task += out.seconds
            self.clock.n_tasks += 1
            results[key] = out.value
            self._notify("on_task_done", it, stage, key, out.value, False)
        if errors:
            raise StageError(f"iteration {it} {stage}: {len(errors)} task(s) failed:\n  " + "\n  ".join(errors))
        self._notify("on_stage_end", it, stage, time.perf_counter() - t0)
        return [results[key] for key, *_ in calls]

    def _completed(self, pending: dict) -> Iterator[Any]:
        """The executor's as_completed, with the time blocked in it counted as waiting."""
        if not pending:
            return
        stream = iter(self.executor.as_completed(list(pending)))
        while True:
            with self.clock.waiting_for_tasks():
                fut = next(stream, None)
            if fut is None:
                return
            yield fut

    def _key(self, it: int, stage: str, index: int) -> str:
        return f"iter-{it:03d}/{stage}/{index:0{_WIDTH[stage]}d}"

    def _check_settings(self) -> None:
        """A run directory belongs to one set of settings (max_iterations may change)."""
        mine = {k: v for k, v in asdict(self.settings).items() if k not in ("max_iterations", "label_last")}
        rec = self.manifest.get("loop/settings")
        if rec is None:
            self.manifest.record("loop/settings", None, mine)
            return
        diff = {k: (rec.meta.get(k), v) for k, v in mine.items() if rec.meta.get(k) != v}
        if diff:
            raise ValueError(f"{self.run_dir} was started with other loop settings "
                             f"(recorded, now): {diff}; use a new run directory")

    def _notify(self, hook: str, *args: Any) -> None:
        for obs in self.observers:
            method = getattr(obs, hook, None)
            if method is not None:
                method(*args)
