"""YouTube-VIS-format annotation files (YouTube-VIS 2019/2021/2022, OVIS, custom) -> detectron2
dataset dicts, one dict per video.

File format: /work/shared/docs/ytvis-format.md. One json annotation is one object *track*; its
per-frame ``segmentations`` / ``bboxes`` lists hold ``null`` where the object is absent.
"""

import itertools
import json
import logging
import os
from collections import Counter
from typing import Callable, Optional

import numpy as np
import pycocotools.mask as mask_util
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.detection_utils import check_metadata_consistency
from detectron2.structures import BoxMode
from detectron2.utils.colormap import colormap
from detectron2.utils.file_io import PathManager

from ...formats.rle import mask_to_uncompressed_rle, segmentation_to_mask, segmentation_to_rle

__all__ = [
    "load_ytvis_json",
    "register_ytvis_instances",
    "get_ytvis_dataset_dicts",
    "trainable_frame_indices",
    "segmentation_to_rle",
    "segmentation_to_mask",
    "mask_to_uncompressed_rle",
    "thing_colors_for",
]

logger = logging.getLogger(__name__)

_REQUIRED_VIDEO_KEYS = ("id", "file_names", "height", "width")


def thing_colors_for(num_classes: int) -> list:
    """Deterministic, distinct RGB colours (detectron2's palette) for visualisation."""
    palette = colormap(rgb=True, maximum=255)
    return [tuple(int(c) for c in palette[i % len(palette)]) for i in range(num_classes)]


# ---------------------------------------------------------------------------------------------
# Reading and validating the json
# ---------------------------------------------------------------------------------------------
def _read_json(json_file: str) -> dict:
    if not PathManager.exists(json_file):
        raise FileNotFoundError(f"YouTube-VIS annotation file not found: {json_file}")
    with PathManager.open(json_file, "r") as f:
        try:
            content = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{json_file} is not valid JSON: {e}") from e
    if not isinstance(content, dict) or not isinstance(content.get("videos"), list):
        raise ValueError(
            f"{json_file} is not a YouTube-VIS annotation file: expected a JSON object with a "
            "'videos' list"
        )
    return content


def _index_videos(videos: list, json_file: str) -> dict:
    """Video id -> video entry, after checking the fields the loader relies on."""
    by_id = {}
    for position, video in enumerate(videos):
        missing = [k for k in _REQUIRED_VIDEO_KEYS if k not in video]
        if missing:
            raise ValueError(
                f"{json_file}: video #{position} (id {video.get('id')}) lacks {missing}"
            )
        vid = video["id"]
        if vid in by_id:
            raise ValueError(f"{json_file}: video id {vid} appears more than once")
        if not video["file_names"]:
            raise ValueError(f"{json_file}: video {vid} lists no frames")
        length = video.get("length", len(video["file_names"]))
        if length != len(video["file_names"]):
            raise ValueError(
                f"{json_file}: video {vid} has length {length} but lists "
                f"{len(video['file_names'])} file_names"
            )
        by_id[vid] = video
    return by_id


def _category_mapping(categories: list, json_file: str):
    """Returns (thing_classes, {json category id: contiguous id}); ids are ordered ascending."""
    ids = [c["id"] for c in categories]
    duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
    if duplicates:
        raise ValueError(f"{json_file}: category ids {duplicates} appear more than once")
    ordered = sorted(categories, key=lambda c: c["id"])
    return [c["name"] for c in ordered], {c["id"]: i for i, c in enumerate(ordered)}


def _check_segmentation(segmentation, height: int, width: int, where: str) -> None:
    if isinstance(segmentation, dict):
        size, counts = segmentation.get("size"), segmentation.get("counts")
        if size is None or list(size) != [height, width]:
            raise ValueError(
                f"{where}: mask size {size} differs from the video's [height, width] = "
                f"[{height}, {width}]"
            )
        if isinstance(counts, list):
            if sum(counts) != height * width:
                raise ValueError(
                    f"{where}: uncompressed RLE counts sum to {sum(counts)}, expected "
                    f"height * width = {height * width}"
                )
        elif not isinstance(counts, (str, bytes)):
            raise ValueError(f"{where}: RLE 'counts' must be a list of ints or a string")
    elif isinstance(segmentation, list):
        if not segmentation or any(
            not isinstance(p, list) or len(p) < 6 or len(p) % 2 for p in segmentation
        ):
            raise ValueError(
                f"{where}: invalid polygons; each polygon must be a list of at least 3 (x, y) "
                "points"
            )
    else:
        raise ValueError(
            f"{where}: unknown segmentation encoding {type(segmentation).__name__}; expected RLE "
            "(dict) or polygons (list)"
        )


