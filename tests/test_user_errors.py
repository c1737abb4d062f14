"""A user's mistakes end in one line naming the file or key, exit status 2, no traceback; and
nothing of the user's is overwritten or left half-written (issue 28).

The apps run in this process through their ``cli`` / ``main`` (each returns the exit status as
``sys.exit`` would get it); the signal case runs a real subprocess.
"""
import contextlib
import hashlib
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog

from sgnet.config import load_config
from sgnet.config_checks import check_dataset_classes
from sgnet.data import register_ytvis_instances, write_synthetic_video
from sgnet.errors import InvalidInput, MissingInput, run_main
from sgnet.predictor import VideoPredictor, as_bgr

from app_fixtures import load_script
from data_fixtures import write_tiny_ytvis
from model_fixtures import tiny_cfg

REPO = Path(__file__).resolve().parents[1]
TOY_CONFIG = REPO / "configs" / "toy" / "sgnet_R18_toy.yaml"


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def folder_digest(folder) -> dict:
    return {p.name: digest(p) for p in sorted(Path(folder).iterdir())}


def one_error_line(capsys, prog: str) -> str:
    """The app's stderr (loggers print to stdout) besides its progress bar: exactly one line,
    ``prog: error: ...``, and no traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and not line.startswith("SG-Net demo:")]
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def train_net():
    return load_script("train_net.py", "sgnet_train_net_errors")


@pytest.fixture(scope="module")
def demo():
    return load_script("demo/demo.py", "sgnet_demo_errors")


@pytest.fixture(scope="module")
def exporter():
    return load_script("tools/export_model.py", "sgnet_export_model_errors")


# -- the convention ------------------------------------------------------------------------------
def test_run_main_reports_user_errors_in_one_line_and_keeps_tracebacks_of_bugs(capsys):
    def mistake(argv):
        raise MissingInput("/data/x.json: no such file\n(second line)")

    assert run_main("tool.py", mistake) == 2
    assert capsys.readouterr().err == "tool.py: error: /data/x.json: no such file; (second line)\n"
    with pytest.raises(ZeroDivisionError):  # a programming error is not a user's mistake
        run_main("tool.py", lambda argv: 1 / 0)
    assert run_main("tool.py", lambda argv: 0) == 0


# -- config values and classes -------------------------------------------------------------------
@pytest.mark.parametrize(
    "override, message",
    [
        (["MODEL.SGNET.DETECTIONS_PER_IMAGE", "-1"], "command-line override: MODEL.SGNET.DETECTIONS_PER_IMAGE -1: must be an integer >= 1"),
        (["MODEL.SGNET.SCORE_THRESH_TEST", "1.5"], "MODEL.SGNET.SCORE_THRESH_TEST 1.5: must be a number in [0, 1)"),
        (["MODEL.SGNET.NMS_THRESH_TEST", "2.0"], "MODEL.SGNET.NMS_THRESH_TEST 2.0: must be a number in (0, 1]"),
        (["MODEL.SGNET.NUM_CLASSES", "5"], "MODEL.SGNET.NUM_CLASSES 5 but DATASETS.TRAIN 'sgnet_toy_train' has 3 classes (disc, square, triangle)"),
        (["MODEL.SGNET.NUM_CLASSES", "2", "TEST.CLASSES_PER_TRACK", "1"], "MODEL.SGNET.NUM_CLASSES 2 but DATASETS.TRAIN 'sgnet_toy_train' has 3 classes"),
        (["MODEL.SGNET.NUM_CLASSES", "2"], "TEST.CLASSES_PER_TRACK 3: more than MODEL.SGNET.NUM_CLASSES 2"),
        (["MODEL.SGNET.NMSX", "1"], "command-line override: Non-existent key: MODEL.SGNET.NMSX"),
        (["DATASETS.TRAIN", "('no_such_split',)"], "DATASETS.TRAIN: 'no_such_split' is not a registered dataset"),
        (["DATASETS.REGISTER", "(('mine', 'no/such.json', '.'),)"], "DATASETS.REGISTER entry 0 ('mine'): no annotation file"),
    ],
    ids=["detections", "score", "nms", "more-classes", "fewer-classes", "fewer-than-reported", "unknown-key", "unregistered", "register"],
)
def test_train_net_refuses_bad_settings_before_building_anything(train_net, capsys, tmp_path, override, message):
    output = tmp_path / "run"
    assert train_net.cli(["--config-file", str(TOY_CONFIG), *override, "OUTPUT_DIR", str(output)]) == 2
    line = one_error_line(capsys, "train_net.py")
    assert message in line
    assert not output.exists()  # nothing set up: no log, no config dump


@pytest.mark.parametrize(
    "content, message",
    [
        (None, r"no such file \(config file\)"),
        ("MODEL: [1, 2", "while parsing"),
        ("just text", "not a YAML mapping of config keys"),
        ("- MODEL\n- SOLVER\n", "not a YAML mapping of config keys"),
        ("", "not a YAML mapping of config keys"),
    ],
    ids=["missing", "bad-yaml", "not-a-mapping", "a-list", "empty"],
)
def test_bad_config_files_are_one_line_naming_the_file(tmp_path, content, message):
    config = tmp_path / "config.yaml"
    if content is not None:
        config.write_text(content)
    with pytest.raises(MissingInput if content is None else InvalidInput, match=message) as error:
        load_config(str(config))
    assert str(config) in str(error.value)


@contextlib.contextmanager
def log_handlers_restored():
    """train_net's setup (detectron2's default_setup) adds log handlers on the stream of the
    moment, this test's capture: removed after, later tests would log into a closed stream."""
    loggers = [logging.getLogger(name) for name in ("detectron2", "fvcore", "sgnet")]
    saved = [list(logger.handlers) for logger in loggers]
    try:
        yield
    finally:
        for logger, handlers in zip(loggers, saved):
            for handler in set(logger.handlers) - set(handlers):
                handler.close()
            logger.handlers[:] = handlers


