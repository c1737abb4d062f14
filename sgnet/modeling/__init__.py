"""SG-Net model: meta-architecture, heads, losses, post-processing."""
from .backbone import build_sgnet_resnet_fpn_backbone
from .detection_head import SGNetDetectionHead
from .mask_head import SpatialGranularityMaskHead
from .meta_arch import SGNet
from .track_head import CenterTrackHead

__all__ = [
    "SGNet",
    "SGNetDetectionHead",
    "SpatialGranularityMaskHead",
    "CenterTrackHead",
    "build_sgnet_resnet_fpn_backbone",
]
