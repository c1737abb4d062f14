"""Mappers from YouTube-VIS video dicts (see :func:`sgnet.data.load_ytvis_json`) to model inputs:
a (key, reference) frame pair for training, every frame of a video for inference."""

import logging
from typing import Iterable, List, Tuple

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BitMasks, Boxes, BoxMode, Instances

from .datasets.ytvis import segmentation_to_mask, trainable_frame_indices
from .video import read_frame_image

__all__ = [
    "YTVISPairDatasetMapper",
    "YTVISVideoTestMapper",
    "frame_objects_to_instances",
    "image_to_tensor",
    "read_sized_image",
    "read_video_frame",
]

logger = logging.getLogger(__name__)


def read_sized_image(path: str, expected_size: tuple, image_format: str, where: str) -> np.ndarray:
    """The image file ``path`` as an (H, W, C) uint8 array, checked to be ``expected_size``
    (H, W), the size its annotation file gives. Errors name ``where`` and the path."""
    image = read_frame_image(path, image_format, where=where)
    if image.shape[:2] != tuple(expected_size):
        raise ValueError(
            f"{where} ({path}) is {image.shape[0]}x{image.shape[1]} but the annotation file "
            f"says {expected_size[0]}x{expected_size[1]} (height x width)"
        )
    return image


def read_video_frame(video_dict: dict, frame_index: int, image_format: str) -> np.ndarray:
    """Frame ``frame_index`` of a video dict as an (H, W, C) uint8 array, checked against the
    video's size from the annotation file."""
    return read_sized_image(
        video_dict["file_names"][frame_index],
        (video_dict["height"], video_dict["width"]),
        image_format,
        where=f"video {video_dict['video_id']} frame {frame_index}",
    )


