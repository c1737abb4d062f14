#!/usr/bin/env python
"""Look at results beside the ground truth: per video, what the metric matched, missed and got wrong.

    python tools/visualize_results.py --gt GT.json --results results.json --image-root DIR \
        --output OUT [--videos ID ...] [--score-threshold 0.3]

The video counterpart of detectron2's ``tools/visualize_json_results.py``, for a YouTube-VIS
annotation file and a results file (the official formats); ``--image-root`` is the
folder the annotation file's ``file_names`` are relative to (the split's ``JPEGImages/``). Per
video of ``--videos`` (default: all, in the file's order), written into ``OUT``:

- ``<video_id>.mp4``: every frame (H.264, 6 frames/s), the ground truth on the left and the
  predictions on the right, so twice the video's width;
- ``<video_id>_strip.png``: 4 evenly spaced of those frames side by side.

Predictions scoring at least ``--score-threshold`` (default 0.3) are drawn, each in the colour of
its record, labelled ``r<index> class score`` (index: its position in results.json, from 0).
Ground-truth tracks are labelled ``#<annotation id> class``; crowd regions are greyed and
hatched. The labels also give the metric's own matching (per category, greedy by descending
score, at video IoU 0.5: COCOeval's, as in AP50): a matched ground truth carries ``= r<index>
<video IoU>`` and its prediction ``= #<annotation id>``; a ground truth matched by no drawn
prediction carries ``MISSED``, a drawn prediction matched to nothing ``FALSE`` (one inside a
crowd region is neither: the metric ignores it).

Over the videos drawn:

- ``summary.csv``: one row per video: ``video_id``, ``AP`` (the official metric on that video
  alone, 0-100; empty without ground truth), ``matched``, ``missed``, ``false`` (counts as drawn,
  at the score threshold), ``ious`` (each matched pair as ``#<annotation id>=r<index>:<IoU>``,
  space separated);
- ``per_class_ap.png``: the metric's AP per class on those videos (all by default), a bar chart.

A ``--gt`` without annotations (a public valid split) only names the frames: the predictions are
drawn alone (frames at the video's width), and there is no summary.csv or chart.

Files of a previous run at the same paths are replaced. Nothing of the user's is lost: an
``--output`` that is, or holds, an input is refused; every file appears whole or not at all, and a
failed or interrupted run removes the files it wrote and the folders it made. Prints a line saying
what was written where, and as the last line a JSON object: ``{"output": OUT, "videos": n,
"files": n}``. Exit status: 0 on success, 2 on bad input or output (one line), 130 when
interrupted.
"""
import argparse
import csv
import json
import math
import os
import sys
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional

import sgnet  # noqa: F401, I001  (first: makes detectron2 importable here and registers SG-Net)

import numpy as np
import pycocotools.mask as mask_util
import tqdm
from detectron2.utils.logger import setup_logger

from sgnet.data import draw_tracks_and_crowds, write_video_and_strip
from sgnet.data.dataset_mapper import read_sized_image
from sgnet.data.video import DEFAULT_FPS
from sgnet.errors import InvalidInput, MissingInput, run_main
from sgnet.evaluation import (
    VideoMatches,
    load_ground_truth,
    load_results,
    per_category_ap,
    run_ytvis_eval,
    select_videos,
    summary_ap,
    video_ap,
    video_matches,
)
from sgnet.fileio import WrittenFiles, atomic_path, atomic_write, refuse_overwriting_inputs
from sgnet.formats.ytvis import Video

STRIP_FRAMES = 4
SUMMARY_COLUMNS = ("video_id", "AP", "matched", "missed", "false", "ious")


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--gt", required=True, metavar="GT.json", help="YouTube-VIS annotation file (annotations optional)"
    )
    parser.add_argument("--results", required=True, metavar="results.json", help="YouTube-VIS results file")
    parser.add_argument("--image-root", required=True, metavar="DIR", help="the folder of the frames' file_names")
    parser.add_argument("--output", required=True, metavar="OUT", help="folder for the videos, strips and summary")
    parser.add_argument("--videos", type=int, nargs="+", metavar="ID", help="video ids to draw (default: all)")
    parser.add_argument(
        "--score-threshold", type=float, default=0.3, help="draw predictions scoring at least this (default: 0.3)"
    )
    return parser


@dataclass(frozen=True)
class DrawnTrack:
    track: dict  # an evaluation track (sgnet.evaluation.tracks)
    label: str
    color_id: int  # the id its colour comes from (sgnet.data.track_color)


def record_index(prediction: dict) -> int:
    """A prediction's position in results.json, from 0 (load_results numbers them from 1)."""
    return prediction["id"] - 1


