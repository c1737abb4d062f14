"""Per-frame post-processing: candidates, NMS, and the bilinear resampling the masks' assembly
and paste (:mod:`.mask_paste`) share."""
from dataclasses import dataclass
from typing import List

import torch
from torchvision.ops import nms
from torch import Tensor
from torch.nn import functional as F


@dataclass
class Detections:
    """D detections of one image. level, ys, xs: (D,) where on the FPN the detection was made
    (to read its mask coefficients there); boxes (D, 4) in input pixels; scores, labels (D,);
    class_scores (D, C) every class's score at the detection's location."""

    level: Tensor
    ys: Tensor
    xs: Tensor
    boxes: Tensor
    scores: Tensor
    labels: Tensor
    class_scores: Tensor

    def __getitem__(self, index) -> "Detections":
        return Detections(*(getattr(self, f)[index] for f in self.__dataclass_fields__))

    def __len__(self) -> int:
        return len(self.scores)


def select_detections(
    cls_logits: List[Tensor],
    centerness_logits: List[Tensor],
    decode_boxes,
    *,
    pre_nms_topk: int,
    score_thresh: float,
    nms_thresh: float,
    max_detections: int,
    image_size,
    class_agnostic: bool = False,
) -> Detections:
    """Release post-processing for one image: per level, the ``pre_nms_topk`` locations with the
    highest max_c(class score x centerness); score = sigmoid(cls) x sigmoid(centerness) per class
    above ``score_thresh``; per-class NMS; the ``max_detections`` best.

    Traceable (``torch.onnx.export``): no value of a tensor decides the control flow or a size,
    so the exported graph holds for any frame size and number of detections, zero included.

    ``class_agnostic``: a location is one candidate, its best class, and NMS ignores classes, so
    an object gets one detection however its class scores are spread (its other classes' scores
    stay in ``class_scores``).

    Args:
        cls_logits: per level (C, H, W); centerness_logits: per level (1, H, W).
        decode_boxes: callable(level, flat location indices (K,)) -> (K, 4) boxes.
        image_size: (h, w) of the (unpadded) input image, to clip boxes.
    """
    per_level = []
    for level, (logits, centerness) in enumerate(zip(cls_logits, centerness_logits)):
        num_classes, _, width = logits.shape
        scores = (logits.sigmoid() * centerness.sigmoid()).flatten(1).t()  # (HW, C)
        # min(pre_nms_topk, H * W) as a tensor: a Python int would freeze the example's size.
        num_candidates = torch.as_tensor(scores.shape[0]).clamp(max=pre_nms_topk)
        top_locations = scores.max(dim=1).values.topk(num_candidates).indices
        candidate_scores = scores[top_locations]
        if class_agnostic:
            best_scores, labels = candidate_scores.max(dim=1)
            location_idx = (best_scores > score_thresh).nonzero()[:, 0]
            labels = labels[location_idx]
        else:
            location_idx, labels = (candidate_scores > score_thresh).nonzero(as_tuple=True)
        locations = top_locations[location_idx]
        boxes = decode_boxes(level, locations)
        per_level.append(
            Detections(
                level=torch.full_like(locations, level),
                ys=locations // width,
                xs=locations % width,
                boxes=boxes,
                scores=scores[locations, labels],
                labels=labels,
                class_scores=scores[locations],
            )
        )
    detections = Detections(*(torch.cat([getattr(d, f) for d in per_level]) for f in Detections.__dataclass_fields__))
    # (w, h, w, h): image_size is a pair of ints, or a (2,) tensor (h, w) when traced.
    size = torch.as_tensor(image_size, device=detections.boxes.device).flip(0).repeat(2).to(detections.boxes.dtype)
    detections.boxes = torch.minimum(detections.boxes.clamp(min=0), size)
    nms_groups = None if class_agnostic else detections.labels
    keep = nms_per_group(detections.boxes, detections.scores, nms_groups, nms_thresh, size.max())
    return detections[keep[:max_detections]]


def nms_per_group(boxes: Tensor, scores: Tensor, groups, iou_thresh: float, max_coordinate) -> Tensor:
    """NMS within each group (``groups`` (N,) int64, or None: one group), as kept indices in
    decreasing score order. Boxes (N, 4) lie in [0, ``max_coordinate``]: shifting each group's
    boxes by group * (max_coordinate + 1) keeps groups apart in one NMS, with no reduction over
    the boxes (which an exported graph could not run on zero boxes)."""
    if iou_thresh >= 1.0:
        # No IoU exceeds 1: NMS keeps every box. Not left to NMS because OpenVINO's suppresses
        # boxes whose IoU equals the threshold (identical boxes at 1.0), where torchvision's and
        # ONNX Runtime's keep them.
        return scores.argsort(descending=True)
    if groups is not None:
        # In float32 at least: half precision would round the shifted coordinates by pixels.
        boxes = boxes.float() + (groups * (max_coordinate + 1)).float()[:, None]
    return nms(boxes, scores.to(boxes.dtype), iou_thresh)


def source_coordinates(indices: Tensor, in_size, scale: float) -> Tensor:
    """Source coordinate of output ``indices`` (integer or float, any shape) of a bilinear resize along one
    axis, as ``F.interpolate(..., align_corners=False)`` computes it with this input/output
    ``scale``, clamped to [0, in_size - 1] (where the resize reads the edge pixel alone)."""
    return ((indices + 0.5) * scale - 0.5).clamp(0, in_size - 1)


def bilinear_sources(out_size: int, in_size: int, scale: float, device=None) -> Tensor:
    """(out_size,) :func:`source_coordinates` of every output index."""
    return source_coordinates(torch.arange(out_size, dtype=torch.float32, device=device), in_size, scale)


def resample_crops(crops: Tensor, ys: Tensor, xs: Tensor) -> Tensor:
    """Bilinear samples of crops on separable grids of crop pixel coordinates, 0 outside.

    Args:
        crops: (n, C, h, w).
        ys: (n, H) row coordinates; xs: (n, W) column coordinates (pixel centres at integers).
    Returns:
        (n, C, H, W): sample (y, x) of crop k is at (ys[k, y], xs[k, x]).
    """
    height, width = crops.shape[-2:]
    # grid_sample's normalised coordinates for align_corners=False: pixel u is at (2u + 1) / size - 1.
    grid_xs = ((2 * xs.float() + 1) / width - 1)[:, None, :]
    grid_ys = ((2 * ys.float() + 1) / height - 1)[:, :, None]
    # Broadcast to (n, H, W) by adding zeros: traced, assigning into a preallocated grid freezes
    # the example's sizes into the exported graph.
    grid = torch.stack([grid_xs + 0 * grid_ys, grid_ys + 0 * grid_xs], dim=-1)
    # In float32 whatever the crops' dtype: half-precision coordinates would be off by pixels.
    return F.grid_sample(crops.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def resize_windows(starts: Tensor, ends: Tensor, sources: Tensor):
    """The output indices of a resize (``sources`` from :func:`bilinear_sources`) that read the
    input range [start, end): (first (n,), count (n,)). Outside them, a map that is 0 outside the
    range resizes to 0."""
    first = torch.searchsorted(sources, (starts - 1).to(sources.dtype), right=True)
    last = torch.searchsorted(sources, ends.to(sources.dtype))
    return first, (last - first).clamp(min=0)
