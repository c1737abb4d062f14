"""Joint training on video and image datasets: the per-dataset ratios (sampler), the dispatching
mapper, and detectron2's training loader and a model step over a mixed batch."""
import itertools
import json
from collections import Counter

import numpy as np
import pytest
import torch

import sgnet  # before detectron2: applies sgnet's compat layer
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils import comm
from sgnet.data import (
    JointPairMapper,
    MixedDatasetTrainingSampler,
    build_sgnet_train_loader,
    register_coco_mapped_instances,
    register_ytvis_instances,
)
from sgnet.data.datasets.builtin import YTVIS_2019_CLASSES, builtin_metadata
from sgnet.data.datasets.coco_mapping import COCO_TO_YTVIS_2019
from sgnet.data.synthetic import generate_synthetic_coco, generate_synthetic_ytvis


def dataset_of(index: int, sizes) -> int:
    """Which dataset an index into the concatenated list falls in."""
    return int(np.searchsorted(np.cumsum(sizes), index, side="right"))


# ---------------------------------------------------------------------------------------------
# Sampler
# ---------------------------------------------------------------------------------------------
def test_every_block_keeps_each_dataset_within_one_draw_of_its_share():
    sizes = (3, 5, 2)
    sampler = MixedDatasetTrainingSampler([[1] * n for n in sizes], [3.0, 1.0, 0.5], seed=0, block_size=16)
    datasets = [dataset_of(i, sizes) for i in itertools.islice(sampler, 16 * 100)]
    shares = np.array([3.0, 1.0, 0.5]) / 4.5
    for end in range(16, len(datasets) + 1, 16):
        counts = np.bincount(datasets[:end], minlength=3)
        assert np.abs(counts - shares * end).max() < 1, (end, counts)
    # Inside a block the order is random: blocks differ (a fixed interleaving would repeat).
    blocks = {tuple(datasets[i : i + 16]) for i in range(0, len(datasets), 16)}
    assert len(blocks) > 50


def test_within_a_dataset_elements_follow_their_repeat_counts():
    """A video dataset drawn per frame: its video of 9 trainable frames is drawn 9 times as often
    as its video of 1, exactly per pass; the image dataset's 4 images equally often."""
    sampler = MixedDatasetTrainingSampler([[1, 9], [1, 1, 1, 1]], [1.0, 1.0], seed=3, block_size=8)
    counts = Counter(itertools.islice(sampler, 2000))
    # 1000 draws each: 100 passes of 10 over the videos, 250 of 4 over the images.
    assert [counts[i] for i in range(6)] == [100, 900, 250, 250, 250, 250]


def test_stream_is_seeded_and_each_dataset_gets_its_own_order():
    def stream(seed):
        return list(itertools.islice(MixedDatasetTrainingSampler([[1] * 6, [1] * 6], [1, 1], seed=seed), 200))

    assert stream(4) == stream(4) and stream(4) != stream(5)
    first, second = [], []
    for i in stream(4):
        (first if i < 6 else second).append(i if i < 6 else i - 6)
    assert first[:6] != second[:6]  # not one shared permutation for both datasets
    assert sorted(first[:6]) == sorted(second[:6]) == list(range(6))  # passes of each dataset


def test_every_rank_gets_both_datasets_in_its_batches(monkeypatch):
    """Rank r of 2 yields positions r, r + 2, ... of the one stream; with a 1:1 ratio a fixed
    alternation would give each rank a single dataset, the shuffled blocks give both."""
    single = list(itertools.islice(MixedDatasetTrainingSampler([[1] * 4, [1] * 4], [1, 1], seed=1), 64))
    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    for rank in (0, 1):
        monkeypatch.setattr(comm, "get_rank", lambda rank=rank: rank)
        ours = list(itertools.islice(MixedDatasetTrainingSampler([[1] * 4, [1] * 4], [1, 1], seed=1), 32))
        assert ours == single[rank::2]
        batches = [ours[i : i + 4] for i in range(0, 32, 4)]
        assert sum(min(b) < 4 <= max(b) for b in batches) >= 4  # most batches of 4 mix both


