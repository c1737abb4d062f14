"""Training pair mapper, test-time video mapper, and detectron2's loaders over them."""

import os
import uuid

import numpy as np
import pytest
import torch

import sgnet
from data_fixtures import assert_instances_match_image, write_tiny_ytvis
from detectron2.config import get_cfg
from detectron2.data import (
    DatasetCatalog,
    MetadataCatalog,
    build_detection_test_loader,
    build_detection_train_loader,
)
from detectron2.data import transforms as T
from sgnet.data import (
    VideoReadError,
    YTVISPairDatasetMapper,
    YTVISVideoTestMapper,
    get_ytvis_dataset_dicts,
    load_ytvis_json,
    register_ytvis_instances,
)



@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_ytvis(str(tmp_path_factory.mktemp("tiny")))


@pytest.fixture(scope="module")
def videos(tiny):
    return {d["video_id"]: d for d in load_ytvis_json(tiny.json_file, tiny.image_root)}


@pytest.fixture
def registered(tiny):
    name = f"test_mapper_{uuid.uuid4().hex[:8]}"
    register_ytvis_instances(name, {}, tiny.json_file, tiny.image_root)
    yield name
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def make_cfg(**input_overrides):
    cfg = get_cfg()
    sgnet.add_sgnet_config(cfg)
    cfg.INPUT.MIN_SIZE_TRAIN = (96,)
    cfg.INPUT.MAX_SIZE_TRAIN = 1000
    cfg.INPUT.MIN_SIZE_TEST = 72
    cfg.INPUT.MAX_SIZE_TEST = 1000
    cfg.DATALOADER.NUM_WORKERS = 0
    for key, value in input_overrides.items():
        setattr(cfg.INPUT, key, value)
    return cfg


def pair_mapper(flip_probability, scale_short_edge=96, frame_range=0):
    return YTVISPairDatasetMapper(
        is_train=True,
        augmentations=[
            T.ResizeShortestEdge(scale_short_edge, 1000, "choice"),
            T.RandomFlip(prob=flip_probability),
        ],
        image_format="BGR",
        sampling_frame_range=frame_range,
    )


def test_pair_has_the_documented_fields_and_types(videos, tiny):
    np.random.seed(0)
    sample = pair_mapper(0.5)(videos[1])
    assert set(sample) == {"video_id", "height", "width", "file_names", "image", "instances"}
    assert (sample["video_id"], sample["height"], sample["width"]) == (1, 48, 64)
    for image, instances, path in zip(sample["image"], sample["instances"], sample["file_names"]):
        assert image.dtype == torch.uint8 and image.shape == (3, 96, 128)
        assert path in videos[1]["file_names"]
        assert instances.image_size == (96, 128)
        assert instances.gt_classes.dtype == instances.gt_ids.dtype == torch.int64
        assert instances.gt_crowd.dtype == torch.bool
        assert instances.gt_crowd.tolist() == [i == 103 for i in instances.gt_ids.tolist()]
        assert_instances_match_image(image, instances, tiny.colors)


@pytest.mark.parametrize("flip_probability", [0.0, 1.0])
def test_key_and_reference_share_augmentation_and_track_ids(videos, tiny, flip_probability):
    mapper = pair_mapper(flip_probability)
    np.random.seed(1)
    for _ in range(12):
        sample = mapper(videos[1])
        key, ref = sample["instances"]
        key_index, ref_index = (videos[1]["file_names"].index(p) for p in sample["file_names"])
        assert key_index != ref_index
        for t, instances in zip((key_index, ref_index), (key, ref)):
            expected_ids = sorted(o["id"] for o in videos[1]["annotations"][t])
            assert sorted(instances.gt_ids.tolist()) == expected_ids
        # same track, same class in both frames
        key_classes = dict(zip(key.gt_ids.tolist(), key.gt_classes.tolist()))
        for track_id, category in zip(ref.gt_ids.tolist(), ref.gt_classes.tolist()):
            assert key_classes.get(track_id, category) == category
        for image, instances in zip(sample["image"], sample["instances"]):
            assert_instances_match_image(image, instances, tiny.colors)


