"""The builtin ``*_sub`` datasets (local evaluation without the server): a train split's videos
divided by the documented hash rule, disjoint and complete, the same in every process and with
every ``PYTHONHASHSEED``, the same parts as the ``split`` converter writes, and scored by the
evaluator against the held-out videos' ground truth only."""
import hashlib
import json
import os
import subprocess
import sys

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from convert_fixtures import run_convert
from data_fixtures import reregistered
from sgnet.data import generate_synthetic_ytvis
from sgnet.data.datasets.builtin import register_all_ytvis
from sgnet.evaluation import YTVISEvaluator
from sgnet.formats.rle import segmentation_to_mask

SPLITS = ["ytvis_2019_train", "ytvis_2019_train_sub", "ytvis_2019_val_sub"]
NUM_VIDEOS = 24


@pytest.fixture(scope="module")
def datasets_root(tmp_path_factory):
    """A $DETECTRON2_DATASETS holding a (synthetic, tiny) ytvis_2019/train.json and its frames."""
    root = tmp_path_factory.mktemp("datasets")
    generate_synthetic_ytvis(str(root / "ytvis_2019"), num_train_videos=NUM_VIDEOS, num_val_videos=1, num_frames=2, height=32, width=48)
    return root


@pytest.fixture
def registered(datasets_root):
    with reregistered(SPLITS):
        register_all_ytvis(str(datasets_root))
        yield {name: DatasetCatalog.get(name) for name in SPLITS}


def _held_out_by_hand(video: dict, image_root: str) -> bool:
    """The documented rule, written out: sha256 of "0:<folder of the first frame>" (relative to
    the image root, as the json names it) over 2**256 below 0.1."""
    folder = os.path.dirname(os.path.relpath(video["file_names"][0], image_root)).replace(os.sep, "/")
    return int(hashlib.sha256(f"0:{folder}".encode()).hexdigest(), 16) / 2**256 < 0.1


def test_sub_splits_are_disjoint_complete_and_the_documented_rule(registered):
    train, train_sub, val_sub = (registered[name] for name in SPLITS)
    val_ids = {video["video_id"] for video in val_sub}
    train_ids = {video["video_id"] for video in train_sub}
    assert len(train) == NUM_VIDEOS and 0 < len(val_sub) < NUM_VIDEOS / 2
    assert not val_ids & train_ids and val_ids | train_ids == {video["video_id"] for video in train}
    image_root = MetadataCatalog.get("ytvis_2019_train").image_root
    assert val_ids == {video["video_id"] for video in train if _held_out_by_hand(video, image_root)}
    # Each part holds the train split's records of its videos, annotations included.
    by_id = {video["video_id"]: video for video in train}
    assert all(video == by_id[video["video_id"]] for video in [*train_sub, *val_sub])
    assert MetadataCatalog.get("ytvis_2019_val_sub").json_file == MetadataCatalog.get("ytvis_2019_train").json_file


def test_sub_splits_are_the_split_converters_parts(registered, datasets_root, tmp_path, capsys):
    summary = run_convert(["split", str(datasets_root / "ytvis_2019" / "train.json"), "--val-fraction", "0.1",
                           "--seed", "0", "--output", str(tmp_path / "parts")], capsys)  # fmt: skip
    for name, path in (("ytvis_2019_val_sub", summary["val_json"]), ("ytvis_2019_train_sub", summary["train_json"])):
        written = json.loads(open(path).read())
        assert [video["id"] for video in written["videos"]] == [video["video_id"] for video in registered[name]]


def _part_ids_in_a_process(datasets_root, hash_seed: str) -> dict:
    code = (
        "import json, sgnet; from detectron2.data import DatasetCatalog; "
        f"print(json.dumps({{n: [v['video_id'] for v in DatasetCatalog.get(n)] for n in {SPLITS[1:]!r}}}))"
    )
    env = {**os.environ, "DETECTRON2_DATASETS": str(datasets_root), "PYTHONHASHSEED": hash_seed}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_sub_splits_are_the_same_in_other_processes_and_hash_seeds(registered, datasets_root):
    here = {name: [video["video_id"] for video in registered[name]] for name in SPLITS[1:]}
    assert _part_ids_in_a_process(datasets_root, "1") == here
    assert _part_ids_in_a_process(datasets_root, "2") == here


def _ground_truth_as_outputs(videos: list) -> list:
    """Each video's ground-truth tracks as the model's output (score 1), for the evaluator."""
    outputs = []
    for video in videos:
        tracks = {}
        for t, objects in enumerate(video["annotations"]):
            for obj in objects:
                label, masks = tracks.setdefault(obj["id"], (obj["category_id"], [None] * video["length"]))
                masks[t] = segmentation_to_mask(obj["segmentation"], video["height"], video["width"]).astype(bool)
        outputs.append({
            "image_size": (video["height"], video["width"]),
            "pred_scores": [1.0] * len(tracks),
            "pred_labels": [label for label, _ in tracks.values()],
            "pred_masks": [masks for _, masks in tracks.values()],
        })  # fmt: skip
    return outputs


def test_the_evaluator_scores_val_sub_against_its_own_videos_only(registered):
    val_sub = registered["ytvis_2019_val_sub"]
    assert sum(len(objects) for video in val_sub for objects in video["annotations"]) > 0
    scores = {}
    for name in ("ytvis_2019_val_sub", "ytvis_2019_train"):
        evaluator = YTVISEvaluator(name, distributed=False)
        evaluator.reset()
        evaluator.process(val_sub, _ground_truth_as_outputs(val_sub))
        scores[name] = evaluator.evaluate()["segm"]["AP"]
    # The held-out videos' own ground truth: perfect; against the whole train split the other
    # videos' tracks count as missed.
    assert scores["ytvis_2019_val_sub"] == pytest.approx(100.0)
    assert 0.0 < scores["ytvis_2019_train"] < 50.0
