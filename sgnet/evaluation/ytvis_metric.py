"""The official YouTube-VIS metric, on pycocotools' COCOeval machinery.

The official ``ytvoseval.py`` is COCOeval with videos in place of images; only the IoU (a video
IoU over all frames) and the object areas (a track's mean per-frame area) differ. :class:`YTVISeval`
therefore subclasses COCOeval and replaces exactly those, keeping COCOeval's matching
(``evaluateImg``, per (video, category)), ``accumulate`` and ``summarize`` untouched.
"""
import contextlib
import io
import logging
import math
import os
from collections import defaultdict
from typing import Dict, List, Union

import numpy as np
from pycocotools.cocoeval import COCOeval
from tabulate import tabulate

from detectron2.utils.logger import create_small_table, log_every_n_seconds

from ..errors import InvalidInput
from ..formats.ytvis import Category
from .tracks import YTVISGroundTruth, load_ground_truth, load_results
from .video_overlaps import compute_video_overlaps, count_identity_switches

__all__ = ["YTVISeval", "evaluate_ytvis", "run_ytvis_eval", "per_category_ap", "summary_ap", "VIDEO_AREA_RANGES"]

logger = logging.getLogger(__name__)

# Track areas are larger than COCO object areas: YouTube-VIS uses 128^2 / 256^2, not 32^2 / 96^2.
VIDEO_AREA_RANGES = {
    "all": [0**2, 1e5**2],
    "small": [0**2, 128**2],
    "medium": [128**2, 256**2],
    "large": [256**2, 1e5**2],
}

# COCOeval.stats[:8] in order (AP and AP by area at maxDets=100, then AR at maxDets=1 and 10).
SUMMARY_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10")


