"""Initialising SG-Net from a detectron2 FCOS checkpoint (sgnet.checkpoint).

detectron2's own FCOS is built as its model zoo's ``COCO-Detection/fcos_R_50_FPN_1x.py`` builds
it, filled with random values (so that no tensor equals SG-Net's by chance) and saved in the
model-zoo ``.pkl`` format or as a detectron2 ``.pth``; SG-Net is the R50 config's model.
"""
import pickle

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model
from detectron2.modeling.backbone import FPN, BasicStem, ResNet
from detectron2.modeling.backbone.fpn import LastLevelP6P7
from detectron2.modeling.meta_arch.fcos import FCOS, FCOSHead
from torch import nn

import sgnet
from model_fixtures import REPO_CONFIGS, tiny_cfg
from sgnet.checkpoint import build_checkpointer
from sgnet.predictor import VideoPredictor

COCO_CLASSES = 80


def tower_keys(target: str, source: str, num_layers: int) -> dict:
    """SG-Net key -> detectron2 key of a tower's leading layers: layer k is modules 3k (conv,
    weight only: SG-Net's convs have no bias before GN) and 3k + 1 (GroupNorm) in both."""
    params = [(0, "weight"), (1, "weight"), (1, "bias")]
    keys = [f"{3 * k + i}.{p}" for k in range(num_layers) for i, p in params]
    return {f"{target}.{key}": f"{source}.{key}" for key in keys}


# SG-Net key -> detectron2 FCOS key, for every tensor the conversion maps.
MAPPED = {
    **tower_keys("head.cls_tower", "head.cls_subnet", 2),
    **tower_keys("head.box_tower", "head.bbox_subnet", 3),
    "head.box_pred.weight": "head.bbox_pred.weight",
    "head.box_pred.bias": "head.bbox_pred.bias",
    "head.centerness.weight": "head.ctrness.weight",
    "head.centerness.bias": "head.ctrness.bias",
}


def group_norm_32(channels: int) -> nn.GroupNorm:
    """``norm="GN"`` (GroupNorm(32, C), the same modules and tensors), as a callable that also
    survives detectron2 0.6's RetinaNetHead probing the norm's type with ``get_norm(norm, 1)``,
    which current torch refuses for "GN" (1 channel in 32 groups; fixed after 0.6)."""
    return nn.GroupNorm(min(32, channels), channels)


def detectron2_fcos() -> FCOS:
    """detectron2's FCOS R50-FPN as its model zoo's lazy config makes it (RetinaNet's R50-FPN
    with P6/P7 from P5, an FCOSHead with GN and 4 convs per tower, 80 classes)."""
    bottom_up = ResNet(
        stem=BasicStem(in_channels=3, out_channels=64, norm="FrozenBN"),
        stages=ResNet.make_default_stages(depth=50, stride_in_1x1=True, norm="FrozenBN"),
        out_features=["res3", "res4", "res5"],
        freeze_at=2,
    )
    backbone = FPN(
        bottom_up=bottom_up,
        in_features=["res3", "res4", "res5"],
        out_channels=256,
        top_block=LastLevelP6P7(256, 256, in_feature="p5"),
    )
    head = FCOSHead(
        input_shape=[ShapeSpec(channels=256)] * 5,
        num_classes=COCO_CLASSES,
        conv_dims=[256] * 4,
        norm=group_norm_32,
        prior_prob=0.01,
    )
    return FCOS(
        backbone=backbone,
        head=head,
        head_in_features=["p3", "p4", "p5", "p6", "p7"],
        num_classes=COCO_CLASSES,
        pixel_mean=[103.530, 116.280, 123.675],
        pixel_std=[1.0, 1.0, 1.0],
    )


def sgnet_cfg(**overrides):
    cfg = get_cfg()
    sgnet.add_sgnet_config(cfg)
    cfg.merge_from_file(str(REPO_CONFIGS / "ytvis_2019" / "sgnet_R50_FPN_1x.yaml"))
    cfg.merge_from_list(["MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu"])
    cfg.merge_from_list([item for pair in overrides.items() for item in pair])
    return cfg


@pytest.fixture(scope="module")
def fcos_state():
    """A detectron2 FCOS state dict with every tensor drawn at random."""
    generator = torch.Generator().manual_seed(0)
    state = detectron2_fcos().state_dict()
    return {key: torch.randn(value.shape, generator=generator) for key, value in state.items()}


