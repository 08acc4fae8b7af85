"""The labelling wrapper: retries, NaN/inf rejection, time limit, quarantine reasons."""

import math
import time
from dataclasses import dataclass

import numpy as np

from conlearn.core import Candidate, TaskContext
from conlearn.core.tasks import first_nonfinite, label_with_retries, run_task


def ctx(tmp_path, key="iter-000/label/000003"):
    return TaskContext(key=key, iteration=0, index=3, seed=11, workdir=str(tmp_path / "w"))


@dataclass
class Scripted:
    """Labeler whose try n does script[n]: a value, an exception, or ('sleep', s)."""

    script: tuple

    def label(self, candidate, ctx):
        step = self.script[ctx.attempt]
        if isinstance(step, Exception):
            raise step
        if isinstance(step, tuple) and step[0] == "sleep":
            time.sleep(step[1])
            return 1.0
        return step


CAND = Candidate(deviation=0.3, payload=0.5, key="iter-000/explore/0000/00007")


def test_retry_then_success_keeps_earlier_errors(tmp_path):
    r = label_with_retries(Scripted((RuntimeError("scf"), {"e": math.nan}, {"e": 1.5})), CAND, 2, None, ctx(tmp_path))
    assert r.ok and r.payload == {"e": 1.5} and r.attempts == 3 and r.reason is None
    assert r.errors == ("try 1: RuntimeError: scf", "try 2: non-finite value at payload['e']")
    assert (r.key, r.candidate_key) == ("iter-000/label/000003", CAND.key)


def test_all_tries_fail_gives_quarantine_with_reasons(tmp_path):
    r = label_with_retries(Scripted((ValueError("a"), ValueError("b"))), CAND, 1, None, ctx(tmp_path))
    assert not r.ok and r.payload is None and r.attempts == 2
    assert r.reason == "try 2: ValueError: b" and len(r.errors) == 2


def test_inf_in_an_array_is_a_failure(tmp_path):
    forces = np.zeros((4, 3))
    forces[2, 1] = np.inf
    r = label_with_retries(Scripted(({"forces": forces},)), CAND, 0, None, ctx(tmp_path))
    assert not r.ok and r.reason == "try 1: non-finite value at payload['forces'][2,1]"


def test_time_limit_per_try(tmp_path):
    t0 = time.perf_counter()
    r = label_with_retries(Scripted((("sleep", 2.0), 4.0)), CAND, 1, 0.2, ctx(tmp_path))
    assert time.perf_counter() - t0 < 1.5
    assert r.ok and r.payload == 4.0 and r.errors == ("try 1: TimeoutError: timed out after 0.2 s",)


def test_first_nonfinite_paths():
    assert first_nonfinite({"a": [1, 2.0, (3, float("nan"))]}) == "payload['a'][2][1]"
    assert first_nonfinite(np.float64("inf")) == "payload"
    assert first_nonfinite(np.arange(6.0).reshape(2, 3)) is None
    assert first_nonfinite(np.array([1, 2])) is None
    assert first_nonfinite(complex(1, math.inf)) == "payload"
    assert first_nonfinite(("x", None, True, 3)) is None
    assert first_nonfinite(CAND) is None


def test_run_task_creates_workdir_and_times(tmp_path):
    c = ctx(tmp_path)
    out = run_task(lambda x, ctx: (x, ctx.key), c, 7)
    assert out.value == (7, c.key) and out.seconds >= 0 and (tmp_path / "w").is_dir() and ":" in out.worker
