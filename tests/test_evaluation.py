"""The YouTube-VIS metric and evaluator, against hand-computed values.

Ground truth is written in the official annotation format (uncompressed RLE, `areas`, null for
absent frames); results in the official results format (compressed RLE strings).
"""
import json
import logging
import math
import re
import runpy
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch

import sgnet.evaluation  # noqa: F401  (before detectron2: applies sgnet's compat layer)
from detectron2.data import MetadataCatalog
from sgnet.errors import InvalidInput, run_main
from sgnet.evaluation import (
    YTVISEvaluator,
    compute_video_overlaps,
    count_identity_switches,
    encode_masks,
    evaluate_ytvis,
    load_ground_truth,
    load_results,
    run_ytvis_eval,
    video_ap,
    video_matches,
)

REPO = Path(__file__).resolve().parents[1]
H, W = 10, 12  # frame size of the small cases


# ---------------------------------------------------------------- building files


def box(y0, y1, x0, x1, height=H, width=W) -> np.ndarray:
    """(height, width) bool mask of rows y0:y1, columns x0:x1."""
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def uncompressed_rle(mask: np.ndarray) -> dict:
    """The official annotation files' encoding: column-major runs, starting with zeros."""
    flat = mask.flatten(order="F").astype(np.int8)
    boundaries = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    runs = np.diff(boundaries).tolist()
    return {"counts": ([0] + runs) if flat[0] else runs, "size": list(mask.shape)}


def gt_track(video_id, category_id, masks, iscrowd=0) -> dict:
    return {"video_id": video_id, "category_id": category_id, "masks": masks, "iscrowd": iscrowd}


def ground_truth(tracks, videos=None, num_categories=2) -> dict:
    """
    An annotation file. `videos` maps video id -> (length, height, width); by default, every
    video the tracks name, at the size of their masks.
    """
    if videos is None:
        videos = {}
        for t in tracks:
            mask = next(m for m in t["masks"] if m is not None)
            videos[t["video_id"]] = (len(t["masks"]), *mask.shape)
    annotations = [
        {
            "id": index + 1,
            "video_id": t["video_id"],
            "category_id": t["category_id"],
            "iscrowd": t["iscrowd"],
            "segmentations": [None if m is None else uncompressed_rle(m) for m in t["masks"]],
            "areas": [None if m is None else int(m.sum()) for m in t["masks"]],
        }
        for index, t in enumerate(tracks)
    ]
    return {
        "videos": [
            {"id": vid, "length": length, "height": h, "width": w,
             "file_names": [f"{vid}/{i:05d}.jpg" for i in range(length)]}
            for vid, (length, h, w) in videos.items()
        ],
        "annotations": annotations,
        "categories": [{"id": c, "name": f"class{c}"} for c in range(1, num_categories + 1)],
    }


def result(video_id, category_id, score, masks) -> dict:
    return {"video_id": video_id, "category_id": category_id, "score": score,
            "segmentations": encode_masks(masks)}


def segm(metrics: dict) -> dict:
    return metrics["segm"]


# ---------------------------------------------------------------- the metric


def test_perfect_predictions_score_100():
    a = [box(0, 4, 0, 4), box(1, 5, 1, 5), None]
    b = [None, box(5, 9, 6, 12), box(6, 10, 6, 12)]
    c = [box(2, 8, 2, 8)] * 3
    truth = ground_truth([gt_track(1, 1, a), gt_track(1, 2, b), gt_track(2, 1, c)])
    results = [result(1, 1, 0.9, a), result(1, 2, 0.5, b), result(2, 1, 0.7, c)]
    metrics = evaluate_ytvis(truth, results)
    for name in ("AP", "AP50", "AP75", "APs", "AR1", "AR10"):
        assert segm(metrics)[name] == pytest.approx(100.0), name
    # every track is small (< 128^2): medium and large have no ground truth
    assert math.isnan(segm(metrics)["APm"]) and math.isnan(segm(metrics)["APl"])
    assert metrics["tracking"] == {"IDSW": 0, "IDSW_per_video": 0.0}


def test_missing_frame_video_iou_arithmetic():
    # frame 0: identical (I 20, U 20); frame 1: shifted one column (I 16, U 24);
    # frame 2: prediction missing (U += 20); frame 3: only the prediction, area 6 (U += 6).
    truth_masks = [box(2, 6, 2, 7), box(2, 6, 2, 7), box(2, 6, 2, 7), None]
    predicted = [box(2, 6, 2, 7), box(2, 6, 3, 8), None, box(0, 2, 0, 3)]
    truth = ground_truth([gt_track(1, 1, truth_masks)])
    results = [result(1, 1, 0.8, predicted)]

    gt = load_ground_truth(truth)
    overlaps = compute_video_overlaps(load_results(results, gt), gt.tracks, num_frames=4)
    assert overlaps.iou[0, 0] == (20 + 16) / (20 + 24 + 20 + 6)  # 0.514...

    metrics = segm(evaluate_ytvis(truth, results))
    # a match at IoU threshold 0.50 only: 1 of 10 thresholds
    assert metrics["AP50"] == pytest.approx(100.0) and metrics["AP75"] == pytest.approx(0.0)
    assert metrics["AP"] == pytest.approx(10.0) and metrics["AR1"] == pytest.approx(10.0)


