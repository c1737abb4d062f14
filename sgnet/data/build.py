"""SG-Net's training loader: detectron2's, over video datasets, image datasets, or both."""

import logging

from detectron2.data import build_detection_train_loader, get_detection_dataset_dicts
from detectron2.data.detection_utils import check_metadata_consistency

from ..config_checks import check_dataset_classes
from .dataset_mapper import YTVISPairDatasetMapper
from .datasets import get_ytvis_dataset_dicts, is_image_dataset
from .joint import JointPairMapper
from .pseudo_pairs import COCOPseudoPairMapper
from .samplers import (
    MixedDatasetTrainingSampler,
    build_ytvis_train_sampler,
    check_sampling_keys,
    video_repeat_counts,
)

__all__ = ["build_sgnet_train_loader"]

logger = logging.getLogger(__name__)


def build_sgnet_train_loader(cfg):
    """
    detectron2's training loader over ``cfg.DATASETS.TRAIN``.

    Without ``DATALOADER.DATASET_RATIOS`` the datasets must be all video datasets or all image
    datasets (e.g. the ``coco_*`` splits):

    - videos: (key, reference) frame pairs (:class:`YTVISPairDatasetMapper`), drawn per frame or
      per video (``DATALOADER.SAMPLING_UNIT``, :func:`build_ytvis_train_sampler`);
    - images: pseudo clip pairs (:class:`COCOPseudoPairMapper`) over detectron2's own image
      dataset (``get_detection_dataset_dicts``: images without a non-crowd object filtered, class
      histogram logged) and sampler (``DATALOADER.SAMPLER_TRAIN``); an image is one frame, so
      both sampling units draw every image equally often.

    With it, each dataset gets its share of the samples (:func:`build_joint_train_loader`), and
    the two kinds may be mixed.

    Once the datasets are loaded, their classes are checked against ``MODEL.SGNET.NUM_CLASSES``
    and the test datasets' (:func:`sgnet.config_checks.check_dataset_classes`).
    """
    loader = _build_train_loader(cfg)
    # The datasets are loaded now, with the classes of their annotation files.
    check_dataset_classes(cfg, required=())
    return loader


def _build_train_loader(cfg):
    names = list(cfg.DATASETS.TRAIN)
    if cfg.DATALOADER.DATASET_RATIOS:
        return build_joint_train_loader(cfg)
    image_datasets = [name for name in names if is_image_dataset(name)]
    if image_datasets and len(image_datasets) < len(names):
        raise ValueError(
            f"DATASETS.TRAIN {tuple(names)} mixes image datasets {image_datasets} with video "
            "datasets: set DATALOADER.DATASET_RATIOS (one share per dataset) to train on both"
        )
    if image_datasets:
        return build_detection_train_loader(cfg, mapper=COCOPseudoPairMapper(cfg, is_train=True))
    dataset = get_ytvis_dataset_dicts(names)
    # Draws per frame or per video (DATALOADER.SAMPLING_UNIT), not detectron2's per image.
    return build_detection_train_loader(
        cfg,
        mapper=YTVISPairDatasetMapper(cfg, is_train=True),
        dataset=dataset,
        sampler=build_ytvis_train_sampler(cfg, dataset),
    )


def _check_dataset_ratios(ratios: list, names: list) -> None:
    if len(ratios) != len(names):
        raise ValueError(
            f"DATALOADER.DATASET_RATIOS {ratios} has {len(ratios)} entries but DATASETS.TRAIN "
            f"{tuple(names)} has {len(names)}: give one share per dataset"
        )
    if not all(ratio > 0 for ratio in ratios):
        raise ValueError(f"DATALOADER.DATASET_RATIOS must all be positive, got {ratios}")


def build_joint_train_loader(cfg):
    """
    detectron2's training loader over the datasets of ``cfg.DATASETS.TRAIN``, video and image
    datasets possibly mixed, dataset i drawn for ``DATALOADER.DATASET_RATIOS[i]`` (normalised)
    of the samples (:class:`MixedDatasetTrainingSampler`): within a video dataset per frame or
    per video (``DATALOADER.SAMPLING_UNIT``), within an image dataset every image equally often.
    Every record is tagged with its dataset's kind for :class:`JointPairMapper`. The datasets must
    share their classes (``thing_classes``), e.g. ``ytvis_2019_train`` and
    ``coco_ytvis_2019_train``.
    """
    names = list(cfg.DATASETS.TRAIN)
    ratios = [float(ratio) for ratio in cfg.DATALOADER.DATASET_RATIOS]
    _check_dataset_ratios(ratios, names)
    unit = check_sampling_keys(cfg)
    tagged_records, repeat_counts = [], []
    for name in names:
        if is_image_dataset(name):
            records = get_detection_dataset_dicts(
                [name], filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS
            )
            kind, counts = "image", [1] * len(records)
        else:
            records = get_ytvis_dataset_dicts([name])
            kind, counts = "video", video_repeat_counts(unit, records)
        tagged_records.extend((kind, record) for record in records)
        repeat_counts.append(counts)
        logger.info(f"Joint training: {name} ({kind}s), {len(records)} records, {sum(counts)} draws per pass")
    # After loading: a video dataset's classes are set from its annotation file when it loads.
    check_metadata_consistency("thing_classes", names)
    return build_detection_train_loader(
        cfg,
        mapper=JointPairMapper(cfg, is_train=True),
        dataset=tagged_records,
        sampler=MixedDatasetTrainingSampler(repeat_counts, ratios),
    )
