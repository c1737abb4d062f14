"""Joint training on video and image datasets: one mapper for records of both kinds."""

from detectron2.config import configurable

from .dataset_mapper import YTVISPairDatasetMapper
from .pseudo_pairs import COCOPseudoPairMapper

__all__ = ["JointPairMapper", "JOINT_RECORD_KINDS"]

# What a record of a joint training dataset is: a video dict or an image dict.
JOINT_RECORD_KINDS = ("video", "image")


class JointPairMapper:
    """
    Training mapper over a dataset that mixes video and image records, each element a
    ``(kind, record)`` pair tagged by the dataset it comes from (:func:`build_sgnet_train_loader`
    tags them; a record's keys are not used to guess its kind): "video" records go to
    ``video_mapper`` (a :class:`YTVISPairDatasetMapper`), "image" records to ``image_mapper`` (a
    :class:`COCOPseudoPairMapper`). Both output the same clip-pair dict, so one batch can hold
    both kinds.
    """

    @configurable
    def __init__(self, *, video_mapper, image_mapper):
        self._mappers = dict(zip(JOINT_RECORD_KINDS, (video_mapper, image_mapper)))

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        return {
            "video_mapper": YTVISPairDatasetMapper(cfg, is_train),
            "image_mapper": COCOPseudoPairMapper(cfg, is_train),
        }

    def __call__(self, tagged_record) -> dict:
        kind, record = tagged_record
        if kind not in self._mappers:
            raise ValueError(f"record kind must be one of {JOINT_RECORD_KINDS}, got {kind!r}")
        return self._mappers[kind](record)
