"""Builtin datasets, registered on ``import sgnet`` under ``$DETECTRON2_DATASETS`` (default
``./datasets``), in the layout detectron2 video projects use::

    datasets/ytvis_2019/{train,valid}.json  + {train,valid}/JPEGImages/<video>/<frame>.jpg
    datasets/ytvis_2021/{train,valid}.json  + ...
    datasets/ytvis_2022/valid.json          + valid/JPEGImages/...
    datasets/ovis/annotations/annotations_{train,valid}.json + {train,valid}/<video>/<frame>.jpg
    datasets/sgnet_toy/{train,valid}.json   + ...   (generated on first use)
    datasets/coco/annotations/instances_train2017.json + coco/train2017/<image>.jpg  (detectron2's)

Local evaluation without the benchmark server: ``ytvis_2019_train_sub`` / ``ytvis_2019_val_sub``
(and the same for ``ytvis_2021`` and ``ovis``) divide the train split's videos by the fixed rule of
:mod:`sgnet.formats.video_split` with fraction 0.1 and seed 0 (``SUB_SPLIT_FRACTION``,
``SUB_SPLIT_SEED``): ``val_sub`` is the held-out ~10% of the videos, ``train_sub`` the rest; the
same on every machine, and the same parts as ``python -m sgnet.data.convert split train.json
--val-fraction 0.1 --seed 0`` writes. The evaluator scores ``val_sub`` against those videos'
ground truth only.

The COCO 2017 train images are registered three times, as ``coco_ytvis_2019_train``,
``coco_ytvis_2021_train`` and ``coco_ovis_train``: image datasets whose categories are mapped onto
the video dataset's classes by :mod:`.coco_mapping`, made into pseudo clip pairs for training.

Registration touches no file. The category lists are metadata defaults; the categories of a video
split's json win when it is loaded (a COCO split keeps its target's classes).

Names, and other VIS plugins
----------------------------
Other detectron2 video projects (Mask2Former's ``mask2former_video`` and those built on it)
register the same YouTube-VIS and OVIS names, and detectron2 refuses a name registered twice.
So every split above except ``sgnet_toy_*`` has two names:

* ``sgnet_<name>`` (``sgnet_ytvis_2019_train``, ``sgnet_ovis_val``,
  ``sgnet_coco_ytvis_2019_train``, ...): always sgnet's loader and metadata. Configs that must
  work whatever else is imported use these.
* ``<name>`` (``ytvis_2019_train``, ...): sgnet's too when the name is free at ``import sgnet``.
  When another package registered it before, it keeps that package's loader and metadata
  (sgnet does not touch it) and one warning lists the names left to the other package.

Import order: import the other package first, then sgnet. In the other order the other
package's registration fails (detectron2 asserts on a name registered twice, and sgnet cannot
hook into a registration that happens after it without patching detectron2). Where sgnet has to
come first, call :func:`unregister_plain_names` between the two imports: the plain names are
then free for the other package, the ``sgnet_`` names stay sgnet's.
"""

import functools
import logging
import os

from detectron2.data import DatasetCatalog, MetadataCatalog

from ...errors import MissingInput
from ...formats.video_split import VideoSplit
from ..synthetic import SYNTHETIC_CLASSES, ensure_toy_dataset, toy_dataset_paths
from .coco import load_coco_json_mapped, register_coco_mapped_instances
from .coco_mapping import COCO_MAPPINGS
from .ytvis import load_ytvis_json, register_ytvis_instances, thing_colors_for

__all__ = [
    "register_all_ytvis",
    "register_all_coco_mapped",
    "register_sgnet_toy",
    "unregister_plain_names",
    "datasets_root",
    "builtin_metadata",
    "toy_dataset_paths",
    "SYNTHETIC_CLASSES",
    "ALIAS_PREFIX",
    "SUB_SPLIT_FRACTION",
    "SUB_SPLIT_SEED",
]

logger = logging.getLogger(__name__)

YTVIS_2019_CLASSES = (
    "person", "giant_panda", "lizard", "parrot", "skateboard", "sedan", "ape", "dog", "snake",
    "monkey", "hand", "rabbit", "duck", "cat", "cow", "fish", "train", "horse", "turtle", "bear",
    "motorbike", "giraffe", "leopard", "fox", "deer", "owl", "surfboard", "airplane", "truck",
    "zebra", "tiger", "elephant", "snowboard", "boat", "shark", "mouse", "frog", "eagle",
    "earless_seal", "tennis_racket",
)  # fmt: skip
YTVIS_2021_CLASSES = (
    "airplane", "bear", "bird", "boat", "car", "cat", "cow", "deer", "dog", "duck",
    "earless_seal", "elephant", "fish", "flying_disc", "fox", "frog", "giant_panda", "giraffe",
    "horse", "leopard", "lizard", "monkey", "motorbike", "mouse", "parrot", "person", "rabbit",
    "shark", "skateboard", "snake", "snowboard", "squirrel", "surfboard", "tennis_racket", "tiger",
    "train", "truck", "turtle", "whale", "zebra",
)  # fmt: skip
OVIS_CLASSES = (
    "Person", "Bird", "Cat", "Dog", "Horse", "Sheep", "Cow", "Elephant", "Bear", "Zebra",
    "Giraffe", "Poultry", "Giant_panda", "Lizard", "Parrot", "Monkey", "Rabbit", "Tiger", "Fish",
    "Turtle", "Bicycle", "Motorcycle", "Airplane", "Boat", "Vehical",
)  # fmt: skip

