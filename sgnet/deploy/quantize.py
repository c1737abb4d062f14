"""Static int8 quantization of an exported frame step, calibrated on the user's frames.

ONNX Runtime's static quantizer writes a QDQ file (QuantizeLinear / DequantizeLinear pairs around
the quantized ops' inputs, int8 weights per output channel, uint8 activations with ranges measured
on the calibration frames): one file that ONNX Runtime (fused into integer kernels) and OpenVINO
(its low-precision transformations) both run. Only the convolutions and matmuls of the network are
quantized; everything else (deformable sampling, candidate selection, NMS, mask assembly, the
tracker outside the graph) stays float32, and so do the layers in :data:`KEPT_FLOAT`, whose
outputs decide scores, boxes and identities directly.
"""
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Iterator, List, Sequence, Tuple

import numpy as np
import torch
from detectron2.structures import Boxes, pairwise_iou

from ..data.video import VideoFrameReader
from ..fileio import atomic_path
from .errors import DeployError, require
from .export import CONFIG_METADATA, PRECISION_METADATA
from .runtime import _first_line

#: The op types quantized (the network's arithmetic; the rest is cheap or index work).
QUANTIZED_OPS = ("Conv", "MatMul")
#: The modules whose :data:`QUANTIZED_OPS` are quantized, as the exporter names their nodes
#: (``/head/cls_tower/cls_tower.0_2/Conv``: module path, ``_k`` for the k-th call). The mask
#: assembly's matmul, outside them, stays float with the rest of the post-processing.
QUANTIZED_SCOPES = re.compile(r"^/(backbone|head|track_head|basis_branch)/")
#: The layers among them kept float32 (:func:`quantized_nodes`): the prediction convs, whose
#: outputs are the scores, box distances and centerness directly, and the deformable
#: alignment's offsets, which decide where its features are sampled.
KEPT_FLOAT = re.compile(r"^/head/(cls_score|box_pred|centerness|align/offset)(_\d+)?/")
DEFAULT_CALIBRATION_FRAMES = 32


@dataclass
class QuantizeSummary:
    """A quantized file: its absolute path, size, the time quantization took (calibration
    included), how many convs / matmuls were quantized, and the names of those kept float32."""

    path: str
    size_bytes: int
    seconds: float
    quantized_node_count: int
    float_node_names: List[str]


def calibration_frames(sources: Sequence[str], num_frames: int) -> Iterator[np.ndarray]:
    """Up to ``num_frames`` frames (H, W, 3) BGR, spread evenly over ``sources`` (video files or
    folders of frames, as :class:`~sgnet.data.video.VideoFrameReader` reads them): each source
    gives its share of what is still wanted, evenly spaced over its length (its first frames when
    its length is unknown; a video is decoded up to its last chosen frame). Errors name the source
    that cannot be read."""
    if num_frames < 1:
        raise DeployError(f"--frames must be at least 1; got {num_frames}")
    readers = [VideoFrameReader(source) for source in sources]
    remaining = num_frames
    for position, reader in enumerate(readers):
        # An even share of what is still wanted: a source shorter than its share leaves the
        # rest to the sources after it.
        share = round(remaining / (len(readers) - position))
        if share == 0:
            continue
        if reader.num_frames is None:
            wanted = set(range(share))
        else:
            wanted = set(np.linspace(0, reader.num_frames - 1, min(share, reader.num_frames)).round().astype(int).tolist())
        for index, frame in enumerate(reader):
            if index in wanted:
                remaining -= 1
                yield frame
            if index >= max(wanted):
                break


def frame_feeds(frames: Iterable, to_model_input: Callable[..., torch.Tensor]) -> List[Dict[str, np.ndarray]]:
    """The graph's feeds for each frame ((H, W, 3) BGR, or whatever ``to_model_input`` takes):
    ``image`` (3, h, w) uint8, the resized frame, and ``output_size`` (2,) int64, its own size
    (the masks' size does not change the network's activations, only the cost of pasting them)."""
    feeds = []
    for frame in frames:
        image = to_model_input(frame)
        feeds.append({"image": np.ascontiguousarray(image.numpy()), "output_size": np.asarray(image.shape[-2:], dtype=np.int64)})
    return feeds


