"""The tiny aluminium loop of test_dpgen_al on a real Slurm cluster: the local one-node cluster
of ``scripts/slurm-local.sh`` (``.ci/run`` starts it; elsewhere these tests skip, saying how).

Workers are Slurm jobs submitted by dask-jobqueue from a ``kind: slurm`` resources file (one
core per job, two jobs, scheduler on 127.0.0.1). The reference is EMT through
:class:`LoggedEMT`, which first appends one line per label call to a call log (task key,
Slurm job id, pid, OMP_NUM_THREADS): the tests see which labels ran, in which job, how often.
"""

from __future__ import annotations

import collections
import functools
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.calculators.calculator import all_changes
from ase.calculators.emt import EMT

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DELAY_S = 1.0  # label time in the cancel/kill tests: long enough to act while a label runs
JOBS = 2       # Slurm jobs (= Dask workers, one core each) of a run
pytestmark = [pytest.mark.slurm, pytest.mark.timeout(300)]


class LoggedEMT(EMT):
    """EMT that appends ``"<workdir> <SLURM_JOB_ID> <pid> <OMP_NUM_THREADS>"`` to ``log`` (fsync'ed) before each
    calculation, then sleeps ``delay_s`` seconds. The labeler sets ``directory`` to the task's
    work directory, ``<run_dir>/work/<task key>``."""

    def __init__(self, log: str, delay_s: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.log, self.delay_s = log, delay_s

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        with open(self.log, "a") as fh:
            env = os.environ.get
            fh.write(f"{self.directory} {env('SLURM_JOB_ID', '-')} {os.getpid()} {env('OMP_NUM_THREADS', '-')}\n")
            fh.flush()
            os.fsync(fh.fileno())
        time.sleep(self.delay_s)
        super().calculate(atoms, properties, system_changes)


# -- configs and readers -------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _tiny_json() -> str:
    spec = importlib.util.spec_from_file_location("_conlearn_test_dpgen_al", HERE / "test_dpgen_al.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return json.dumps(mod.TINY)


def tiny(log: Path, delay_s: float = 0.0) -> dict:
    """test_dpgen_al's TINY config with the logged EMT as reference."""
    cfg = json.loads(_tiny_json())
    cfg["reference"] = {"kind": "ase", "calculator": "test_slurm:LoggedEMT",
                        "options": {"log": str(log), "delay_s": delay_s}}
    return cfg


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def slurm_resources(tmp_path: Path) -> Path:
    """A ``kind: slurm`` resources file: every task kind in one-core jobs, JOBS of them kept,
    the venv's python, the default prologue (one numeric thread) and ``nice`` (shared cores)."""
    from conlearn.exec.resources import ClusterSpec

    task = {"cores": 1, "memory": "2GB", "walltime": "00:20:00", "min_jobs": JOBS, "max_jobs": JOBS}
    prologue = ClusterSpec().job_script_prologue + ["renice -n 10 -p $$ >/dev/null 2>&1 || true"]
    return write(tmp_path / "resources.yaml", {
        "cluster": {"kind": "slurm", "interface": "lo", "python": sys.executable,
                    "log_directory": str(tmp_path / "slurm-logs"), "job_script_prologue": prologue},
        "tasks": {kind: dict(task) for kind in ("train", "explore", "label")}})


def recorded_keys(run_dir: Path) -> list[str]:
    from conlearn.core.manifest import read_records

    return [k for k, _ in read_records(run_dir / "manifest.jsonl")]


def label_keys(run_dir: Path) -> list[str]:
    return [k for k in recorded_keys(run_dir) if "/label/" in k]


def labels(run_dir: Path) -> dict[str, tuple]:
    """``{label key: (ok, energy eV, forces [n, 3] eV/Å)}`` as recorded in the manifest."""
    from conlearn.core.manifest import Manifest

    out = {}
    with Manifest(run_dir) as m:
        for r in m.records():
            if "/label/" in r.key:
                v = m.load(r.key)
                out[r.key] = (v.ok, v.payload["energy"], v.payload["forces"]) if v.ok else (False, None, None)
    return out


def assert_same_labels(run_dir: Path, ref_dir: Path) -> None:
    got, want = labels(run_dir), labels(ref_dir)
    assert sorted(got) == sorted(want)
    for key, (ok, energy, forces) in want.items():
        assert got[key][0] == ok, key
        if ok:
            np.testing.assert_allclose(got[key][1], energy, rtol=1e-9, atol=1e-9, err_msg=key)
            np.testing.assert_allclose(got[key][2], forces, rtol=1e-9, atol=1e-9, err_msg=key)


def calls(log: Path, run_dir: Path, omp: bool = False) -> list[tuple]:
    """The call log as ``(task key, Slurm job id or "-", pid)`` (``omp``: and the worker's
    OMP_NUM_THREADS), in call order."""
    if not log.exists():
        return []
    work = str(run_dir.resolve() / "work") + os.sep
    out = []
    for line in log.read_text().splitlines():
        workdir, job, pid, threads = line.rsplit(" ", 3)
        assert workdir.startswith(work), line
        out.append((workdir[len(work):], job, int(pid)) + ((threads,) if omp else ()))
    return out


def in_flight(log: Path, run_dir: Path, prefix: str) -> tuple | None:
    """``(key, job id, n calls, recorded label keys)`` of the newest label call under ``prefix``
    not recorded in the manifest (read after the call log), or None."""
    done = calls(log, run_dir)
    recorded = set(label_keys(run_dir)) if (run_dir / "manifest.jsonl").exists() else set()
    for key, job, _ in reversed(done):
        if key.startswith(prefix) and key not in recorded:
            return key, job, len(done), recorded
    return None


def queue() -> dict[str, str]:
    """``{job id: state}`` of conlearn's jobs on the cluster."""
    out = subprocess.run(["squeue", "-h", "-o", "%i %T %j"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return {j: s for j, s, name in (line.split() for line in out.stdout.splitlines()) if name.startswith("conlearn-")}


def cli(tmp_path: Path, log: Path, run_dir: Path, **kw) -> subprocess.Popen:
    """``conlearn run`` on the Slurm resources, as a process of its own group."""
    cfg = write(tmp_path / "run.yaml", tiny(log, delay_s=DELAY_S))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)]),
           "DASK_DISTRIBUTED__DEPLOY__LOST_WORKER_TIMEOUT": "1s"}  # replace a lost job after 1 s, not 15
    cmd = [sys.executable, "-m", "conlearn.cli", "run", str(cfg), "--out", str(run_dir),
           "--resources", str(slurm_resources(tmp_path))]
    with open(tmp_path / "driver.err", "ab") as err:  # the child keeps its own descriptor
        return subprocess.Popen(cmd, env=env, cwd=tmp_path, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=err, **kw)


