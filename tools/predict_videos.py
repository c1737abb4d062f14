#!/usr/bin/env python
"""Run SG-Net on every video of a folder or glob pattern, sharded over processes and resumable.

    python tools/predict_videos.py --config-file configs/toy/sgnet_R18_toy.yaml --input videos/ \
        --output predictions/ [--num-gpus 2] [--render] MODEL.WEIGHTS output/default/model_final.pth

``--input``: a folder, whose video files (``VIDEO_FILE_EXTENSIONS``) and sub-folders of frame
images are each one video (other files and hidden entries are ignored), or a glob pattern of such
files and folders (quoted). Each video is named after its file's stem or its folder's name; two
of one name are refused. Video ids are 1..N in the names' order.

Per video, ``OUT/<name>/``: ``results.json``, its tracks as YouTube-VIS result records, exactly
what ``demo/demo.py --save-results`` writes for it with ``--video-id`` its id; with ``--render``
also ``masks/`` (the demo's ``--save-masks``) and ``video.mp4`` (the drawn video), drawing the
instances scoring at least ``--confidence-threshold``. ``status.json``, written last, records
what was written and with which options: a video whose status says it is done with this
command's options (input, video id, config, rendering) is skipped, so a killed run continues
where it stopped; any other is (re)done, failed ones included. A video that cannot be read or
tracked is recorded as failed with its error and the others go on. When every process is done,
``OUT/index.json`` lists every video (name, input, video_id, frames, tracks, status, error,
outputs relative to OUT). Every file appears whole or not at all; OUT may hold other files, which
are left alone, but an earlier output that is no output of this tool is refused.

``--num-gpus N --num-machines M``: N * M processes (detectron2's ``launch``; without CUDA, CPU
processes with gloo), each taking the share of the videos detectron2's ``InferenceSampler``
gives it. Trailing ``KEY VALUE`` pairs override the config. Exit status: 0 when every video is
done, 3 when some failed (index.json says which and why), 2 on a mistake in the command line,
config or outputs (one line, nothing run), 130 when interrupted.
"""
import argparse
import glob
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import sgnet  # noqa: I001  (first: makes detectron2 importable here and registers SG-Net)

from detectron2.data.samplers import InferenceSampler
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from sgnet.compat import launch
from sgnet.config import load_config
from sgnet.config_checks import check_dataset_classes
from sgnet.data import VideoFrameReader, register_config_datasets
from sgnet.data.video import IMAGE_EXTENSIONS
from sgnet.errors import InvalidInput, MissingInput, UserError, check_readable_file, one_line, run_main
from sgnet.fileio import atomic_write, refuse_overwriting_inputs
from sgnet.predictor import VideoPredictor
from sgnet.predictor_outputs import VideoOutputs, mask_png_names

VIDEO_FILE_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
STATUS_FILE = "status.json"
INDEX_FILE = "index.json"
# The names of a video's outputs in OUT/<name>/, by kind (VideoOutputs' kinds).
OUTPUT_NAMES = {"results": "results.json", "masks": "masks", "video": "video.mp4"}
# What sgnet's writers name their unfinished outputs (fileio.StagedFile, FrameSink, MaskFolder).
STAGING_PREFIXES = (".partial-", ".previous-")
EXIT_SOME_FAILED = 3

logger = logging.getLogger("sgnet.predict_videos")


@dataclass(frozen=True)
class Video:
    name: str
    path: str  # absolute: a video file or a folder of frames
    video_id: int


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--input", required=True, metavar="DIR_OR_GLOB", help="a folder of videos (files or folders of frames) or a glob pattern of them")
    parser.add_argument("--output", required=True, metavar="OUT", help="folder of the outputs: OUT/<video>/ and OUT/index.json")
    parser.add_argument("--render", action="store_true", help="also write each video's mask PNGs (masks/) and drawn video (video.mp4)")
    parser.add_argument("--confidence-threshold", type=float, default=0.3, help="with --render: minimum score of drawn instances")
    parser.add_argument("--num-gpus", type=int, default=1, metavar="N", help="processes per machine (one per GPU; CPU processes without CUDA)")
    parser.add_argument("--num-machines", type=int, default=1, metavar="M")
    parser.add_argument("--machine-rank", type=int, default=0, help="this machine's rank, 0..M-1")
    parser.add_argument("--dist-url", default="auto", help="machine 0's tcp://HOST:PORT (auto: a free local port, one machine only)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides, e.g. MODEL.WEIGHTS model_final.pth")
    return parser


