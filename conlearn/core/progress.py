"""Console progress for every ``conlearn run`` workflow: a bar per stage and one summary line per iteration."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

from .observers import BaseObserver


class ConsoleProgress(BaseObserver):
    """tqdm bars on stderr (hidden when not a terminal) plus concise iteration lines."""

    def __init__(self, stream=None):
        self.stream = stream if stream is not None else sys.stderr  # the stderr of now, not of import
        self.bar = None
        self.t0 = time.perf_counter()

    def on_stage_start(self, iteration, stage, n_tasks, n_cached):
        if self.bar is not None:
            self.bar.close()
        self.bar = tqdm(total=n_tasks, initial=n_cached, desc=f"iter {iteration} {stage:7s}", file=self.stream,
                        leave=False, disable=None, dynamic_ncols=True)

    def on_task_done(self, iteration, stage, key, value, cached):
        if self.bar is not None and not cached:
            self.bar.update(1)

    def on_stage_end(self, iteration, stage, seconds):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_iteration_end(self, report):
        s = report.summary()
        n = max(1, s["n_explored"])
        print(f"[{time.perf_counter() - self.t0:7.1f} s] iter {s['iteration']}: explored {s['n_explored']} "
              f"accurate {100 * s['n_accurate'] / n:.1f}% candidate {100 * s['n_candidate'] / n:.1f}% "
              f"failed {100 * s['n_failed'] / n:.1f}%  labelled {s['n_labelled']}  data {s['n_data']}",
              file=self.stream, flush=True)

    def on_loop_end(self, report):
        t = report.timing
        busy = f"; workers busy {100 * t.utilisation:.0f}% ({t.slots} slots)" if t.utilisation is not None else ""
        print(f"loop {'converged' if report.converged else 'stopped'} after {len(report.iterations)} "
              f"iterations; engine overhead {100 * t.overhead_fraction:.2f}% of wall time{busy}",
              file=self.stream, flush=True)