class _Tolerated:
    """Counts problems the official tools tolerate, keeping one example of each for the log."""

    def __init__(self):
        self.counts = Counter()
        self.examples = {}

    def add(self, kind: str, example: str) -> None:
        self.counts[kind] += 1
        self.examples.setdefault(kind, example)

    def log(self, json_file: str) -> None:
        messages = {
            "clipped": "boxes extend beyond their frame and were clipped to it",
            "empty": "object-frames have an empty box (width or height <= 0) and are treated "
            "as absent from that frame",
        }
        for kind, count in sorted(self.counts.items()):
            logger.warning(f"{json_file}: {count} {messages[kind]} (first: {self.examples[kind]})")


def _frame_box(bbox, segmentation, height, width, where, tolerated: _Tolerated):
    """The XYWH box of one object-frame, clipped to the frame; None if the box is empty.

    Files without ``bboxes`` get the box of the mask (what the official files store).
    """
    if bbox is None:
        bbox = mask_util.toBbox(segmentation_to_rle(segmentation, height, width)).tolist()
    if len(bbox) != 4:
        raise ValueError(f"{where}: bbox {bbox} is not [x, y, width, height]")
    x0, y0, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
        tolerated.add("empty", where)
        return None
    x1, y1 = min(x0 + w, width), min(y0 + h, height)
    cx0, cy0 = max(x0, 0.0), max(y0, 0.0)
    if x1 <= cx0 or y1 <= cy0:
        raise ValueError(
            f"{where}: bbox {bbox} lies entirely outside the {width}x{height} (width x height) "
            "frame"
        )
    if (cx0, cy0, x1, y1) != (x0, y0, x0 + w, y0 + h):
        tolerated.add("clipped", f"{where}: {bbox}")
    return [cx0, cy0, x1 - cx0, y1 - cy0]


def _track_frames(annotation, video, category_map, json_file, tolerated) -> list:
    """One json annotation (a track) -> per frame, its object dict or None where absent."""
    ann_id, vid = annotation.get("id"), video["id"]
    where_track = f"{json_file}: annotation {ann_id} of video {vid}"
    if annotation.get("category_id") not in category_map:
        raise ValueError(
            f"{where_track}: category_id {annotation.get('category_id')} is not among the file's "
            f"categories {sorted(category_map)}"
        )
    length = len(video["file_names"])
    segmentations = annotation.get("segmentations")
    bboxes = annotation.get("bboxes") or [None] * length
    for field, values in (("segmentations", segmentations), ("bboxes", bboxes)):
        if not isinstance(values, list):
            raise ValueError(f"{where_track}: '{field}' is missing or not a list")
        if len(values) != length:
            raise ValueError(
                f"{where_track}: '{field}' has {len(values)} entries, the video has {length} frames"
            )
    frames = []
    for t, (segmentation, bbox) in enumerate(zip(segmentations, bboxes)):
        where = f"{where_track}, frame {t} ({video['file_names'][t]})"
        if segmentation is None:
            if bbox is not None:
                raise ValueError(f"{where}: bbox {bbox} given without a segmentation")
            frames.append(None)
            continue
        _check_segmentation(segmentation, video["height"], video["width"], where)
        box = _frame_box(bbox, segmentation, video["height"], video["width"], where, tolerated)
        frames.append(
            None
            if box is None
            else {
                "id": ann_id,
                "category_id": category_map[annotation["category_id"]],
                "bbox": box,
                "bbox_mode": BoxMode.XYWH_ABS,
                "segmentation": segmentation,
                "iscrowd": int(annotation.get("iscrowd", 0)),
            }
        )
    return frames