def test_a_builtin_split_not_downloaded_is_one_line_saying_where_to_put_it(train_net, capsys, tmp_path):
    from sgnet.data.datasets.builtin import register_all_ytvis

    from data_fixtures import reregistered

    with reregistered(["ytvis_2019_train"]), log_handlers_restored():
        register_all_ytvis(str(tmp_path / "datasets"))  # an empty $DETECTRON2_DATASETS
        argv = ["--config-file", str(TOY_CONFIG), "DATASETS.TRAIN", "('ytvis_2019_train',)", "DATASETS.TEST", "()"]
        argv += ["MODEL.SGNET.NUM_CLASSES", "40", "OUTPUT_DIR", str(tmp_path / "run")]
        assert train_net.cli(argv) == 2
    line = one_error_line(capsys, "train_net.py")
    assert f"Dataset 'ytvis_2019_train' expects {tmp_path}/datasets/ytvis_2019/train.json, which does not exist" in line
    assert "https://youtube-vos.org/dataset/vis/" in line


def test_a_bad_value_names_where_it_was_set(tmp_path):
    """The file when the file sets it, the command line when an override does (a user looks for
    the key where the message says it is)."""
    config = tmp_path / "mine.yaml"
    config.write_text(f"_BASE_: {TOY_CONFIG}\nMODEL:\n  SGNET:\n    NMS_THRESH_TEST: 2.0\n")
    with pytest.raises(InvalidInput) as error:
        load_config(str(config))
    assert str(error.value) == f"{config}: MODEL.SGNET.NMS_THRESH_TEST 2.0: must be a number in (0, 1]"
    with pytest.raises(InvalidInput) as error:
        load_config(str(config), ["MODEL.SGNET.NMS_THRESH_TEST", "0.6", "MODEL.SGNET.SCORE_THRESH_TEST", "1.0"])
    assert str(error.value) == "command-line override: MODEL.SGNET.SCORE_THRESH_TEST 1.0: must be a number in [0, 1)"
    assert load_config(str(config), ["MODEL.SGNET.NMS_THRESH_TEST", "0.6"]).MODEL.SGNET.NMS_THRESH_TEST == 0.6


