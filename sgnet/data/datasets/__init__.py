"""Dataset loading and registration (YouTube-VIS format, COCO mapped onto video classes);
importing it registers the builtins."""

from . import builtin  # noqa: F401  (registration)
from .coco import is_image_dataset, load_coco_json_mapped, register_coco_mapped_instances
from .ytvis import (
    get_ytvis_dataset_dicts,
    load_ytvis_json,
    mask_to_uncompressed_rle,
    dataset_class_names,
    register_config_datasets,
    register_ytvis_instances,
    segmentation_to_mask,
    segmentation_to_rle,
    trainable_frame_indices,
)

__all__ = [
    "get_ytvis_dataset_dicts",
    "is_image_dataset",
    "load_coco_json_mapped",
    "load_ytvis_json",
    "mask_to_uncompressed_rle",
    "register_coco_mapped_instances",
    "dataset_class_names",
    "register_config_datasets",
    "register_ytvis_instances",
    "segmentation_to_mask",
    "segmentation_to_rle",
    "trainable_frame_indices",
]