# -- inputs ------------------------------------------------------------------------------------
def input_candidates(source: str) -> List[str]:
    """The entries of folder ``source`` (hidden ones left out), or the matches of glob pattern
    ``source``, as absolute paths."""
    if os.path.isdir(source):
        return [os.path.abspath(os.path.join(source, name)) for name in sorted(os.listdir(source)) if not name.startswith(".")]
    if any(c in source for c in "*?["):
        return [os.path.abspath(os.path.normpath(path)) for path in sorted(glob.glob(source))]
    raise MissingInput(f"--input {source}: no such folder (give a folder of videos or a glob pattern)")


def is_video(path: str) -> bool:
    """A video file (by its extension) or a folder holding image files (a video's frames)."""
    if os.path.isfile(path):
        return os.path.splitext(path)[1].lower() in VIDEO_FILE_EXTENSIONS
    return os.path.isdir(path) and any(os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS for name in os.listdir(path))


def video_name(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0] if os.path.isfile(path) else os.path.basename(path)


def find_videos(source: str, output: str) -> List[Video]:
    """The videos of ``--input`` (``output`` left out, should it be among them: earlier outputs
    are no inputs), numbered 1..N in the order of their names."""
    output = os.path.realpath(output)
    paths = [path for path in input_candidates(source) if os.path.realpath(path) != output and is_video(path)]
    if not paths:
        raise MissingInput(
            f"--input {source}: no video files ({', '.join(VIDEO_FILE_EXTENSIONS)}) or folders of frames there"
        )
    by_name: Dict[str, str] = {}
    for path in paths:
        name = video_name(path)
        if name in by_name:
            raise InvalidInput(
                f"--input {source}: two videos are named {name}, {by_name[name]} and {path} "
                "(outputs go to OUT/<name>): rename one"
            )
        by_name[name] = path
    return [Video(name, by_name[name], index) for index, name in enumerate(sorted(by_name), start=1)]


# -- outputs -----------------------------------------------------------------------------------
def read_json(path: str) -> Optional[dict]:
    """A json file's object; None when it is missing or no json object."""
    try:
        with open(path) as f:
            value = json.load(f)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_json(path: str, value: dict) -> None:
    with atomic_write(path, "w") as f:
        json.dump(value, f, indent=1)


def check_output(output: str, videos: List[Video], other_inputs: List[str]) -> None:
    """Refuse an ``output`` that is a file or holds an input, and earlier outputs that this tool
    did not write (a video folder without its status file holding one of the outputs' names, an
    index.json of another program): they would be replaced. Other files are left alone."""
    if os.path.exists(output) and not os.path.isdir(output):
        raise InvalidInput(f"--output {output}: is a file, not a folder")
    refuse_overwriting_inputs(output, [video.path for video in videos] + other_inputs)
    index = os.path.join(output, INDEX_FILE)
    if os.path.exists(index) and not isinstance((read_json(index) or {}).get("videos"), list):
        raise InvalidInput(f"--output {output}: {index} is no index of an earlier run, which it would replace: move it or choose another --output")
    for video in videos:
        check_video_folder(os.path.join(output, video.name))


def check_video_folder(folder: str) -> None:
    if not os.path.exists(folder) or read_json(os.path.join(folder, STATUS_FILE)) is not None:
        return
    if not os.path.isdir(folder):
        raise InvalidInput(f"--output: {folder} is a file where a video's outputs go: move it or choose another --output")
    foreign = sorted(set(os.listdir(folder)) & {STATUS_FILE, *OUTPUT_NAMES.values()})
    if foreign:
        raise InvalidInput(
            f"--output: {os.path.join(folder, foreign[0])} is no output of an earlier run (no {STATUS_FILE} beside it), "
            "which it would replace: move it or choose another --output"
        )


