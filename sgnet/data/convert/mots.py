"""``mots``: MOTSChallenge / KITTI MOTS text annotations -> the official YouTube-VIS json.

    python -m sgnet.data.convert mots SRC --image-root DIR --output OUT.json [--classes 1=car,2=pedestrian]

SRC is one sequence's ``<seq>.txt`` or a folder of them (``instances_txt/``). Each line is one
object in one frame, ``frame id class_id height width rle``, space separated: ``id`` is
``class_id * 1000 + instance``, ``rle`` pycocotools' compressed RLE string (column-major) of a
``height`` x ``width`` mask. Class 10 marks ignore regions. The lines of a file are sorted by
frame. The images of ``<seq>`` are ``DIR/<seq>/<frame number><ext>``: KITTI MOTS names them
``000000.png``, MOTSChallenge ``000001.jpg`` (its ``0002.txt`` goes with ``MOTS20-02/img1/``:
link that as ``DIR/0002``); the converter reads the names in the folder, so any zero padding and
any of .png/.jpg/.jpeg works.

Rules:
- a sequence's frames are *all* the images in its folder, in frame-number order, not only the
  annotated ones: training on full sequences sees every frame, the frames without annotations
  holding no objects (all tracks null there);
- all images of a sequence are of one size; every line's height/width must be that size;
- one track per object id, of the line's class (an id has one class, and one line per frame);
  the category ids are the MOTS class ids, named by ``--classes``;
- ignore regions (class 10) have no class of their own, and the evaluator matches crowd regions
  per category, so each sequence gets one crowd track (``iscrowd`` 1) *per class* of
  ``--classes``, each covering the sequence's ignore regions (the union of a frame's class-10
  lines): detections of any class there are ignored, as the MOTS evaluation does. A class-10
  line is never an object.
Each problem is one line naming the file and line (``seq.txt:12``) and the problem.
"""
import logging
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, List, Tuple

import pycocotools.mask as mask_util

from ...errors import InvalidInput, MissingInput
from .writer import YTVISWriter, check_segmentations, decode_track, image_size

__all__ = ["HELP", "add_arguments", "run", "parse_classes", "convert_mots", "IGNORE_CLASS"]

HELP = "MOTSChallenge / KITTI MOTS text files (one <seq>.txt per sequence, or a folder of them)."

logger = logging.getLogger(__name__)

DEFAULT_CLASSES = "1=car,2=pedestrian"
IGNORE_CLASS = 10
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_NON_NEGATIVE_INT = re.compile(r"[0-9]+")
_FIELDS = "frame id class_id height width rle"


def add_arguments(parser) -> None:
    parser.add_argument("src", metavar="SRC", help="a <seq>.txt file or a folder of them")
    parser.add_argument(
        "--image-root", required=True, help="the folder holding one <seq>/ folder of frames per sequence"
    )
    parser.add_argument("--output", required=True, help="the YouTube-VIS json to write")
    parser.add_argument(
        "--classes",
        default=DEFAULT_CLASSES,
        help=f"CLASS_ID=NAME,... naming the MOTS class ids (default: {DEFAULT_CLASSES}); "
        f"{IGNORE_CLASS} is the ignore class",
    )


def run(args) -> dict:
    return convert_mots(args.src, args.image_root, args.output, parse_classes(args.classes))


def parse_classes(text: str) -> Dict[int, str]:
    """``"1=car,2=pedestrian"`` -> ``{1: "car", 2: "pedestrian"}``.

    Raises:
        InvalidInput: an item is not ``CLASS_ID=NAME``, an id repeats, or is the ignore class.
    """
    classes = {}
    for item in text.split(","):
        class_id, _, name = item.partition("=")
        if not (_NON_NEGATIVE_INT.fullmatch(class_id.strip()) and name.strip()):
            raise InvalidInput(f"--classes {text!r}: {item!r} is not CLASS_ID=NAME (e.g. {DEFAULT_CLASSES})")
        class_id = int(class_id)
        if class_id == IGNORE_CLASS:
            raise InvalidInput(
                f"--classes {text!r}: class id {IGNORE_CLASS} is MOTS' ignore class, not an object class"
            )
        if class_id in classes:
            raise InvalidInput(f"--classes {text!r}: class id {class_id} is named twice")
        if name.strip() in classes.values():
            raise InvalidInput(f"--classes {text!r}: {name.strip()!r} names two class ids")
        classes[class_id] = name.strip()
    return classes


