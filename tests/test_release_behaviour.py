"""The release's training behaviour, which the YouTube-VIS / OVIS configs keep, beside the
project's variants that the toy config uses: values, not shapes."""
import math

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.structures import BitMasks
from detectron2.utils.events import EventStorage
from torch.nn import functional as F

from sgnet.config import load_config
from sgnet.modeling import losses

from model_fixtures import RELEASE_LOSSES, REPO_CONFIGS, pair_sample, tiny_cfg

REAL_CONFIGS = sorted(str(p.relative_to(REPO_CONFIGS)) for p in REPO_CONFIGS.glob("*/*.yaml") if p.parent.name != "toy")


def config_value(cfg, key):
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


# The release's behaviour in every switch sgnet has (README "Release behaviour").
RELEASE_DEFAULTS = {
    **RELEASE_LOSSES,
    "DATALOADER.SAMPLING_UNIT": "frame",
    "MODEL.SGNET.TRACKER.UPDATE_LABEL": False,
    "TEST.TRACK_LABEL_RULE": "vote",
    "TEST.CLASSES_PER_TRACK": 1,
}


@pytest.mark.parametrize("config", REAL_CONFIGS)
def test_real_configs_keep_the_release_behaviour(config):
    cfg = load_config(str(REPO_CONFIGS / config))
    assert {key: config_value(cfg, key) for key in RELEASE_DEFAULTS} == RELEASE_DEFAULTS


def test_toy_config_keeps_the_project_variants():
    cfg = load_config(str(REPO_CONFIGS / "toy" / "sgnet_R18_toy.yaml"))
    assert {key: config_value(cfg, key) for key in RELEASE_DEFAULTS} == {
        "MODEL.SGNET.MASK.MAX_TRAIN_INSTANCES": 100,
        "MODEL.SGNET.MASK.WEIGHTS_PER_IMAGE": False,
        "MODEL.SGNET.MASK.BINARY_TARGETS": False,
        "MODEL.SGNET.TRACK.LOSS_PER_IMAGE": False,
        "DATALOADER.SAMPLING_UNIT": "video",
        # Left at the release's defaults, where they change nothing: without the label term
        # (LABEL_WEIGHT 0) a track's stored label is never read, and with 3 classes per track no
        # label rule is applied.
        "MODEL.SGNET.TRACKER.UPDATE_LABEL": False,
        "TEST.TRACK_LABEL_RULE": "vote",
        "TEST.CLASSES_PER_TRACK": 3,
    }
    assert cfg.MODEL.SGNET.TRACKER.LABEL_WEIGHT == 0.0


def mask_loss_calls(monkeypatch, cap, **overrides):
    """One training step of the tiny model on two pairs; returns (positives, what the mask
    head's granularity selection and assembly were called with)."""
    torch.manual_seed(0)
    model = build_model(tiny_cfg(**{**RELEASE_LOSSES, "MODEL.SGNET.MASK.MAX_TRAIN_INSTANCES": cap, **overrides}))
    model.train()
    calls = {}
    head = model.mask_head
    select, assemble = head.select_granularity, head.assemble

    def record_select(areas, image_idx):
        calls["select"] = (areas, image_idx, select(areas, image_idx))
        return calls["select"][2]

    def record_assemble(bases, image_idx, boxes, coefficients, granularity=None):
        calls["assemble"] = (image_idx, granularity)
        return assemble(bases, image_idx, boxes, coefficients, granularity)

    monkeypatch.setattr(head, "select_granularity", record_select)
    monkeypatch.setattr(head, "assemble", record_assemble)
    assign = model._assign_targets

    def record_assign(*args):
        calls["positives"], gt_labels = assign(*args)
        return calls["positives"], gt_labels

    monkeypatch.setattr(model, "_assign_targets", record_assign)
    with EventStorage():
        model([pair_sample(0, 4), pair_sample(3, 7)])
    return calls


def test_mask_loss_supervises_every_positive_without_a_cap(monkeypatch):
    calls = mask_loss_calls(monkeypatch, cap=0)
    num_positives = len(calls["positives"].image)
    assert num_positives > 20
    image_idx, _ = calls["assemble"]
    assert torch.equal(image_idx, calls["positives"].image)  # every positive, in order


def test_mask_loss_cap_draws_that_many_positives(monkeypatch):
    calls = mask_loss_calls(monkeypatch, cap=5)
    assert len(calls["positives"].image) > 5
    assert len(calls["assemble"][0]) == 5


