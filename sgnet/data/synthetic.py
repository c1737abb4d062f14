"""A small synthetic video instance segmentation dataset, in exactly the YouTube-VIS format.

Each video shows 1-4 textured shapes over a textured background. The class is the shape (disc,
square, triangle); colour and texture vary within a class and differ between the objects of a
video, so that identities can be told apart. Objects move linearly (reflected far outside the
frame, so long videos stay populated), scale and rotate; some cross paths with an earlier object
and pass in front of or behind it, some move side by side with an object of the same class, some
enter or leave through the border. Masks are the visible parts (a fixed depth order per video),
``null`` where an object is hidden or outside the frame.

Usage::

    python -m sgnet.data.synthetic OUT_DIR [--train-videos 400] [--val-videos 48] [--seed 0]

writes ``OUT_DIR/train.json``, ``OUT_DIR/train/JPEGImages/<video>/00000.jpg ...``,
``OUT_DIR/valid.json`` and ``OUT_DIR/valid/JPEGImages/...``. Unlike the public benchmarks'
validation files, ``valid.json`` has annotations, so that evaluation can run locally.
The output is a pure function of the arguments (same seed: byte-identical json and frames).

It can also write a COCO-format image split (:func:`generate_synthetic_coco`): the first frame of
such scenes, objects as polygons (crowds as RLE) under COCO category names, one of which no
``coco_*`` split maps::

    python -m sgnet.data.synthetic $DETECTRON2_DATASETS/coco --coco-images 400

writes ``annotations/instances_train2017.json`` and ``train2017/000000000001.jpg ...`` there,
detectron2's COCO layout, read by the ``coco_ytvis_2019_train`` / ``coco_ytvis_2021_train`` /
``coco_ovis_train`` splits.
"""

import argparse
import colorsys
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import List, Tuple

import cv2
import numpy as np
import pycocotools.mask as mask_util

from .datasets.builtin import SYNTHETIC_CLASSES, toy_dataset_paths
from ..formats.rle import mask_to_uncompressed_rle

__all__ = [
    "SYNTHETIC_CLASSES",
    "SYNTHETIC_COCO_CATEGORIES",
    "generate_synthetic_coco",
    "generate_synthetic_ytvis",
    "write_synthetic_video",
    "ensure_toy_dataset",
    "TOY_DATASET_VERSION",
]

logger = logging.getLogger(__name__)

_TEXTURES = ("solid", "stripes", "checker", "rings")
# Polygon shapes: (number of vertices, circumradius / extent); a disc's diameter is its extent.
_POLYGONS = {"square": (4, 0.8 / np.sqrt(2)), "triangle": (3, 0.58)}
_SPLIT_SEED_OFFSETS = {"train": 0, "valid": 1, "video": 2, "coco": 3}
# Scene sizes are given for a 192 x 320 frame and scaled with the frame.
_REFERENCE_SIZE = (192, 320)
_MIN_EXTENT, _MAX_EXTENT = 24.0, 110.0
_MAX_SCALE_AMPLITUDE = 0.25
_JPEG_QUALITY = 90
# YouTube-VIS names frames after their index in the source video, which they sample every 5th.
_FRAME_NAME_STRIDE = 5
# The default dataset's version, written next to its splits. Bump it whenever the generator's
# defaults or output change, so that a dataset of an older version is not reused unnoticed.
TOY_DATASET_VERSION = "2"  # 2: 400 train / 48 val videos (1: 60 / 16)
_VERSION_FILE = "sgnet_toy_version.txt"


