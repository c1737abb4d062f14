#!/usr/bin/env python
"""Time the YouTube-VIS evaluation on synthetic files (default: 300 videos x 30 frames x 10 tracks).

    python tools/benchmark_eval.py [--videos 300] [--frames 30] [--tracks 10]
                                   [--height 360] [--width 640]

Writes, to a temporary directory, a ground-truth file in the official format (uncompressed RLE,
``areas``, null where a track is absent) and a results file (compressed RLE), one prediction per
ground-truth track: jittered, sometimes with a wrong category, a missing frame or an identity
swap. Objects are moving rectangles of assorted sizes (small, medium and large tracks).

Times :func:`sgnet.evaluation.evaluate_ytvis` on the two files, as the command line runs it
(reading and checking both files, video IoUs, matching, accumulation), and prints the seconds.
"""
import argparse
import json
import logging
import os
import sys
import tempfile
import time

import numpy as np
import pycocotools.mask as mask_util

from sgnet.evaluation import evaluate_ytvis  # imports sgnet first: detectron2 compat
from sgnet.errors import InvalidInput, run_main

NUM_CATEGORIES = 40  # as YouTube-VIS


def rectangle_rle(y0, y1, x0, x1, height, width) -> dict:
    """Uncompressed RLE of rows y0:y1, columns x0:x1 (column-major runs, zeros first)."""
    rows, cols = y1 - y0, x1 - x0
    counts = [x0 * height + y0] + [rows, height - rows] * (cols - 1)
    counts += [rows, height - y1 + (width - x1) * height]
    return {"counts": counts, "size": [height, width]}


def random_track(rng, frames, height, width):
    """Per-frame boxes (y0, y1, x0, x1) of a rectangle moving across the frame, None outside the
    frames where the object is present."""
    box_h = int(rng.integers(10, height * 4 // 5))
    box_w = int(rng.integers(10, width * 4 // 5))
    start = rng.uniform([0, 0], [height - box_h, width - box_w])
    velocity = rng.uniform(-4, 4, size=2)
    first, last = sorted(rng.integers(0, frames, size=2))
    boxes = []
    for t in range(frames):
        if not first <= t <= last:
            boxes.append(None)
            continue
        y0, x0 = (int(v) for v in np.clip(start + velocity * t, 0, [height - box_h, width - box_w]))
        boxes.append((y0, y0 + box_h, x0, x0 + box_w))
    return boxes


def jitter(rng, boxes, height, width):
    """A prediction of a track: boxes moved by a few pixels, one frame dropped now and then."""
    predicted = []
    for box in boxes:
        if box is None or rng.random() < 0.03:
            predicted.append(None)
            continue
        dy, dx = (int(v) for v in rng.integers(-3, 4, size=2))
        y0, y1 = min(max(box[0] + dy, 0), height), min(max(box[1] + dy, 0), height)
        x0, x1 = min(max(box[2] + dx, 0), width), min(max(box[3] + dx, 0), width)
        predicted.append((y0, y1, x0, x1) if y1 > y0 and x1 > x0 else None)
    return predicted


def make_files(directory, args, rng):
    videos, annotations, results = [], [], []
    for video_id in range(1, args.videos + 1):
        videos.append({"id": video_id, "height": args.height, "width": args.width,
                       "length": args.frames,
                       "file_names": [f"{video_id}/{t:05d}.jpg" for t in range(args.frames)]})
        tracks = [
            random_track(rng, args.frames, args.height, args.width) for _ in range(args.tracks)
        ]
        categories = rng.integers(1, NUM_CATEGORIES + 1, size=args.tracks)
        for boxes, category in zip(tracks, categories):
            segmentations = [None if b is None else rectangle_rle(*b, args.height, args.width)
                             for b in boxes]
            annotations.append({
                "id": len(annotations) + 1, "video_id": video_id, "category_id": int(category),
                "iscrowd": 0, "segmentations": segmentations,
                "areas": [None if b is None else (b[1] - b[0]) * (b[3] - b[2]) for b in boxes],
            })
        # a swap of identities halfway through between the first two tracks
        half = args.frames // 2
        tracks[0], tracks[1] = (
            tracks[0][:half] + tracks[1][half:],
            tracks[1][:half] + tracks[0][half:],
        )
        for boxes, category in zip(tracks, categories):
            if rng.random() < 0.1:
                category = rng.integers(1, NUM_CATEGORIES + 1)
            results.append({"video_id": video_id, "category_id": int(category),
                            "score": float(rng.random()),
                            "segmentations": compressed(jitter(rng, boxes, args.height, args.width),
                                                        args.height, args.width)})
    truth = {"videos": videos, "annotations": annotations,
             "categories": [{"id": c, "name": f"class{c}"} for c in range(1, NUM_CATEGORIES + 1)]}
    paths = os.path.join(directory, "gt.json"), os.path.join(directory, "results.json")
    for path, content in zip(paths, (truth, results)):
        with open(path, "w") as f:
            json.dump(content, f)
    return paths


def compressed(boxes, height, width):
    present = [t for t, b in enumerate(boxes) if b is not None]
    rles = mask_util.frPyObjects([rectangle_rle(*boxes[t], height, width) for t in present],
                                 height, width) if present else []
    segmentations = [None] * len(boxes)
    for t, rle in zip(present, rles):
        segmentations[t] = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
    return segmentations


# The smallest values make_files can draw from: the identity swap takes two tracks, and a track's
# box is 10 px to 4/5 of the frame.
MINIMUM_SIZES = {"videos": 1, "frames": 1, "tracks": 2, "height": 16, "width": 16}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=300)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--tracks", type=int, default=10)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name, minimum in MINIMUM_SIZES.items():
        if getattr(args, name) < minimum:
            raise InvalidInput(f"--{name} {getattr(args, name)}: must be at least {minimum}")
    return args


def time_evaluation(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="[%(asctime)s %(name)s]: %(message)s")
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        gt_path, results_path = make_files(directory, args, np.random.default_rng(args.seed))
        print(f"made {args.videos} videos x {args.frames} frames x {args.tracks} tracks "
              f"({args.height}x{args.width}) in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        metrics = evaluate_ytvis(gt_path, results_path)
        seconds = time.perf_counter() - start
    print(json.dumps(metrics))
    print(f"evaluation: {seconds:.1f} s")


def main(argv=None) -> int:
    """The command line; returns the exit status (2: a bad argument, reported in one line)."""
    return run_main("benchmark_eval.py", time_evaluation, argv)


if __name__ == "__main__":
    sys.exit(main())