def test_identity_swapped_halfway_is_a_miss_and_two_switches():
    left, right = box(0, 4, 0, 4), box(0, 4, 6, 10)
    first, second = [left, left, right, right], [right, right, left, left]
    truth = ground_truth([gt_track(1, 1, [left] * 4), gt_track(1, 1, [right] * 4)])
    # each prediction follows one object for two frames, then the other one
    results = [result(1, 1, 0.9, first), result(1, 1, 0.8, second)]

    gt = load_ground_truth(truth)
    overlaps = compute_video_overlaps(load_results(results, gt), gt.tracks, num_frames=4)
    # per pair: I = 2 * 16, U = 2 * 16 + 2 * 32
    np.testing.assert_allclose(overlaps.iou, np.full((2, 2), 32 / 96))

    metrics = evaluate_ytvis(truth, results)
    assert segm(metrics)["AP"] == pytest.approx(0.0) and segm(metrics)["AR10"] == pytest.approx(0.0)
    # each ground truth: matched by one prediction, then by the other
    assert metrics["tracking"] == {"IDSW": 2, "IDSW_per_video": 2.0}


def test_video_iou_matches_the_official_per_frame_merge():
    """The official ytvoseval sums pycocotools merge areas frame by frame, pair by pair."""
    rng = np.random.default_rng(0)

    def random_masks(num_frames=5):
        return [None if rng.random() < 0.3 else rng.random((H, W)) < rng.random()
                for _ in range(num_frames)]

    truth = ground_truth(
        [gt_track(1, 1, random_masks()) for _ in range(3)]
        + [gt_track(1, 1, random_masks(), iscrowd=1)],
        videos={1: (5, H, W)},
    )
    results = [result(1, 1, 0.5, random_masks()) for _ in range(4)]
    gt = load_ground_truth(truth)
    predictions = load_results(results, gt)

    def official_iou(d_seq, g_seq, iscrowd):
        intersection = union = prediction_area = 0.0
        for d, g in zip(d_seq, g_seq):
            if d and g:
                intersection += mask_util.area(mask_util.merge([d, g], intersect=True))
                union += mask_util.area(mask_util.merge([d, g], intersect=False))
            elif d or g:
                union += mask_util.area(d or g)
            prediction_area += mask_util.area(d) if d else 0
        denominator = prediction_area if iscrowd else union  # crowd: see compute_video_overlaps
        return intersection / denominator if denominator else 0.0

    expected = [
        [official_iou(d["segmentations"], g["segmentations"], g["iscrowd"]) for g in gt.tracks]
        for d in predictions
    ]
    overlaps = compute_video_overlaps(predictions, gt.tracks, num_frames=5)
    np.testing.assert_allclose(overlaps.iou, expected, rtol=1e-12)


def test_count_identity_switches():
    frame_match = np.array(
        [
            [0, 0, -1, 0, 1, 1],  # a gap with the same prediction is no switch; then one switch
            [-1, -1, -1, -1, -1, -1],
            [2, 1, 2, -1, -1, 2],
        ]
    )
    assert count_identity_switches(frame_match) == [1, 0, 2]


def test_duplicate_prediction_is_one_tp_one_fp():
    first, second = [box(0, 4, 0, 4)] * 2, [box(3, 9, 3, 9)] * 2
    truth = ground_truth([gt_track(1, 1, first), gt_track(2, 1, second)])
    results = [result(1, 1, 0.9, first), result(1, 1, 0.8, first), result(2, 1, 0.7, second)]
    metrics = segm(evaluate_ytvis(truth, results))
    # by score: TP, FP, TP -> recall 1/2, 1/2, 1 at precision 1, 1/2, 2/3. Interpolated precision
    # is 1 at the 51 recall points 0.00..0.50 and 2/3 at the 50 points 0.51..1.00.
    expected = 100 * (51 * 1 + 50 * 2 / 3) / 101
    for name in ("AP", "AP50", "AP75"):
        assert metrics[name] == pytest.approx(expected), name
    assert metrics["AR1"] == pytest.approx(100.0)  # the duplicate is second in its video


def test_small_medium_large_split():
    size = dict(height=320, width=320)
    small = [box(0, 100, 0, 100, **size)] * 2  # 10000 < 128^2
    medium = [box(0, 150, 0, 150, **size)] * 2  # 22500 in [128^2, 256^2]
    # 90000 > 256^2. The absent frame does not count in the mean area (else 45000: medium).
    large = [box(0, 300, 0, 300, **size), None]
    truth = ground_truth([gt_track(1, 1, small), gt_track(2, 1, medium), gt_track(3, 1, large)])
    results = [result(1, 1, 0.9, small), result(3, 1, 0.8, large)]  # the medium one is missed
    metrics = segm(evaluate_ytvis(truth, results))
    assert (metrics["APs"], metrics["APm"], metrics["APl"]) == pytest.approx((100, 0, 100))
    # all areas: recall 1/3, 2/3 at precision 1 -> the 67 recall points 0.00..0.66 at precision 1
    assert metrics["AP"] == pytest.approx(100 * 67 / 101)


