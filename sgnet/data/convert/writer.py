"""The one writer of YouTube-VIS annotation files for the converters: videos, categories and
tracks collected from any source format, written as the official files are (uncompressed RLE in
column-major order, ``bboxes`` and ``areas`` computed from the masks, ``null`` where an object is
absent), checked by the same reader the loader and the evaluator use, and written atomically.

A converter calls :meth:`YTVISWriter.add_category`, :meth:`~YTVISWriter.add_video` and
:meth:`~YTVISWriter.add_track`, then :meth:`~YTVISWriter.write`; every problem it finds in the
source is an :class:`~sgnet.errors.InvalidInput` naming the source file, and nothing is written.
:func:`check_segmentations` and :func:`decode_track` are the converters' one way from a source's
segmentations (polygons, RLE) to masks.
"""
import json
import os
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ...errors import InvalidInput, MissingInput
from ...fileio import CreatedFolders, atomic_write, refuse_overwriting_inputs, same_or_inside
from ...formats.rle import mask_box_xywh, mask_to_uncompressed_rle, segmentation_to_mask
from ...formats.segmentation import find_segmentation_problem
from ...formats.ytvis import parse_ytvis_annotations

__all__ = ["YTVISWriter", "check_segmentations", "decode_track", "image_size", "track_record"]


