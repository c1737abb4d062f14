"""Tiny YouTube-VIS-format datasets written by tests, in the official format (uncompressed RLE,
``null`` for absent frames, frames as JPEG files under ``JPEGImages/<video>/``).

:func:`write_tiny_ytvis` writes three videos of different sizes and lengths:

* video 1 ``clip_a`` (48 x 64, 4 frames): track 101 "cat" (a rectangle moving right, every
  frame), track 102 "dog" (an ellipse, frames 1-2 only), track 103 "fish" marked crowd;
* video 2 ``clip_b`` (40 x 56, 3 frames): track 201 "fish", its mask stored as compressed RLE in
  frame 0, as a polygon in frame 1 and as uncompressed RLE in frame 2;
* video 3 ``clip_c`` (32 x 40, 5 frames): no object.

Category ids are 3, 7, 11 (not contiguous). Objects never overlap and are painted in a flat
colour of their own (``TinyYTVIS.colors``) over a grey background, so a test can tell where an
object is in an image.
"""

import contextlib
import copy
import json
import os
from dataclasses import dataclass, field

import cv2
import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BitMasks, Boxes

CATEGORIES = [
    {"id": 3, "name": "cat", "supercategory": "animal"},
    {"id": 7, "name": "dog", "supercategory": "animal"},
    {"id": 11, "name": "fish", "supercategory": "animal"},
]
BACKGROUND = (90, 90, 90)
COLOR_TOLERANCE = 40  # JPEG and resizing blur flat colours a little


@contextlib.contextmanager
def reregistered(names):
    """Unregisters the datasets ``names`` and their ``sgnet_`` aliases for the block (which
    registers them again, e.g. under another $DETECTRON2_DATASETS, or registers new ones) and
    afterwards restores their original registration, or removes them if they had none."""
    names = [n for name in names for n in (name, f"sgnet_{name}")]
    saved = {name: (DatasetCatalog[name], MetadataCatalog.get(name).as_dict()) for name in names if name in DatasetCatalog.list()}
    for name in saved:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    try:
        yield
    finally:
        for name in names:
            if name in DatasetCatalog.list():
                DatasetCatalog.remove(name)
            if name in MetadataCatalog.list():
                MetadataCatalog.remove(name)
        for name, (loader, metadata) in saved.items():
            DatasetCatalog.register(name, loader)
            MetadataCatalog.get(name).set(**{k: v for k, v in metadata.items() if k != "name"})


def mask_extent(mask: torch.Tensor):
    """Tight XYXY box (exclusive ends) of a non-empty (H, W) bool mask."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]


def assert_instances_match_image(image, instances, colors):
    """Each mask covers its object's colour (``colors``: id -> BGR) in the (C, H, W) image, and
    its box is the mask's extent."""
    assert isinstance(instances.gt_boxes, Boxes) and isinstance(instances.gt_masks, BitMasks)
    assert instances.gt_masks.tensor.shape[1:] == image.shape[1:]
    for box, mask, track_id in zip(
        instances.gt_boxes.tensor, instances.gt_masks.tensor, instances.gt_ids
    ):
        assert box.tolist() == mask_extent(mask)
        pixels = image[:, mask].float().mean(dim=1)  # (C,) mean BGR under the mask
        assert (pixels - torch.tensor(colors[track_id.item()])).abs().max() < COLOR_TOLERANCE


def encode_uncompressed_rle(mask: np.ndarray) -> dict:
    """Reference encoder, written independently of sgnet's: column-major runs, zeros first."""
    counts, current, run = [], 0, 0
    for value in mask.flatten(order="F").tolist():
        if value != current:
            counts.append(run)
            current, run = value, 0
        run += 1
    counts.append(run)
    return {"counts": counts, "size": list(mask.shape)}


