"""``python -m sgnet.data.convert FORMAT SRC --output OUT.json [options]``: see
:mod:`sgnet.data.convert`."""
import sys

from ...errors import run_main
from .cli import PROG, main

sys.exit(run_main(PROG, main))
