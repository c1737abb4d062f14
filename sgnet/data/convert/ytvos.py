"""``ytvos``: the YouTube-VOS / DAVIS / MOSE folder layout -> the official YouTube-VIS json.

    python -m sgnet.data.convert ytvos SRC --output OUT.json [--category NAME]

SRC holds::

    JPEGImages/<video>/<frame>.jpg     the frames (YouTube-VOS' all-frames folders hold more)
    Annotations/<video>/<frame>.png    one indexed mask per annotated frame
    meta.json                          optional, YouTube-VOS' object categories:
        {"videos": {"<video>": {"objects": {"<object id>": {"category": "<name>", ...}}}}}

A mask PNG is 8-bit single channel, palette ('P', as the datasets ship them: the pixel value is
the palette index) or grayscale ('L'): the value is the object id, 0 the background and 255 void
(DAVIS' "don't care" borders), which is never an object and belongs to no track.

Rules:
- a video's frames are those with a mask PNG, in name order (YouTube-VOS annotates every 5th
  frame of its all-frames folders); each needs its ``JPEGImages/<video>/<frame>.jpg``, of the
  PNG's size, and all frames of a video are of one size;
- one track per object id in the video's PNGs, in id order, ``null`` in the frames the object is
  absent from; videos in folder-name order;
- categories: with ``--category NAME`` every object is of the one category 1 named NAME (a
  ``meta.json`` is then not read); otherwise from ``meta.json``: YouTube-VOS has category names
  only, so the names of all its objects, sorted, are numbered 1..C. Without either the
  conversion stops, asking for ``--category``;
- ``file_names`` are ``<video>/<frame>.jpg`` relative to the image root ``SRC/JPEGImages``.
Each problem is one line naming the file (or the video and object id) and the problem.
"""
import logging
import os
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ...errors import InvalidInput, MissingInput
from ...fileio import same_or_inside
from ...formats.indexed_png import read_indexed_png
from ...formats.records import read_json
from .writer import YTVISWriter, image_size

__all__ = ["HELP", "add_arguments", "run", "convert_ytvos", "read_meta_categories", "VOID"]

HELP = "YouTube-VOS / DAVIS / MOSE folders (JPEGImages/, Annotations/ of indexed PNG masks, optional meta.json)."

logger = logging.getLogger(__name__)

VOID = 255  # the pixel value of regions no object is annotated in
PROGRESS_EVERY = 100  # videos between progress lines (YouTube-VOS train has 3,471)

# (video folder name, object id, where the id was found) -> the object's category id
CategoryOf = Callable[[str, int, str], int]


def add_arguments(parser) -> None:
    parser.add_argument("src", metavar="SRC", help="the folder holding JPEGImages/, Annotations/ and optionally meta.json")
    parser.add_argument("--output", required=True, metavar="OUT.json", help="the YouTube-VIS json to write")
    parser.add_argument(
        "--category",
        metavar="NAME",
        help="the category of every object (needed without SRC/meta.json; given, meta.json is not read)",
    )


def run(args) -> dict:
    return convert_ytvos(args.src, args.output, args.category)


def convert_ytvos(src: str, output: str, category: Optional[str] = None) -> dict:
    """Convert the YouTube-VOS-layout folder ``src`` (see the module docstring) to the YouTube-VIS
    json ``output``; ``category`` names the one category of all objects (else ``meta.json``).
    Returns the writer's summary."""
    image_root, annotation_root = _source_folders(src)
    # The writer refuses an output over a source file or a file under the image root; one among
    # the masks is refused here, without listing every mask file as an input.
    if same_or_inside(os.path.abspath(output), annotation_root):
        raise InvalidInput(f"--output {os.path.abspath(output)}: is inside the source folder {annotation_root}; choose another output path")
    writer = YTVISWriter(image_root, f"converted from {src} (YouTube-VOS layout)")
    meta_path = os.path.join(src, "meta.json")
    category_of = _category_source(writer, src, meta_path, category)
    videos = _video_folders(annotation_root)
    without_objects = []
    for done, video in enumerate(videos, start=1):
        if _add_video(writer, annotation_root, video, category_of) == 0:
            without_objects.append(video)
        if done % PROGRESS_EVERY == 0 or done == len(videos):
            logger.info(f"{src}: {done}/{len(videos)} videos read")
    if len(without_objects) == len(videos):
        raise InvalidInput(
            f"{annotation_root}: no mask PNG holds an object id (1-254); a binary mask of 0 and 255 "
            "marks only background and void: write each object's id as its pixel value"
        )
    if without_objects:
        logger.warning(f"{src}: {len(without_objects)} videos have no object in any mask, e.g. {without_objects[0]}")
    return writer.write(output, [src, *([meta_path] if os.path.isfile(meta_path) else [])])


def read_meta_categories(meta_path: str) -> Dict[str, Dict[int, str]]:
    """YouTube-VOS' ``meta.json`` -> ``{video folder name: {object id: category name}}``.

    Raises:
        InvalidInput: the file is not of that format (naming the video and object).
    """
    content = read_json(meta_path)
    expected = '{"videos": {"<video>": {"objects": {"<id>": {"category": "<name>"}}}}}'
    videos = content.get("videos") if isinstance(content, dict) else None
    if not isinstance(videos, dict):
        raise InvalidInput(f"{meta_path}: not a YouTube-VOS meta.json (expected {expected})")
    categories = {}
    for video, record in videos.items():
        objects = record.get("objects") if isinstance(record, dict) else None
        if not isinstance(objects, dict):
            raise InvalidInput(f"{meta_path}: video {video} has no 'objects' mapping (expected {expected})")
        categories[video] = {}
        for object_id, entry in objects.items():
            name = entry.get("category") if isinstance(entry, dict) else None
            if not (object_id.isascii() and object_id.isdigit()):
                raise InvalidInput(f"{meta_path}: video {video} has object id {object_id!r}, not a number")
            if not (isinstance(name, str) and name):
                raise InvalidInput(
                    f"{meta_path}: video {video} object {object_id} has no 'category' name; "
                    "pass --category NAME to name every object's category"
                )
            categories[video][int(object_id)] = name
    return categories