@dataclass(frozen=True)
class _Track:
    """One object: its appearance and its motion, as functions of the frame index t."""

    category: int  # index into SYNTHETIC_CLASSES
    color: Tuple[float, float, float]  # BGR
    secondary_color: Tuple[float, float, float]
    texture: str
    texture_period: float
    start: Tuple[float, float]  # centre (x, y) at t = 0, before reflection
    velocity: Tuple[float, float]  # px / frame
    extent: float  # base size in px (disc diameter, about the side of squares and triangles)
    scale_amplitude: float
    scale_frequency: float  # rad / frame
    scale_phase: float
    angle: float  # rad at t = 0
    angular_velocity: float  # rad / frame

    def unreflected_centre(self, t: float) -> np.ndarray:
        return np.asarray(self.start) + t * np.asarray(self.velocity)

    def size_at(self, t: int) -> float:
        return self.extent * (
            1 + self.scale_amplitude * np.sin(self.scale_frequency * t + self.scale_phase)
        )


@dataclass(frozen=True)
class _Scene:
    height: int
    width: int
    background: np.ndarray  # (H, W, 3) float32 BGR
    tracks: List[_Track]  # in depth order, farthest first
    margin: float  # centres are reflected inside the frame grown by this margin
    sensor_noise: np.ndarray  # (K, H, W, 3) float32, frame t adds sensor_noise[t % K]

    def centre_at(self, track: _Track, t: int) -> np.ndarray:
        lows = np.array([-self.margin, -self.margin])
        spans = np.array([self.width, self.height]) + 2 * self.margin
        # Reflection (a triangle wave) keeps every object within reach in arbitrarily long videos.
        phase = np.mod(track.unreflected_centre(t) - lows, 2 * spans)
        return lows + spans - np.abs(phase - spans)

    def render(self, t: int) -> Tuple[np.ndarray, List[np.ndarray]]:
        """Frame t: (H, W, 3) uint8 BGR image and, per track, its (H, W) bool visible mask."""
        image = self.background.copy()
        shape_masks = [self._shape_mask(track, t) for track in self.tracks]
        for track, mask in zip(self.tracks, shape_masks):
            self._paint(image, track, t, mask)
        visible, occluders = [None] * len(self.tracks), np.zeros((self.height, self.width), bool)
        for i in reversed(range(len(self.tracks))):  # nearest first
            visible[i] = shape_masks[i] & ~occluders
            occluders |= shape_masks[i]
        image += self.sensor_noise[t % len(self.sensor_noise)]
        return np.clip(image, 0, 255).astype(np.uint8), visible

    def _shape_mask(self, track: _Track, t: int) -> np.ndarray:
        """(H, W) bool mask of the whole shape (before occlusion) at frame t."""
        mask = np.zeros((self.height, self.width), np.uint8)
        centre, size = self.centre_at(track, t), track.size_at(t)
        subpixel = 16  # cv2 rasterises coordinates given in 1/16 px (shift=4)
        shape = SYNTHETIC_CLASSES[track.category]
        if shape == "disc":
            centre_px = tuple(int(v) for v in np.round(centre * subpixel))
            radius = int(round(size / 2 * subpixel))
            cv2.circle(mask, centre_px, radius, 1, thickness=-1, lineType=cv2.LINE_8, shift=4)
        else:
            num_vertices, circumradius = _POLYGONS[shape]
            angles = track.angle + t * track.angular_velocity
            angles = angles + 2 * np.pi * np.arange(num_vertices) / num_vertices
            vertices = centre + circumradius * size * np.stack([np.cos(angles), np.sin(angles)], 1)
            polygon = np.round(vertices * subpixel).astype(np.int32)
            cv2.fillPoly(mask, [polygon], 1, lineType=cv2.LINE_8, shift=4)
        return mask.astype(bool)

    def _paint(self, image: np.ndarray, track: _Track, t: int, mask: np.ndarray) -> None:
        ys, xs = np.nonzero(mask)
        cx, cy = self.centre_at(track, t)
        # Texture coordinates move and rotate with the object.
        angle = track.angle + t * track.angular_velocity
        u = (xs - cx) * np.cos(angle) + (ys - cy) * np.sin(angle)
        v = -(xs - cx) * np.sin(angle) + (ys - cy) * np.cos(angle)
        period = track.texture_period
        if track.texture == "stripes":
            secondary = np.floor(u / period) % 2 == 1
        elif track.texture == "checker":
            secondary = (np.floor(u / period) + np.floor(v / period)) % 2 == 1
        elif track.texture == "rings":
            secondary = np.floor(np.hypot(u, v) / period) % 2 == 1
        else:
            secondary = np.zeros(len(xs), bool)
        image[ys, xs] = np.where(secondary[:, None], track.secondary_color, track.color)