def rectangle_mask(height, width, x0, y0, x1, y1) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def ellipse_mask(height, width, x0, y0, x1, y1) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    centre = ((x0 + x1 - 1) // 2, (y0 + y1 - 1) // 2)
    cv2.ellipse(mask, centre, ((x1 - x0 - 1) // 2, (y1 - y0 - 1) // 2), 0, 0, 360, 1, -1)
    return mask.astype(bool)


def mask_box(mask: np.ndarray) -> list:
    ys, xs = np.nonzero(mask)
    return [
        float(xs.min()),
        float(ys.min()),
        float(xs.max() - xs.min() + 1),
        float(ys.max() - ys.min() + 1),
    ]


@dataclass
class TinyYTVIS:
    json_file: str
    image_root: str
    content: dict  # the json as written
    masks: dict = field(default_factory=dict)  # (video id, track id, frame) -> (H, W) bool
    colors: dict = field(default_factory=dict)  # track id -> BGR colour in the frames

    def write_variant(self, content: dict, name: str = "variant.json") -> str:
        """Write a modified annotation file next to the original; returns its path."""
        path = os.path.join(os.path.dirname(self.json_file), name)
        with open(path, "w") as f:
            json.dump(content, f)
        return path

    def copy_content(self) -> dict:
        return copy.deepcopy(self.content)


# video id: (folder, height, width, length); track id: (video, category, colour, crowd, shape,
# box (x0, y0, x1, y1) per frame or None)
_VIDEOS = {1: ("clip_a", 48, 64, 4), 2: ("clip_b", 40, 56, 3), 3: ("clip_c", 32, 40, 5)}
_TRACKS = {
    101: (1, 3, (0, 0, 230), 0, "rect", [(4 + 4 * t, 6, 20 + 4 * t, 22) for t in range(4)]),
    102: (1, 7, (0, 220, 0), 0, "ellipse", [None, (36, 24, 56, 44), (38, 26, 58, 44), None]),
    103: (1, 11, (230, 0, 0), 1, "rect", [(44, 2, 62, 14)] * 4),
    201: (2, 11, (0, 200, 230), 0, "rect", [(10, 10, 30, 26), (12, 10, 32, 26), (14, 12, 34, 28)]),
}


def _segmentation(mask: np.ndarray, track_id: int, frame: int, box):
    """Video 2 exercises the three encodings; everything else is official uncompressed RLE."""
    if track_id == 201 and frame == 0:
        rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"counts": rle["counts"].decode("ascii"), "size": list(rle["size"])}
    if track_id == 201 and frame == 1:
        x0, y0, x1, y1 = box
        return [[x0, y0, x1, y0, x1, y1, x0, y1]]
    return encode_uncompressed_rle(mask)


def write_tiny_ytvis(root: str, *, annotated: bool = True) -> TinyYTVIS:
    image_root = os.path.join(root, "JPEGImages")
    dataset = TinyYTVIS(os.path.join(root, "tiny.json"), image_root, {})
    videos, annotations = [], []
    frames = {}
    for vid, (folder, height, width, length) in _VIDEOS.items():
        videos.append(
            {
                "id": vid,
                "width": width,
                "height": height,
                "length": length,
                "file_names": [f"{folder}/{5 * t:05d}.jpg" for t in range(length)],
            }
        )
        frames[vid] = [np.full((height, width, 3), BACKGROUND, np.uint8) for _ in range(length)]
    for track_id, (vid, category, color, crowd, shape, boxes) in _TRACKS.items():
        _, height, width, length = _VIDEOS[vid]
        dataset.colors[track_id] = color
        segmentations, bboxes, areas = [], [], []
        for t, box in enumerate(boxes):
            if box is None:
                segmentations.append(None), bboxes.append(None), areas.append(None)
                continue
            draw = rectangle_mask if shape == "rect" else ellipse_mask
            mask = draw(height, width, *box)
            if track_id == 201 and t == 1:  # polygon: the mask is what pycocotools rasterises
                polygon = _segmentation(mask, track_id, t, box)
                mask = mask_util.decode(
                    mask_util.merge(mask_util.frPyObjects(polygon, height, width))
                ).astype(bool)
            dataset.masks[(vid, track_id, t)] = mask
            frames[vid][t][mask] = color
            segmentations.append(_segmentation(mask, track_id, t, box))
            bboxes.append(mask_box(mask))
            areas.append(int(mask.sum()))
        annotations.append(
            {
                "id": track_id,
                "video_id": vid,
                "category_id": category,
                "iscrowd": crowd,
                "width": width,
                "height": height,
                "length": 1,
                "segmentations": segmentations,
                "bboxes": bboxes,
                "areas": areas,
            }
        )
    for video in videos:
        for name, image in zip(video["file_names"], frames[video["id"]]):
            path = os.path.join(image_root, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            cv2.imwrite(path, image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    dataset.content = {
        "info": {"description": "tiny test dataset"},
        "licenses": [],
        "videos": videos,
        "annotations": annotations if annotated else [],
        "categories": CATEGORIES,
    }
    with open(dataset.json_file, "w") as f:
        json.dump(dataset.content, f)
    return dataset
