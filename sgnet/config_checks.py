"""Checks of a loaded config, so that a wrong setting fails at once, in one line naming the key,
instead of running with a silently wrong meaning (``DETECTIONS_PER_IMAGE -1`` keeping all but one
detection) or failing hours later (``NUM_CLASSES`` that the evaluation cannot map).

- :func:`check_config_values`: ranges and choices of SG-Net's keys; run by ``load_config``.
- :func:`check_dataset_classes`: ``MODEL.SGNET.NUM_CLASSES`` against the datasets' classes, and
  the training and test datasets' class lists against each other; run by the apps before
  anything is built (with the registered classes) and by the loaders once a dataset's annotation
  file has set its classes.

The keys themselves are documented in :mod:`sgnet.config`.
"""
import math
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

from detectron2.data import DatasetCatalog, MetadataCatalog

from .errors import InvalidInput

__all__ = ["check_config_values", "check_dataset_classes", "dataset_classes", "training_classes", "first_difference"]


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer_at_least(low: int) -> Tuple[Callable, str]:
    return (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low), f"an integer >= {low}"


def _in_interval(low: float, high: float, closed_low: bool, closed_high: bool) -> Tuple[Callable, str]:
    def ok(v):
        return _number(v) and (low <= v if closed_low else low < v) and (v <= high if closed_high else v < high)

    return ok, f"a number in {'[' if closed_low else '('}{low}, {high}{']' if closed_high else ')'}"


def _at_least(low: float) -> Tuple[Callable, str]:
    return (lambda v: _number(v) and v >= low), f"a number >= {low}"


def _one_of(*choices) -> Tuple[Callable, str]:
    return (lambda v: v in choices), f"one of {list(choices)}"


def _ascending_integers_at_least(low: int) -> Tuple[Callable, str]:
    def ok(v):
        return len(v) > 0 and all(isinstance(g, int) and g >= low for g in v) and list(v) == sorted(set(v))

    return ok, f"a non-empty list of ascending integers >= {low}"


def _ascending_numbers() -> Tuple[Callable, str]:
    return (lambda v: all(_number(a) for a in v) and list(v) == sorted(v)), "a list of ascending numbers"


# key: (test, what the value must be). yacs has already checked the types against the defaults.
_RULES = {
    "MODEL.SGNET.NUM_CLASSES": _integer_at_least(1),
    "MODEL.SGNET.NUM_CLS_CONVS": _integer_at_least(0),
    "MODEL.SGNET.NUM_BOX_CONVS": _integer_at_least(0),
    "MODEL.SGNET.HEAD_NORM": _one_of("GN", ""),
    "MODEL.SGNET.PRIOR_PROB": _in_interval(0, 1, False, False),
    "MODEL.SGNET.BOX_REG_ACTIVATION": _one_of("relu", "exp"),
    "MODEL.SGNET.ALIGN_DEFORM_GROUPS": _integer_at_least(1),
    "MODEL.SGNET.CENTER_SAMPLING_RADIUS": _at_least(0),
    "MODEL.SGNET.FOCAL_LOSS_ALPHA": _in_interval(0, 1, True, True),
    "MODEL.SGNET.FOCAL_LOSS_GAMMA": _at_least(0),
    "MODEL.SGNET.LOSS_WEIGHT_CLS": _at_least(0),
    "MODEL.SGNET.LOSS_WEIGHT_BOX": _at_least(0),
    "MODEL.SGNET.LOSS_WEIGHT_CENTERNESS": _at_least(0),
    "MODEL.SGNET.PRE_NMS_TOPK": _integer_at_least(1),
    # A score threshold of 1 or more keeps nothing (scores are sigmoid probabilities).
    "MODEL.SGNET.SCORE_THRESH_TEST": _in_interval(0, 1, True, False),
    "MODEL.SGNET.NMS_THRESH_TEST": _in_interval(0, 1, False, True),
    # 0 or less has no meaning (a negative count once kept all but that many detections).
    "MODEL.SGNET.DETECTIONS_PER_IMAGE": _integer_at_least(1),
    "MODEL.SGNET.MASK.BASIS_HIDDEN_DIM": _integer_at_least(1),
    "MODEL.SGNET.MASK.NUM_BASES": _integer_at_least(1),
    "MODEL.SGNET.MASK.GRANULARITIES": _ascending_integers_at_least(1),
    "MODEL.SGNET.MASK.GRANULARITY_AREAS": _ascending_numbers(),
    "MODEL.SGNET.MASK.TEST_BOX_EXPANSION": _at_least(1.0),
    "MODEL.SGNET.MASK.LOSS_WEIGHT": _at_least(0),
    "MODEL.SGNET.MASK.MAX_TRAIN_INSTANCES": _integer_at_least(0),
    "MODEL.SGNET.MASK.THRESHOLD": _in_interval(0, 1, False, False),
    "MODEL.SGNET.TRACK.NUM_CONVS": _integer_at_least(0),
    "MODEL.SGNET.TRACK.EMBED_DIM": _integer_at_least(1),
    "MODEL.SGNET.TRACK.BOX_JITTER": _in_interval(0, 1, True, False),
    "MODEL.SGNET.TRACK.LOSS_WEIGHT": _at_least(0),
    "MODEL.SGNET.TRACKER.DUPLICATE_POLICY": _one_of("drop", "new"),
    "MODEL.SGNET.TRACKER.MAX_AGE": _integer_at_least(0),
    "INPUT.SAMPLING_FRAME_RANGE": _integer_at_least(0),
    "INPUT.PSEUDO_PAIR.MAX_TRANSLATION": _in_interval(0, 0.5, True, True),
    "DATALOADER.SAMPLING_UNIT": _one_of("frame", "video"),
    "SOLVER.OPTIMIZER": _one_of("SGD", "ADAMW"),
    "SOLVER.AMP.PRECISION": _one_of("float16", "bfloat16"),
    "TEST.TRACK_LABEL_RULE": _one_of("vote", "score_sum"),
    "TEST.CLASSES_PER_TRACK": _integer_at_least(1),
}


