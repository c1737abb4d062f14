"""The SG-Net meta-architecture: one-stage, ROI-free video instance segmentation."""
import logging
from dataclasses import dataclass
from typing import Dict, List, NamedTuple

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone
from detectron2.modeling.meta_arch.fcos import FCOS
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import get_event_storage
from torch import Tensor
from torch.nn import functional as F

from ..tracking import OnlineTracker
from . import losses
from .assignment import fcos_matched_indices
from .detection_head import SGNetDetectionHead
from .mask_head import SpatialGranularityMaskHead
from .mask_paste import paste_masks
from .postprocessing import Detections, select_detections
from .online import OnlineVideoInference
from .track_head import CenterTrackHead

logger = logging.getLogger(__name__)


@dataclass
class Positives:
    """The P positive locations of a batch of key frames.

    image: (P,) image index; anchor: (P,) index over all levels' locations; level, ys, xs: (P,)
    position on the FPN; gt: (P,) index of the matched object in its image's key instances.
    """

    image: Tensor
    anchor: Tensor
    level: Tensor
    ys: Tensor
    xs: Tensor
    gt: Tensor


class FrameOutputs(NamedTuple):
    """One frame's detections (:meth:`SGNet.frame_step`), in the order of the exported graph's
    outputs: boxes (D, 4) x0y0x1y1 at the output size, scores (D,), classes (D,) int64,
    class_scores (D, C), embeddings (D, E); and the masks before their paste onto the frame
    (:func:`~sgnet.modeling.mask_paste.paste_masks`): mask_probabilities (D, h, w) on crops of
    the basis map, mask_regions (D, 4) int64 where the crops lie in it, mask_map_size (2,)
    int64 the part of the map that covers the input (on the CPU in eager mode, where the paste
    reads it without a device synchronisation)."""

    boxes: Tensor
    scores: Tensor
    classes: Tensor
    class_scores: Tensor
    embeddings: Tensor
    mask_probabilities: Tensor
    mask_regions: Tensor
    mask_map_size: Tensor

    def to_instances(self, output_size, mask_threshold: float) -> Instances:
        """As detect_frame returns them: Instances at ``output_size`` (height, width), with the
        masks pasted at ``mask_threshold``."""
        return Instances(
            tuple(output_size),
            pred_boxes=Boxes(self.boxes),
            scores=self.scores,
            pred_classes=self.classes,
            class_scores=self.class_scores,
            pred_masks=paste_masks(
                self.mask_probabilities, self.mask_regions, self.mask_map_size.tolist(), output_size, mask_threshold
            ),
            embeddings=self.embeddings,
        )


def _trainable(instances: Instances) -> Instances:
    """Drop crowd objects: they are neither positives nor identities to match."""
    if instances.has("gt_crowd"):
        return instances[~instances.gt_crowd]
    return instances


def _replaced_fcos_method(name: str, replacement: str):
    """A method that refuses to run: SG-Net inherits FCOS's ``name`` but replaces what it does
    (``replacement`` says by what), so running it would apply FCOS's head layout to SG-Net's."""

    def refuse(self, *args, **kwargs):
        raise NotImplementedError(f"SGNet does not use FCOS.{name}; {replacement}")

    refuse.__name__ = refuse.__qualname__ = name
    refuse.__doc__ = f"Not used by SG-Net: {replacement}."
    return refuse


_SGNET_INFERENCE = "its inference is SGNet.forward on videos, inference_frame or frame_step"


