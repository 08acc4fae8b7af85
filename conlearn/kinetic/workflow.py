"""The kinetic workflow behind ``conlearn run | status | report`` (``workflow: kinetic``):
ML moment closures of BGK gas dynamics (see :mod:`conlearn.kinetic.run`)."""

from ..workflows import FunctionWorkflow
from .config import read_config
from .report import status_text, write_report
from .run import run

WORKFLOW = FunctionWorkflow("kinetic", read_config, run, status_text, write_report)
