"""ResNet-FPN with P3-P7, P6/P7 computed from P5 (SG-Net / FCOS), from detectron2's parts."""
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone.fpn import FPN, LastLevelP6P7
from detectron2.modeling.backbone.resnet import BasicBlock, BasicStem, ResNet, build_resnet_backbone

# Blocks per stage (res2-res5) of the ResNets built from BasicBlocks.
_BASIC_BLOCKS_PER_STAGE = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3]}


def build_resnet(cfg, input_shape: ShapeSpec) -> ResNet:
    """detectron2's ResNet, except that ResNet-18/34 may have another width than 64 channels at
    res2 (``MODEL.RESNETS.RES2_OUT_CHANNELS``, doubled at each stage), which detectron2's builder
    refuses: the toy config trains a half-width ResNet-18 from scratch on CPU."""
    resnets = cfg.MODEL.RESNETS
    if resnets.DEPTH not in _BASIC_BLOCKS_PER_STAGE or resnets.RES2_OUT_CHANNELS == 64:
        return build_resnet_backbone(cfg, input_shape)
    stem = BasicStem(input_shape.channels, resnets.STEM_OUT_CHANNELS, norm=resnets.NORM)
    stages, in_channels, out_channels = [], resnets.STEM_OUT_CHANNELS, resnets.RES2_OUT_CHANNELS
    for index, num_blocks in enumerate(_BASIC_BLOCKS_PER_STAGE[resnets.DEPTH]):
        first_stride = 1 if index == 0 else 2
        stages.append(
            ResNet.make_stage(
                BasicBlock,
                num_blocks,
                in_channels=in_channels,
                out_channels=out_channels,
                stride_per_block=[first_stride] + [1] * (num_blocks - 1),
                norm=resnets.NORM,
            )
        )
        in_channels, out_channels = out_channels, out_channels * 2
    return ResNet(stem, stages, out_features=resnets.OUT_FEATURES, freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT)


@BACKBONE_REGISTRY.register()
def build_sgnet_resnet_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """FPN on ``cfg.MODEL.FPN.IN_FEATURES`` (res3-res5) with two extra levels.

    Unlike RetinaNet's P6 from C5, P6 is a stride-2 conv on **P5** and P7 a stride-2 conv on
    ReLU(P6), as in the release (mmdetection ``extra_convs_on_inputs=False``,
    ``relu_before_extra_convs=True``). Works for every ResNet depth detectron2 builds (18-152),
    and for ResNet-18/34 of any width (:func:`build_resnet`).
    """
    bottom_up = build_resnet(cfg, input_shape)
    out_channels = cfg.MODEL.FPN.OUT_CHANNELS
    return FPN(
        bottom_up=bottom_up,
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=out_channels,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelP6P7(out_channels, out_channels, in_feature="p5"),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
