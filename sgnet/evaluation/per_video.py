"""The YouTube-VIS metric one video at a time, for looking at results (``tools/visualize_results.py``).

From one :func:`~.ytvis_metric.run_ytvis_eval` over all the videos (video IoUs computed once):

- :func:`video_ap`: the metric's AP on one video alone, the number :func:`evaluate_ytvis` gives
  on that video's ground truth and results;
- :func:`video_matches`: the metric's own matching in one video (COCOeval's ``evaluateImg``:
  per category, greedy by descending score, at one IoU threshold, area range "all", the largest
  maxDets): the prediction matched to each ground-truth track and their video IoU, the
  ground-truth tracks left unmatched (missed) and the predictions matched to nothing (false).

:func:`select_videos` restricts a ground truth and its results to some videos first, for
figures over those videos only (the per-class AP of the videos shown).
"""
import contextlib
import copy
import io
from dataclasses import dataclass
from typing import Iterable, List, Tuple

import numpy as np

from .tracks import YTVISGroundTruth
from .ytvis_metric import YTVISeval, summary_ap

__all__ = ["TrackPair", "VideoMatches", "select_videos", "video_ap", "video_matches"]


@dataclass(frozen=True)
class TrackPair:
    truth: dict  # a ground-truth evaluation track (see :mod:`.tracks`)
    prediction: dict  # the prediction (evaluation track) the metric matches to it
    iou: float  # their video mask IoU


@dataclass(frozen=True)
class VideoMatches:
    pairs: List[TrackPair]  # per category (by id), in the metric's order: by descending score
    missed: List[dict]  # non-crowd ground-truth tracks without a pair
    false: List[dict]  # predictions matched to no ground truth (nor inside a crowd region)


def select_videos(
    truth: YTVISGroundTruth, predictions: List[dict], video_ids: Iterable[int]
) -> Tuple[YTVISGroundTruth, List[dict]]:
    """``truth`` and ``predictions`` (evaluation tracks) of the videos ``video_ids`` only, ids
    and order kept: the metric on them is the metric on those videos' part of the files."""
    keep = set(video_ids)
    videos = {video_id: video for video_id, video in truth.videos.items() if video_id in keep}
    tracks = [track for track in truth.tracks if track["video_id"] in keep]
    selected = YTVISGroundTruth(videos=videos, categories=truth.categories, tracks=tracks)
    return selected, [track for track in predictions if track["video_id"] in keep]


def video_ap(coco_eval: YTVISeval, video_id: int) -> float:
    """
    The AP (0-100) of one video of an evaluated :class:`YTVISeval`: COCOeval's ``accumulate``
    over that video's per-(category, area range) evaluations alone, which are those an
    evaluation of the video by itself makes (matching is per video). NaN when the video has no
    non-crowd ground truth.
    """
    videos = list(coco_eval._paramsEval.imgIds)
    params = copy.copy(coco_eval._paramsEval)
    params.imgIds = [video_id]
    one_video = copy.copy(coco_eval)  # accumulate() sets .eval on the copy only
    one_video.params = one_video._paramsEval = params
    # evalImgs is ordered by category, then area range, then video (COCOeval.evaluate).
    one_video.evalImgs = coco_eval.evalImgs[videos.index(video_id) :: len(videos)]
    with contextlib.redirect_stdout(io.StringIO()):  # one timing line per video, of no interest
        one_video.accumulate()
    return summary_ap(one_video)


def video_matches(
    coco_eval: YTVISeval, video_id: int, score_threshold: float = -np.inf, iou_threshold: float = 0.5
) -> VideoMatches:
    """
    The metric's matching in one video of an evaluated :class:`YTVISeval`, for the predictions
    scoring at least ``score_threshold``. Matching is greedy by descending score, so leaving out
    the lower scores changes no match of the others: these are the matches the metric makes.

    Args:
        iou_threshold: one of the metric's (0.5, 0.55, ..., 0.95).

    A prediction matched to a crowd region is neither paired nor false (the metric ignores it);
    one beyond the top maxDets (100) of its (video, category) is not evaluated and in no list.
    """
    thresholds = coco_eval.params.iouThrs
    at_threshold = np.flatnonzero(np.isclose(thresholds, iou_threshold))
    if at_threshold.size == 0:
        raise ValueError(f"IoU threshold {iou_threshold}: not one of the metric's {thresholds.tolist()}")
    t = at_threshold[0]
    pairs, missed, false = [], [], []
    for evaluation in _all_area_evaluations(coco_eval, video_id):
        key = (video_id, evaluation["category_id"])
        truths = {g["id"]: g for g in coco_eval._gts[key]}
        predictions = {d["id"]: d for d in coco_eval._dts[key]}
        paired = set()
        for d, g, ignored in zip(evaluation["dtIds"], evaluation["dtMatches"][t], evaluation["dtIgnore"][t]):
            prediction = predictions[d]
            if ignored or prediction["score"] < score_threshold:
                continue
            if g == 0:  # COCOeval's "unmatched"
                false.append(prediction)
                continue
            truth = truths[int(g)]
            pairs.append(TrackPair(truth=truth, prediction=prediction, iou=coco_eval.video_iou(prediction, truth)))
            paired.add(truth["id"])
        truth_ignored = zip(evaluation["gtIds"], evaluation["gtIgnore"])  # crowds are ignored
        missed.extend(truths[g] for g, ignored in truth_ignored if not ignored and g not in paired)
    return VideoMatches(pairs=pairs, missed=missed, false=false)


def _all_area_evaluations(coco_eval: YTVISeval, video_id: int) -> List[dict]:
    """The video's ``evaluateImg`` results at area range "all", one per category that has ground
    truth or predictions there."""
    params = coco_eval._paramsEval
    num_videos, num_areas = len(params.imgIds), len(params.areaRng)
    first = params.areaRngLbl.index("all") * num_videos + list(params.imgIds).index(video_id)
    return [e for e in coco_eval.evalImgs[first :: num_videos * num_areas] if e is not None]