def augment_frames(
    frames: Iterable[np.ndarray], augmentations: T.AugmentationList
) -> Tuple[List[np.ndarray], T.TransformList]:
    """Apply one random draw of ``augmentations`` to every frame (same scale, same flip).

    ``frames`` are (H, W, C) arrays of one size, consumed one at a time so that only the
    augmented frames are held. Returns the augmented frames and the transforms drawn.
    """
    frames = iter(frames)
    aug_input = T.AugInput(next(frames))
    transforms = augmentations(aug_input)
    return [aug_input.image] + [transforms.apply_image(frame) for frame in frames], transforms


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, C) array -> (C, H, W) tensor of the same dtype."""
    return torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))


def frame_objects_to_instances(
    objects: list, transforms: T.TransformList, original_size: tuple, image_size: tuple
) -> Instances:
    """
    The objects of one frame (one entry of a video dict's ``annotations``) as Instances.

    Args:
        objects: N object dicts of :func:`load_ytvis_json`.
        transforms: the augmentation applied to the frame, from ``original_size`` (H, W) to
            ``image_size`` (h, w).

    Returns:
        Instances of ``image_size`` with ``gt_boxes`` (Boxes, N x 4 XYXY, clipped),
        ``gt_classes`` (int64, N), ``gt_ids`` (int64 track ids, N), ``gt_crowd`` (bool, N; crowd
        objects are kept so the model can ignore their area, never trained as positives) and
        ``gt_masks`` (BitMasks, N x h x w).
    """
    height, width = original_size
    boxes = np.array(
        [BoxMode.convert(obj["bbox"], obj["bbox_mode"], BoxMode.XYXY_ABS) for obj in objects],
        dtype=np.float32,
    ).reshape(-1, 4)
    masks = [
        transforms.apply_segmentation(segmentation_to_mask(obj["segmentation"], height, width))
        for obj in objects
    ]
    instances = Instances(image_size)
    instances.gt_boxes = Boxes(torch.as_tensor(transforms.apply_box(boxes), dtype=torch.float32))
    instances.gt_boxes.clip(image_size)
    instances.gt_classes = torch.tensor([obj["category_id"] for obj in objects], dtype=torch.int64)
    instances.gt_ids = torch.tensor([obj["id"] for obj in objects], dtype=torch.int64)
    instances.gt_crowd = torch.tensor([bool(obj["iscrowd"]) for obj in objects], dtype=torch.bool)
    # Cast to bool in numpy: torch's uint8 -> bool cast (inside BitMasks) is ~40x slower on CPU.
    instances.gt_masks = BitMasks(
        torch.as_tensor(np.stack(masks).astype(bool))
        if masks
        else torch.zeros((0, *image_size), dtype=torch.bool)
    )
    return instances


class YTVISPairDatasetMapper:
    """
    Training mapper: one video dict -> one (key frame, reference frame) sample.

    The key frame is drawn uniformly among the frames holding a non-crowd object; the reference
    frame uniformly among the other such frames, within ``sampling_frame_range`` frames of the
    key (0: anywhere in the video, the release's behaviour), falling back to the key frame
    itself when there is none. Both frames get the same augmentation draw (resize scale, flip).
    Randomness comes from numpy's global generator, which detectron2's loader reseeds in every
    worker (a generator held by the mapper would be copied identically into each worker).

    Output::

        {"video_id", "height", "width" (original video size),
         "file_names": [key path, ref path],
         "image": [key (C, H, W) uint8 tensor, ref tensor],
         "instances": [key Instances, ref Instances]}   # see frame_objects_to_instances

    A video without any frame holding a non-crowd object raises ValueError: remove such videos
    beforehand with :func:`sgnet.data.get_ytvis_dataset_dicts` (returning None instead would
    make detectron2's ``MapDataset`` retry another video, which crashes on Python >= 3.11 in
    detectron2 0.6).
    """

    @configurable
    def __init__(
        self,
        is_train: bool = True,
        *,
        augmentations: List[T.Augmentation],
        image_format: str,
        sampling_frame_range: int = 0,
    ):
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.sampling_frame_range = sampling_frame_range
        mode = "training" if is_train else "inference"
        logger.info(f"[{type(self).__name__}] Augmentations used in {mode}: {augmentations}")

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        return {
            "is_train": is_train,
            "augmentations": utils.build_augmentation(cfg, is_train),
            "image_format": cfg.INPUT.FORMAT,
            "sampling_frame_range": cfg.INPUT.SAMPLING_FRAME_RANGE,
        }

    def sample_frame_pair(self, video_dict: dict) -> Tuple[int, int]:
        """(key frame index, reference frame index) for one video dict."""
        candidates = trainable_frame_indices(video_dict)
        if not candidates:
            raise ValueError(
                f"Video {video_dict['video_id']} ({video_dict['file_names'][0]} ...) has no "
                "annotated frame with a non-crowd object, so no training pair can be drawn from "
                "it. Build the training set with sgnet.data.get_ytvis_dataset_dicts, which "
                "removes such videos."
            )
        key = candidates[np.random.randint(len(candidates))]
        references = [
            t
            for t in candidates
            if t != key
            and (self.sampling_frame_range <= 0 or abs(t - key) <= self.sampling_frame_range)
        ]
        reference = references[np.random.randint(len(references))] if references else key
        return key, reference

    def __call__(self, video_dict: dict) -> dict:
        frame_indices = self.sample_frame_pair(video_dict)
        images, transforms = augment_frames(
            (read_video_frame(video_dict, t, self.image_format) for t in frame_indices),
            self.augmentations,
        )
        original_size = (video_dict["height"], video_dict["width"])
        image_size = images[0].shape[:2]
        return {
            "video_id": video_dict["video_id"],
            "height": video_dict["height"],
            "width": video_dict["width"],
            "file_names": [video_dict["file_names"][t] for t in frame_indices],
            "image": [image_to_tensor(image) for image in images],
            "instances": [
                frame_objects_to_instances(
                    video_dict["annotations"][t], transforms, original_size, image_size
                )
                for t in frame_indices
            ],
        }


class YTVISVideoTestMapper:
    """
    Inference mapper: one video dict -> all its frames, resized alike (``ResizeShortestEdge``
    with ``INPUT.MIN_SIZE_TEST`` / ``MAX_SIZE_TEST``). Use it as
    ``build_detection_test_loader(cfg, dataset_name, mapper=YTVISVideoTestMapper(cfg, False))``.

    Output::

        {"video_id", "file_names", "height", "width" (original size), "length",
         "image": [(C, H, W) uint8 tensor per frame, in frame order]}
    """

    @configurable
    def __init__(
        self, is_train: bool = False, *, augmentations: List[T.Augmentation], image_format: str
    ):
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format

    @classmethod
    def from_config(cls, cfg, is_train: bool = False):
        return {
            "is_train": is_train,
            "augmentations": utils.build_augmentation(cfg, is_train),
            "image_format": cfg.INPUT.FORMAT,
        }

    def __call__(self, video_dict: dict) -> dict:
        images, _ = augment_frames(
            (
                read_video_frame(video_dict, t, self.image_format)
                for t in range(len(video_dict["file_names"]))
            ),
            self.augmentations,
        )
        return {
            "video_id": video_dict["video_id"],
            "file_names": list(video_dict["file_names"]),
            "height": video_dict["height"],
            "width": video_dict["width"],
            "length": len(video_dict["file_names"]),
            "image": [image_to_tensor(image) for image in images],
        }