def test_crowd_ground_truth_is_ignored():
    person = [box(0, 3, 0, 3)] * 3
    crowd = [box(4, 10, 0, 12)] * 3
    # inside the crowd region except one row (5 pixels) of frame 0; absent in the last frame
    in_crowd = [box(3, 7, 0, 5), box(5, 9, 0, 5), None]
    truth = ground_truth([gt_track(1, 1, person), gt_track(1, 1, crowd, iscrowd=1)])
    results = [result(1, 1, 0.95, in_crowd), result(1, 1, 0.9, person)]

    gt = load_ground_truth(truth)
    overlaps = compute_video_overlaps(load_results(results, gt)[:1], gt.tracks, num_frames=3)
    # crowd: intersection over the prediction's area, summed over frames: (15 + 20) / (20 + 20)
    assert overlaps.iou[0, 1] == 35 / 40

    metrics = evaluate_ytvis(truth, results)
    # IoU thresholds <= 0.85: the first prediction matches the crowd and is ignored: AP 100.
    # 0.90 and 0.95: it is a false positive ranked before the true one: AP 50.
    # (Without crowd handling, or with the plain video IoU 35 / 221, AP would be 50.)
    assert segm(metrics)["AP"] == pytest.approx((8 * 100 + 2 * 50) / 10)
    assert segm(metrics)["AP50"] == pytest.approx(100.0)
    assert segm(metrics)["AR10"] == pytest.approx(100.0)
    assert metrics["tracking"]["IDSW"] == 0


def test_empty_results_give_zero():
    truth = ground_truth([gt_track(1, 1, [box(0, 4, 0, 4)] * 2)])
    metrics = evaluate_ytvis(truth, [])
    assert segm(metrics)["AP"] == pytest.approx(0.0) and segm(metrics)["AR10"] == pytest.approx(0.0)
    assert metrics["tracking"]["IDSW"] == 0


def test_ground_truth_without_annotations_is_refused():
    truth = ground_truth([gt_track(1, 1, [box(0, 4, 0, 4)] * 2)])
    truth["annotations"] = []
    with pytest.raises(ValueError, match="no annotations"):
        evaluate_ytvis(truth, [])


def _corrupt(record, **changes):
    return {**record, **changes}


_GOOD = result(1, 1, 0.5, [box(0, 4, 0, 4), None])
_FRAME = _GOOD["segmentations"][0]


@pytest.mark.parametrize(
    "record, message",
    [
        (_corrupt(_GOOD, video_id=7), r"result record 1 \(video_id=7\): unknown video_id"),
        (_corrupt(_GOOD, category_id=9), r"video_id=1\): unknown category_id 9"),
        (_corrupt(_GOOD, score=float("nan")), r"score must be a finite number, got nan"),
        (_corrupt(_GOOD, segmentations=[_FRAME]),
         r"video_id=1\): 'segmentations' has 1 entries, the video has 2 frames"),
        (_corrupt(_GOOD, segmentations=[None, {"size": [4, 4], "counts": _FRAME["counts"]}]),
         r"video_id=1\), frame 1 \(1/00001\.jpg\): RLE size \[4, 4\] differs"),
        (_corrupt(_GOOD, segmentations=[{"size": [H, W], "counts": "{{ !"}, None]),
         r"frame 0 \(1/00000\.jpg\): malformed compressed RLE: 'counts' is not a sequence"),
        (_corrupt(_GOOD, segmentations=[{"size": [H, W], "counts": "oooo"}, None]),  # unterminated
         r"frame 0 \(1/00000\.jpg\): malformed compressed RLE: 'counts' is not a sequence"),
        (_corrupt(_GOOD, segmentations=[None, {"size": [H, W], "counts": _FRAME["counts"] + "1"}]),
         r"frame 1 \(1/00001\.jpg\): malformed compressed RLE: runs add up to \d+, not 10\*12"),
        (_corrupt(_GOOD, segmentations=[{"size": [H, W], "counts": [3, 2]}, None]),
         r"runs add up to 5, not 10\*12"),
        (_corrupt(_GOOD, segmentations=[[[0, 0, 4, 0, 4, 4]], None]),  # the server takes RLE only
         r"frame 0 \(1/00000\.jpg\): a segmentation must be None or an RLE dict"),
        ({"video_id": 1, "score": 0.5}, r"missing \['category_id', 'segmentations'\]"),
    ],
)
def test_bad_results_name_the_record_and_problem(record, message):
    truth = ground_truth([gt_track(1, 1, [box(0, 4, 0, 4)] * 2)])
    with pytest.raises(InvalidInput, match=r"^results: result record 1 \(video_id=") as error:
        evaluate_ytvis(truth, [_GOOD, record])
    assert re.search(message, str(error.value))


