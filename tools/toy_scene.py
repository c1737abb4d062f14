"""SG-Net's toy config narrowed to a fraction of a second per training step, a hand-drawn
two-object scene, and a loop that overfits a model on it: shared by the tests (through
``tests/model_fixtures.py``) and ``tools/gpu_check.py``."""
from pathlib import Path

import torch
from detectron2.config import get_cfg
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.events import EventStorage

import sgnet

REPO_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def tiny_cfg(**overrides):
    """The toy config, narrowed further so that a training step takes a fraction of a second."""
    cfg = get_cfg()
    sgnet.add_sgnet_config(cfg)
    cfg.merge_from_file(str(REPO_CONFIGS / "toy" / "sgnet_R18_toy.yaml"))
    cfg.MODEL.SGNET.NUM_CLASSES = 2
    cfg.TEST.CLASSES_PER_TRACK = 1  # one output entry per track: tests index outputs by track
    for key, value in overrides.items():
        node = cfg
        *path, leaf = key.split(".")
        for part in path:
            node = getattr(node, part)
        setattr(node, leaf, value)
    return cfg


def two_object_scene(shift: int, height: int = 128, width: int = 160):
    """A green disc (class 0, id 1) moving right and a red square (class 1, id 2) moving left by
    ``shift`` pixels on a grey background.

    Returns: (image (3, H, W) uint8 BGR, Instances with gt_boxes, gt_masks, gt_classes, gt_ids,
    gt_crowd).
    """
    image = torch.full((3, height, width), 90, dtype=torch.uint8)
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    disc = ((ys - 50) ** 2 + (xs - (40 + shift)) ** 2) < 22**2
    square = (ys >= 60) & (ys < 110) & (xs >= 90 - shift) & (xs < 140 - shift)
    image[:, disc] = torch.tensor([30, 200, 60], dtype=torch.uint8)[:, None]
    image[:, square] = torch.tensor([40, 40, 220], dtype=torch.uint8)[:, None]
    masks = torch.stack([disc, square])
    return image, instances_from_masks(masks, classes=[0, 1], ids=[1, 2])


def instances_from_masks(masks: torch.Tensor, classes, ids) -> Instances:
    """Ground-truth Instances (boxes = tight mask boxes) from (M, H, W) bool masks."""
    boxes = []
    for mask in masks:
        ys, xs = mask.nonzero(as_tuple=True)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    instances = Instances(tuple(masks.shape[-2:]))
    instances.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    instances.gt_masks = BitMasks(masks)
    instances.gt_classes = torch.tensor(classes, dtype=torch.long)
    instances.gt_ids = torch.tensor(ids, dtype=torch.long)
    instances.gt_crowd = torch.zeros(len(masks), dtype=torch.bool)
    return instances


def pair_sample(key_shift: int, ref_shift: int) -> dict:
    """A clip-pair training sample in the data mapper's format."""
    key_image, key_instances = two_object_scene(key_shift)
    ref_image, ref_instances = two_object_scene(ref_shift)
    height, width = key_image.shape[-2:]
    return {
        "video_id": 1,
        "image": [key_image, ref_image],
        "instances": [key_instances, ref_instances],
        "height": height,
        "width": width,
    }


def train(model, batch, iterations, lr=0.01):
    """``iterations`` SGD steps on one batch (overfitting it). Returns (per-step losses,
    the last track-match accuracy)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    model.train()
    history = []
    with EventStorage() as storage:
        for _ in range(iterations):
            losses = model(batch)
            total = sum(losses.values())
            optimizer.zero_grad()
            total.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            storage.step()
            history.append({k: float(v) for k, v in losses.items()})
        accuracy = storage.history("track_match_accuracy").latest()
    return history, accuracy
