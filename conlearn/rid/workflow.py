"""The RiD workflow behind ``conlearn run | status | report`` (``workflow: rid``):
free-energy surfaces by reinforced dynamics (see :mod:`conlearn.rid.run`)."""

from ..workflows import FunctionWorkflow
from .config import read_rid_config
from .report import status_text, write_report
from .run import run

WORKFLOW = FunctionWorkflow("rid", read_rid_config, run, status_text, write_report)