def test_per_class_ap():
    a, b = [box(0, 4, 0, 4)] * 2, [box(5, 9, 5, 9)] * 2
    truth = ground_truth([gt_track(1, 1, a), gt_track(1, 2, b)])
    metrics = segm(evaluate_ytvis(truth, [result(1, 1, 0.9, a)], per_class=True))
    assert (metrics["AP-class1"], metrics["AP-class2"]) == pytest.approx((100, 0))
    assert metrics["AP"] == pytest.approx(50.0)


def test_cli_prints_metrics_json_last(tmp_path):
    a = [box(0, 4, 0, 4), None]
    truth = ground_truth([gt_track(1, 1, a), gt_track(1, 2, [box(5, 9, 5, 9)] * 2)])
    (tmp_path / "gt.json").write_text(json.dumps(truth))
    (tmp_path / "results.json").write_text(json.dumps([result(1, 1, 0.9, a)]))
    process = subprocess.run(
        [sys.executable, "-m", "sgnet.evaluation.ytvis_eval", "--gt", str(tmp_path / "gt.json"),
         "--results", str(tmp_path / "results.json"), "--per-class"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert process.returncode == 0, process.stderr
    printed = json.loads(process.stdout.strip().splitlines()[-1])
    assert printed["segm"]["AP"] == pytest.approx(50.0)
    assert printed["segm"]["AP-class2"] == pytest.approx(0.0)
    assert printed["segm"]["APm"] is None  # NaN (no medium ground truth) is written as null
    assert printed["tracking"] == {"IDSW": 0, "IDSW_per_video": 0.0}
    assert "RuntimeWarning" not in process.stderr


def _good_truth() -> dict:
    """One ground-truth track (annotation 1) over the 2 frames of video 1."""
    return ground_truth([gt_track(1, 1, [box(0, 4, 0, 4)] * 2)])


def _counts_not_covering_the_frame(truth):
    truth["annotations"][0]["segmentations"][1] = {"size": [H, W], "counts": [3, 2]}


def _polygon_of_two_points(truth):
    # pycocotools takes a 4-number "polygon" for a box: TypeError: Argument 'bb' ...
    truth["annotations"][0]["segmentations"][0] = [[0, 0, 4, 4]]


def _areas_as_strings(truth):
    truth["annotations"][0]["areas"] = ["16", "16"]


def _iscrowd_yes(truth):
    truth["annotations"][0]["iscrowd"] = "yes"


def _video_not_an_object(truth):
    truth["videos"].append(5)


def _category_without_id(truth):
    truth["categories"].append({"name": "x"})


def _annotation_not_an_object(truth):
    truth["annotations"].append(5)


BAD_GROUND_TRUTH = {
    _counts_not_covering_the_frame: "annotation 1 of video 1, frame 1 (1/00001.jpg): malformed "
    "uncompressed RLE: runs add up to 5, not 10*12",
    _polygon_of_two_points: "annotation 1 of video 1, frame 0 (1/00000.jpg): polygon 0 is not a "
    "list of at least 3 (x, y) points (an even number >= 6 of numbers): [0, 0, 4, 4]",
    _areas_as_strings: "annotation 1 of video 1, frame 0 (1/00000.jpg): 'areas' entry must be "
    "null or a number >= 0, got '16'",
    _iscrowd_yes: "annotation 1 of video 1: 'iscrowd' must be 0 or 1, got 'yes'",
    _video_not_an_object: "videos #1 is not a JSON object: 5",
    _category_without_id: "category #2 (id None): lacks 'id'",
    _annotation_not_an_object: "annotations #1 is not a JSON object: 5",
}


def _write_cli_case(tmp_path, case):
    """(ground-truth path, results path, the file the error must name, the problem it must state)."""
    gt, results = tmp_path / "gt.json", tmp_path / "results.json"
    truth = _good_truth()
    if case in BAD_GROUND_TRUTH:
        case(truth)
    gt.write_text(json.dumps(truth))
    results.write_text(json.dumps([_GOOD]))
    if case in BAD_GROUND_TRUTH:
        return gt, results, gt, BAD_GROUND_TRUTH[case]
    if case == "missing ground truth":
        return tmp_path / "no_such_gt.json", results, tmp_path / "no_such_gt.json", "no such file"
    if case == "truncated ground truth":
        gt.write_text(json.dumps(truth)[:60])
        return gt, results, gt, "not valid JSON (Expecting"
    if case == "missing results":
        return gt, tmp_path / "no_such_results.json", tmp_path / "no_such_results.json", "no such file"
    assert case == "bad results record"
    results.write_text(json.dumps([_GOOD, _corrupt(_GOOD, category_id=9)]))
    return gt, results, results, "result record 1 (video_id=1): unknown category_id 9"


@pytest.mark.parametrize(
    "case",
    [
        "missing ground truth",
        "truncated ground truth",
        *BAD_GROUND_TRUTH,
        "missing results",
        "bad results record",
    ],
    ids=lambda case: getattr(case, "__name__", case),
)
def test_cli_bad_input_ends_in_one_line_naming_file_and_problem(tmp_path, capsys, case):
    from sgnet.evaluation.ytvis_eval import main

    gt, results, named_file, problem = _write_cli_case(tmp_path, case)
    status = run_main("ytvis_eval", main, ["--gt", str(gt), "--results", str(results)])
    assert status == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ytvis_eval: error: {named_file}: {problem}"), lines


def test_cli_as_a_program_exits_2_without_traceback(tmp_path, monkeypatch, capsys):
    """``python -m sgnet.evaluation.ytvis_eval`` (its ``__main__`` block, run here in-process:
    another interpreter would take most of a minute to import torch) goes through run_main."""
    gt, results, _, problem = _write_cli_case(tmp_path, _polygon_of_two_points)
    monkeypatch.setattr(sys, "argv", ["ytvis_eval", "--gt", str(gt), "--results", str(results)])
    monkeypatch.delitem(sys.modules, "sgnet.evaluation.ytvis_eval", raising=False)  # run afresh
    with pytest.raises(SystemExit) as exit_info:  # any other exception would be a traceback
        runpy.run_module("sgnet.evaluation.ytvis_eval", run_name="__main__")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [f"ytvis_eval: error: {gt}: {problem}"]


def _compressed_counts_not_covering_the_frame(truth):
    # the runs of a 10 x 13 frame (130 pixels) under the video's size 10 x 12
    wider_frame = encode_masks([np.zeros((H, W + 1), bool)])[0]
    truth["annotations"][0]["segmentations"][1] = {"size": [H, W], "counts": wider_frame["counts"]}


@pytest.mark.parametrize(
    "corrupt, problem",
    [
        (_counts_not_covering_the_frame, "malformed uncompressed RLE: runs add up to 5, not 10*12"),
        (_compressed_counts_not_covering_the_frame,
         "malformed compressed RLE: runs add up to 130, not 10*12"),
    ],
)
def test_ground_truth_with_wrong_counts_is_refused_by_every_reader(tmp_path, corrupt, problem):
    """The metric, the detectron2 evaluator and the training data loader all decode the
    ground-truth masks: none may take a mask whose runs do not cover the frame, and all say so
    in the same words."""
    from sgnet.data import load_ytvis_json

    truth = _good_truth()
    corrupt(truth)
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(truth))
    expected = f"{gt}: annotation 1 of video 1, frame 1 (1/00001.jpg): {problem}"
    with pytest.raises(InvalidInput) as error:
        load_ground_truth(gt)
    assert str(error.value) == expected
    _register("ytvis_eval_test_bad_counts", gt)
    evaluator = YTVISEvaluator("ytvis_eval_test_bad_counts", distributed=False)
    evaluator.reset()
    evaluator.process([_video_input(1, 2)], [_model_output([(0.9, 1, [box(0, 4, 0, 4)] * 2)])])
    with pytest.raises(InvalidInput) as error:
        evaluator.evaluate()
    assert str(error.value) == expected
    with pytest.raises(InvalidInput) as error:
        load_ytvis_json(str(gt), str(tmp_path))
    assert str(error.value) == expected


def test_file_without_length_is_read_alike_by_loader_and_evaluator(tmp_path):
    """``length`` is optional: the loader and the evaluator both take the number of file_names;
    a ``length`` that differs from it is refused by both in the same words."""
    from data_fixtures import write_tiny_ytvis
    from sgnet.data import load_ytvis_json

    tiny = write_tiny_ytvis(str(tmp_path))
    content = tiny.copy_content()
    for video in content["videos"]:
        del video["length"]
    without_length = tiny.write_variant(content, "no_length.json")
    loaded = load_ytvis_json(without_length, tiny.image_root)
    truth = load_ground_truth(without_length)
    assert [d["length"] for d in loaded] == [truth.videos[vid].length for vid in (1, 2, 3)] == [4, 3, 5]
    assert [len(t["segmentations"]) for t in truth.tracks] == [4, 4, 4, 3]

    content["videos"][1]["length"] = 4
    wrong_length = tiny.write_variant(content, "wrong_length.json")
    expected = f"{wrong_length}: video #1 (id 2): 'length' is 4 but the video lists 3 file_names"
    for read in (lambda: load_ytvis_json(wrong_length, tiny.image_root), lambda: load_ground_truth(wrong_length)):
        with pytest.raises(InvalidInput) as error:
            read()
        assert str(error.value) == expected


# ---------------------------------------------------------------- per video


def one_video(truth: dict, results: list, video_id: int):
    """The annotation file and results of one video only, as a user would cut them out."""
    part = {**truth, "videos": [v for v in truth["videos"] if v["id"] == video_id]}
    part["annotations"] = [a for a in truth["annotations"] if a["video_id"] == video_id]
    return part, [r for r in results if r["video_id"] == video_id]


def evaluated(truth: dict, results: list):
    loaded = load_ground_truth(truth)
    return run_ytvis_eval(loaded, load_results(results, loaded))


def test_video_ap_is_the_metric_on_that_video_alone():
    """Video 1: a partial match and a false track; video 2: ground truth without predictions;
    video 3: a crowd only (no AP), with a prediction inside it; video 4: a perfect match."""
    a, b = [box(0, 4, 0, 6), box(0, 4, 1, 7)], [box(5, 9, 5, 9)] * 2
    truth = ground_truth(
        [gt_track(1, 1, a), gt_track(1, 2, b), gt_track(2, 1, b), gt_track(3, 2, b, iscrowd=1), gt_track(4, 2, a)]
    )
    results = [
        result(1, 1, 0.9, [box(0, 4, 0, 4), box(0, 4, 1, 7)]), result(1, 2, 0.8, a), result(1, 2, 0.3, b),
        result(3, 2, 0.7, [box(6, 8, 6, 8)] * 2), result(4, 2, 0.5, a),
    ]  # fmt: skip
    coco_eval = evaluated(truth, results)
    for video_id in (1, 2, 3, 4):
        alone = segm(evaluate_ytvis(*one_video(truth, results, video_id)))["AP"]
        np.testing.assert_equal(video_ap(coco_eval, video_id), alone, err_msg=f"video {video_id}")  # NaN == NaN
    assert (video_ap(coco_eval, 2), video_ap(coco_eval, 4)) == (0.0, pytest.approx(100.0))
    assert math.isnan(video_ap(coco_eval, 3))


def test_video_matches_are_the_metrics_greedy_matching():
    """Ground truth a (class 1) and a crowd (class 2) in one frame. The metric matches by score:
    ``high`` (IoU 20/30 with a) takes a at IoU 0.5 before ``exact`` (IoU 1), which is then
    false; at IoU 0.7 only ``exact`` matches. ``in_crowd`` lies in the crowd: neither paired
    nor false. Leaving out scores below 0.6 leaves a matched to ``high`` and nothing false."""
    a, crowd = box(0, 5, 0, 6), box(6, 10, 0, 12)
    truth = ground_truth([gt_track(1, 1, [a]), gt_track(1, 2, [crowd], iscrowd=1)])
    high, in_crowd = result(1, 1, 0.9, [box(0, 5, 0, 4)]), result(1, 2, 0.8, [box(7, 9, 2, 6)])
    exact = result(1, 1, 0.5, [a])
    coco_eval = evaluated(truth, [high, in_crowd, exact])

    def ids(matches):  # (pairs as (gt annotation id, record index, IoU), missed, false record indices)
        pairs = [(p.truth["annotation_id"], p.prediction["id"] - 1, p.iou) for p in matches.pairs]
        return pairs, [g["annotation_id"] for g in matches.missed], [d["id"] - 1 for d in matches.false]

    assert ids(video_matches(coco_eval, 1)) == ([(1, 0, pytest.approx(20 / 30))], [], [2])
    assert ids(video_matches(coco_eval, 1, iou_threshold=0.7)) == ([(1, 2, 1.0)], [], [0])
    assert ids(video_matches(coco_eval, 1, score_threshold=0.6)) == ([(1, 0, pytest.approx(20 / 30))], [], [])
    assert ids(video_matches(coco_eval, 1, score_threshold=0.95)) == ([], [1], [])
    with pytest.raises(ValueError, match="not one of the metric's"):
        video_matches(coco_eval, 1, iou_threshold=0.52)


# ---------------------------------------------------------------- the detectron2 evaluator


def _register(name: str, json_file: Path, num_categories=2):
    if name in MetadataCatalog.list():
        MetadataCatalog.remove(name)
    # dataset ids 1..C <-> contiguous ids in reverse, so that a missed inversion shows
    dataset_ids = range(1, num_categories + 1)
    MetadataCatalog.get(name).set(
        json_file=str(json_file),
        thing_dataset_id_to_contiguous_id={c: num_categories - c for c in dataset_ids},
        thing_classes=[f"class{c}" for c in range(num_categories, 0, -1)],
        evaluator_type="ytvis",
    )


def _video_input(video_id, length, height=H, width=W):
    return {"video_id": video_id, "length": length, "height": height, "width": width}


def _model_output(tracks, height=H, width=W):
    """tracks: (score, contiguous label, per-frame numpy masks or None)."""
    return {
        "image_size": (height, width),
        "pred_scores": [score for score, _, _ in tracks],
        "pred_labels": [label for _, label, _ in tracks],
        "pred_masks": [masks for _, _, masks in tracks],
    }


# The duplicate-prediction case as model outputs: expected AP 100 * (51 + 50 * 2/3) / 101.
_FIRST, _SECOND = [box(0, 4, 0, 4), None, box(1, 5, 1, 5)], [box(3, 9, 3, 9)] * 3
DUPLICATE_CASE_AP = 100 * (51 + 50 * 2 / 3) / 101


def duplicate_case_truth() -> dict:
    return ground_truth([gt_track(1, 1, _FIRST), gt_track(2, 1, _SECOND)])


def duplicate_case_model_io():
    """Inputs and outputs per video. Dataset category 1 is contiguous label 1 (see _register)."""
    as_tensors = [None if m is None else torch.from_numpy(m) for m in _FIRST]
    return [
        (_video_input(1, 3), _model_output([(0.9, 1, as_tensors), (0.8, 1, _FIRST)])),
        (_video_input(2, 3), _model_output([(0.7, 1, [m.astype(np.uint8) for m in _SECOND])])),
    ]


def test_evaluator_round_trip_and_files(tmp_path):
    (tmp_path / "gt.json").write_text(json.dumps(duplicate_case_truth()))
    _register("ytvis_eval_test_round_trip", tmp_path / "gt.json")
    evaluator = YTVISEvaluator("ytvis_eval_test_round_trip", output_dir=str(tmp_path / "out"))
    evaluator.reset()
    for video, output in duplicate_case_model_io():
        evaluator.process([video], [output])
    metrics = evaluator.evaluate()

    assert set(metrics) == {"segm", "tracking"}
    assert list(metrics["segm"]) == ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10"]
    assert metrics["segm"]["AP"] == pytest.approx(DUPLICATE_CASE_AP)
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [(r["video_id"], r["category_id"], r["score"]) for r in written] == [
        (1, 1, 0.9), (1, 1, 0.8), (2, 1, 0.7)
    ]
    assert written[0]["segmentations"][1] is None
    assert isinstance(written[0]["segmentations"][0]["counts"], str)
    with zipfile.ZipFile(tmp_path / "out" / "results.zip") as archive:
        assert archive.namelist() == ["results.json"]
        assert json.loads(archive.read("results.json")) == written


def test_evaluator_without_ground_truth_writes_files_only(tmp_path, caplog):
    truth = duplicate_case_truth()
    del truth["annotations"]
    (tmp_path / "valid.json").write_text(json.dumps(truth))
    _register("ytvis_eval_test_no_gt", tmp_path / "valid.json")
    evaluator = YTVISEvaluator("ytvis_eval_test_no_gt", output_dir=str(tmp_path))
    evaluator.reset()
    video, output = duplicate_case_model_io()[0]
    evaluator.process([video], [output])
    with caplog.at_level(logging.INFO, logger="sgnet.evaluation"):
        assert evaluator.evaluate() == {}
    assert "no ground-truth annotations" in caplog.text
    assert len(json.loads((tmp_path / "results.json").read_text())) == 2


def test_evaluator_refuses_outputs_not_at_original_resolution(tmp_path):
    (tmp_path / "gt.json").write_text(json.dumps(duplicate_case_truth()))
    _register("ytvis_eval_test_resolution", tmp_path / "gt.json")
    evaluator = YTVISEvaluator("ytvis_eval_test_resolution")
    output = _model_output([(0.9, 1, [box(0, 2, 0, 2, 5, 6)] * 3)], height=5, width=6)
    with pytest.raises(ValueError, match=r"video 1: results must be at the original resolution"):
        evaluator.process([_video_input(1, 3)], [output])


def test_evaluator_reads_the_category_map_at_first_use(tmp_path):
    # A dataset registration may set the map only when the dataset is loaded.
    (tmp_path / "gt.json").write_text(json.dumps(duplicate_case_truth()))
    MetadataCatalog.get("ytvis_eval_test_late_map").set(json_file=str(tmp_path / "gt.json"))
    evaluator = YTVISEvaluator("ytvis_eval_test_late_map", distributed=False)
    MetadataCatalog.get("ytvis_eval_test_late_map").set(
        thing_dataset_id_to_contiguous_id={1: 1, 2: 0}
    )
    evaluator.reset()
    for video, output in duplicate_case_model_io():
        evaluator.process([video], [output])
    assert evaluator.evaluate()["segm"]["AP"] == pytest.approx(DUPLICATE_CASE_AP)


def test_failed_write_leaves_the_previous_result_files(tmp_path, monkeypatch):
    (tmp_path / "gt.json").write_text(json.dumps(duplicate_case_truth()))
    _register("ytvis_eval_test_atomic", tmp_path / "gt.json")
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text('[{"previous": "run"}]')
    (out / "results.zip").write_bytes(b"previous zip")
    evaluator = YTVISEvaluator("ytvis_eval_test_atomic", output_dir=str(out), distributed=False)
    evaluator.reset()
    for video, output in duplicate_case_model_io():
        evaluator.process([video], [output])

    def disk_full(*args, **kwargs):  # results.json is written by then, the zip is under way
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        evaluator.evaluate()
    assert (out / "results.json").read_bytes() == b'[{"previous": "run"}]'
    assert (out / "results.zip").read_bytes() == b"previous zip"
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "results.zip"]  # no leftovers


