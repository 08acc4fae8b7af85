"""status/report of a CG run read from its manifest: iterations, metrics table, figures."""

from __future__ import annotations

import numpy as np

from conlearn.cg.report import metrics_table, status_text, write_report
from conlearn.core.manifest import Manifest
from conlearn.core.records import Candidate, Condition, ExploredBatch, Selection


def fake_run(run):
    (run / "config.json").parent.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text('{"workflow": "cg", "selection": {"trust_lo": 1.0, "trust_hi": 5.0}}')
    theta, r = np.linspace(1, 179, 90), np.linspace(0.005, 0.595, 60)
    curves = {"r": r, "g": 1 + np.exp(-((r - 0.28) / 0.03) ** 2),
              "theta": theta, "p": np.exp(-((theta - 100) / 20) ** 2),
              "msd_t": np.arange(1.0, 6.0), "msd": 0.01 * np.arange(1.0, 6.0)}
    metrics = {"fm_residual": 0.43, "rdf_rmse": 0.12, "adf_l1": 0.3, "adf_peak": 60.0, "density": 0.997,
               "diffusion_ratio": 2.5, "steps_per_s": 900.0, "ok": True, "curves": curves}
    with Manifest(run) as man:
        man.record("init/pair", {"path": "x", "fit_residual": 0.41}, {"fit_residual": 0.41})
        cands = tuple(Candidate(d, None, key=f"k/{i}") for i, d in enumerate([0.5, 2, 3, 9]))
        batch = ExploredBatch(Condition("T300"), cands)
        man.record("iter-000/explore/0000", batch)
        man.record("iter-000/select", Selection(4, 1, 2, 1, (), 0.95))
        man.record("eval/reference", curves)
        man.record("eval/pair", metrics)
        man.record("eval/delta", {**metrics, "fm_residual": 0.31, "curves": None, "rdf_rmse": None})
        man.record("bench/ibi", {**metrics, "fm_residual": 0.47})


def test_status_and_report(tmp_path):
    run = tmp_path / "run"
    fake_run(run)
    text = status_text(run)
    assert "pair baseline: fit residual 0.410" in text
    assert "frames 4 (accurate 25.0%, candidate 2, failed 1)" in text
    assert "eval delta: fm_residual=0.310, rdf_rmse=-" in text
    html = write_report(run).read_text()
    assert html.count("data:image/png;base64") == 2 and "| delta | 0.310 | - |" in html
    assert "| ibi | 0.470 |" in html and "eval ibi: fm_residual=0.470" in text
    assert (run / "report_structure.png").exists() and (run / "report_deviation.png").exists()


def test_metrics_table_has_a_row_per_model():
    t = metrics_table({"pair": {"fm_residual": 0.43}, "delta": {"fm_residual": 0.3, "ok": False}})
    lines = t.splitlines()
    assert len(lines) == 4 and lines[2].startswith("| pair | 0.430 |") and lines[3].endswith("| False |")