@pytest.mark.parametrize(
    "counts, ratios, message",
    [
        ([[1], [1]], [1.0], r"ratios must be one positive number per dataset \(2\); got \[1.0\]"),
        ([[1], [1]], [1.0, 0.0], r"ratios must be one positive number per dataset"),
        ([[1], [0]], [1.0, 1.0], r"repeat_counts must be"),
    ],
)
def test_bad_sampler_arguments_are_refused(counts, ratios, message):
    with pytest.raises(ValueError, match=message):
        MixedDatasetTrainingSampler(counts, ratios, seed=0)


# ---------------------------------------------------------------------------------------------
# Mapper
# ---------------------------------------------------------------------------------------------
def test_mapper_dispatches_by_the_record_tag_not_its_keys():
    mapper = JointPairMapper(video_mapper=lambda r: ("video", r["id"]), image_mapper=lambda r: ("image", r["id"]))
    assert mapper(("video", {"id": 1})) == ("video", 1)
    assert mapper(("image", {"id": 2})) == ("image", 2)
    with pytest.raises(ValueError, match=r"record kind must be one of \('video', 'image'\), got 'clip'"):
        mapper(("clip", {"id": 3}))


# ---------------------------------------------------------------------------------------------
# Loader and model
# ---------------------------------------------------------------------------------------------
VIDEOS, IMAGES = "joint_test_videos", "joint_test_coco"


@pytest.fixture(scope="module")
def joint_datasets(tmp_path_factory):
    """A synthetic video dataset whose categories are renamed to YouTube-VIS 2019's (so that it
    shares its classes with the COCO split mapped onto them), and a synthetic COCO split mapped
    onto YouTube-VIS 2019; both registered for the module."""
    root = tmp_path_factory.mktemp("joint")
    paths = generate_synthetic_ytvis(
        str(root / "videos"), num_train_videos=3, num_val_videos=1, num_frames=4, height=96, width=160, seed=2
    )
    content = json.loads(open(paths["train_json"]).read())
    content["categories"] = [{"id": i + 1, "name": name} for i, name in enumerate(YTVIS_2019_CLASSES)]
    with open(paths["train_json"], "w") as f:
        json.dump(content, f)
    register_ytvis_instances(VIDEOS, {}, paths["train_json"], paths["train_root"])
    coco = generate_synthetic_coco(str(root / "coco"), num_images=8, height=96, width=160, seed=5)
    register_coco_mapped_instances(
        IMAGES, builtin_metadata(YTVIS_2019_CLASSES), COCO_TO_YTVIS_2019, coco["json_file"], coco["image_root"]
    )
    yield
    for name in (VIDEOS, IMAGES):
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def _train_cfg(*datasets, ratios=()):
    from model_fixtures import tiny_cfg

    cfg = tiny_cfg()
    cfg.MODEL.SGNET.NUM_CLASSES = 40
    cfg.DATASETS.TRAIN = datasets
    cfg.DATASETS.TEST = ()  # the toy config's 3-class val split is not these datasets' test set
    cfg.DATALOADER.DATASET_RATIOS = list(ratios)
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.SOLVER.IMS_PER_BATCH = 8
    cfg.INPUT.MIN_SIZE_TRAIN = (96, 96)  # the toy config samples a range
    return cfg


def test_default_ratios_keep_one_kind_only(joint_datasets):
    cfg = get_cfg()
    sgnet.add_sgnet_config(cfg)
    assert cfg.DATALOADER.DATASET_RATIOS == []
    with pytest.raises(ValueError, match="mixes image datasets .* set DATALOADER.DATASET_RATIOS"):
        build_sgnet_train_loader(_train_cfg(VIDEOS, IMAGES))