def _ground_truth_as_output(video: dict) -> dict:
    """A loaded video dict's non-crowd objects as a model output: one track per object id, its
    masks decoded from the dict, labelled with its (contiguous) category, score 1."""
    from sgnet.data import segmentation_to_mask

    tracks = {}
    for t, objects in enumerate(video["annotations"]):
        for obj in (o for o in objects if not o["iscrowd"]):
            label, masks = tracks.setdefault(obj["id"], (obj["category_id"], [None] * video["length"]))
            masks[t] = segmentation_to_mask(obj["segmentation"], video["height"], video["width"])
    return _model_output(
        [(1.0, label, masks) for label, masks in tracks.values()], video["height"], video["width"]
    )


def test_evaluator_built_before_the_loader_uses_the_files_categories(tmp_path):
    """As ``DefaultTrainer.test(cfg, model, evaluators)`` allows: the evaluator exists before the
    dataset is loaded, and the loader then replaces the registered categories by the file's."""
    from data_fixtures import write_tiny_ytvis
    from detectron2.data import DatasetCatalog
    from sgnet.data import register_ytvis_instances

    tiny = write_tiny_ytvis(str(tmp_path))  # categories 3 "cat", 7 "dog", 11 "fish"
    name = "ytvis_eval_test_late_categories"
    # registered defaults: other ids, the classes in another order
    defaults = {"thing_classes": ["fish", "dog", "cat"],
                "thing_dataset_id_to_contiguous_id": {1: 0, 2: 1, 3: 2}}
    register_ytvis_instances(name, defaults, tiny.json_file, tiny.image_root)
    try:
        metadata = MetadataCatalog.get(name)
        evaluator = YTVISEvaluator(name, output_dir=str(tmp_path / "out"), distributed=False)
        videos = DatasetCatalog.get(name)  # the real loader
        assert MetadataCatalog.get(name) is metadata  # updated in place, not replaced
        assert metadata.thing_dataset_id_to_contiguous_id == {3: 0, 7: 1, 11: 2}
        evaluator.reset()
        for video in videos:
            evaluator.process([video], [_ground_truth_as_output(video)])
        metrics = evaluator.evaluate()
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [(r["video_id"], r["category_id"]) for r in written] == [(1, 3), (1, 7), (2, 11)]
    assert metrics["segm"]["AP"] == pytest.approx(100.0)
    assert metrics["segm"]["AR10"] == pytest.approx(100.0)


