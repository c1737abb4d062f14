"""YouTube-VIS annotation and results files, checked and converted to evaluation tracks.

An evaluation track is a dict, because pycocotools' ``COCOeval`` reads and annotates dicts:

- ``id`` (int): 1-based, unique within the ground truth or within the results (COCOeval uses 0
  for "unmatched", so file ids are not used: a ground-truth file may number from 0).
- ``video_id``, ``category_id`` (int): as in the files (dataset category ids).
- ``iscrowd`` (int): from the annotation; 0 for results.
- ``score`` (float): results only.
- ``segmentations``: T entries, compressed RLE or None, T = the video's length.
- ``frame_areas``: (T,) float64 array, the mask area per frame, 0 where absent.
- ``area`` (float): the track's area for the area ranges: the mean of its non-null, non-zero
  per-frame areas (ground truth: the file's ``areas`` when present, else mask areas), 0 if none.
"""
import json
import math
import numbers
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import pycocotools.mask as mask_util
from detectron2.utils.file_io import PathManager

from ..formats.rle import find_rle_problem, segmentation_to_rle

__all__ = ["VideoInfo", "YTVISGroundTruth", "load_ground_truth", "load_results"]


@dataclass(frozen=True)
class VideoInfo:
    height: int
    width: int
    length: int  # number of annotated frames


@dataclass
class YTVISGroundTruth:
    """The parts of an annotation file the metric uses."""

    videos: Dict[int, VideoInfo]
    categories: List[dict]  # the file's categories ({"id", "name", ...}), sorted by id
    tracks: List[dict]  # evaluation tracks, one per annotation

    @property
    def category_ids(self) -> List[int]:
        return [c["id"] for c in self.categories]


def load_ground_truth(annotations: Union[str, os.PathLike, dict]) -> YTVISGroundTruth:
    """
    Args:
        annotations: a YouTube-VIS annotation file (path) or its parsed json. Its ``annotations``
            may be missing or empty (public valid/test splits): then ``tracks`` is empty.

    Raises:
        FileNotFoundError, ValueError: one line naming the file (when given a path) and the
            problem; for an annotation also its id, video and frame. Masks are checked as in
            results files (:func:`find_rle_problem`): pycocotools decodes a malformed RLE without
            complaint, and a wrong ground-truth mask would only show as a low AP.
    """
    dataset, prefix = annotations, ""
    if isinstance(annotations, (str, os.PathLike)):
        dataset, prefix = _read_json(annotations), f"{os.fspath(annotations)}: "
    if not (
        isinstance(dataset, dict)
        and isinstance(dataset.get("videos"), list)
        and isinstance(dataset.get("categories"), list)
    ):
        raise ValueError(
            f"{prefix}not a YouTube-VIS annotation file: expected a JSON object with 'videos' and "
            "'categories' lists"
        )
    for field, key in (("videos", "id"), ("categories", "id"), ("annotations", "video_id")):
        for position, entry in enumerate(dataset.get(field) or []):
            if not (isinstance(entry, dict) and key in entry):
                raise ValueError(f"{prefix}{field} #{position} is not a JSON object with an {key!r}: {str(entry)[:80]}")
    videos = {}
    for position, v in enumerate(dataset["videos"]):
        missing = [key for key in _VIDEO_KEYS if key not in v]
        if missing:
            raise ValueError(f"{prefix}video #{position} (id {v.get('id')}) lacks {missing}")
        videos[v["id"]] = VideoInfo(height=v["height"], width=v["width"], length=v["length"])
    categories = sorted(dataset["categories"], key=lambda c: c["id"])
    known_categories = {c["id"] for c in categories}
    tracks = [
        _ground_truth_track(index + 1, annotation, videos, known_categories, prefix)
        for index, annotation in enumerate(dataset.get("annotations") or [])
    ]
    return YTVISGroundTruth(videos=videos, categories=categories, tracks=tracks)


_VIDEO_KEYS = ("id", "height", "width", "length")


