"""SG-Net's training loader: detectron2's, over video datasets or image datasets."""

from detectron2.data import build_detection_train_loader

from .dataset_mapper import YTVISPairDatasetMapper
from .datasets import get_ytvis_dataset_dicts, is_image_dataset
from .pseudo_pairs import COCOPseudoPairMapper
from .samplers import build_ytvis_train_sampler

__all__ = ["build_sgnet_train_loader"]


def build_sgnet_train_loader(cfg):
    """
    detectron2's training loader over ``cfg.DATASETS.TRAIN``, which must be all video datasets
    or all image datasets (e.g. the ``coco_*`` splits):

    - videos: (key, reference) frame pairs (:class:`YTVISPairDatasetMapper`), drawn per frame or
      per video (``DATALOADER.SAMPLING_UNIT``, :func:`build_ytvis_train_sampler`);
    - images: pseudo clip pairs (:class:`COCOPseudoPairMapper`) over detectron2's own image
      dataset (``get_detection_dataset_dicts``: images without a non-crowd object filtered, class
      histogram logged) and sampler (``DATALOADER.SAMPLER_TRAIN``); an image is one frame, so
      both sampling units draw every image equally often.
    """
    names = list(cfg.DATASETS.TRAIN)
    image_datasets = [name for name in names if is_image_dataset(name)]
    if image_datasets and len(image_datasets) < len(names):
        raise ValueError(
            f"DATASETS.TRAIN {tuple(names)} mixes image datasets {image_datasets} with video "
            "datasets: training on both at once is not supported yet; use one kind"
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
