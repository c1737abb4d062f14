"""Datasets (YouTube-VIS format), the training sampler, training/test mappers, video reading, the
synthetic dataset.

Importing it registers the builtin datasets (see :mod:`sgnet.data.datasets.builtin`).
"""

from .dataset_mapper import YTVISPairDatasetMapper, YTVISVideoTestMapper
from .datasets import (
    get_ytvis_dataset_dicts,
    load_ytvis_json,
    mask_to_uncompressed_rle,
    register_ytvis_instances,
    segmentation_to_mask,
)
from .datasets.builtin import SYNTHETIC_CLASSES
from .samplers import RepeatCountTrainingSampler, build_ytvis_train_sampler
from .video import VideoFrameReader, VideoReadError

__all__ = [
    "RepeatCountTrainingSampler",
    "SYNTHETIC_CLASSES",
    "VideoFrameReader",
    "VideoReadError",
    "YTVISPairDatasetMapper",
    "YTVISVideoTestMapper",
    "build_ytvis_train_sampler",
    "generate_synthetic_ytvis",
    "get_ytvis_dataset_dicts",
    "load_ytvis_json",
    "mask_to_uncompressed_rle",
    "register_ytvis_instances",
    "segmentation_to_mask",
    "write_synthetic_video",
]

_SYNTHETIC_EXPORTS = ("generate_synthetic_ytvis", "write_synthetic_video")


def __getattr__(name):
    # The generator is imported on first use: were `import sgnet` to import it,
    # `python -m sgnet.data.synthetic` would find it already imported and runpy would warn.
    if name in _SYNTHETIC_EXPORTS:
        from . import synthetic

        return getattr(synthetic, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