def _distributed_worker(rank, world_size, init_file, json_file, result_file):
    import torch.distributed as dist

    from distributed_fixtures import leave_process_group

    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    _register("ytvis_eval_test_distributed", Path(json_file))
    evaluator = YTVISEvaluator("ytvis_eval_test_distributed")
    evaluator.reset()
    # contiguous shards, as detectron2's InferenceSampler gives them
    video, output = duplicate_case_model_io()[rank]
    evaluator.process([video], [output])
    metrics = evaluator.evaluate()
    if rank == 0:
        Path(result_file).write_text(json.dumps(metrics))
    else:
        assert metrics == {}
    leave_process_group()


def test_distributed_evaluation_matches_single_process(tmp_path):
    (tmp_path / "gt.json").write_text(json.dumps(duplicate_case_truth()))
    torch.multiprocessing.spawn(
        _distributed_worker,
        args=(2, str(tmp_path / "init"), str(tmp_path / "gt.json"), str(tmp_path / "m.json")),
        nprocs=2,
    )
    _register("ytvis_eval_test_single", tmp_path / "gt.json")
    evaluator = YTVISEvaluator("ytvis_eval_test_single", distributed=False)
    evaluator.reset()
    for video, output in duplicate_case_model_io():
        evaluator.process([video], [output])
    single = evaluator.evaluate()
    assert (tmp_path / "m.json").read_text() == json.dumps(single)  # text: NaN != NaN
    assert single["segm"]["AP"] == pytest.approx(DUPLICATE_CASE_AP)


def test_synthetic_dataset_round_trip_scores_100(tmp_path):
    from sgnet.data.synthetic import generate_synthetic_ytvis

    files = generate_synthetic_ytvis(
        str(tmp_path), num_train_videos=1, num_val_videos=3, num_frames=4, height=48, width=64
    )
    with open(files["val_json"]) as f:
        truth = json.load(f)
    assert truth["annotations"]
    sizes = {v["id"]: (v["height"], v["width"]) for v in truth["videos"]}
    # results from the ground truth's own masks, decoded and encoded as the evaluator does
    results = []
    for a in truth["annotations"]:
        size = sizes[a["video_id"]]
        masks = [None if s is None else _decode(s, *size) for s in a["segmentations"]]
        results.append(result(a["video_id"], a["category_id"], 1.0, masks))
    metrics = segm(evaluate_ytvis(files["val_json"], results))
    assert metrics["AP"] == pytest.approx(100.0) and metrics["AP75"] == pytest.approx(100.0)


def _decode(segmentation, height, width) -> np.ndarray:
    rle = mask_util.frPyObjects(segmentation, height, width)
    return mask_util.decode(mask_util.merge(rle) if isinstance(rle, list) else rle)
