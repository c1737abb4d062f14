"""The command line of the converters (run as ``python -m sgnet.data.convert``; see
:mod:`sgnet.data.convert`): one sub-command per source format, and ``split``."""
import argparse
import json
import logging
import sys

from . import cocovid, mots, split, ytvos

__all__ = ["PROG", "main"]

PROG = "python -m sgnet.data.convert"
# sub-command -> module with HELP, add_arguments(parser) and run(args) -> the summary printed last
COMMANDS = {"ytvos": ytvos, "mots": mots, "cocovid": cocovid, "split": split}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Convert video segmentation annotations to the official YouTube-VIS json "
        "(or split one by video). The last line of stdout is one JSON object naming what was "
        "written.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="FORMAT")
    for name, module in COMMANDS.items():
        module.add_arguments(commands.add_parser(name, help=module.HELP, description=module.HELP))
    return parser


def main(argv=None) -> None:
    args = _parser().parse_args(argv)
    # Progress goes to stderr, so that stdout's last line stays the summary.
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="[%(asctime)s %(name)s]: %(message)s")
    summary = COMMANDS[args.command].run(args)
    print(json.dumps(summary))