# ---------------------------------------------------------------------------------------------
# Scene sampling
# ---------------------------------------------------------------------------------------------
def _hsv_to_bgr(hue: float, saturation: float, value: float) -> Tuple[float, float, float]:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return (255 * b, 255 * g, 255 * r)


def _sample_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Low-saturation gradient plus blotchy low-frequency noise, (H, W, 3) float32 BGR."""
    colors = np.array(
        [_hsv_to_bgr(rng.uniform(), rng.uniform(0, 0.25), rng.uniform(0.3, 0.75)) for _ in range(2)]
    )
    direction = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = xs * np.cos(direction) + ys * np.sin(direction)
    ramp = (ramp - ramp.min()) / max(ramp.max() - ramp.min(), 1e-6)
    gradient = colors[0] + ramp[..., None] * (colors[1] - colors[0])
    coarse = rng.normal(0, 14, (height // 16 + 2, width // 16 + 2, 3)).astype(np.float32)
    blotches = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return (gradient + blotches).astype(np.float32)


def _sample_appearances(rng: np.random.Generator, count: int, scale: float) -> list:
    """Distinct, saturated colours (evenly spread hues) and a texture per object."""
    hues = (rng.uniform() + np.arange(count) / count + rng.uniform(-0.04, 0.04, count)) % 1.0
    appearances = []
    for hue in rng.permutation(hues):
        color = _hsv_to_bgr(hue, rng.uniform(0.6, 1.0), rng.uniform(0.65, 1.0))
        darkening = rng.uniform(0.4, 0.65)
        appearances.append(
            {
                "color": color,
                "secondary_color": tuple(c * darkening for c in color),
                "texture": _TEXTURES[rng.integers(len(_TEXTURES))],
                "texture_period": rng.uniform(4, 9) * scale,
            }
        )
    return appearances


def _unit(angle: float) -> np.ndarray:
    return np.array([np.cos(angle), np.sin(angle)])


def _sample_motion(rng, scenario, tracks, extent, num_frames, height, width, scale):
    """(category or None, start, velocity) for one new object following ``scenario``."""
    speed = rng.uniform(1.5, 6.0) * scale
    if scenario == "cross":
        # Meet an earlier object mid-video with a partial overlap, coming from another direction.
        partner = tracks[rng.integers(len(tracks))]
        meet = rng.uniform(0.3, 0.7) * (num_frames - 1)
        partner_direction = np.arctan2(partner.velocity[1], partner.velocity[0])
        velocity = speed * _unit(partner_direction + rng.uniform(np.pi / 3, 5 * np.pi / 3))
        overlap_offset = (
            _unit(rng.uniform(0, 2 * np.pi)) * rng.uniform(0.3, 0.6) * (extent + partner.extent) / 2
        )
        return None, partner.unreflected_centre(meet) + overlap_offset - meet * velocity, velocity
    if scenario == "pair":
        # Same class, same motion, next to an earlier object (just not touching).
        partner = tracks[rng.integers(len(tracks))]
        side = _unit(rng.uniform(0, 2 * np.pi))
        gap = (extent + partner.extent) / 2 * (1 + _MAX_SCALE_AMPLITUDE) * rng.uniform(1.05, 1.25)
        velocity = np.asarray(partner.velocity) + rng.normal(0, 0.2 * scale, 2)
        return partner.category, np.asarray(partner.start) + gap * side, velocity
    inside = np.array(
        [rng.uniform(extent / 2, width - extent / 2), rng.uniform(extent / 2, height - extent / 2)]
    )
    if scenario != "border":
        return None, inside, speed * _unit(rng.uniform(0, 2 * np.pi))
    # Enter through (or, run backwards, leave through) a random side of the frame.
    side = rng.integers(4)
    inward = np.pi / 2 * side  # 0: from the left, pi/2: from the top, pi: right, 3pi/2: bottom
    outside = inside.copy()
    axis = side % 2
    outside[axis] = -0.55 * extent if side < 2 else (width, height)[axis] + 0.55 * extent
    velocity = max(speed, 3.0 * scale) * _unit(inward + rng.uniform(-np.pi / 4, np.pi / 4))
    if rng.uniform() < 0.5:
        return None, outside, velocity
    return None, outside + (num_frames - 1) * velocity, -velocity


def _sample_scene(rng: np.random.Generator, num_frames: int, height: int, width: int) -> _Scene:
    scale = min(height / _REFERENCE_SIZE[0], width / _REFERENCE_SIZE[1])
    num_objects = int(rng.choice([1, 2, 3, 4], p=[0.15, 0.35, 0.3, 0.2]))
    appearances = _sample_appearances(rng, num_objects, scale)
    tracks = []
    for appearance in appearances:
        base = _MIN_EXTENT / (1 - _MAX_SCALE_AMPLITUDE)
        extent = rng.uniform(base, _MAX_EXTENT / (1 + _MAX_SCALE_AMPLITUDE)) * scale
        scenario = (
            rng.choice(["free", "cross", "pair", "border"], p=[0.3, 0.35, 0.15, 0.2])
            if tracks
            else rng.choice(["free", "border"], p=[0.8, 0.2])
        )
        category, start, velocity = _sample_motion(
            rng, scenario, tracks, extent, num_frames, height, width, scale
        )
        if category is None:
            category = int(rng.integers(len(SYNTHETIC_CLASSES)))
        is_disc = SYNTHETIC_CLASSES[category] == "disc"
        tracks.append(
            _Track(
                category=category,
                start=tuple(float(v) for v in start),
                velocity=tuple(float(v) for v in velocity),
                extent=float(extent),
                scale_amplitude=float(rng.uniform(0, _MAX_SCALE_AMPLITUDE)),
                scale_frequency=float(rng.uniform(0.1, 0.35)),
                scale_phase=float(rng.uniform(0, 2 * np.pi)),
                angle=float(rng.uniform(0, 2 * np.pi)),
                angular_velocity=0.0 if is_disc else float(rng.uniform(-0.1, 0.1)),
                **appearance,
            )
        )
    depth_order = rng.permutation(len(tracks))
    return _Scene(
        height=height,
        width=width,
        background=_sample_background(rng, height, width),
        tracks=[tracks[i] for i in depth_order],
        margin=80.0 * scale,
        sensor_noise=3 * rng.standard_normal((3, height, width, 3), np.float32),
    )


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------
def _mask_box(mask: np.ndarray) -> List[float]:
    """XYWH box of a non-empty (H, W) mask, pixel-inclusive like pycocotools' toBbox."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    x0, y0 = cols[0], rows[0]
    return [float(x0), float(y0), float(cols[-1] - x0 + 1), float(rows[-1] - y0 + 1)]


