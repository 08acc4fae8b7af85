"""The batch loop on the 1-D toy, in-process: counts, replay, observers, errors, timing."""

import time
from dataclasses import dataclass

import pytest

from conlearn.core import BaseObserver, LoopSettings, Manifest, StageError, TrainResult
from conlearn.testing.toy import FunctionLabeler, InterpTrainer, toy_loop
from conlearn.exec import InProcessExecutor


class Recorder(BaseObserver):
    def __init__(self):
        self.events = []

    def on_stage_start(self, iteration, stage, n_tasks, n_cached):
        self.events.append(("start", iteration, stage, n_tasks, n_cached))

    def on_task_done(self, iteration, stage, key, value, cached):
        self.events.append(("task", key, cached))

    def on_stage_end(self, iteration, stage, seconds):
        self.events.append(("end", iteration, stage))

    def on_iteration_end(self, report):
        self.events.append(("iter", report.iteration))

    def on_loop_end(self, report):
        self.events.append(("loop", report.converged))


def test_toy_converges_and_counts_add_up(tmp_path):
    rec = Recorder()
    report = toy_loop(tmp_path, InProcessExecutor(check_pickle=True), observers=[rec]).run()
    assert report.converged and 3 <= len(report.iterations) <= 20
    last = report.iterations[-1].selection
    assert last.accurate_fraction >= 0.98 and last.n_explored == 200
    assert len(report.data) == 5 + report.n_labelled == report.iterations[-1].n_data
    for it in report.iterations[:-1]:
        assert it.n_labelled + len(it.quarantined) == len(it.selection.selected) <= 10
    assert report.quarantined == ()
    with Manifest(tmp_path) as m:  # every labelled point is recorded once, nothing else
        labels = [m.load(r.key) for r in m.records() if "/label/" in r.key]
    assert sorted(r.payload for r in labels) == sorted(report.data[5:])
    # observers: stage order of iteration 0, then one iteration event per iteration
    starts = [e[2] for e in rec.events if e[0] == "start" and e[1] == 0]
    assert starts == ["train", "explore", "select", "label"]
    assert [e[1] for e in rec.events if e[0] == "iter"] == list(range(len(report.iterations)))
    assert rec.events[-1] == ("loop", True)
    n_task_events = sum(e[0] == "task" for e in rec.events)
    assert n_task_events == report.timing.n_tasks and report.timing.n_cached == 0


def test_rerun_replays_everything_from_the_manifest(tmp_path):
    first = toy_loop(tmp_path, InProcessExecutor()).run()
    rec = Recorder()
    again = toy_loop(tmp_path, InProcessExecutor(), observers=[rec]).run()
    assert again.data == first.data and len(again.iterations) == len(first.iterations)
    assert again.timing.n_tasks == 0 and again.timing.n_cached == first.timing.n_tasks
    assert all(e[2] for e in rec.events if e[0] == "task")  # all cached


def test_flaky_labeler_quarantines_with_reasons(tmp_path):
    lab = FunctionLabeler(fail_rate=0.25, nan_rate=0.15, poison=(0.5, 0.53))
    report = toy_loop(tmp_path, InProcessExecutor(), labeler=lab).run()
    assert report.converged
    q = report.quarantined
    assert len(q) >= 1 and all(not r.ok and r.attempts == 3 and len(r.errors) == 3 for r in q)
    reasons = {r.reason.split(": ", 1)[1].split(" ")[0] for r in q}
    assert reasons <= {"RuntimeError:", "non-finite"} and reasons
    assert all(r.candidate_key.startswith(f"iter-{r.key[5:8]}/explore/") for r in q)
    # transient failures were retried successfully: some good labels needed more than one try
    with Manifest(tmp_path) as m:
        labels = [m.load(r.key) for r in m.records() if "/label/" in r.key]
    assert any(r.ok and r.attempts > 1 for r in labels)
    assert sum(r.ok for r in labels) == report.n_labelled and len(labels) - report.n_labelled == len(q)
    assert all(not (0.5 <= x < 0.53) for x, _ in report.data)  # poisoned points never enter the data


