"""Writing files so that nothing a user has is lost: outputs are whole or absent, and never
replace an input.

- :class:`StagedFile`, :func:`atomic_path`, :func:`atomic_write`: a file is written under a
  temporary name in its destination folder and renamed over the destination only when complete
  (an interrupted or failed write leaves the previous file, or nothing, under the final name);
- :func:`refuse_overwriting_inputs`: an output path that is, or holds, an input is refused;
- :class:`CreatedFolders`: the folders a run made for its outputs, removed again if it fails;
- :class:`WrittenFiles`: the files and folders a run wrote, all removed again if it fails.
"""
import contextlib
import os
import tempfile
from typing import IO, Iterable, Iterator, List

from .errors import InvalidInput, UserError

__all__ = [
    "StagedFile",
    "atomic_path",
    "atomic_write",
    "refuse_overwriting_inputs",
    "CreatedFolders",
    "WrittenFiles",
    "same_or_inside",
]


class StagedFile:
    """A file written under a temporary name next to ``path`` (:attr:`staging`), moved to
    ``path`` by :meth:`commit` when complete (flushed to disk, with the permissions a plain
    ``open`` would give it) or removed by :meth:`discard`; ``path`` is untouched until then."""

    def __init__(self, path: str, suffix: str = ""):
        self.path = os.path.abspath(path)
        handle, self.staging = tempfile.mkstemp(
            prefix=f".partial-{os.path.basename(path)}.", suffix=suffix, dir=os.path.dirname(self.path)
        )
        os.close(handle)

    def commit(self) -> str:
        with open(self.staging, "rb+") as f:
            os.fsync(f.fileno())
        # mkstemp creates the file private (0600); a plain open() gives 0666 minus the umask.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.staging, 0o666 & ~umask)
        os.replace(self.staging, self.path)
        return self.path

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.staging)


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
    """Yields a temporary path next to ``path`` to write (for writers that take a path); on a
    clean exit it replaces ``path``, on any exception (Ctrl-C included) it is removed and
    ``path`` is left as it was. ``suffix``: for writers that choose the format by extension."""
    staged = StagedFile(path, suffix)
    try:
        yield staged.staging
        staged.commit()
    except BaseException:
        staged.discard()
        raise


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "wb") -> Iterator[IO]:
    """:func:`atomic_path` for an open file: write to the yielded file object."""
    with atomic_path(path) as staging, open(staging, mode) as f:
        yield f


def same_or_inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it (symlinks resolved)."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def refuse_overwriting_inputs(output: str, inputs: Iterable[str], what: str = "--output") -> None:
    """Raise :class:`InvalidInput` when ``output`` is one of ``inputs``, or a folder holding one:
    writing there would replace the user's data. Paths are compared after resolving symlinks, so
    ``./x.mp4`` and a link to it count as the same file."""
    for source in inputs:
        if same_or_inside(source, output) or (os.path.exists(output) and os.path.exists(source) and os.path.samefile(source, output)):
            raise InvalidInput(
                f"{what} {output} would overwrite the input {source}: choose another output path"
            )


class CreatedFolders:
    """Makes the folders an output needs and remembers which it created, so that a failed run can
    remove them (:meth:`remove_empty`) instead of leaving empty folders behind."""

    def __init__(self):
        self.created: List[str] = []

    def make(self, folder: str) -> str:
        folder = os.path.abspath(folder)
        missing = []
        probe = folder
        while not os.path.exists(probe):
            missing.append(probe)
            probe = os.path.dirname(probe)
        os.makedirs(folder, exist_ok=True)
        self.created.extend(reversed(missing))  # outermost first
        return folder

    def remove_empty(self) -> None:
        """Remove the created folders that are empty, innermost first."""
        for folder in reversed(self.created):
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        self.created = []


class WrittenFiles:
    """The files and folders a run writes (:meth:`add`, ``folders.make``), so that a failed run
    removes them again: :meth:`removed_on_failure` around the writing."""

    def __init__(self):
        self.paths: List[str] = []
        self.folders = CreatedFolders()

    def add(self, *paths: str) -> None:
        self.paths.extend(paths)

    def remove(self) -> None:
        for path in self.paths:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        self.folders.remove_empty()

    @contextlib.contextmanager
    def removed_on_failure(self, output: str) -> Iterator["WrittenFiles"]:
        """Any exception in the block (bad data, the disk, Ctrl-C, SIGTERM, a bug) removes what was
        written; an ``OSError`` of the disk (full, read-only, ``output`` removed meanwhile) becomes
        an :class:`InvalidInput` saying so, the others pass unchanged."""
        try:
            yield self
        except BaseException as e:
            self.remove()
            if isinstance(e, OSError) and not isinstance(e, UserError):
                raise InvalidInput(f"{e} (the files this run wrote under {output} were removed)") from e
            raise
