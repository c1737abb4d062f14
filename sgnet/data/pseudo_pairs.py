"""Training pairs from still images: one image, seen through two slightly different cameras,
stands in for a (key frame, reference frame) pair of a video."""

import logging
from typing import List, Tuple

import numpy as np
from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import Instances

from .dataset_mapper import frame_objects_to_instances, image_to_tensor, read_sized_image

__all__ = ["COCOPseudoPairMapper", "visible_instances"]

logger = logging.getLogger(__name__)


def visible_instances(instances: Instances) -> Instances:
    """The instances whose mask keeps a pixel, with boxes recomputed as their masks' extents (a
    crop can cut an object so that its transformed box, clipped, is wider than what is left)."""
    visible = instances[instances.gt_masks.tensor.flatten(1).any(dim=1)]
    visible.gt_boxes = visible.gt_masks.get_bounding_boxes()
    return visible


class COCOPseudoPairMapper:
    """
    Training mapper: one image dict (detectron2's standard format with annotation ``id`` s, e.g. a
    record of ``coco_ytvis_2019_train``) -> one pseudo clip pair, in
    :class:`YTVISPairDatasetMapper`'s output format, so that it goes through the same batching,
    losses and tracking loss as a video pair.

    The image first gets one draw of ``augmentations`` (resize, flip), shared by both frames like
    a video pair's. Each frame then shows its own view of it, the pseudo motion: a crop of
    ``1 / zoom`` of its height and width, ``zoom`` uniform in ``scale_range`` (>= 1, so the crop
    stays inside the image and no frame gets a padded border), whose centre is moved from the
    image's centre by up to ``max_translation`` of the image's size along each axis (uniformly,
    within what keeps the crop inside), resized back to the image's size. Both frames therefore
    have the same size. An object keeps its annotation ``id`` as its identity in both frames;
    one that the crop leaves without a pixel is absent from that frame only. Boxes are the
    extents of the cropped masks.

    Output::

        {"video_id": the image id, "height", "width" (original image size),
         "file_names": [path, path],
         "image": [key (C, H, W) uint8 tensor, ref tensor],
         "instances": [key Instances, ref Instances]}   # see frame_objects_to_instances

    Randomness comes from numpy's global generator, which detectron2's loader reseeds in every
    worker (as :class:`YTVISPairDatasetMapper`).
    """

    @configurable
    def __init__(
        self,
        is_train: bool = True,
        *,
        augmentations: List[T.Augmentation],
        image_format: str,
        scale_range: Tuple[float, float] = (1.0, 1.3),
        max_translation: float = 0.1,
    ):
        low, high = scale_range
        if not 1.0 <= low <= high:
            raise ValueError(f"scale_range must be 1 <= low <= high, got {tuple(scale_range)}")
        if not 0.0 <= max_translation <= 0.5:
            raise ValueError(f"max_translation must be in [0, 0.5], got {max_translation}")
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.scale_range = (float(low), float(high))
        self.max_translation = float(max_translation)
        logger.info(
            f"[{type(self).__name__}] Augmentations shared by both frames: {augmentations}; "
            f"per-frame zoom {self.scale_range}, translation up to {self.max_translation}"
        )

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        return {
            "is_train": is_train,
            "augmentations": utils.build_augmentation(cfg, is_train),
            "image_format": cfg.INPUT.FORMAT,
            "scale_range": tuple(cfg.INPUT.PSEUDO_PAIR.SCALE),
            "max_translation": cfg.INPUT.PSEUDO_PAIR.MAX_TRANSLATION,
        }

    def _crop_start(self, size: int, crop_size: int) -> int:
        """First pixel of a crop of ``crop_size`` along an axis of ``size`` pixels."""
        slack = size - crop_size
        reach = min(self.max_translation * size, slack / 2)
        start = round(slack / 2 + np.random.uniform(-reach, reach))
        return int(min(max(start, 0), slack))

    def draw_view(self, height: int, width: int) -> T.TransformList:
        """One frame's view of an (height, width) image: crop, then resize back to its size."""
        zoom = np.random.uniform(*self.scale_range)
        crop_height = max(1, round(height / zoom))
        crop_width = max(1, round(width / zoom))
        x0 = self._crop_start(width, crop_width)
        y0 = self._crop_start(height, crop_height)
        return T.TransformList(
            [
                T.CropTransform(x0, y0, crop_width, crop_height),
                T.ResizeTransform(crop_height, crop_width, height, width),
            ]
        )

    def __call__(self, image_dict: dict) -> dict:
        original_size = (image_dict["height"], image_dict["width"])
        image = read_sized_image(
            image_dict["file_name"],
            original_size,
            self.image_format,
            where=f"image {image_dict['image_id']}",
        )
        aug_input = T.AugInput(image)
        shared = self.augmentations(aug_input)
        image_size = aug_input.image.shape[:2]
        images, instances = [], []
        for _ in range(2):
            view = self.draw_view(*image_size)
            images.append(view.apply_image(aug_input.image))
            instances.append(
                visible_instances(
                    frame_objects_to_instances(
                        image_dict["annotations"], shared + view, original_size, image_size
                    )
                )
            )
        return {
            "video_id": image_dict["image_id"],
            "height": image_dict["height"],
            "width": image_dict["width"],
            "file_names": [image_dict["file_name"]] * 2,
            "image": [image_to_tensor(image) for image in images],
            "instances": instances,
        }
