"""The one reader of YouTube-VIS-format annotation files (YouTube-VIS 2019/2021/2022, OVIS,
custom), for the training/test loader and the evaluator alike.

File format: /work/shared/docs/ytvis-format.md. The file is checked completely once; a problem is
an :class:`~sgnet.errors.InvalidInput` whose one-line message names the file, then the video,
annotation and frame (with its file name), then the problem.

Rules beyond the format's description:
- a video's ``length`` is optional (custom files omit it); when present it must equal the number
  of its ``file_names``, which is the length used;
- ``bboxes`` and ``areas`` are optional; a box where the segmentation is null is an error;
- ``iscrowd`` is 0/1 (or false/true), absent meaning 0;
- annotation ids are unique (they are the track identities for training).
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ..errors import InvalidInput
from .records import (
    Category,
    identified_entries,
    is_int,
    is_number,
    object_entries,
    parse_categories,
    parse_iscrowd,
    read_json,
    require_file_kind,
    short_repr,
    unique_id,
)
from .segmentation import find_segmentation_problem

__all__ = [
    "Video",
    "Category",
    "Track",
    "YTVISAnnotations",
    "read_ytvis_annotations",
    "parse_ytvis_annotations",
    "check_track_segmentations",
    "track_position",
    "frame_position",
]


@dataclass(frozen=True)
class Video:
    id: int
    height: int
    width: int
    file_names: Tuple[str, ...]  # relative to the split's JPEGImages/, in frame order

    @property
    def length(self) -> int:
        return len(self.file_names)


@dataclass(frozen=True)
class Track:
    """One annotation: an object over its video's T frames. Per-frame tuples have T entries."""

    id: int
    video_id: int
    category_id: int  # the file's category id
    iscrowd: int  # 0 or 1
    segmentations: tuple  # None, an RLE dict or polygons per frame, as in the file (all checked)
    bboxes: Optional[tuple]  # None or [x, y, w, h] (floats) per frame; None if the file has none
    areas: Optional[tuple]  # None or a float per frame; None if the file has none


@dataclass(frozen=True)
class YTVISAnnotations:
    source: str  # the file (or a label for parsed content), first in every message
    videos: Dict[int, Video]  # in the file's order
    categories: List[Category]  # sorted by id
    tracks: List[Track]  # in the file's order; empty for valid/test splits


def read_ytvis_annotations(path) -> YTVISAnnotations:
    """Read and check the annotation file ``path`` (see the module docstring)."""
    return parse_ytvis_annotations(read_json(path), str(path))


def parse_ytvis_annotations(content, source: str) -> YTVISAnnotations:
    """Check parsed annotation-file content; ``source`` names it in messages."""
    prefix = f"{source}: "
    require_file_kind(
        content, "videos", "YouTube-VIS annotation", "a 'videos' list and 'categories'", prefix
    )
    videos = _parse_videos(content, prefix)
    categories = parse_categories(content, prefix)
    category_ids = {c.id for c in categories}
    seen = set()
    tracks = [
        _parse_track(entry, position, videos, category_ids, seen, source)
        for position, entry in enumerate(object_entries(content, "annotations", prefix, required=False))
    ]
    return YTVISAnnotations(source=source, videos=videos, categories=categories, tracks=tracks)


def track_position(source: str, track_id: int, video_id: int) -> str:
    """How messages name an annotation (a track): the file, the annotation id, its video."""
    return f"{source}: annotation {track_id} of video {video_id}"


def frame_position(where: str, video: Video, t: int) -> str:
    """``where`` (a track's position) followed by frame ``t`` and its file name."""
    return f"{where}, frame {t} ({video.file_names[t]})"


def check_track_segmentations(segmentations, video: Video, where: str, *, polygons=True) -> None:
    """
    The per-frame segmentations of one track (annotation or result record): a list of one entry
    per frame of ``video``, each valid (:func:`find_segmentation_problem`).

    Raises:
        InvalidInput: ``where``, the frame and the problem.
    """
    _check_per_frame_list(segmentations, "segmentations", video, where)
    problem = find_segmentation_problem(segmentations, video.height, video.width, polygons=polygons)
    if problem:
        t, sentence = problem
        raise InvalidInput(f"{frame_position(where, video, t)}: {sentence}")