@pytest.mark.parametrize(
    "ratios, message",
    [
        ([1.0], r"DATALOADER.DATASET_RATIOS \[1.0\] has 1 entries but DATASETS.TRAIN .* has 2"),
        ([1.0, -2.0], r"DATALOADER.DATASET_RATIOS must all be positive, got \[1.0, -2.0\]"),
    ],
)
def test_bad_ratios_name_the_key(joint_datasets, ratios, message):
    with pytest.raises(ValueError, match=message):
        build_sgnet_train_loader(_train_cfg(VIDEOS, IMAGES, ratios=ratios))


def test_mixed_batch_holds_both_kinds_and_trains(joint_datasets):
    """detectron2's loader over the video and the image dataset, 1:1: the first 64 samples (one
    block of the sampler) are exactly 32 video pairs (two different frames of one video) and 32
    pseudo pairs (one image twice), with YouTube-VIS 2019 classes; the toy model takes a mixed
    batch with finite losses."""
    from detectron2.modeling import build_model
    from detectron2.utils.events import EventStorage

    cfg = _train_cfg(VIDEOS, IMAGES, ratios=[1.0, 1.0])
    video_files = {f for v in DatasetCatalog.get(VIDEOS) for f in v["file_names"]}
    loader = iter(build_sgnet_train_loader(cfg))
    kinds = Counter()
    mixed_batches = []
    for _ in range(8):
        batch = next(loader)
        assert len(batch) == 8
        batch_kinds = set()
        for sample in batch:
            key_file, ref_file = sample["file_names"]
            video = key_file in video_files
            assert (ref_file in video_files) == video and (key_file != ref_file) == video
            kinds["video" if video else "image"] += 1
            batch_kinds.add(video)
            assert [tuple(i.shape) for i in sample["image"]] == [(3, 96, 160)] * 2
            classes = torch.cat([i.gt_classes for i in sample["instances"]]).tolist()
            assert set(classes) <= ({0, 1, 2} if video else {0, 5})
        if len(batch_kinds) == 2:
            mixed_batches.append(batch)
    assert kinds == {"video": 32, "image": 32}
    # A block's order is a random shuffle: a batch of 8 out of 32 + 32 holds a single kind with
    # probability 2 * C(32, 8) / C(64, 8) < 0.5 %, so all 8 batches doing so is out of reach.
    assert mixed_batches
    torch.manual_seed(0)
    model = build_model(cfg)
    model.train()
    with EventStorage():
        losses = model(mixed_batches[0])
    assert {"loss_fcos_cls", "loss_mask", "loss_track"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())


# ---------------------------------------------------------------------------------------------
# Joint configs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["ytvis_2019", "ytvis_2021", "ovis"])
def test_joint_configs_pair_each_video_split_with_its_coco_split(target):
    """Each joint config is its video-only 1x with the COCO split mapped onto the same classes
    added at one share of two; nothing else differs."""
    from model_fixtures import REPO_CONFIGS
    from sgnet.config import load_config

    joint = load_config(str(REPO_CONFIGS / target / "sgnet_R50_FPN_coco_joint_1x.yaml"))
    video_only = load_config(str(REPO_CONFIGS / target / "sgnet_R50_FPN_1x.yaml"))
    assert joint.DATASETS.TRAIN == (f"{target}_train", f"coco_{target}_train")
    assert joint.DATALOADER.DATASET_RATIOS == [1.0, 1.0]
    assert MetadataCatalog.get(f"coco_{target}_train").thing_classes == MetadataCatalog.get(f"{target}_train").thing_classes
    assert len(MetadataCatalog.get(f"{target}_train").thing_classes) == joint.MODEL.SGNET.NUM_CLASSES
    for cfg in (joint, video_only):
        cfg.defrost()
        cfg.DATASETS.TRAIN = ()
        cfg.DATALOADER.DATASET_RATIOS = []
        cfg.OUTPUT_DIR = ""
    assert joint == video_only
