"""Checking COCO instances files (``instances_train2017.json`` and custom files in its format)
before detectron2's ``load_coco_json`` reads them.

``load_coco_json`` checks little: a non-crowd RLE whose runs do not cover the image is decoded
(and trained on) as it is, polygons of fewer than 3 points are dropped with a warning, and an
image without ``height`` or an annotation without ``bbox`` ends in a bare ``KeyError``. Here each
of these is an :class:`~sgnet.errors.InvalidInput` naming the file, the image or annotation id
and the problem, with the mask checks of the YouTube-VIS readers (:mod:`.segmentation`).
"""
from typing import Dict

from ..errors import InvalidInput
from .records import (
    identified_entries,
    is_int,
    is_number,
    object_entries,
    parse_categories,
    parse_iscrowd,
    read_json,
    require_fields,
    require_file_kind,
    short_repr,
    unique_id,
)
from .segmentation import find_segmentation_problem

__all__ = ["check_coco_instances_file", "check_coco_instances"]

_IMAGE_FIELDS = {
    "file_name": (lambda v: isinstance(v, str) and v, "a file name"),
    "height": (lambda v: is_int(v) and v > 0, "a positive integer"),
    "width": (lambda v: is_int(v) and v > 0, "a positive integer"),
}
_ANNOTATION_FIELDS = {
    "image_id": (is_int, "an integer"),
    "category_id": (is_int, "an integer"),
    "bbox": (
        lambda v: isinstance(v, list) and len(v) == 4 and all(is_number(x) for x in v),
        "[x, y, width, height]",
    ),
    "segmentation": (lambda v: isinstance(v, (dict, list)), "an RLE dict or polygons"),
}


def check_coco_instances_file(path: str) -> None:
    """Read and check the COCO instances file ``path``; see :func:`check_coco_instances`."""
    check_coco_instances(read_json(path), str(path))


def check_coco_instances(content, source: str) -> None:
    """
    Check parsed COCO instances content: ``images`` (unique int ``id``, ``file_name``, positive
    ``height`` and ``width``), ``categories`` (int ``id``, str ``name``, unique ids) and
    ``annotations`` (unique int ``id``, a known ``image_id`` and ``category_id``, ``bbox`` of 4
    numbers, ``iscrowd`` 0/1, and a ``segmentation``: RLE covering its image exactly, or
    polygons of >= 3 points each).

    Raises:
        InvalidInput: ``source``, the image or annotation and the problem.
    """
    prefix = f"{source}: "
    require_file_kind(
        content, "images", "COCO instances", "an 'images' list, 'annotations' and 'categories'", prefix
    )
    images = _image_sizes(content, prefix)
    category_ids = {c.id for c in parse_categories(content, prefix)}
    seen = set()
    for position, entry in enumerate(object_entries(content, "annotations", prefix, required=False)):
        _check_annotation(entry, position, images, category_ids, seen, prefix)


def _image_sizes(content: dict, prefix: str) -> Dict[int, tuple]:
    """Image id -> (height, width)."""
    entries = identified_entries(content, "images", "image", _IMAGE_FIELDS, prefix)
    return {entry["id"]: (entry["height"], entry["width"]) for _, entry in entries}


def _check_annotation(entry, position, images, category_ids, seen, prefix) -> None:
    unique_id(entry, seen, "annotation", f"{prefix}annotation #{position} (id {entry.get('id')})")
    where = f"{prefix}annotation {entry['id']} (image {short_repr(entry.get('image_id'))})"
    require_fields(entry, _ANNOTATION_FIELDS, where)
    if entry["image_id"] not in images:
        raise InvalidInput(f"{where}: image_id {entry['image_id']} is not in the file's 'images'")
    if entry["category_id"] not in category_ids:
        raise InvalidInput(
            f"{where}: category_id {entry['category_id']} is not among the file's categories"
        )
    parse_iscrowd(entry, where)
    if entry.get("ignore", 0):  # detectron2 asserts on it
        raise InvalidInput(f"{where}: 'ignore' is not supported; drop the annotation instead")
    problem = find_segmentation_problem([entry["segmentation"]], *images[entry["image_id"]])
    if problem:
        raise InvalidInput(f"{where}: {problem[1]}")