# ---------------------------------------------------------------------------------------------
_VIDEO_FIELDS = {
    "height": (lambda v: is_int(v) and v > 0, "a positive integer"),
    "width": (lambda v: is_int(v) and v > 0, "a positive integer"),
    "file_names": (
        lambda v: isinstance(v, list) and v and all(isinstance(n, str) for n in v),
        "a non-empty list of file names",
    ),
}


def _parse_videos(content: dict, prefix: str) -> Dict[int, Video]:
    videos = {}
    for where, entry in identified_entries(content, "videos", "video", _VIDEO_FIELDS, prefix):
        length = entry.get("length", len(entry["file_names"]))
        if length != len(entry["file_names"]) or not is_int(length):
            raise InvalidInput(
                f"{where}: 'length' is {short_repr(length)} but the video lists "
                f"{len(entry['file_names'])} file_names"
            )
        videos[entry["id"]] = Video(
            id=entry["id"],
            height=entry["height"],
            width=entry["width"],
            file_names=tuple(entry["file_names"]),
        )
    return videos


def _parse_track(entry, position, videos, category_ids, seen, source) -> Track:
    prefix = f"{source}: "
    where = f"{prefix}annotation #{position} (id {entry.get('id')})"
    unique_id(entry, seen, "annotation", where)
    video = videos.get(entry.get("video_id"))
    if video is None:
        raise InvalidInput(
            f"{prefix}annotation {entry['id']} refers to video_id {short_repr(entry.get('video_id'))}, "
            "which is not in the file's 'videos'"
        )
    where = track_position(source, entry["id"], video.id)
    if entry.get("category_id") not in category_ids or not is_int(entry.get("category_id")):
        raise InvalidInput(
            f"{where}: category_id {short_repr(entry.get('category_id'))} is not among the "
            f"file's categories {sorted(category_ids)}"
        )
    iscrowd = parse_iscrowd(entry, where)
    segmentations = entry.get("segmentations")
    check_track_segmentations(segmentations, video, where)
    bboxes = _optional_per_frame(entry, "bboxes", _is_box, "null or [x, y, width, height]", video, where)
    areas = _optional_per_frame(entry, "areas", _is_area, "null or a number >= 0", video, where)
    for t, (segmentation, bbox) in enumerate(zip(segmentations, bboxes or [None] * video.length)):
        if segmentation is None and bbox is not None:
            raise InvalidInput(
                f"{frame_position(where, video, t)}: bbox {bbox} given without a segmentation"
            )
    return Track(
        id=entry["id"],
        video_id=video.id,
        category_id=entry["category_id"],
        iscrowd=iscrowd,
        segmentations=tuple(segmentations),
        bboxes=None if bboxes is None else tuple(_floats(b) for b in bboxes),
        areas=None if areas is None else tuple(None if a is None else float(a) for a in areas),
    )


def _floats(box: Optional[list]) -> Optional[list]:
    return None if box is None else [float(v) for v in box]


def _is_box(value) -> bool:
    return isinstance(value, list) and len(value) == 4 and all(is_number(v) for v in value)


def _is_area(value) -> bool:
    return is_number(value) and value >= 0


def _optional_per_frame(entry, field, check, expected, video, where) -> Optional[list]:
    """``entry[field]`` (None if absent or null): one entry per frame, each None or passing
    ``check``."""
    values = entry.get(field)
    if values is None:
        return None
    _check_per_frame_list(values, field, video, where)
    for t, value in enumerate(values):
        if value is not None and not check(value):
            raise InvalidInput(
                f"{frame_position(where, video, t)}: '{field}' entry must be {expected}, got "
                f"{short_repr(value)}"
            )
    return values


def _check_per_frame_list(values, field: str, video: Video, where: str) -> None:
    if not isinstance(values, list):
        raise InvalidInput(f"{where}: '{field}' is missing or not a list")
    if len(values) != video.length:
        raise InvalidInput(
            f"{where}: '{field}' has {len(values)} entries, the video has {video.length} frames"
        )