def convert_mots(src: str, image_root: str, output: str, classes: Dict[int, str]) -> dict:
    """Convert the MOTS sequence file or folder ``src`` (see the module docstring) to the
    YouTube-VIS json ``output``; ``classes``: MOTS class id -> name. Returns the writer's
    summary."""
    writer = YTVISWriter(image_root, f"converted from {src} (MOTS)")
    for class_id, name in classes.items():
        writer.add_category(class_id, name, "--classes")
    files = _sequence_files(src)
    for path in files:
        _add_sequence(writer, path, classes)
    return writer.write(output, [src, *files])


def _sequence_files(src: str) -> List[str]:
    if os.path.isdir(src):
        files = sorted(os.path.join(src, name) for name in os.listdir(src) if name.endswith(".txt"))
        if not files:
            raise MissingInput(f"{src}: the folder holds no <seq>.txt files")
        return files
    if not os.path.isfile(src):
        raise MissingInput(f"{src}: no such file or folder")
    return [src]


@dataclass(frozen=True)
class _Line:
    number: int  # 1-based, for messages
    frame: int
    object_id: int
    class_id: int
    height: int
    width: int
    counts: str  # compressed RLE


def _read_lines(path: str, classes: Dict[int, str]) -> List[_Line]:
    """The annotation lines of ``path`` (blank lines skipped), each well-formed, of a known class,
    in frame order, an object id of one class and once per frame."""
    try:
        with open(path, encoding="ascii") as f:
            texts = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise InvalidInput(f"{path}: not a MOTS text file ({e})") from e
    lines = []
    first_line_of_object: Dict[int, _Line] = {}
    objects_in_frame = set()  # object ids seen in the current frame
    for number, text in enumerate(texts, start=1):
        fields = text.split()
        if not fields:
            continue
        where = f"{path}:{number}"
        if len(fields) != 6:
            raise InvalidInput(f"{where}: {len(fields)} fields, expected 6 ({_FIELDS})")
        if not all(_NON_NEGATIVE_INT.fullmatch(value) for value in fields[:5]):
            raise InvalidInput(
                f"{where}: the first 5 fields must be non-negative integers ({_FIELDS}), got "
                f"{' '.join(fields[:5])}"
            )
        line = _Line(number, *(int(value) for value in fields[:5]), fields[5])
        if line.class_id not in classes and line.class_id != IGNORE_CLASS:
            known = ", ".join(str(c) for c in classes)
            raise InvalidInput(
                f"{where}: class id {line.class_id} is not among --classes ({known}) nor the ignore "
                f"class {IGNORE_CLASS}"
            )
        if lines and line.frame < lines[-1].frame:
            raise InvalidInput(
                f"{where}: frame {line.frame} comes after frame {lines[-1].frame} (lines must be sorted by frame)"
            )
        if not lines or line.frame != lines[-1].frame:
            objects_in_frame = set()
        if line.class_id != IGNORE_CLASS:
            first = first_line_of_object.setdefault(line.object_id, line)
            if first.class_id != line.class_id:
                raise InvalidInput(
                    f"{where}: object id {line.object_id} has class {line.class_id} here but "
                    f"{first.class_id} at line {first.number}"
                )
            if line.object_id in objects_in_frame:
                raise InvalidInput(f"{where}: object id {line.object_id} appears twice in frame {line.frame}")
            objects_in_frame.add(line.object_id)
        lines.append(line)
    return lines


