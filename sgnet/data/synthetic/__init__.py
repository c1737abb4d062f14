"""A small synthetic video instance segmentation dataset, in exactly the YouTube-VIS format.

Each video shows 1-4 textured shapes over a textured background. The class is the shape (disc,
square, triangle); colour and texture vary within a class and differ between the objects of a
video, so that identities can be told apart. Objects move linearly (reflected far outside the
frame, so long videos stay populated), scale and rotate; some cross paths with an earlier object
and pass in front of or behind it, some move side by side with an object of the same class, some
enter or leave through the border. Masks are the visible parts (a fixed depth order per video),
``null`` where an object is hidden or outside the frame.

Usage::

    python -m sgnet.data.synthetic OUT_DIR [--train-videos 400] [--val-videos 48] [--seed 0]

writes ``OUT_DIR/train.json``, ``OUT_DIR/train/JPEGImages/<video>/00000.jpg ...``,
``OUT_DIR/valid.json`` and ``OUT_DIR/valid/JPEGImages/...``. Unlike the public benchmarks'
validation files, ``valid.json`` has annotations, so that evaluation can run locally.
The output is a pure function of the arguments (same seed: byte-identical json and frames).

It can also write a COCO-format image split (:func:`generate_synthetic_coco`): the first frame of
such scenes, objects as polygons (crowds as RLE) under COCO category names, one of which no
``coco_*`` split maps::

    python -m sgnet.data.synthetic $DETECTRON2_DATASETS/coco --coco-images 400

writes ``annotations/instances_train2017.json`` and ``train2017/000000000001.jpg ...`` there,
detectron2's COCO layout, read by the ``coco_ytvis_2019_train`` / ``coco_ytvis_2021_train`` /
``coco_ovis_train`` splits.

Modules: :mod:`.render` (the scene model, drawn into frames), :mod:`.scenes` (sampling scenes),
:mod:`.ytvis_writer` (the video dataset), :mod:`.video_file` (one scene as a video file),
:mod:`.coco` (the image split), :mod:`.toy` (the default dataset of the ``sgnet_toy_*`` splits),
:mod:`.cli` (the command line). Nothing here imports :mod:`sgnet.data.datasets`.
"""

from .cli import main
from .coco import SYNTHETIC_COCO_CATEGORIES, generate_synthetic_coco
from .render import SYNTHETIC_CLASSES
from .toy import TOY_DATASET_VERSION, ensure_toy_dataset
from .video_file import write_synthetic_video
from .ytvis_writer import generate_synthetic_ytvis, toy_dataset_paths

__all__ = [
    "SYNTHETIC_CLASSES",
    "SYNTHETIC_COCO_CATEGORIES",
    "TOY_DATASET_VERSION",
    "ensure_toy_dataset",
    "generate_synthetic_coco",
    "generate_synthetic_ytvis",
    "main",
    "toy_dataset_paths",
    "write_synthetic_video",
]
