"""The shipped observers: logging of quarantines and the atomic summary file."""

import json
import logging

from conlearn.core import LoggingObserver, SummaryFileObserver
from conlearn.testing.toy import FunctionLabeler, toy_loop
from conlearn.exec import InProcessExecutor


def test_summary_file_and_log_report_quarantines(tmp_path, caplog):
    summary = tmp_path / "summary.json"
    lab = FunctionLabeler(poison=(-0.2, 0.2))
    with caplog.at_level(logging.INFO, logger="conlearn.loop"):
        report = toy_loop(tmp_path / "run", InProcessExecutor(), labeler=lab, threshold=0.95,
                          observers=[LoggingObserver(), SummaryFileObserver(summary)]).run()
    data = json.loads(summary.read_text())
    assert data["converged"] == report.converged and data["n_labelled"] == report.n_labelled
    assert len(data["iterations"]) == len(report.iterations)
    assert data["iterations"][0]["n_explored"] == 200
    assert len(data["quarantined"]) == len(report.quarantined) > 0
    assert all(q["reason"] == "try 3: non-finite value at payload[1]" for q in data["quarantined"])
    assert 0 < data["timing"]["overhead_fraction"] < 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(report.quarantined) and "quarantined after 3 tries" in warnings[0]
    assert any("engine overhead" in r.getMessage() for r in caplog.records)
