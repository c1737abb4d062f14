"""The synthetic YouTube-VIS-format dataset (sgnet.data.synthetic), its command line and its builtin
registration."""

import json
import os
import subprocess
import sys

import numpy as np
import pycocotools.mask as mask_util
import pytest

import sgnet  # noqa: F401
from sgnet.data import SYNTHETIC_CLASSES, VideoFrameReader, load_ytvis_json, segmentation_to_mask
from detectron2.data import DatasetCatalog, MetadataCatalog
from sgnet.data import synthetic
from sgnet.data.datasets.builtin import register_sgnet_toy
from sgnet.data.synthetic import cli, generate_synthetic_ytvis, toy, write_synthetic_video
from sgnet.errors import InvalidInput

from data_fixtures import reregistered

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOY_SPLITS = ("sgnet_toy_train", "sgnet_toy_val")
SMALL = dict(num_train_videos=10, num_val_videos=3, num_frames=8, height=96, width=160)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return generate_synthetic_ytvis(str(tmp_path_factory.mktemp("synthetic")), seed=7, **SMALL)


@pytest.fixture(scope="module")
def train(small):
    with open(small["train_json"]) as f:
        return json.load(f)


def test_layout_and_paths(small):
    root = os.path.dirname(small["train_json"])
    assert small == {
        "train_json": os.path.join(root, "train.json"),
        "train_root": os.path.join(root, "train", "JPEGImages"),
        "val_json": os.path.join(root, "valid.json"),
        "val_root": os.path.join(root, "valid", "JPEGImages"),
    }
    assert os.path.isabs(root)
    assert os.path.isfile(os.path.join(small["train_root"], "train0000", "00035.jpg"))


def test_official_format(small, train):
    assert train["categories"] == [
        {"id": i + 1, "name": name, "supercategory": "shape"}
        for i, name in enumerate(SYNTHETIC_CLASSES)
    ]
    assert [v["id"] for v in train["videos"]] == list(range(1, 11))
    for video in train["videos"]:
        assert (video["height"], video["width"], video["length"]) == (96, 160, 8)
        assert video["file_names"] == [
            f"train{video['id'] - 1:04d}/{5 * t:05d}.jpg" for t in range(8)
        ]
    for annotation in train["annotations"]:
        assert annotation["iscrowd"] == 0 and annotation["category_id"] in (1, 2, 3)
        for key in ("segmentations", "bboxes", "areas"):
            assert len(annotation[key]) == 8
        for rle, box, area in zip(
            annotation["segmentations"], annotation["bboxes"], annotation["areas"]
        ):
            assert (rle is None) == (box is None) == (area is None)
            if rle is None:
                continue
            assert isinstance(rle["counts"], list) and rle["size"] == [96, 160]
            compressed = mask_util.frPyObjects(rle, 96, 160)
            assert box == mask_util.toBbox(compressed).tolist()
            assert area == int(mask_util.area(compressed)) > 0


def test_scenes_have_what_the_model_must_learn(small, train):
    """Several objects per video, objects absent from some frames (null), occlusions between
    objects, all three classes, and the whole thing loads without warnings."""
    per_video = {}
    for annotation in train["annotations"]:
        per_video.setdefault(annotation["video_id"], []).append(annotation)
    assert max(len(a) for a in per_video.values()) >= 3
    assert any(None in a["segmentations"] for a in train["annotations"])
    assert {a["category_id"] for a in train["annotations"]} == {1, 2, 3}
    dicts = load_ytvis_json(small["train_json"], small["train_root"])
    overlapping_boxes = 0
    for d in dicts:
        for objects in d["annotations"]:
            boxes = np.array([o["bbox"] for o in objects]).reshape(-1, 4)
            boxes[:, 2:] += boxes[:, :2]
            for i in range(len(boxes)):
                for j in range(i):
                    overlap = np.minimum(boxes[i, 2:], boxes[j, 2:]) - np.maximum(
                        boxes[i, :2], boxes[j, :2]
                    )
                    overlapping_boxes += bool((overlap > 0).all())
    assert overlapping_boxes > 0