@dataclass(frozen=True)
class BrokenTrainer(InterpTrainer):
    fail_member: int = 2

    def train(self, data, previous, ctx):
        if ctx.index == self.fail_member:
            raise RuntimeError("out of memory (simulated)")
        return super().train(data, previous, ctx)


def test_failing_task_raises_stage_error_and_rerun_reuses_finished_ones(tmp_path):
    loop = toy_loop(tmp_path, InProcessExecutor())
    loop.trainer = BrokenTrainer()
    with pytest.raises(StageError, match=r"iter-000/train/002: RuntimeError: out of memory"):
        loop.run()
    with Manifest(tmp_path) as m:
        assert sorted(r.key for r in m.records("iter-000/train/")) == [
            "iter-000/train/000", "iter-000/train/001", "iter-000/train/003"]
    report = toy_loop(tmp_path, InProcessExecutor()).run()
    assert report.converged and report.timing.n_cached == 3


def test_changed_settings_on_an_existing_run_dir_are_refused(tmp_path):
    toy_loop(tmp_path, InProcessExecutor(), settings=LoopSettings(n_models=4, max_iterations=1)).run()
    with pytest.raises(ValueError, match="n_models"):
        toy_loop(tmp_path, InProcessExecutor(), settings=LoopSettings(n_models=3, max_iterations=1)).run()
    # raising max_iterations continues the run
    report = toy_loop(tmp_path, InProcessExecutor(), settings=LoopSettings(n_models=4, max_iterations=2)).run()
    assert len(report.iterations) == 2 and report.timing.n_cached > 0


def test_stops_unconverged_at_max_iterations(tmp_path):
    report = toy_loop(tmp_path, InProcessExecutor(), settings=LoopSettings(n_models=2, max_iterations=2)).run()
    assert not report.converged and len(report.iterations) == 2
    assert report.iterations[-1].n_labelled == 0  # no member would train on them: not computed
    assert report.iterations[0].n_labelled > 0
    again = toy_loop(tmp_path / "b", InProcessExecutor(),
                     settings=LoopSettings(n_models=2, max_iterations=2, label_last=True)).run()
    assert again.iterations[-1].n_labelled > 0  # the last iteration's labels are kept on request


@dataclass(frozen=True)
class SlowLabeler(FunctionLabeler):
    """40 ms per reference call: a stand-in for an expensive oracle."""

    def label(self, candidate, ctx):
        time.sleep(0.04)
        return super().label(candidate, ctx)


def test_engine_timing_adds_up_for_slow_tasks(tmp_path):
    """The timing's bookkeeping identities; how small the overhead is, is measured by
    benchmarks/loop_overhead.py (a timed threshold here failed on a loaded machine)."""
    settings = LoopSettings(n_models=2, max_iterations=2)
    report = toy_loop(tmp_path, InProcessExecutor(), labeler=SlowLabeler(), settings=settings).run()
    t = report.timing
    assert t.wall == pytest.approx(t.engine + t.waiting)
    assert t.task <= t.waiting + 1e-3  # in-process: tasks run while the loop waits
    assert t.task >= 0.04 * report.n_labelled
    assert 0 < t.overhead_fraction < 1 and t.engine > 0
    # one slot in-process: utilisation = task / wall, the complement of waiting on nothing
    assert t.slots == 1 and t.utilisation == pytest.approx(t.task / t.wall)
    assert 0 < t.utilisation <= 1.0 and t.summary()["utilisation"] == t.utilisation


def test_components_are_checked_against_the_protocols(tmp_path):
    loop = toy_loop(tmp_path, InProcessExecutor())
    with pytest.raises(TypeError, match="labeler .* does not implement Labeler"):
        type(loop)(trainer=loop.trainer, explorer=loop.explorer, selector=loop.selector, labeler=object(),
                   conditions=[], initial_data=[], run_dir=tmp_path, executor=InProcessExecutor())
    assert TrainResult(0, ("m",)).summary() == {"member": 0, "model_paths": ["m"], "metrics": {}}


