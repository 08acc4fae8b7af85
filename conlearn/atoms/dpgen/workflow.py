"""The DP-GEN workflow behind ``conlearn run | status | report`` (``workflow: dpgen``, the default)."""

from __future__ import annotations

import json
from pathlib import Path

from .config import read_run_config
from .report import status_text, write_report
from .run import run


class DPGenWorkflow:
    """ML interatomic potentials, DP-GEN style (see :mod:`conlearn.atoms.dpgen.run`)."""

    name = "dpgen"

    def load(self, path):
        return read_run_config(path)

    def run(self, cfg, run_dir, executor, observers=()):
        run(cfg, Path(run_dir), executor, observers=observers)
        return json.loads((Path(run_dir) / "summary.json").read_text())

    def status(self, run_dir):
        return status_text(Path(run_dir))

    def report(self, run_dir):
        return write_report(Path(run_dir))


WORKFLOW = DPGenWorkflow()