def quantized_nodes(graph) -> Tuple[List[str], List[str]]:
    """The names of ``graph``'s :data:`QUANTIZED_OPS` nodes in :data:`QUANTIZED_SCOPES`: those
    quantized, and those kept float32 (:data:`KEPT_FLOAT`)."""
    names = [node.name for node in graph.node if node.op_type in QUANTIZED_OPS and QUANTIZED_SCOPES.match(node.name)]
    return [n for n in names if not KEPT_FLOAT.match(n)], [n for n in names if KEPT_FLOAT.match(n)]


class _QuietPreprocessingAdvice(logging.Filter):
    """Drops the quantizer's advice to run its pre-processing (shape inference and graph
    optimisation: the export's simplification has done their part), logged on every call."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


class _FeedReader:
    """ONNX Runtime's calibration data reader protocol over a list of feeds."""

    def __init__(self, feeds: List[Dict[str, np.ndarray]]):
        self._feeds = iter(feeds)

    def get_next(self):
        return next(self._feeds, None)


def quantize_int8(float_path: str, path: str, feeds: List[Dict[str, np.ndarray]], description: str = "") -> QuantizeSummary:
    """Write ``path``: the exported float32 file ``float_path`` (``tools/export_model.py``)
    statically quantized to int8 (QDQ), activation ranges calibrated (min / max) on ``feeds``
    (:func:`frame_feeds`). Its metadata are the float file's, plus :data:`PRECISION_METADATA`
    (``description``: where the calibration frames came from). Written under a temporary name
    and renamed when whole."""
    onnx, ort = require("onnx"), require("onnxruntime")
    from onnxruntime import quantization

    if not feeds:
        raise DeployError(f"{path}: no calibration frame was read")
    if os.path.realpath(path) == os.path.realpath(float_path):
        raise DeployError(f"{path}: the int8 file would replace its float32 original: choose another path")
    start = time.perf_counter()
    try:
        model = onnx.load(float_path)
    except Exception as e:  # onnx's own errors for missing or corrupt files
        raise DeployError(f"{float_path}: not an ONNX file onnx can read ({type(e).__name__}: {e})") from e
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    if CONFIG_METADATA not in metadata:
        raise DeployError(f"{float_path}: not an SG-Net frame step exported by tools/export_model.py")
    quantized_names, kept = quantized_nodes(model.graph)
    if not quantized_names:  # the exporter named its nodes otherwise: nothing would be quantized
        raise DeployError(f"{float_path}: no convolution under {QUANTIZED_SCOPES.pattern} to quantize")
    advice = _QuietPreprocessingAdvice()
    logging.getLogger().addFilter(advice)
    try:
        with atomic_path(path, suffix=".onnx") as staging:
            # The calibrator records each quantized input's min and max per frame (reductions
            # added to the graph), not the activations themselves.
            quantization.quantize_static(
                model,
                staging,
                _FeedReader(feeds),
                quant_format=quantization.QuantFormat.QDQ,
                op_types_to_quantize=list(QUANTIZED_OPS),
                nodes_to_quantize=quantized_names,
                per_channel=True,
                activation_type=quantization.QuantType.QUInt8,
                weight_type=quantization.QuantType.QInt8,
                calibrate_method=quantization.CalibrationMethod.MinMax,
            )
            quantized = onnx.load(staging)
            del quantized.metadata_props[:]  # the float file's, as the quantizer may not keep them
            for key, value in metadata.items():
                quantized.metadata_props.add(key=key, value=value)
            precision = {"precision": "int8", "calibration": description, "calibration_frames": len(feeds)}
            quantized.metadata_props.add(key=PRECISION_METADATA, value=json.dumps(precision))
            onnx.save(quantized, staging)
            ort.InferenceSession(staging, providers=["CPUExecutionProvider"])  # loads, or fails here
    except OSError as e:
        raise DeployError(f"{path}: cannot write it ({e})") from e
    except Exception as e:  # the quantizer's and ONNX Runtime's own error types
        raise DeployError(f"{path}: ONNX Runtime's quantizer failed on {float_path} ({type(e).__name__}: {_first_line(e)})") from e
    finally:
        logging.getLogger().removeFilter(advice)
    return QuantizeSummary(
        path=os.path.abspath(path),
        size_bytes=os.path.getsize(path),
        seconds=time.perf_counter() - start,
        quantized_node_count=len(quantized_names),
        float_node_names=kept,
    )


