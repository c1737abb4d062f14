"""What every converter test checks of a converted file, through the real loader and evaluator:
the masks come back pixel-equal with their ids, classes and null frames, and the ground truth
scored against itself gives AP 100."""
import json
from collections import Counter
from typing import Dict, List

import numpy as np
import pycocotools.mask as mask_util
import pytest

from sgnet.data import load_ytvis_json
from sgnet.data.convert.cli import main as convert_main
from sgnet.errors import run_main
from sgnet.evaluation import evaluate_ytvis
from sgnet.formats.rle import segmentation_to_mask

PROG = "python -m sgnet.data.convert"


def run_convert(argv, capsys) -> dict:
    """The CLI in-process: exit status 0 and the summary of its last stdout line."""
    assert run_main(PROG, convert_main, argv) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def convert_error(argv, capsys, absent=None) -> str:
    """The CLI in-process on a bad source: exit status 2 and its one stderr line (returned);
    the path ``absent``, if given, is not there afterwards."""
    assert run_main(PROG, convert_main, argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith(f"{PROG}: error: "), err
    assert absent is None or not absent.exists()
    return lines[0]


def refused_leaving_files_as_they_were(argv, capsys, root) -> str:
    """The CLI's one error line, every file under ``root`` byte-equal before and after."""
    before = {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}
    error = convert_error(argv, capsys)
    assert {path: path.read_bytes() for path in root.rglob("*") if path.is_file()} == before
    return error


def loaded_tracks(summary: dict) -> List[Dict[int, tuple]]:
    """Per video (file order), per frame: ``{track id: (contiguous class, iscrowd, (H, W) bool
    mask)}`` as :func:`load_ytvis_json` gives them."""
    videos = load_ytvis_json(summary["json"], summary["image_root"])
    out = []
    for video in videos:
        frames = []
        for objects in video["annotations"]:
            frames.append({
                o["id"]: (o["category_id"], o["iscrowd"], segmentation_to_mask(o["segmentation"], video["height"], video["width"]).astype(bool))
                for o in objects
            })  # fmt: skip
        out.append(frames)
    return out


def assert_self_ap_is_100(summary: dict) -> None:
    """Each non-crowd ground-truth track submitted as a result (score 1): AP 100, no switches."""
    content = json.loads(open(summary["json"]).read())
    results = []
    for track in content["annotations"]:
        if track["iscrowd"]:
            continue
        masks = [
            None if s is None else segmentation_to_mask(s, track["height"], track["width"]) for s in track["segmentations"]
        ]
        segmentations = [
            None if m is None else {**(rle := mask_util.encode(np.asfortranarray(m))), "counts": rle["counts"].decode()}
            for m in masks
        ]
        results.append({"video_id": track["video_id"], "category_id": track["category_id"], "score": 1.0, "segmentations": segmentations})
    metrics = evaluate_ytvis(summary["json"], results)
    assert metrics["segm"]["AP"] == pytest.approx(100.0)
    assert metrics["tracking"]["IDSW"] == 0


def tracks_as_multiset(frames: list) -> Counter:
    """One video's loaded frames -> a multiset of its tracks, each (class, iscrowd, per-frame
    mask bytes or None): a track is one id over all frames, whatever id the writer gave it."""
    ids = {track_id for objects in frames for track_id in objects}
    keys = Counter()
    for track_id in ids:
        (category, iscrowd), = {objects[track_id][:2] for objects in frames if track_id in objects}
        masks = tuple(objects[track_id][2].tobytes() if track_id in objects else None for objects in frames)
        keys[category, iscrowd, masks] += 1
    return keys
