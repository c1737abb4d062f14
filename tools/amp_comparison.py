"""Float32 against autocast inference, shared by the tests (CPU) and ``tools/gpu_check.py`` (CUDA):
the same model must give the same detections, masks and track ids within stated tolerances."""
from dataclasses import dataclass
from typing import List, Optional

import torch
from detectron2.structures import Instances, pairwise_iou

from sgnet.tracking import TrackMemory


@dataclass(frozen=True)
class Tolerance:
    """How far a detection under autocast may be from its float32 twin: ``box_px`` the largest
    coordinate difference (output pixels), ``score`` the largest score difference, ``mask_iou``
    the smallest IoU of the two masks."""

    box_px: float
    score: float
    mask_iou: float


# Measured on CPU with the overfit toy model of the tests (3 frames, 128 x 160): float16 0.02 px,
# 2e-4, IoU 1.0; bfloat16 0.1 px, 8e-4, IoU 0.96 (a mask's edge moving by a pixel). Bounds with
# room for other kernels (CUDA's) and models.
TOLERANCES = {
    torch.float16: Tolerance(box_px=1.0, score=0.01, mask_iou=0.95),
    torch.bfloat16: Tolerance(box_px=2.0, score=0.02, mask_iou=0.9),
}


def stream(model, frames: List[torch.Tensor], output_size, dtype: Optional[torch.dtype] = None) -> List[Instances]:
    """The streaming API over ``frames`` with a fresh track memory: in float32 (``dtype`` None) or
    under ``torch.autocast`` of the model's device with ``dtype``. Per frame, the tracked Instances."""
    memory = TrackMemory()
    autocast = torch.autocast(model.device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
    with torch.no_grad(), autocast:
        return [model.inference_frame(frame.to(model.device), output_size, memory) for frame in frames]


def _cutoff(model, detections: Instances) -> float:
    """The lowest score a detection of this frame could have had and still be kept."""
    if len(detections) >= model.max_detections_per_image:
        return float(detections.scores.min())
    return model.test_score_thresh


def compare_streams(model, reference: List[Instances], candidate: List[Instances], tolerance: Tolerance) -> dict:
    """Match each frame's detections (same class, box IoU >= 0.5, best first) and measure them.

    A detection without a twin is allowed only near the other run's cut-off (score threshold, or
    the lowest kept score at ``max_detections_per_image``): within ``tolerance.score`` of it, it
    may fall on either side. Returns a JSON-able summary; ``problems`` lists every violation.
    """
    summary = {"frames": len(reference), "matched": 0, "near_cutoff": 0, "max_box_px": 0.0, "max_score": 0.0,
               "min_mask_iou": 1.0, "problems": []}  # fmt: skip
    for frame, (ref, cand) in enumerate(zip(reference, candidate)):
        ref, cand = ref.to("cpu"), cand.to("cpu")
        ious = pairwise_iou(ref.pred_boxes, cand.pred_boxes)
        ious[ref.pred_classes[:, None] != cand.pred_classes[None, :]] = 0
        unmatched = set(range(len(cand)))
        for i in ref.scores.argsort(descending=True).tolist():
            j = max(unmatched, key=lambda k: float(ious[i, k]), default=None)
            if j is None or ious[i, j] < 0.5:
                _missing(summary, frame, "float32", float(ref.scores[i]), _cutoff(model, cand), tolerance)
                continue
            unmatched.remove(j)
            summary["matched"] += 1
            box_px = float((ref.pred_boxes.tensor[i] - cand.pred_boxes.tensor[j]).abs().max())
            score = abs(float(ref.scores[i] - cand.scores[j]))
            union = float((ref.pred_masks[i] | cand.pred_masks[j]).sum())
            mask_iou = float((ref.pred_masks[i] & cand.pred_masks[j]).sum()) / max(union, 1.0)
            summary["max_box_px"] = max(summary["max_box_px"], box_px)
            summary["max_score"] = max(summary["max_score"], score)
            summary["min_mask_iou"] = min(summary["min_mask_iou"], mask_iou)
            where = f"frame {frame}, track {int(ref.track_ids[i])}"
            if int(ref.track_ids[i]) != int(cand.track_ids[j]):
                summary["problems"].append(f"{where}: track id {int(cand.track_ids[j])} under autocast")
            if box_px > tolerance.box_px or score > tolerance.score or mask_iou < tolerance.mask_iou:
                summary["problems"].append(f"{where}: box {box_px:.3g} px, score {score:.3g}, mask IoU {mask_iou:.3g}")
            for name in ("scores", "embeddings"):
                if cand.get(name).dtype != torch.float32:
                    summary["problems"].append(f"{where}: {name} in {cand.get(name).dtype}")
            if cand.pred_boxes.tensor.dtype != torch.float32:
                summary["problems"].append(f"{where}: boxes in {cand.pred_boxes.tensor.dtype}")
        for j in sorted(unmatched):
            _missing(summary, frame, "autocast", float(cand.scores[j]), _cutoff(model, ref), tolerance)
    return summary


def _missing(summary: dict, frame: int, run: str, score: float, cutoff: float, tolerance: Tolerance) -> None:
    if score <= cutoff + tolerance.score:
        summary["near_cutoff"] += 1
    else:
        summary["problems"].append(f"frame {frame}: a detection of score {score:.3g} only in the {run} run")
