#!/usr/bin/env python
"""Run SG-Net on your own video and write it back with masks, classes, scores and track ids.

    python demo/demo.py --config-file configs/toy/sgnet_R18_toy.yaml --video-input in.mp4 \
        --output out.mp4 --opts MODEL.WEIGHTS output/toy/sgnet_R18_toy/model_final.pth

``--onnx OUTPUT/model.onnx`` runs the frame step in ONNX Runtime instead of PyTorch (a file from
``tools/export_model.py`` with the same config, which still sets classes and test sizes).

Frames are read, tracked, drawn and written one at a time (memory stays flat in the video's
length). The output is an H.264 video (``.mp4``, ``.mkv``, ``.mov`` or ``.avi``; plays in browsers
and common players) or, when ``--output`` is a folder (a path without one of those extensions),
one PNG per frame. Nothing of the user's is lost: an output that is, or holds, an input is
refused; outputs appear whole or not at all (written under temporary names, renamed when
complete; an error, Ctrl-C or SIGTERM removes them and the folders the run created).
Exit status: 0 on success, 2 on bad input or output (one line), 130 when interrupted.
"""
import argparse
import os
import sys
import time

import sgnet  # noqa: I001  (first: makes detectron2 importable here and registers SG-Net)

import numpy as np
import tqdm
from detectron2.utils.logger import setup_logger

from sgnet.config import load_config
from sgnet.config_checks import check_dataset_classes
from sgnet.data import (
    STRIP_SUFFIXES,
    FrameSink,
    VideoFrameReader,
    draw_tracks,
    output_kind,
    register_config_datasets,
    strip_frame_indices,
    write_strip,
)
from sgnet.errors import InvalidInput, run_main
from sgnet.fileio import refuse_overwriting_inputs
from sgnet.predictor import VideoPredictor


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True, metavar="FILE")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video-input", help="a video file")
    source.add_argument("--input", help="a folder of frames, or a glob pattern of frame files")
    parser.add_argument("--output", required=True, help="output video file (.mp4) or folder for PNG frames")
    parser.add_argument("--onnx", metavar="FILE", help="run the frame step in ONNX Runtime from this exported model")
    parser.add_argument("--confidence-threshold", type=float, default=0.3, help="minimum score of drawn instances")
    parser.add_argument("--strip", help="also save a PNG strip of --strip-frames evenly spaced output frames here")
    parser.add_argument("--strip-frames", type=int, default=4)
    parser.add_argument("--opts", default=[], nargs=argparse.REMAINDER, help="config overrides: KEY VALUE pairs")
    return parser


def draw(frame_bgr: np.ndarray, instances, class_names, threshold: float) -> np.ndarray:
    """Masks, "#id class score" labels (the class by name when ``class_names`` is known, else its
    index) and boxes, coloured by track id. Returns BGR."""
    instances = instances[instances.scores >= threshold]
    labels = [
        f"#{track_id} {class_names[c] if class_names else c} {score:.0%}"
        for track_id, c, score in zip(instances.track_ids.tolist(), instances.pred_classes.tolist(), instances.scores.tolist())
    ]
    masks, boxes = instances.pred_masks.numpy(), instances.pred_boxes.tensor.numpy()
    return draw_tracks(frame_bgr, masks, boxes, labels, instances.track_ids.tolist())


def check_outputs(args, inputs: list) -> None:
    """Refuse outputs that would replace an input (the video or frames, config, weights, ONNX
    file) or each other, and a strip format OpenCV does not write."""
    refuse_overwriting_inputs(args.output, inputs)
    if args.strip:
        if os.path.splitext(args.strip)[1].lower() not in STRIP_SUFFIXES:
            raise InvalidInput(f"--strip {args.strip}: must end in one of {', '.join(STRIP_SUFFIXES)}")
        refuse_overwriting_inputs(args.strip, inputs + [args.output], what="--strip")


def onnx_model(path: str, cfg):
    """The exported frame step in ONNX Runtime (it says so if the deploy extra is missing)."""
    from sgnet.deploy import ONNXRuntimeSGNet

    return ONNXRuntimeSGNet(path, cfg)  # a bad file: DeployError, a UserError


def run(args) -> dict:
    cfg = load_config(args.config_file, args.opts)
    register_config_datasets(cfg)
    check_dataset_classes(cfg, required=("TEST",))
    output_kind(args.output)  # before any work
    source = args.video_input or args.input
    reader = VideoFrameReader(source)
    inputs = reader.input_paths + [args.config_file] + [p for p in (cfg.MODEL.WEIGHTS, args.onnx) if p and "://" not in p]
    check_outputs(args, inputs)
    predictor = VideoPredictor(cfg, model=onnx_model(args.onnx, cfg) if args.onnx else None)
    sink = FrameSink(args.output, reader.fps, reader.height, reader.width)
    strip_indices = strip_frame_indices(reader.num_frames, args.strip_frames) if args.strip else set()
    strip, track_ids = [], set()
    start = time.perf_counter()
    try:
        progress = tqdm.tqdm(predictor.track(reader), total=reader.num_frames, unit="frame", desc="SG-Net demo")
        for index, (frame, instances) in enumerate(progress):
            drawn = draw(frame, instances, predictor.class_names, args.confidence_threshold)
            track_ids.update(instances.track_ids[instances.scores >= args.confidence_threshold].tolist())
            sink.write(drawn)
            if index in strip_indices:
                strip.append(drawn)
        if sink.count == 0:
            raise InvalidInput(f"{source} has no frames")
        summary = {"output": sink.commit()}
    except OSError as e:  # the disk, not the program: full, read-only, removed meanwhile
        sink.discard()
        raise InvalidInput(f"{e} (the partial output was removed; nothing was written to {sink.output})") from e
    except BaseException:  # a bad frame, Ctrl-C, SIGTERM, a bug: no partial output either
        sink.discard()
        raise
    elapsed = time.perf_counter() - start
    summary.update(frames=sink.count, tracks=len(track_ids), mean_fps=round(sink.count / elapsed, 2))
    if args.strip and strip:
        summary["strip"] = write_strip(args.strip, strip)
    return summary


def cli(argv=None) -> int:
    args = get_parser().parse_args(argv)
    setup_logger(name="sgnet")
    setup_logger(name="fvcore")
    summary = run(args)
    print(
        f"Wrote {summary['frames']} frames with {summary['tracks']} tracks to {summary['output']} "
        f"({summary['mean_fps']} frames/s)" + (f"; strip: {summary['strip']}" if "strip" in summary else "")
    )
    return 0


def main(argv=None) -> int:
    """The command line; returns the exit status (2: a user's mistake, reported in one line)."""
    return run_main("demo.py", cli, argv)


if __name__ == "__main__":
    sys.exit(main())