def test_per_image_granularity_uses_all_positives_even_with_a_cap(monkeypatch):
    calls = mask_loss_calls(monkeypatch, cap=5, **{"MODEL.SGNET.MASK.GRANULARITY_PER_IMAGE": True})
    areas, image_idx, granularity = calls["select"]
    assert len(areas) == len(calls["positives"].image) > 5  # the mean is over every positive
    # The assembled subset carries the g chosen for its positives among all of them.
    subset_images, subset_granularity = calls["assemble"]
    lookup = {int(i): int(g) for i, g in zip(image_idx, granularity)}
    assert subset_granularity.tolist() == [lookup[int(i)] for i in subset_images]


def test_mask_weights_are_normalised_per_image_or_over_the_batch():
    # Three instances with one pixel each, BCE(logit, target 1) known: the loss reads the
    # weights. Instances 0, 1 in image 0 (weights 1, 3), instance 2 in image 1 (10); image 2 of
    # the batch has no instance.
    logits, targets = torch.tensor([0.0, 0.0, 2.0]), torch.ones(3)
    pixel_instance = torch.tensor([0, 1, 2])
    instance_image = torch.tensor([0, 0, 1])
    weights = torch.tensor([1.0, 3.0, 10.0])
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    per_image = losses.mask_loss(logits, targets, pixel_instance, instance_image, weights, 3, per_image=True)
    # Image 0: weights 0.5, 1.5; image 1: weight 1; divided by all 3 images (the release's).
    assert float(per_image) == pytest.approx(float((0.5 * bce[0] + 1.5 * bce[1]) / 2 + bce[2]) / 3)
    over_batch = losses.mask_loss(logits, targets, pixel_instance, instance_image, weights, 3, per_image=False)
    scale = 3 / 14  # mean weight 14 / 3; averaged over the 2 images with instances
    expected = ((1 * scale * bce[0] + 3 * scale * bce[1]) / 2 + 10 * scale * bce[2]) / 2
    assert float(over_batch) == pytest.approx(float(expected))


def test_per_image_granularity_is_one_g_from_the_images_mean_area():
    # Toy thresholds (150, 600]: image 0's areas 100 and 900 (mean 500) -> 3 for both, where the
    # per-instance rule gives 2 and 4; image 1's single 700 -> 4 either way.
    areas, image_idx = torch.tensor([100.0, 900.0, 700.0]), torch.tensor([0, 0, 1])
    heads = {
        per_image: build_model(tiny_cfg(**{"MODEL.SGNET.MASK.GRANULARITY_PER_IMAGE": per_image})).mask_head
        for per_image in (True, False)
    }
    assert heads[True].select_granularity(areas, image_idx).tolist() == [3, 3, 4]
    assert heads[False].select_granularity(areas, image_idx).tolist() == [2, 4, 4]


def test_mask_targets_binary_after_bilinear_or_soft_block_averages():
    # Basis stride 2: the 2 x 2 blocks of this 4 x 4 mask hold 1, 3, 0 and 4 set pixels.
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, 0, 0] = True
    mask[0, 0, 2:] = mask[0, 1, 3] = True
    mask[0, 2:, 2:] = True
    instances = pair_sample(0, 4)["instances"][0][[0]]
    instances._image_size = (4, 4)
    instances.gt_masks = BitMasks(mask)
    targets = {}
    for binary in (True, False):
        model = build_model(tiny_cfg(**{"MODEL.SGNET.MASK.BINARY_TARGETS": binary}))
        assert model.basis_stride == 2
        targets[binary] = model._downsampled_gt_masks([instances], (4, 4))[0]
    assert targets[False].tolist() == [[0.25, 0.75], [0.0, 1.0]]
    assert targets[True].tolist() == [[0.0, 1.0], [0.0, 1.0]]


def test_track_loss_averaged_per_image_then_over_images():
    # Image 0: one positive; image 1: three; image 2: none. Each positive's reference set is
    # [new, object].
    key_embeddings = torch.tensor([[1.0], [2.0], [2.0], [2.0]])
    ref_embeddings = torch.tensor([[1.0]])
    same_key = torch.ones(4, 1, dtype=torch.bool)
    targets = torch.tensor([1, 0, 0, 0])
    key_image = torch.tensor([0, 1, 1, 1])
    # CE of logits [0, s]: target 1 -> log(1 + e^-s); target 0 -> log(1 + e^s).
    first, others = math.log(1 + math.exp(-1.0)), math.log(1 + math.exp(2.0))
    per_image, _ = losses.track_loss(key_embeddings, ref_embeddings, same_key, targets, key_image, 3, per_image=True)
    assert float(per_image) == pytest.approx((first + others) / 3)  # over all 3 images (release)
    pooled, accuracy = losses.track_loss(key_embeddings, ref_embeddings, same_key, targets, key_image, 3, per_image=False)
    assert float(pooled) == pytest.approx((first + 3 * others) / 4)
    assert float(accuracy) == 0.25
