#!/usr/bin/env python
"""Run SG-Net on your own video and write it back with masks, classes, scores and track ids.

    python demo/demo.py --config-file configs/toy/sgnet_R18_toy.yaml --video-input in.mp4 \
        --output out.mp4 --opts MODEL.WEIGHTS output/toy/sgnet_R18_toy/model_final.pth

``--onnx OUTPUT/model.onnx`` runs the frame step in ONNX Runtime (or OpenVINO: ``--runtime
openvino``) instead of PyTorch: a file from ``tools/export_model.py`` with the same config, which
still sets classes and test sizes.

Live sources (:mod:`sgnet.data.live`): ``--webcam [INDEX]`` (OpenCV), or a ``--video-input`` URL
FFmpeg opens (``rtsp://``, ``http(s)://``, ``udp://``; with ``--input-format FMT`` anything
FFmpeg's ``-f FMT -i`` takes: ``lavfi``, ``v4l2``, ...), decoded by PyAV. They run until they end
or Ctrl-C / SIGTERM, which ends the run as the source's end does: the outputs hold the frames
seen. A source that delivers nothing for ``--timeout`` seconds ends the run the same way, then
is reported (exit status 2). ``--realtime``: when inference is slower than the source, the
frames it cannot keep up with are dropped (the newest one is always processed; the tracker is
told the gaps) instead of queueing; a file is then played at its frame rate, as a camera would
deliver it. The console shows the input and processed frame rates and the frames dropped.

Frames are read, tracked, drawn and written one at a time (memory stays flat in the video's
length). The output is an H.264 video (``.mp4``, ``.mkv``, ``.mov`` or ``.avi``; plays in browsers
and common players) or, when ``--output`` is a folder (a path without one of those extensions),
one PNG per frame. Machine-readable outputs (:mod:`sgnet.predictor_outputs`): ``--save-masks DIR``,
one indexed PNG per frame (pixel = track id, 0 = background; the drawn instances) and
``DIR/tracks.json``; ``--save-results FILE.json``, the video's tracks as YouTube-VIS result
records, as train_net's evaluation writes them (``python -m sgnet.evaluation.ytvis_eval`` scores
them). Nothing of the user's is lost: an output that is, or holds, an input or another output is
refused, and so is a ``--save-masks`` folder holding anything but an earlier mask output (which
is replaced whole); outputs appear whole or not at all (written under temporary names, renamed
when complete; an error, Ctrl-C or SIGTERM removes them and the folders the run created).
Exit status: 0 on success (a live source stopped by Ctrl-C too), 2 on bad input or output (one
line), 130 when interrupted (a file or folder source: nothing is written).
"""
import argparse
import itertools
import contextlib
import os
import signal
import sys
import time
from typing import Optional

import sgnet  # noqa: I001  (first: makes detectron2 importable here and registers SG-Net)

import tqdm
from detectron2.utils.logger import setup_logger

from sgnet.config import load_config
from sgnet.config_checks import check_dataset_classes
from sgnet.data import (
    STRIP_SUFFIXES,
    CameraReader,
    FrameFeed,
    StreamReader,
    VideoFrameReader,
    VideoReadError,
    is_stream,
    output_kind,
    register_config_datasets,
)
# The deploy package imports its extra's packages (onnxruntime, openvino) only when a model loads.
from sgnet.deploy import RUNTIMES, load_exported
from sgnet.errors import InvalidInput, run_main
from sgnet.fileio import refuse_overwriting_inputs, same_or_inside
from sgnet.predictor import VideoPredictor
from sgnet.predictor_outputs import VideoOutputs, check_mask_folder, mask_png_names


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True, metavar="FILE")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video-input", help="a video file, or a stream's URL (rtsp://, http(s)://, ...: see --input-format)")
    source.add_argument("--input", help="a folder of frames, or a glob pattern of frame files")
    source.add_argument("--webcam", type=int, nargs="?", const=0, metavar="INDEX", help="camera INDEX (default 0), with OpenCV")
    parser.add_argument(
        "--input-format",
        metavar="FMT",
        help="read --video-input with FFmpeg's input format FMT, as ffmpeg -f FMT -i (e.g. v4l2 /dev/video0, "
        "lavfi testsrc2=rate=30,realtime), as a live source",
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="drop the frames inference cannot keep up with (counted and reported) instead of queueing them; "
        "a video file is played at its frame rate",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="SECONDS", help="a live source delivering no frame for this long ends the run"
    )
    parser.add_argument("--output", required=True, help="output video file (.mp4) or folder for PNG frames")
    parser.add_argument("--onnx", metavar="FILE", help="run the frame step from this exported model (tools/export_model.py)")
    parser.add_argument(
        "--runtime", choices=list(RUNTIMES), help="the runtime that runs --onnx (default: onnxruntime)"
    )
    parser.add_argument("--confidence-threshold", type=float, default=0.3, help="minimum score of drawn instances")
    parser.add_argument("--strip", help="also save a PNG strip of --strip-frames evenly spaced output frames here")
    parser.add_argument("--strip-frames", type=int, default=4)
    parser.add_argument(
        "--save-masks",
        metavar="DIR",
        help="also write one indexed PNG per frame here (pixel = track id, 0 = background; the instances drawn, "
        "those scoring at least --confidence-threshold, the higher-scoring where they overlap; named after the "
        "frame files with --input) and tracks.json (per track id: class name, category id, score, first and last "
        "frame). An earlier --save-masks output there is replaced; a folder holding other files is refused",
    )
    parser.add_argument(
        "--save-results",
        metavar="FILE.json",
        help="also write the video's tracks as YouTube-VIS result records (every track, scored and labelled as "
        "train_net's evaluation does: --confidence-threshold does not apply), for python -m sgnet.evaluation.ytvis_eval",
    )
    parser.add_argument("--video-id", type=int, default=1, help="the video's id in --save-results (its id in your ground truth)")
    parser.add_argument("--opts", default=[], nargs=argparse.REMAINDER, help="config overrides: KEY VALUE pairs")
    return parser


