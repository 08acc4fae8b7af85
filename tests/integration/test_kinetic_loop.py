"""The kinetic loop end to end through ``conlearn run``: killed with SIGKILL once a loop label is
recorded, resumed (nothing recorded is computed again), then status, report and the Python API."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np

from conlearn.cli import main
from conlearn.testing.runs import recorded_key_counts, run_killed_when

ROOT = Path(__file__).resolve().parents[2]
TINY = """\
workflow: kinetic
grid: {nx: 32, t_end: 0.05, n_snapshots: 2}
initial:
  n_random: 2
  conditions:
    - {kind: riemann, kn: 0.05, left: [1.0, 0.0, 1.0], right: [0.125, 0.0, 0.1]}
explore: {n_conditions: 3}
closure: {n_models: 2, degree: 3, ae_steps: 10, steps: 40, reuse_steps: 20, hidden: [8], decoder_hidden: [8], batch: 128}
selection: {trust_lo: 0.00001, max_select: 1}
loop: {max_iterations: 2}
report: {kn: [0.1]}
"""


def test_kill9_resume_status_report_api(tmp_path):
    cfg = tmp_path / "kinetic.yaml"
    cfg.write_text(TINY)
    res = tmp_path / "res.yaml"
    res.write_text("cluster: {kind: inprocess}\n")
    run = tmp_path / "run"
    args = ["run", str(cfg), "--out", str(run), "--resources", str(res)]
    killed_at = lambda k: k.startswith("iter-000/label/")  # kill -9 once a label is recorded
    assert run_killed_when(args, run, killed_at, root=ROOT) == -signal.SIGKILL
    before = recorded_key_counts(run)
    assert sum(k.startswith("init/label/") for k in before) == 3 and not (run / "summary.json").exists()

    assert main(["run", str(cfg), "--out", str(run), "--resources", str(res)]) == 0
    after = recorded_key_counts(run)
    assert max(after.values()) == 1, [k for k, n in after.items() if n > 1]   # nothing recomputed
    assert set(before) <= set(after)
    s = json.loads((run / "summary.json").read_text())
    assert s["iterations"] == 2 and s["labelled_trajectories"] == 3 + 2 and s["model"] == "model"
    assert s["wall_s"] > 0 and set(s["errors"]) == {"sod-0", "wave-0"}
    ev = json.loads((run / "evaluation.json").read_text())
    for case in ev.values():
        assert min(case["min_rho_T"].values()) > 0
        assert case["errors"]["kinetic"]["u"] < 0.2          # same-grid kinetic vs its 4x finer self

    assert main(["status", str(run)]) == 0
    assert main(["report", str(run)]) == 0
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64") == 4 and "relative L2 errors" in html
    assert (run / "figures" / "moments.png").exists()

    from conlearn.kinetic import load_closure, simulate
    model = load_closure(run)
    x = (np.arange(32) + 0.5) / 32
    out = simulate(model, x, np.ones(32), 0.1 * np.sin(2 * np.pi * x), np.ones(32), 0.5, 0.05)
    assert out["rho"].shape == (32,) and np.isfinite(out["T"]).all()

    # the same command again replays everything: no new manifest line
    assert main(["run", str(cfg), "--out", str(run), "--resources", str(res)]) == 0
    assert recorded_key_counts(run) == after
