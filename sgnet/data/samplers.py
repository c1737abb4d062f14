"""Training samplers over video dicts: which video each training sample comes from."""
import logging
from typing import List, Optional, Sequence

import torch
from detectron2.data.samplers import TrainingSampler

from .datasets.ytvis import trainable_frame_indices

__all__ = ["RepeatCountTrainingSampler", "build_ytvis_train_sampler", "SAMPLING_UNITS"]

# DATALOADER.SAMPLING_UNIT: what one draw is uniform over.
SAMPLING_UNITS = ("frame", "video")

logger = logging.getLogger(__name__)


class RepeatCountTrainingSampler(TrainingSampler):
    """
    detectron2's :class:`TrainingSampler` over a dataset in which element i is listed
    ``repeat_counts[i]`` times: an infinite stream of passes, each a fresh random permutation of
    all ``sum(repeat_counts)`` slots, yielding the element behind each slot. Every pass therefore
    draws element i exactly ``repeat_counts[i]`` times (exactly proportional, unlike the stochastic
    rounding of detectron2's ``RepeatFactorTrainingSampler``). Seeding and sharding across ranks
    are TrainingSampler's: rank r of w yields positions r, r + w, ... of the one shared stream.
    With all counts 1 the stream is TrainingSampler's own for the same seed.
    """

    def __init__(self, repeat_counts: Sequence[int], seed: Optional[int] = None):
        """
        Args:
            repeat_counts: (N,) non-negative ints, one per dataset element, not all 0.
            seed: the shuffle's seed, the same on every rank; None draws one shared by all ranks
                (``comm.shared_random_seed``), as TrainingSampler does.
        """
        counts = torch.as_tensor(repeat_counts, dtype=torch.long)
        if counts.ndim != 1 or len(counts) == 0 or bool((counts < 0).any()) or int(counts.sum()) == 0:
            raise ValueError(f"repeat_counts must be N >= 1 non-negative ints, not all 0; got {list(repeat_counts)}")
        super().__init__(int(counts.sum()), shuffle=True, seed=seed)
        # (S,) the dataset element behind each of the S slots of a pass.
        self._element_of_slot: List[int] = torch.repeat_interleave(torch.arange(len(counts)), counts).tolist()

    def _infinite_indices(self):
        # TrainingSampler's stream of slot permutations (its __iter__ shards it across ranks).
        for slot in super()._infinite_indices():
            yield self._element_of_slot[slot]


def build_ytvis_train_sampler(cfg, dataset_dicts: Sequence[dict]) -> RepeatCountTrainingSampler:
    """
    The training sampler of the video dicts ``dataset_dicts`` (from
    :func:`sgnet.data.get_ytvis_dataset_dicts`), by ``cfg.DATALOADER.SAMPLING_UNIT``:

    - "frame" (release): a video is drawn as often as it has trainable frames (frames holding a
      non-crowd object); the mapper then draws its key frame uniformly among them, so key frames
      are uniform over all trainable frames of the dataset, and long videos are seen more.
    - "video": every video equally often, whatever its length.

    Use it as ``build_detection_train_loader(cfg, mapper=..., dataset=dataset_dicts,
    sampler=build_ytvis_train_sampler(cfg, dataset_dicts))``.
    """
    unit = cfg.DATALOADER.SAMPLING_UNIT
    if unit not in SAMPLING_UNITS:
        raise ValueError(f"DATALOADER.SAMPLING_UNIT must be one of {SAMPLING_UNITS}, got {unit!r}")
    if cfg.DATALOADER.SAMPLER_TRAIN != "TrainingSampler":
        # detectron2's other samplers weigh images by their annotations, which video dicts do
        # not hold in the form they read; refuse rather than silently ignore the key.
        raise ValueError(
            f"DATALOADER.SAMPLER_TRAIN {cfg.DATALOADER.SAMPLER_TRAIN!r} is not supported for video "
            "datasets: leave it 'TrainingSampler' and choose with DATALOADER.SAMPLING_UNIT"
        )
    if unit == "frame":
        counts = [len(trainable_frame_indices(video)) for video in dataset_dicts]
    else:
        counts = [1] * len(dataset_dicts)
    logger.info(f"Training samples drawn uniformly per {unit}: {len(counts)} videos, {sum(counts)} draws per pass")
    return RepeatCountTrainingSampler(counts)
