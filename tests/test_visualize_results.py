"""tools/visualize_results.py on the tiny YouTube-VIS dataset and hand-made results: the videos,
strips, summary.csv (against the evaluator on each video alone) and chart, a ground truth without
annotations, the command line, and a user's mistakes (one line, exit status 2, nothing left).

The results (record index: what they are, at the default score threshold 0.3):

- r0 video 1 "cat" 0.9: track 101 in frames 0-2, absent in frame 3: matched, IoU 768 / 1024;
- r1 video 1 "dog" 0.8: a box where no dog is: false; track 102 (dog) is missed;
- r2 video 1 "dog" 0.1: exactly track 102, the metric's match of it, but below the threshold
  (not drawn, and 102 stays missed as drawn; it counts in the AP as everything does);
- r3 video 1 "fish" 0.7: inside the crowd 103: ignored by the metric, neither matched nor false;
- r4 video 3 "cat" 0.6: a video without objects: false;
- video 2 (track 201) has no predictions: AP 0, 201 missed.
"""
import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from sgnet.data import VideoFrameReader, draw_tracks_and_crowds, track_color
from sgnet.evaluation import encode_masks, evaluate_ytvis

from app_fixtures import load_script, run_at_once, summary_line
from app_fixtures import one_error_line as any_error_line
from data_fixtures import BACKGROUND, rectangle_mask, write_tiny_ytvis

# H.264 (4:2:0 chroma) changes a flat colour a little; an overlay moves it far.
CODEC_TOLERANCE = 20
FLAT_TOLERANCE = 10  # JPEG frames under a lossless strip
CAT, DOG, FISH = 3, 7, 11
EXPECTED_COUNTS = {1: (1, 1, 1), 2: (0, 1, 0), 3: (0, 0, 1)}  # video: matched, missed, false


@pytest.fixture(scope="module")
def tool():
    return load_script("tools/visualize_results.py", "sgnet_visualize_results")


def tiny_results(tiny) -> list:
    """The records of the module docstring, in that order."""
    track_101 = [tiny.masks[(1, 101, t)] for t in range(3)] + [None]
    track_102 = [tiny.masks.get((1, 102, t)) for t in range(4)]
    nowhere = [rectangle_mask(48, 64, 0, 40, 4, 48)] * 4
    in_crowd = [rectangle_mask(48, 64, 46, 4, 56, 12)] * 4
    records = [
        (1, CAT, 0.9, track_101), (1, DOG, 0.8, nowhere), (1, DOG, 0.1, track_102), (1, FISH, 0.7, in_crowd),
        (3, CAT, 0.6, [rectangle_mask(32, 40, 10, 10, 20, 20)] * 5),
    ]  # fmt: skip
    return [
        {"video_id": v, "category_id": c, "score": score, "segmentations": encode_masks(masks)}
        for v, c, score, masks in records
    ]


class Case:
    def __init__(self, root: Path, annotated: bool = True):
        self.tiny = write_tiny_ytvis(str(root / "data"), annotated=annotated)
        self.results = self.tiny.write_variant(tiny_results(self.tiny), "results.json")
        self.output = root / "vis"

    def args(self, *extra, output=None, results=None):
        return [
            "--gt", self.tiny.json_file, "--results", str(results or self.results),
            "--image-root", self.tiny.image_root, "--output", str(output or self.output), *extra,
        ]  # fmt: skip


@pytest.fixture
def case(tmp_path):
    return Case(tmp_path)


def one_error_line(stderr: str) -> str:
    return any_error_line(stderr, "visualize_results.py", progress="videos:")


def overlaid(object_bgr, color_id: int) -> np.ndarray:
    """The BGR colour of an object's flat colour under a track's colour at half opacity."""
    return 0.5 * np.asarray(object_bgr) + 0.5 * 255 * track_color(color_id)[::-1]


def read_summary(output: Path) -> dict:
    with open(output / "summary.csv", newline="") as f:
        return {int(row["video_id"]): row for row in csv.DictReader(f)}