def test_flip_mirrors_images_masks_and_boxes_together(videos):
    np.random.seed(2)
    unflipped = pair_mapper(0.0)(videos[1])
    np.random.seed(2)  # same frames drawn: RandomFlip draws its number whatever the probability
    flipped = pair_mapper(1.0)(videos[1])
    assert flipped["file_names"] == unflipped["file_names"]
    width = 128
    for a, b, image_a, image_b in zip(
        unflipped["instances"], flipped["instances"], unflipped["image"], flipped["image"]
    ):
        assert torch.equal(image_b, image_a.flip(-1))
        assert torch.equal(b.gt_ids, a.gt_ids)
        assert torch.equal(b.gt_masks.tensor, a.gt_masks.tensor.flip(-1))
        x0, y0, x1, y1 = a.gt_boxes.tensor.unbind(1)
        assert torch.equal(b.gt_boxes.tensor, torch.stack([width - x1, y0, width - x0, y1], 1))


def test_resize_scales_masks_and_boxes_from_the_original(videos, tiny):
    np.random.seed(3)
    sample = pair_mapper(0.0)(videos[2])  # 40 x 56 -> 96 x 134 (scale 2.4)
    key_index = videos[2]["file_names"].index(sample["file_names"][0])
    instances = sample["instances"][0]
    assert instances.image_size == (96, 134)
    original = tiny.masks[(2, 201, key_index)]
    ys, xs = np.nonzero(original)
    scale_y, scale_x = 96 / 40, 134 / 56
    expected = [
        xs.min() * scale_x,
        ys.min() * scale_y,
        (xs.max() + 1) * scale_x,
        (ys.max() + 1) * scale_y,
    ]
    np.testing.assert_allclose(instances.gt_boxes.tensor[0].numpy(), expected, atol=1e-3)
    assert (
        abs(instances.gt_masks.tensor[0].sum().item() - original.sum() * scale_x * scale_y)
        < 0.1 * original.sum() * scale_x * scale_y
    )


def test_reference_frames_respect_the_sampling_range(videos):
    pairs = set()
    np.random.seed(4)
    mapper = pair_mapper(0.5, frame_range=1)
    for _ in range(60):
        key, ref = mapper.sample_frame_pair(videos[1])
        assert abs(key - ref) == 1
        pairs.add((key, ref))
    assert pairs == {(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2)}
    any_frame = pair_mapper(0.5, frame_range=0)
    references = {any_frame.sample_frame_pair(videos[1]) for _ in range(200)}
    assert references == {(k, r) for k in range(4) for r in range(4) if k != r}


def test_key_frames_hold_a_non_crowd_object(videos):
    video = dict(videos[1])
    # Only frame 2 keeps its non-crowd objects; the crowd object stays everywhere.
    video["annotations"] = [
        [o for o in f if o["iscrowd"] or t == 2] for t, f in enumerate(video["annotations"])
    ]
    mapper = pair_mapper(0.5)
    np.random.seed(5)
    assert {mapper.sample_frame_pair(video) for _ in range(20)} == {(2, 2)}  # no other candidate


def test_video_without_objects_raises_instead_of_looping(videos):
    with pytest.raises(
        ValueError,
        match="Video 3 .* has no annotated frame with a non-crowd object.*get_ytvis_dataset_dicts",
    ):
        pair_mapper(0.5)(videos[3])


def test_frame_of_the_wrong_size_names_video_and_frame(videos, tmp_path):
    import cv2

    video = dict(videos[2])
    wrong = str(tmp_path / "wrong.jpg")
    cv2.imwrite(wrong, np.zeros((41, 56, 3), np.uint8))
    video["file_names"] = [wrong] * 3
    with pytest.raises(
        ValueError,
        match=r"video 2 frame \d \(.*wrong.jpg\) is 41x56 but the annotation file says 40x56",
    ):
        pair_mapper(0.5)(video)


