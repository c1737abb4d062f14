"""``python -m sgnet.data.synthetic OUT_DIR [options]``: see :mod:`sgnet.data.synthetic`."""

import sys

from ...errors import run_main
from .cli import PROG, main

sys.exit(run_main(PROG, main))