def _group_objects_by_frame(annotations, videos_by_id, category_map, json_file) -> dict:
    """Video id -> list (one per frame) of lists of the object dicts present in that frame."""
    per_video = {vid: [[] for _ in v["file_names"]] for vid, v in videos_by_id.items()}
    tolerated = _Tolerated()
    for annotation in annotations:
        vid = annotation.get("video_id")
        if vid not in videos_by_id:
            raise ValueError(
                f"{json_file}: annotation {annotation.get('id')} refers to video_id {vid}, which "
                "is not in the file's 'videos'"
            )
        frames = _track_frames(annotation, videos_by_id[vid], category_map, json_file, tolerated)
        for frame_objects, obj in zip(per_video[vid], frames):
            if obj is not None:
                frame_objects.append(obj)
    tolerated.log(json_file)
    return per_video


def _check_frames_exist(dataset_dicts: list, image_root: str, json_file: str) -> None:
    if not os.path.isdir(image_root):
        raise FileNotFoundError(f"Image folder {image_root} (frames of {json_file}) does not exist")
    missing = [
        (d["video_id"], t, path)
        for d in dataset_dicts
        for t, path in enumerate(d["file_names"])
        if not os.path.isfile(path)
    ]
    if missing:
        vid, t, path = missing[0]
        raise FileNotFoundError(
            f"{len(missing)} frames listed in {json_file} are missing on disk; first: video {vid} "
            f"frame {t}: {path}"
        )


# ---------------------------------------------------------------------------------------------
# Metadata
# ---------------------------------------------------------------------------------------------
def _set_category_metadata(dataset_name: str, thing_classes: list, id_map: dict, json_file):
    """Set the json's categories on the dataset's metadata; they win over registered defaults."""
    metadata = MetadataCatalog.get(dataset_name)
    fields = metadata.as_dict()
    registered = (fields.get("thing_classes"), fields.get("thing_dataset_id_to_contiguous_id"))
    if registered == (thing_classes, id_map):
        return
    if registered != (None, None):
        logger.warning(
            f"The categories of {json_file} differ from those registered for '{dataset_name}' "
            f"({len(registered[0] or [])} classes); using the file's {len(thing_classes)}."
        )
    fields.pop("name")
    fields.update(thing_classes=thing_classes, thing_dataset_id_to_contiguous_id=id_map)
    if len(fields.get("thing_colors", [])) != len(thing_classes):
        fields["thing_colors"] = thing_colors_for(len(thing_classes))
    # Metadata refuses to change a set value: start over from a fresh entry.
    MetadataCatalog.remove(dataset_name)
    MetadataCatalog.get(dataset_name).set(**fields)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------
def load_ytvis_json(json_file: str, image_root: str, dataset_name: Optional[str] = None) -> list:
    """
    Load a YouTube-VIS-format annotation file.

    Args:
        json_file: path of the annotation file (train.json, valid.json, ...).
        image_root: the split's ``JPEGImages`` folder, to which ``file_names`` are relative.
        dataset_name: if given, the metadata of this dataset receives ``thing_classes`` and
            ``thing_dataset_id_to_contiguous_id`` from the file's ``categories``.

    Returns:
        list[dict], one per video in the file's order: ``video_id``, ``file_names`` (absolute,
        frame order), ``height``, ``width``, ``length`` and, when the file has annotations,
        ``annotations``: one list per frame of the objects present in it, each
        ``{"id": track id, "category_id": contiguous 0..C-1, "bbox": [x, y, w, h] (clipped to
        the frame), "bbox_mode": BoxMode.XYWH_ABS, "segmentation": as in the file, "iscrowd"}``.

    Raises ValueError / FileNotFoundError naming the file, video, annotation and frame for
    malformed input. Boxes partly outside their frame are clipped and empty boxes treated as
    absent, with one warning giving the count of each (the official tools tolerate both).
    """
    content = _read_json(json_file)
    videos_by_id = _index_videos(content["videos"], json_file)
    thing_classes, category_map = _category_mapping(content.get("categories") or [], json_file)
    # A file without categories (e.g. a test split stripped of them) keeps the registered ones.
    if dataset_name is not None and thing_classes:
        _set_category_metadata(dataset_name, thing_classes, category_map, json_file)

    image_root = os.path.abspath(image_root)
    dataset_dicts = [
        {
            "video_id": vid,
            "file_names": [os.path.join(image_root, name) for name in video["file_names"]],
            "height": video["height"],
            "width": video["width"],
            "length": len(video["file_names"]),
        }
        for vid, video in videos_by_id.items()
    ]
    annotations = content.get("annotations") or []
    if annotations:
        objects = _group_objects_by_frame(annotations, videos_by_id, category_map, json_file)
        for record in dataset_dicts:
            record["annotations"] = objects[record["video_id"]]
    _check_frames_exist(dataset_dicts, image_root, json_file)
    logger.info(
        f"Loaded {len(dataset_dicts)} videos ({sum(d['length'] for d in dataset_dicts)} frames, "
        f"{len(annotations)} object tracks) in YouTube-VIS format from {json_file}"
    )
    return dataset_dicts