def _source_folders(src: str) -> Tuple[str, str]:
    """(image root, annotation root) of ``src``: its JPEGImages/ and Annotations/ folders."""
    if not os.path.isdir(src):
        raise MissingInput(f"{src}: {'not a folder' if os.path.exists(src) else 'no such folder'}")
    folders = []
    for name in ("JPEGImages", "Annotations"):
        folder = os.path.join(os.path.abspath(src), name)
        if not os.path.isdir(folder):
            raise MissingInput(
                f"{src}: has no {name}/ folder (the YouTube-VOS layout is SRC/JPEGImages/<video>/<frame>.jpg "
                "and SRC/Annotations/<video>/<frame>.png)"
            )
        folders.append(folder)
    return folders[0], folders[1]


def _category_source(writer: YTVISWriter, src: str, meta_path: str, category: Optional[str]) -> CategoryOf:
    """Add the categories to ``writer``; returns how an object's category id is found."""
    if category is not None:
        if not category.strip():
            raise InvalidInput(f"--category {category!r}: name the objects' category (e.g. --category person)")
        writer.add_category(1, category, "--category")
        return lambda video, object_id, where: 1
    if not os.path.isfile(meta_path):
        raise MissingInput(f"{src}: has no meta.json naming the objects' categories; pass --category NAME to name every object's category")
    names = read_meta_categories(meta_path)
    ids = {name: i for i, name in enumerate(sorted({n for objects in names.values() for n in objects.values()}), start=1)}
    for name, category_id in ids.items():
        writer.add_category(category_id, name, meta_path)

    def category_of(video: str, object_id: int, where: str) -> int:
        name = names.get(video, {}).get(object_id)
        if name is None:
            raise InvalidInput(f"{meta_path}: video {video} has no category for object id {object_id} (found in {where})")
        return ids[name]

    return category_of


def _video_folders(annotation_root: str) -> List[str]:
    videos = sorted(name for name in os.listdir(annotation_root) if os.path.isdir(os.path.join(annotation_root, name)))
    if not videos:
        raise MissingInput(f"{annotation_root}: holds no <video>/ folders of mask PNGs")
    return videos


def _frame_order(names: List[str]) -> List[str]:
    """Mask file names in frame order: by number when every name is one (``5.png`` before
    ``10.png``, however they are padded), else by name."""
    stems = [os.path.splitext(name)[0] for name in names]
    if all(stem.isascii() and stem.isdigit() for stem in stems):
        return [name for _, name in sorted(zip((int(stem) for stem in stems), names))]
    return sorted(names)


def _add_video(writer: YTVISWriter, annotation_root: str, video: str, category_of: CategoryOf) -> int:
    """Add the video of the mask folder ``annotation_root/video``: its annotated frames and one
    track per object id. Returns the number of objects."""
    folder = os.path.join(annotation_root, video)
    pngs = _frame_order([name for name in os.listdir(folder) if name.lower().endswith(".png")])
    if not pngs:
        raise MissingInput(f"{folder}: the video's folder holds no mask PNGs")
    file_names = [f"{video}/{os.path.splitext(name)[0]}.jpg" for name in pngs]
    labels = []  # per frame: (H, W) uint8 object ids
    object_frames: Dict[int, List[int]] = {}  # object id -> the frames it is in
    for t, (png, file_name) in enumerate(zip(pngs, file_names)):
        png_path = os.path.join(folder, png)
        image_path = os.path.join(writer.image_root, file_name)
        if not os.path.isfile(image_path):
            raise MissingInput(f"{png_path}: the annotated frame has no image {image_path}")
        size = image_size(image_path)
        if t == 0:
            height, width = size
        elif size != (height, width):
            raise InvalidInput(
                f"{image_path}: the frame is {size[1]}x{size[0]} but the video's first frame "
                f"{file_names[0]} is {width}x{height}"
            )
        label = read_indexed_png(png_path, allow_16_bit=False)  # ids above 255 would escape VOID
        if label.shape != size:
            raise InvalidInput(
                f"{png_path}: the mask is {label.shape[1]}x{label.shape[0]} but its frame {image_path} is {width}x{height}"
            )
        # bincount rather than np.unique: no sort of every pixel of ~100k frames
        present = np.flatnonzero(np.bincount(label.ravel(), minlength=VOID + 1)[1:VOID]) + 1
        for object_id in present.tolist():
            object_frames.setdefault(object_id, []).append(t)
        labels.append(label)
    categories = {
        object_id: category_of(video, object_id, os.path.join(folder, pngs[frames[0]]))
        for object_id, frames in sorted(object_frames.items())
    }
    record = writer.add_video(file_names, height, width, folder)
    for object_id, category_id in categories.items():
        frames = set(object_frames[object_id])
        masks = [label == object_id if t in frames else None for t, label in enumerate(labels)]
        writer.add_track(record, category_id, masks, f"{folder}: object id {object_id}")
    return len(categories)