def _write_frames(scene: _Scene, num_frames: int, video_dir: str) -> Tuple[List[str], list]:
    """Write one video's JPEG frames. Returns (file names relative to the JPEGImages folder,
    per track the list over frames of its (H, W) bool visible mask, None where not visible)."""
    os.makedirs(video_dir, exist_ok=True)
    file_names, per_track = [], [[] for _ in scene.tracks]
    for t in range(num_frames):
        image, visible = scene.render(t)
        frame_name = f"{t * _FRAME_NAME_STRIDE:05d}.jpg"
        cv2.imwrite(
            os.path.join(video_dir, frame_name), image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY]
        )
        file_names.append(f"{os.path.basename(video_dir)}/{frame_name}")
        for masks, mask in zip(per_track, visible):
            masks.append(mask if mask.any() else None)
    return file_names, per_track


def _track_annotation(annotation_id: int, video: dict, category: int, masks: list) -> dict:
    """The official json record of one track; ``masks`` has one entry (mask or None) per frame."""
    return {
        "id": annotation_id,
        "video_id": video["id"],
        "category_id": category + 1,
        "iscrowd": 0,
        "width": video["width"],
        "height": video["height"],
        "length": 1,  # as in the official files
        "segmentations": [None if m is None else mask_to_uncompressed_rle(m) for m in masks],
        "bboxes": [None if m is None else _mask_box(m) for m in masks],
        "areas": [None if m is None else int(m.sum()) for m in masks],
    }