def _ground_truth_track(track_id, annotation, videos, known_categories, prefix) -> dict:
    video_id = annotation.get("video_id")

    def error(problem):
        return ValueError(f"{prefix}ground-truth annotation id={annotation.get('id')} (video_id={video_id}): {problem}")

    video = videos.get(video_id)
    if video is None:
        raise error("unknown video_id: not in the file's videos")
    if annotation.get("category_id") not in known_categories:
        raise error(f"unknown category_id {annotation.get('category_id')}")
    segmentations = annotation.get("segmentations")
    _check_frame_count(segmentations, video, error)
    # Polygons (custom files) have no run lengths to check; pycocotools rasterises them as given.
    problem = find_rle_problem(
        [None if isinstance(s, list) else s for s in segmentations], video.height, video.width
    )
    if problem:
        raise error(f"frame {problem[0]}: {problem[1]}")
    rles = _to_rles(segmentations, video)
    frame_areas = _frame_areas(rles)
    file_areas = annotation.get("areas")
    return {
        "id": track_id,
        "video_id": video_id,
        "category_id": annotation["category_id"],
        "iscrowd": int(annotation.get("iscrowd", 0)),
        "segmentations": rles,
        "frame_areas": frame_areas,
        "area": _mean_area(frame_areas if file_areas is None else file_areas),
    }


def _check_frame_count(segmentations, video: VideoInfo, error) -> None:
    if not isinstance(segmentations, list) or len(segmentations) != video.length:
        count = len(segmentations) if isinstance(segmentations, list) else type(segmentations).__name__
        raise error(
            f"'segmentations' must list one entry per frame: got {count}, "
            f"the video has {video.length} frames"
        )


def load_results(
    results: Union[str, os.PathLike, List[dict]], ground_truth: YTVISGroundTruth
) -> List[dict]:
    """
    Check results records against the ground truth's videos and categories and convert them to
    evaluation tracks (ids in file order).

    Args:
        results: a results file (path) or its records ``{"video_id", "category_id", "score",
            "segmentations"}``. An empty list is valid (every metric is then 0).

    Raises:
        ValueError: naming the record (index, video_id) and the problem, for an unknown video or
            category, a non-finite score, a wrong number of frames or a malformed RLE.
    """
    records, prefix = results, ""
    if isinstance(results, (str, os.PathLike)):
        records, prefix = _read_json(results), f"{os.fspath(results)}: "
    if not isinstance(records, list):
        raise ValueError(f"{prefix}results must be a list of records, got {type(records).__name__}")
    known_categories = set(ground_truth.category_ids)
    return [
        _result_track(index, record, ground_truth.videos, known_categories, prefix)
        for index, record in enumerate(records)
    ]


_RESULT_KEYS = ("video_id", "category_id", "score", "segmentations")


def _result_track(index, record, videos, known_categories, prefix) -> dict:
    video_id = record.get("video_id") if isinstance(record, dict) else None

    def error(problem):
        return ValueError(f"{prefix}result record {index} (video_id={video_id}): {problem}")

    if not isinstance(record, dict):
        raise error(f"expected a dict, got {type(record).__name__}")
    missing = [key for key in _RESULT_KEYS if key not in record]
    if missing:
        raise error(f"missing {missing}")
    video = videos.get(video_id)
    if video is None:
        raise error("unknown video_id: not in the ground truth's videos")
    if record["category_id"] not in known_categories:
        raise error(f"unknown category_id {record['category_id']}")
    score = record["score"]
    if not isinstance(score, numbers.Real) or isinstance(score, bool) or not math.isfinite(score):
        raise error(f"score must be a finite number, got {score!r}")
    segmentations = record["segmentations"]
    _check_frame_count(segmentations, video, error)
    problem = find_rle_problem(segmentations, video.height, video.width)
    if problem:
        raise error(f"frame {problem[0]}: {problem[1]}")
    rles = _to_rles(segmentations, video)
    frame_areas = _frame_areas(rles)
    return {
        "id": index + 1,
        "video_id": video_id,
        "category_id": record["category_id"],
        "iscrowd": 0,
        "score": float(score),
        "segmentations": rles,
        "frame_areas": frame_areas,
        "area": _mean_area(frame_areas),
    }


def _to_rles(segmentations: Sequence, video: VideoInfo) -> List[Optional[dict]]:
    return [
        None if s is None else segmentation_to_rle(s, video.height, video.width)
        for s in segmentations
    ]


def _frame_areas(rles: Sequence) -> np.ndarray:
    """(T,) float64 mask areas, 0 where the entry is None."""
    areas = np.zeros(len(rles))
    present = [t for t, rle in enumerate(rles) if rle is not None]
    if present:
        areas[present] = mask_util.area([rles[t] for t in present])
    return areas


def _mean_area(areas: Sequence) -> float:
    """Mean of the non-null, non-zero entries, 0 if none (the official ytvoseval's track area)."""
    counted = [a for a in areas if a]
    return float(np.mean(counted)) if counted else 0.0


def _read_json(path) -> Union[dict, list]:
    path = os.fspath(path)
    if not PathManager.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    with PathManager.open(path, "r") as f:
        try:
            return json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from e
