"""COCO-format image datasets whose categories are mapped onto a video dataset's classes, so that
their images can train a video model as pseudo clip pairs
(:class:`sgnet.data.COCOPseudoPairMapper`).

Records are detectron2's standard image dicts, as ``load_coco_json`` returns them (``file_name``,
``height``, ``width``, ``image_id``, ``annotations``), each object also carrying its annotation
``id`` (its identity in the pair) and a ``category_id`` that is the *target* dataset's contiguous
id. Objects of unmapped categories and crowd objects are dropped; images left without an object
are skipped.
"""

import logging
from collections import Counter

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

from ...errors import InvalidInput
from ...formats.coco import check_coco_instances_file

__all__ = ["load_coco_json_mapped", "register_coco_mapped_instances", "is_image_dataset"]

logger = logging.getLogger(__name__)


def _coco_categories(json_file: str, image_root: str, name: str):
    """``load_coco_json`` with annotation ids, and the file's category names: returns (records
    whose ``category_id`` is an index into the names, the names)."""
    # load_coco_json hands out the file's category names only through the metadata of a dataset
    # name; a scratch entry, removed afterwards, keeps the split's own metadata (the target's
    # classes) untouched. Its name holds "coco", which silences the warning about COCO's
    # non-contiguous ids.
    scratch = f"{name}:coco_categories"
    MetadataCatalog.pop(scratch, None)
    try:
        records = load_coco_json(json_file, image_root, scratch, extra_annotation_keys=["id"])
        return records, list(MetadataCatalog.get(scratch).thing_classes)
    finally:
        MetadataCatalog.pop(scratch, None)


def load_coco_json_mapped(
    json_file: str, image_root: str, mapping: dict, target_classes, dataset_name: str = "coco"
) -> list:
    """
    Load a COCO instances file, keeping the objects of mapped categories, labelled with the
    target dataset's classes.

    Args:
        json_file, image_root: as for detectron2's ``load_coco_json``.
        mapping: COCO category name -> target class name (see
            :mod:`sgnet.data.datasets.coco_mapping`); categories are matched by the names of the
            file's ``categories``, whatever their ids.
        target_classes: the target dataset's class names; a record's ``category_id`` is an index
            into them.
        dataset_name: named in the log.

    Returns:
        list[dict]: detectron2 image dicts (see the module docstring), in ``load_coco_json``'s
        order, only images holding at least one kept object.

    Raises:
        MissingInput, InvalidInput: the json is missing, or malformed
            (:func:`sgnet.formats.coco.check_coco_instances`): the message names the file, the
            image or annotation id and the problem.
    """
    target_classes = list(target_classes)
    unknown = sorted(set(mapping.values()) - set(target_classes))
    if unknown:
        raise InvalidInput(f"{dataset_name}: mapped classes {unknown} are not target classes")
    # load_coco_json trains on masks that do not cover their image and ends in a bare KeyError
    # on a missing field: check the whole file first, in the YouTube-VIS readers' terms.
    check_coco_instances_file(json_file)
    records, names = _coco_categories(json_file, image_root, dataset_name)
    # file category index -> target contiguous id, None when unmapped
    target_of = [target_classes.index(mapping[n]) if n in mapping else None for n in names]
    kept_records, dropped = [], Counter()
    for record in records:
        objects = []
        for obj in record["annotations"]:
            target = target_of[obj["category_id"]]
            if obj.get("iscrowd", 0):
                dropped["crowd"] += 1
            elif target is None:
                dropped[names[obj["category_id"]]] += 1
            else:
                objects.append(dict(obj, category_id=target, iscrowd=0))
        if objects:
            kept_records.append(dict(record, annotations=objects))
    kept = sum(len(r["annotations"]) for r in kept_records)
    logger.info(
        f"{dataset_name}: {kept} objects of mapped categories in {len(kept_records)} of "
        f"{len(records)} images of {json_file}; dropped {dropped.pop('crowd', 0)} crowd objects "
        f"and {sum(dropped.values())} of unmapped categories (most: {dropped.most_common(5)})"
    )
    return kept_records


def register_coco_mapped_instances(
    name: str, metadata: dict, mapping: dict, json_file: str, image_root: str, *, loader=None
) -> None:
    """
    Register a COCO-format image dataset mapped onto a video dataset's classes.

    Args:
        name: dataset name, e.g. "coco_ytvis_2019_train".
        metadata: the *target* dataset's metadata; its ``thing_classes`` are the classes
            ``mapping`` maps to, and what the model, evaluator and visualizer see.
        mapping, json_file, image_root: see :func:`load_coco_json_mapped`. Nothing is read at
            registration.
        loader: what ``DatasetCatalog.get(name)`` calls; defaults to
            ``load_coco_json_mapped(json_file, image_root, mapping, thing_classes, name)``.
    """
    classes = metadata["thing_classes"]
    DatasetCatalog.register(
        name,
        loader or (lambda: load_coco_json_mapped(json_file, image_root, mapping, classes, name)),
    )
    # image_dataset: its records are images, to be paired by COCOPseudoPairMapper (video
    # datasets' records are videos); see is_image_dataset.
    MetadataCatalog.get(name).set(
        json_file=json_file, image_root=image_root, image_dataset=True, **metadata
    )


def is_image_dataset(name: str) -> bool:
    """Whether the registered dataset ``name`` holds images (made into pseudo clip pairs for
    training) rather than videos."""
    return bool(MetadataCatalog.get(name).get("image_dataset", False))
