"""Static int8 quantization of an exported frame step, calibrated on the user's frames.

ONNX Runtime's static quantizer writes a QDQ file (QuantizeLinear / DequantizeLinear pairs around
the quantized ops' inputs, int8 weights per output channel, uint8 activations with ranges measured
on the calibration frames): one file that ONNX Runtime (fused into integer kernels) and OpenVINO
(its low-precision transformations) both run. Only the convolutions and matmuls of the network are
quantized; everything else (deformable sampling, candidate selection, NMS, mask assembly, the
tracker outside the graph) stays float32, and so do the layers in :data:`KEPT_FLOAT`, whose
outputs decide scores, boxes and identities directly.
"""
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Iterator, List, Sequence, Tuple

import numpy as np
import torch

from ..data.video import VideoFrameReader
from ..fileio import atomic_path
from .errors import DeployError, require
from .precision import NETWORK_SCOPES, read_float_export, save_derived_export
from .runtime import _first_line

#: The op types quantized (the network's arithmetic; the rest is cheap or index work).
QUANTIZED_OPS = ("Conv", "MatMul")
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
    """The names of ``graph``'s :data:`QUANTIZED_OPS` nodes in the network
    (:data:`~sgnet.deploy.precision.NETWORK_SCOPES`): those
    quantized, and those kept float32 (:data:`KEPT_FLOAT`)."""
    names = [node.name for node in graph.node if node.op_type in QUANTIZED_OPS and NETWORK_SCOPES.match(node.name)]
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
    onnx = require("onnx")
    require("onnxruntime")
    from onnxruntime import quantization

    if not feeds:
        raise DeployError(f"{path}: no calibration frame was read")
    start = time.perf_counter()
    model, metadata = read_float_export(float_path, path, "int8")
    quantized_names, kept = quantized_nodes(model.graph)
    if not quantized_names:  # the exporter named its nodes otherwise: nothing would be quantized
        raise DeployError(f"{float_path}: no convolution under {NETWORK_SCOPES.pattern} to quantize")
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
            precision = {"precision": "int8", "calibration": description, "calibration_frames": len(feeds)}
            # The float file's metadata, as the quantizer may not keep them.
            save_derived_export(onnx.load(staging), metadata, precision, staging)
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