def test_masks_are_disjoint_visible_parts(small):
    video = load_ytvis_json(small["train_json"], small["train_root"])[0]
    for objects in video["annotations"]:
        masks = [
            segmentation_to_mask(o["segmentation"], video["height"], video["width"])
            for o in objects
        ]
        if masks:
            assert np.stack(masks).sum(axis=0).max() == 1  # depth order: no pixel in two masks


def test_same_seed_same_bytes_other_seed_other_data(small, tmp_path):
    again = generate_synthetic_ytvis(str(tmp_path / "again"), seed=7, **SMALL)
    for key in ("train_json", "val_json"):
        assert open(again[key], "rb").read() == open(small[key], "rb").read()
    frame = os.path.join("train0004", "00010.jpg")
    assert (
        open(os.path.join(again["train_root"], frame), "rb").read()
        == open(os.path.join(small["train_root"], frame), "rb").read()
    )
    other = generate_synthetic_ytvis(
        str(tmp_path / "other"), seed=8, **dict(SMALL, num_val_videos=0)
    )
    assert open(other["train_json"], "rb").read() != open(small["train_json"], "rb").read()


def test_validation_split_is_annotated_and_distinct(small, train):
    with open(small["val_json"]) as f:
        valid = json.load(f)
    assert len(valid["videos"]) == 3 and valid["annotations"]
    assert valid["videos"][0]["file_names"][0] == "valid0000/00000.jpg"
    assert valid["annotations"][0]["segmentations"] != train["annotations"][0]["segmentations"]


def test_cli_writes_the_dataset(tmp_path, capsys):
    options = "--train-videos 2 --val-videos 1 --frames 3 --height 48 --width 80 --seed 1"
    synthetic.main([str(tmp_path / "cli")] + options.split())
    printed = capsys.readouterr().out
    assert f"train_json: {tmp_path / 'cli' / 'train.json'}" in printed
    dicts = load_ytvis_json(
        str(tmp_path / "cli" / "valid.json"), str(tmp_path / "cli" / "valid" / "JPEGImages")
    )
    assert [(d["length"], d["height"], d["width"]) for d in dicts] == [(3, 48, 80)]
    # Not the default dataset: not marked as such, so not taken for $DETECTRON2_DATASETS/sgnet_toy.
    assert not (tmp_path / "cli" / "sgnet_toy_version.txt").exists()


def test_cli_marks_the_default_dataset_as_usable_by_the_builtin_splits(tmp_path, monkeypatch):
    small = {"num_train_videos": 2, "num_val_videos": 1, "num_frames": 2, "height": 48, "width": 80}
    monkeypatch.setattr(cli, "generate_synthetic_ytvis", lambda out_dir, **_: generate_synthetic_ytvis(out_dir, **small))
    synthetic.main([str(tmp_path / "sgnet_toy")])
    assert (tmp_path / "sgnet_toy" / "sgnet_toy_version.txt").read_text() == synthetic.TOY_DATASET_VERSION
    synthetic.ensure_toy_dataset(str(tmp_path / "sgnet_toy"))  # accepted, not generated again