def remove_leftovers(folder: str, previous: Optional[dict]) -> None:
    """Before a video is (re)done: remove what a killed run left of its outputs in ``folder``
    (staged files and folders) and the outputs its ``previous`` status records, which the new
    run may not write again (a run without --render after one with it)."""
    names = [name for name in os.listdir(folder) if name.startswith(STAGING_PREFIXES)]
    recorded = {os.path.basename(path) for path in (previous or {}).get("outputs", {}).values()}
    names += sorted(recorded & set(OUTPUT_NAMES.values()))
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


# -- one video ---------------------------------------------------------------------------------
def run_options(video: Video, args, config_digest: str) -> dict:
    """What a video's outputs depend on: recorded in its status, compared on a re-run."""
    return {
        "input": video.path,
        "video_id": video.video_id,
        "config": config_digest,
        "render": args.render,
        "confidence_threshold": args.confidence_threshold if args.render else None,
    }


def index_entry(video: Video, status: str, frames=None, tracks=None, outputs=None, error=None) -> dict:
    return {
        "name": video.name, "input": video.path, "video_id": video.video_id, "status": status,
        "frames": frames, "tracks": tracks, "outputs": outputs or {}, "error": error,
    }  # fmt: skip


def output_paths(video: Video, args) -> Dict[str, str]:
    """Where this command writes a video's outputs, by kind."""
    kinds = OUTPUT_NAMES if args.render else ["results"]
    return {kind: os.path.join(args.output, video.name, OUTPUT_NAMES[kind]) for kind in kinds}


def track_video(predictor: VideoPredictor, video: Video, paths: Dict[str, str], threshold: float) -> Tuple[int, int]:
    """Write one video's outputs at ``paths`` (by kind); returns (frames, tracks in results.json)."""
    reader = VideoFrameReader(video.path)
    outputs = VideoOutputs(
        predictor, (reader.height, reader.width), reader.fps, threshold=threshold,
        video=paths.get("video"), masks=paths.get("masks"), results=paths["results"], video_id=video.video_id,
        frame_names=mask_png_names(reader.input_paths) if os.path.isdir(video.path) else None,
    )  # fmt: skip
    try:
        for frame, instances in predictor.track(reader):
            outputs.add(instances, frame)
        outputs.commit(reader.source)
    except BaseException:
        outputs.discard()
        raise
    return outputs.frames, len(outputs.tracks.track_classes())


def predict_video(predictor: VideoPredictor, video: Video, args, options: dict) -> dict:
    """Track one video into OUT/<name>/ and record its status there; returns its index entry.
    A failure of this video (unreadable, undecodable, a write error, any exception but an
    interruption) is recorded as its status, not raised."""
    folder = os.path.join(args.output, video.name)
    status_path = os.path.join(folder, STATUS_FILE)
    paths = output_paths(video, args)
    relative = {kind: os.path.relpath(path, args.output) for kind, path in paths.items()}
    os.makedirs(folder, exist_ok=True)
    remove_leftovers(folder, read_json(status_path))
    # Written first, so that a killed run's outputs are known as this tool's on the next run.
    write_json(status_path, {**index_entry(video, "running", outputs=relative), "options": options})
    try:
        frames, tracks = track_video(predictor, video, paths, args.confidence_threshold)
        entry = index_entry(video, "done", frames, tracks, relative)
    except Exception as e:
        if not isinstance(e, UserError):
            logger.exception(f"{video.name}: failed")
        entry = index_entry(video, "failed", error=one_line(e if isinstance(e, UserError) else f"{type(e).__name__}: {e}"))
    write_json(status_path, {**entry, "options": options})
    return entry


def finished_entry(video: Video, args, options: dict) -> Optional[dict]:
    """The index entry of a video done before with these options (its outputs present), else None."""
    status = read_json(os.path.join(args.output, video.name, STATUS_FILE))
    if not status or status.get("status") != "done" or status.get("options") != options:
        return None
    if not all(os.path.exists(os.path.join(args.output, path)) for path in status["outputs"].values()):
        return None
    return {key: value for key, value in status.items() if key != "options"}


def progress_line(entry: dict, skipped: bool, seconds: float) -> str:
    if entry["status"] == "failed":
        return f"failed: {entry['error']}"
    counts = f"{entry['frames']} frames, {entry['tracks']} tracks"
    return f"done before ({counts}), skipped" if skipped else f"{counts}, {seconds:.1f} s"


