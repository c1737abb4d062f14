"""FCOS detection head with deformable feature alignment (SG-Net section 3)."""
from typing import Dict, List

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from torch import Tensor, nn

from .layers import FeatureAlign, Scale, build_conv_tower, prior_bias


class SGNetDetectionHead(nn.Module):
    """Towers shared across FPN levels, producing per level:

    - ``cls_logits`` (N, C, H, W): from the *aligned* classification features;
    - ``box_deltas`` (N, 4, H, W): (l, t, r, b) distances in units of the level's stride
      (detectron2's ``Box2BoxTransformLinear(normalize_by_size=True)`` multiplies by the stride);
    - ``centerness`` (N, 1, H, W): from the regression tower, as in the release;
    - ``box_features`` (N, F, H, W): regression-tower output (input of the mask basis branch);
    - ``aligned_features`` (N, F, H, W): aligned classification features (input of the mask
      coefficients).

    The three predictions are float32 under autocast too (they leave the network here: boxes are
    decoded and losses computed from them); the two feature maps stay in the autocast dtype.

    Differences from detectron2's ``FCOSHead``: separate tower depths (cls 2, box 3, release),
    a learnable scale per level, centerness on the regression tower, and feature alignment.
    """

    @configurable
    def __init__(
        self,
        *,
        input_shape: List[ShapeSpec],
        num_classes: int,
        num_cls_convs: int,
        num_box_convs: int,
        norm: str,
        prior_prob: float,
        feature_align: bool,
        deform_groups: int,
        box_reg_activation: str,
    ):
        super().__init__()
        channels = input_shape[0].channels
        assert all(s.channels == channels for s in input_shape), "FPN levels must share a width"
        if box_reg_activation not in ("relu", "exp"):
            raise ValueError(f"MODEL.SGNET.BOX_REG_ACTIVATION must be relu or exp, got {box_reg_activation!r}")
        self.box_reg_activation = box_reg_activation
        self.cls_tower = build_conv_tower(channels, num_cls_convs, norm)
        self.box_tower = build_conv_tower(channels, num_box_convs, norm)
        self.box_pred = nn.Conv2d(channels, 4, kernel_size=3, padding=1)
        self.centerness = nn.Conv2d(channels, 1, kernel_size=3, padding=1)
        self.cls_score = nn.Conv2d(channels, num_classes, kernel_size=3, padding=1)
        self.scales = nn.ModuleList(Scale() for _ in input_shape)
        self.align = FeatureAlign(channels, deform_groups, norm) if feature_align else None
        for layer in (self.box_pred, self.centerness, self.cls_score):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)
        nn.init.constant_(self.cls_score.bias, prior_bias(prior_prob))

    @classmethod
    def from_config(cls, cfg, input_shape: List[ShapeSpec]):
        sg = cfg.MODEL.SGNET
        return {
            "input_shape": input_shape,
            "num_classes": sg.NUM_CLASSES,
            "num_cls_convs": sg.NUM_CLS_CONVS,
            "num_box_convs": sg.NUM_BOX_CONVS,
            "norm": sg.HEAD_NORM,
            "prior_prob": sg.PRIOR_PROB,
            "feature_align": sg.FEATURE_ALIGN,
            "deform_groups": sg.ALIGN_DEFORM_GROUPS,
            "box_reg_activation": sg.BOX_REG_ACTIVATION,
        }

    def forward(self, features: List[Tensor]) -> Dict[str, List[Tensor]]:
        outputs = {k: [] for k in ("cls_logits", "box_deltas", "centerness", "box_features", "aligned_features")}
        for feature, scale in zip(features, self.scales):
            box_features = self.box_tower(feature)
            raw_deltas = scale(self.box_pred(box_features))
            # Distances are non-negative; relu keeps the release's linear output where it is valid.
            box_deltas = torch.relu(raw_deltas) if self.box_reg_activation == "relu" else raw_deltas.exp()
            cls_features = self.cls_tower(feature)
            if self.align is not None:
                cls_features = self.align(cls_features, box_deltas)
            outputs["cls_logits"].append(self.cls_score(cls_features).float())
            outputs["box_deltas"].append(box_deltas.float())
            outputs["centerness"].append(self.centerness(box_features).float())
            outputs["box_features"].append(box_features)
            outputs["aligned_features"].append(cls_features)
        return outputs