# dataset: (category names, download page)
_DATASETS = {
    "ytvis_2019": (YTVIS_2019_CLASSES, "https://youtube-vos.org/dataset/vis/"),
    "ytvis_2021": (YTVIS_2021_CLASSES, "https://youtube-vos.org/dataset/vis/"),
    "ytvis_2022": (YTVIS_2021_CLASSES, "https://youtube-vos.org/dataset/vis/"),  # same categories
    "ovis": (OVIS_CLASSES, "https://songbai.site/ovis/"),
}
# split: (json file, image root), relative to the datasets root
_BUILTIN_SPLITS = {
    "ytvis_2019_train": ("ytvis_2019/train.json", "ytvis_2019/train/JPEGImages"),
    "ytvis_2019_val": ("ytvis_2019/valid.json", "ytvis_2019/valid/JPEGImages"),
    "ytvis_2021_train": ("ytvis_2021/train.json", "ytvis_2021/train/JPEGImages"),
    "ytvis_2021_val": ("ytvis_2021/valid.json", "ytvis_2021/valid/JPEGImages"),
    "ytvis_2022_val": ("ytvis_2022/valid.json", "ytvis_2022/valid/JPEGImages"),
    "ovis_train": ("ovis/annotations/annotations_train.json", "ovis/train"),
    "ovis_val": ("ovis/annotations/annotations_valid.json", "ovis/valid"),
}
# Local evaluation without the benchmark server: a train split's videos divided by the fixed rule
# of sgnet.formats.video_split, about 10% held out. sub-split: (the split it divides, held out?)
SUB_SPLIT_FRACTION, SUB_SPLIT_SEED = 0.1, 0
_SUB_SPLITS = {
    f"{dataset}_{part}_sub": (f"{dataset}_train", part == "val")
    for dataset in ("ytvis_2019", "ytvis_2021", "ovis")
    for part in ("train", "val")
}
_TOY_SPLITS = {"sgnet_toy_train": "train", "sgnet_toy_val": "val"}
# COCO 2017 train (json file, image root) and the splits mapping it onto a video dataset's classes
_COCO_TRAIN = ("coco/annotations/instances_train2017.json", "coco/train2017")
_COCO_DOWNLOAD_PAGE = "https://cocodataset.org/#download"
_COCO_MAPPED_SPLITS = {
    "coco_ytvis_2019_train": "ytvis_2019",
    "coco_ytvis_2021_train": "ytvis_2021",
    "coco_ovis_train": "ovis",
}


# The prefix of the names that are sgnet's whatever else registered the plain ones.
ALIAS_PREFIX = "sgnet_"
# The names registered by this module: registering a split again (another root) replaces them.
_registered_here = set()


def builtin_metadata(classes) -> dict:
    """Metadata of a dataset whose json category ids are 1..len(classes), in this order."""
    return {
        "thing_classes": list(classes),
        "thing_colors": thing_colors_for(len(classes)),
        "thing_dataset_id_to_contiguous_id": {i + 1: i for i in range(len(classes))},
    }


def _dataset_of(split_name: str) -> str:
    return split_name.rsplit("_", 1)[0]  # "ytvis_2019_train" -> "ytvis_2019"


def _check_downloaded(name, download_page, json_file, image_root):
    for path in (json_file, image_root):
        if not os.path.exists(path):
            raise MissingInput(
                f"Dataset '{name}' expects {path}, which does not exist. Download the data from "
                f"{download_page} and place it under $DETECTRON2_DATASETS (default ./datasets): "
                f"annotations at {json_file}, images in {image_root}."
            )


def _load_downloaded_split(name, split, json_file, image_root, video_split):
    _check_downloaded(name, _DATASETS[_dataset_of(split)][1], json_file, image_root)
    return load_ytvis_json(json_file, image_root, name, video_split)


def _load_coco_mapped_split(name, target, json_file, image_root):
    _check_downloaded(name, _COCO_DOWNLOAD_PAGE, json_file, image_root)
    return load_coco_json_mapped(
        json_file, image_root, COCO_MAPPINGS[target], _DATASETS[target][0], name
    )


