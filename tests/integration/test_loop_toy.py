"""The whole loop on the 1-D toy: in-process, on real Dask LocalClusters, and killed with
SIGKILL at random moments then resumed (nothing lost, no recorded label computed again)."""

import collections
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conlearn.core import LoopSettings, Manifest
from conlearn.core.manifest import read_records
from conlearn.testing.toy import FunctionLabeler, main as toy_main, toy_loop
from conlearn.exec import DaskExecutor, InProcessExecutor

FLAKY = dict(fail_rate=0.2, nan_rate=0.1, poison=(0.50, 0.53))  # = the toy CLI's --flaky
SETTINGS = LoopSettings(n_models=4, max_iterations=20, label_retries=2)


def label_records(run_dir):
    """{label key: (candidate key, ok, payload, reason, attempts)} from a run's manifest."""
    with Manifest(run_dir) as m:
        out = {}
        for r in m.records():
            if "/label/" in r.key:
                v = m.load(r.key)
                out[r.key] = (v.candidate_key, v.ok, v.payload, v.reason, v.attempts)
        return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted in-process run of the flaky toy, with its labeler call log."""
    d = tmp_path_factory.mktemp("reference")
    log = d / "calls.log"
    report = toy_loop(d / "run", InProcessExecutor(), labeler=FunctionLabeler(call_log=str(log), **FLAKY),
                      settings=SETTINGS).run()
    return report, d / "run", log


def test_in_process_run_converges_with_quarantine_reasons(reference):
    report, run_dir, log = reference
    assert report.converged and 3 <= len(report.iterations) < 20
    assert report.iterations[-1].selection.accurate_fraction >= 0.98
    assert report.n_labelled >= 30 and len(report.data) == 5 + report.n_labelled
    q = report.quarantined
    assert len(q) >= 2
    assert all(r.attempts == 3 and r.reason.startswith("try 3: ") and len(r.errors) == 3 for r in q)
    assert any("non-finite value at payload[1]" in r.reason for r in q)  # the poisoned interval
    labels = label_records(run_dir)
    assert sum(ok for _, ok, *_ in labels.values()) == report.n_labelled
    calls = [line.split() for line in log.read_text().splitlines()]
    assert len(calls) == sum(v[4] for v in labels.values())  # every try logged once
    assert len(set(map(tuple, calls))) == len(calls)


def test_dask_local_cluster_converges_to_the_same_result(reference, tmp_path):
    ref, ref_dir, _ = reference
    with DaskExecutor.local(n_workers=1, threads_per_worker=2, processes=False) as ex:
        report = toy_loop(tmp_path, ex, labeler=FunctionLabeler(**FLAKY), settings=SETTINGS).run()
    assert report.converged and len(report.iterations) == len(ref.iterations)
    assert report.data == ref.data  # seeds come from task keys, not from execution order
    assert [r.reason for r in report.quarantined] == [r.reason for r in ref.quarantined]
    assert label_records(tmp_path) == label_records(ref_dir)


def test_dask_worker_processes_compute_what_the_reference_did(reference, tmp_path):
    """Two iterations on a spawned Dask worker process: same labels as the reference's."""
    ref, ref_dir, _ = reference
    settings = LoopSettings(n_models=4, max_iterations=2, label_retries=2, label_last=True)
    with DaskExecutor.local(n_workers=1, threads_per_worker=2, processes=True) as ex:
        report = toy_loop(tmp_path, ex, labeler=FunctionLabeler(**FLAKY), settings=settings).run()
    assert [it.summary() for it in report.iterations] == [it.summary() for it in ref.iterations[:2]]
    ref_labels = {k: v for k, v in label_records(ref_dir).items() if k < "iter-002"}
    assert label_records(tmp_path) == ref_labels and len(ref_labels) > 0
    with Manifest(tmp_path) as m:  # the tasks really ran in another process
        pids = {r.meta["worker"].split(":")[1] for r in m.records("iter-000/")}
    assert pids and str(os.getpid()) not in pids


def _count_lines(path):
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _run_and_kill(cmd, manifest, target, rng):
    """Start ``cmd``; once the manifest has ``target`` lines, SIGKILL its process group."""
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while _count_lines(manifest) < target and proc.poll() is None:
        time.sleep(0.001)
    time.sleep(rng.uniform(0, 0.01))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return proc.returncode


@pytest.mark.parametrize("seed, executor", [(1, "inprocess"), (2, "inprocess"), (3, "processes")])
def test_kill9_and_resume_loses_nothing_and_recomputes_no_recorded_label(reference, tmp_path, seed, executor):
    ref, ref_dir, ref_log = reference
    run_dir, log = tmp_path / "run", tmp_path / "calls.log"
    cmd = [sys.executable, "-m", "conlearn.testing.toy", str(run_dir), "--flaky", "--delay", "0.003",
           "--call-log", str(log), "--executor", executor]
    n_total = _count_lines(ref_dir / "manifest.jsonl")
    rng = random.Random(seed)
    targets = sorted(rng.sample(range(3, n_total - 12), 2))
    snapshots = []  # (label keys recorded at the kill, call-log lines at the kill)
    for target in targets:
        rc = _run_and_kill(cmd, run_dir / "manifest.jsonl", target, rng)
        assert rc == -signal.SIGKILL  # killed mid-run, not finished
        recorded = {k for k, _ in read_records(run_dir / "manifest.jsonl") if "/label/" in k}
        snapshots.append((recorded, _count_lines(log)))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["converged"] and summary["n_labelled"] == ref.n_labelled

    # the final labelled set (and every quarantine) equals the uninterrupted run's
    assert label_records(run_dir) == label_records(ref_dir)
    keys = [k for k, _ in read_records(run_dir / "manifest.jsonl")]
    assert len(keys) == len(set(keys)) == n_total  # each task recorded exactly once

    # no labeler call after a kill for a task that was already recorded at that kill
    calls = [tuple(line.split()) for line in log.read_text().splitlines()]
    for recorded, n_before in snapshots:
        again = {key for key, _ in calls[n_before:]} & recorded
        assert not again, f"recorded labels recomputed after resume: {sorted(again)}"
    # the only repeated tries are those of tasks in flight at a kill (<= workers per kill)
    ref_calls = collections.Counter(tuple(line.split()) for line in ref_log.read_text().splitlines())
    counts = collections.Counter(calls)
    assert set(counts) == set(ref_calls)
    repeated = {key for (key, _), n in counts.items() if n > 1}
    assert len(repeated) <= len(snapshots) * (2 if executor == "processes" else 1)
    assert all(n == 1 for c, n in counts.items() if c[0] not in repeated)


def test_toy_cli_entry_point_matches_the_library_run(reference, tmp_path, capsys):
    ref, _, _ = reference
    assert toy_main([str(tmp_path / "run"), "--flaky"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["converged"] and out["n_labelled"] == ref.n_labelled and out["n_data"] == len(ref.data)
    assert out["quarantined"] == [r.reason for r in ref.quarantined]
    assert Path(tmp_path / "run" / "manifest.jsonl").is_file()