def wait_for(what: str, fn, proc: subprocess.Popen, timeout_s: float = 180):
    """Poll ``fn()`` until it returns something true while ``proc`` runs."""
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        got = fn()
        if got:
            return got
        assert proc.poll() is None, f"the run ended (status {proc.returncode}) before {what}"
        time.sleep(0.05)
    raise AssertionError(f"no {what} after {timeout_s} s")


def driver_error(tmp_path: Path) -> str:
    return (tmp_path / "driver.err").read_text()[-3000:]


# -- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def importable(slurm_conf):
    """LoggedEMT importable as ``test_slurm`` here and in the jobs (they inherit PYTHONPATH)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(HERE))
        mp.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(HERE), os.environ.get("PYTHONPATH", "")]))
        yield


@pytest.fixture(scope="module")
def reference(importable, tmp_path_factory):
    """The uninterrupted in-process run: its run directory and call log."""
    from conlearn.atoms.dpgen.config import read_run_config
    from conlearn.atoms.dpgen.run import run
    from conlearn.exec.base import InProcessExecutor

    d = tmp_path_factory.mktemp("inprocess")
    log = d / "calls.log"
    run(read_run_config(write(d / "run.yaml", tiny(log))), d / "run", InProcessExecutor(), log=lambda m: None)
    return d / "run", log


# -- tests ----------------------------------------------------------------------------------
def test_tiny_loop_on_slurm_labels_what_in_process_labels(reference, tmp_path):
    from conlearn.atoms.dpgen.config import read_run_config
    from conlearn.atoms.dpgen.run import run
    from conlearn.exec.resources import build_executor, load_resources

    ref_dir, _ = reference
    log, run_dir = tmp_path / "calls.log", tmp_path / "run"
    cfg = read_run_config(write(tmp_path / "run.yaml", tiny(log)))
    with build_executor(load_resources(slurm_resources(tmp_path))) as ex:
        assert ex.client_for("label").scheduler.address.startswith("tcp://127.0.0.1:")  # loopback
        run(cfg, run_dir, ex, log=lambda m: None)
    assert_same_labels(run_dir, ref_dir)
    a, b = (json.loads((d / "summary.json").read_text()) for d in (run_dir, ref_dir))
    assert (a["explored_frames"], a["labelled_frames"]) == (b["explored_frames"], b["labelled_frames"])
    # every label computed once, in a Slurm job (one numeric thread), never in the driver
    done = calls(log, run_dir, omp=True)
    assert sorted(k for k, *_ in done) == sorted(label_keys(run_dir))
    assert all(job != "-" and pid != os.getpid() and threads == "1" for _, job, pid, threads in done)
    t0 = time.time()
    while queue() and time.time() - t0 < 30:
        time.sleep(0.5)
    assert not queue(), f"jobs left after the executor closed: {queue()}"


def test_scancelled_worker_job_is_replaced_and_nothing_is_lost_or_labelled_twice(reference, tmp_path):
    ref_dir, _ = reference
    log, run_dir = tmp_path / "calls.log", tmp_path / "run"
    proc = cli(tmp_path, log, run_dir)
    try:
        # cancel the job that is computing an initial label (the others keep running)
        key, job, n_before, recorded = wait_for("initial label in flight",
                                                lambda: in_flight(log, run_dir, "init/"), proc)
        jobs_before = set(queue())
        subprocess.run(["scancel", job], check=True, timeout=30)
        assert job in jobs_before
        new = wait_for("replacement job", lambda: [j for j, s in queue().items()
                                                   if j not in jobs_before and s == "RUNNING"], proc)
        assert proc.wait(timeout=240) == 0, driver_error(tmp_path)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert new and job not in queue()
    assert_same_labels(run_dir, ref_dir)  # nothing lost
    keys = recorded_keys(run_dir)
    assert len(keys) == len(set(keys))  # each task recorded once
    done = calls(log, run_dir)
    counts = collections.Counter(k for k, _, _ in done)
    assert set(counts) == set(label_keys(run_dir))
    # only the label running in the cancelled job ran again, in another job
    assert {k for k, n in counts.items() if n > 1} <= {key} and counts[key] <= 2
    assert all(j != job for k, j, _ in done[n_before:] if k == key)
    assert not {k for k, _, _ in done[n_before:]} & recorded, "a recorded label was computed again"


def test_driver_killed_then_resumed_on_the_same_cluster(reference, tmp_path):
    ref_dir, _ = reference
    first = next((k for k in sorted(label_keys(ref_dir)) if k.startswith("iter-")), None)
    assert first, "the reference run labelled nothing in its iterations"
    stage = first.split("/")[0] + "/"
    log, run_dir = tmp_path / "calls.log", tmp_path / "run"
    proc = cli(tmp_path, log, run_dir)
    try:  # kill -9 while the first iteration's labels run
        _, _, n_before, recorded = wait_for(f"{stage} label in flight", lambda: in_flight(log, run_dir, stage), proc)
        orphans = set(queue())
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert recorded and not (run_dir / "summary.json").exists()
    resumed = cli(tmp_path, log, run_dir)
    try:
        assert resumed.wait(timeout=240) == 0, driver_error(tmp_path)
    finally:
        if resumed.poll() is None:
            os.killpg(resumed.pid, signal.SIGKILL)
    assert_same_labels(run_dir, ref_dir)
    done = calls(log, run_dir)
    assert not {k for k, _, _ in done[n_before:]} & recorded, "a recorded label was computed again"
    counts = collections.Counter(k for k, _, _ in done)
    assert set(counts) == set(label_keys(run_dir))
    keys = recorded_keys(run_dir)
    assert len(keys) == len(set(keys))  # each task recorded once
    # repeated: only labels running (or queued) in the killed driver's jobs, <= 2 per job
    assert len({k for k, n in counts.items() if n > 1}) <= 2 * JOBS
    # the killed driver's jobs ended by themselves (their workers lost the scheduler)
    assert not orphans & set(queue())
