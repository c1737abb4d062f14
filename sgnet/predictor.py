"""Streaming SG-Net inference for applications (demo, benchmarks): frames in, tracked
instances out, one frame at a time, so memory does not grow with the video's length."""
from typing import Iterable, Iterator, List, Optional, Tuple

import numpy as np
import torch
from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T
from detectron2.modeling import build_model
from detectron2.structures import Instances

from .checkpoint import build_checkpointer, checkpoint_category_ids, checkpoint_class_names
from .config_checks import check_model_classes
from .data import dataset_class_names, register_config_datasets
from .errors import InvalidInput
from .tracking import TrackMemory


def as_bgr(frame: np.ndarray) -> np.ndarray:
    """A uint8 frame as OpenCV gives them: (H, W, 3) BGR as it is, (H, W) or (H, W, 1) grayscale
    repeated over 3 channels, (H, W, 4) BGRA without its alpha. Anything else is refused naming
    its shape and type (a model fed one would fail deep inside, or see garbage)."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise InvalidInput(f"frame of type {frame.dtype}: expected uint8 (as OpenCV reads 8-bit images and videos)")
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.ndim != 3 or frame.shape[2] not in (1, 3, 4) or 0 in frame.shape[:2]:
        raise InvalidInput(f"frame of shape {frame.shape}: expected (H, W, 3) BGR, (H, W) grayscale or (H, W, 4) BGRA")
    if frame.shape[2] == 1:
        return np.repeat(frame, 3, axis=2)
    return frame[:, :, :3] if frame.shape[2] == 4 else frame


class VideoPredictor:
    """Builds SG-Net from a config, loads ``cfg.MODEL.WEIGHTS`` and tracks videos.

    Frames are resized like the test loader does (``INPUT.MIN_SIZE_TEST`` /
    ``INPUT.MAX_SIZE_TEST``); outputs are at the frame's own resolution.

    ``model``: track with this frame model instead (anything with SG-Net's ``inference_frame``,
    e.g. :class:`sgnet.deploy.ONNXRuntimeSGNet`); the config then only sets the frames' resize.

    :attr:`class_names` (None when unknown): what the model's labels mean, those of
    ``DATASETS.TEST[0]`` if the config names one, else those the checkpoint (or the exported
    model's ``class_names``) records. Both known and different is refused.
    :attr:`category_ids`: each label's category id in result files, from the same sources (the
    test set's annotation file, else the checkpoint), else label + 1 (YouTube-VIS numbers its
    categories 1..C).

    Track ids start at 1 (0 being the background of indexed mask PNGs, :mod:`.predictor_outputs`).
    """

    def __init__(self, cfg, model=None):
        register_config_datasets(cfg)  # the classes of a DATASETS.TEST named there
        self.cfg = cfg.clone()
        if model is None:
            model = build_model(self.cfg).eval()
            loaded, source = {}, cfg.MODEL.WEIGHTS
            if cfg.MODEL.WEIGHTS:
                loaded = build_checkpointer(cfg, model).load(cfg.MODEL.WEIGHTS)
            recorded, recorded_ids = checkpoint_class_names(loaded), checkpoint_category_ids(loaded)
            num_classes = cfg.MODEL.SGNET.NUM_CLASSES
        else:
            recorded, source = getattr(model, "class_names", None), getattr(model, "path", "the model")
            recorded_ids = None  # exported files record class names only
            num_classes = None  # the exported file's classifier is its own
        self.model = model
        self.class_names = _class_names(cfg, recorded, source, num_classes)
        self.category_ids = _category_ids(cfg, recorded_ids)
        self.resize = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
        self.input_format = cfg.INPUT.FORMAT

    def to_model_input(self, frame_bgr: np.ndarray) -> torch.Tensor:
        """A frame (see :func:`as_bgr`) -> (3, h, w) uint8 tensor, resized, in the model's format."""
        frame_bgr = as_bgr(frame_bgr)
        image = frame_bgr if self.input_format == "BGR" else frame_bgr[:, :, ::-1]
        resized = self.resize.get_transform(image).apply_image(image)
        return torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1)))

    def track(self, frames: Iterable[np.ndarray]) -> Iterator[Tuple[np.ndarray, Instances]]:
        """Track one video: yields (frame as (H, W, 3) BGR, its instances with ``track_ids``, on
        the CPU). Frames may be BGR, grayscale or BGRA (:func:`as_bgr`). Every call starts a fresh
        set of tracks, numbered from 1."""
        for _, frame, instances in self.track_indexed(enumerate(frames)):
            yield frame, instances

    def track_indexed(self, indexed_frames: Iterable[Tuple[int, np.ndarray]]) -> Iterator[Tuple[int, np.ndarray, Instances]]:
        """:meth:`track` for (index in the source, frame) pairs of a source some of whose frames
        were left out (a live source read slower than it delivers, :class:`~sgnet.data.FrameFeed`):
        yields (index, frame, instances). The tracker is told the gaps: tracks age
        (``MODEL.SGNET.TRACKER.MAX_AGE``) in source frames, i.e. in time."""
        memory = TrackMemory(next_id=1)
        for index, frame in indexed_frames:
            if index < memory.frame:
                raise ValueError(f"frame index {index} after frame {memory.frame - 1}: indices must increase")
            memory.frame = index
            frame = as_bgr(frame)
            with torch.inference_mode():
                instances = self.model.inference_frame(self.to_model_input(frame), frame.shape[:2], memory)
            yield index, frame, instances.to("cpu")


def _class_names(cfg, recorded: Optional[List[str]], source: str, num_classes: Optional[int]) -> Optional[List[str]]:
    """The test set's class names, checked against those the model records (``recorded``, from
    ``source``, for a model of ``num_classes`` classes: :func:`check_model_classes`); the
    recorded ones without a test set."""
    test = dataset_class_names(cfg.DATASETS.TEST[0]) if cfg.DATASETS.TEST else None
    tests = {cfg.DATASETS.TEST[0]: test} if cfg.DATASETS.TEST else {}
    check_model_classes(recorded, source, num_classes, tests, "leave DATASETS.TEST empty to use the model's")
    return test if test is not None else recorded


def _category_ids(cfg, recorded: Optional[List[int]]) -> List[int]:
    """Label -> category id: the test set's file's ids (its classes are loaded by now,
    :func:`_class_names`), else ``recorded`` (the checkpoint's), else label + 1."""
    to_label = None
    if cfg.DATASETS.TEST:
        to_label = MetadataCatalog.get(cfg.DATASETS.TEST[0]).get("thing_dataset_id_to_contiguous_id", None)
    if to_label:
        by_label = {label: dataset_id for dataset_id, label in to_label.items()}
        return [int(by_label[label]) for label in range(len(by_label))]
    return recorded if recorded is not None else list(range(1, cfg.MODEL.SGNET.NUM_CLASSES + 1))