def check_outputs(args, inputs: list) -> None:
    """Refuse outputs that would replace an input (the video or frames, config, weights, ONNX
    file) or each other, a strip format OpenCV does not write, results not in a .json file, and a
    --save-masks folder holding other files (:func:`check_mask_folder`)."""
    given = {"--output": args.output, "--strip": args.strip, "--save-masks": args.save_masks, "--save-results": args.save_results}
    outputs = [(option, path) for option, path in given.items() if path]
    for option, path in outputs:
        refuse_overwriting_inputs(path, inputs, what=option)
    # Later options first: of two equal paths, the later one is refused.
    for (option, path), (other, other_path) in itertools.permutations(reversed(outputs), 2):
        if same_or_inside(other_path, path):
            raise InvalidInput(f"{option} {path} would overwrite {other} {other_path}: choose another path")
    if args.strip and os.path.splitext(args.strip)[1].lower() not in STRIP_SUFFIXES:
        raise InvalidInput(f"--strip {args.strip}: must end in one of {', '.join(STRIP_SUFFIXES)}")
    if args.save_results and (not args.save_results.lower().endswith(".json") or os.path.isdir(args.save_results)):
        raise InvalidInput(f"--save-results {args.save_results}: must be a .json file")
    if args.save_masks:
        check_mask_folder(args.save_masks)


def open_source(args):
    """The reader of the source the options name: a camera, a stream, or a file or frames."""
    if args.timeout <= 0:
        raise InvalidInput(f"--timeout {args.timeout:g}: must be more than 0 seconds")
    if args.input_format and not args.video_input:
        raise InvalidInput("--input-format reads --video-input: give the stream, device or filter there")
    if args.webcam is not None:
        return CameraReader(args.webcam)
    if args.input_format or (args.video_input and is_stream(args.video_input)):
        return StreamReader(args.video_input, input_format=args.input_format, timeout=args.timeout)
    return VideoFrameReader(args.video_input or args.input)


def frame_feed(args, reader) -> Optional[FrameFeed]:
    """A live source, or any source with --realtime, read in a thread of its own (see the module
    docstring); None: the frames are read as they are processed."""
    if not (reader.live or args.realtime):
        return None
    timeout = args.timeout if reader.live else None
    return FrameFeed(reader, reader.source, drop_late=args.realtime, timeout=timeout, pace_fps=None if reader.live else reader.fps)


class Rates:
    """The console's frame rates of a :class:`FrameFeed` run: input, processed, dropped."""

    def __init__(self, feed: FrameFeed):
        self.feed, self.start = feed, time.perf_counter()

    def postfix(self, processed: int) -> str:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        return f"input {self.feed.received / elapsed:.1f}/s, processed {processed / elapsed:.1f}/s, dropped {self.feed.dropped}"


