"""YouTube-VIS annotation and results files, checked and converted to evaluation tracks.

An evaluation track is a dict, because pycocotools' ``COCOeval`` reads and annotates dicts:

- ``id`` (int): 1-based, unique within the ground truth or within the results (COCOeval uses 0
  for "unmatched", so file ids are not used: a ground-truth file may number from 0).
- ``video_id``, ``category_id`` (int): as in the files (dataset category ids).
- ``annotation_id`` (int): ground truth only, the annotation's id in the file (to name it).
- ``iscrowd`` (int): from the annotation; 0 for results.
- ``score`` (float): results only.
- ``segmentations``: T entries, compressed RLE or None, T = the video's length.
- ``frame_areas``: (T,) float64 array, the mask area per frame, 0 where absent.
- ``area`` (float): the track's area for the area ranges: the mean of its non-null, non-zero
  per-frame areas (ground truth: the file's ``areas`` when present, else mask areas), 0 if none.
"""
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import pycocotools.mask as mask_util

from ..errors import InvalidInput
from ..formats.records import is_number, read_json
from ..formats.rle import segmentation_to_rle
from ..formats.video_split import VideoSplit
from ..formats.ytvis import (
    Category,
    Track,
    Video,
    check_track_segmentations,
    parse_ytvis_annotations,
    read_ytvis_annotations,
)

__all__ = ["YTVISGroundTruth", "load_ground_truth", "load_results"]


@dataclass
class YTVISGroundTruth:
    """The parts of an annotation file the metric uses."""

    videos: Dict[int, Video]  # height, width, length (and file names) per video id
    categories: List[Category]  # the file's categories, sorted by id
    tracks: List[dict]  # evaluation tracks, one per annotation

    @property
    def category_ids(self) -> List[int]:
        return [c.id for c in self.categories]


def load_ground_truth(
    annotations: Union[str, os.PathLike, dict], video_split: Optional[VideoSplit] = None
) -> YTVISGroundTruth:
    """
    Args:
        annotations: a YouTube-VIS annotation file (path) or its parsed json. Its ``annotations``
            may be missing or empty (public valid/test splits): then ``tracks`` is empty.
        video_split: if given, only that part of the file's videos and their tracks.

    Raises:
        MissingInput, InvalidInput: one line naming the file ("ground truth" for parsed json) and
            the problem; for an annotation also its id, video and frame. The checks are the
            training loader's (:func:`sgnet.formats.ytvis.read_ytvis_annotations`): pycocotools
            decodes a malformed RLE without complaint, and a wrong ground-truth mask would only
            show as a low AP.
    """
    if isinstance(annotations, (str, os.PathLike)):
        checked = read_ytvis_annotations(os.fspath(annotations))
    else:
        checked = parse_ytvis_annotations(annotations, "ground truth")
    if video_split is not None:
        checked = video_split.select(checked)
    tracks = [
        _ground_truth_track(index + 1, track, checked.videos[track.video_id])
        for index, track in enumerate(checked.tracks)
    ]
    return YTVISGroundTruth(videos=checked.videos, categories=checked.categories, tracks=tracks)


def _ground_truth_track(track_id: int, track: Track, video: Video) -> dict:
    rles = _to_rles(track.segmentations, video)
    frame_areas = _frame_areas(rles)
    return {
        "id": track_id,
        "annotation_id": track.id,
        "video_id": track.video_id,
        "category_id": track.category_id,
        "iscrowd": track.iscrowd,
        "segmentations": rles,
        "frame_areas": frame_areas,
        "area": _mean_area(frame_areas if track.areas is None else track.areas),
    }


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
        MissingInput, InvalidInput: naming the file ("results" for parsed records), the record
            (index, video_id) and the problem, for an unknown video or category, a non-finite
            score, a wrong number of frames or a malformed RLE (the annotation files' per-frame
            checks, :func:`sgnet.formats.ytvis.check_track_segmentations`, polygons excepted:
            the benchmark server takes RLE only).
    """
    records, source = results, "results"
    if isinstance(results, (str, os.PathLike)):
        records, source = read_json(results), os.fspath(results)
    if not isinstance(records, list):
        raise InvalidInput(f"{source}: results must be a list of records, got {type(records).__name__}")
    known_categories = set(ground_truth.category_ids)
    return [
        _result_track(index, record, ground_truth.videos, known_categories, source)
        for index, record in enumerate(records)
    ]


_RESULT_KEYS = ("video_id", "category_id", "score", "segmentations")


def _result_track(index, record, videos, known_categories, source) -> dict:
    video_id = record.get("video_id") if isinstance(record, dict) else None
    where = f"{source}: result record {index} (video_id={video_id})"

    def error(problem):
        return InvalidInput(f"{where}: {problem}")

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
    if not is_number(score):
        raise error(f"score must be a finite number, got {score!r}")
    check_track_segmentations(record["segmentations"], video, where, polygons=False)
    rles = _to_rles(record["segmentations"], video)
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


def _to_rles(segmentations: Sequence, video: Video) -> List[Optional[dict]]:
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