@pytest.fixture(scope="module")
def zoo_pkl(fcos_state, tmp_path_factory):
    """The FCOS saved as detectron2's model zoo files are: numpy arrays, ``__author__``."""
    path = tmp_path_factory.mktemp("zoo") / "fcos_R_50_FPN_1x.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in fcos_state.items()}, "__author__": "Detectron2 Model Zoo"}, f)
    return path


@pytest.fixture(scope="module")
def sgnet_built():
    torch.manual_seed(0)
    model = build_model(sgnet_cfg())
    return model, {key: value.clone() for key, value in model.state_dict().items()}


@pytest.fixture
def sgnet_model(sgnet_built):
    """The R50 SG-Net at its initialisation (restored for each test), and that initial state."""
    model, initial = sgnet_built
    model.load_state_dict(initial)
    return model, initial


def test_zoo_checkpoint_loads_backbone_exactly_and_maps_the_head(sgnet_model, fcos_state, zoo_pkl):
    model, initial = sgnet_model
    checkpointer = build_checkpointer(sgnet_cfg(), model)
    checkpointer.load(str(zoo_pkl))
    loaded = model.state_dict()

    backbone = [key for key in loaded if key.startswith("backbone.")]
    assert any(key.startswith("backbone.top_block.p6") for key in backbone)
    assert any(key.startswith("backbone.fpn_lateral3") for key in backbone)
    for key in backbone:
        assert torch.equal(loaded[key], fcos_state[key]), key
    for target, source in MAPPED.items():
        assert torch.equal(loaded[target], fcos_state[source]), target
    # Everything else keeps SG-Net's initialisation, cls_score included (no class map).
    rest = [key for key in loaded if key not in set(backbone) | set(MAPPED)]
    for key in rest:
        assert torch.equal(loaded[key], initial[key]), key

    report = checkpointer.fcos_init_report
    assert report.loaded == backbone
    assert report.mapped == MAPPED
    assert report.left_at_init == rest
    assert {"head.cls_score.weight", "head.scales.0.scale", "head.align.weight"} <= set(report.left_at_init)
    assert any(key.startswith("mask_head.") for key in report.left_at_init)
    assert any(key.startswith("track_head.") for key in report.left_at_init)
    # Unused: the towers' deeper layers, the convs' biases (SG-Net's are bias-free before GN),
    # cls_score without a class map.
    assert set(report.unused) == set(fcos_state) - set(backbone) - set(MAPPED.values())
    unused = {"head.cls_subnet.6.weight", "head.cls_subnet.0.bias", "head.bbox_subnet.9.weight", "head.cls_score.weight"}
    assert unused <= set(report.unused)
    summary = report.summary(str(zoo_pkl))
    assert str(zoo_pkl) in summary and "head.cls_tower.1.{weight, bias} <- head.cls_subnet.1," in summary


def test_class_map_initialises_cls_score_rows_from_a_pth(sgnet_model, fcos_state, tmp_path):
    """A detectron2 ``.pth`` (as its trainer saves), with a hand-made class map: SG-Net classes
    0 and 2 start from checkpoint classes 5 and 79, the others keep their initialisation."""
    fcos = detectron2_fcos()
    fcos.load_state_dict(fcos_state)
    DetectionCheckpointer(fcos, save_dir=str(tmp_path)).save("model_final")
    model, initial = sgnet_model
    class_map = [-1] * 40
    class_map[0], class_map[2] = 5, 79
    checkpointer = build_checkpointer(sgnet_cfg(**{"MODEL.SGNET.FCOS_CLASS_MAP": class_map}), model)
    checkpointer.load(str(tmp_path / "model_final.pth"))

    for name in ("weight", "bias"):
        key = f"head.cls_score.{name}"
        rows, source, init = model.state_dict()[key], fcos_state[key], initial[key]
        assert torch.equal(rows[0], source[5]) and torch.equal(rows[2], source[79])
        others = [c for c in range(40) if c not in (0, 2)]
        assert torch.equal(rows[others], init[others])
    assert torch.equal(model.state_dict()["head.box_pred.weight"], fcos_state["head.bbox_pred.weight"])
    assert checkpointer.fcos_init_report.class_rows == {0: 5, 2: 79}
    assert "head.cls_score.weight" not in checkpointer.fcos_init_report.unused


