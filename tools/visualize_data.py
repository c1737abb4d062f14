#!/usr/bin/env python
"""Browse the training data: the ground truth as annotated, or the clip pairs the training loader makes.

    python tools/visualize_data.py --config-file configs/toy/sgnet_R18_toy.yaml --source annotation \
        --output output/visualize [--num-videos N] [KEY VALUE ...]
    python tools/visualize_data.py --config-file configs/toy/sgnet_R18_toy.yaml --source dataloader \
        --output output/visualize [--num-pairs N] [KEY VALUE ...]

The video counterpart of detectron2's ``tools/visualize_data.py``, over ``DATASETS.TRAIN``
(datasets of ``DATASETS.REGISTER`` included). Objects are drawn with their mask, box and a
"#track_id class" label, in one colour per track id: the same in every frame of a video and in
both frames of a pair. Crowd regions, which training ignores, are greyed and hatched, without a
label.

``--source annotation``: the first ``--num-videos`` videos (default: all), in the config's dataset
order, every frame with its annotations as the json file gives them. Writes
``OUTPUT/<dataset>/<video_id>.mp4`` (H.264, every frame, at the video's size, an odd height or
width padded by a pixel as H.264 needs, 6 frames/s) and
``OUTPUT/<dataset>/<video_id>_strip.png`` (4 evenly spaced frames side by side). Image datasets
(COCO mapped onto video classes) are skipped with a logged note: they have no videos to play, and
what training makes of their images is what ``--source dataloader`` shows.

``--source dataloader``: ``--num-pairs`` samples (spelled ``--num-videos`` too; default: one batch,
``SOLVER.IMS_PER_BATCH``) exactly as ``sgnet.data.build_sgnet_train_loader`` makes them, after
resizing, flips and, for image datasets, the pseudo pairs' crops. Writes
``OUTPUT/dataloader/<index>.png`` (index from 0): the key frame, and the reference frame on its
right. Loading runs in this process (``DATALOADER.NUM_WORKERS 0``, as in detectron2's tool) and
the random generators are seeded with ``SEED`` (when >= 0), so a rerun shows the same pairs.

Files of a previous run at the same paths are replaced. Nothing of the user's is lost: an
``--output`` that is, or holds, the config file or a dataset's json file or image folder is
refused; every file appears whole or not at all, and a failed or interrupted run removes the files
it wrote (those that had replaced a previous run's too) and the folders it made. Prints a line
saying what was written where, and as the last line a JSON object: ``{"output": OUTPUT,
"videos": n, "files": n}`` (annotation) or ``{"output": OUTPUT, "pairs": n, "files": n}``
(dataloader).
Exit status: 0 on success, 2 on bad input or output (one line), 130 when interrupted.
"""
import argparse
import itertools
import json
import logging
import os
import sys

import sgnet  # noqa: F401, I001  (first: makes detectron2 importable here and registers SG-Net)

import numpy as np
import torch
import tqdm
from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T
from detectron2.data.detection_utils import convert_image_to_rgb
from detectron2.structures import Instances
from detectron2.utils.env import seed_all_rng
from detectron2.utils.logger import setup_logger

from sgnet.config import load_config
from sgnet.config_checks import check_dataset_classes
from sgnet.data import (
    build_sgnet_train_loader,
    dataset_class_names,
    draw_tracks_and_crowds,
    get_ytvis_dataset_dicts,
    is_image_dataset,
    register_config_datasets,
    write_strip,
    write_video_and_strip,
)
from sgnet.data.dataset_mapper import frame_objects_to_instances, read_video_frame
from sgnet.data.video import DEFAULT_FPS
from sgnet.errors import InvalidInput, run_main
from sgnet.fileio import WrittenFiles, refuse_overwriting_inputs

logger = logging.getLogger("sgnet.visualize_data")

STRIP_FRAMES = 4
# Annotations as the file gives them: frames drawn at their own size.
NO_TRANSFORM = T.TransformList([])


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument(
        "--source", required=True, choices=["annotation", "dataloader"],
        help="the annotations of the training videos, or the pairs the training loader makes of them",
    )  # fmt: skip
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for the drawn videos or pairs")
    parser.add_argument(
        "--num-videos", "--num-pairs", dest="count", type=int, metavar="N",
        help="with --source annotation: how many videos (default: all); with --source dataloader: how many "
        "pairs (default: one batch, SOLVER.IMS_PER_BATCH)",
    )  # fmt: skip
    parser.add_argument("opts", default=[], nargs=argparse.REMAINDER, help="config overrides: KEY VALUE pairs")
    return parser


def draw_ground_truth(frame_bgr: np.ndarray, instances: Instances, class_names: list) -> np.ndarray:
    """An (H, W, 3) BGR frame with its ground truth (Instances of the frame's size with
    ``gt_masks``, ``gt_boxes``, ``gt_classes``, ``gt_ids``, ``gt_crowd``): crowd regions hatched,
    the other objects labelled "#track_id class" in their track's colour. Returns (H, W, 3) BGR."""
    track_ids = instances.gt_ids.tolist()
    labels = [f"#{track_id} {class_names[c]}" for track_id, c in zip(track_ids, instances.gt_classes.tolist())]
    masks, boxes = instances.gt_masks.tensor.numpy(), instances.gt_boxes.tensor.numpy()
    return draw_tracks_and_crowds(frame_bgr, masks, boxes, labels, track_ids, instances.gt_crowd.numpy())


def loader_image_to_bgr(image: torch.Tensor, image_format: str) -> np.ndarray:
    """A loader sample's (C, H, W) uint8 tensor in ``image_format`` as an (H, W, 3) BGR uint8 array."""
    rgb = convert_image_to_rgb(image.permute(1, 2, 0), image_format)  # float for YUV-BT.601
    return np.ascontiguousarray(np.clip(rgb, 0, 255).astype(np.uint8)[:, :, ::-1])


