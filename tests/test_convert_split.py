"""``python -m sgnet.data.convert split``: a YouTube-VIS json split by video with a fixed hash
rule (disjoint, complete, annotations with their videos, the same in every process), and the
one-line errors."""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from convert_fixtures import convert_error, run_convert
from sgnet.data.convert import split as split_module
from sgnet.data.convert.split import split_videos
from sgnet.errors import InvalidInput
from sgnet.formats.rle import mask_to_uncompressed_rle
from sgnet.formats.video_split import held_out
from sgnet.formats.ytvis import read_ytvis_annotations

HEIGHT, WIDTH = 8, 12
FOLDERS = ["v0", "v1", "v2", "v3", "v4", "v5"]


def _content(folders=FOLDERS) -> dict:
    """A valid annotated file: video i (1-based) of folder ``folders[i-1]`` with 2 frames and
    i % 3 tracks (so some videos have none)."""
    videos, annotations = [], []
    for video_id, folder in enumerate(folders, start=1):
        videos.append({"id": video_id, "width": WIDTH, "height": HEIGHT, "length": 2,
                       "file_names": [f"{folder}/00000.jpg", f"{folder}/00005.jpg"], "extra": folder})  # fmt: skip
        for k in range(video_id % 3):
            mask = np.zeros((HEIGHT, WIDTH), bool)
            mask[k : k + 3, video_id : video_id + 2] = True
            annotations.append({"id": len(annotations) + 1, "video_id": video_id, "category_id": 1 + k, "iscrowd": 0,
                                "width": WIDTH, "height": HEIGHT, "length": 1,
                                "segmentations": [mask_to_uncompressed_rle(mask), None],
                                "bboxes": [[video_id, k, 2, 3], None], "areas": [6, None]})  # fmt: skip
    return {
        "info": {"description": "tiny"},
        "licenses": [],
        "videos": videos,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    }


@pytest.fixture
def in_json(tmp_path):
    path = tmp_path / "in.json"
    path.write_text(json.dumps(_content()))
    return path


def _by_hand(folder: str, seed: int) -> float:
    """The rule's number of a folder, written out: sha256 of "seed:folder" over 2**256."""
    return int(hashlib.sha256(f"{seed}:{folder}".encode()).hexdigest(), 16) / 2**256


def test_held_out_is_the_documented_hash():
    # Numbers by hand (seed 0): v0 .880, v1 .906, v2 .855, v3 .071, v4 .327, v5 .223;
    # (seed 7): v0 .177, v1 .390, v2 .046, v3 .255, v4 .335, v5 .601.
    assert [round(_by_hand(f, 0), 3) for f in FOLDERS] == [0.880, 0.906, 0.855, 0.071, 0.327, 0.223]
    assert [f for f in FOLDERS if held_out(f, 0.5, seed=0)] == ["v3", "v4", "v5"]
    assert [f for f in FOLDERS if held_out(f, 0.3, seed=7)] == ["v0", "v2", "v3"]
    assert [f for f in FOLDERS if held_out(f, 0.3, seed=0)] == ["v3", "v5"]


def test_split_videos_is_disjoint_complete_and_keeps_records():
    folders = [f"video{i:03d}" for i in range(60)]
    content = _content(folders)
    train, val = split_videos(content, 0.25, 3, "in.json")
    train_ids, val_ids = {v["id"] for v in train["videos"]}, {v["id"] for v in val["videos"]}
    assert not train_ids & val_ids and train_ids | val_ids == set(range(1, 61))
    assert 5 <= len(val_ids) <= 25  # about a quarter of 60
    assert val_ids == {v["id"] for v in content["videos"] if _by_hand(v["file_names"][0].split("/")[0], 3) < 0.25}
    for part, ids in ((train, train_ids), (val, val_ids)):
        assert part["annotations"] == [a for a in content["annotations"] if a["video_id"] in ids]
        assert all(any(record is original for original in content["videos"]) for record in part["videos"])
        assert (part["info"], part["categories"], part["licenses"]) == (content["info"], content["categories"], [])
    # The order of the file does not matter, and the other seed holds out other videos.
    shuffled = {**content, "videos": content["videos"][::-1]}
    assert {v["id"] for v in split_videos(shuffled, 0.25, 3, "in.json")[1]["videos"]} == val_ids
    assert {v["id"] for v in split_videos(content, 0.25, 4, "in.json")[1]["videos"]} != val_ids


