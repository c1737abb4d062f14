"""Training samplers over video dicts: which video each training sample comes from."""
import logging
from typing import List, Optional, Sequence

import torch
from detectron2.data.samplers import TrainingSampler

from .datasets.ytvis import trainable_frame_indices

__all__ = [
    "MixedDatasetTrainingSampler",
    "RepeatCountTrainingSampler",
    "SAMPLING_UNITS",
    "build_ytvis_train_sampler",
    "check_sampling_keys",
    "video_repeat_counts",
]

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


def check_sampling_keys(cfg) -> str:
    """``cfg.DATALOADER.SAMPLING_UNIT``, checked, with SAMPLER_TRAIN left at its default."""
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
    return unit


def video_repeat_counts(unit: str, video_dicts: Sequence[dict]) -> List[int]:
    """How many times each video is drawn per pass under the sampling unit ``unit``: its number
    of trainable frames ("frame"), or 1 ("video")."""
    if unit == "frame":
        return [len(trainable_frame_indices(video)) for video in video_dicts]
    return [1] * len(video_dicts)


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
    unit = check_sampling_keys(cfg)
    counts = video_repeat_counts(unit, dataset_dicts)
    logger.info(f"Training samples drawn uniformly per {unit}: {len(counts)} videos, {sum(counts)} draws per pass")
    return RepeatCountTrainingSampler(counts)


class MixedDatasetTrainingSampler(TrainingSampler):
    """
    detectron2's :class:`TrainingSampler` over the concatenation of several datasets, each drawn
    with its own share of the samples: an infinite stream of indices into the concatenated list
    (dataset 0's elements first, then dataset 1's, ...).

    Which dataset each draw comes from is exact rather than multinomial: the stream is cut into
    blocks of ``block_size`` draws; each draw of a block goes to the dataset furthest below its
    share of all draws so far (largest ``share * draws - drawn``), then the block's draws are
    shuffled. After every block each dataset's count is therefore within 1 of its share, while
    inside a block the datasets come in random order (so consecutive draws, hence each batch and
    each rank's part of the stream, mix them). Within dataset d, elements follow a
    :class:`RepeatCountTrainingSampler` stream over ``repeat_counts[d]`` (seed ``seed + 1 + d``):
    element i is drawn ``repeat_counts[d][i]`` times per pass over that dataset.

    Seeding and sharding are TrainingSampler's: every rank computes the same stream and rank r of
    w yields its positions r, r + w, ...
    """

    def __init__(
        self,
        repeat_counts: Sequence[Sequence[int]],
        ratios: Sequence[float],
        seed: Optional[int] = None,
        block_size: int = 64,
    ):
        """
        Args:
            repeat_counts: one list per dataset, one non-negative int per element (see
                :class:`RepeatCountTrainingSampler`).
            ratios: (D,) positive floats, one per dataset: the relative share of draws from it
                (normalised to sum to 1).
            seed: the shared seed; None draws one shared by all ranks, as TrainingSampler does.
            block_size: draws per shuffled block (>= 1).
        """
        ratios = torch.as_tensor(ratios, dtype=torch.float64)
        if ratios.ndim != 1 or len(ratios) != len(repeat_counts) or not bool((ratios > 0).all()):
            raise ValueError(
                f"ratios must be one positive number per dataset ({len(repeat_counts)}); got {ratios.tolist()}"
            )
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        sizes = [len(counts) for counts in repeat_counts]
        super().__init__(sum(sizes), shuffle=True, seed=seed)
        # Each dataset its own element order, set by the shared seed.
        self._dataset_samplers = [
            RepeatCountTrainingSampler(counts, seed=self._seed + 1 + d) for d, counts in enumerate(repeat_counts)
        ]
        # (D,) where each dataset's elements start in the concatenated list.
        self._offsets = [sum(sizes[:d]) for d in range(len(sizes))]
        self._shares = ratios / ratios.sum()
        self._block_size = block_size

    def _dataset_schedule(self):
        """The dataset of every draw, block by block (each block shuffled)."""
        generator = torch.Generator()
        generator.manual_seed(self._seed)
        drawn = torch.zeros_like(self._shares)
        while True:
            block = []
            for _ in range(self._block_size):
                dataset = int(torch.argmax(self._shares * (drawn.sum() + 1) - drawn))
                drawn[dataset] += 1
                block.append(dataset)
            yield from (block[i] for i in torch.randperm(self._block_size, generator=generator).tolist())

    def _infinite_indices(self):
        # The unsharded streams: this sampler's own __iter__ shards the merged one.
        element_streams = [sampler._infinite_indices() for sampler in self._dataset_samplers]
        for dataset in self._dataset_schedule():
            yield self._offsets[dataset] + next(element_streams[dataset])
