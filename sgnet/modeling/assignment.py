"""FCOS target assignment (Tian et al., 2019), owned here because detectron2 changed its API for it
(``FCOS.match_anchors`` in v0.6, ``FCOS._match_anchors`` returning a quality matrix on main)."""
from typing import List

import torch
from detectron2.structures import Boxes
from torch import Tensor


@torch.no_grad()
def fcos_matched_indices(anchors: List[Boxes], gt_boxes: Tensor, center_sampling_radius: float) -> Tensor:
    """Index of the ground-truth box each anchor point is responsible for, -1 for background.

    The paper's rule, as detectron2's FCOS applies it: an anchor point (a box of its level's
    stride s) matches a GT box when it lies inside it, within ``center_sampling_radius * s`` of its
    centre (max-norm), and the largest of its distances to the box sides is in the level's range
    (4s, 8s) (the finest level from 0, the coarsest to infinity); among several matches the box
    with the smallest area wins.

    Args:
        anchors: per level, (R_l, 4) anchor boxes, finest level first.
        gt_boxes: (M, 4) x0y0x1y1 ground-truth boxes of one image.
    Returns:
        (R,) int64 over all levels' anchors.
    """
    anchor_boxes = Boxes.cat(anchors).tensor
    num_anchors = len(anchor_boxes)
    if len(gt_boxes) == 0:
        return torch.full((num_anchors,), -1, dtype=torch.long, device=anchor_boxes.device)
    centres = (anchor_boxes[:, :2] + anchor_boxes[:, 2:]) / 2  # (R, 2)
    strides = anchor_boxes[:, 2] - anchor_boxes[:, 0]  # (R,)
    lower = strides * 4
    lower[: len(anchors[0])] = 0
    upper = strides * 8
    upper[num_anchors - len(anchors[-1]) :] = float("inf")

    gt_centres = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2  # (M, 2)
    near_centre = (centres[:, None] - gt_centres[None]).abs().amax(dim=2) < center_sampling_radius * strides[:, None]
    # (R, M, 4) distances to the left, top, right and bottom sides.
    sides = torch.cat([centres[:, None] - gt_boxes[None, :, :2], gt_boxes[None, :, 2:] - centres[:, None]], dim=2)
    largest = sides.amax(dim=2)
    matches = near_centre & (sides.amin(dim=2) > 0) & (largest > lower[:, None]) & (largest < upper[:, None])

    # Smallest area wins: rank matches by 1e8 - area (in float32, as detectron2 does, so that
    # equal-area ties resolve the same way).
    areas = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])
    quality, matched = (matches.float() * (1e8 - areas.float())[None]).max(dim=1)
    matched[quality < 1e-5] = -1
    return matched
