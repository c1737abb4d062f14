"""The one convention for a user's mistakes: one line naming the file or key and the problem.

Every entry point (``train_net.py``, ``demo/demo.py``, ``tools/*``, the ``python -m`` CLIs of
``sgnet.data`` and ``sgnet.evaluation``) runs its ``main`` through :func:`run_main`: a
:class:`UserError` raised anywhere below ends the process with ``PROG: error: MESSAGE`` on stderr
and exit status 2, without a traceback. Anything else (a programming error) keeps its traceback.

The subclasses keep the builtin exception families (``ValueError``, ``FileNotFoundError``), so
library callers that catch those see no change.
"""
import os
import signal
import sys
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Sequence

__all__ = [
    "UserError",
    "InvalidInput",
    "MissingInput",
    "EXIT_USER_ERROR",
    "run_main",
    "terminate_as_interrupt",
    "one_line",
    "check_readable_file",
]

# argparse's status for a usage error: the same for every mistake a user can fix.
EXIT_USER_ERROR = 2


class UserError(Exception):
    """A mistake the user can fix (a file, a config key or value, the data), reported in one
    line. The message names the file or key and says what is wrong with it."""


class InvalidInput(UserError, ValueError):
    """A file, config value or data record that exists but is wrong."""


class MissingInput(UserError, FileNotFoundError):
    """A file or folder the user named (or that a config names) that is not there."""

    def __str__(self):  # FileNotFoundError would format (errno, strerror) pairs
        return str(self.args[0]) if self.args else ""


def one_line(message: str) -> str:
    """The message as one line (multi-line texts from libraries joined with '; ')."""
    return "; ".join(part.strip() for part in str(message).splitlines() if part.strip())


def run_main(prog: str, main: Callable[[Optional[Sequence[str]]], Optional[int]], argv=None) -> int:
    """Run ``main(argv)``; a :class:`UserError` becomes ``prog: error: message`` and exit status 2.

    SIGTERM is handled as Ctrl-C (``KeyboardInterrupt``) for the run, so that the same cleanup
    runs (partial outputs removed, video files closed) when a job scheduler stops the process.
    Returns the exit status, for ``sys.exit``.
    """
    try:
        with terminate_as_interrupt():
            status = main(argv)
    except UserError as e:
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    return status or 0


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises ``KeyboardInterrupt`` in the main thread (as Ctrl-C does),
    so ``finally`` / ``except BaseException`` cleanups run. Outside the main thread: no change."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def check_readable_file(path: str, what: str) -> str:
    """``path`` if it is an existing, readable file; else a :class:`MissingInput` /
    :class:`InvalidInput` naming it as ``what`` (e.g. "config file", "MODEL.WEIGHTS")."""
    if not os.path.exists(path):
        raise MissingInput(f"{path}: no such file ({what})")
    if not os.path.isfile(path):
        raise InvalidInput(f"{path}: is not a file ({what})")
    if not os.access(path, os.R_OK):
        raise InvalidInput(f"{path}: not readable ({what})")
    return path