class StopSignals:
    """Within the block, Ctrl-C and SIGTERM stop a live source's ``feed`` between two frames (the
    frame in the model is finished and written, so that every output holds the same frames);
    :attr:`signal_name` says which came ("Ctrl-C", "signal 15"), None if none."""

    def __init__(self, feed: FrameFeed):
        self.feed, self.signal_name, self.previous = feed, None, {}

    def _stop(self, signum, _frame) -> None:
        self.signal_name = self.signal_name or ("Ctrl-C" if signum == signal.SIGINT else f"signal {signum}")
        self.feed.close()

    def __enter__(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.previous[signum] = signal.signal(signum, self._stop)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def run(args) -> dict:
    if args.runtime and not args.onnx:
        raise InvalidInput(f"--runtime {args.runtime} runs an exported model: give it with --onnx FILE")
    cfg = load_config(args.config_file, args.opts)
    register_config_datasets(cfg)
    check_dataset_classes(cfg, required=("TEST",))
    output_kind(args.output)  # before any work
    reader = open_source(args)
    inputs = reader.input_paths + [args.config_file] + [p for p in (cfg.MODEL.WEIGHTS, args.onnx) if p and "://" not in p]
    check_outputs(args, inputs)
    if args.realtime and not reader.live and (args.save_masks or args.save_results):
        raise InvalidInput(
            f"--realtime drops frames of {reader.source}: --save-masks and --save-results of a file need every frame (leave out --realtime)"
        )
    # A bad exported file, or the deploy extra missing: DeployError, a UserError.
    predictor = VideoPredictor(cfg, model=load_exported(args.onnx, cfg, args.runtime) if args.onnx else None)
    outputs = VideoOutputs(
        predictor, (reader.height, reader.width), reader.fps, threshold=args.confidence_threshold,
        video=args.output, strip=args.strip, strip_frames=args.strip_frames, num_frames=reader.num_frames,
        masks=args.save_masks, frame_names=mask_png_names(reader.input_paths) if args.input else None, results=args.save_results, video_id=args.video_id,
    )  # fmt: skip
    feed = frame_feed(args, reader)
    if reader.live:
        print(f"Reading {reader.source} ({reader.width}x{reader.height}, {reader.fps:g} frames/s); Ctrl-C ends it", flush=True)
    start = time.perf_counter()
    ended = None  # a live source's error after some frames
    stop = StopSignals(feed) if reader.live else None
    try:
        tracked = predictor.track_indexed(feed if feed else enumerate(reader))
        total = None if args.realtime else reader.num_frames
        progress = tqdm.tqdm(tracked, total=total, unit="frame", desc="SG-Net demo")
        rates = Rates(feed) if feed else None
        try:
            with stop or contextlib.nullcontext():
                for _, frame, instances in progress:
                    outputs.add(instances, frame)
                    if rates:
                        progress.set_postfix_str(rates.postfix(outputs.frames), refresh=False)
        except VideoReadError as e:
            if not reader.live or outputs.frames == 0:
                raise
            ended = e  # a live source's outputs keep the frames seen
        finally:
            progress.close()
        if stop and stop.signal_name and outputs.frames == 0:
            raise KeyboardInterrupt(stop.signal_name)
        summary = outputs.commit(reader.source)
    except OSError as e:  # the disk, not the program: full, read-only, removed meanwhile
        outputs.discard()
        raise InvalidInput(f"{e} (the partial output was removed; nothing was written to {args.output})") from e
    except BaseException:  # a bad frame, Ctrl-C, SIGTERM, a bug: no partial output either
        outputs.discard()
        raise
    elapsed = time.perf_counter() - start
    frames = outputs.frames
    summary.update(frames=frames, tracks=len(outputs.shown_track_ids), mean_fps=round(frames / elapsed, 2))
    if feed:
        summary.update(received=feed.received, dropped=feed.dropped)
    if isinstance(ended, VideoReadError):
        raise VideoReadError(f"{ended} (the {frames} frames before it were written to {summary['video']})")
    if stop and stop.signal_name:
        summary["stopped"] = stop.signal_name
    return summary


def cli(argv=None) -> int:
    args = get_parser().parse_args(argv)
    setup_logger(name="sgnet")
    setup_logger(name="fvcore")
    summary = run(args)
    extras = "".join(f"; {kind}: {summary[kind]}" for kind in ("strip", "masks", "results") if kind in summary)
    stopped = f"Stopped by {summary['stopped']}. " if "stopped" in summary else ""
    dropped = f" ({summary['dropped']} of {summary['received']} received dropped)" if "dropped" in summary else ""
    print(
        f"{stopped}Wrote {summary['frames']} frames{dropped} with {summary['tracks']} tracks to {summary['video']} "
        f"({summary['mean_fps']} frames/s){extras}"
    )
    return 0


def main(argv=None) -> int:
    """The command line; returns the exit status (2: a user's mistake, reported in one line)."""
    return run_main("demo.py", cli, argv)


if __name__ == "__main__":
    sys.exit(main())