def test_unreadable_frames_name_video_frame_and_path(videos, tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"not a jpeg at all")
    video = dict(videos[2], file_names=[str(corrupt)] * 3)
    with pytest.raises(VideoReadError, match=rf"video 2 frame \d: cannot decode image {corrupt}"):
        pair_mapper(0.5)(video)
    video = dict(videos[2], file_names=[str(tmp_path / "gone.jpg")] * 3)
    with pytest.raises(
        FileNotFoundError, match=r"video 2 frame \d: frame file not found: .*gone.jpg"
    ):
        YTVISVideoTestMapper(augmentations=[], image_format="BGR")(video)


def test_from_config_reads_input_keys(videos):
    cfg = make_cfg(SAMPLING_FRAME_RANGE=2, RANDOM_FLIP="horizontal", FORMAT="RGB")
    mapper = YTVISPairDatasetMapper(cfg, True)
    assert mapper.sampling_frame_range == 2 and mapper.image_format == "RGB"
    kinds = [type(a) for a in mapper.augmentations.augs]
    assert kinds == [T.ResizeShortestEdge, T.RandomFlip]
    np.random.seed(6)
    sample = mapper(videos[1])
    assert sample["image"][0].shape == (3, 96, 128)
    # RGB: the red rectangle (BGR (0, 0, 230)) now has its colour in channel 0
    red = sample["instances"][0].gt_masks.tensor[sample["instances"][0].gt_ids == 101][0]
    assert sample["image"][0][0][red].float().mean() > 180


def test_video_test_mapper_resizes_every_frame_alike(tiny, videos):
    mapper = YTVISVideoTestMapper(make_cfg(), False)
    out = mapper(videos[3])
    assert set(out) == {"video_id", "file_names", "height", "width", "length", "image"}
    assert (out["video_id"], out["height"], out["width"], out["length"]) == (3, 32, 40, 5)
    assert out["file_names"] == videos[3]["file_names"]
    assert [tuple(i.shape) for i in out["image"]] == [(3, 72, 90)] * 5
    assert all(i.dtype == torch.uint8 for i in out["image"])
    first = mapper(videos[1])["image"][0]  # 48 x 64 -> 72 x 96: the red rectangle moved to x * 1.5
    assert first.shape == (3, 72, 96)
    assert first[2, 9 + 4 : 33 - 4, 6 + 4 : 30 - 4].float().mean() > 180  # red channel in BGR


# ---------------------------------------------------------------------------------------------
# detectron2 loaders
# ---------------------------------------------------------------------------------------------
def _check_batch(batch, expected_size):
    _check_batch_of(batch, expected_size, allowed_videos={1, 2})


def _check_batch_of(batch, expected_size, allowed_videos):
    assert len(batch) == expected_size
    for sample in batch:
        assert sample["video_id"] in allowed_videos
        assert len(sample["image"]) == len(sample["instances"]) == 2
        key = sample["instances"][0]
        assert (~key.gt_crowd).any()
        assert len(key.gt_masks) == len(key.gt_boxes) == len(key.gt_ids)


def test_train_loader_with_two_workers_yields_valid_batches(registered):
    cfg = make_cfg(RANDOM_FLIP="horizontal")
    cfg.DATALOADER.NUM_WORKERS = 2
    cfg.SOLVER.IMS_PER_BATCH = 2
    loader = build_detection_train_loader(
        cfg, mapper=YTVISPairDatasetMapper(cfg, True), dataset=get_ytvis_dataset_dicts(registered)
    )
    seen_videos = set()
    for _, batch in zip(range(6), loader):
        _check_batch(batch, 2)
        seen_videos.update(s["video_id"] for s in batch)
    assert seen_videos == {1, 2}  # video 3 (no object) was filtered out


def test_train_loader_from_config_alone(tiny):
    """The plain ``build_detection_train_loader(cfg, mapper=...)`` path works too on a dataset
    whose videos all hold objects, with detectron2's per-image empty-annotation filter off (it
    cannot read video dicts)."""
    content = tiny.copy_content()
    content["videos"] = [v for v in content["videos"] if v["id"] != 3]
    name = f"test_mapper_{uuid.uuid4().hex[:8]}"
    register_ytvis_instances(
        name, {}, tiny.write_variant(content, "with_objects.json"), tiny.image_root
    )
    try:
        cfg = make_cfg()
        cfg.DATASETS.TRAIN = (name,)
        cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS = False
        cfg.SOLVER.IMS_PER_BATCH = 2
        loader = build_detection_train_loader(cfg, mapper=YTVISPairDatasetMapper(cfg, True))
        _check_batch(next(iter(loader)), 2)
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


