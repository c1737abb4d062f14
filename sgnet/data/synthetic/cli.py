"""The command line of the generator (run as ``python -m sgnet.data.synthetic``; see
:mod:`sgnet.data.synthetic`)."""

import argparse
import os

from ...errors import InvalidInput
from .coco import generate_synthetic_coco
from .toy import mark_toy_dataset
from .ytvis_writer import generate_synthetic_ytvis

__all__ = ["PROG", "main"]

PROG = "python -m sgnet.data.synthetic"
# option (argparse's key) -> the smallest value it takes
_MINIMUMS = {
    "train_videos": 0, "val_videos": 0, "frames": 1, "height": 1, "width": 1, "coco_images": 0,
}  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Write the synthetic YouTube-VIS-format dataset: train.json, valid.json, "
        "frames.",
    )
    parser.add_argument("out_dir")
    parser.add_argument("--train-videos", type=int, default=400)
    parser.add_argument("--val-videos", type=int, default=48)
    parser.add_argument("--frames", type=int, default=12, help="frames per video")
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--coco-images",
        type=int,
        default=0,
        help="write instead a COCO-format image split of this many images (OUT_DIR/annotations/"
        "instances_train2017.json, OUT_DIR/train2017/), e.g. into $DETECTRON2_DATASETS/coco",
    )
    return parser


def _check(args) -> None:
    """A bad value as one :class:`InvalidInput` line naming the option."""
    for key, minimum in _MINIMUMS.items():
        value = getattr(args, key)
        if value < minimum:
            raise InvalidInput(f"--{key.replace('_', '-')} {value}: must be at least {minimum}")
    if os.path.exists(args.out_dir) and not os.path.isdir(args.out_dir):
        raise InvalidInput(f"{args.out_dir}: is not a folder (OUT_DIR)")


def main(argv=None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    _check(args)
    size = {"height": args.height, "width": args.width, "seed": args.seed}
    if args.coco_images:
        paths = generate_synthetic_coco(args.out_dir, num_images=args.coco_images, **size)
    else:
        paths = generate_synthetic_ytvis(
            args.out_dir,
            num_train_videos=args.train_videos,
            num_val_videos=args.val_videos,
            num_frames=args.frames,
            **size,
        )
        if vars(args) == vars(parser.parse_args([args.out_dir])):
            # The default dataset: usable as $DETECTRON2_DATASETS/sgnet_toy.
            mark_toy_dataset(args.out_dir)
    for key, path in paths.items():
        print(f"{key}: {path}")
