"""Training sampler: draws per trainable frame (release) or per video, sharded across ranks."""
import itertools
from collections import Counter

import numpy as np
import pytest

import sgnet  # before detectron2: applies sgnet's compat layer
from detectron2.config import get_cfg
from detectron2.data.samplers import TrainingSampler
from detectron2.utils import comm
from sgnet.data import RepeatCountTrainingSampler, YTVISPairDatasetMapper, build_ytvis_train_sampler


def video(video_id: int, num_frames: int, trainable: set) -> dict:
    """A video dict of ``num_frames`` frames with one non-crowd object in the ``trainable`` ones
    and a crowd object in every other frame (crowd-only frames are no key frames)."""
    crowd, person = {"iscrowd": 1, "id": 9}, {"iscrowd": 0, "id": 1}
    return {
        "video_id": video_id,
        "file_names": [f"{video_id}/{t}.jpg" for t in range(num_frames)],
        "annotations": [[person] if t in trainable else [crowd] for t in range(num_frames)],
    }


# 10 trainable frames: 1 in video 0 (frame 2 of 3), 9 in video 1 (frames 0-8 of 12).
VIDEOS = [video(0, 3, {2}), video(1, 12, set(range(9)))]
TRAINABLE = [(0, 2)] + [(1, t) for t in range(9)]


def sampler_for(unit: str, **dataloader):
    cfg = get_cfg()
    sgnet.add_sgnet_config(cfg)
    cfg.DATALOADER.SAMPLING_UNIT = unit
    for key, value in dataloader.items():
        setattr(cfg.DATALOADER, key, value)
    return build_ytvis_train_sampler(cfg, VIDEOS)


def key_frame_counts(unit: str, draws: int) -> Counter:
    """(video, key frame) counts over the first ``draws`` samples: the sampler picks the video,
    the training mapper its key frame."""
    np.random.seed(0)  # the shared seed of the sampler, and the mapper's draws
    sampler = sampler_for(unit)
    mapper = YTVISPairDatasetMapper(is_train=True, augmentations=[], image_format="BGR")
    return Counter(
        (index, mapper.sample_frame_pair(VIDEOS[index])[0]) for index in itertools.islice(sampler, draws)
    )


def test_frame_unit_draws_key_frames_uniformly_over_all_trainable_frames():
    counts = key_frame_counts("frame", 9000)
    # Each pass of 10 draws holds video 0 once and video 1 nine times: exact per-video counts.
    assert sum(n for (v, _), n in counts.items() if v == 0) == 900
    assert sum(n for (v, _), n in counts.items() if v == 1) == 8100
    assert set(counts) == set(TRAINABLE)
    # Video 1's key frames: 8100 uniform draws among 9 frames, 900 +- 28 (one std) each; the bound
    # is 5 std wide, so only a non-uniform draw fails it (and the seed is fixed anyway).
    assert all(abs(counts[frame] - 900) < 150 for frame in TRAINABLE), counts


def test_video_unit_draws_videos_uniformly():
    counts = key_frame_counts("video", 9000)
    assert counts[(0, 2)] == 4500  # half the draws, on the short video's one trainable frame
    assert sum(n for (v, _), n in counts.items() if v == 1) == 4500
    # 4500 draws among 9 frames: 500 +- 21 (one std) each.
    assert all(abs(counts[(1, t)] - 500) < 100 for t in range(9)), counts


def test_every_pass_draws_each_element_exactly_its_count_in_a_fresh_order():
    sampler = RepeatCountTrainingSampler([2, 0, 1, 3], seed=5)
    stream = list(itertools.islice(sampler, 60))
    passes = [stream[i : i + 6] for i in range(0, 60, 6)]
    assert all(sorted(p) == [0, 0, 2, 3, 3, 3] for p in passes)
    assert len({tuple(p) for p in passes}) > 1  # reshuffled between passes
    # Deterministic per seed; another seed, another order.
    assert list(itertools.islice(RepeatCountTrainingSampler([2, 0, 1, 3], seed=5), 60)) == stream
    assert list(itertools.islice(RepeatCountTrainingSampler([2, 0, 1, 3], seed=6), 60)) != stream


def test_unit_counts_are_detectron2s_training_sampler():
    """With one slot per video, the stream is detectron2's TrainingSampler's for the same seed:
    configs with SAMPLING_UNIT "video" draw exactly as before the switch existed."""
    ours = RepeatCountTrainingSampler([1] * 7, seed=3)
    assert list(itertools.islice(ours, 50)) == list(itertools.islice(TrainingSampler(7, seed=3), 50))


def test_ranks_share_one_stream_and_split_it(monkeypatch):
    """Rank r of 2 yields positions r, r + 2, ... of the single-process stream: disjoint, together
    complete, hence each pass's exact counts hold over the whole job."""
    single = list(itertools.islice(RepeatCountTrainingSampler([1, 9], seed=1), 40))
    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    per_rank = []
    for rank in (0, 1):
        monkeypatch.setattr(comm, "get_rank", lambda rank=rank: rank)
        per_rank.append(list(itertools.islice(RepeatCountTrainingSampler([1, 9], seed=1), 20)))
    assert per_rank[0] == single[0::2] and per_rank[1] == single[1::2]


@pytest.mark.parametrize(
    "unit, dataloader, message",
    [
        ("clip", {}, r"DATALOADER.SAMPLING_UNIT must be one of \('frame', 'video'\), got 'clip'"),
        ("frame", {"SAMPLER_TRAIN": "RepeatFactorTrainingSampler"}, r"SAMPLER_TRAIN 'RepeatFactorTrainingSampler' is not supported"),
    ],
)
def test_bad_sampling_keys_are_refused(unit, dataloader, message):
    with pytest.raises(ValueError, match=message):
        sampler_for(unit, **dataloader)


@pytest.mark.parametrize("counts", [[], [0, 0], [1, -1]])
def test_counts_without_a_draw_are_refused(counts):
    with pytest.raises(ValueError, match="repeat_counts must be"):
        RepeatCountTrainingSampler(counts, seed=0)