def register_ytvis_instances(
    name: str,
    metadata: dict,
    json_file: str,
    image_root: str,
    *,
    loader: Optional[Callable[[], list]] = None,
) -> None:
    """
    Register a YouTube-VIS-format dataset, like detectron2's ``register_coco_instances``.

    Args:
        name: dataset name, e.g. "ytvis_2019_train".
        metadata: extra metadata (``thing_classes``, ``thing_colors``,
            ``thing_dataset_id_to_contiguous_id``); may be empty, the file's categories are set
            when it is loaded.
        json_file, image_root: see :func:`load_ytvis_json`. Nothing is read at registration.
        loader: what ``DatasetCatalog.get(name)`` calls; defaults to
            ``load_ytvis_json(json_file, image_root, name)``.
    """
    DatasetCatalog.register(name, loader or (lambda: load_ytvis_json(json_file, image_root, name)))
    MetadataCatalog.get(name).set(
        json_file=json_file, image_root=image_root, evaluator_type="ytvis", **metadata
    )


def trainable_frame_indices(video_dict: dict) -> list:
    """Indices of the frames holding at least one non-crowd object (a possible key frame)."""
    return [
        t
        for t, objects in enumerate(video_dict.get("annotations", []))
        if any(not obj["iscrowd"] for obj in objects)
    ]


def get_ytvis_dataset_dicts(names, filter_empty: bool = True) -> list:
    """
    The video dicts of one or more registered YouTube-VIS-format datasets, for a data loader.

    detectron2's ``get_detection_dataset_dicts`` expects one dict per image and fails on video
    dicts, so SG-Net's training loader takes its dataset from here::

        build_detection_train_loader(cfg, mapper=YTVISPairDatasetMapper(cfg, True),
                                     dataset=get_ytvis_dataset_dicts(cfg.DATASETS.TRAIN))

    Args:
        names (str or list[str]): registered dataset names.
        filter_empty: drop the videos without any frame holding a non-crowd object (they
            cannot give a training pair); raise if no video is left or a dataset has no
            annotations at all.
    """
    names = [names] if isinstance(names, str) else list(names)
    per_dataset = [DatasetCatalog.get(name) for name in names]
    for name, dicts in zip(names, per_dataset):
        if not dicts:
            raise ValueError(f"Dataset '{name}' has no videos")
    if len(names) > 1:
        check_metadata_consistency("thing_classes", names)
    dataset_dicts = list(itertools.chain.from_iterable(per_dataset))
    if filter_empty:
        dataset_dicts = _keep_trainable_videos(dataset_dicts, names)
    return dataset_dicts


def _keep_trainable_videos(dataset_dicts: list, names: list) -> list:
    unannotated = [d["video_id"] for d in dataset_dicts if "annotations" not in d]
    if unannotated:
        raise ValueError(
            f"{len(unannotated)} videos of {names} have no annotations (e.g. video "
            f"{unannotated[0]}): a split without annotations cannot be used for training"
        )
    kept = [d for d in dataset_dicts if trainable_frame_indices(d)]
    if not kept:
        raise ValueError(
            f"No video in {names} has a frame with a non-crowd object: there is nothing to train on"
        )
    logger.info(
        f"Removed {len(dataset_dicts) - len(kept)} videos without a non-crowd object; "
        f"{len(kept)} videos left for training"
    )
    return kept
