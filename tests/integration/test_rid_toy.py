"""RiD on the toy (φ, ψ, z) Langevin system end to end: the learned FES against the exact one,
kill -9 and resume (same labels, none recomputed), status/report, load_free_energy.

The toy's exact FES is V(φ, ψ) − c² cos² φ / (2k) (conlearn.rid.toy).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conlearn import cli
from conlearn.core.manifest import read_records
from conlearn.core.observers import BaseObserver
from conlearn.exec import InProcessExecutor
from conlearn.rid import load_free_energy
from conlearn.rid.engine import kT
from conlearn.rid.outputs import labels_of
from conlearn.rid.toy import toy_fes
from conlearn.rid.workflow import WORKFLOW

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "rid_toy.yaml"


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rid") / "run"
    summary = WORKFLOW.run(WORKFLOW.load(EXAMPLE), out, InProcessExecutor())
    return out, summary


def test_toy_fes_within_half_kj_per_mol_below_10_kT(toy_run):
    out, summary = toy_run
    z = np.load(out / "fes_grid.npz")
    assert np.array_equal(z["phi"], np.linspace(-np.pi, np.pi, 72)[:-1]) and np.array_equal(z["psi"], z["phi"])
    A = z["A"]
    assert A.shape == (71, 71) and A.min() == 0.0
    P, S = np.meshgrid(z["phi"], z["psi"], indexing="ij")
    exact = toy_fes(P, S)
    exact -= exact.min()
    low = exact < 10 * kT(300.0)
    diff = A[low] - exact[low]
    rmse = np.sqrt(np.mean((diff - diff.mean()) ** 2))
    print(f"toy FES RMSE below 10 kT: {rmse:.3f} kJ/mol over {low.mean():.0%} of the torus; {summary['labels']} labels")
    assert rmse <= 0.5
    assert np.sqrt(np.mean(diff ** 2)) <= 1.0  # also without the best shift (both minima at 0)


def test_summary_counts_and_python_api(toy_run):
    out, summary = toy_run
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["iterations"] == summary["iterations"] >= 2
    labels = labels_of(out)
    assert on_disk["labels"] == len(labels) > 20 and on_disk["labels_dropped"] == len(on_disk["dropped"])
    assert on_disk["md_steps_label"] >= sum(p["n_steps"] for p in labels) > 0
    n_explore = sum(1 for k, _ in read_records(out / "manifest.jsonl") if "/explore/" in k)
    assert on_disk["md_steps_explore"] == n_explore * 6000
    assert on_disk["wall_s"] > 0 and json.loads((out / "config.json").read_text())["workflow"] == "rid"
    fe = load_free_energy(out)
    z = np.load(out / "fes_grid.npz")
    pts = np.stack(np.meshgrid(z["phi"], z["psi"], indexing="ij"), -1).reshape(-1, 2)
    assert np.allclose(fe.A(pts).reshape(71, 71), z["A"], atol=1e-9)
    s = np.array([[0.3, -1.0], [-2.5, 1.4]])
    F = fe.mean_force(s)
    h = 1e-5
    num = -np.stack([(fe.A(s + [h, 0]) - fe.A(s - [h, 0])) / (2 * h), (fe.A(s + [0, h]) - fe.A(s - [0, h])) / (2 * h)], 1)
    assert F.shape == (2, 2) and np.allclose(F, num, atol=1e-5)


def test_status_and_report_through_the_cli(toy_run, capsys):
    out, summary = toy_run
    assert cli.main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "iter 0" in text and f"labels {summary['labels']}, dropped {summary['labels_dropped']}" in text
    assert cli.main(["report", str(out)]) == 0
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64") == 5
    assert {p.name for p in (out / "report").iterdir()} == {"iterations.png", "fes_maps.png", "eps_maps.png",
                                                           "projections.png", "labels.png"}


SMALL = {"max_iterations: 7": "max_iterations: 2", "n_walkers: 4": "n_walkers: 2", "n_steps: 6000": "n_steps: 1500",
         "max_select: 40": "max_select: 6", "n_steps: 1500          # per replica": "n_steps: 600",
         "max_error: 0.8": "max_error: 5.0", "n_steps: 1500\n": "n_steps: 150\n", "reuse_n_steps: 400": "reuse_n_steps: 50",
         "final_n_steps: 1500": "final_n_steps: 100"}


class Counter(BaseObserver):
    def __init__(self):
        self.computed, self.cached = [], []

    def on_task_done(self, iteration, stage, key, value, cached):
        (self.cached if cached else self.computed).append(key)


def label_payloads(run):
    return [(p["s"].tolist(), p["mean_force"].tolist(), p["error"].tolist()) for p in labels_of(run)]


def test_kill_9_then_resume_gives_the_same_labels_without_recomputing(tmp_path):
    text = EXAMPLE.read_text()
    for a, b in SMALL.items():
        assert a in text, a
        text = text.replace(a, b)
    cfg_path = tmp_path / "small.yaml"
    cfg_path.write_text(text)
    ref = tmp_path / "ref"
    WORKFLOW.run(WORKFLOW.load(cfg_path), ref, InProcessExecutor())
    killed = tmp_path / "killed"
    code = ("from conlearn.rid.workflow import WORKFLOW; from conlearn.exec import InProcessExecutor; "
            f"WORKFLOW.run(WORKFLOW.load({str(cfg_path)!r}), {str(killed)!r}, InProcessExecutor())")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    t0 = time.time()
    while time.time() - t0 < 120:
        recs = dict(read_records(killed / "manifest.jsonl"))
        if sum("/label/" in k for k in recs) >= 3:
            break
        assert proc.poll() is None, "the run finished before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = dict(read_records(killed / "manifest.jsonl"))
    n_labels_before = sum("/label/" in k for k in before)
    assert n_labels_before >= 3 and not (killed / "summary.json").exists()
    counter = Counter()
    WORKFLOW.run(WORKFLOW.load(cfg_path), killed, InProcessExecutor(), [counter])
    after = dict(read_records(killed / "manifest.jsonl"))
    for k, r in before.items():  # recorded tasks are replayed, never recomputed
        assert after[k].time == r.time
        if "/label/" in k:
            assert k in counter.cached and k not in counter.computed
    assert label_payloads(killed) == label_payloads(ref)
    assert json.loads((killed / "summary.json").read_text())["labels"] == json.loads((ref / "summary.json").read_text())["labels"]
    # a changed science setting is refused before anything runs
    cfg_path.write_text(text.replace("kappa: 1000", "kappa: 800"))
    with pytest.raises(ValueError, match="label.kappa"):
        WORKFLOW.run(WORKFLOW.load(cfg_path), killed, InProcessExecutor())