def _two_class_dataset(root: Path, name: str, categories: list) -> str:
    """A registered copy of the tiny YouTube-VIS dataset with its categories renamed/renumbered
    (only video 2's fish kept, as category ``categories[0]``)."""
    tiny = write_tiny_ytvis(str(root))
    content = tiny.copy_content()
    content["annotations"] = [a for a in content["annotations"] if a["video_id"] == 2]
    for annotation in content["annotations"]:
        annotation["category_id"] = categories[0]["id"]
    content["categories"] = categories
    json_file = tiny.write_variant(content, f"{name}.json")
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    register_ytvis_instances(name, {}, json_file, tiny.image_root)
    return name


def test_training_and_test_sets_that_number_classes_differently_are_refused_once_loaded(tmp_path):
    """Both files name the same two classes, with swapped ids: label 0 would be "cat" in one and
    "dog" in the other. Unknown before loading (no registered classes), refused after."""
    train = _two_class_dataset(tmp_path / "a", "swap_train", [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}])
    test = _two_class_dataset(tmp_path / "b", "swap_test", [{"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}])
    cfg = tiny_cfg(**{"DATASETS.TRAIN": (train,), "DATASETS.TEST": (test,)})
    check_dataset_classes(cfg)  # classes not known yet
    DatasetCatalog.get(train), DatasetCatalog.get(test)
    with pytest.raises(InvalidInput, match="DATASETS.TRAIN 'swap_train' and DATASETS.TEST 'swap_test' name their classes differently \\(class 0 is 'cat' in one and 'dog' in the other\\)"):
        check_dataset_classes(cfg)
    same = _two_class_dataset(tmp_path / "c", "swap_test", [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}])
    DatasetCatalog.get(same)
    check_dataset_classes(cfg)


# -- weights files -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["text", "empty", "truncated", "missing"])
def test_unreadable_weights_are_one_line_naming_the_file(random_weights, tmp_path, kind):
    weights = tmp_path / "weights.pth"
    if kind == "text":
        weights.write_text("epoch 1: loss 0.3\n")
    elif kind == "empty":
        weights.write_bytes(b"")
    elif kind == "truncated":
        weights.write_bytes(random_weights.read_bytes()[:5000])
    error_type = MissingInput if kind == "missing" else InvalidInput
    with pytest.raises(error_type) as error:
        VideoPredictor(tiny_cfg(**{"MODEL.WEIGHTS": str(weights), "MODEL.SGNET.NUM_CLASSES": 3}))
    message = str(error.value)
    assert str(weights) in message and "\n" not in message
    assert ("no such checkpoint file" if kind == "missing" else "not a checkpoint torch or detectron2 can read") in message


def test_export_model_reports_bad_weights_and_unwritable_outputs_in_one_line(exporter, capsys, tmp_path, monkeypatch):
    text = tmp_path / "notes.pth"
    text.write_text("not weights")
    assert exporter.main(["--config-file", str(TOY_CONFIG), "--output", str(tmp_path / "out"), "MODEL.WEIGHTS", str(text)]) == 2
    assert f"{text}: not a checkpoint torch or detectron2 can read" in one_error_line(capsys, "export_model.py")
    assert not (tmp_path / "out").exists()

    (tmp_path / "a_file").write_text("")
    assert exporter.main(["--config-file", str(TOY_CONFIG), "--output", str(tmp_path / "a_file" / "sub")]) == 2
    assert "model.onnx: cannot write it" in one_error_line(capsys, "export_model.py")

    # A read-only folder (tests run as root, which permissions do not stop: the refusal simulated).
    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied", kwargs.get("dir"))

    monkeypatch.setattr("tempfile.mkstemp", read_only)
    target = tmp_path / "readonly" / "nested"
    assert exporter.main(["--config-file", str(TOY_CONFIG), "--output", str(target)]) == 2
    assert "Permission denied" in one_error_line(capsys, "export_model.py")
    assert not (tmp_path / "readonly").exists()  # the folders it made are gone again


# -- the demo ------------------------------------------------------------------------------------
def demo_args(source_flag, source, output, weights, *extra):
    return [
        "--config-file", str(TOY_CONFIG), source_flag, str(source), "--output", str(output),
        "--confidence-threshold", "0", *extra,
        "--opts", "MODEL.WEIGHTS", str(weights), "MODEL.SGNET.SCORE_THRESH_TEST", "0.0",
        "INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "160",
    ]  # fmt: skip


def test_demo_never_overwrites_its_input_video(demo, random_weights, tmp_path, capsys):
    video = write_synthetic_video(str(tmp_path / "x.mp4"), num_frames=3, height=96, width=160, seed=1)
    before = digest(video)
    assert demo.main(demo_args("--video-input", video, video, random_weights)) == 2
    assert f"--output {video} would overwrite the input {video}" in one_error_line(capsys, "demo.py")
    assert digest(video) == before
    link = tmp_path / "link.mp4"
    link.symlink_to(video)  # the same file by another name
    assert demo.main(demo_args("--video-input", video, link, random_weights)) == 2
    assert "would overwrite the input" in one_error_line(capsys, "demo.py")
    assert digest(video) == before


@pytest.mark.parametrize("source", ["folder", "glob"])
def test_demo_never_writes_its_frames_over_the_input_frames(demo, random_weights, tmp_path, capsys, source):
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(3):
        cv2.imwrite(str(frames / f"{index:05d}.png"), np.full((64, 96, 3), 40 * index, np.uint8))
    before = folder_digest(frames)
    pattern = frames if source == "folder" else frames / "*.png"
    assert demo.main(demo_args("--input", pattern, frames, random_weights)) == 2
    assert f"--output {frames} would overwrite the input {frames / '00000.png'}" in one_error_line(capsys, "demo.py")
    assert folder_digest(frames) == before


def test_demo_refuses_an_output_format_it_cannot_write_and_a_strip_over_its_input(demo, random_weights, tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(2):
        cv2.imwrite(str(frames / f"{index:05d}.png"), np.full((64, 96, 3), 90, np.uint8))
    before = folder_digest(frames)
    assert demo.main(demo_args("--input", frames, tmp_path / "out.webm", random_weights)) == 2
    assert "--output" in (line := one_error_line(capsys, "demo.py")) and "not .webm" in line
    assert not (tmp_path / "out.webm").exists()
    output, strip = tmp_path / "out.mp4", frames / "00000.png"
    assert demo.main(demo_args("--input", frames, output, random_weights, "--strip", str(strip))) == 2
    assert f"--strip {strip} would overwrite the input {strip}" in one_error_line(capsys, "demo.py")
    assert demo.main(demo_args("--input", frames, output, random_weights, "--strip", str(tmp_path / "s.gif"))) == 2
    assert "--strip" in one_error_line(capsys, "demo.py") and not (tmp_path / "s.gif").exists()
    assert not output.exists() and folder_digest(frames) == before


def test_demo_reports_a_strip_it_could_not_write(demo, random_weights, tmp_path, capsys):
    video = write_synthetic_video(str(tmp_path / "x.mp4"), num_frames=2, height=96, width=160, seed=1)
    (tmp_path / "a_file").write_text("")
    strip = tmp_path / "a_file" / "strip.png"
    assert demo.main(demo_args("--video-input", video, tmp_path / "out.mp4", random_weights, "--strip", str(strip))) == 2
    assert f"--strip {strip}: cannot write it" in one_error_line(capsys, "demo.py")


@pytest.mark.parametrize(
    "opts, message",
    [(["MODEL.WEIGHTS", "/no/such/model.pth"], "/no/such/model.pth: no such checkpoint file"), (["MODEL.SGNET.NMSX", "1"], "Non-existent key: MODEL.SGNET.NMSX")],
    ids=["missing-weights", "misspelled-key"],
)
def test_demo_bad_opts_are_one_line(demo, tmp_path, capsys, opts, message):
    video = write_synthetic_video(str(tmp_path / "x.mp4"), num_frames=2, height=96, width=160, seed=1)
    args = ["--config-file", str(TOY_CONFIG), "--video-input", str(video), "--output", str(tmp_path / "o.mp4"), "--opts", *opts]
    assert demo.main(args) == 2
    assert message in one_error_line(capsys, "demo.py")


def test_demo_failing_midway_removes_its_partial_output_and_the_folders_it_made(demo, random_weights, tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for index, width in enumerate((96, 96, 80)):  # the third frame has another size
        cv2.imwrite(str(frames / f"{index:05d}.png"), np.full((64, width, 3), 90, np.uint8))
    output = tmp_path / "new" / "nested" / "out.mp4"
    assert demo.main(demo_args("--input", frames, output, random_weights)) == 2
    assert "frame 2" in one_error_line(capsys, "demo.py")
    assert not (tmp_path / "new").exists()


def test_demo_stopped_by_sigterm_leaves_no_partial_file(random_weights, tmp_path):
    """A scheduler's SIGTERM is handled like Ctrl-C: the staging file is removed, nothing is
    written under the output name, exit status 130."""
    video = write_synthetic_video(str(tmp_path / "long.mp4"), num_frames=400, height=96, width=160, seed=2)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    process = subprocess.Popen(
        [sys.executable, "demo/demo.py", *demo_args("--video-input", video, out_dir / "o.mp4", random_weights)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".partial-") for p in out_dir.iterdir()):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    time.sleep(1.0)  # frames are being encoded into the staging file
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "demo.py: interrupted" in err and "Traceback" not in err
    assert list(out_dir.iterdir()) == []


# -- frames in other layouts ---------------------------------------------------------------------
def test_predictor_takes_grayscale_and_bgra_frames_as_their_bgr_equivalent(random_weights):
    predictor = VideoPredictor(tiny_cfg(**{"MODEL.WEIGHTS": str(random_weights), "MODEL.SGNET.NUM_CLASSES": 3, "MODEL.SGNET.SCORE_THRESH_TEST": 0.0}))
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (64, 96), dtype=np.uint8)
    bgr = np.repeat(gray[:, :, None], 3, axis=2)
    bgra = np.concatenate([bgr, np.full((64, 96, 1), 7, np.uint8)], axis=2)
    (reference_frame, reference), *others = [next(predictor.track([frame])) for frame in (bgr, gray, gray[:, :, None], bgra)]
    for frame, instances in others:
        np.testing.assert_array_equal(frame, reference_frame)
        assert len(instances) == len(reference) > 0
        torch.testing.assert_close(instances.pred_boxes.tensor, reference.pred_boxes.tensor)
        assert torch.equal(instances.pred_masks, reference.pred_masks)


@pytest.mark.parametrize(
    "frame, message",
    [
        (np.zeros((8, 8, 2), np.uint8), r"frame of shape \(8, 8, 2\)"),
        (np.zeros((8, 8, 3), np.float32), "frame of type float32"),
        (np.zeros((0, 8, 3), np.uint8), r"frame of shape \(0, 8, 3\)"),
    ],
)
def test_frames_the_model_cannot_take_are_refused_naming_shape_or_type(frame, message):
    with pytest.raises(InvalidInput, match=message):
        as_bgr(frame)


def test_eval_only_refuses_a_checkpoint_of_other_classes_than_the_test_set(train_net, capsys, tmp_path):
    """Scored anyway, the model's label i would count as the test set's class i: silently wrong AP."""
    from detectron2.modeling import build_model

    from sgnet.checkpoint import SGNetCheckpointer

    cfg = load_config(str(TOY_CONFIG), ["MODEL.DEVICE", "cpu"])
    SGNetCheckpointer(build_model(cfg), str(tmp_path), classes={"names": ["disc", "wheel", "triangle"], "dataset_ids": [1, 2, 3]}).save("other")
    argv = ["--config-file", str(TOY_CONFIG), "--eval-only", "MODEL.WEIGHTS", str(tmp_path / "other.pth"), "OUTPUT_DIR", str(tmp_path / "run")]
    with log_handlers_restored():
        assert train_net.cli(argv) == 2
    line = one_error_line(capsys, "train_net.py")
    assert f"DATASETS.TEST 'sgnet_toy_val' and {tmp_path / 'other.pth'} name their classes differently" in line
    assert "class 1 is 'wheel' in one and 'square' in the other" in line and "evaluate it on a dataset of its classes" in line
