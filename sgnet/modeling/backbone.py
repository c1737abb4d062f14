"""ResNet-FPN with P3-P7, P6/P7 computed from P5 (SG-Net / FCOS), from detectron2's parts."""
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone.fpn import FPN, LastLevelP6P7
from detectron2.modeling.backbone.resnet import build_resnet_backbone


@BACKBONE_REGISTRY.register()
def build_sgnet_resnet_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """FPN on ``cfg.MODEL.FPN.IN_FEATURES`` (res3-res5) with two extra levels.

    Unlike RetinaNet's P6 from C5, P6 is a stride-2 conv on **P5** and P7 a stride-2 conv on
    ReLU(P6), as in the release (mmdetection ``extra_convs_on_inputs=False``,
    ``relu_before_extra_convs=True``). Works for every ResNet depth detectron2 builds (18-152).
    """
    bottom_up = build_resnet_backbone(cfg, input_shape)
    out_channels = cfg.MODEL.FPN.OUT_CHANNELS
    return FPN(
        bottom_up=bottom_up,
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=out_channels,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelP6P7(out_channels, out_channels, in_feature="p5"),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
