"""Derived precisions: tools/export_model.py --quantize int8 calibrated on a video and
--precision fp16, each run in both runtimes near float32; calibration frames spread over the
sources; mistakes in one line."""
import io
import json
import logging
from contextlib import redirect_stdout
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from detectron2.modeling import build_model
from detectron2.structures import pairwise_iou

from sgnet.checkpoint import SGNetCheckpointer
from sgnet.deploy import RUNTIMES, DeployError, load_exported
from sgnet.deploy.half import ROUNDING_EXACT_OPS, convert_fp16
from sgnet.deploy.precision import agreement
from sgnet.deploy.quantize import calibration_frames

from app_fixtures import load_script
from model_fixtures import REPO_CONFIGS, pair_sample, tiny_cfg, train, two_object_scene

TOY_CONFIG = str(REPO_CONFIGS / "toy" / "sgnet_R18_toy.yaml")
# tiny_cfg's differences from the toy config, as the tools take them (sizes: the scene's own).
TINY_OPTS = [
    "MODEL.SGNET.NUM_CLASSES", "2", "TEST.CLASSES_PER_TRACK", "1", "MODEL.SGNET.SCORE_THRESH_TEST", "0.5",
    "INPUT.MIN_SIZE_TEST", "128", "INPUT.MAX_SIZE_TEST", "160",
]  # fmt: skip
SIZE = (128, 160)


