"""``split``: a YouTube-VIS json split by video into a training and a held-out part.

    python -m sgnet.data.convert split IN.json --val-fraction 0.1 --seed 0 --output DIR

writes ``DIR/train.json`` and ``DIR/valid.json``: both annotated, with IN.json's categories,
info and other top-level fields, every video in exactly one of them with all its annotations, the
video and annotation records as they are in IN.json.

Videos are split by :mod:`sgnet.formats.video_split`'s rule (a seeded sha256 of each video's
folder name: the same on every machine and process, whatever the file's order); the builtin
``*_sub`` datasets use the same rule.
"""
import contextlib
import json
import math
import os
import shutil
from typing import Dict, List, Tuple

from ...errors import InvalidInput
from ...fileio import CreatedFolders, StagedFile, refuse_overwriting_inputs
from ...formats.records import read_json
from ...formats.video_split import hash_fraction, held_out, video_folder
from ...formats.ytvis import parse_ytvis_annotations

__all__ = ["HELP", "add_arguments", "run", "split_videos", "write_split"]

HELP = "Split a YouTube-VIS json by video into DIR/train.json and DIR/valid.json (a fixed hash of each video's folder name)."

TRAIN_NAME, VAL_NAME = "train.json", "valid.json"


def add_arguments(parser) -> None:
    parser.add_argument("src", metavar="IN.json", help="the YouTube-VIS annotation json to split")
    parser.add_argument("--val-fraction", type=float, default=0.1, metavar="FRACTION", help="the expected fraction of videos held out, in (0, 1) (default: 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="another seed holds out other videos (default: 0)")
    parser.add_argument("--output", required=True, metavar="DIR", help=f"the folder to write {TRAIN_NAME} and {VAL_NAME} in")


def run(args) -> dict:
    return write_split(args.src, args.output, args.val_fraction, args.seed)


def split_videos(content: dict, fraction: float, seed: int, src: str) -> Tuple[dict, dict]:
    """
    Split parsed YouTube-VIS content (checked; read from ``src``) by video.

    Returns:
        (training content, held-out content): each the top-level fields of ``content`` with its
        part of ``videos`` and their ``annotations`` (the same record objects, in file order).
    """
    held = [held_out(video_folder(video["file_names"], src), fraction, seed) for video in content["videos"]]
    parts = []
    for side in (False, True):
        videos = [video for video, is_held in zip(content["videos"], held) if is_held == side]
        ids = {video["id"] for video in videos}
        annotations = [a for a in content.get("annotations") or [] if a["video_id"] in ids]
        parts.append({**content, "videos": videos, "annotations": annotations})
    return parts[0], parts[1]


def write_split(src: str, output_dir: str, fraction: float, seed: int) -> dict:
    """Split the YouTube-VIS json ``src`` into ``output_dir``'s train.json and valid.json.

    Returns:
        ``{"train_json", "val_json", "train_videos", "val_videos"}``: the absolute paths written
        and the number of videos in each.

    Raises:
        InvalidInput: ``fraction`` not in (0, 1), a part would be empty, ``output_dir`` is a file
            or the outputs would overwrite ``src``; ``src`` itself is invalid.
    """
    if not 0 < fraction < 1:
        raise InvalidInput(f"--val-fraction {fraction}: must be between 0 and 1 (both excluded), e.g. 0.1")
    content = read_json(src)
    parse_ytvis_annotations(content, src)
    output_dir = os.path.abspath(output_dir)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise InvalidInput(f"--output {output_dir}: is a file; name the folder to write {TRAIN_NAME} and {VAL_NAME} in")
    train_json, val_json = (os.path.join(output_dir, name) for name in (TRAIN_NAME, VAL_NAME))
    for path in (train_json, val_json):
        refuse_overwriting_inputs(path, [src])
    _check_both_parts(content["videos"], fraction, seed, src)
    train, val = split_videos(content, fraction, seed, src)
    _write_together({train_json: train, val_json: val}, output_dir)
    return {"train_json": train_json, "val_json": val_json, "train_videos": len(train["videos"]), "val_videos": len(val["videos"])}


def _check_both_parts(videos: List[dict], fraction: float, seed: int, src: str) -> None:
    """Raise :class:`InvalidInput` when a video's first file has no folder, or a part would have
    no video (suggesting a fraction that gives the empty part one)."""
    if len(videos) < 2:
        raise InvalidInput(f"{src}: has {len(videos)} video(s); a split into two parts needs at least 2")
    folders = [video_folder(video["file_names"], f"{src}: video {video['id']}") for video in videos]
    numbers = [hash_fraction(folder, seed) for folder in folders]
    held = sum(number < fraction for number in numbers)
    # Rounded away from the boundary so that the suggested fraction does what it says.
    if held == 0:
        smallest = math.ceil(min(numbers) * 1e4) / 1e4
        raise InvalidInput(
            f"{src}: --val-fraction {fraction} with --seed {seed} holds out none of its {len(videos)} videos; "
            f"a fraction of {smallest} or more holds out at least one (or try another --seed)"
        )
    if held == len(videos):
        largest = math.floor(max(numbers) * 1e4) / 1e4
        raise InvalidInput(
            f"{src}: --val-fraction {fraction} with --seed {seed} holds out all its {len(videos)} videos; "
            f"a fraction of at most {largest} keeps at least one for training (or try another --seed)"
        )


def _write_together(contents: Dict[str, dict], folder: str) -> None:
    """Write each json file of ``contents`` (path -> content) in ``folder``: all are written
    under temporary names first and then moved into place. A failure leaves the files as they
    were before (a file already replaced gets its previous version back, a new one is removed)
    and no folder made for them; a target that is a folder is refused before anything is
    written, and a failure of the disk is one line."""
    for path in contents:
        if os.path.isdir(path):
            raise InvalidInput(f"--output {folder}: {path} is a folder; remove it or choose another output folder")
    folders = CreatedFolders()
    staged: List[StagedFile] = []
    previous: Dict[str, str] = {}  # target -> its previous version, kept aside until all are in place
    committed: List[str] = []
    try:
        folders.make(folder)
        for path, content in contents.items():
            staged.append(StagedFile(path))
            with open(staged[-1].staging, "w") as f:
                json.dump(content, f, separators=(",", ":"))
        for file in staged:
            if os.path.exists(file.path):
                previous[file.path] = f"{file.staging}.previous"
                _keep_aside(file.path, previous[file.path])
            committed.append(file.commit())
    except BaseException as e:
        for file in staged:
            file.discard()
        for path in committed:
            if path in previous:
                os.replace(previous.pop(path), path)
            else:
                os.remove(path)
        folders.remove_empty()
        if isinstance(e, OSError):
            raise InvalidInput(f"--output {folder}: cannot write {TRAIN_NAME} and {VAL_NAME} there ({e})") from e
        raise
    finally:
        for kept in previous.values():
            with contextlib.suppress(FileNotFoundError):
                os.remove(kept)


def _keep_aside(path: str, aside: str) -> None:
    """A second name (a hard link; a copy where the file system has none) for ``path``'s
    current content, which replacing ``path`` leaves intact."""
    try:
        os.link(path, aside)
    except OSError:
        shutil.copy2(path, aside)
