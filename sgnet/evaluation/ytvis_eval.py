"""Command line: the official YouTube-VIS metric of a results file.

    python -m sgnet.evaluation.ytvis_eval --gt valid.json --results results.json [--per-class]

Logs go to stderr; the last line of stdout is the metrics, one JSON object as returned by
:func:`evaluate_ytvis` (NaN written as null). Bad input (a missing file, invalid JSON, a malformed
record or mask in either file) ends in one line ``ytvis_eval: error: FILE: problem`` on stderr and
exit status 2 (:func:`sgnet.errors.run_main`). The metric itself lives in :mod:`.ytvis_metric`, so
that importing the ``sgnet.evaluation`` package does not import this module (``python -m`` would
then run it twice).
"""
import argparse
import json
import logging
import math
import sys

from ..errors import run_main
from .ytvis_metric import evaluate_ytvis

__all__ = ["evaluate_ytvis", "main"]


def main(argv=None) -> None:
    """The command line (see the module docstring); bad input raises a ``UserError``."""
    parser = argparse.ArgumentParser(
        prog="python -m sgnet.evaluation.ytvis_eval", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--gt", required=True, help="annotation json with ground truth")
    parser.add_argument("--results", required=True, help="results.json (list of track records)")
    parser.add_argument("--per-class", action="store_true", help="add per-category AP")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="[%(asctime)s %(name)s]: %(message)s"
    )
    metrics = evaluate_ytvis(args.gt, args.results, per_class=args.per_class)
    print(json.dumps(_nan_to_none(metrics), allow_nan=False))


def _nan_to_none(metrics: dict) -> dict:
    # Strict JSON has no NaN; null keeps the output readable by every parser.
    return {
        task: {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in values.items()}
        for task, values in metrics.items()
    }


if __name__ == "__main__":
    sys.exit(run_main("ytvis_eval", main))