def _value(cfg, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def _problems(cfg) -> Iterable[str]:
    for key, (ok, expected) in _RULES.items():
        value = _value(cfg, key)
        if not ok(value):
            yield f"{key} {value!r}: must be {expected}"
    sg = cfg.MODEL.SGNET
    if len(sg.MASK.GRANULARITY_AREAS) != len(sg.MASK.GRANULARITIES) - 1:
        yield (
            f"MODEL.SGNET.MASK.GRANULARITY_AREAS {list(sg.MASK.GRANULARITY_AREAS)}: needs one threshold between "
            f"each two of MODEL.SGNET.MASK.GRANULARITIES {list(sg.MASK.GRANULARITIES)}"
        )
    scale = list(cfg.INPUT.PSEUDO_PAIR.SCALE)
    if not (len(scale) == 2 and all(_number(s) for s in scale) and 1.0 <= scale[0] <= scale[1]):
        yield f"INPUT.PSEUDO_PAIR.SCALE {scale}: must be (low, high) zooms with 1.0 <= low <= high"
    if cfg.TEST.CLASSES_PER_TRACK > 1 and not sg.NMS_CLASS_AGNOSTIC:
        yield "TEST.CLASSES_PER_TRACK > 1 needs MODEL.SGNET.NMS_CLASS_AGNOSTIC True (one detection per location)"
    if cfg.TEST.CLASSES_PER_TRACK > sg.NUM_CLASSES:
        yield f"TEST.CLASSES_PER_TRACK {cfg.TEST.CLASSES_PER_TRACK}: more than MODEL.SGNET.NUM_CLASSES {sg.NUM_CLASSES}"
    class_map = list(sg.FCOS_CLASS_MAP)
    if class_map and (len(class_map) != sg.NUM_CLASSES or min(class_map) < -1):
        yield (
            f"MODEL.SGNET.FCOS_CLASS_MAP {class_map}: needs one entry per class (MODEL.SGNET.NUM_CLASSES "
            f"{sg.NUM_CLASSES}), each a checkpoint class index or -1"
        )
    ratios = list(cfg.DATALOADER.DATASET_RATIOS)
    if ratios and (len(ratios) != len(cfg.DATASETS.TRAIN) or not all(_number(r) and r > 0 for r in ratios)):
        yield (
            f"DATALOADER.DATASET_RATIOS {ratios}: needs one positive share per DATASETS.TRAIN entry "
            f"{tuple(cfg.DATASETS.TRAIN)}"
        )


def check_config_values(cfg, source: str = "the config", overridden: Sequence[str] = ()) -> None:
    """Raise :class:`InvalidInput` naming the first key out of its range, what it must be, and
    where its value came from: ``source``, or the command line for a key in ``overridden``."""
    for problem in _problems(cfg):
        key = problem.split(" ", 1)[0]
        raise InvalidInput(f"{'command-line override' if key in overridden else source}: {problem}")


def dataset_classes(name: str) -> Optional[List[str]]:
    """The registered dataset's class names as known now (registered defaults, or its annotation
    file's once loaded), None if its metadata has none."""
    classes = MetadataCatalog.get(name).get("thing_classes", None)
    return None if classes is None else list(classes)


def training_classes(cfg) -> Optional[dict]:
    """What a checkpoint records of the classes the model learns: ``{"names": [...],
    "dataset_ids": [...]}``, the class names of ``DATASETS.TRAIN[0]`` (the training sets agree,
    :func:`check_dataset_classes`) and their category ids in its annotation file, in the model's
    label order; None when its classes are not known."""
    if not cfg.DATASETS.TRAIN:
        return None
    metadata = MetadataCatalog.get(cfg.DATASETS.TRAIN[0])
    names = metadata.get("thing_classes", None)
    if names is None:
        return None
    to_label = metadata.get("thing_dataset_id_to_contiguous_id", None) or {}
    ids_by_label = {label: dataset_id for dataset_id, label in to_label.items()}
    return {"names": list(names), "dataset_ids": [int(ids_by_label[i]) if i in ids_by_label else None for i in range(len(names))]}


def first_difference(a: Sequence[str], b: Sequence[str]) -> str:
    """Where two class lists part: a phrase for messages."""
    for index, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"class {index} is {x!r} in one and {y!r} in the other"
    return f"one has {len(a)} classes, the other {len(b)}"


def check_model_classes(
    recorded: Optional[List[str]], source: str, num_classes: Optional[int], tests: dict, hint: str
) -> None:
    """
    Refuse the class names a model records (``recorded``, from ``source``; None: it records
    none) where they cannot be what its labels mean.

    Args:
        num_classes: ``MODEL.SGNET.NUM_CLASSES`` of the model the weights are loaded into, whose
            classifier is built anew when the counts differ (its labels then mean nothing yet);
            None where the model's own file fixes the count (an exported model).
        tests: test dataset name -> its class names (None when unknown): other names are refused.
        hint: what the user can do about other names, ending the message.
    """
    if recorded is None:
        return
    if num_classes is not None and len(recorded) != num_classes:
        raise InvalidInput(
            f"{source} records {len(recorded)} classes ({', '.join(recorded)}) but MODEL.SGNET.NUM_CLASSES is "
            f"{num_classes}: its classifier would not be loaded and its labels would mean nothing; "
            f"set MODEL.SGNET.NUM_CLASSES {len(recorded)}"
        )
    for name, classes in tests.items():
        if classes is not None and classes != recorded:
            raise InvalidInput(
                f"DATASETS.TEST {name!r} and {source} name their classes differently ({first_difference(recorded, classes)}): "
                f"the model's labels would mean other classes; {hint}"
            )


def check_dataset_classes(cfg, required: Sequence[str] = ("TRAIN", "TEST")) -> None:
    """
    Raise :class:`InvalidInput` when a dataset of ``DATASETS.<split>`` for a split in
    ``required`` is not registered, when a registered training or test dataset's class count
    differs from ``MODEL.SGNET.NUM_CLASSES``, or when the training and test datasets name their
    classes differently (in order or names: a model's label i would then be another class).
    Datasets whose classes are not known yet (no ``thing_classes`` in their metadata) are checked
    when loaded: the loaders call this again then.
    """
    registered = set(DatasetCatalog.list())
    for split in required:
        for name in getattr(cfg.DATASETS, split):
            if name not in registered:
                raise InvalidInput(
                    f"DATASETS.{split}: {name!r} is not a registered dataset; register it first "
                    "(DATASETS.REGISTER, or sgnet.data.register_ytvis_instances) or pick one of sgnet's builtin splits"
                )
    reference = None  # (split, dataset, classes) the others must agree with
    for split in ("TRAIN", "TEST"):
        for name in getattr(cfg.DATASETS, split):
            classes = dataset_classes(name) if name in registered else None
            if classes is None:
                continue
            if len(classes) != cfg.MODEL.SGNET.NUM_CLASSES:
                raise InvalidInput(
                    f"MODEL.SGNET.NUM_CLASSES {cfg.MODEL.SGNET.NUM_CLASSES} but DATASETS.{split} {name!r} has "
                    f"{len(classes)} classes ({', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''}): "
                    f"set MODEL.SGNET.NUM_CLASSES {len(classes)}"
                )
            if reference is None:
                reference = (split, name, classes)
            elif classes != reference[2]:
                raise InvalidInput(
                    f"DATASETS.{reference[0]} {reference[1]!r} and DATASETS.{split} {name!r} name their classes "
                    f"differently ({first_difference(reference[2], classes)}): the model's labels would mean "
                    "other classes"
                )