def _render_split(image_root, split, num_videos, num_frames, height, width, seed):
    """Write the frames of one split; returns its json ``videos`` and ``annotations``."""
    videos, annotations = [], []
    for index in range(num_videos):
        rng = np.random.default_rng([seed, _SPLIT_SEED_OFFSETS[split], index])
        scene = _sample_scene(rng, num_frames, height, width)
        video_dir = os.path.join(image_root, f"{split}{index:04d}")
        file_names, per_track = _write_frames(scene, num_frames, video_dir)
        video = {
            "id": index + 1,
            "width": width,
            "height": height,
            "length": num_frames,
            "file_names": file_names,
        }
        videos.append(video)
        for track, masks in zip(scene.tracks, per_track):
            if any(m is not None for m in masks):  # an object never seen is not annotated
                annotations.append(
                    _track_annotation(len(annotations) + 1, video, track.category, masks)
                )
    return videos, annotations


def _write_json(json_file, videos, annotations, seed):
    content = {
        "info": {"description": "SG-Net synthetic video instance segmentation", "seed": seed},
        "licenses": [],
        "videos": videos,
        "annotations": annotations,
        "categories": [
            {"id": i + 1, "name": name, "supercategory": "shape"}
            for i, name in enumerate(SYNTHETIC_CLASSES)
        ],
    }
    with open(json_file, "w") as f:
        json.dump(content, f, separators=(",", ":"))


def generate_synthetic_ytvis(
    out_dir: str,
    *,
    num_train_videos: int = 400,
    num_val_videos: int = 48,
    num_frames: int = 12,
    height: int = 192,
    width: int = 320,
    seed: int = 0,
) -> dict:
    """Write the synthetic dataset (see the module docstring) into ``out_dir``.

    Returns the absolute paths ``{"train_json", "train_root", "val_json", "val_root"}`` (the
    roots are the ``JPEGImages`` folders).
    """
    paths = toy_dataset_paths(out_dir)
    for split, key, num_videos in (
        ("train", "train", num_train_videos),
        ("valid", "val", num_val_videos),
    ):
        os.makedirs(paths[f"{key}_root"], exist_ok=True)
        videos, annotations = _render_split(
            paths[f"{key}_root"], split, num_videos, num_frames, height, width, seed
        )
        _write_json(paths[f"{key}_json"], videos, annotations, seed)
    return paths


def write_synthetic_video(
    path: str,
    *,
    num_frames: int = 12,
    height: int = 192,
    width: int = 320,
    seed: int = 0,
    fps: float = 6.0,
) -> str:
    """Render one synthetic scene (as in the dataset) into a video file with ``cv2.VideoWriter``
    (.mp4: MPEG-4 part 2, which every OpenCV build writes). Returns ``path``."""
    scene = _sample_scene(
        np.random.default_rng([seed, _SPLIT_SEED_OFFSETS["video"]]), num_frames, height, width
    )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write the video file {path}")
    try:
        for t in range(num_frames):
            writer.write(scene.render(t)[0])
    finally:
        writer.release()
    return path


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
        rng = np.random.default_rng([seed, _SPLIT_SEED_OFFSETS["coco"], index])
        scene = _sample_scene(rng, 1, height, width)
        image, visible = scene.render(0)
        crowd = rng.uniform(size=len(scene.tracks)) < crowd_fraction
        image_id = index + 1
        file_name = f"{image_id:012d}.jpg"
        cv2.imwrite(
            os.path.join(image_root, file_name), image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY]
        )
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