def test_cli_writes_both_parts(in_json, tmp_path, capsys):
    out = tmp_path / "parts"
    summary = run_convert(["split", str(in_json), "--val-fraction", "0.5", "--seed", "0", "--output", str(out)], capsys)
    assert summary == {"train_json": str(out / "train.json"), "val_json": str(out / "valid.json"), "train_videos": 3, "val_videos": 3}
    original = _content()
    train, val = (json.loads((out / name).read_text()) for name in ("train.json", "valid.json"))
    assert [v["extra"] for v in train["videos"]] == ["v0", "v1", "v2"]
    assert [v["extra"] for v in val["videos"]] == ["v3", "v4", "v5"]
    assert train["videos"] == original["videos"][:3] and val["videos"] == original["videos"][3:]
    assert train["annotations"] == [a for a in original["annotations"] if a["video_id"] <= 3]
    assert val["annotations"] == [a for a in original["annotations"] if a["video_id"] > 3]
    assert len(train["annotations"]) + len(val["annotations"]) == len(original["annotations"]) == 6
    for part in (train, val):
        assert (part["info"], part["categories"]) == (original["info"], original["categories"])
    for name in ("train.json", "valid.json"):
        assert len(read_ytvis_annotations(out / name).videos) == 3  # the loader reads both
    assert sorted(os.listdir(out)) == ["train.json", "valid.json"]  # no staging files left


