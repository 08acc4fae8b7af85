"""``python -m conlearn``: the command line (:mod:`conlearn.cli`)."""

import sys

from .cli import main

sys.exit(main())
