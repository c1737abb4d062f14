"""Deployment: the frame step exported to ONNX and run in ONNX Runtime or OpenVINO equals PyTorch's."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx  # the deploy extra, which make install installs: without it these tests fail
import pytest
import torch
from detectron2.modeling import build_model
from detectron2.structures import Instances, pairwise_iou

from sgnet.config import load_config
from sgnet.data import VideoFrameReader, write_synthetic_video
from sgnet.deploy import RUNTIMES, DeployError, ONNXRuntimeSGNet, OpenVINOSGNet, export_onnx, load_exported
from sgnet.predictor import VideoPredictor

from app_fixtures import load_script
from model_fixtures import REPO_CONFIGS, pair_sample, tiny_cfg, train, two_object_scene

REPO = Path(__file__).resolve().parents[1]
# Mask pixels whose probability lies this close to the threshold may go either way.
MASK_MARGIN = 1e-3


def random_model(cfg):
    """Random weights, every location a candidate (score threshold 0), and boxes of 4 strides
    (the regression bias) so that masks cover pixels."""
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    torch.nn.init.constant_(model.head.box_pred.bias, 2.0)
    return model


# The toy config's post-processing (one candidate per location, class-agnostic NMS) and the
# release's (per-class candidates and NMS), with the per-image granularity rule.
POST_PROCESSING = {
    "toy": {},
    "release": {
        "MODEL.SGNET.NMS_CLASS_AGNOSTIC": False,
        "MODEL.SGNET.NMS_THRESH_TEST": 0.3,
        "MODEL.SGNET.MASK.GRANULARITY_PER_IMAGE": True,
    },
}


@pytest.fixture(scope="module", params=sorted(POST_PROCESSING))
def random_export(request, tmp_path_factory):
    cfg = tiny_cfg(**{"MODEL.SGNET.SCORE_THRESH_TEST": 0.0, **POST_PROCESSING[request.param]})
    model = random_model(cfg)
    if request.param == "release":
        # Both classes at probability ~0.5 everywhere: each location is a candidate of both, and
        # per-class NMS keeps a detection of each class on the same box.
        torch.nn.init.zeros_(model.head.cls_score.bias)
    summary = export_onnx(model, cfg, str(tmp_path_factory.mktemp("random") / "model.onnx"))
    return cfg, model, {runtime: load_exported(summary.path, cfg, runtime) for runtime in RUNTIMES}, summary


@pytest.fixture(scope="module")
def trained_export(tmp_path_factory):
    """A briefly trained model (60 steps on the two-object scene: its objects score ~0.8, a
    blank frame's best location ~0.2), exported twice: from a blank frame (the trace sees no
    detection, and the graph must still hold for frames with some) and from a scene (the
    reverse). CPU training is not bit-reproducible within a process (the first run in a process
    ends a few ULPs away from later ones, which 60 steps amplify): at lr 0.005 the blank frame's
    best score was 0.25 on one path and 0.55 on the other, at 0.003 it is 0.21 and 0.22."""
    cfg = tiny_cfg(**{"MODEL.SGNET.SCORE_THRESH_TEST": 0.5})
    torch.manual_seed(0)
    model = build_model(cfg)
    train(model, [pair_sample(key_shift=0, ref_shift=6)], 60, lr=0.003)
    model.eval()
    blank = torch.full((3, 128, 160), 90, dtype=torch.uint8)
    with torch.no_grad():
        assert len(model.detect_frame(blank, (128, 160))) == 0
    folder = tmp_path_factory.mktemp("trained")
    exported = {
        name: export_onnx(model, cfg, str(folder / name / "model.onnx"), sample_image=sample).path
        for name, sample in (("blank", blank), ("scene", two_object_scene(2)[0]))
    }
    deployed = {
        (name, runtime): load_exported(path, cfg, runtime) for name, path in exported.items() for runtime in RUNTIMES
    }
    return cfg, model, deployed


def eager_frame(model, image, output_size):
    """PyTorch's detections, and a (D, H, W) mask of the pixels within MASK_MARGIN of the
    threshold (those where thresholds moved by the margin disagree)."""
    threshold = model.mask_threshold
    with torch.no_grad():
        instances = model.detect_frame(image, output_size)
        bounds = []
        for shifted in (threshold - MASK_MARGIN, threshold + MASK_MARGIN):
            model.mask_threshold = shifted
            bounds.append(model.detect_frame(image, output_size).pred_masks)
    model.mask_threshold = threshold
    return instances, bounds[0] & ~bounds[1]


def assert_same_detections(eager: Instances, near_threshold: torch.Tensor, deployed: Instances) -> int:
    """One-to-one by box IoU > 0.99 and class (per-class NMS may keep one box under two classes),
    values within the issue's tolerances; returns the number of mask pixels that differ (all
    within MASK_MARGIN of the threshold)."""
    assert deployed.image_size == eager.image_size
    assert len(deployed) == len(eager)
    if len(eager) == 0:
        return 0
    iou = pairwise_iou(eager.pred_boxes, deployed.pred_boxes)
    iou[eager.pred_classes[:, None] != deployed.pred_classes[None]] = 0
    best, match = iou.max(dim=1)
    assert (best > 0.99).all() and len(set(match.tolist())) == len(eager)
    deployed = deployed[match]
    torch.testing.assert_close(deployed.pred_boxes.tensor, eager.pred_boxes.tensor, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(deployed.scores, eager.scores, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(deployed.class_scores, eager.class_scores, rtol=0, atol=1e-4)
    torch.testing.assert_close(deployed.embeddings, eager.embeddings, rtol=0, atol=1e-4)
    assert torch.equal(deployed.pred_classes, eager.pred_classes)
    assert deployed.pred_masks.dtype == torch.bool and deployed.pred_masks.shape == eager.pred_masks.shape
    differ = deployed.pred_masks != eager.pred_masks
    assert not (differ & ~near_threshold).any()
    return int(differ.sum())


def test_export_writes_a_checked_simplified_model_with_dynamic_sizes(random_export):
    cfg, _, _, summary = random_export
    onnx.checker.check_model(summary.path)
    # onnxslim folds the tracer's shape plumbing: the file holds the simplified graph.
    assert summary.nodes == len(onnx.load(summary.path).graph.node) < 0.6 * summary.traced_nodes
    print(f"{summary.traced_nodes} nodes traced, {summary.nodes} in the file")
    assert summary.inputs == ["image: uint8[3, height, width]", "output_size: int64[2]"]
    assert summary.outputs == [
        "boxes: float[detections, 4]",
        "scores: float[detections]",
        "classes: int64[detections]",
        "class_scores: float[detections, 2]",
        "embeddings: float[detections, 64]",
        "mask_probabilities: float[detections, crop_height, crop_width]",
        "mask_regions: int64[detections, 4]",
        "mask_map_size: int64[2]",
    ]
    assert summary.size_bytes == os.path.getsize(summary.path) > 0


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize(
    "input_size, output_size",
    [
        ((144, 216), (144, 216)),
        ((128, 160), (256, 320)),
        ((97, 131), (130, 175)),
        ((192, 320), (96, 160)),
        ((360, 640), (360, 640)),  # the release's test size (not a multiple of 32)
        ((301, 533), (602, 1066)),
    ],
)
def test_random_weights_frames_equal_pytorch_at_any_size(random_export, runtime, input_size, output_size):
    """The export example is 192 x 288; other input and output sizes, odd ones included."""
    _, model, exported, _ = random_export
    deployed = exported[runtime]
    image = torch.randint(0, 256, (3, *input_size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    eager, near = eager_frame(model, image, output_size)
    assert len(eager) == model.max_detections_per_image and eager.pred_masks.any()
    if not model.nms_class_agnostic:  # per-class candidates: both classes among the detections
        assert set(eager.pred_classes.tolist()) == {0, 1}
    differing = assert_same_detections(eager, near, deployed.detect_frame(image, output_size))
    print(f"{runtime} {input_size} -> {output_size}: {differing} mask pixels differ, all within {MASK_MARGIN} of the threshold")


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("traced_on", ["blank", "scene"])
def test_trained_model_frames_equal_pytorch_and_a_blank_frame_gives_none(trained_export, traced_on, runtime):
    _, model, exported = trained_export
    deployed = exported[traced_on, runtime]
    for shift in (0, 3, 6):
        image, _ = two_object_scene(shift)
        eager, near = eager_frame(model, image, (128, 160))
        assert 2 <= len(eager) and eager.pred_masks.any()
        assert_same_detections(eager, near, deployed.detect_frame(image, (128, 160)))
    # The same tracks, scores, labels and masks over a video of the moving objects.
    video = {"image": [two_object_scene(shift)[0] for shift in (0, 2, 4, 6, 8)], "height": 128, "width": 160}
    with torch.no_grad():
        expected = model.inference_video(video)
    result = deployed.inference_video(video)
    assert len(result["pred_masks"]) == len(expected["pred_masks"]) >= 2
    assert result["pred_labels"] == expected["pred_labels"]
    assert result["pred_scores"] == pytest.approx(expected["pred_scores"], rel=1e-4)
    for track, expected_track in zip(result["pred_masks"], expected["pred_masks"]):
        assert [m is None for m in track] == [m is None for m in expected_track]
        for mask, expected_mask in zip(track, expected_track):
            if mask is not None:  # the same pixels but for a few at the threshold
                assert (mask != expected_mask).float().mean() < 1e-3
    blank = torch.full((3, 96, 120), 90, dtype=torch.uint8)
    none = deployed.detect_frame(blank, (100, 130))
    assert len(none) == 0 and none.pred_masks.shape == (0, 100, 130) and none.embeddings.shape == (0, 64)
    assert len(deployed.inference_video({"image": [blank, blank], "height": 100, "width": 130})["pred_masks"]) == 0


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_track_ids_over_a_synthetic_video_equal_pytorch(random_export, runtime, tmp_path):
    cfg, model, exported, _ = random_export
    deployed = exported[runtime]
    cfg = cfg.clone()
    cfg.merge_from_list(["INPUT.MIN_SIZE_TEST", 96, "INPUT.MAX_SIZE_TEST", 160])
    video = write_synthetic_video(str(tmp_path / "video.mp4"), num_frames=8, height=96, width=160, seed=2)
    frames = list(VideoFrameReader(video))
    tracked = [list(VideoPredictor(cfg, model=m).track(frames)) for m in (model, deployed)]
    ids = [[instances.track_ids.tolist() for _, instances in outputs] for outputs in tracked]
    assert ids[0] == ids[1] and all(ids[0])
    for (_, eager), (_, onnx_instances) in zip(*tracked):
        torch.testing.assert_close(onnx_instances.pred_boxes.tensor, eager.pred_boxes.tensor, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_bad_model_files_fail_in_one_line_naming_the_file(random_export, runtime, tmp_path):
    cfg, _, _, summary = random_export
    runtime_class = RUNTIMES[runtime]
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07this is not an onnx model" * 20)
    foreign = tmp_path / "foreign.onnx"
    node = onnx.helper.make_node("Relu", ["x"], ["y"])
    graph = onnx.helper.make_graph(
        [node], "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )  # fmt: skip
    onnx.save(onnx.helper.make_model(graph), str(foreign))
    # An export of an sgnet whose graph had other outputs (the masks at the frame size, before).
    older = tmp_path / "older.onnx"
    older_model = onnx.helper.make_model(graph)
    older_model.metadata_props.add(key="sgnet.config", value="{}")
    onnx.save(older_model, str(older))
    other = cfg.clone()
    other.merge_from_list(["MODEL.SGNET.NUM_CLASSES", 3, "MODEL.SGNET.SCORE_THRESH_TEST", 0.4])
    cases = [
        (tmp_path / "missing.onnx", cfg, "no such ONNX model file"),
        (corrupt, cfg, f"not a model {'ONNX Runtime' if runtime == 'onnxruntime' else 'OpenVINO'} can load"),
        (foreign, cfg, "not an SG-Net frame step exported by tools/export_model.py"),
        (older, cfg, "exported by an older sgnet (inputs ['x'], outputs ['y']): export it again"),
        (Path(summary.path), other, "exported with MODEL.SGNET.NUM_CLASSES = 2, but the config has 3 (and 1 more key(s): "
                                    "MODEL.SGNET.SCORE_THRESH_TEST)"),
    ]
    for path, config, message in cases:
        with pytest.raises(DeployError) as error:
            runtime_class(str(path), config)
        text = str(error.value)
        assert str(path) in text and message in text and "\n" not in text and "Exception from" not in text
    # The tracker's keys and the mask threshold (the paste's) are outside the graph: free to change.
    retuned = cfg.clone()
    retuned.merge_from_list(
        ["MODEL.SGNET.TRACKER.IOU_WEIGHT", 7.0, "MODEL.SGNET.TRACKER.MAX_AGE", 3, "MODEL.SGNET.MASK.THRESHOLD", 0.4]
    )
    retuned_model = runtime_class(summary.path, retuned)
    assert retuned_model.tracker.iou_weight == 7.0 and retuned_model.mask_threshold == 0.4
    # A frame in the wrong layout, as the one error type.
    deployed = runtime_class(summary.path, cfg)
    with pytest.raises(DeployError, match=r"\(3, h, w\) uint8 .* got a \(96, 160, 3\) torch.uint8 tensor"):
        deployed.detect_frame(torch.zeros(96, 160, 3, dtype=torch.uint8), (96, 160))


def test_core_package_never_imports_onnx():
    """Every module of the package but sgnet.deploy imported: neither it nor a deploy package loads."""
    package = REPO / "sgnet"
    modules = sorted(
        ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for path in package.rglob("*.py")
        # A package's __main__ runs its command line when imported: its imports are the CLI module's.
        if "deploy" not in path.relative_to(package).parts and path.name != "__main__.py"
    )
    assert "sgnet.modeling.meta_arch" in modules and "sgnet.data.video" in modules
    code = (
        f"import importlib, sys\nfor name in {modules!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('onnx', 'onnxruntime', 'onnxslim', 'openvino') "
        "or m.startswith('sgnet.deploy')))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_export_tool_and_demo_with_onnx(tmp_path, capsys):
    """tools/export_model.py writes a checked model that records the checkpoint's class names;
    demo/demo.py --onnx writes every frame."""
    from sgnet.checkpoint import SGNetCheckpointer

    model = random_model(tiny_cfg(**{"MODEL.SGNET.NUM_CLASSES": 3}))
    # Every location scores ~0.25 (class probability 0.5): detections at the toy config's own
    # score threshold, so that the README example's config (the file alone) agrees with the export.
    torch.nn.init.zeros_(model.head.cls_score.bias)
    classes = {"names": ["disc", "square", "triangle"], "dataset_ids": [1, 2, 3]}
    SGNetCheckpointer(model, save_dir=str(tmp_path), classes=classes).save("random")
    config = str(REPO_CONFIGS / "toy" / "sgnet_R18_toy.yaml")
    opts = ["MODEL.WEIGHTS", str(tmp_path / "random.pth")]
    sizes = ["INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "160"]
    exporter = load_script("tools/export_model.py", "sgnet_export_model")
    assert exporter.main(["--config-file", config, "--format", "onnx", "--output", str(tmp_path / "onnx"), *opts]) == 0
    printed = capsys.readouterr().out
    assert "checked by onnx.checker" in printed and "mask_probabilities: float[detections, crop_height, crop_width]" in printed
    nodes = int(printed.split("graph: ", 1)[1].split()[0])
    assert nodes == len(onnx.load(str(tmp_path / "onnx" / "model.onnx")).graph.node) and ", simplified from " in printed
    traced_output = ["--output", str(tmp_path / "traced"), "--no-simplify"]
    assert exporter.main(["--config-file", config, "--format", "onnx", *traced_output, *opts]) == 0
    traced_nodes = int(printed.split(", simplified from ", 1)[1].split()[0])
    assert f"graph: {traced_nodes} nodes (as traced)" in capsys.readouterr().out
    assert len(onnx.load(str(tmp_path / "traced" / "model.onnx")).graph.node) == traced_nodes
    model_file = tmp_path / "onnx" / "model.onnx"
    onnx.checker.check_model(str(model_file))
    exported_cfg = load_config(config, opts)
    assert ONNXRuntimeSGNet(str(model_file), exported_cfg).class_names == classes["names"]

    demo = load_script("demo/demo.py", "sgnet_demo_onnx")
    video = write_synthetic_video(str(tmp_path / "input.mp4"), num_frames=5, height=96, width=160, seed=4)
    args = ["--config-file", config, "--video-input", video, "--output", str(tmp_path / "out.mp4"), "--confidence-threshold", "0"]
    assert RUNTIMES == {"onnxruntime": ONNXRuntimeSGNet, "openvino": OpenVINOSGNet}
    for runtime in RUNTIMES:
        assert demo.main([*args, "--onnx", str(model_file), "--runtime", runtime, "--opts", *opts, *sizes]) == 0
        assert "Wrote 5 frames" in capsys.readouterr().out
        reader = VideoFrameReader(str(tmp_path / "out.mp4"))
        assert len(list(reader)) == 5 and (reader.height, reader.width) == (96, 160)
        (tmp_path / "out.mp4").unlink()
    assert demo.main([*args, "--runtime", "openvino", "--opts", *opts, *sizes]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--runtime openvino runs an exported model: give it with --onnx FILE" in error
    # The README's Python example, on this file, the toy config and the video.
    readme = (REPO / "README.md").read_text()
    example = readme.split("## Deploy", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    for placeholder, value in (
        ("configs/ytvis_2019/sgnet_R50_FPN_1x.yaml", config), ("output/onnx/model.onnx", str(model_file)), ("my_video.mp4", video)
    ):
        assert placeholder in example
        example = example.replace(placeholder, value)
    assert len(example.strip().splitlines()) <= 10
    exec(compile(example, "README.md", "exec"), {})
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["0", "1", "2", "3", "4"]
    assert not any(line.startswith(f"{index} []") for index, line in enumerate(lines))  # tracks in every frame
    # A file of another config: one line, exit status 2, nothing written.
    # (Another class count is refused before, against the dataset's classes: tests/test_user_errors.py.)
    assert demo.main([*args, "--onnx", str(model_file), "--opts", *opts, "MODEL.SGNET.DETECTIONS_PER_IMAGE", "7"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and str(model_file) in error and "MODEL.SGNET.DETECTIONS_PER_IMAGE = " in error


def test_the_simplification_check_matches_detections_and_finds_differences():
    from sgnet.deploy.export import _first_difference

    rng = np.random.default_rng(0)
    boxes = np.array([[0, 0, 10, 10], [20, 20, 40, 40], [5, 5, 30, 30]], dtype=np.float32)
    map_size = np.array([24, 24])  # the frame's one output, not per detection
    crops = rng.random((3, 8, 8), dtype=np.float32)
    regions = np.array([[0, 0, 8, 8], [4, 10, 12, 18], [16, 16, 24, 24]])
    reference = [boxes, np.array([0.5, 0.5, 0.4], np.float32), np.array([0, 1, 1]), rng.random((3, 2), dtype=np.float32),
                 rng.random((3, 4), dtype=np.float32), crops, regions, map_size]  # fmt: skip

    def per_detection(outputs, select):
        return [x if x is map_size else select(x) for x in outputs]

    swapped = per_detection(reference, lambda x: x[[1, 0, 2]])  # near-tied scores in the other order
    assert _first_difference(reference, swapped) is None
    moved = [x.copy() for x in reference]
    moved[0][2, 1] += 0.5
    assert _first_difference(reference, moved) == "boxes differs by up to 0.5"
    # Masks compared where they lie on the map: one pixel may differ (a crop bound rounding the
    # other way), not two; a crop moved by a row differs in many.
    nudged = [x.copy() for x in reference]
    nudged[5][0, 0, 0] += 0.01
    assert _first_difference(reference, nudged) is None
    nudged[5][0, 0, 1] += 0.01
    assert _first_difference(reference, nudged) == "2 of 1728 mask probabilities on the map differ"
    moved_crop = [x.copy() for x in reference]
    moved_crop[6][1] += [1, 0, 1, 0]
    assert _first_difference(reference, moved_crop).endswith("of 1728 mask probabilities on the map differ")
    # A crop padded differently (another largest box) lies the same on the map.
    padded = [x.copy() for x in reference]
    padded[5] = np.pad(padded[5], ((0, 0), (0, 2), (0, 1)))
    assert _first_difference(reference, padded) is None
    assert _first_difference(reference, per_detection(reference, lambda x: x[:2])) == "2 detections instead of 3"
    # One box twice (clipped to the frame) under two scores: paired by score.
    clipped = per_detection(reference, lambda x: np.concatenate([x, x[:1]]))
    clipped[1][3], clipped[4][3] = 0.45, 0.0
    assert _first_difference(clipped, per_detection(clipped, lambda x: x[[3, 1, 2, 0]])) is None
    clipped_other = [x.copy() for x in clipped]
    clipped_other[4][3] += 1
    assert _first_difference(clipped, clipped_other) == "embeddings differs by up to 1"
    empty = per_detection(reference, lambda x: x[:0])
    assert _first_difference(empty, [x.copy() for x in empty]) is None


def test_export_as_traced_and_a_failed_check_keeps_the_earlier_file(tmp_path, monkeypatch):
    """simplify=False writes the graph as traced, which both runtimes run equal to PyTorch; a
    simplification that fails its check ends in one error naming the user's file, which keeps
    its earlier content, with nothing left beside it."""
    import sgnet.deploy.export as export

    cfg = tiny_cfg(**{"MODEL.SGNET.SCORE_THRESH_TEST": 0.0})
    model = random_model(cfg)
    path = tmp_path / "model.onnx"
    traced = export_onnx(model, cfg, str(path), simplify=False)
    assert traced.nodes == traced.traced_nodes == len(onnx.load(str(path)).graph.node) > 3000
    image = torch.randint(0, 256, (3, 97, 131), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    eager, near = eager_frame(model, image, (130, 175))
    for runtime in RUNTIMES:
        assert_same_detections(eager, near, load_exported(str(path), cfg, runtime).detect_frame(image, (130, 175)))
    before = path.read_bytes()
    monkeypatch.setattr(export, "_first_difference", lambda reference, simplified: "boxes differs by up to 9")
    with pytest.raises(DeployError) as error:
        export_onnx(model, cfg, str(path))
    message = str(error.value)
    assert message.startswith(f"{path}: onnxslim ") and "changed the graph's results on a [3, 192, 288] frame" in message
    assert "(boxes differs by up to 9)" in message and "--no-simplify" in message and "\n" not in message
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