def test_same_split_under_another_hash_seed(tmp_path, capsys):
    folders = [f"clip{i}" for i in range(20)]
    (tmp_path / "in.json").write_text(json.dumps(_content(folders)))
    argv = ["split", str(tmp_path / "in.json"), "--val-fraction", "0.3"]
    run_convert([*argv, "--output", str(tmp_path / "here")], capsys)
    # This process hashes str with a random seed (or PYTHONHASHSEED): the other one with another.
    other_seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    subprocess.run([sys.executable, "-m", "sgnet.data.convert", *argv, "--output", str(tmp_path / "there")],
                   check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": other_seed})  # fmt: skip
    for name in ("train.json", "valid.json"):
        assert (tmp_path / "here" / name).read_bytes() == (tmp_path / "there" / name).read_bytes()
    val = json.loads((tmp_path / "here" / "valid.json").read_text())
    assert [v["file_names"][0].split("/")[0] for v in val["videos"]] == [f for f in folders if _by_hand(f, 0) < 0.3]


@pytest.mark.parametrize("fraction", ["0", "1", "-0.1", "1.5", "nan"])
def test_fraction_outside_0_1_is_refused(in_json, tmp_path, capsys, fraction):
    error = convert_error(["split", str(in_json), "--val-fraction", fraction, "--output", str(tmp_path / "out")], capsys, absent=tmp_path / "out")
    assert f"--val-fraction {float(fraction)}: must be between 0 and 1" in error


def test_empty_part_is_refused_with_a_fraction_that_works(in_json, tmp_path, capsys):
    out = str(tmp_path / "out")
    # The smallest number of seed 0 is v3's .07111, the largest v1's .90602.
    error = convert_error(["split", str(in_json), "--val-fraction", "0.05", "--output", out], capsys)
    assert f"{in_json}: --val-fraction 0.05 with --seed 0 holds out none of its 6 videos; a fraction of 0.0712 or more holds out at least one" in error
    error = convert_error(["split", str(in_json), "--val-fraction", "0.95", "--output", out], capsys, absent=tmp_path / "out")
    assert f"{in_json}: --val-fraction 0.95 with --seed 0 holds out all its 6 videos; a fraction of at most 0.906 keeps at least one" in error
    assert run_convert(["split", str(in_json), "--val-fraction", "0.0712", "--output", out], capsys)["val_videos"] == 1
    assert run_convert(["split", str(in_json), "--val-fraction", "0.906", "--output", out], capsys)["train_videos"] == 1


def test_bad_inputs_and_outputs_are_one_line(in_json, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    error = convert_error(["split", str(in_json), "--output", str(a_file)], capsys)
    assert f"--output {a_file}: is a file; name the folder" in error
    assert a_file.read_text() == "mine"

    own = tmp_path / "data" / "valid.json"  # splitting into its own folder would replace it
    os.makedirs(own.parent)
    own.write_text(in_json.read_text())
    before = own.read_bytes()
    error = convert_error(["split", str(own), "--val-fraction", "0.5", "--output", str(own.parent)], capsys)
    assert f"--output {own} would overwrite the input {own}" in error
    assert own.read_bytes() == before and sorted(os.listdir(own.parent)) == ["valid.json"]

    content = _content()
    content["annotations"][0]["video_id"] = 99
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(content))
    error = convert_error(["split", str(broken), "--output", str(tmp_path / "out")], capsys)
    assert f"{broken}: annotation 1 refers to video_id 99" in error

    one_video = tmp_path / "one.json"
    one_video.write_text(json.dumps(_content(["v0"])))
    error = convert_error(["split", str(one_video), "--output", str(tmp_path / "out")], capsys)
    assert f"{one_video}: has 1 video(s); a split into two parts needs at least 2" in error

    flat = {**_content(), "videos": [{**v, "file_names": ["00000.jpg", "00005.jpg"]} for v in _content()["videos"]]}
    flat_json = tmp_path / "flat.json"
    flat_json.write_text(json.dumps(flat))
    error = convert_error(["split", str(flat_json), "--output", str(tmp_path / "out")], capsys, absent=tmp_path / "out")
    assert f"{flat_json}: video 1: the first file name 00000.jpg has no folder" in error


def test_failed_second_write_leaves_neither_file(in_json, tmp_path, capsys, monkeypatch):
    commit = split_module.StagedFile.commit
    calls = []

    def commit_then_fail(staged):
        calls.append(staged.path)
        if len(calls) == 2:
            raise OSError("disk full")
        return commit(staged)

    monkeypatch.setattr(split_module.StagedFile, "commit", commit_then_fail)
    out = tmp_path / "new" / "parts"
    with pytest.raises(InvalidInput, match="cannot write train.json and valid.json there \\(disk full\\)"):
        split_module.write_split(str(in_json), str(out), 0.5, 0)
    assert calls == [str(out / "train.json"), str(out / "valid.json")]
    assert not (tmp_path / "new").exists()  # the files, their staging files and the folders made


def test_failed_second_write_gives_back_the_previous_files(in_json, tmp_path, monkeypatch):
    """A rerun into a folder holding an earlier split: the earlier train.json, replaced first, is
    back when valid.json cannot be written, and nothing else is left there."""
    out = tmp_path / "parts"
    out.mkdir()
    (out / "train.json").write_text("earlier train")
    (out / "valid.json").write_text("earlier valid")
    commit = split_module.StagedFile.commit

    def fail_on_valid(staged):
        if staged.path.endswith("valid.json"):
            raise OSError("disk full")
        return commit(staged)

    monkeypatch.setattr(split_module.StagedFile, "commit", fail_on_valid)
    with pytest.raises(InvalidInput):
        split_module.write_split(str(in_json), str(out), 0.5, 0)
    assert {p.name: p.read_text() for p in out.iterdir()} == {"train.json": "earlier train", "valid.json": "earlier valid"}


def test_a_target_that_is_a_folder_is_refused_before_writing(in_json, tmp_path, capsys):
    out = tmp_path / "parts"
    (out / "valid.json").mkdir(parents=True)
    (out / "train.json").write_text("earlier train")
    error = convert_error(["split", str(in_json), "--val-fraction", "0.5", "--output", str(out)], capsys)
    assert f"{out / 'valid.json'} is a folder" in error
    assert (out / "train.json").read_text() == "earlier train" and sorted(p.name for p in out.iterdir()) == ["train.json", "valid.json"]
