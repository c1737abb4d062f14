"""``cocovid``: mmdetection 3.x / mmtracking's COCO-video json -> the official YouTube-VIS json.

    python -m sgnet.data.convert cocovid SRC.json --image-root DIR --output OUT.json

The source (what mmdetection's ``tools/dataset_converters/youtubevis2coco.py`` writes) is COCO
with videos: ``videos`` ``{"id", "name"}``; ``images`` ``{"id", "file_name", "height", "width",
"video_id", "frame_id"}``, one per frame; ``annotations`` ``{"id", "image_id", "category_id",
"instance_id", "segmentation", "iscrowd" (optional), ...}``, one per object and frame, the
segmentation polygons or RLE (compressed string or uncompressed counts); ``categories``
``{"id", "name"}``. A valid/test file may have no ``annotations``.

Output: one video per ``videos`` entry, in the file's order (numbered 1..N as the writer numbers
videos), whose frames are its images in ``frame_id`` order, ``file_names`` the images'
``file_name`` (relative to ``--image-root``); one track per (video, ``instance_id``), null in the
frames it has no annotation in; the categories' ids and names kept. Boxes and areas are computed
from the masks, not taken from the source.

Rules:
- ``frame_id`` gaps are allowed (sparsely annotated videos keep their frame numbers); the frames
  are the video's images in ``frame_id`` order. Two images of a video with one ``frame_id`` are an
  error, so is a video without images;
- all images of a video have one size (a YouTube-VIS video has one);
- the image decides an annotation's video (an annotation's own ``video_id`` is not needed);
- an instance has one ``category_id`` and one ``iscrowd`` in its video, and at most one
  annotation per image; an annotation's segmentation may not be null.
Each problem is one line naming the file, the record (``annotation #i (id N)``) and the problem.
"""
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, List

from ...errors import InvalidInput
from ...formats.records import (
    identified_entries,
    is_int,
    parse_categories,
    parse_iscrowd,
    read_json,
    require_file_kind,
)
from .writer import YTVISWriter, check_segmentations, decode_track

__all__ = ["HELP", "add_arguments", "run", "convert_cocovid"]

HELP = "mmdetection 3.x / mmtracking COCO-video json (videos, images with frame_id, annotations with instance_id)."

logger = logging.getLogger(__name__)

LOG_EVERY_VIDEOS = 100


def add_arguments(parser) -> None:
    parser.add_argument("src", metavar="SRC.json", help="the COCO-video annotation file")
    parser.add_argument("--image-root", required=True, help="the folder the images' file_name are relative to")
    parser.add_argument("--output", required=True, help="the YouTube-VIS json to write")


def run(args) -> dict:
    return convert_cocovid(args.src, args.image_root, args.output)


def _is_str(value) -> bool:
    return isinstance(value, str)


_POSITIVE_INT = (lambda v: is_int(v) and v > 0, "a positive integer")
_INT = (is_int, "an integer")
_IMAGE_FIELDS = {
    "file_name": (_is_str, "a string"),
    "height": _POSITIVE_INT,
    "width": _POSITIVE_INT,
    "video_id": _INT,
    "frame_id": _INT,
}
_ANNOTATION_FIELDS = {
    "image_id": _INT,
    "category_id": _INT,
    "instance_id": _INT,
    "segmentation": (lambda v: v is not None, "polygons or an RLE (an absent object has no annotation)"),
}


@dataclass
class _Video:
    where: str  # the videos entry, as messages name it
    images: List[tuple] = field(default_factory=list)  # (frame_id, where, image entry)


@dataclass
class _Instance:
    where: str  # its first annotation, as messages name it
    annotation_id: int
    category_id: int
    iscrowd: int
    segmentations: Dict[int, tuple] = field(default_factory=dict)  # image id -> (where, segmentation)