class YTVISeval(COCOeval):
    """
    COCOeval over videos: ``params.imgIds`` are video ids, "image" evaluation is per (video,
    category), IoUs are video IoUs (:func:`compute_video_overlaps`), areas are track areas and the
    area ranges are :data:`VIDEO_AREA_RANGES`. Crowd ground truth is ignored and matchable many
    times, exactly as in COCOeval, with the crowd IoU of :func:`compute_video_overlaps`.

    Also counts identity switches (:meth:`identity_switches`) from the same per-frame IoUs.

    Usage is COCOeval's: ``evaluate()``, ``accumulate()``, ``summarize()``, then ``stats``.
    """

    def __init__(self, ground_truth: YTVISGroundTruth, predictions: List[dict]):
        """
        Args:
            ground_truth: from :func:`load_ground_truth`.
            predictions: evaluation tracks from :func:`load_results`.
        """
        super().__init__(cocoGt=None, cocoDt=None, iouType="segm")
        self.ground_truth = ground_truth
        self.predictions = predictions
        self.params.imgIds = sorted(ground_truth.videos)
        self.params.catIds = sorted(ground_truth.category_ids)
        self.params.areaRng = list(VIDEO_AREA_RANGES.values())
        self.params.areaRngLbl = list(VIDEO_AREA_RANGES)
        self.overlaps = {}  # video id -> VideoOverlaps
        self._row = {}  # prediction id -> its row in its video's overlaps
        self._col = {}  # ground-truth id -> its column in its video's overlaps

    def _prepare(self):
        """Group tracks per (video, category) as COCOeval does, then compute video overlaps."""
        self._gts = _group_by_video_and_category(self.ground_truth.tracks)
        self._dts = _group_by_video_and_category(self.predictions)
        for gt in self.ground_truth.tracks:
            gt["ignore"] = gt["iscrowd"]
        self.evalImgs = []
        self.eval = {}
        self._compute_overlaps()

    def _compute_overlaps(self):
        truths_per_video = _group_by_video(self.ground_truth.tracks)
        predictions_per_video = _group_by_video(self.predictions)
        videos = sorted(self.ground_truth.videos)
        for index, video_id in enumerate(videos):
            # Rows by descending score (stable, as COCOeval sorts): per-frame ties go to the best.
            predictions = sorted(predictions_per_video.get(video_id, []), key=lambda d: -d["score"])
            truths = truths_per_video.get(video_id, [])
            self._row.update((d["id"], row) for row, d in enumerate(predictions))
            self._col.update((g["id"], col) for col, g in enumerate(truths))
            self.overlaps[video_id] = compute_video_overlaps(
                predictions, truths, self.ground_truth.videos[video_id].length
            )
            log_every_n_seconds(
                logging.INFO, f"Video IoUs: {index + 1}/{len(videos)} videos", n=5, name=__name__
            )

    def computeIoU(self, imgId, catId):
        """(D, G) video IoUs of (video ``imgId``, category ``catId``), rows in COCOeval's order."""
        truths = self._gts[imgId, catId]
        predictions = self._dts[imgId, catId]
        if not truths and not predictions:
            return []
        order = np.argsort([-d["score"] for d in predictions], kind="mergesort")
        order = order[: self.params.maxDets[-1]]
        rows = np.array([self._row[predictions[i]["id"]] for i in order], dtype=np.intp)
        cols = np.array([self._col[g["id"]] for g in truths], dtype=np.intp)
        return self.overlaps[imgId].iou[np.ix_(rows, cols)]

    def identity_switches(self) -> Dict[int, int]:
        """
        Identity switches per video id (after ``evaluate()``): the sum over the video's non-crowd
        ground-truth tracks of :func:`count_identity_switches`, where a ground truth's match in a
        frame is the prediction (of any category) with the highest mask IoU, if >= 0.5.
        """
        truths_per_video = _group_by_video(self.ground_truth.tracks)  # columns, as in _prepare
        switches = {}
        for video_id, overlaps in self.overlaps.items():
            truths = truths_per_video.get(video_id, [])
            non_crowd = [col for col, g in enumerate(truths) if not g["iscrowd"]]
            switches[video_id] = sum(count_identity_switches(overlaps.frame_match[non_crowd]))
        return switches

    def video_iou(self, prediction: dict, truth: dict) -> float:
        """The video IoU of two evaluation tracks of one video (a crowd's share of the
        prediction for a crowd ``truth``), as the matching uses it; after ``evaluate()``."""
        return float(self.overlaps[truth["video_id"]].iou[self._row[prediction["id"]], self._col[truth["id"]]])


def _group_by_video_and_category(tracks: List[dict]) -> Dict[tuple, List[dict]]:
    groups = defaultdict(list)
    for track in tracks:
        groups[track["video_id"], track["category_id"]].append(track)
    return groups


def _group_by_video(tracks: List[dict]) -> Dict[int, List[dict]]:
    groups = defaultdict(list)
    for track in tracks:
        groups[track["video_id"]].append(track)
    return groups


