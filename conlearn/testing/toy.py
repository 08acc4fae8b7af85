"""A toy domain (a cheap oracle for tests; the core is handed executors, it does not build them)
that runs the whole loop in a second: learn y = f(x) on [-2, 2].

* data:      payloads ``(x, y)`` (floats).
* trainer:   a committee member is the piecewise-linear interpolant (2-nearest-neighbour
             regressor) of a bootstrap resample of the data, written to ``model.json``.
* explorer:  samples x uniformly in the condition's ``[lo, hi)``; deviation = standard
             deviation of the members' predictions at x.
* labeler:   the true f; optionally flaky (raises or returns NaN on some tries, decided by
             the task seed and try number, so runs are reproducible) and with a "poisoned"
             x interval on which every try fails (such items end up quarantined).

Run it: ``python -m conlearn.testing.toy RUN_DIR [--call-log FILE] [--executor processes]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.loop import BatchLoop, LoopSettings
from ..core.manifest import atomic_write_bytes
from ..core.records import Candidate, Condition, ExploredBatch, TaskContext, TrainResult
from ..core.registry import EXPLORERS, LABELERS, TRAINERS
from ..core.selection import TrustWindowSelector


def true_f(x: float) -> float:
    return math.sin(3.0 * x) + 0.3 * x


def load_model(path: str) -> tuple[np.ndarray, np.ndarray]:
    d = json.loads(Path(path).read_text())
    return np.asarray(d["x"]), np.asarray(d["y"])


@TRAINERS.register("toy1d")
@dataclass(frozen=True)
class InterpTrainer:
    """Linear interpolant of a bootstrap resample (``ctx.seed`` picks the resample)."""

    def train(self, data: Sequence[Any], previous: TrainResult | None, ctx: TaskContext) -> TrainResult:
        xy = np.asarray(data, dtype=float).reshape(-1, 2)
        rng = np.random.default_rng(ctx.seed)
        sample = xy[rng.integers(0, len(xy), len(xy))]
        x, first = np.unique(sample[:, 0], return_index=True)
        y = sample[first, 1]
        path = Path(ctx.workdir) / "model.json"
        atomic_write_bytes(path, json.dumps({"x": x.tolist(), "y": y.tolist()}).encode())
        rmse = float(np.sqrt(np.mean((np.interp(xy[:, 0], x, y) - xy[:, 1]) ** 2)))
        return TrainResult(member=ctx.index, model_paths=(str(path),),
                           metrics={"n_train": int(len(x)), "rmse": rmse})


@EXPLORERS.register("toy1d")
@dataclass(frozen=True)
class UniformExplorer:
    """``n_samples`` uniform x in ``[condition.params['lo'], condition.params['hi'])``."""

    n_samples: int = 50

    def explore(self, models: Sequence[TrainResult], condition: Condition, ctx: TaskContext) -> ExploredBatch:
        rng = np.random.default_rng(ctx.seed)
        x = rng.uniform(condition.params["lo"], condition.params["hi"], self.n_samples)
        preds = np.stack([np.interp(x, *load_model(m.model_paths[0])) for m in models])
        dev, mean = preds.std(axis=0), preds.mean(axis=0)
        cands = tuple(Candidate(deviation=float(d), payload=float(xi), meta={"mean": float(m)})
                      for xi, d, m in zip(x, dev, mean))
        return ExploredBatch(condition=condition, candidates=cands)


@LABELERS.register("toy1d")
@dataclass(frozen=True)
class FunctionLabeler:
    """The true f(x), with reproducible failures.

    fail_rate: probability that a try raises RuntimeError.
    nan_rate:  probability that a try returns (x, nan).
    poison:    [lo, hi) interval of x where every try returns NaN (quarantined items).
    delay_s:   sleep per try (to make the loop slow enough to kill mid-run).
    call_log:  file to which each try appends "<task key> <try>\\n" (fsync'ed) first.
    """

    fail_rate: float = 0.0
    nan_rate: float = 0.0
    poison: tuple[float, float] | None = None
    delay_s: float = 0.0
    call_log: str | None = None

    def label(self, candidate: Candidate, ctx: TaskContext) -> tuple[float, float]:
        if self.call_log:
            with open(self.call_log, "a") as fh:
                fh.write(f"{ctx.key} {ctx.attempt}\n")
                fh.flush()
                os.fsync(fh.fileno())
        if self.delay_s:
            time.sleep(self.delay_s)
        x = float(candidate.payload)
        if self.poison and self.poison[0] <= x < self.poison[1]:
            return (x, float("nan"))
        u = random.Random(f"{ctx.seed}:{ctx.attempt}").random()
        if u < self.fail_rate:
            raise RuntimeError(f"reference failed on try {ctx.attempt + 1} (simulated)")
        if u < self.fail_rate + self.nan_rate:
            return (x, float("nan"))
        return (x, true_f(x))


def conditions(n: int = 4) -> list[Condition]:
    edges = np.linspace(-2.0, 2.0, n + 1)
    return [Condition(f"x{a:+.1f}..{b:+.1f}", {"lo": float(a), "hi": float(b)}) for a, b in zip(edges, edges[1:])]


def initial_data(n: int = 5) -> list[tuple[float, float]]:
    return [(float(x), true_f(float(x))) for x in np.linspace(-2.0, 2.0, n)]


def toy_loop(run_dir: str | Path, executor: Any, *, labeler: FunctionLabeler | None = None,
             settings: LoopSettings | None = None, lo: float = 0.02, hi: float = 1.0,
             threshold: float = 0.98, max_select: int = 10, n_samples: int = 50,
             observers: Sequence[Any] = (), trainer: Any = None) -> BatchLoop:
    """The toy loop with the defaults the tests use."""
    return BatchLoop(trainer=trainer or InterpTrainer(), explorer=UniformExplorer(n_samples),
                     selector=TrustWindowSelector(lo, hi, threshold=threshold, max_select=max_select),
                     labeler=labeler or FunctionLabeler(), conditions=conditions(), initial_data=initial_data(),
                     run_dir=run_dir, executor=executor,
                     settings=settings or LoopSettings(n_models=4, max_iterations=20, label_retries=2),
                     observers=observers)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="run the 1-D toy concurrent-learning loop")
    p.add_argument("run_dir")
    p.add_argument("--call-log", default=None)
    p.add_argument("--delay", type=float, default=0.0, help="seconds per labeler try")
    p.add_argument("--flaky", action="store_true", help="fail_rate 0.2, nan_rate 0.1, poison [0.50, 0.53)")
    p.add_argument("--executor", choices=["inprocess", "processes"], default="inprocess")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from ..exec import InProcessExecutor, LocalProcessExecutor

    flaky = dict(fail_rate=0.2, nan_rate=0.1, poison=(0.50, 0.53)) if args.flaky else {}
    labeler = FunctionLabeler(delay_s=args.delay, call_log=args.call_log, **flaky)
    ex = InProcessExecutor() if args.executor == "inprocess" else LocalProcessExecutor(2)
    with ex:
        settings = LoopSettings(n_models=4, max_iterations=20, label_retries=2, seed=args.seed)
        report = toy_loop(args.run_dir, ex, labeler=labeler, settings=settings).run()
    print(json.dumps({"converged": report.converged, "iterations": len(report.iterations),
                      "n_labelled": report.n_labelled, "n_data": len(report.data),
                      "quarantined": [q.reason for q in report.quarantined],
                      "timing": report.timing.summary()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