def test_cli_run_as_a_module_reports_a_bad_argument_in_one_line(tmp_path):
    """``python -m sgnet.data.synthetic`` with a bad value: exit 2 and one line on stderr (no
    traceback, and no runpy warning: ``import sgnet`` leaves the package's __main__ alone)."""
    result = subprocess.run(
        [sys.executable, "-m", "sgnet.data.synthetic", str(tmp_path / "out"), "--frames", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == "python -m sgnet.data.synthetic: error: --frames 0: must be at least 1\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "options, message",
    [
        (["--train-videos", "-1"], "--train-videos -1: must be at least 0"),
        (["--coco-images", "-3"], "--coco-images -3: must be at least 0"),
        (["--width", "0"], "--width 0: must be at least 1"),
    ],
)
def test_cli_refuses_bad_values(tmp_path, options, message):
    with pytest.raises(InvalidInput, match=f"^{message}$"):
        synthetic.main([str(tmp_path / "out")] + options)
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_file_as_out_dir(tmp_path):
    (tmp_path / "taken").write_text("user data")
    with pytest.raises(InvalidInput, match="taken: is not a folder"):
        synthetic.main([str(tmp_path / "taken"), "--train-videos", "1", "--val-videos", "0"])
    assert (tmp_path / "taken").read_text() == "user data"


def test_synthetic_video_file(tmp_path):
    path = write_synthetic_video(
        str(tmp_path / "demo.mp4"), num_frames=9, height=72, width=120, seed=1, fps=12
    )
    reader = VideoFrameReader(path)
    assert (len(reader), reader.fps, reader.height, reader.width) == (9, 12, 72, 120)
    assert len(list(reader)) == 9


# ---------------------------------------------------------------------------------------------
# The registered toy dataset
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def tiny_generator(monkeypatch):
    """ensure_toy_dataset with a small generator, counting its calls."""
    calls = []

    def generate(out_dir):
        calls.append(out_dir)
        return generate_synthetic_ytvis(
            out_dir, num_train_videos=2, num_val_videos=1, num_frames=3, height=48, width=80
        )

    monkeypatch.setattr(toy, "generate_synthetic_ytvis", generate)
    return calls


def test_toy_dataset_is_generated_once_in_place(tmp_path, tiny_generator, caplog):
    target = str(tmp_path / "datasets" / "sgnet_toy")
    with caplog.at_level("INFO"):
        paths = synthetic.ensure_toy_dataset(target)
    assert f"Generating the synthetic toy dataset into {target}" in caplog.text
    assert os.path.isfile(paths["train_json"]) and os.path.isdir(paths["val_root"])
    assert os.listdir(tmp_path / "datasets") == ["sgnet_toy"]  # no staging folder left behind
    synthetic.ensure_toy_dataset(target)
    assert len(tiny_generator) == 1


def test_toy_dataset_refuses_a_foreign_folder(tmp_path, tiny_generator):
    (tmp_path / "sgnet_toy").mkdir()
    (tmp_path / "sgnet_toy" / "something.txt").write_text("user data")
    with pytest.raises(
        FileExistsError, match="exists but lacks train.json / valid.json; delete it"
    ):
        synthetic.ensure_toy_dataset(str(tmp_path / "sgnet_toy"))
    assert not tiny_generator


@pytest.mark.parametrize("version", [None, "1"])
def test_toy_dataset_of_another_version_is_reported(tmp_path, tiny_generator, version, caplog):
    """A dataset of an older generator (other video counts) is not reused unnoticed."""
    target = tmp_path / "sgnet_toy"
    synthetic.ensure_toy_dataset(str(target))
    version_file = target / "sgnet_toy_version.txt"
    assert version_file.read_text() == synthetic.TOY_DATASET_VERSION
    with caplog.at_level("WARNING"):
        synthetic.ensure_toy_dataset(str(target))
    assert "not the current default" not in caplog.text
    if version is None:
        version_file.unlink()
    else:
        version_file.write_text(version)
    with caplog.at_level("WARNING"):
        synthetic.ensure_toy_dataset(str(target))
    assert f"{target}, which is not the current default toy dataset" in caplog.text
    assert f"says {version or 'nothing'}" in caplog.text
    assert len(tiny_generator) == 1


@pytest.fixture
def toy_splits_under(tmp_path):
    """The builtin sgnet_toy_* splits registered again under a temporary datasets root, as
    ``import sgnet`` does with $DETECTRON2_DATASETS; the original registration is restored."""
    root = tmp_path / "datasets"
    with reregistered(TOY_SPLITS):
        register_sgnet_toy(str(root))
        yield root


def test_toy_splits_are_generated_on_first_load_only(toy_splits_under, caplog):
    """Registration writes nothing; the first load generates the default dataset (and logs it),
    later loads reuse it."""
    assert not toy_splits_under.exists(), "registration touched the disk"
    with caplog.at_level("INFO"):
        val = DatasetCatalog.get("sgnet_toy_val")
        train = DatasetCatalog.get("sgnet_toy_train")
    assert caplog.text.count("Generating the synthetic toy dataset") == 1
    assert (len(train), len(val)) == (400, 48)
    assert {(d["length"], d["height"], d["width"]) for d in train + val} == {(12, 192, 320)}
    metadata = MetadataCatalog.get("sgnet_toy_val")
    assert metadata.thing_classes == list(SYNTHETIC_CLASSES) and metadata.evaluator_type == "ytvis"
    assert metadata.json_file == str(toy_splits_under / "sgnet_toy" / "valid.json")
    assert os.path.isfile(metadata.json_file)