@pytest.mark.parametrize("unit, per_pass", [("frame", {1: 4, 2: 3}), ("video", {1: 1, 2: 1})])
def test_train_loader_with_the_sgnet_sampler_draws_per_sampling_unit(registered, unit, per_pass):
    """detectron2's loader takes SG-Net's sampler: one batch of two passes holds each video twice
    its number of trainable frames (video 1: 4, video 2: 3) or twice, by DATALOADER.SAMPLING_UNIT."""
    from sgnet.data import build_ytvis_train_sampler

    cfg = make_cfg()
    cfg.DATALOADER.SAMPLING_UNIT = unit
    cfg.DATALOADER.ASPECT_RATIO_GROUPING = False  # batches in the sampler's order
    cfg.SOLVER.IMS_PER_BATCH = 2 * sum(per_pass.values())
    dataset = get_ytvis_dataset_dicts(registered)
    loader = build_detection_train_loader(
        cfg, mapper=YTVISPairDatasetMapper(cfg, True), dataset=dataset, sampler=build_ytvis_train_sampler(cfg, dataset)
    )
    batch = next(iter(loader))
    _check_batch(batch, cfg.SOLVER.IMS_PER_BATCH)
    counts = {v: sum(s["video_id"] == v for s in batch) for v in per_pass}
    assert counts == {v: 2 * n for v, n in per_pass.items()}


def test_test_loader_yields_every_video_in_order(registered):
    cfg = make_cfg()
    loader = build_detection_test_loader(cfg, registered, mapper=YTVISVideoTestMapper(cfg, False))
    outputs = [batch[0] for batch in loader]
    assert [o["video_id"] for o in outputs] == [1, 2, 3]
    assert [len(o["image"]) for o in outputs] == [4, 3, 5]
    assert all(os.path.isfile(p) for o in outputs for p in o["file_names"])


def test_distributed_sampler_shards_videos_between_ranks(tiny, monkeypatch):
    """With detectron2's TrainingSampler in a 2-process job, each rank gets half the batch and
    its own share of the shuffled videos (ranks simulated: comm is patched, no process group)."""
    from detectron2.data import build as data_build
    from detectron2.data.samplers import TrainingSampler
    from detectron2.utils import comm

    content = tiny.copy_content()
    content["videos"] += [dict(v, id=10 + v["id"]) for v in content["videos"][:2]]
    content["annotations"] += [
        dict(a, id=1000 + a["id"], video_id=10 + a["video_id"]) for a in content["annotations"]
    ]
    dicts = load_ytvis_json(tiny.write_variant(content, "four_videos.json"), tiny.image_root)
    dicts = [d for d in dicts if d["video_id"] != 3]  # 4 trainable videos: 1, 2, 11, 12
    cfg = make_cfg()
    cfg.SOLVER.IMS_PER_BATCH = 4
    cfg.DATALOADER.ASPECT_RATIO_GROUPING = False
    for module in (comm, data_build):  # build.py imported get_world_size by name
        monkeypatch.setattr(module, "get_world_size", lambda: 2)
    streams = []
    for rank in (0, 1):
        monkeypatch.setattr(comm, "get_rank", lambda rank=rank: rank)
        loader = build_detection_train_loader(
            cfg,
            mapper=YTVISPairDatasetMapper(cfg, True),
            dataset=dicts,
            sampler=TrainingSampler(len(dicts), seed=0),
        )
        batch = next(iter(loader))
        _check_batch_of(batch, 2, allowed_videos={1, 2, 11, 12})
        streams.append([s["video_id"] for s in batch])
    assert sorted(streams[0] + streams[1]) == [1, 2, 11, 12]  # one epoch, split between ranks
