"""Engine overhead of core.BatchLoop: bookkeeping per task vs task length.

The 1-D toy loop (conlearn.testing.toy) in-process, with a reference call that sleeps
``delay`` seconds, for several delays. Prints, per delay: tasks run, engine ms per task
(bookkeeping + one fsync'ed manifest line), the overhead fraction engine / wall and the
utilisation task / wall. The engine cost is a few ms per task, so the overhead fraction falls
with task length; the product target is < 2 % for tasks of ~0.1 s or more.

    OMP_NUM_THREADS=1 python benchmarks/loop_overhead.py [--delays 0.01 0.04 0.1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_one(delay: float, iterations: int) -> dict:
    from conlearn.core import LoopSettings
    from conlearn.exec import InProcessExecutor
    from conlearn.testing.toy import FunctionLabeler, toy_loop

    with tempfile.TemporaryDirectory() as d:
        settings = LoopSettings(n_models=2, max_iterations=iterations)
        report = toy_loop(d, InProcessExecutor(), labeler=FunctionLabeler(delay_s=delay),
                          settings=settings).run()
    t = report.timing
    return {"delay_s": delay, "tasks": t.n_tasks, "engine_ms_per_task": 1e3 * t.engine / t.n_tasks,
            "overhead_fraction": t.overhead_fraction, "utilisation": t.utilisation}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--delays", type=float, nargs="+", default=[0.01, 0.04, 0.1])
    ap.add_argument("--iterations", type=int, default=2)
    args = ap.parse_args(argv)
    print("| reference call (s) | tasks | engine ms/task | overhead engine/wall | utilisation |")
    print("|---|---|---|---|---|")
    for delay in args.delays:
        r = run_one(delay, args.iterations)
        print(f"| {delay:g} | {r['tasks']} | {r['engine_ms_per_task']:.2f} | "
              f"{100 * r['overhead_fraction']:.2f} % | {r['utilisation']:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
