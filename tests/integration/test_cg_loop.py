"""The CG loop end to end through ``conlearn run`` on the mW bead liquid (a cheap oracle):
killed with SIGKILL once labels are recorded, resumed, nothing recorded computed again;
then ``status`` and ``report``; summary.json carries the metrics of pair and Δ."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from conlearn.cli import main
from conlearn.testing.runs import recorded_key_counts, run_killed_when

ROOT = Path(__file__).resolve().parents[2]
TINY = """\
workflow: cg
system: {liquid: mw, n_molecules: 32, dt_fs: 5}
initial: {equil_steps: 200, n_steps: 400, save_every: 40, train_frames: 4}
baseline: {rcut: 0.5, n_basis: 20}
model:
  kind: delta
  committee: 2
  net: {rcut: 0.45, rcut_smth: 0.25, sel: 32, neuron: [4, 8], axis_neuron: 4, fitting_neuron: [8, 8]}
  fit: {n_steps: 20, batch_frames: 2}
  reuse: {n_steps: 10, batch_frames: 2}
md: {n_steps: 100, save_every: 20}
selection: {trust_lo: 0.01, trust_hi: 10000, max_select: 3}
loop: {max_iterations: 2}
evaluation: {n_steps: 100, equil_steps: 20, save_every: 10, r_max: 0.5}
"""


def test_kill9_resume_status_report(tmp_path):
    cfg = tmp_path / "cg.yaml"
    cfg.write_text(TINY)
    res = tmp_path / "res.yaml"
    res.write_text("cluster: {kind: inprocess}\n")
    run = tmp_path / "run"
    args = ["run", str(cfg), "--out", str(run), "--resources", str(res)]
    killed_at = lambda k: "/label/" in k  # kill -9 once a label is recorded
    assert run_killed_when(args, run, killed_at, root=ROOT) == -signal.SIGKILL
    before = recorded_key_counts(run)
    assert before["init/reference"] == 1 and before["init/pair"] == 1 and not (run / "summary.json").exists()

    assert main(["run", str(cfg), "--out", str(run), "--resources", str(res)]) == 0
    after = recorded_key_counts(run)
    assert max(after.values()) == 1, [k for k, n in after.items() if n > 1]  # nothing recomputed
    assert set(before) <= set(after)
    s = json.loads((run / "summary.json").read_text())
    assert s["iterations"] == 2 and s["labels"] == 3
    assert sum(k.startswith("iter-000/label/") for k in after) == 3
    for name in ("pair", "delta"):
        m = s["metrics"][name]
        assert set(m) >= {"fm_residual", "rdf_rmse", "adf_l1", "density", "diffusion_ratio", "steps_per_s"}
        assert 0 < m["fm_residual"] < 2 and m["ok"] and m["steps_per_s"] > 0
    assert s["metrics"]["pair"]["fm_residual"] > 0.2  # mW's three-body forces: out of a pair's reach
    assert main(["status", str(run)]) == 0
    assert main(["report", str(run)]) == 0
    html = (run / "report.html").read_text()
    assert "RDF RMSE" in html and "data:image/png;base64" in html and (run / "report_structure.png").exists()
    # the same command again replays everything: no new manifest line
    assert main(["run", str(cfg), "--out", str(run), "--resources", str(res)]) == 0
    assert recorded_key_counts(run) == after


def test_loop_with_a_three_body_baseline_and_respa_evaluation(tmp_path):
    """``baseline.angular``: the baseline is pair + three-body (on mW it captures nearly all of
    the force, which a pair cannot), Δ trains on top of it, its saved model reloads with that
    baseline, and the evaluation runs Δ's network every ``ml_every`` steps."""
    import yaml

    from conlearn.cg import load_model
    from conlearn.cg.baseline import PairThreeBody
    from conlearn.cg.config import CGConfig
    from conlearn.cg.run import run
    from conlearn.exec import InProcessExecutor

    data = yaml.safe_load(TINY)
    data["baseline"]["angular"] = {"degree": 2}
    data["loop"]["max_iterations"] = 1
    data["evaluation"]["ml_every"] = 5
    s = run(CGConfig.model_validate(data), tmp_path / "run", InProcessExecutor(), log=lambda *a: None)
    assert s["pair_fit_residual"] < 0.02                     # pair alone: > 0.2 (test above)
    assert s["metrics"]["pair"]["fm_residual"] < 0.05 and s["metrics"]["pair"]["ok"]
    assert s["metrics"]["delta"]["ok"] and s["metrics"]["delta"]["steps_per_s"] > 0
    model = load_model(s["models"][0])
    assert isinstance(model.pair, PairThreeBody) and model.pair.threebody.lam.shape == (3,)
