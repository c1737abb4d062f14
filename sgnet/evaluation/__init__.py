"""Video instance segmentation evaluation (official YouTube-VIS metric).

- :class:`YTVISEvaluator`: the detectron2 evaluator (results.json / results.zip, metrics).
- :func:`evaluate_ytvis`: the metric on an annotation json and results, without detectron2 state;
  also ``python -m sgnet.evaluation.ytvis_eval --gt GT.json --results results.json``.
- :class:`YTVISeval`: pycocotools' COCOeval over videos, for custom parameters or analyses.
"""
from .evaluator import YTVISEvaluator, predictions_to_results
from ..formats.rle import encode_masks
from .tracks import load_ground_truth, load_results
from .video_overlaps import compute_video_overlaps, count_identity_switches
from .ytvis_metric import YTVISeval, evaluate_ytvis

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
]