P6_FROM_C5 = "backbone.top_block.p6.weight"
NORM_STATISTIC = "backbone.bottom_up.res5.2.conv3.norm.running_var"
DEEPER_RES4 = "backbone.bottom_up.res4.6.conv1.weight"


@pytest.mark.parametrize(
    "change, named",
    [
        # RetinaNet's top block: P6 from C5 (2048 channels), not from P5.
        (lambda s: s.update({P6_FROM_C5: torch.zeros(256, 2048, 3, 3)}), f"{P6_FROM_C5} (256, 2048, 3, 3) in the checkpoint"),
        (lambda s: s.pop(NORM_STATISTIC), f"{NORM_STATISTIC} missing from the checkpoint"),
        # A ResNet-101's res4 has 23 blocks, ResNet-50's 6.
        (lambda s: s.update({DEEPER_RES4: torch.zeros(256, 1024, 1, 1)}), f"{DEEPER_RES4} not in SG-Net"),
    ],
    ids=["p6-from-c5", "missing", "deeper"],
)
def test_backbone_that_does_not_fit_is_refused(sgnet_model, fcos_state, tmp_path, change, named):
    state = dict(fcos_state)
    change(state)
    path = tmp_path / "other_fcos.pth"
    torch.save({"model": state}, path)
    model, initial = sgnet_model
    with pytest.raises(ValueError, match="does not fit") as error:
        build_checkpointer(sgnet_cfg(), model).load(str(path))
    assert str(path) in str(error.value) and named in str(error.value)
    assert "\n" not in str(error.value)
    assert all(torch.equal(value, initial[key]) for key, value in model.state_dict().items())


def test_class_map_naming_a_missing_class_is_refused(sgnet_model, zoo_pkl):
    model, _ = sgnet_model
    class_map = [-1] * 39 + [COCO_CLASSES]
    with pytest.raises(ValueError, match="maps class 39 to checkpoint class 80") as error:
        build_checkpointer(sgnet_cfg(**{"MODEL.SGNET.FCOS_CLASS_MAP": class_map}), model).load(str(zoo_pkl))
    assert str(zoo_pkl) in str(error.value)


@pytest.mark.parametrize("class_map", [[0, 1, 2], [-2] * 40], ids=["length", "negative"])
def test_class_map_of_the_wrong_form_is_refused(sgnet_model, class_map):
    with pytest.raises(ValueError, match=r"MODEL.SGNET.FCOS_CLASS_MAP \[.*\]: needs one entry per class"):
        build_checkpointer(sgnet_cfg(**{"MODEL.SGNET.FCOS_CLASS_MAP": class_map}), sgnet_model[0])


def test_sgnet_checkpoint_loads_untouched(sgnet_model, tmp_path):
    """An SG-Net checkpoint (``--resume``, ``--eval-only``) loads as detectron2 loads it, with a
    class map in the config too."""
    model, initial = sgnet_model
    generator = torch.Generator().manual_seed(1)
    saved = {key: torch.randn(value.shape, generator=generator) for key, value in initial.items()}
    model.load_state_dict(saved)
    DetectionCheckpointer(model, save_dir=str(tmp_path)).save("model_final")
    model.load_state_dict(initial)

    checkpointer = build_checkpointer(sgnet_cfg(**{"MODEL.SGNET.FCOS_CLASS_MAP": list(range(40))}), model)
    checkpointer.load(str(tmp_path / "model_final.pth"))
    assert checkpointer.fcos_init_report is None
    assert all(torch.equal(value, saved[key]) for key, value in model.state_dict().items())


def test_video_predictor_loads_weights_through_sgnet_checkpointer(tmp_path):
    """The demo's predictor too: a detectron2 FCOS checkpoint without the toy backbone is refused."""
    weights = tmp_path / "fcos_head_only.pth"
    torch.save({"model": {f"head.{module}.weight": torch.zeros(1) for module in ("cls_subnet.0", "bbox_subnet.0", "ctrness")}}, weights)
    with pytest.raises(ValueError, match="does not fit SG-Net.s .*missing from the checkpoint") as error:
        VideoPredictor(tiny_cfg(**{"MODEL.WEIGHTS": str(weights), "MODEL.DEVICE": "cpu"}))
    assert str(weights) in str(error.value)