def evaluator_ap_alone(tiny, results: list, video_id: int) -> float:
    """The evaluator on one video's part of the files, NaN for a video without ground truth (the
    evaluator refuses a file without annotations)."""
    content = tiny.copy_content()
    content["videos"] = [v for v in content["videos"] if v["id"] == video_id]
    content["annotations"] = [a for a in content["annotations"] if a["video_id"] == video_id]
    if not content["annotations"]:
        return math.nan
    return evaluate_ytvis(content, [r for r in results if r["video_id"] == video_id])["segm"]["AP"]


def test_summary_is_the_evaluators_per_video_figures(tool, case, capsys):
    assert tool.main(case.args()) == 0
    assert summary_line(capsys.readouterr().out) == {"output": str(case.output), "videos": 3, "files": 8}
    expected_files = {f"{v}{suffix}" for v in (1, 2, 3) for suffix in (".mp4", "_strip.png")}
    assert {p.name for p in case.output.iterdir()} == expected_files | {"summary.csv", "per_class_ap.png"}
    summary = read_summary(case.output)
    assert list(summary) == [1, 2, 3]
    results = json.loads(Path(case.results).read_text())
    for video_id, row in summary.items():
        ap = evaluator_ap_alone(case.tiny, results, video_id)
        assert row["AP"] == ("" if math.isnan(ap) else f"{ap:.4f}"), video_id
        assert (int(row["matched"]), int(row["missed"]), int(row["false"])) == EXPECTED_COUNTS[video_id]
    assert summary[1]["ious"] == f"#101=r0:{768 / 1024:.4f}"
    assert summary[2]["AP"] == "0.0000" and summary[2]["ious"] == "" and summary[3]["AP"] == ""
    chart = cv2.imread(str(case.output / "per_class_ap.png"))
    assert chart is not None and chart.shape[0] > 100 and chart.shape[1] > 300


def test_frames_show_ground_truth_and_predictions_side_by_side(tool, case, capsys):
    assert tool.main(case.args()) == 0
    for video in case.tiny.content["videos"]:
        reader = VideoFrameReader(str(case.output / f"{video['id']}.mp4"))
        assert len(list(reader)) == video["length"]
        assert (reader.height, reader.width) == (video["height"], 2 * video["width"])
        strip = cv2.imread(str(case.output / f"{video['id']}_strip.png"))
        assert strip.shape == (video["height"], min(4, video["length"]) * 2 * video["width"], 3)
    # The strip of video 1 holds its 4 frames, each ground truth (64 wide) | predictions (64 wide).
    strip = cv2.imread(str(case.output / "1_strip.png")).astype(int)
    cat = np.array(case.tiny.colors[101])
    for t in range(4):
        y, x = np.argwhere(case.tiny.masks[(1, 101, t)]).mean(axis=0).astype(int)
        left, right = strip[y, 128 * t + x], strip[y, 128 * t + 64 + x]
        # track 101's centre in its track's colour on the left in every frame; on the right in
        # r0's colour while r0 is there, and bare in frame 3, where r0 is absent
        assert np.abs(left - overlaid(cat, 101)).max() < FLAT_TOLERANCE
        assert np.abs(right - (overlaid(cat, 0) if t < 3 else cat)).max() < FLAT_TOLERANCE, t


def test_labels_give_the_metrics_matching(tool, case, capsys, monkeypatch):
    """What each panel of video 1 draws, in frames 1 (every object there) and 3 (track 102 and
    r0 absent): labels, colour ids and crowd flags (the crowd is hatched, its label unused)."""
    drawn = []

    def recording(frame, masks, boxes, labels, color_ids, crowd):
        drawn.append((labels, color_ids, crowd))
        return draw_tracks_and_crowds(frame, masks, boxes, labels, color_ids, crowd)

    monkeypatch.setattr(tool, "draw_tracks_and_crowds", recording)
    assert tool.main(case.args("--videos", "1")) == 0
    truth_1, predictions_1, truth_3, predictions_3 = drawn[2], drawn[3], drawn[6], drawn[7]
    assert truth_1 == (
        ["#101 cat = r0 0.75", "#102 dog MISSED", "#103 fish"], [101, 102, 103], [False, False, True]
    )  # fmt: skip
    assert predictions_1 == (["r0 cat 0.90 = #101", "r1 dog 0.80 FALSE", "r3 fish 0.70"], [0, 1, 3], [False] * 3)
    assert truth_3 == (["#101 cat = r0 0.75", "#103 fish"], [101, 103], [False, True])
    assert predictions_3 == (["r1 dog 0.80 FALSE", "r3 fish 0.70"], [1, 3], [False] * 2)