def convert_cocovid(src: str, image_root: str, output: str) -> dict:
    """Convert the COCO-video file ``src`` (see the module docstring) to the YouTube-VIS json
    ``output``; returns the writer's summary."""
    prefix = f"{src}: "
    content = read_json(src)
    require_file_kind(content, "images", "COCO-video", "'videos', 'images' and 'categories' lists", prefix)
    writer = YTVISWriter(image_root, f"converted from {src} (COCO-video)")
    for category in parse_categories(content, prefix):
        writer.add_category(category.id, category.name, src)
    videos = {
        entry["id"]: _Video(where) for where, entry in identified_entries(content, "videos", "video", {}, prefix)
    }
    instances = _group_instances(content, _group_images(content, videos, prefix), prefix)

    for index, (video_id, video) in enumerate(videos.items()):
        if not video.images:
            raise InvalidInput(f"{video.where}: the video has no images")
        video.images.sort(key=lambda image: image[0])
        _check_one_frame_per_frame_id(video.images)
        _, _, first = video.images[0]
        height, width = first["height"], first["width"]
        for _, where, image in video.images:
            if (image["height"], image["width"]) != (height, width):
                raise InvalidInput(
                    f"{where}: the image is {image['width']}x{image['height']} but image {first['id']} "
                    f"of the same video is {width}x{height}"
                )
        record = writer.add_video([image["file_name"] for _, _, image in video.images], height, width, video.where)
        _add_tracks(writer, record, video, instances.get(video_id, {}))
        if (index + 1) % LOG_EVERY_VIDEOS == 0 or index + 1 == len(videos):
            logger.info(f"{src}: {index + 1}/{len(videos)} videos converted")
    return writer.write(output, [src])


def _group_images(content: dict, videos: Dict[int, _Video], prefix: str) -> Dict[int, int]:
    """Each image added to its video; returns image id -> video id."""
    images = {}
    for where, image in identified_entries(content, "images", "image", _IMAGE_FIELDS, prefix):
        video = videos.get(image["video_id"])
        if video is None:
            raise InvalidInput(f"{where}: video_id {image['video_id']} is not in the file's 'videos'")
        video.images.append((image["frame_id"], where, image))
        images[image["id"]] = image["video_id"]
    return images


def _check_one_frame_per_frame_id(images: List[tuple]) -> None:
    """``images``: (frame_id, where, entry) of one video, sorted by frame_id."""
    for (frame_id, _, image), (next_frame_id, next_where, _) in zip(images, images[1:]):
        if frame_id == next_frame_id:
            raise InvalidInput(
                f"{next_where}: frame_id {frame_id} is also image {image['id']}'s, of the same video"
            )


def _group_instances(
    content: dict, video_of_image: Dict[int, int], prefix: str
) -> Dict[int, Dict[int, _Instance]]:
    """The annotations as video id -> instance id -> :class:`_Instance` (in order of first
    appearance), checked for one category and ``iscrowd`` per instance and one annotation per
    image."""
    instances = defaultdict(dict)
    if content.get("annotations") is None:  # a valid/test file
        return instances
    for where, annotation in identified_entries(content, "annotations", "annotation", _ANNOTATION_FIELDS, prefix):
        video_id = video_of_image.get(annotation["image_id"])
        if video_id is None:
            raise InvalidInput(f"{where}: image_id {annotation['image_id']} is not in the file's 'images'")
        iscrowd = parse_iscrowd(annotation, where)
        instance_id = annotation["instance_id"]
        instance = instances[video_id].setdefault(
            instance_id, _Instance(where, annotation["id"], annotation["category_id"], iscrowd)
        )
        for name, value, first_value in (
            ("category_id", annotation["category_id"], instance.category_id),
            ("iscrowd", iscrowd, instance.iscrowd),
        ):
            if value != first_value:
                raise InvalidInput(
                    f"{where}: instance_id {instance_id} has {name} {value} here but {first_value} in "
                    f"annotation {instance.annotation_id} of the same video"
                )
        if annotation["image_id"] in instance.segmentations:
            raise InvalidInput(
                f"{where}: instance_id {instance_id} has another annotation in image {annotation['image_id']}"
            )
        instance.segmentations[annotation["image_id"]] = (where, annotation["segmentation"])
    return instances


def _add_tracks(writer: YTVISWriter, record: dict, video: _Video, instances: Dict[int, _Instance]) -> None:
    """Add a track per instance of ``video`` (its json record ``record``), its segmentations
    checked first."""
    height, width = record["height"], record["width"]
    annotated = [entry for instance in instances.values() for entry in instance.segmentations.values()]
    check_segmentations([s for _, s in annotated], height, width, lambda i: annotated[i][0])
    frame_of_image = {image["id"]: t for t, (_, _, image) in enumerate(video.images)}
    for instance_id, instance in instances.items():
        per_frame = [None] * record["length"]
        for image_id, (_, segmentation) in instance.segmentations.items():
            per_frame[frame_of_image[image_id]] = segmentation
        writer.add_track(
            record,
            instance.category_id,
            decode_track(per_frame, height, width),
            f"{instance.where} (instance_id {instance_id})",
            iscrowd=instance.iscrowd,
        )
