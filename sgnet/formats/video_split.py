"""The one rule that splits a YouTube-VIS file's videos into a training and a held-out part, for
the ``split`` converter (:mod:`sgnet.data.convert.split`), the builtin ``*_sub`` datasets that
the loader reads and the evaluator scores (:mod:`sgnet.data.datasets.builtin`).

A video is held out iff ``sha256(f"{seed}:{folder}")``, read as a number in [0, 1), is below the
fraction, ``folder`` being the folder of its first file name (``"0a2f..."`` for
``"0a2f.../00000.jpg"``): the same on every machine and process (Python's own ``hash`` of a string
changes with ``PYTHONHASHSEED``), whatever the order of the file, and a video keeps its side when
other videos are added or removed.
"""
import dataclasses
import hashlib
import posixpath
from dataclasses import dataclass
from typing import Sequence

from ..errors import InvalidInput
from .ytvis import YTVISAnnotations

__all__ = ["VideoSplit", "hash_fraction", "held_out", "video_folder"]


def hash_fraction(folder: str, seed: int) -> float:
    """The video's number in [0, 1): its seeded sha256 over 2**256."""
    return int(hashlib.sha256(f"{seed}:{folder}".encode()).hexdigest(), 16) / 2**256


def held_out(folder: str, fraction: float, seed: int) -> bool:
    """Whether the video in the folder ``folder`` belongs to the held-out part (see the module
    docstring); a video is held out with probability ``fraction``."""
    return hash_fraction(folder, seed) < fraction


def video_folder(file_names: Sequence[str], where: str) -> str:
    """The key of a video for :func:`held_out`: the folder of its first file name.

    Raises:
        InvalidInput: the first file name has no folder (``where`` names the video).
    """
    folder = posixpath.dirname(file_names[0])
    if not folder:
        raise InvalidInput(
            f"{where}: the first file name {file_names[0]} has no folder; videos are split by their folder names"
        )
    return folder


@dataclass(frozen=True)
class VideoSplit:
    """One part of a file's videos by the rule above: the held-out part (``held_out`` True) or
    the rest, for a ``fraction`` and ``seed``. A dataset's metadata ``video_split`` holds one
    when the dataset is that part of its ``json_file``."""

    fraction: float
    seed: int
    held_out: bool

    def contains(self, file_names: Sequence[str], where: str) -> bool:
        """Whether the video of ``file_names`` (``where`` names it in messages) is in this part."""
        return held_out(video_folder(file_names, where), self.fraction, self.seed) == self.held_out

    def select(self, annotations: YTVISAnnotations) -> YTVISAnnotations:
        """``annotations`` with only this part's videos and their tracks (the file's order kept)."""
        videos = {
            video_id: video
            for video_id, video in annotations.videos.items()
            if self.contains(video.file_names, f"{annotations.source}: video {video_id}")
        }
        tracks = [track for track in annotations.tracks if track.video_id in videos]
        return dataclasses.replace(annotations, videos=videos, tracks=tracks)

    def describe(self) -> str:
        """E.g. "the held-out part (fraction 0.1 held out, seed 0)", for log lines."""
        part = "held-out" if self.held_out else "training"
        return f"the {part} part (fraction {self.fraction:g} held out, seed {self.seed})"
