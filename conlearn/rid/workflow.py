"""The RiD workflow behind ``conlearn run | status | report`` (``workflow: rid``)."""

from __future__ import annotations

from pathlib import Path


class RidWorkflow:
    """Free-energy surfaces by reinforced dynamics (see :mod:`conlearn.rid.run`)."""

    name = "rid"

    def load(self, path):
        from .config import read_rid_config

        return read_rid_config(path)

    def run(self, cfg, run_dir, executor, observers=()):
        from .run import run

        return run(cfg, Path(run_dir), executor, observers=observers)

    def status(self, run_dir):
        from .report import status_text

        return status_text(Path(run_dir))

    def report(self, run_dir):
        from .report import write_report

        return write_report(Path(run_dir))


WORKFLOW = RidWorkflow()
