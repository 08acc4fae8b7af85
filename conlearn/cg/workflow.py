"""The CG workflow behind ``conlearn run | status | report`` (``workflow: cg``):
ML coarse-grained MD learned concurrently (see :mod:`conlearn.cg.run`)."""

from ..workflows import FunctionWorkflow
from .config import read_config
from .report import status_text, write_report
from .run import run

WORKFLOW = FunctionWorkflow("cg", read_config, run, status_text, write_report)