def dataset_inputs(names) -> list:
    """The files and folders the datasets ``names`` are read from (annotation file, image root)."""
    metadata = [MetadataCatalog.get(name) for name in names]
    return [path for m in metadata for path in (m.get("json_file", None), m.get("image_root", None)) if path]


def videos_to_draw(names, count) -> list:
    """(dataset, video dict) for the first ``count`` videos (None: all) of the video datasets
    among ``names``, in their order; image datasets are skipped with a note."""
    videos = []
    for name in names:
        if count is not None and len(videos) >= count:
            break
        if is_image_dataset(name):
            logger.info(f"Skipping {name}: an image dataset (its pseudo pairs are what --source dataloader shows)")
            continue
        records = get_ytvis_dataset_dicts([name], filter_empty=False)
        videos.extend((name, record) for record in records)
    if not videos:
        raise InvalidInput(
            f"DATASETS.TRAIN {tuple(names)} holds only image datasets: --source annotation draws videos; "
            "use --source dataloader to see the pseudo pairs training makes of the images"
        )
    return videos[:count]


def write_annotated_video(record: dict, class_names: list, folder: str, written: WrittenFiles) -> None:
    """``folder/<video_id>.mp4`` (every frame, drawn) and ``folder/<video_id>_strip.png``."""
    size = (record["height"], record["width"])
    num_frames = len(record["file_names"])
    # A split without annotations (e.g. a test split in DATASETS.TRAIN) shows its bare frames.
    objects_per_frame = record.get("annotations") or [[] for _ in range(num_frames)]
    drawn = (
        draw_ground_truth(
            read_video_frame(record, index, "BGR"),
            frame_objects_to_instances(objects, NO_TRANSFORM, size, size),
            class_names,
        )
        for index, objects in enumerate(objects_per_frame)
    )
    video, strip = (os.path.join(folder, f"{record['video_id']}{suffix}") for suffix in (".mp4", "_strip.png"))
    written.add(*write_video_and_strip(video, strip, drawn, num_frames, DEFAULT_FPS, STRIP_FRAMES))


def draw_annotations(cfg, output: str, count, written: WrittenFiles) -> dict:
    videos = videos_to_draw(list(cfg.DATASETS.TRAIN), count)
    class_names = {name: dataset_class_names(name) for name in {name for name, _ in videos}}
    for name, record in tqdm.tqdm(videos, unit="video", desc="annotations"):
        folder = written.folders.make(os.path.join(output, name))
        write_annotated_video(record, class_names[name], folder, written)
    folders = sorted({os.path.join(output, name) for name, _ in videos})
    print(
        f"Wrote {len(videos)} annotated videos to {', '.join(folders)}: <video_id>.mp4 (every frame) and "
        f"<video_id>_strip.png ({STRIP_FRAMES} evenly spaced frames) for each"
    )
    return {"videos": len(videos)}


def draw_loader_pairs(cfg, output: str, count, written: WrittenFiles) -> dict:
    seed_all_rng(None if cfg.SEED < 0 else cfg.SEED)
    try:
        loader = build_sgnet_train_loader(cfg)  # infinite: batches are drawn until enough samples
    except ValueError as e:  # a config the loader cannot sample from (mixed kinds, bad ratios)
        raise InvalidInput(str(e)) from e
    class_names = dataset_class_names(cfg.DATASETS.TRAIN[0])  # the loader checked they all agree
    count = count or cfg.SOLVER.IMS_PER_BATCH
    folder = written.folders.make(os.path.join(output, "dataloader"))
    samples = itertools.islice(itertools.chain.from_iterable(loader), count)
    for index, sample in enumerate(tqdm.tqdm(samples, total=count, unit="pair", desc="dataloader")):
        frames = [
            draw_ground_truth(loader_image_to_bgr(image, cfg.INPUT.FORMAT), instances, class_names)
            for image, instances in zip(sample["image"], sample["instances"])
        ]
        written.add(write_strip(os.path.join(folder, f"{index}.png"), frames, what="--output"))
        key, reference = sample["file_names"]  # the same image twice for a pseudo pair
        logger.info(f"pair {index}: key frame {key}, reference frame {reference}")
    print(f"Wrote {count} training pairs (key frame | reference frame) to {folder}/<index>.png")
    return {"pairs": count}


def visualize(argv=None) -> int:
    args = get_parser().parse_args(argv)
    setup_logger(name="sgnet")
    # The few samples are loaded here rather than by worker processes started for them.
    cfg = load_config(args.config_file, list(args.opts) + ["DATALOADER.NUM_WORKERS", "0"])
    register_config_datasets(cfg)
    check_dataset_classes(cfg, required=("TRAIN",))
    if args.count is not None and args.count < 1:
        raise InvalidInput(f"--num-videos / --num-pairs {args.count}: must be at least 1")
    output = os.path.abspath(args.output)
    refuse_overwriting_inputs(output, [args.config_file] + dataset_inputs(cfg.DATASETS.TRAIN))
    draw = draw_annotations if args.source == "annotation" else draw_loader_pairs
    with WrittenFiles().removed_on_failure(output) as written:  # no partial output
        summary = draw(cfg, output, args.count, written)
    print(json.dumps({"output": output, **summary, "files": len(written.paths)}))
    return 0


def main(argv=None) -> int:
    """The command line; returns the exit status (2: a user's mistake, reported in one line)."""
    return run_main("visualize_data.py", visualize, argv)


if __name__ == "__main__":
    sys.exit(main())