def image_size(path: str) -> Tuple[int, int]:
    """(height, width) of the image file ``path``, read from its header without decoding the
    pixels (a dataset's frames are read once each, for their size only)."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except OSError as e:
        raise InvalidInput(f"{path}: cannot be read as an image ({e})") from e
    return height, width


def check_segmentations(
    segmentations: Sequence, height: int, width: int, position: Callable[[int], str], *, polygons: bool = True
) -> None:
    """
    Check segmentations of frames of one size (RLE dicts, polygons if ``polygons``) completely
    before anything decodes them: pycocotools validates nothing and reads past the end of a
    truncated compressed RLE.

    Raises:
        InvalidInput: ``position(i)`` of the first invalid entry ``i``, then the problem.
    """
    problem = find_segmentation_problem(segmentations, height, width, polygons=polygons)
    if problem:
        index, sentence = problem
        raise InvalidInput(f"{position(index)}: {sentence}")


def decode_track(segmentations: Sequence, height: int, width: int) -> List[Optional[np.ndarray]]:
    """A track's checked per-frame segmentations (None where absent) -> per frame an
    (height, width) bool mask, or None."""
    return [None if s is None else segmentation_to_mask(s, height, width).astype(bool) for s in segmentations]


def track_record(annotation_id: int, video: dict, category_id: int, masks: Sequence[Optional[np.ndarray]], iscrowd: int = 0) -> dict:
    """The official json record of one track of ``video`` (its json record); ``masks`` has one
    entry per frame: an (H, W) bool mask, or None where the object is absent (an all-zero mask
    counts as absent, as in the official files)."""
    present = [None if m is None or not m.any() else m for m in masks]
    return {
        "id": annotation_id,
        "video_id": video["id"],
        "category_id": category_id,
        "iscrowd": iscrowd,
        "width": video["width"],
        "height": video["height"],
        "length": 1,  # as in the official files
        "segmentations": [None if m is None else mask_to_uncompressed_rle(m) for m in present],
        "bboxes": [None if m is None else mask_box_xywh(m) for m in present],
        "areas": [None if m is None else int(m.sum()) for m in present],
    }


class YTVISWriter:
    """
    Collects one YouTube-VIS annotation file.

    Args:
        image_root: the folder the videos' ``file_names`` are relative to (the loader's
            ``image_root``); every frame added must exist there.
        description: the file's ``info.description`` (e.g. what it was converted from).
    """

    def __init__(self, image_root: str, description: str):
        self.image_root = os.path.abspath(image_root)
        self.description = description
        self._categories: Dict[int, str] = {}
        self._videos: List[dict] = []
        self._tracks: List[dict] = []

    def add_category(self, category_id: int, name: str, source: str) -> None:
        """Add a category (the source's own id and name); adding it again with the same name is
        a no-op, with another name an error naming ``source``."""
        known = self._categories.get(category_id)
        if known is not None and known != name:
            raise InvalidInput(f"{source}: category id {category_id} is named both {known!r} and {name!r}")
        self._categories[category_id] = name

    def add_video(self, file_names: Sequence[str], height: int, width: int, source: str) -> dict:
        """Add a video of ``file_names`` (relative to ``image_root``, in frame order) of
        ``height`` x ``width`` pixels; returns its json record (for :meth:`add_track`).

        Raises:
            MissingInput: a frame file is not under ``image_root`` (named with ``source``).
        """
        for name in file_names:
            if not os.path.isfile(os.path.join(self.image_root, name)):
                raise MissingInput(f"{source}: frame {name} has no image {os.path.join(self.image_root, name)}")
        video = {
            "id": len(self._videos) + 1,
            "width": int(width),
            "height": int(height),
            "length": len(file_names),
            "file_names": list(file_names),
        }
        self._videos.append(video)
        return video

    def add_track(
        self, video: dict, category_id: int, masks: Sequence[Optional[np.ndarray]], source: str, iscrowd: int = 0
    ) -> int:
        """
        Add one object (or, with ``iscrowd`` 1, one ignore region) of ``video``.

        Args:
            masks: one entry per frame of the video: an (H, W) bool mask of the video's size,
                or None where the object is absent.
            source: names the object in messages (the file and the object's id there).

        Returns:
            The track's annotation id.

        Raises:
            InvalidInput: ``category_id`` was not added, or a mask is of another size than the
                video's frames or covers no pixel.
        """
        if category_id not in self._categories:
            known = ", ".join(str(i) for i in sorted(self._categories)) or "none"
            raise InvalidInput(f"{source}: category id {category_id} has no category (known ids: {known})")
        if len(masks) != video["length"]:
            raise ValueError(f"{len(masks)} masks for a video of {video['length']} frames")
        for t, mask in enumerate(masks):
            if mask is None:
                continue
            if tuple(mask.shape) != (video["height"], video["width"]):
                raise InvalidInput(
                    f"{source}: the mask of frame {video['file_names'][t]} is {mask.shape[1]}x{mask.shape[0]} "
                    f"but the frame is {video['width']}x{video['height']}"
                )
            # Written as absent, it would be a ground-truth object no prediction can match.
            if not mask.any():
                raise InvalidInput(
                    f"{source}: its mask in frame {video['file_names'][t]} covers no pixel of the "
                    f"{video['width']}x{video['height']} frame"
                )
        record = track_record(len(self._tracks) + 1, video, category_id, masks, iscrowd)
        self._tracks.append(record)
        return record["id"]

    def content(self) -> dict:
        return {
            "info": {"description": self.description},
            "licenses": [],
            "videos": self._videos,
            "annotations": self._tracks,
            "categories": [{"id": i, "name": name} for i, name in sorted(self._categories.items())],
        }

    def write(self, output: str, inputs: Iterable[str]) -> dict:
        """
        Check the collected file with the loader's reader and write it to ``output`` atomically
        (an interruption leaves no file, or the previous one). ``inputs`` (the source's files and
        folders) may not be ``output`` or hold it, nor may ``output`` lie under the image root
        (the frames' folder is never written to).

        Returns:
            ``{"json", "image_root", "videos", "annotations", "categories"}``: the absolute
            output path and image root, and the counts written.
        """
        # A trailing separator means a folder: abspath would drop it and write a file of that name.
        if os.path.isdir(output) or output.endswith(("/", os.sep)):
            raise InvalidInput(f"--output {output}: is a folder; name the json file to write")
        output = os.path.abspath(output)
        refuse_overwriting_inputs(output, [*inputs, self.image_root])
        if same_or_inside(output, self.image_root):
            raise InvalidInput(
                f"--output {output}: is inside the image root {self.image_root}, which holds the frames "
                "and is never written to; choose another output path"
            )
        if not self._videos:
            raise InvalidInput(f"{self.description}: the source holds no videos; nothing to write")
        content = self.content()
        parse_ytvis_annotations(content, output)  # what load_ytvis_json and the evaluator will accept
        folders = CreatedFolders()
        try:
            folders.make(os.path.dirname(output))
            with atomic_write(output, "w") as f:
                json.dump(content, f, separators=(",", ":"))
        except BaseException as e:
            folders.remove_empty()
            if isinstance(e, OSError):  # the disk or the path: a parent that is a file, no permission
                raise InvalidInput(f"--output {output}: cannot write it ({e})") from e
            raise
        return {
            "json": output,
            "image_root": self.image_root,
            "videos": len(self._videos),
            "annotations": len(self._tracks),
            "categories": len(self._categories),
        }
