"""Throughput of SG-Net's training data pipeline.

Writes a small synthetic YouTube-VIS-format dataset at 360p (640 x 360 frames) into a temporary
folder, then measures:

* the mapper alone, in this process: milliseconds per training sample (a key + reference pair);
* detectron2's ``build_detection_train_loader`` with ``YTVISPairDatasetMapper`` and
  ``--num-workers`` DataLoader workers: samples per second.

Augmentation is the training recipe's (shorter side drawn in [360, 480], longer side <= 960,
horizontal flip), or that of ``--config-file`` when given. Usage::

    python tools/benchmark_mapper.py [--num-workers 2] [--batch-size 8] [--batches 40]
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

import sgnet
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, build_detection_train_loader
from sgnet.data import (
    YTVISPairDatasetMapper,
    generate_synthetic_ytvis,
    get_ytvis_dataset_dicts,
    register_ytvis_instances,
)
from sgnet.config import load_config
from sgnet.errors import InvalidInput, run_main

DATASET_NAME = "benchmark_mapper_synthetic_360p"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8, help="SOLVER.IMS_PER_BATCH")
    parser.add_argument("--batches", type=int, default=40, help="batches timed after warm-up")
    parser.add_argument("--warmup-batches", type=int, default=5)
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--frames", type=int, default=12, help="frames per video")
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--config-file", default="", help="take INPUT.* from this config")
    args = parser.parse_args(argv)
    # Counts and sizes below these fail deep inside the dataset writer or the loader.
    minimums = {"num_workers": 0, "batch_size": 1, "batches": 1, "warmup_batches": 0, "videos": 1, "frames": 1,
                "height": 1, "width": 1}  # fmt: skip
    for name, minimum in minimums.items():
        if getattr(args, name) < minimum:
            raise InvalidInput(f"--{name.replace('_', '-')} {getattr(args, name)}: must be at least {minimum}")
    return args


def build_cfg(args):
    if args.config_file:
        cfg = load_config(args.config_file)  # a missing or bad file: one line naming it
        cfg.defrost()
    else:  # the release's multi-scale training (spec section 7)
        cfg = get_cfg()
        sgnet.add_sgnet_config(cfg)
        cfg.INPUT.MIN_SIZE_TRAIN = (360, 480)
        cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING = "range"
        cfg.INPUT.MAX_SIZE_TRAIN = 960
        cfg.INPUT.RANDOM_FLIP = "horizontal"
    cfg.DATASETS.TRAIN = (DATASET_NAME,)
    cfg.DATALOADER.NUM_WORKERS = args.num_workers
    cfg.SOLVER.IMS_PER_BATCH = args.batch_size
    return cfg


def time_mapper(mapper, dataset_dicts, samples=40) -> float:
    """Seconds per sample of the mapper called in this process."""
    np.random.seed(0)
    start = time.perf_counter()
    for i in range(samples):
        mapper(dataset_dicts[i % len(dataset_dicts)])
    return (time.perf_counter() - start) / samples


def time_loader(loader, warmup_batches, batches, batch_size) -> float:
    """Samples per second delivered by the loader, after warm-up (worker start-up excluded)."""
    iterator = iter(loader)
    for _ in range(warmup_batches):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        assert len(next(iterator)) == batch_size
    return batches * batch_size / (time.perf_counter() - start)


def time_pipeline(argv=None) -> None:
    args = parse_args(argv)
    cfg = build_cfg(args)
    with tempfile.TemporaryDirectory(prefix="sgnet-benchmark-") as tmp:
        start = time.perf_counter()
        paths = generate_synthetic_ytvis(
            tmp, num_train_videos=args.videos, num_val_videos=0, num_frames=args.frames,
            height=args.height, width=args.width,
        )  # fmt: skip
        print(
            f"dataset: {args.videos} synthetic videos x {args.frames} frames of "
            f"{args.width}x{args.height}, written in {time.perf_counter() - start:.1f} s"
        )
        register_ytvis_instances(DATASET_NAME, {}, paths["train_json"], paths["train_root"])
        try:
            dataset_dicts = get_ytvis_dataset_dicts(DATASET_NAME)
            mapper = YTVISPairDatasetMapper(cfg, True)
            seconds = time_mapper(mapper, dataset_dicts)
            print(
                f"mapper in-process: {1000 * seconds:.1f} ms/sample ({1 / seconds:.1f} samples/s)"
            )
            loader = build_detection_train_loader(cfg, mapper=mapper, dataset=dataset_dicts)
            rate = time_loader(loader, args.warmup_batches, args.batches, args.batch_size)
        finally:
            DatasetCatalog.remove(DATASET_NAME)
    print(
        f"build_detection_train_loader, {args.num_workers} workers, batch {args.batch_size}: "
        f"{rate:.1f} samples/s (each sample = key + reference frame; {os.cpu_count()} CPU cores)"
    )



def main(argv=None) -> int:
    """The command line; returns the exit status (2: a bad argument, reported in one line)."""
    return run_main("benchmark_mapper.py", time_pipeline, argv)


if __name__ == "__main__":
    sys.exit(main())
