"""YouTube-VIS-format annotation files (YouTube-VIS 2019/2021/2022, OVIS, custom) -> detectron2
dataset dicts, one dict per video.

File format: /work/shared/docs/ytvis-format.md. One json annotation is one object *track*; its
per-frame ``segmentations`` / ``bboxes`` lists hold ``null`` where the object is absent.
"""

import itertools
import logging
import os
from collections import Counter
from typing import Callable, List, Optional

import pycocotools.mask as mask_util
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.detection_utils import check_metadata_consistency
from detectron2.structures import BoxMode
from detectron2.utils.colormap import colormap

from ...errors import InvalidInput, MissingInput
from ...formats.rle import mask_to_uncompressed_rle, segmentation_to_mask, segmentation_to_rle
from ...formats.video_split import VideoSplit
from ...formats.ytvis import (
    Track,
    Video,
    YTVISAnnotations,
    frame_position,
    read_ytvis_annotations,
    track_position,
)

__all__ = [
    "load_ytvis_json",
    "register_ytvis_instances",
    "register_config_datasets",
    "dataset_class_names",
    "get_ytvis_dataset_dicts",
    "trainable_frame_indices",
    "segmentation_to_rle",
    "segmentation_to_mask",
    "mask_to_uncompressed_rle",
    "thing_colors_for",
]

logger = logging.getLogger(__name__)

def thing_colors_for(num_classes: int) -> list:
    """Deterministic, distinct RGB colours (detectron2's palette) for visualisation."""
    palette = colormap(rgb=True, maximum=255)
    return [tuple(int(c) for c in palette[i % len(palette)]) for i in range(num_classes)]


# ---------------------------------------------------------------------------------------------
# Annotations (read and checked by sgnet.formats.ytvis) -> per-frame objects
# ---------------------------------------------------------------------------------------------
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
    x0, y0, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
        tolerated.add("empty", where)
        return None
    x1, y1 = min(x0 + w, width), min(y0 + h, height)
    cx0, cy0 = max(x0, 0.0), max(y0, 0.0)
    if x1 <= cx0 or y1 <= cy0:
        raise InvalidInput(
            f"{where}: bbox {bbox} lies entirely outside the {width}x{height} (width x height) "
            "frame"
        )
    if (cx0, cy0, x1, y1) != (x0, y0, x0 + w, y0 + h):
        tolerated.add("clipped", f"{where}: {bbox}")
    return [cx0, cy0, x1 - cx0, y1 - cy0]


def _track_frames(track: Track, video: Video, category_map, source, tolerated) -> list:
    """One track -> per frame, its object dict or None where absent."""
    where_track = track_position(source, track.id, video.id)
    bboxes = track.bboxes or [None] * video.length
    frames = []
    for t, (segmentation, bbox) in enumerate(zip(track.segmentations, bboxes)):
        box = None
        if segmentation is not None:
            where = frame_position(where_track, video, t)
            box = _frame_box(bbox, segmentation, video.height, video.width, where, tolerated)
        frames.append(
            None
            if box is None
            else {
                "id": track.id,
                "category_id": category_map[track.category_id],
                "bbox": box,
                "bbox_mode": BoxMode.XYWH_ABS,
                "segmentation": segmentation,
                "iscrowd": track.iscrowd,
            }
        )
    return frames


def _group_objects_by_frame(annotations: YTVISAnnotations, category_map) -> dict:
    """Video id -> list (one per frame) of lists of the object dicts present in that frame."""
    per_video = {vid: [[] for _ in range(v.length)] for vid, v in annotations.videos.items()}
    tolerated = _Tolerated()
    for track in annotations.tracks:
        video = annotations.videos[track.video_id]
        frames = _track_frames(track, video, category_map, annotations.source, tolerated)
        for frame_objects, obj in zip(per_video[track.video_id], frames):
            if obj is not None:
                frame_objects.append(obj)
    tolerated.log(annotations.source)
    return per_video


def _check_frames_exist(dataset_dicts: list, image_root: str, json_file: str) -> None:
    if not os.path.isdir(image_root):
        raise MissingInput(f"Image folder {image_root} (frames of {json_file}) does not exist")
    missing = [
        (d["video_id"], t, path)
        for d in dataset_dicts
        for t, path in enumerate(d["file_names"])
        if not os.path.isfile(path)
    ]
    if missing:
        vid, t, path = missing[0]
        raise MissingInput(
            f"{len(missing)} frames listed in {json_file} are missing on disk; first: video {vid} "
            f"frame {t}: {path}"
        )