def evaluate_ytvis(
    ground_truth: Union[str, os.PathLike, dict, YTVISGroundTruth],
    results: Union[str, os.PathLike, List[dict]],
    per_class: bool = False,
) -> dict:
    """
    The official YouTube-VIS metric, plus identity switches.

    Args:
        ground_truth: an annotation file (path), its parsed json, or it loaded by
            :func:`load_ground_truth`; with annotations.
        results: a results file (path) or its list of records (see
            :func:`sgnet.evaluation.tracks.load_results`). An empty list gives 0 for every AP
            and AR (pycocotools' own loader would crash on it).
        per_class: also report ``"AP-<category name>"`` in ``"segm"``.

    Returns:
        ``{"segm": {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10"}, "tracking":
        {"IDSW", "IDSW_per_video"}}``. AP/AR are on the 0-100 scale, NaN where undefined (e.g.
        APs without small ground truth). ``IDSW`` is the total of
        :meth:`YTVISeval.identity_switches`, ``IDSW_per_video`` that total over the videos.

    Raises:
        MissingInput, InvalidInput: for a missing file, a ground truth without annotations,
            and bad input (see :func:`load_ground_truth`, :func:`load_results`).
    """
    truth = ground_truth if isinstance(ground_truth, YTVISGroundTruth) else load_ground_truth(ground_truth)
    if not truth.tracks:
        named = os.fspath(ground_truth) if isinstance(ground_truth, (str, os.PathLike)) else "The ground truth"
        raise InvalidInput(
            f"{named} has no annotations (as the public valid/test splits): there is nothing to "
            "evaluate locally; submit results.zip to the benchmark server instead."
        )
    predictions = load_results(results, truth)
    logger.info(
        f"Evaluating {len(predictions)} results (track, category) against {len(truth.tracks)} "
        f"ground-truth tracks in {len(truth.videos)} videos."
    )
    if not predictions:
        logger.warning("No predictions: every AP and AR is 0.")
    coco_eval = run_ytvis_eval(truth, predictions)
    with _prints_to_log():
        coco_eval.summarize()
    segm = {name: _percent(coco_eval.stats[i]) for i, name in enumerate(SUMMARY_METRICS)}
    switches = sum(coco_eval.identity_switches().values())
    tracking = {"IDSW": switches, "IDSW_per_video": switches / len(truth.videos)}
    logger.info("YouTube-VIS segm metrics:\n" + create_small_table({**segm, **tracking}))
    if per_class:
        per_category = per_category_ap(coco_eval, truth.categories)
        logger.info(
            "Per-category segm AP:\n"
            + tabulate(per_category.items(), headers=["category", "AP"], floatfmt=".3f")
        )
        segm.update((f"AP-{name}", ap) for name, ap in per_category.items())
    return {"segm": segm, "tracking": tracking}


def run_ytvis_eval(truth: YTVISGroundTruth, predictions: List[dict]) -> YTVISeval:
    """The metric's :class:`YTVISeval` of ``predictions`` (from :func:`load_results`) against
    ``truth``, evaluated and accumulated (pycocotools' prints go to the log): ready for
    ``summarize()``, :func:`per_category_ap` and the per-video figures of :mod:`.per_video`."""
    coco_eval = YTVISeval(truth, predictions)
    for step in (coco_eval.evaluate, coco_eval.accumulate):
        with _prints_to_log():
            step()
    return coco_eval


@contextlib.contextmanager
def _prints_to_log():
    """pycocotools reports progress and its summary with print(); keep stdout for the caller."""
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        yield
    for line in printed.getvalue().splitlines():
        logger.info(line)


def _percent(value: float) -> float:
    # pycocotools marks a metric without ground truth in its range as -1.
    return float(value * 100) if value >= 0 else math.nan


def per_category_ap(coco_eval: YTVISeval, categories: List[Category]) -> Dict[str, float]:
    """AP (0-100) per category name of an accumulated :class:`YTVISeval`, ``categories`` sorted
    by id as its ``params.catIds``; NaN for a category without ground truth."""
    precision = _all_area_precision(coco_eval)
    return {category.name: _mean_precision(precision[:, :, k]) for k, category in enumerate(categories)}


def summary_ap(coco_eval: YTVISeval) -> float:
    """The AP (0-100) of an accumulated :class:`YTVISeval`: ``summarize()``'s ``stats[0]``
    (over its categories, IoU thresholds and recall points), NaN without ground truth."""
    return _mean_precision(_all_area_precision(coco_eval))


def _all_area_precision(coco_eval: YTVISeval) -> np.ndarray:
    """(iou thresholds, recall points, categories) precision at area range "all", maxDets 100."""
    return coco_eval.eval["precision"][:, :, :, coco_eval.params.areaRngLbl.index("all"), -1]


def _mean_precision(precision: np.ndarray) -> float:
    # -1 marks what has no ground truth (pycocotools), left out of the mean as summarize() does.
    values = precision[precision > -1]
    return float(values.mean() * 100) if values.size else math.nan