@dataclass(frozen=True)
class _FollowingExplorer:
    """Toy explorer whose next interval starts where the last batch's samples ended."""

    def explore(self, models, condition, ctx):
        from conlearn.testing.toy import UniformExplorer

        b = UniformExplorer(20).explore(models, condition, ctx)
        return type(b)(condition=b.condition, candidates=b.candidates,
                       meta={"end": max(c.payload for c in b.candidates)})

    def follow(self, condition, previous):
        from conlearn.core import Condition

        return Condition(condition.name, {**condition.params, "lo": previous.meta["end"], "followed": True})


def test_explorer_follow_continues_each_condition_from_the_previous_iteration(tmp_path):
    loop = toy_loop(tmp_path, InProcessExecutor(), settings=LoopSettings(n_models=2, max_iterations=3))
    loop.explorer = _FollowingExplorer()
    loop.run()
    with Manifest(tmp_path) as m:
        it0 = [m.load(k) for k in sorted(r.key for r in m.records("iter-000/explore/"))]
        it1 = [m.load(k) for k in sorted(r.key for r in m.records("iter-001/explore/"))]
    assert it0 and len(it0) == len(it1)
    for a, b in zip(it0, it1):
        assert "followed" not in a.condition.params
        assert b.condition.params["followed"] and b.condition.params["lo"] == a.meta["end"]


@dataclass(frozen=True)
class FinalRecorder(InterpTrainer):
    """Marks its models, and records what the final stage received."""

    final: bool = False

    @property
    def final_trainer(self):
        return None if self.final else FinalRecorder(final=True)

    def train(self, data, previous, ctx):
        res = super().train(data, previous, ctx)
        prev = previous.model_paths[0] if previous else ""
        return TrainResult(member=res.member, model_paths=res.model_paths,
                           metrics={**res.metrics, "final": float(self.final), "n_data": float(len(data)),
                                    "prev_iter": float(prev.split("iter-")[1][:3]) if prev else -1.0})


def test_final_trainer_trains_once_more_after_the_last_iteration(tmp_path):
    rec = Recorder()
    settings = LoopSettings(n_models=3, max_iterations=2, label_last=True)
    report = toy_loop(tmp_path, InProcessExecutor(check_pickle=True), settings=settings,
                      trainer=FinalRecorder(), observers=[rec]).run()
    assert [m.metrics["final"] for m in report.models] == [1.0, 1.0, 1.0]
    assert [m.member for m in report.models] == [0, 1, 2]
    # warm-started from the last iteration's members, on the whole data set (last labels included)
    assert all(m.metrics["prev_iter"] == 1.0 for m in report.models)
    assert report.iterations[-1].n_labelled > 0
    assert all(m.metrics["n_data"] == len(report.data) for m in report.models)
    assert all("/iter-001/final/" in m.model_paths[0] for m in report.models)
    finals = [e for e in rec.events if e[0] == "start" and e[2] == "final"]
    assert finals == [("start", 1, "final", 3, 0)]
    # replayed on a re-run; raising max_iterations trains a new final stage after the new last one
    again = toy_loop(tmp_path, InProcessExecutor(), settings=settings, trainer=FinalRecorder()).run()
    assert again.timing.n_tasks == 0 and again.models == report.models
    more = toy_loop(tmp_path, InProcessExecutor(), trainer=FinalRecorder(),
                    settings=LoopSettings(n_models=3, max_iterations=3, label_last=True)).run()
    assert all("/iter-002/final/" in m.model_paths[0] and m.metrics["prev_iter"] == 2.0 for m in more.models)
    with Manifest(tmp_path) as m:
        keys = sorted(r.key for r in m.records() if "/final/" in r.key)
    assert keys == [f"iter-00{i}/final/00{k}" for i in (1, 2) for k in range(3)]


def test_without_a_final_trainer_the_last_iteration_members_are_the_result(tmp_path):
    report = toy_loop(tmp_path, InProcessExecutor(), settings=LoopSettings(n_models=2, max_iterations=2)).run()
    assert all("/iter-001/train/" in m.model_paths[0] for m in report.models)


def test_a_final_trainer_that_is_no_trainer_is_named(tmp_path):
    @dataclass(frozen=True)
    class Broken(InterpTrainer):
        final_trainer: object = "not a trainer"

    with pytest.raises(TypeError, match="final trainer"):
        toy_loop(tmp_path, InProcessExecutor(), trainer=Broken())