# ---------------------------------------------------------------------------------------------
# Metadata
# ---------------------------------------------------------------------------------------------
def _set_category_metadata(dataset_name: str, thing_classes: list, id_map: dict, json_file):
    """Set the json's categories on the dataset's metadata; they win over registered defaults."""
    metadata = MetadataCatalog.get(dataset_name)
    registered = (metadata.get("thing_classes"), metadata.get("thing_dataset_id_to_contiguous_id"))
    if registered == (thing_classes, id_map):
        return
    if registered != (None, None):
        logger.warning(
            f"The categories of {json_file} differ from those registered for '{dataset_name}' "
            f"({len(registered[0] or [])} classes); using the file's {len(thing_classes)}."
        )
    fields = dict(thing_classes=thing_classes, thing_dataset_id_to_contiguous_id=id_map)
    if len(metadata.get("thing_colors") or []) != len(thing_classes):
        fields["thing_colors"] = thing_colors_for(len(thing_classes))
    # Metadata.set refuses to change a set value (a guard against two registrations that
    # disagree). Here the change is deliberate: the file is the truth about its categories. And
    # the object must stay the same one: an evaluator or visualizer built before the dataset was
    # loaded holds it, and would keep the registered defaults if it were replaced.
    vars(metadata).update(fields)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------
def load_ytvis_json(
    json_file: str, image_root: str, dataset_name: Optional[str] = None, video_split: Optional[VideoSplit] = None
) -> list:
    """
    Load a YouTube-VIS-format annotation file.

    Args:
        json_file: path of the annotation file (train.json, valid.json, ...).
        image_root: the split's ``JPEGImages`` folder, to which ``file_names`` are relative.
        dataset_name: if given, the metadata of this dataset receives ``thing_classes`` and
            ``thing_dataset_id_to_contiguous_id`` from the file's ``categories`` (updated in
            place: holders of the metadata object see them).
        video_split: if given, only that part of the file's videos (and their tracks) is
            loaded; the whole file is still checked.

    Returns:
        list[dict], one per video in the file's order: ``video_id``, ``file_names`` (absolute,
        frame order), ``height``, ``width``, ``length`` and, when the file has annotations,
        ``annotations``: one list per frame of the objects present in it, each
        ``{"id": track id, "category_id": contiguous 0..C-1, "bbox": [x, y, w, h] (clipped to
        the frame), "bbox_mode": BoxMode.XYWH_ABS, "segmentation": as in the file, "iscrowd"}``.

    Raises InvalidInput / MissingInput naming the file, video, annotation and frame for
    malformed input (the checks of :func:`sgnet.formats.ytvis.read_ytvis_annotations`, which the
    evaluator shares). Boxes partly outside their frame are clipped and empty boxes treated as
    absent, with one warning giving the count of each (the official tools tolerate both).
    """
    annotations = read_ytvis_annotations(json_file)
    part = ""
    if video_split is not None:
        part = f" ({video_split.describe()} of its {len(annotations.videos)})"
        annotations = video_split.select(annotations)
    thing_classes = [c.name for c in annotations.categories]
    category_map = {c.id: i for i, c in enumerate(annotations.categories)}
    # A file without categories (e.g. a test split stripped of them) keeps the registered ones.
    if dataset_name is not None and thing_classes:
        _set_category_metadata(dataset_name, thing_classes, category_map, json_file)

    image_root = os.path.abspath(image_root)
    dataset_dicts = [
        {
            "video_id": vid,
            "file_names": [os.path.join(image_root, name) for name in video.file_names],
            "height": video.height,
            "width": video.width,
            "length": video.length,
        }
        for vid, video in annotations.videos.items()
    ]
    if annotations.tracks:
        objects = _group_objects_by_frame(annotations, category_map)
        for record in dataset_dicts:
            record["annotations"] = objects[record["video_id"]]
    _check_frames_exist(dataset_dicts, image_root, json_file)
    logger.info(
        f"Loaded {len(dataset_dicts)} videos ({sum(d['length'] for d in dataset_dicts)} frames, "
        f"{len(annotations.tracks)} object tracks) in YouTube-VIS format from {json_file}{part}"
    )
    return dataset_dicts


