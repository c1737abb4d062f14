"""Overlaps between the predicted and ground-truth tracks of one video.

One pass over the frames computes pycocotools' per-frame mask IoUs of every (prediction, ground
truth) pair present in the frame; from it come both the official video IoU (used by the AP) and
per-frame matches (used to count identity switches).
"""
from dataclasses import dataclass
from typing import List, Sequence

import numpy as np
import pycocotools.mask as mask_util

__all__ = ["VideoOverlaps", "compute_video_overlaps", "count_identity_switches"]

# A ground truth's per-frame match must have at least this mask IoU with it.
IDENTITY_MATCH_IOU = 0.5


@dataclass
class VideoOverlaps:
    iou: np.ndarray  # (D, G) float64 video IoU (see compute_video_overlaps)
    frame_match: np.ndarray  # (G, T) int64: per frame, the matched prediction's row, -1 if none


def compute_video_overlaps(
    predictions: Sequence[dict], ground_truths: Sequence[dict], num_frames: int
) -> VideoOverlaps:
    """
    Args:
        predictions: D evaluation tracks (see :mod:`.tracks`) of one video, in the row order of
            the result. Per-frame match ties go to the earlier row: pass them by descending score.
        ground_truths: G evaluation tracks of the same video.
        num_frames: T, the video's length.

    Returns:
        VideoOverlaps with

        - ``iou[d, g]``: the official video IoU, sum_t |d_t ∩ g_t| / sum_t |d_t ∪ g_t|, where a
          frame with only one of the two contributes that one's area to the union. For a crowd
          ground truth, COCO's crowd IoU |d ∩ g| / |d| summed the same way:
          sum_t |d_t ∩ g_t| / sum_t |d_t|, the share of the prediction that lies in the crowd
          region (frames where only the crowd is present cost nothing). 0 when the denominator is.
        - ``frame_match[g, t]``: the row of the prediction with the highest mask IoU with ``g`` in
          frame t if that IoU is >= 0.5, else -1 (also where ``g`` is absent).
    """
    prediction_areas = _area_matrix(predictions, num_frames)  # (D, T)
    truth_areas = _area_matrix(ground_truths, num_frames)  # (G, T)
    intersection = np.zeros((len(predictions), len(ground_truths)))
    frame_match = np.full((len(ground_truths), num_frames), -1, dtype=np.int64)
    for t in range(num_frames):
        # Empty masks overlap nothing: skipping them leaves every sum unchanged.
        rows = np.flatnonzero(prediction_areas[:, t])
        cols = np.flatnonzero(truth_areas[:, t])
        if rows.size == 0 or cols.size == 0:
            continue
        frame_iou = mask_util.iou(
            [predictions[r]["segmentations"][t] for r in rows],
            [ground_truths[c]["segmentations"][t] for c in cols],
            [0] * cols.size,
        )  # (len(rows), len(cols))
        # iou = I / (a + b - I)  <=>  I = iou * (a + b) / (1 + iou): exact intersections from the
        # vectorised IoU, instead of one pycocotools merge per pair and frame.
        area_sums = prediction_areas[rows, t][:, None] + truth_areas[cols, t][None, :]
        intersection[np.ix_(rows, cols)] += np.rint(frame_iou * area_sums / (1.0 + frame_iou))
        best = frame_iou.argmax(axis=0)
        matched = frame_iou[best, np.arange(cols.size)] >= IDENTITY_MATCH_IOU
        frame_match[cols[matched], t] = rows[best[matched]]
    iscrowd = np.array([bool(g["iscrowd"]) for g in ground_truths], dtype=bool)
    iou = _video_iou(intersection, prediction_areas.sum(axis=1), truth_areas.sum(axis=1), iscrowd)
    return VideoOverlaps(iou=iou, frame_match=frame_match)


def _area_matrix(tracks: Sequence[dict], num_frames: int) -> np.ndarray:
    if not tracks:
        return np.zeros((0, num_frames))
    return np.stack([track["frame_areas"] for track in tracks])


def _video_iou(intersection, prediction_total, truth_total, iscrowd) -> np.ndarray:
    """
    Args:
        intersection: (D, G) summed per-frame intersections.
        prediction_total, truth_total: (D,), (G,) summed per-frame areas.
        iscrowd: (G,) bool.
    """
    union = prediction_total[:, None] + truth_total[None, :] - intersection
    denominator = np.where(iscrowd[None, :], prediction_total[:, None], union)
    return np.divide(
        intersection, denominator, out=np.zeros_like(intersection), where=denominator > 0
    )


def count_identity_switches(frame_match: np.ndarray) -> List[int]:
    """
    Identity switches of each ground-truth track: over the frames where it is matched (see
    ``frame_match`` of :func:`compute_video_overlaps`), how many times its matched prediction
    differs from the one matched before. Unmatched frames are skipped, as in the CLEAR-MOT
    definition: a track lost and found again by the same prediction is no switch.

    Args:
        frame_match: (G, T) prediction rows, -1 where unmatched.

    Returns:
        G counts.
    """
    switches = []
    for row in frame_match:
        matched = row[row >= 0]
        switches.append(int(np.count_nonzero(matched[1:] != matched[:-1])))
    return switches
