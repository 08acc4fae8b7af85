"""On-the-fly learning (FLARE-style): MD on a GP force field that calls the reference
only when its predicted force uncertainty exceeds a threshold.  ``config`` (the YAML),
``model`` (GP + spline-mapped mean), ``loop`` (the run), ``state`` (checkpoints and
files), ``evaluate`` (held-out scores), ``plots``.  See docs/otf.md.
"""

from .config import OTFConfig, load_otf_config
from .loop import OTFRun, run_otf

__all__ = ["OTFConfig", "OTFRun", "load_otf_config", "run_otf"]