def chosen_videos(videos: Dict[int, Video], video_ids: Optional[List[int]], gt_path: str) -> List[Video]:
    """The videos of ``--videos`` (each once, in the order given), or all in the file's order."""
    if video_ids is None:
        return list(videos.values())
    unknown = [video_id for video_id in video_ids if video_id not in videos]
    if unknown:
        raise InvalidInput(f"--videos {' '.join(map(str, unknown))}: no such video id in {gt_path}")
    return [videos[video_id] for video_id in dict.fromkeys(video_ids)]


def group_by_video(tracks: List[dict]) -> Dict[int, List[dict]]:
    groups = defaultdict(list)
    for track in tracks:
        groups[track["video_id"]].append(track)
    return groups


def labelled(name: str, verdict: Optional[str]) -> str:
    """A track's label: its name, then the metric's verdict on it if any."""
    return f"{name} {verdict}" if verdict else name


def truth_panel(truths: List[dict], matches: VideoMatches, names: Dict[int, str]) -> List[DrawnTrack]:
    """A video's ground-truth tracks, labelled "#annotation_id class" and the metric's verdict."""
    verdicts = {pair.truth["id"]: f"= r{record_index(pair.prediction)} {pair.iou:.2f}" for pair in matches.pairs}
    verdicts.update((truth["id"], "MISSED") for truth in matches.missed)
    return [
        DrawnTrack(
            track=g,
            label=labelled(f"#{g['annotation_id']} {names[g['category_id']]}", verdicts.get(g["id"])),
            color_id=g["annotation_id"],
        )
        for g in truths
    ]


def prediction_panel(
    predictions: List[dict], matches: Optional[VideoMatches], names: Dict[int, str], score_threshold: float
) -> List[DrawnTrack]:
    """A video's predictions scoring at least ``score_threshold``, labelled "r<index> class
    score" and, when evaluated (``matches``), the metric's verdict."""
    verdicts = {}
    if matches is not None:
        verdicts = {pair.prediction["id"]: f"= #{pair.truth['annotation_id']}" for pair in matches.pairs}
        verdicts.update((prediction["id"], "FALSE") for prediction in matches.false)
    shown = [d for d in predictions if d["score"] >= score_threshold]
    return [
        DrawnTrack(
            track=d,
            label=labelled(f"r{record_index(d)} {names[d['category_id']]} {d['score']:.2f}", verdicts.get(d["id"])),
            color_id=record_index(d),
        )
        for d in shown
    ]


def draw_panel(frame_bgr: np.ndarray, panel: List[DrawnTrack], t: int) -> np.ndarray:
    """The (H, W, 3) BGR frame ``t`` of a video with the panel's tracks present in it drawn
    (crowds hatched). Returns (H, W, 3) BGR."""
    present = [drawn for drawn in panel if drawn.track["frame_areas"][t] > 0]
    rles = [drawn.track["segmentations"][t] for drawn in present]
    if rles:
        masks = mask_util.decode(rles).transpose(2, 0, 1).astype(bool)  # (N, H, W)
        boxes = mask_util.toBbox(rles)  # (N, 4) XYWH
        boxes[:, 2:] += boxes[:, :2]
    else:
        masks, boxes = np.zeros((0, *frame_bgr.shape[:2]), bool), np.zeros((0, 4))
    labels, color_ids = [drawn.label for drawn in present], [drawn.color_id for drawn in present]
    crowd = [bool(drawn.track["iscrowd"]) for drawn in present]
    return draw_tracks_and_crowds(frame_bgr, masks, boxes, labels, color_ids, crowd)


def drawn_frames(video: Video, image_root: str, panels: List[List[DrawnTrack]]) -> Iterator[np.ndarray]:
    """Each frame of the video with every panel drawn on it, side by side: (H, len(panels) * W, 3) BGR."""
    for t, name in enumerate(video.file_names):
        where = f"video {video.id} frame {t}"
        frame = read_sized_image(os.path.join(image_root, name), (video.height, video.width), "BGR", where=where)
        yield np.concatenate([draw_panel(frame, panel, t) for panel in panels], axis=1)


def summary_row(video_id: int, ap: float, matches: VideoMatches) -> list:
    """One row of summary.csv (:data:`SUMMARY_COLUMNS`)."""
    ious = " ".join(
        f"#{pair.truth['annotation_id']}=r{record_index(pair.prediction)}:{pair.iou:.4f}" for pair in matches.pairs
    )
    ap_text = "" if math.isnan(ap) else f"{ap:.4f}"
    return [video_id, ap_text, len(matches.pairs), len(matches.missed), len(matches.false), ious]


def write_summary(path: str, rows: List[list]) -> str:
    with atomic_write(path, "w") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(SUMMARY_COLUMNS)
        writer.writerows(rows)
    return path


