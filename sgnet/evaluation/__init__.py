"""Video instance segmentation evaluation (official YouTube-VIS metric).

- :class:`YTVISEvaluator`: the detectron2 evaluator (results.json / results.zip, metrics).
- :func:`evaluate_ytvis`: the metric on an annotation json and results, without detectron2 state;
  also ``python -m sgnet.evaluation.ytvis_eval --gt GT.json --results results.json``.
- :class:`YTVISeval`: pycocotools' COCOeval over videos, for custom parameters or analyses;
  :func:`run_ytvis_eval` makes one ready for :func:`summary_ap`, :func:`per_category_ap` and
  the per-video figures (:func:`video_ap`, :func:`video_matches`; :func:`select_videos`).
"""
from .evaluator import YTVISEvaluator, predictions_to_results
from ..formats.rle import encode_masks
from .tracks import load_ground_truth, load_results
from .per_video import TrackPair, VideoMatches, select_videos, video_ap, video_matches
from .video_overlaps import compute_video_overlaps, count_identity_switches
from .ytvis_metric import YTVISeval, evaluate_ytvis, per_category_ap, run_ytvis_eval, summary_ap

__all__ = [
    "YTVISEvaluator",
    "evaluate_ytvis",
    "YTVISeval",
    "predictions_to_results",
    "encode_masks",
    "load_ground_truth",
    "load_results",
    "compute_video_overlaps",
    "count_identity_switches",
    "run_ytvis_eval",
    "per_category_ap",
    "summary_ap",
    "select_videos",
    "video_ap",
    "video_matches",
    "TrackPair",
    "VideoMatches",
]