@META_ARCH_REGISTRY.register()
class SGNet(OnlineVideoInference, FCOS):
    """SG-Net (Liu et al., CVPR 2021).

    Training input: clip pairs from :class:`sgnet.data.YTVISPairDatasetMapper` (key frame
    supervised for detection and masks, reference frame providing identities; with
    ``MODEL.SGNET.SYMMETRIC_PAIRS`` both frames play both roles). Inference input:
    videos (``"image"``: list of frame tensors), processed online frame by frame.

    Reuses detectron2's FCOS: anchor points, ``Box2BoxTransformLinear`` and image preprocessing;
    the FCOS assignment (centre sampling + level ranges) is :func:`fcos_matched_indices`. Deliberate differences from detectron2's
    FCOS: centerness-weighted box loss (release), the release's tower depths and per-level
    scales, deformable feature alignment, score = cls x centerness (no sqrt), and the mask and
    tracking heads. FCOS's own training and inference methods are replaced by :meth:`forward`
    and raise ``NotImplementedError`` naming what replaces them.

    Under autocast (``SOLVER.AMP``, or inference in ``torch.autocast``) the heads' predictions
    are float32, and the losses and the association run outside autocast (:mod:`.precision`).
    """

    # The public methods of detectron2's FCOS (and DenseDetector) that SG-Net does not use, on
    # v0.6 (match_anchors) and on main. preprocess_image and device are used as they are.
    forward_training = _replaced_fcos_method("forward_training", "its losses come from SGNet.forward on clip pairs")
    losses = _replaced_fcos_method("losses", "its losses are sgnet.modeling.losses, applied in SGNet.forward")
    label_anchors = _replaced_fcos_method("label_anchors", "its targets come from sgnet.modeling.assignment")
    match_anchors = _replaced_fcos_method("match_anchors", "its targets come from sgnet.modeling.assignment")
    compute_ctrness_targets = _replaced_fcos_method(
        "compute_ctrness_targets", "its centerness targets are sgnet.modeling.losses.centerness_targets"
    )
    forward_inference = _replaced_fcos_method("forward_inference", _SGNET_INFERENCE)
    inference_single_image = _replaced_fcos_method("inference_single_image", _SGNET_INFERENCE)
    visualize_training = _replaced_fcos_method(
        "visualize_training", "its training inputs are clip pairs, which DenseDetector cannot draw"
    )

    @configurable
    def __init__(
        self,
        *,
        backbone,
        head: SGNetDetectionHead,
        mask_head: SpatialGranularityMaskHead,
        track_head: CenterTrackHead,
        tracker: OnlineTracker,
        head_in_features: List[str],
        basis_in_features: List[str],
        track_in_features: List[str],
        num_classes: int,
        center_sampling_radius: float,
        focal_loss_alpha: float,
        focal_loss_gamma: float,
        loss_weights: Dict[str, float],
        track_box_jitter: float,
        mask_max_train_instances: int,
        mask_weights_per_image: bool,
        mask_binary_targets: bool,
        track_loss_per_image: bool,
        symmetric_pairs: bool,
        pre_nms_topk: int,
        score_thresh: float,
        nms_thresh: float,
        nms_class_agnostic: bool,
        max_detections_per_image: int,
        mask_threshold: float,
        track_label_rule: str,
        classes_per_track: int,
        pixel_mean,
        pixel_std,
    ):
        super().__init__(
            backbone=backbone,
            head=head,
            head_in_features=head_in_features,
            num_classes=num_classes,
            center_sampling_radius=center_sampling_radius,
            focal_loss_alpha=focal_loss_alpha,
            focal_loss_gamma=focal_loss_gamma,
            test_score_thresh=score_thresh,
            test_topk_candidates=pre_nms_topk,
            test_nms_thresh=nms_thresh,
            max_detections_per_image=max_detections_per_image,
            pixel_mean=pixel_mean,
            pixel_std=pixel_std,
        )
        missing = set(basis_in_features) - set(head_in_features)
        if missing:
            raise ValueError(f"MODEL.SGNET.MASK.BASIS_IN_FEATURES {sorted(missing)} not in MODEL.SGNET.IN_FEATURES")
        self.mask_head = mask_head
        self.track_head = track_head
        self.basis_levels = [head_in_features.index(f) for f in basis_in_features]
        self.track_in_features = track_in_features
        self.basis_stride = backbone.output_shape()[basis_in_features[0]].stride // mask_head.basis_upsample
        self.loss_weights = loss_weights
        self.track_box_jitter = track_box_jitter
        self.mask_max_train_instances = mask_max_train_instances
        self.mask_weights_per_image = mask_weights_per_image
        self.mask_binary_targets = mask_binary_targets
        self.track_loss_per_image = track_loss_per_image
        self.symmetric_pairs = symmetric_pairs
        self.mask_threshold = mask_threshold
        self.init_video_inference(
            tracker=tracker,
            track_label_rule=track_label_rule,
            classes_per_track=classes_per_track,
            nms_class_agnostic=nms_class_agnostic,
        )
        self.nms_class_agnostic = nms_class_agnostic

    @classmethod
    def from_config(cls, cfg):
        sg = cfg.MODEL.SGNET
        backbone = build_backbone(cfg)
        shapes = backbone.output_shape()
        unknown = set(sg.IN_FEATURES) - set(shapes)
        if unknown:
            raise ValueError(f"MODEL.SGNET.IN_FEATURES {sorted(unknown)} not produced by the backbone ({sorted(shapes)})")
        channels = shapes[sg.IN_FEATURES[0]].channels
        return {
            "backbone": backbone,
            "head": SGNetDetectionHead(cfg, [shapes[f] for f in sg.IN_FEATURES]),
            "mask_head": SpatialGranularityMaskHead(cfg, in_channels=channels),
            "track_head": CenterTrackHead(cfg, in_channels=channels, stride=shapes[sg.TRACK.IN_FEATURES[0]].stride),
            "tracker": OnlineTracker(cfg),
            "head_in_features": list(sg.IN_FEATURES),
            "basis_in_features": list(sg.MASK.BASIS_IN_FEATURES),
            "track_in_features": list(sg.TRACK.IN_FEATURES),
            "num_classes": sg.NUM_CLASSES,
            "center_sampling_radius": sg.CENTER_SAMPLING_RADIUS,
            "focal_loss_alpha": sg.FOCAL_LOSS_ALPHA,
            "focal_loss_gamma": sg.FOCAL_LOSS_GAMMA,
            "loss_weights": {
                "loss_fcos_cls": sg.LOSS_WEIGHT_CLS,
                "loss_fcos_loc": sg.LOSS_WEIGHT_BOX,
                "loss_fcos_ctr": sg.LOSS_WEIGHT_CENTERNESS,
                "loss_mask": sg.MASK.LOSS_WEIGHT,
                "loss_track": sg.TRACK.LOSS_WEIGHT,
            },
            "track_box_jitter": sg.TRACK.BOX_JITTER,
            "mask_max_train_instances": sg.MASK.MAX_TRAIN_INSTANCES,
            "mask_weights_per_image": sg.MASK.WEIGHTS_PER_IMAGE,
            "mask_binary_targets": sg.MASK.BINARY_TARGETS,
            "track_loss_per_image": sg.TRACK.LOSS_PER_IMAGE,
            "symmetric_pairs": sg.SYMMETRIC_PAIRS,
            "pre_nms_topk": sg.PRE_NMS_TOPK,
            "score_thresh": sg.SCORE_THRESH_TEST,
            "nms_thresh": sg.NMS_THRESH_TEST,
            "nms_class_agnostic": sg.NMS_CLASS_AGNOSTIC,
            "max_detections_per_image": sg.DETECTIONS_PER_IMAGE,
            "mask_threshold": sg.MASK.THRESHOLD,
            "track_label_rule": cfg.TEST.TRACK_LABEL_RULE,
            "classes_per_track": cfg.TEST.CLASSES_PER_TRACK,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
        }

    # ------------------------------------------------------------------ training

    def forward(self, batched_inputs: List[dict]):
        """Training: list of clip-pair dicts -> dict of losses. Inference: list of video dicts ->
        list of per-video outputs (see :meth:`inference_video`)."""
        if not self.training:
            return [self.inference_video(video) for video in batched_inputs]
        num_pairs = len(batched_inputs)
        # Key frames first, then reference frames: one backbone pass, one padding for both.
        images = self.preprocess_image(
            [{"image": x["image"][0]} for x in batched_inputs] + [{"image": x["image"][1]} for x in batched_inputs]
        )
        features = self.backbone(images.tensor)
        frame_instances = [_trainable(x["instances"][k]).to(self.device) for k in (0, 1) for x in batched_inputs]
        # Supervised frames: the key frames, or (symmetric pairs) every frame, the reference of
        # frame i being the other frame of its pair, (i + num_pairs) mod (2 * num_pairs).
        num_keys = 2 * num_pairs if self.symmetric_pairs else num_pairs
        ref_image_idx = [(i + num_pairs) % (2 * num_pairs) for i in range(num_keys)]
        key_instances = frame_instances[:num_keys]
        ref_instances = [frame_instances[i] for i in ref_image_idx]
        key_features = [features[f][:num_keys] for f in self.head_in_features]
        predictions = self.head(key_features)

        anchors = self.anchor_generator(key_features)
        positives, gt_labels = self._assign_targets(anchors, key_instances, [f.shape[-1] for f in key_features])
        pred_boxes = self._decode(anchors, predictions["box_deltas"], positives)
        gt_boxes = torch.cat([x.gt_boxes.tensor for x in key_instances])[self._global_gt(positives, key_instances)]

        cls_logits = torch.cat([x.permute(0, 2, 3, 1).flatten(1, 2) for x in predictions["cls_logits"]], dim=1)  # (N, R, C)
        loss_dict = self._detection_losses(cls_logits, predictions, anchors, positives, gt_labels, pred_boxes, gt_boxes)
        scores = cls_logits[positives.image, positives.anchor, gt_labels[positives.image, positives.anchor]].detach().sigmoid()
        loss_dict["loss_mask"] = self._mask_loss(images, predictions, key_instances, positives, scores, pred_boxes.detach(), gt_boxes)
        loss_dict["loss_track"] = self._track_loss(
            features, key_instances, ref_instances, ref_image_idx, positives, pred_boxes.detach()
        )
        return {name: loss * self.loss_weights[name] for name, loss in loss_dict.items()}

    def _assign_targets(self, anchors, key_instances, level_widths):
        """FCOS assignment (:func:`fcos_matched_indices`): positives and (N, R) labels."""
        matched = [fcos_matched_indices(anchors, gt.gt_boxes.tensor, self.center_sampling_radius) for gt in key_instances]
        gt_labels = torch.stack(
            [
                torch.where(m >= 0, gt.gt_classes[m.clamp(min=0)] if len(gt) else m, torch.full_like(m, self.num_classes))
                for m, gt in zip(matched, key_instances)
            ]
        )
        image, anchor = torch.nonzero(torch.stack(matched) >= 0, as_tuple=True)
        level_sizes = torch.tensor([len(a) for a in anchors], device=self.device)
        level_starts = torch.cumsum(level_sizes, 0) - level_sizes
        level = torch.bucketize(anchor, level_starts, right=True) - 1
        local = anchor - level_starts[level]
        widths = torch.tensor(level_widths, device=self.device)[level]
        gt = torch.stack(matched)[image, anchor]
        positives = Positives(image=image, anchor=anchor, level=level, ys=local // widths, xs=local % widths, gt=gt)
        storage = get_event_storage()
        storage.put_scalar("num_pos_anchors", len(anchor) / max(len(key_instances), 1))
        return positives, gt_labels

    @staticmethod
    def _global_gt(positives: Positives, instances: List[Instances]) -> Tensor:
        """Index of each positive's object among all images' objects concatenated, (P,)."""
        counts = torch.tensor([len(x) for x in instances], device=positives.gt.device)
        return (torch.cumsum(counts, 0) - counts)[positives.image] + positives.gt

    def _decode(self, anchors, box_deltas: List[Tensor], positives: Positives) -> Tensor:
        """Predicted boxes at the positives, (P, 4)."""
        deltas = torch.cat([d.permute(0, 2, 3, 1).flatten(1, 2) for d in box_deltas], dim=1)  # (N, R, 4)
        anchor_boxes = Boxes.cat(anchors).tensor
        return self.box2box_transform.apply_deltas(deltas[positives.image, positives.anchor], anchor_boxes[positives.anchor])

    def _detection_losses(self, cls_logits, predictions, anchors, positives, gt_labels, pred_boxes, gt_boxes):
        centerness = torch.cat([x.flatten(1) for x in predictions["centerness"]], dim=1)  # (N, R)
        anchor_boxes = Boxes.cat(anchors).tensor[positives.anchor]
        gt_distances = self.box2box_transform.get_deltas(anchor_boxes, gt_boxes)
        gt_centerness = losses.centerness_targets(gt_distances)
        loss_box, loss_centerness = losses.box_and_centerness_losses(
            pred_boxes, gt_boxes, centerness[positives.image, positives.anchor], gt_centerness
        )
        return {
            "loss_fcos_cls": losses.classification_loss(
                cls_logits, gt_labels, self.num_classes, self.focal_loss_alpha, self.focal_loss_gamma
            ),
            "loss_fcos_loc": loss_box,
            "loss_fcos_ctr": loss_centerness,
        }

    def _mask_loss(self, images, predictions, key_instances, positives, scores, pred_boxes, gt_boxes) -> Tensor:
        """Box-normalised mask BCE of the positives (every one, or a random subset of
        ``MASK.MAX_TRAIN_INSTANCES``), assembled on their predicted boxes; ``scores`` (P,) are
        their classification scores for their GT class."""
        basis_boxes = pred_boxes / self.basis_stride
        # Chosen before subsetting: the per-image rule averages over all of an image's positives.
        granularity = self.mask_head.box_granularity(basis_boxes, positives.image)
        selected = torch.arange(len(positives.image), device=self.device)
        if 0 < self.mask_max_train_instances < len(selected):
            selected = torch.randperm(len(selected), device=self.device)[: self.mask_max_train_instances]
        image, level, ys, xs = (getattr(positives, f)[selected] for f in ("image", "level", "ys", "xs"))
        num_images = len(key_instances)
        coefficients = self.mask_head.coefficients(predictions["aligned_features"], image, level, ys, xs)
        coarse_bases = self.mask_head.coarse_bases([predictions["box_features"][i] for i in self.basis_levels])
        pixels, logits = self.mask_head.assemble(coarse_bases, image, basis_boxes[selected], coefficients, granularity[selected])

        gt_masks = self._downsampled_gt_masks(key_instances, images.tensor.shape[-2:])
        global_gt = self._global_gt(positives, key_instances)[selected]
        targets = gt_masks[global_gt[pixels.instance], pixels.ys, pixels.xs]
        weights = losses.instance_weights(scores[selected], pred_boxes[selected], gt_boxes[selected])
        return losses.mask_loss(logits, targets, pixels.instance, image, weights, num_images, self.mask_weights_per_image)

    def _downsampled_gt_masks(self, instances: List[Instances], padded_size) -> Tensor:
        """All key objects' masks padded to the batch size and brought down to the basis
        resolution, (M, H / s, W / s) float: bilinear then > 0.5, binary (release), or each
        s x s block's average, in [0, 1] (``MASK.BINARY_TARGETS`` False)."""
        height, width = padded_size
        masks = [
            F.pad(x.gt_masks.tensor.float(), (0, width - x.image_size[1], 0, height - x.image_size[0]))
            for x in instances
        ]
        masks = torch.cat(masks)[:, None] if masks else torch.zeros(0, 1, height, width, device=self.device)
        if not self.mask_binary_targets:
            return F.avg_pool2d(masks, self.basis_stride)[:, 0]
        size = (height // self.basis_stride, width // self.basis_stride)
        return (F.interpolate(masks, size=size, mode="bilinear", align_corners=False)[:, 0] > 0.5).float()

    def _jittered_centres(self, boxes: Tensor) -> Tensor:
        """Centres of (M, 4) boxes after shifting centre and size by up to +-jitter of the size."""
        sizes = boxes[:, 2:] - boxes[:, :2]
        centres = (boxes[:, 2:] + boxes[:, :2]) / 2
        shift = (torch.rand_like(centres) * 2 - 1) * self.track_box_jitter * sizes
        # A size jitter moves the box symmetrically, so only the centre shift moves the centre.
        return centres + shift

    def _track_loss(self, features, key_instances, ref_instances, ref_image_idx, positives, pred_boxes) -> Tensor:
        """Matching loss of the key positives against the objects of their reference frames;
        ``ref_image_idx`` (list, one per key frame) is each key frame's reference in ``features``."""
        fused = self.track_head([features[f] for f in self.track_in_features])
        key_centres = (pred_boxes[:, :2] + pred_boxes[:, 2:]) / 2
        key_embeddings = self.track_head.embeddings_at(fused, positives.image, key_centres)

        ref_boxes = torch.cat([x.gt_boxes.tensor for x in ref_instances])
        # For each reference object: the key frame it is a reference of, and the image it is in.
        ref_key = torch.repeat_interleave(
            torch.arange(len(ref_instances), device=self.device),
            torch.tensor([len(x) for x in ref_instances], device=self.device),
        )
        ref_image = torch.tensor(ref_image_idx, device=self.device)[ref_key]
        ref_embeddings = self.track_head.embeddings_at(fused, ref_image, self._jittered_centres(ref_boxes))

        key_ids = torch.cat([x.gt_ids for x in key_instances])[self._global_gt(positives, key_instances)]
        ref_ids = torch.cat([x.gt_ids for x in ref_instances])
        same_key = positives.image[:, None] == ref_key[None, :]
        same_object = same_key & (key_ids[:, None] == ref_ids[None, :])
        # Column 0 ("new object") is the target exactly when the object is absent from the reference.
        targets = torch.cat([~same_object.any(dim=1, keepdim=True), same_object], dim=1).float().argmax(dim=1)
        loss, accuracy = losses.track_loss(
            key_embeddings, ref_embeddings, same_key, targets, positives.image, len(key_instances), self.track_loss_per_image
        )
        get_event_storage().put_scalar("track_match_accuracy", float(accuracy))
        return loss

    # ----------------------------------------------------------------- inference

    def detect_frame(self, image: Tensor, output_size) -> Instances:
        """Detect, segment and embed the objects of one frame.

        Args:
            image: (C, H, W) input frame (already resized by the test mapper).
            output_size: (height, width) of the original frame; boxes and masks are returned there.
        Returns:
            Instances at ``output_size`` with pred_boxes, scores, pred_classes, class_scores
            (D, C) every class's score, pred_masks (D, height, width) bool, and embeddings (D, E).
        """
        outputs = self.frame_step(image, output_size)
        with self.stage_timer("mask assembly"):
            return outputs.to_instances(output_size, self.mask_threshold)

    def frame_input(self, image: Tensor):
        """(C, h, w) frame -> ((1, C, H, W) normalised frame, zero-padded at the bottom and right
        to the backbone's size divisibility; its size (h, w): ints, or a (2,) int64 tensor when
        traced).

        As ``preprocess_image`` for one frame. Its own code because the export must run in
        OpenVINO: traced, detectron2's ``ImageList.from_tensors`` pads to the maximum over a
        one-element stack of sizes (a ReduceMax), which OpenVINO's CPU plugin evaluates wrong
        (padding to s + 31 instead of rounding s up), and one frame needs no maximum.
        """
        image = (image.to(self.device) - self.pixel_mean) / self.pixel_std
        # Ints in eager mode, 0-d tensors traced to the frame's shape when exported.
        height, width = image.shape[-2:]
        stride = max(self.backbone.size_divisibility, 1)
        # Non-negative operands: ONNX's integer division truncates where Python's floors.
        padding = [0, (width + stride - 1) // stride * stride - width, 0, (height + stride - 1) // stride * stride - height]
        padded = F.pad(image, padding, value=0.0).unsqueeze(0)
        input_size = torch.stack([height, width]) if torch.jit.is_tracing() else (height, width)
        return padded, input_size

    def frame_step(self, image: Tensor, output_size, traced: bool = False) -> FrameOutputs:
        """:meth:`detect_frame`'s computation up to the masks' paste, as plain tensors (see
        :class:`FrameOutputs`).

        Traceable for export (:mod:`sgnet.deploy`): with ``output_size`` a (2,) int64 tensor and
        ``traced`` (the masks of all detections in one pass, sizes as tensors,
        :meth:`SpatialGranularityMaskHead.mask_probabilities`), no value of a tensor decides a
        size or a branch, so the graph holds for any frame size and number of detections.
        """
        padded, input_size = self.frame_input(image)
        with self.stage_timer("backbone+FPN"):
            features = self.backbone(padded)
        head_features = [features[f] for f in self.head_in_features]
        with self.stage_timer("heads"):
            predictions = self.head(head_features)
        anchors = self.anchor_generator(head_features)

        def decode(level, locations):
            deltas = predictions["box_deltas"][level][0].flatten(1).t()[locations]
            return self.box2box_transform.apply_deltas(deltas, anchors[level].tensor[locations])

        with self.stage_timer("post-processing"):
            detections = select_detections(
                [x[0] for x in predictions["cls_logits"]],
                [x[0] for x in predictions["centerness"]],
                decode,
                pre_nms_topk=self.test_topk_candidates,
                score_thresh=self.test_score_thresh,
                nms_thresh=self.test_nms_thresh,
                max_detections=self.max_detections_per_image,
                image_size=input_size,
                class_agnostic=self.nms_class_agnostic,
            )
        image_idx = torch.zeros_like(detections.labels)
        mask_probabilities, mask_crops, mask_map_size = self._masks(predictions, detections, image_idx, input_size, traced)

        with self.stage_timer("heads"):
            fused = self.track_head([features[f] for f in self.track_in_features])
            centres = (detections.boxes[:, :2] + detections.boxes[:, 2:]) / 2
            embeddings = self.track_head.embeddings_at(fused, image_idx, centres)

        # (w, h, w, h) output / input scale.
        scale = torch.as_tensor(output_size, device=self.device) / torch.as_tensor(input_size, device=self.device)
        return FrameOutputs(
            boxes=detections.boxes * scale.flip(0).repeat(2).to(detections.boxes.dtype),
            scores=detections.scores,
            classes=detections.labels,
            class_scores=detections.class_scores,
            embeddings=embeddings,
            mask_probabilities=mask_probabilities,
            mask_regions=mask_crops.regions(),
            mask_map_size=mask_map_size,
        )

    def _masks(self, predictions, detections: Detections, image_idx, input_size, traced: bool):
        """Mask probabilities of one frame's D detections on their crops of the basis map
        (:meth:`SpatialGranularityMaskHead.mask_probabilities`; ``traced``: in one pass), the
        crops, and the (2,) int64 size of the part of the map that covers the input."""
        with self.stage_timer("heads"):
            coefficients = self.mask_head.coefficients(
                predictions["aligned_features"], image_idx, detections.level, detections.ys, detections.xs
            )
            coarse_bases = self.mask_head.coarse_bases([predictions["box_features"][i] for i in self.basis_levels])
        basis_boxes = detections.boxes / self.basis_stride
        # ceil(size / stride), for ints and (traced) tensors alike; non-negative operands, as
        # ONNX's integer division truncates where Python's floors.
        valid_size = [(size + self.basis_stride - 1) // self.basis_stride for size in input_size]
        with self.stage_timer("mask assembly"):
            probabilities, crops = self.mask_head.mask_probabilities(
                coarse_bases,
                basis_boxes,
                coefficients,
                self.mask_head.box_granularity(basis_boxes, image_idx),
                valid_size,
                chunk_size=None if traced else 8,
            )
        map_size = torch.stack(valid_size) if torch.jit.is_tracing() else torch.tensor(valid_size)
        return probabilities, crops, map_size