# -- a process's share, the index --------------------------------------------------------------
def predict_share(args, videos: List[Video]) -> None:
    """One process of the run: its share of ``videos`` (``InferenceSampler``'s for its rank), then,
    on rank 0 once every rank is done, ``OUT/index.json`` and the summary line."""
    # As rank 0 (the default) every rank gets a console: each prints its videos' lines.
    setup_logger(name="sgnet")
    cfg = load_config(args.config_file, args.opts)
    register_config_datasets(cfg)
    config_digest = hashlib.sha256(cfg.dump().encode()).hexdigest()
    predictor = VideoPredictor(cfg)
    rank = f" (rank {comm.get_rank()})" if comm.get_world_size() > 1 else ""
    done = []  # (index entry, skipped)
    for index in InferenceSampler(len(videos)):
        video, start = videos[index], time.perf_counter()
        options = run_options(video, args, config_digest)
        entry = finished_entry(video, args, options)
        skipped = entry is not None
        entry = entry or predict_video(predictor, video, args, options)
        logger.info(f"video {index + 1}/{len(videos)} {video.name}{rank}: {progress_line(entry, skipped, time.perf_counter() - start)}")
        done.append((entry, skipped))
    shares = comm.gather(done, dst=0)
    if comm.is_main_process():
        write_index(args.output, [item for share in shares for item in share])


def write_index(output: str, done: List[Tuple[dict, bool]]) -> None:
    """``OUT/index.json`` (every video's entry, in video id order, and the counts) and the
    summary line."""
    entries = sorted((entry for entry, _ in done), key=lambda entry: entry["video_id"])
    failed = sum(entry["status"] == "failed" for entry in entries)
    index = {"videos": entries, "done": len(entries) - failed, "failed": failed}
    path = os.path.join(output, INDEX_FILE)
    write_json(path, index)
    skipped = sum(skipped for _, skipped in done)
    print(f"{len(entries)} videos: {index['done']} done ({skipped} of them before this run), {failed} failed; index: {path}", flush=True)


def exit_status(output: str) -> int:
    """0 when the index lists no failed video, else EXIT_SOME_FAILED (a machine other than the
    first, without the index on its disk: 0)."""
    index = read_json(os.path.join(output, INDEX_FILE)) or {}
    return EXIT_SOME_FAILED if index.get("failed") else 0


def checked_run(args) -> List[Video]:
    """What can be checked before processes start, as one-line errors: the config, its classes,
    the weights, the inputs and the outputs. Returns the videos."""
    if args.num_gpus < 1 or args.num_machines < 1 or not 0 <= args.machine_rank < args.num_machines:
        raise InvalidInput("--num-gpus and --num-machines must be at least 1, --machine-rank in 0..M-1")
    if args.num_machines > 1 and args.dist_url == "auto":
        raise InvalidInput("--num-machines > 1 needs --dist-url tcp://HOST:PORT of machine 0")
    cfg = load_config(args.config_file, args.opts)
    register_config_datasets(cfg)
    check_dataset_classes(cfg, required=("TEST",))
    weights = [cfg.MODEL.WEIGHTS] if cfg.MODEL.WEIGHTS and "://" not in cfg.MODEL.WEIGHTS else []
    for path in weights:
        check_readable_file(path, "MODEL.WEIGHTS")
    videos = find_videos(args.input, args.output)
    check_output(args.output, videos, [args.config_file, *weights])
    return videos


def cli(argv=None) -> int:
    args = get_parser().parse_args(argv)
    args.output = os.path.abspath(args.output)
    setup_logger(name="sgnet")
    setup_logger(name="fvcore")
    videos = checked_run(args)
    os.makedirs(args.output, exist_ok=True)
    # An earlier run's index would outlive this run if it were stopped, listing outputs it replaces.
    index = os.path.join(args.output, INDEX_FILE)
    if os.path.exists(index):
        os.remove(index)
    launch(
        predict_share, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
        dist_url=args.dist_url, args=(args, videos),
    )  # fmt: skip
    return exit_status(args.output)


def main(argv=None) -> int:
    """The command line; returns the exit status (see the module docstring)."""
    return run_main("predict_videos.py", cli, argv)


if __name__ == "__main__":
    sys.exit(main())