def _is_complete(paths: dict) -> bool:
    return os.path.isfile(paths["train_json"]) and os.path.isfile(paths["val_json"])


def ensure_toy_dataset(dataset_dir: str) -> dict:
    """The default synthetic dataset in ``dataset_dir``, generated there on first use.

    Generation happens in a temporary sibling folder renamed into place, so concurrent callers
    (data loader processes, several jobs) never see a partial dataset. Returns the paths of
    :func:`generate_synthetic_ytvis`.
    """
    paths = toy_dataset_paths(dataset_dir)
    dataset_dir = os.path.abspath(dataset_dir)
    if _is_complete(paths):
        _check_version(dataset_dir)
        return paths
    if os.path.isdir(dataset_dir) and os.listdir(dataset_dir):
        raise FileExistsError(
            f"{dataset_dir} exists but lacks train.json / valid.json; delete it to have the toy "
            "dataset generated again"
        )
    logger.info(
        f"Generating the synthetic toy dataset into {dataset_dir} (first use; reused afterwards)"
    )
    parent = os.path.dirname(dataset_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=os.path.basename(dataset_dir) + ".tmp-", dir=parent)
    try:
        generate_synthetic_ytvis(staging)
        _mark_version(staging)
        try:
            os.rename(staging, dataset_dir)
        except OSError:
            if not _is_complete(paths):  # else another process finished first: use its copy
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return paths


def _mark_version(dataset_dir: str) -> None:
    with open(os.path.join(dataset_dir, _VERSION_FILE), "w") as f:
        f.write(TOY_DATASET_VERSION)


def _check_version(dataset_dir: str) -> None:
    """Warn when ``dataset_dir`` is not the current default dataset: an older sgnet's (other
    video counts), or one generated with other settings for a purpose of its own."""
    version_file = os.path.join(dataset_dir, _VERSION_FILE)
    found = None
    if os.path.isfile(version_file):
        with open(version_file) as f:
            found = f.read().strip()
    if found != TOY_DATASET_VERSION:
        logger.warning(
            f"Using the synthetic dataset in {dataset_dir}, which is not the current default "
            f"toy dataset (version {TOY_DATASET_VERSION}; {version_file} says "
            f"{found or 'nothing: an older sgnet or other settings'}): its splits and figures "
            "differ from the README's. Delete the folder to have the default generated again."
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sgnet.data.synthetic",
        description="Write the synthetic YouTube-VIS-format dataset: train.json, valid.json, "
        "frames.",
    )
    parser.add_argument("out_dir")
    parser.add_argument("--train-videos", type=int, default=400)
    parser.add_argument("--val-videos", type=int, default=48)
    parser.add_argument("--frames", type=int, default=12, help="frames per video")
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--coco-images",
        type=int,
        default=0,
        help="write instead a COCO-format image split of this many images (OUT_DIR/annotations/"
        "instances_train2017.json, OUT_DIR/train2017/), e.g. into $DETECTRON2_DATASETS/coco",
    )
    args = parser.parse_args(argv)
    size = {"height": args.height, "width": args.width, "seed": args.seed}
    if args.coco_images:
        paths = generate_synthetic_coco(args.out_dir, num_images=args.coco_images, **size)
    else:
        paths = generate_synthetic_ytvis(
            args.out_dir, num_train_videos=args.train_videos, num_val_videos=args.val_videos, num_frames=args.frames, **size
        )
        if vars(args) == vars(parser.parse_args([args.out_dir])):
            _mark_version(args.out_dir)  # the default dataset: usable as $DETECTRON2_DATASETS/sgnet_toy
    for key, path in paths.items():
        print(f"{key}: {path}")


if __name__ == "__main__":
    main()