def _frame_images(folder: str, path: str) -> Dict[int, str]:
    """Frame number -> image file name of the sequence folder ``folder`` (of ``path``'s
    sequence), sorted by frame number: the files named by a number with an image extension."""
    if not os.path.isdir(folder):
        raise MissingInput(f"{path}: the sequence's image folder {folder} does not exist")
    images = {}
    for name in sorted(os.listdir(folder)):
        stem, extension = os.path.splitext(name)
        if extension.lower() not in IMAGE_EXTENSIONS or not (stem.isascii() and stem.isdigit()):
            continue
        other = images.setdefault(int(stem), name)
        if other != name:
            raise InvalidInput(f"{folder}: {other} and {name} are both frame {int(stem)}")
    if not images:
        raise MissingInput(
            f"{path}: the sequence's image folder {folder} holds no frame images "
            f"(<number>{'/'.join(IMAGE_EXTENSIONS)})"
        )
    return dict(sorted(images.items()))


def _add_sequence(writer: YTVISWriter, path: str, classes: Dict[int, str]) -> None:
    """Add the sequence ``path`` (``<seq>.txt``): its video, a track per object, the crowd tracks
    of its ignore regions."""
    sequence = os.path.splitext(os.path.basename(path))[0]
    lines = _read_lines(path, classes)
    folder = os.path.join(writer.image_root, sequence)
    images = _frame_images(folder, path)
    frame_index = {frame: t for t, frame in enumerate(images)}
    first_frame, last_frame = next(iter(images)), next(reversed(images))
    height, width = image_size(os.path.join(folder, images[first_frame]))
    for name in images.values():  # headers only: a sequence's frames are of one size
        size = image_size(os.path.join(folder, name))
        if size != (height, width):
            raise InvalidInput(
                f"{os.path.join(folder, name)}: the frame is {size[1]}x{size[0]} but the sequence's first frame "
                f"{images[first_frame]} is {width}x{height}"
            )
    for line in lines:
        where = f"{path}:{line.number}"
        if line.frame not in frame_index:
            raise MissingInput(
                f"{where}: frame {line.frame} has no image in {folder} (it holds {len(images)} frame "
                f"images, frames {first_frame} to {last_frame})"
            )
        if (line.height, line.width) != (height, width):
            raise InvalidInput(
                f"{where}: the mask is {line.width}x{line.height} but the sequence's images "
                f"({sequence}/{images[first_frame]}) are {width}x{height}"
            )
    rles = [{"size": [height, width], "counts": line.counts} for line in lines]
    check_segmentations(rles, height, width, lambda i: f"{path}:{lines[i].number}", polygons=False)

    video = writer.add_video([f"{sequence}/{name}" for name in images.values()], height, width, path)
    objects: Dict[int, Tuple[int, list]] = {}  # object id -> (class id, RLE or None per frame)
    ignored = defaultdict(list)  # frame index -> RLEs of its ignore regions
    for line, rle in zip(lines, rles):
        t = frame_index[line.frame]
        if line.class_id == IGNORE_CLASS:
            ignored[t].append(rle)
        else:
            _, per_frame = objects.setdefault(line.object_id, (line.class_id, [None] * video["length"]))
            per_frame[t] = rle
    for object_id, (class_id, per_frame) in objects.items():
        writer.add_track(video, class_id, decode_track(per_frame, height, width), f"{path}: object id {object_id}")
    if ignored:
        regions = [mask_util.merge(ignored[t]) if t in ignored else None for t in range(video["length"])]
        crowd = decode_track(regions, height, width)
        for class_id in classes:
            writer.add_track(video, class_id, crowd, f"{path}: ignore regions", iscrowd=1)
    logger.info(
        f"{path}: sequence {sequence}: {video['length']} frames, {len(objects)} objects, ignore "
        f"regions in {len(ignored)} frames"
    )