def write_video(path: Path, frames) -> str:
    """(3, H, W) uint8 BGR frames -> an .mp4 file (MPEG-4 part 2, as every OpenCV build writes)."""
    height, width = frames[0].shape[-2:]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 6.0, (width, height))
    for frame in frames:
        writer.write(np.ascontiguousarray(frame.permute(1, 2, 0).numpy()))
    writer.release()
    return str(path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A model trained briefly on the two-object scene (as test_deploy's), saved as a checkpoint
    and exported by the tool at float32, int8 (calibrated on a video of the moving scene) and float16.
    Returns (config with TINY_OPTS, folder, the tool's printout)."""
    folder = tmp_path_factory.mktemp("int8")
    cfg = tiny_cfg(**{"MODEL.SGNET.SCORE_THRESH_TEST": 0.5, "INPUT.MIN_SIZE_TEST": 128, "INPUT.MAX_SIZE_TEST": 160})
    torch.manual_seed(0)
    model = build_model(cfg)
    train(model, [pair_sample(key_shift=0, ref_shift=6)], 60, lr=0.003)
    SGNetCheckpointer(model, save_dir=str(folder)).save("trained")
    video = write_video(folder / "scene.mp4", [two_object_scene(shift)[0] for shift in range(0, 12)])
    exporter = load_script("tools/export_model.py", "sgnet_export_model_int8")
    argv = ["--config-file", TOY_CONFIG, "--output", str(folder / "onnx"), "--sample-image", write_png(folder),
            "--quantize", "int8", "--calibration", video, "--frames", "6", "--precision", "fp16",
            *TINY_OPTS, "MODEL.WEIGHTS", str(folder / "trained.pth")]  # fmt: skip
    printed = io.StringIO()
    with redirect_stdout(printed):
        assert exporter.main(argv) == 0
    return cfg, folder / "onnx", printed.getvalue()


def write_png(folder: Path) -> str:
    path = folder / "sample.png"
    cv2.imwrite(str(path), two_object_scene(3)[0].permute(1, 2, 0).numpy())
    return str(path)


def test_int8_file_is_quantized_records_its_calibration_and_is_smaller(exported):
    _, folder, printed = exported
    float_file, int8_file = folder / "model.onnx", folder / "model_int8.onnx"
    assert "calibrating on 6 frames of " in printed and f"Quantized {int8_file} (" in printed
    assert "int8 vs float32: " in printed and "float32 20 (the prediction convs and the alignment's offsets)" in printed
    graph = onnx.load(str(int8_file))
    metadata = {prop.key: prop.value for prop in graph.metadata_props}
    precision = json.loads(metadata["sgnet.precision"])
    assert precision == {"precision": "int8", "calibration": "scene.mp4", "calibration_frames": 6}
    assert metadata["sgnet.config"] == {p.key: p.value for p in onnx.load(str(float_file)).metadata_props}["sgnet.config"]
    ops = [node.op_type for node in graph.graph.node]
    # Weights int8 per output channel: one DequantizeLinear per quantized weight and input.
    assert ops.count("QuantizeLinear") >= 60 and ops.count("DequantizeLinear") >= 120
    assert int8_file.stat().st_size < 0.4 * float_file.stat().st_size


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_int8_detections_match_float32_within_tolerance(exported, runtime):
    """Stated tolerance (:func:`assert_near_float32`): boxes at IoU >= 0.9, scores within 0.05,
    masks at IoU >= 0.9."""
    cfg, folder, _ = exported
    float32 = load_exported(str(folder / "model.onnx"), cfg)
    int8 = load_exported(str(folder / "model_int8.onnx"), cfg, runtime)
    assert (float32.precision, int8.precision) == ("float32", "int8")
    assert_near_float32(float32, int8, box_iou=0.9, score_difference=0.05, mask_iou=0.9)


def assert_near_float32(float32, derived, box_iou: float, score_difference: float, mask_iou: float) -> None:
    """The derived file's detections against float32's on frames of the scene the calibration
    video did not hold (odd shifts beyond it): the same count and classes, and per pair at least
    ``box_iou`` and ``mask_iou``, scores within ``score_difference``; none on a blank frame."""
    for shift in (13, 15):
        image = two_object_scene(shift)[0]
        expected, got = float32.detect_frame(image, SIZE), derived.detect_frame(image, SIZE)
        assert len(expected) >= 2 and sorted(got.pred_classes.tolist()) == sorted(expected.pred_classes.tolist())
        ious = pairwise_iou(expected.pred_boxes, got.pred_boxes)
        ious[expected.pred_classes[:, None] != got.pred_classes[None]] = 0
        best, match = ious.max(dim=1)
        assert (best >= box_iou).all() and len(set(match.tolist())) == len(expected)
        got = got[match]
        assert (got.scores - expected.scores).abs().max() <= score_difference
        intersection = (got.pred_masks & expected.pred_masks).flatten(1).sum(1)
        union = (got.pred_masks | expected.pred_masks).flatten(1).sum(1)
        assert (intersection / union >= mask_iou).all()
    assert len(derived.detect_frame(torch.full((3, *SIZE), 90, dtype=torch.uint8), SIZE)) == 0


def test_agreement_pairs_by_class_and_box():
    """Graph outputs (masks on their crops, compared on the basis map) paired by class and box."""
    box = np.array([[0, 0, 10, 10]], dtype=np.float32)
    crop = np.ones((1, 10, 10), dtype=np.float32)
    shifted = crop.copy()
    shifted[0, :, :5] = 0.2  # half the mask below the threshold
    regions, map_size = np.array([[0, 0, 10, 10]]), np.array([12, 12])
    run = [box, np.array([0.8], np.float32), np.array([1]), None, None, crop, regions, map_size]
    other = [box + 1, np.array([0.7], np.float32), np.array([1]), None, None, shifted, regions, map_size]
    result = agreement([run], [other], "int8")
    assert (result.paired, result.float_detections, result.derived_detections) == (1, 1, 1)
    assert result.mean_box_iou == pytest.approx(81 / 119) and result.mean_mask_iou == pytest.approx(0.5)
    assert result.max_score_difference == pytest.approx(0.1)
    other[2] = np.array([0])  # another class: not paired
    assert agreement([run], [other], "int8").paired == 0
    assert "with the 1 of int8 on 1 frames" in str(result)


def test_calibration_frames_spread_over_the_sources(tmp_path):
    """Each source gives its share of the frames, evenly spaced over its length; a missing
    source fails naming it."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(10):
        cv2.imwrite(str(folder / f"{index}.png"), np.full((8, 8, 3), 10 * index, dtype=np.uint8))
    video = write_video(tmp_path / "v.mp4", [torch.full((3, 32, 32), 20 * index, dtype=torch.uint8) for index in range(12)])
    frames = list(calibration_frames([str(folder), video], 5))
    # Shares 2 and 3: frames 0 and 9 of the folder, then frames 0, 6 and 11 of the video's 12
    # (its values through the codec: within a few levels).
    assert [int(f[0, 0, 0]) for f in frames[:2]] == [0, 90]
    assert [f.shape for f in frames[2:]] == [(32, 32, 3)] * 3
    assert np.abs(np.array([float(f.mean()) for f in frames[2:]]) - [0, 120, 220]).max() < 8
    assert len(list(calibration_frames([str(folder)], 40))) == 10  # no more than there are
    # A source shorter than its share leaves the rest to the next: of 22 asked, the folder's share
    # is 11 but it holds 10, so the video gives all its 12; of 30, all 10 + 12 there are.
    shapes = [f.shape for f in calibration_frames([str(folder), video], 22)]
    assert shapes.count((8, 8, 3)) == 10 and shapes.count((32, 32, 3)) == 12
    assert len(list(calibration_frames([str(folder), video], 30))) == 22
    with pytest.raises(DeployError, match="--frames must be at least 1"):
        list(calibration_frames([video], 0))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "missing.mp4")):
        list(calibration_frames([str(tmp_path / "missing.mp4")], 4))


def test_export_tool_refuses_quantize_mistakes_in_one_line(tmp_path, capsys):
    exporter = load_script("tools/export_model.py", "sgnet_export_model_int8_errors")
    base = ["--config-file", TOY_CONFIG, "--output", str(tmp_path / "out")]
    video = write_video(tmp_path / "v.mp4", [torch.full((3, 32, 32), 200, dtype=torch.uint8)] * 3)
    cases = [
        (["--quantize", "int8"], "--quantize int8 needs --calibration VIDEO_OR_FRAMES_DIR"),
        (["--calibration", video], "--quantize int8 needs --calibration VIDEO_OR_FRAMES_DIR"),
        (["--quantize", "int8", "--calibration", video, "--frames", "0"], "--frames must be at least 1; got 0"),
        (["--quantize", "int8", "--calibration", str(tmp_path / "nothing")], str(tmp_path / "nothing")),
        # A calibration source that the int8 file would replace.
        (["--quantize", "int8", "--calibration", str(tmp_path / "out" / "model_int8.onnx")], "would overwrite the input"),
    ]
    for extra, message in cases:
        assert exporter.main([*base, *extra]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and message in error, error
    assert not (tmp_path / "out").exists()


def test_fp16_file_computes_the_network_in_float16(exported):
    """The convs and matmuls of the network on float16 weights, the rest float32: half the file;
    the metadata the float file's plus its precision; the tool's printout."""
    _, folder, printed = exported
    float_file, half_file = folder / "model.onnx", folder / "model_fp16.onnx"
    assert f"Converted {half_file} (" in printed and "float16 vs float32: " in printed
    graph = onnx.load(str(half_file))
    metadata = {prop.key: prop.value for prop in graph.metadata_props}
    assert json.loads(metadata["sgnet.precision"]) == {"precision": "float16"}
    assert metadata["sgnet.config"] == {p.key: p.value for p in onnx.load(str(float_file)).metadata_props}["sgnet.config"]
    float16 = onnx.TensorProto.FLOAT16
    initializers = {tensor.name: tensor.data_type for tensor in graph.graph.initializer}
    convs = [node for node in graph.graph.node if node.op_type == "Conv"]
    network = [node for node in convs if node.name.startswith(("/backbone/", "/head/", "/basis_branch/", "/track_head/"))]
    assert len(network) == len(convs) > 40
    assert all(initializers[node.input[1]] == float16 for node in network)
    # The type of every tensor, as onnx infers them: the network's convs and matmuls read and
    # write float16; float16 reaches no other op but Casts and the rounding-exact ones (so the
    # sampling coordinates, boxes and masks are float32 work), and no output.
    inferred = onnx.shape_inference.infer_shapes(graph)
    types = {value.name: value.type.tensor_type.elem_type for value in
             [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    types.update(initializers)
    matmuls = [node for node in graph.graph.node if node.op_type == "MatMul" and node.name.startswith("/head/")]
    assert matmuls
    for node in network + matmuls:
        assert {types[name] for name in [*node.input, *node.output] if name} == {float16}, node.name
    for node in graph.graph.node:
        if node.op_type not in ("Conv", "MatMul", "Gemm", "Cast", *ROUNDING_EXACT_OPS):
            assert float16 not in {types.get(name) for name in node.input}, node.name
        if node.op_type == "GridSample":
            assert types[node.input[1]] == onnx.TensorProto.FLOAT, node.name
    assert all(output.type.tensor_type.elem_type != float16 for output in graph.graph.output)
    assert half_file.stat().st_size < 0.6 * float_file.stat().st_size


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_fp16_detections_match_float32_within_tolerance(exported, runtime):
    """On the CPU (no GPU here), :func:`assert_near_float32` at boxes IoU >= 0.98, scores within
    0.01, masks IoU >= 0.95."""
    cfg, folder, _ = exported
    float32 = load_exported(str(folder / "model.onnx"), cfg)
    half = load_exported(str(folder / "model_fp16.onnx"), cfg, runtime)
    assert half.precision == "float16"
    assert_near_float32(float32, half, box_iou=0.98, score_difference=0.01, mask_iou=0.95)


def test_derived_files_are_made_from_the_float32_export_only(exported, tmp_path):
    _, folder, _ = exported
    float_file = str(folder / "model.onnx")
    with pytest.raises(DeployError, match="already a int8 file; make the float16 file from the float32 export"):
        convert_fp16(str(folder / "model_int8.onnx"), str(tmp_path / "half.onnx"))
    with pytest.raises(DeployError, match="the float16 file would replace its float32 original"):
        convert_fp16(float_file, float_file)
    not_onnx = tmp_path / "not.onnx"
    not_onnx.write_text("not a model")
    with pytest.raises(DeployError, match=f"{not_onnx}: not an ONNX file onnx can read"):
        convert_fp16(str(not_onnx), str(tmp_path / "half.onnx"))
    assert not (tmp_path / "half.onnx").exists()


def test_an_export_warns_of_derived_files_it_did_not_remake(exported, tmp_path):
    """A float32 export into a folder holding int8 / float16 files of an earlier export says so."""
    _, folder, _ = exported
    out = tmp_path / "onnx"
    out.mkdir()
    for name in ("model_int8.onnx", "model_fp16.onnx"):
        (out / name).write_bytes((folder / name).read_bytes())
    exporter = load_script("tools/export_model.py", "sgnet_export_model_stale")
    # The tool's logger (detectron2's setup_logger) does not propagate to pytest's capture.
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("sgnet").addHandler(handler)
    try:
        with redirect_stdout(io.StringIO()):
            assert exporter.main(["--config-file", TOY_CONFIG, "--output", str(out), *TINY_OPTS]) == 0
    finally:
        logging.getLogger("sgnet").removeHandler(handler)
    warned = "\n".join(record.getMessage() for record in records)
    for name, flag in (("model_int8.onnx", "--quantize int8"), ("model_fp16.onnx", "--precision fp16")):
        assert f"{out / name} is from an earlier export, not of this one's weights: run again with {flag}" in warned