def test_ground_truth_without_annotations_draws_predictions_alone(tool, tmp_path, capsys):
    case = Case(tmp_path, annotated=False)
    assert tool.main(case.args("--videos", "3", "1")) == 0
    assert summary_line(capsys.readouterr().out) == {"output": str(case.output), "videos": 2, "files": 4}
    assert {p.name for p in case.output.iterdir()} == {"1.mp4", "1_strip.png", "3.mp4", "3_strip.png"}
    reader = VideoFrameReader(str(case.output / "3.mp4"))
    frames = list(reader)
    assert len(frames) == 5 and (reader.height, reader.width) == (32, 40)
    # r4, the only prediction of video 3, in its colour over the grey frame.
    assert np.abs(frames[0][15, 15].astype(int) - overlaid(BACKGROUND, 4)).max() < CODEC_TOLERANCE


def test_videos_option_evaluates_those_videos(tool, case, capsys):
    assert tool.main(case.args("--videos", "2", "--score-threshold", "0.05")) == 0
    assert summary_line(capsys.readouterr().out)["files"] == 4
    assert list(read_summary(case.output)) == [2]


def files_under(folder: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.mark.parametrize("mistake", ["unknown-video", "output-is-the-image-root", "result-of-an-unknown-video"])
def test_bad_input_is_one_line_and_leaves_nothing(tool, case, capsys, mistake):
    output, results, extra = case.output, case.results, []
    if mistake == "unknown-video":
        extra, message = ["--videos", "1", "9"], f"--videos 9: no such video id in {case.tiny.json_file}"
    elif mistake == "output-is-the-image-root":
        output, message = Path(case.tiny.image_root), f"would overwrite the input {case.tiny.image_root}"
    else:
        records = json.loads(Path(case.results).read_text())
        results = case.tiny.write_variant(records + [{**records[0], "video_id": 9}], "bad_results.json")
        message = f"{results}: result record 5 (video_id=9): unknown video_id"
    inputs = files_under(Path(case.tiny.json_file).parent)
    assert tool.main(case.args(*extra, output=output, results=results)) == 2
    assert message in one_error_line(capsys.readouterr().err)
    assert not case.output.exists()
    assert files_under(Path(case.tiny.json_file).parent) == inputs


def test_failing_midway_removes_what_the_run_wrote(tool, case, capsys):
    """Video 2's second frame cannot be decoded: video 1's files, written already, are removed
    with the folder the run made."""
    Path(case.tiny.image_root, case.tiny.content["videos"][1]["file_names"][1]).write_bytes(b"not a jpeg")
    assert tool.main(case.args()) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("visualize_results.py: error: video 2 frame 1") and "cannot decode" in line
    assert not case.output.exists()


def test_runs_as_a_command(case, tmp_path):
    """As a user runs it: one video drawn (exit status 0, the JSON summary last), and a missing
    results file (exit status 2, one line), both processes at once (most of their time is
    importing torch and detectron2)."""
    bad = tmp_path / "bad"
    commands = {
        "good": case.args("--videos", "1"),
        "bad": case.args(output=bad, results=tmp_path / "missing.json"),
    }
    finished = run_at_once("tools/visualize_results.py", commands)
    assert finished["good"].returncode == 0, finished["good"].stdout[-3000:] + finished["good"].stderr[-3000:]
    assert summary_line(finished["good"].stdout) == {"output": str(case.output), "videos": 1, "files": 4}
    assert finished["bad"].returncode == 2
    assert str(tmp_path / "missing.json") in one_error_line(finished["bad"].stderr)
    assert not bad.exists()