@dataclass
class Agreement:
    """How far a quantized file's detections are from its float32 original's on some frames:
    detections of each, those paired (same class, box IoU > 0.5, greedily by score), and over
    the pairs the mean box IoU, mean mask IoU and largest score difference."""

    frames: int
    float_detections: int
    quantized_detections: int
    paired: int
    mean_box_iou: float
    mean_mask_iou: float
    max_score_difference: float

    def __str__(self) -> str:
        return (
            f"{self.paired} of {self.float_detections} float32 detections paired with the "
            f"{self.quantized_detections} of int8 on {self.frames} frames (same class, box IoU > 0.5): "
            f"mean box IoU {self.mean_box_iou:.3f}, mean mask IoU {self.mean_mask_iou:.3f}, "
            f"scores within {self.max_score_difference:.3f}"
        )


def agreement(float_outputs: List[List[np.ndarray]], quantized_outputs: List[List[np.ndarray]]) -> Agreement:
    """:class:`Agreement` of two runs' outputs (per frame, the graph's outputs in
    :data:`~sgnet.deploy.export.OUTPUT_NAMES` order)."""
    box_ious, mask_ious, score_differences = [], [], []
    totals = [0, 0]
    for (boxes, scores, classes, _, masks, _), (q_boxes, q_scores, q_classes, _, q_masks, _) in zip(
        float_outputs, quantized_outputs
    ):
        totals[0] += len(boxes)
        totals[1] += len(q_boxes)
        ious = np.where(classes[:, None] == q_classes[None], pairwise_iou(Boxes(torch.from_numpy(boxes)), Boxes(torch.from_numpy(q_boxes))).numpy(), 0.0)
        for i in np.argsort(-scores):
            j = int(ious[i].argmax()) if ious.shape[1] else -1
            if j < 0 or ious[i, j] <= 0.5:
                continue
            box_ious.append(ious[i, j])
            union = np.count_nonzero(masks[i] | q_masks[j])
            mask_ious.append(np.count_nonzero(masks[i] & q_masks[j]) / union if union else 1.0)
            score_differences.append(abs(float(scores[i] - q_scores[j])))
            ious[:, j] = 0.0  # paired once
    return Agreement(
        frames=len(float_outputs),
        float_detections=totals[0],
        quantized_detections=totals[1],
        paired=len(box_ious),
        mean_box_iou=float(np.mean(box_ious)) if box_ious else float("nan"),
        mean_mask_iou=float(np.mean(mask_ious)) if mask_ious else float("nan"),
        max_score_difference=max(score_differences) if score_differences else float("nan"),
    )


def compare_on(float_path: str, quantized_path: str, feeds: List[Dict[str, np.ndarray]]) -> Agreement:
    """:func:`agreement` of the two files in ONNX Runtime on ``feeds``."""
    ort = require("onnxruntime")
    sessions = [ort.InferenceSession(p, providers=["CPUExecutionProvider"]) for p in (float_path, quantized_path)]
    return agreement(*[[session.run(None, frame) for frame in feeds] for session in sessions])
