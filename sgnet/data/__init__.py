"""Datasets (YouTube-VIS format; COCO mapped onto video classes), the training sampler and loader,
training/test mappers (video pairs, pseudo pairs from images), video reading and writing (drawn
tracks, H.264 or PNG output), the synthetic datasets.

Importing it registers the builtin datasets (see :mod:`sgnet.data.datasets.builtin`).
"""

from .build import build_joint_train_loader, build_sgnet_train_loader
from .dataset_mapper import YTVISPairDatasetMapper, YTVISVideoTestMapper
from .datasets import (
    get_ytvis_dataset_dicts,
    is_image_dataset,
    load_coco_json_mapped,
    load_ytvis_json,
    mask_to_uncompressed_rle,
    register_coco_mapped_instances,
    dataset_class_names,
    register_config_datasets,
    register_ytvis_instances,
    segmentation_to_mask,
)
from .joint import JointPairMapper
from .live import CameraReader, FrameFeed, StreamReader, is_stream
from .pseudo_pairs import COCOPseudoPairMapper
from .samplers import (
    MixedDatasetTrainingSampler,
    RepeatCountTrainingSampler,
    build_ytvis_train_sampler,
)
from .synthetic import (
    SYNTHETIC_CLASSES,
    generate_synthetic_coco,
    generate_synthetic_ytvis,
    write_synthetic_video,
)
from .video import VideoFrameReader, VideoReadError
from .video_writer import (
    STRIP_SUFFIXES,
    StripFrames,
    VIDEO_SUFFIXES,
    FrameSink,
    draw_tracks,
    draw_tracks_and_crowds,
    hatch_region,
    output_kind,
    track_color,
    write_strip,
    write_video_and_strip,
)

__all__ = [
    "COCOPseudoPairMapper",
    "CameraReader",
    "FrameFeed",
    "FrameSink",
    "JointPairMapper",
    "MixedDatasetTrainingSampler",
    "RepeatCountTrainingSampler",
    "STRIP_SUFFIXES",
    "StreamReader",
    "StripFrames",
    "SYNTHETIC_CLASSES",
    "VIDEO_SUFFIXES",
    "VideoFrameReader",
    "VideoReadError",
    "YTVISPairDatasetMapper",
    "YTVISVideoTestMapper",
    "build_joint_train_loader",
    "build_sgnet_train_loader",
    "build_ytvis_train_sampler",
    "generate_synthetic_coco",
    "generate_synthetic_ytvis",
    "get_ytvis_dataset_dicts",
    "is_image_dataset",
    "is_stream",
    "load_coco_json_mapped",
    "load_ytvis_json",
    "mask_to_uncompressed_rle",
    "register_coco_mapped_instances",
    "dataset_class_names",
    "draw_tracks",
    "draw_tracks_and_crowds",
    "hatch_region",
    "output_kind",
    "register_config_datasets",
    "register_ytvis_instances",
    "segmentation_to_mask",
    "track_color",
    "write_strip",
    "write_video_and_strip",
    "write_synthetic_video",
]