def register_ytvis_instances(
    name: str,
    metadata: dict,
    json_file: str,
    image_root: str,
    *,
    loader: Optional[Callable[[], list]] = None,
    video_split: Optional[VideoSplit] = None,
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
            ``load_ytvis_json(json_file, image_root, name, video_split)``.
        video_split: the dataset is this part of the file's videos: the default loader loads
            only those, and the evaluator scores against their ground truth only (metadata
            ``video_split``).
    """
    DatasetCatalog.register(name, loader or (lambda: load_ytvis_json(json_file, image_root, name, video_split)))
    if video_split is not None:
        metadata = {**metadata, "video_split": video_split}
    MetadataCatalog.get(name).set(
        json_file=json_file, image_root=image_root, evaluator_type="ytvis", **metadata
    )


def dataset_class_names(name: str) -> Optional[List[str]]:
    """The class names of the registered dataset ``name`` in label order: its metadata's, or for a
    YouTube-VIS file registered but not loaded yet, its file's categories (then set on its
    metadata, as loading it would). None when neither is known."""
    metadata = MetadataCatalog.get(name)
    names = metadata.get("thing_classes", None)
    if names is None and metadata.get("evaluator_type", None) == "ytvis" and metadata.get("json_file", None):
        categories = read_ytvis_annotations(metadata.json_file).categories
        if categories:
            names = [c.name for c in categories]
            _set_category_metadata(name, names, {c.id: i for i, c in enumerate(categories)}, metadata.json_file)
    return None if names is None else list(names)


def register_config_datasets(cfg) -> List[str]:
    """
    Register the datasets of ``cfg.DATASETS.REGISTER`` ((name, json_file, image_root) triples of
    YouTube-VIS-format files) as :func:`register_ytvis_instances` does, paths made absolute.
    Idempotent: a name registered already with the same files is left as it is (every process
    of a distributed run calls this).

    Returns:
        The names, in the config's order.

    Raises:
        InvalidInput: an entry that is not three strings; a name registered already with other
            files, or by other code (both named). MissingInput: a json file or image root that
            does not exist.
    """
    names = []
    for position, entry in enumerate(cfg.DATASETS.REGISTER):
        where = f"DATASETS.REGISTER entry {position}"
        if not (isinstance(entry, (list, tuple)) and len(entry) == 3 and all(isinstance(v, str) for v in entry)):
            raise InvalidInput(f"{where} {entry!r}: must be (name, json_file, image_root), three strings")
        name, json_file, image_root = entry[0], os.path.abspath(entry[1]), os.path.abspath(entry[2])
        if not os.path.isfile(json_file):
            raise MissingInput(f"{where} ({name!r}): no annotation file {json_file}")
        if not os.path.isdir(image_root):
            raise MissingInput(f"{where} ({name!r}): no image folder {image_root}")
        if name in DatasetCatalog.list():
            _check_registered_with(name, json_file, image_root, where)
        else:
            register_ytvis_instances(name, {}, json_file, image_root)
        names.append(name)
    return names


def _check_registered_with(name: str, json_file: str, image_root: str, where: str) -> None:
    metadata = MetadataCatalog.get(name)
    registered = (metadata.get("json_file", None), metadata.get("image_root", None))
    if None in registered:
        raise InvalidInput(f"{where}: {name!r} is registered already, by other code (not from a YouTube-VIS file); choose another name")
    if (os.path.abspath(registered[0]), os.path.abspath(registered[1])) != (json_file, image_root):
        raise InvalidInput(
            f"{where}: {name!r} is registered already with {registered[0]} and {registered[1]}, "
            f"not {json_file} and {image_root}; choose another name"
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
            raise InvalidInput(f"Dataset '{name}' has no videos")
    if len(names) > 1:
        check_metadata_consistency("thing_classes", names)
    dataset_dicts = list(itertools.chain.from_iterable(per_dataset))
    if filter_empty:
        dataset_dicts = _keep_trainable_videos(dataset_dicts, names)
    return dataset_dicts


def _keep_trainable_videos(dataset_dicts: list, names: list) -> list:
    unannotated = [d["video_id"] for d in dataset_dicts if "annotations" not in d]
    if unannotated:
        raise InvalidInput(
            f"{len(unannotated)} videos of {names} have no annotations (e.g. video "
            f"{unannotated[0]}): a split without annotations cannot be used for training"
        )
    kept = [d for d in dataset_dicts if trainable_frame_indices(d)]
    if not kept:
        raise InvalidInput(
            f"No video in {names} has a frame with a non-crowd object: there is nothing to train on"
        )
    logger.info(
        f"Removed {len(dataset_dicts) - len(kept)} videos without a non-crowd object; "
        f"{len(kept)} videos left for training"
    )
    return kept
