"""Per-frame post-processing: candidates, NMS, and mask pasting at the output resolution."""
from dataclasses import dataclass
from typing import List

import torch
from detectron2.layers import batched_nms
from torch import Tensor
from torch.nn import functional as F


@dataclass
class Detections:
    """D detections of one image. level, ys, xs: (D,) where on the FPN the detection was made
    (to read its mask coefficients there); boxes (D, 4) in input pixels; scores, labels (D,)."""

    level: Tensor
    ys: Tensor
    xs: Tensor
    boxes: Tensor
    scores: Tensor
    labels: Tensor

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
) -> Detections:
    """Release post-processing for one image: per level, the ``pre_nms_topk`` locations with the
    highest max_c(class score x centerness); score = sigmoid(cls) x sigmoid(centerness) per class
    above ``score_thresh``; per-class NMS; the ``max_detections`` best.

    Args:
        cls_logits: per level (C, H, W); centerness_logits: per level (1, H, W).
        decode_boxes: callable(level, flat location indices (K,)) -> (K, 4) boxes.
        image_size: (h, w) of the (unpadded) input image, to clip boxes.
    """
    per_level = []
    for level, (logits, centerness) in enumerate(zip(cls_logits, centerness_logits)):
        num_classes, _, width = logits.shape
        scores = (logits.sigmoid() * centerness.sigmoid()).flatten(1).t()  # (HW, C)
        top_locations = scores.max(dim=1).values.topk(min(pre_nms_topk, len(scores))).indices
        location_idx, labels = (scores[top_locations] > score_thresh).nonzero(as_tuple=True)
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
            )
        )
    detections = Detections(*(torch.cat([getattr(d, f) for d in per_level]) for f in Detections.__dataclass_fields__))
    height, width = image_size
    detections.boxes[:, 0::2] = detections.boxes[:, 0::2].clamp(0, width)
    detections.boxes[:, 1::2] = detections.boxes[:, 1::2].clamp(0, height)
    keep = batched_nms(detections.boxes, detections.scores, detections.labels, nms_thresh)
    return detections[keep[:max_detections]]


def paste_masks(
    pixel_instance: Tensor,
    ys: Tensor,
    xs: Tensor,
    logits: Tensor,
    num_instances: int,
    basis_size,
    basis_stride: int,
    input_size,
    output_size,
    threshold: float,
) -> Tensor:
    """Masks at the output resolution from the logits at box pixels of the basis map.

    Probabilities are 0 outside boxes. The basis map covers the padded input at ``basis_stride``;
    its part covering the unpadded ``input_size`` is resized to ``output_size`` and thresholded.

    Returns:
        (D, H_out, W_out) bool.
    """
    probabilities = logits.new_zeros(num_instances, *basis_size)
    probabilities[pixel_instance, ys, xs] = logits.sigmoid()
    valid_h = -(-input_size[0] // basis_stride)
    valid_w = -(-input_size[1] // basis_stride)
    probabilities = probabilities[:, :valid_h, :valid_w]
    if num_instances == 0:
        return torch.zeros(0, *output_size, dtype=torch.bool, device=logits.device)
    resized = F.interpolate(probabilities[:, None], size=tuple(output_size), mode="bilinear", align_corners=False)
    return resized[:, 0] > threshold
