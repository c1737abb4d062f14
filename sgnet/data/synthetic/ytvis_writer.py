"""The synthetic video dataset written in exactly the YouTube-VIS format: ``train.json`` and
``valid.json`` (annotated, unlike the public benchmarks' validation files) with their frames as
``train/JPEGImages/<video>/00000.jpg ...`` and ``valid/JPEGImages/...``."""

import json
import os
from typing import List, Tuple

from ..convert.writer import track_record
from .render import SYNTHETIC_CLASSES, Scene, write_jpeg
from .scenes import sample_scene, scene_rng

__all__ = ["generate_synthetic_ytvis", "toy_dataset_paths"]

# YouTube-VIS names frames after their index in the source video, which they sample every 5th.
_FRAME_NAME_STRIDE = 5


def toy_dataset_paths(dataset_dir: str) -> dict:
    """Absolute paths of the splits of a synthetic dataset folder (YouTube-VIS layout):
    ``{"train_json", "train_root", "val_json", "val_root"}``, roots being JPEGImages folders."""
    dataset_dir = os.path.abspath(dataset_dir)
    return {
        "train_json": os.path.join(dataset_dir, "train.json"),
        "train_root": os.path.join(dataset_dir, "train", "JPEGImages"),
        "val_json": os.path.join(dataset_dir, "valid.json"),
        "val_root": os.path.join(dataset_dir, "valid", "JPEGImages"),
    }


def _write_frames(scene: Scene, num_frames: int, video_dir: str) -> Tuple[List[str], list]:
    """Write one video's JPEG frames. Returns (file names relative to the JPEGImages folder,
    per track the list over frames of its (H, W) bool visible mask, None where not visible)."""
    os.makedirs(video_dir, exist_ok=True)
    file_names, per_track = [], [[] for _ in scene.tracks]
    for t in range(num_frames):
        image, visible = scene.render(t)
        frame_name = f"{t * _FRAME_NAME_STRIDE:05d}.jpg"
        write_jpeg(os.path.join(video_dir, frame_name), image)
        file_names.append(f"{os.path.basename(video_dir)}/{frame_name}")
        for masks, mask in zip(per_track, visible):
            masks.append(mask if mask.any() else None)
    return file_names, per_track


def _render_split(image_root, split, num_videos, num_frames, height, width, seed):
    """Write the frames of one split; returns its json ``videos`` and ``annotations``."""
    videos, annotations = [], []
    for index in range(num_videos):
        scene = sample_scene(scene_rng(seed, split, index), num_frames, height, width)
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
                    track_record(len(annotations) + 1, video, track.category + 1, masks)
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
    """Write the synthetic dataset (see :mod:`sgnet.data.synthetic`) into ``out_dir``. The output
    is a pure function of the arguments (same seed: byte-identical json and frames).

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
