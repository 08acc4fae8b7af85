"""The kinetic workflow behind ``conlearn run | status | report`` (``workflow: kinetic``)."""

from __future__ import annotations

from pathlib import Path

from .config import read_config
from .report import status_text, write_report
from .run import run


class KineticWorkflow:
    """ML moment closures of BGK gas dynamics (see :mod:`conlearn.kinetic.run`)."""

    name = "kinetic"

    def load(self, path):
        return read_config(path)

    def run(self, cfg, run_dir, executor, observers=()):
        return run(cfg, Path(run_dir), executor, observers=observers)

    def status(self, run_dir):
        return status_text(Path(run_dir))

    def report(self, run_dir):
        return write_report(Path(run_dir))


WORKFLOW = KineticWorkflow()