def _register_with_alias(split: str, register, held_elsewhere: list) -> None:
    """``register(name)`` under ``sgnet_<split>`` and under ``split``, except a name another
    package registered: that one is left as it is and appended to ``held_elsewhere``."""
    for name in (ALIAS_PREFIX + split, split):
        if name in DatasetCatalog.list():
            if name not in _registered_here:
                held_elsewhere.append(name)
                continue
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        register(name)
        _registered_here.add(name)


def _report_held_elsewhere(names: list) -> None:
    if names:
        logger.warning(
            f"{', '.join(names)}: registered already by another package, kept as they are; "
            f"sgnet's loaders are {', '.join(ALIAS_PREFIX + n for n in names)}"
        )


def _register_video_split(split, json_file, image_root, name, video_split=None):
    """Register ``name``: the downloaded ``split``, or the part ``video_split`` of its videos."""
    register_ytvis_instances(
        name,
        builtin_metadata(_DATASETS[_dataset_of(split)][0]),
        json_file,
        image_root,
        loader=functools.partial(_load_downloaded_split, name, split, json_file, image_root, video_split),
        video_split=video_split,
    )


def register_all_ytvis(root: str) -> None:
    """Register the YouTube-VIS 2019/2021/2022 and OVIS splits and the ``*_sub`` parts of their
    train splits, to be read under ``root``, under their ``sgnet_`` and plain names (see the
    module docstring). Registering again replaces sgnet's earlier registration."""
    held_elsewhere = []
    for split, (json_name, image_dir) in _BUILTIN_SPLITS.items():
        json_file, image_root = os.path.join(root, json_name), os.path.join(root, image_dir)
        register = functools.partial(_register_video_split, split, json_file, image_root)
        _register_with_alias(split, register, held_elsewhere)
    for sub_split, (split, is_held_out) in _SUB_SPLITS.items():
        json_file, image_root = (os.path.join(root, path) for path in _BUILTIN_SPLITS[split])
        video_split = VideoSplit(SUB_SPLIT_FRACTION, SUB_SPLIT_SEED, held_out=is_held_out)
        register = functools.partial(_register_video_split, split, json_file, image_root, video_split=video_split)
        _register_with_alias(sub_split, register, held_elsewhere)
    _report_held_elsewhere(held_elsewhere)


def _register_coco_mapped_split(target, json_file, image_root, name):
    register_coco_mapped_instances(
        name,
        builtin_metadata(_DATASETS[target][0]),
        COCO_MAPPINGS[target],
        json_file,
        image_root,
        loader=functools.partial(_load_coco_mapped_split, name, target, json_file, image_root),
    )


def register_all_coco_mapped(root: str) -> None:
    """Register ``coco_ytvis_2019_train``, ``coco_ytvis_2021_train`` and ``coco_ovis_train``: COCO
    2017 train under ``root`` with the target dataset's classes and metadata, under their
    ``sgnet_`` and plain names (see the module docstring). Registering again replaces sgnet's
    earlier registration."""
    json_file, image_root = (os.path.join(root, path) for path in _COCO_TRAIN)
    held_elsewhere = []
    for split, target in _COCO_MAPPED_SPLITS.items():
        register = functools.partial(_register_coco_mapped_split, target, json_file, image_root)
        _register_with_alias(split, register, held_elsewhere)
    _report_held_elsewhere(held_elsewhere)


def unregister_plain_names() -> None:
    """Remove sgnet's registrations under the plain names (``ytvis_2019_train``, ...), so that a
    package imported after sgnet can register them; the ``sgnet_`` names stay sgnet's."""
    for name in sorted(_registered_here):
        if not name.startswith(ALIAS_PREFIX):
            _registered_here.discard(name)
            if name in DatasetCatalog.list():
                DatasetCatalog.remove(name)
                MetadataCatalog.remove(name)


def _load_toy_split(name, dataset_dir, split):
    paths = ensure_toy_dataset(dataset_dir)
    return load_ytvis_json(paths[f"{split}_json"], paths[f"{split}_root"], name)


def register_sgnet_toy(root: str) -> None:
    """Register ``sgnet_toy_train`` / ``sgnet_toy_val``, the synthetic dataset, generated into
    ``root/sgnet_toy`` the first time one of them is loaded."""
    dataset_dir = os.path.abspath(os.path.join(root, "sgnet_toy"))
    paths = toy_dataset_paths(dataset_dir)
    for name, split in _TOY_SPLITS.items():
        register_ytvis_instances(
            name,
            builtin_metadata(SYNTHETIC_CLASSES),
            paths[f"{split}_json"],
            paths[f"{split}_root"],
            loader=functools.partial(_load_toy_split, name, dataset_dir, split),
        )


def datasets_root() -> str:
    """Where the builtin datasets are read: ``$DETECTRON2_DATASETS``, default ``./datasets``."""
    return os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))


_root = datasets_root()
register_all_ytvis(_root)
register_all_coco_mapped(_root)
register_sgnet_toy(_root)