def write_per_class_chart(path: str, per_class: Dict[str, float], title: str) -> str:
    """A horizontal bar per class (AP 0-100, "no ground truth" where NaN) as a PNG at ``path``."""
    # Matplotlib's object API with the Agg canvas: no pyplot state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 1.2 + 0.3 * len(per_class)))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    positions = np.arange(len(per_class))
    values = [0.0 if math.isnan(ap) else ap for ap in per_class.values()]
    axes.barh(positions, values, color="tab:blue")
    for position, ap in zip(positions, per_class.values()):
        text = "no ground truth" if math.isnan(ap) else f"{ap:.1f}"
        axes.text(0 if math.isnan(ap) else ap, position, f" {text}", va="center", fontsize=8)
    axes.set_yticks(positions, list(per_class))
    axes.invert_yaxis()  # the first class on top
    axes.set_xlim(0, 110)
    axes.set_xlabel("AP (YouTube-VIS metric, 0-100)")
    axes.set_title(title)
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as staging:
        figure.savefig(staging, format="png")
    return path


def load_inputs(args):
    """The ground truth and predictions (evaluation tracks) of the chosen videos, those videos,
    and whether there is ground truth to evaluate against."""
    if not os.path.isdir(args.image_root):
        raise MissingInput(f"--image-root {args.image_root}: no such folder")
    truth = load_ground_truth(args.gt)
    evaluated = bool(truth.tracks)  # a public valid split has no annotations: nothing to match
    videos = chosen_videos(truth.videos, args.videos, args.gt)
    truth, predictions = select_videos(truth, load_results(args.results, truth), [video.id for video in videos])
    return truth, predictions, videos, evaluated


def write_videos(args, truth, predictions, videos, coco_eval, output, written: WrittenFiles) -> List[list]:
    """Each video's mp4 and strip (ground truth | predictions, or the predictions alone without
    ``coco_eval``); returns the summary rows (none without ``coco_eval``)."""
    names = {category.id: category.name for category in truth.categories}
    truths_per_video, predictions_per_video = group_by_video(truth.tracks), group_by_video(predictions)
    rows = []
    for video in tqdm.tqdm(videos, unit="video", desc="videos"):
        matches = None if coco_eval is None else video_matches(coco_eval, video.id, args.score_threshold)
        panels = [prediction_panel(predictions_per_video[video.id], matches, names, args.score_threshold)]
        if coco_eval is not None:
            panels.insert(0, truth_panel(truths_per_video[video.id], matches, names))
            rows.append(summary_row(video.id, video_ap(coco_eval, video.id), matches))
        paths = [os.path.join(output, f"{video.id}{suffix}") for suffix in (".mp4", "_strip.png")]
        frames = drawn_frames(video, args.image_root, panels)
        written.add(*write_video_and_strip(*paths, frames, video.length, DEFAULT_FPS, STRIP_FRAMES))
    return rows


def write_evaluation(coco_eval, categories, rows: List[list], output: str) -> List[str]:
    """``output/summary.csv`` (the per-video ``rows``) and ``output/per_class_ap.png``."""
    overall = summary_ap(coco_eval)
    title = f"Per-class AP over {len(coco_eval.params.imgIds)} videos"
    title += "" if math.isnan(overall) else f" (AP {overall:.1f})"
    per_class = per_category_ap(coco_eval, categories)
    return [
        write_summary(os.path.join(output, "summary.csv"), rows),
        write_per_class_chart(os.path.join(output, "per_class_ap.png"), per_class, title),
    ]


def visualize(argv=None) -> int:
    args = get_parser().parse_args(argv)
    setup_logger(name="sgnet")
    truth, predictions, videos, evaluated = load_inputs(args)
    output = os.path.abspath(args.output)
    refuse_overwriting_inputs(output, [args.gt, args.results, args.image_root])
    coco_eval = run_ytvis_eval(truth, predictions) if evaluated else None
    with WrittenFiles().removed_on_failure(output) as written:  # no partial output
        written.folders.make(output)
        rows = write_videos(args, truth, predictions, videos, coco_eval, output, written)
        if evaluated:
            written.add(*write_evaluation(coco_eval, truth.categories, rows, output))
    layout = "ground truth | predictions" if evaluated else "predictions alone: the ground truth has no annotations"
    extra = "; summary.csv and per_class_ap.png" if evaluated else ""
    print(
        f"Wrote {len(videos)} videos to {output}: <video_id>.mp4 ({layout}, every frame) and <video_id>_strip.png "
        f"({STRIP_FRAMES} frames){extra}"
    )
    print(json.dumps({"output": output, "videos": len(videos), "files": len(written.paths)}))
    return 0


def main(argv=None) -> int:
    """The command line; returns the exit status (2: a user's mistake, reported in one line)."""
    return run_main("visualize_results.py", visualize, argv)


if __name__ == "__main__":
    sys.exit(main())
