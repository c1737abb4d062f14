"""SG-Net's training losses. Each returns a scalar that stays finite (and in the graph) when
there is nothing to supervise: empty images, no positives, no key object in the reference frame.

Losses run with autocast off (:func:`autocast_disabled`) on the float32 predictions the heads
output, so that they are computed in float32 under mixed precision too."""
from typing import Tuple

import torch
from detectron2.structures import Boxes
from detectron2.structures.boxes import matched_pairwise_iou
from fvcore.nn import giou_loss, sigmoid_focal_loss_jit
from torch import Tensor
from torch.nn import functional as F

from .precision import autocast_disabled


@autocast_disabled()
def classification_loss(logits: Tensor, labels: Tensor, num_classes: int, alpha: float, gamma: float) -> Tensor:
    """Sigmoid focal loss averaged over (num positives + num images), as the release.

    Args:
        logits: (N, R, C); labels: (N, R) in 0..C, C = background.
    """
    targets = F.one_hot(labels, num_classes + 1)[..., :num_classes].to(logits.dtype)
    num_positives = (labels != num_classes).sum()
    loss = sigmoid_focal_loss_jit(logits, targets, alpha=alpha, gamma=gamma, reduction="sum")
    return loss / (num_positives + labels.shape[0])


def centerness_targets(distances: Tensor) -> Tensor:
    """FCOS centerness sqrt(min(l,r)/max(l,r) * min(t,b)/max(t,b)) of (P, 4) l, t, r, b distances."""
    left_right, top_bottom = distances[:, [0, 2]], distances[:, [1, 3]]
    ratio = (left_right.min(dim=1).values / left_right.max(dim=1).values.clamp(min=1e-6)) * (
        top_bottom.min(dim=1).values / top_bottom.max(dim=1).values.clamp(min=1e-6)
    )
    return ratio.clamp(min=0).sqrt()


@autocast_disabled()
def box_and_centerness_losses(
    pred_boxes: Tensor, gt_boxes: Tensor, centerness_logits: Tensor, gt_centerness: Tensor
) -> Tuple[Tensor, Tensor]:
    """Box loss weighted by centerness targets and averaged by their sum (release), and the
    centerness BCE averaged over positives.

    The box loss is GIoU (fvcore) rather than the release's -log(IoU): it still has a gradient
    for predicted boxes that do not overlap their target (degenerate early predictions).

    Args:
        pred_boxes, gt_boxes: (P, 4) decoded boxes at the positives; centerness_logits,
        gt_centerness: (P,).
    """
    box_loss = (giou_loss(pred_boxes, gt_boxes, reduction="none") * gt_centerness).sum()
    box_loss = box_loss / gt_centerness.sum().clamp(min=1e-6)
    centerness_loss = F.binary_cross_entropy_with_logits(centerness_logits, gt_centerness, reduction="sum")
    return box_loss, centerness_loss / max(len(gt_centerness), 1)


def mean_of_group_means(values: Tensor, counted: Tensor, groups: Tensor, num_groups: int, over_all_groups: bool) -> Tensor:
    """Each group's mean of its counted ``values``, averaged over all ``num_groups`` groups (an
    empty group adds 0: the release divides by the number of images) or over the non-empty ones.
    A scalar that keeps the graph (zero gradients) when nothing is counted; no host sync.

    Args:
        values: (P,); counted: (P,) bool, the values that count; groups: (P,) int64 in
            [0, num_groups).
    """
    values = torch.where(counted, values, torch.zeros_like(values))
    sums = values.new_zeros(num_groups).index_add_(0, groups, values)
    counts = values.new_zeros(num_groups).index_add_(0, groups, counted.to(values.dtype))
    means = sums / counts.clamp(min=1)
    return means.sum() / (num_groups if over_all_groups else (counts > 0).sum().clamp(min=1))


@autocast_disabled()
def mask_loss(
    logits: Tensor,
    targets: Tensor,
    pixel_instance: Tensor,
    instance_image: Tensor,
    instance_weights: Tensor,
    num_images: int,
    per_image: bool = True,
) -> Tensor:
    """Box-normalised BCE of the assembled masks, instances weighted, averaged per image, then
    over images.

    Args:
        logits, targets: (P,) mask logits and GT values (in [0, 1]) at the P box pixels.
        pixel_instance: (P,) instance of each pixel.
        instance_image: (M,) image of each instance.
        instance_weights: (M,) score x IoU per instance, normalised here to mean 1 over the
            instances that have pixels.
        per_image: the release's normalisation: weights to mean 1 within each image, and the
            images' losses averaged over all ``num_images`` images; else weights to mean 1 over
            the batch, and the losses averaged over the images that have supervised instances.
    """
    num_instances = len(instance_image)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    pixel_counts = logits.new_zeros(num_instances).index_add_(0, pixel_instance, torch.ones_like(bce))
    per_instance = logits.new_zeros(num_instances).index_add_(0, pixel_instance, bce) / pixel_counts.clamp(min=1)
    has_pixels = pixel_counts > 0
    weights = instance_weights * has_pixels
    # Weight normalisation groups: the images, or the batch as one group.
    groups = instance_image if per_image else torch.zeros_like(instance_image)
    group_totals = weights.new_zeros(num_images).index_add_(0, groups, weights)
    group_counts = weights.new_zeros(num_images).index_add_(0, groups, has_pixels.to(weights.dtype))
    weights = weights / (group_totals / group_counts.clamp(min=1)).clamp(min=1e-6)[groups]
    return mean_of_group_means(per_instance * weights, has_pixels, instance_image, num_images, over_all_groups=per_image)


def instance_weights(scores: Tensor, pred_boxes: Tensor, gt_boxes: Tensor) -> Tensor:
    """Classification score x IoU(predicted box, GT box) per positive, (P,)."""
    return scores * matched_pairwise_iou(Boxes(pred_boxes), Boxes(gt_boxes))


@autocast_disabled()
def track_loss(
    key_embeddings: Tensor,
    ref_embeddings: Tensor,
    same_key: Tensor,
    targets: Tensor,
    key_image: Tensor,
    num_images: int,
    per_image: bool = True,
) -> Tuple[Tensor, Tensor]:
    """Cross-entropy of matching key objects against their reference frame's objects.

    Args:
        key_embeddings: (P, D) at the key positives' predicted box centres.
        ref_embeddings: (M, D) at the (jittered) reference objects' centres, all pairs together.
        same_key: (P, M) bool, True where the reference object is in the positive's reference
            frame.
        targets: (P,) 0 = "new object" (absent from the reference frame), j + 1 = reference
            object j.
        key_image: (P,) key image (of ``num_images``) of each positive.
        per_image: average over each image's positives, then over all ``num_images`` images
            (release); else over all positives at once.
    Returns:
        (loss, accuracy): accuracy is the fraction of positives whose argmax is the target, NaN-free
        (1.0 when there is no positive).
    """
    similarity = key_embeddings @ ref_embeddings.t()
    similarity = similarity.masked_fill(~same_key, float("-inf"))
    logits = torch.cat([similarity.new_zeros(len(similarity), 1), similarity], dim=1)
    per_positive = F.cross_entropy(logits, targets, reduction="none")
    counted = torch.ones_like(targets, dtype=torch.bool)
    if per_image:
        loss = mean_of_group_means(per_positive, counted, key_image, num_images, over_all_groups=True)
    else:
        loss = mean_of_group_means(per_positive, counted, torch.zeros_like(key_image), 1, over_all_groups=False)
    if len(targets) == 0:
        return loss, torch.ones(())
    accuracy = (logits.argmax(dim=1) == targets).float().mean()
    return loss, accuracy
