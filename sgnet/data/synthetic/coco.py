"""A COCO-format image split made of synthetic scenes, in detectron2's COCO layout
(``annotations/instances_<split>.json``, ``<split>/<12-digit image id>.jpg``), read by the
``coco_*`` splits of :mod:`sgnet.data.datasets.builtin`."""

import json
import os
from typing import List

import cv2
import numpy as np
import pycocotools.mask as mask_util

from ...formats.rle import mask_to_uncompressed_rle
from .render import SYNTHETIC_CLASSES, write_jpeg
from .scenes import sample_scene, scene_rng

__all__ = ["SYNTHETIC_COCO_CATEGORIES", "generate_synthetic_coco"]

# The COCO categories the shapes (disc, square, triangle) are written as by default, with their
# official COCO 2017 ids: two that every coco_* split maps (person, car) and the computer mouse,
# which none maps although YouTube-VIS has a "mouse" class (the animal).
SYNTHETIC_COCO_CATEGORIES = (
    {"id": 1, "name": "person", "supercategory": "person"},
    {"id": 3, "name": "car", "supercategory": "vehicle"},
    {"id": 74, "name": "mouse", "supercategory": "electronic"},
)


def _mask_polygons(mask: np.ndarray) -> List[List[float]]:
    """An (H, W) bool mask as COCO polygons, ``[x0, y0, x1, y1, ...]`` per connected part: its
    outer contours through the border pixels' centres (holes are not kept, as in COCO)."""
    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    return [
        [round(float(v), 2) for v in (contour.reshape(-1, 2) + 0.5).ravel()]
        for contour in contours
        if len(contour) >= 3
    ]


def _coco_annotation(annotation_id, image_id, category_id, mask, crowd):
    """The COCO record of one object, or None when its polygons cover no pixel. Crowd objects
    are stored as uncompressed RLE, the others as polygons, as COCO stores them; ``area`` and
    ``bbox`` are pycocotools' of the stored segmentation, as in COCO."""
    height, width = mask.shape
    if crowd:
        segmentation = mask_to_uncompressed_rle(mask)
        rle = mask_util.frPyObjects(segmentation, height, width)
    else:
        segmentation = _mask_polygons(mask)
        if not segmentation:
            return None
        rle = mask_util.merge(mask_util.frPyObjects(segmentation, height, width))
    area = int(mask_util.area(rle))
    if area == 0:
        return None
    return {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": segmentation,
        "area": float(area),
        "bbox": [round(float(v), 2) for v in mask_util.toBbox(rle)],
        "iscrowd": int(crowd),
    }


def generate_synthetic_coco(
    coco_dir: str,
    *,
    split: str = "train2017",
    num_images: int = 32,
    height: int = 192,
    width: int = 320,
    seed: int = 0,
    categories=SYNTHETIC_COCO_CATEGORIES,
    crowd_fraction: float = 0.1,
) -> dict:
    """Write a COCO-format image split in detectron2's COCO layout: the first frame of synthetic
    scenes (as in the video dataset) as ``coco_dir/<split>/<12-digit image id>.jpg``, their
    objects in ``coco_dir/annotations/instances_<split>.json``.

    Each object's category is ``categories[k]`` for its shape ``SYNTHETIC_CLASSES[k]`` (COCO
    category dicts ``{"id", "name", "supercategory"}``, listed in the file as given); each is
    marked crowd with probability ``crowd_fraction``. Objects outside the image are not
    annotated, so some images have none. The output is a pure function of the arguments.

    Returns the absolute paths ``{"json_file", "image_root"}``.
    """
    if len(categories) != len(SYNTHETIC_CLASSES):
        raise ValueError(
            f"categories must name the {len(SYNTHETIC_CLASSES)} shapes {SYNTHETIC_CLASSES}, got "
            f"{len(categories)}"
        )
    coco_dir = os.path.abspath(coco_dir)
    json_file = os.path.join(coco_dir, "annotations", f"instances_{split}.json")
    image_root = os.path.join(coco_dir, split)
    os.makedirs(os.path.dirname(json_file), exist_ok=True)
    os.makedirs(image_root, exist_ok=True)
    images, annotations = [], []
    for index in range(num_images):
        rng = scene_rng(seed, "coco", index)
        scene = sample_scene(rng, 1, height, width)
        image, visible = scene.render(0)
        crowd = rng.uniform(size=len(scene.tracks)) < crowd_fraction
        image_id = index + 1
        file_name = f"{image_id:012d}.jpg"
        write_jpeg(os.path.join(image_root, file_name), image)
        images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
        for track, mask, is_crowd in zip(scene.tracks, visible, crowd):
            annotation = _coco_annotation(
                len(annotations) + 1, image_id, categories[track.category]["id"], mask, is_crowd
            )
            if annotation is not None:
                annotations.append(annotation)
    content = {
        "info": {"description": "SG-Net synthetic images, COCO format", "seed": seed},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [dict(c) for c in categories],
    }
    with open(json_file, "w") as f:
        json.dump(content, f, separators=(",", ":"))
    return {"json_file": json_file, "image_root": image_root}
