"""Export of SG-Net's frame step (:meth:`sgnet.modeling.SGNet.frame_step`) to ONNX."""
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import nn

from ..fileio import CreatedFolders, atomic_path
from ..modeling.meta_arch import FrameOutputs
from .errors import DeployError, require

logger = logging.getLogger(__name__)

INPUT_NAMES = ("image", "output_size")
OUTPUT_NAMES = FrameOutputs._fields
# The opset ONNX Runtime's CPU provider runs SG-Net's ops in (GridSample needs 16).
OPSET = 18
# The config values an exported graph holds (besides its weights): the input it expects, its
# output sizes and its post-processing. Recorded in the file (metadata ``sgnet.config``), they
# must agree with the config the file is run with. The tracker's keys and the mask threshold stay
# free: association and the masks' paste run outside the graph.
GRAPH_KEYS = (
    "INPUT.FORMAT",
    "MODEL.PIXEL_MEAN",
    "MODEL.PIXEL_STD",
    "MODEL.SGNET.NUM_CLASSES",
    "MODEL.SGNET.TRACK.EMBED_DIM",
    "MODEL.SGNET.PRE_NMS_TOPK",
    "MODEL.SGNET.SCORE_THRESH_TEST",
    "MODEL.SGNET.NMS_THRESH_TEST",
    "MODEL.SGNET.NMS_CLASS_AGNOSTIC",
    "MODEL.SGNET.DETECTIONS_PER_IMAGE",
    "MODEL.SGNET.MASK.GRANULARITIES",
    "MODEL.SGNET.MASK.GRANULARITY_AREAS",
    "MODEL.SGNET.MASK.GRANULARITY_PER_IMAGE",
    "MODEL.SGNET.MASK.TEST_BOX_EXPANSION",
)
CONFIG_METADATA = "sgnet.config"
# The model's class names (JSON list, in label order), when known: what ONNXRuntimeSGNet labels with.
CLASS_NAMES_METADATA = "sgnet.class_names"
# The file's precision and how it was made (JSON: {"precision": "int8", "calibration": ...});
# absent in a float32 export. Written by :func:`sgnet.deploy.quantize.quantize_int8`.
PRECISION_METADATA = "sgnet.precision"


def graph_config(cfg) -> Dict[str, object]:
    """The :data:`GRAPH_KEYS` values of ``cfg``, as JSON values (tuples become lists)."""
    values = {}
    for key in GRAPH_KEYS:
        node = cfg
        for part in key.split("."):
            node = node[part]
        values[key] = node
    return json.loads(json.dumps(values))


class FrameGraph(nn.Module):
    """The traced module: (image (3, h, w) uint8 resized frame, output_size (2,) int64 (H, W))
    -> the :class:`FrameOutputs` tensors, boxes at (H, W), masks on their crops (pasted outside
    the graph, :func:`sgnet.modeling.mask_paste.paste_masks`)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image, output_size):
        return tuple(self.model.frame_step(image, output_size, traced=True))


@dataclass
class ExportSummary:
    """An exported file: its absolute path, inputs and outputs ("name: type[dims]"), size, the
    time the export took, and its node count (``traced_nodes``: before simplification)."""

    path: str
    inputs: List[str]
    outputs: List[str]
    size_bytes: int
    seconds: float
    nodes: int
    traced_nodes: int


def _describe(values, onnx) -> List[str]:
    """'name: type[dims]' of graph inputs or outputs (symbolic dims by name)."""
    lines = []
    for value in values:
        tensor = value.type.tensor_type
        dims = [d.dim_param or str(d.dim_value) for d in tensor.shape.dim]
        lines.append(f"{value.name}: {onnx.TensorProto.DataType.Name(tensor.elem_type).lower()}[{', '.join(dims)}]")
    return lines


def default_sample_image(cfg) -> torch.Tensor:
    """(3, h, w) uint8: the frame traced without ``sample_image``, random, of
    ``INPUT.MIN_SIZE_TEST`` x (1.5 x that)."""
    height = cfg.INPUT.MIN_SIZE_TEST
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (3, height, height * 3 // 2), dtype=torch.uint8, generator=generator)


def check_frames(sample_image: torch.Tensor) -> List[Dict[str, np.ndarray]]:
    """The feeds a simplified graph is checked on: the traced frame at its own size, and a
    random frame of another, odd size with boxes at a third size (the shape computations the
    simplifier rewrote must hold for them too)."""
    height, width = sample_image.shape[-2:]
    generator = torch.Generator().manual_seed(1)
    other_size = (height // 2 * 2 + 13, max(width // 2 * 2 - 11, 33))
    other = torch.randint(0, 256, (3, *other_size), dtype=torch.uint8, generator=generator)
    return [
        {"image": np.ascontiguousarray(image.numpy()), "output_size": np.asarray(output_size, dtype=np.int64)}
        for image, output_size in ((sample_image, (height, width)), (other, (other_size[0] * 3 // 2, other_size[1] + 7)))
    ]


def _first_difference(reference: List[np.ndarray], simplified: List[np.ndarray]) -> Optional[str]:
    """Where ``simplified`` outputs (:data:`OUTPUT_NAMES` order) differ from ``reference`` beyond
    float rounding (None: nowhere). Detections are matched first, by class, nearest box and then
    nearest score: two near-tied scores may swap places, and boxes clipped to the frame repeat."""
    if reference[0].shape != simplified[0].shape:
        return f"{len(simplified[0])} detections instead of {len(reference[0])}"
    boxes, scores, classes = reference[:3]
    gaps = (
        np.abs(boxes[:, None] - simplified[0][None]).max(axis=2)
        + np.abs(scores[:, None] - simplified[1][None])
        + np.where(classes[:, None] != simplified[2][None], np.inf, 0)
    )
    order = gaps.argmin(axis=1) if len(boxes) else np.zeros(0, dtype=np.int64)
    if len(set(order.tolist())) != len(order):
        return "the detections do not pair one to one"
    masks = ("mask_probabilities", "mask_regions")
    for name, expected, got in zip(OUTPUT_NAMES, reference, simplified):
        if name in masks:
            continue  # compared where they lie on the map, below
        got = got if name == "mask_map_size" else got[order]  # the one output of the frame, not per detection
        if expected.shape != got.shape:
            return f"{name} has shape {list(got.shape)} instead of {list(expected.shape)}"
        if not np.allclose(expected, got, rtol=1e-4, atol=1e-4):
            return f"{name} differs by up to {np.abs(expected.astype(np.float64) - got).max():.3g}"
    expected, got = map_probabilities(reference), map_probabilities(simplified)[order]
    # A box edge at a pixel centre may round either way with the operation order, moving a crop
    # bound by a pixel: a few pixels may differ, not more.
    differ = np.count_nonzero(np.abs(expected - got) > 1e-3)
    if differ > max(1, expected.size // 10000):
        return f"{differ} of {expected.size} mask probabilities on the map differ"
    return None


def map_probabilities(outputs: List[np.ndarray]) -> np.ndarray:
    """(D, H_b, W_b) the mask probabilities of a frame's outputs, each crop where it lies on the map."""
    probabilities, regions, map_size = (
        outputs[OUTPUT_NAMES.index(name)] for name in ("mask_probabilities", "mask_regions", "mask_map_size")
    )
    placed = np.zeros((len(probabilities), *map_size.tolist()), dtype=np.float32)
    for k, (row_start, col_start, row_end, col_end) in enumerate(regions.tolist()):
        placed[k, row_start:row_end, col_start:col_end] = probabilities[k, : row_end - row_start, : col_end - col_start]
    return placed


def _simplified(staging: str, path: str, sample_image: torch.Tensor, onnx):
    """onnxslim's simplification of the traced graph in ``staging`` (constant folding, shape
    plumbing, Identity nodes: about half the nodes, which every runtime would otherwise digest),
    checked equal to it in ONNX Runtime on :func:`check_frames`. ``path``: the file the user
    asked for, which errors name. Returns the simplified graph and the traced one's node count."""
    onnxslim, ort = require("onnxslim"), require("onnxruntime")
    traced = onnx.load(staging)
    traced_nodes = len(traced.graph.node)
    try:
        simplified = onnxslim.slim(traced)
    except Exception as e:  # onnxslim's own failures, whatever their type
        raise DeployError(
            f"{path}: onnxslim {onnxslim.__version__} failed on the traced graph ({type(e).__name__}: {e}); "
            "export without simplification (tools/export_model.py --no-simplify, export_onnx(simplify=False))"
        ) from e
    del traced  # the traced graph stays in its file; one copy in memory is enough
    sessions = [
        ort.InferenceSession(model, providers=["CPUExecutionProvider"]) for model in (staging, simplified.SerializeToString())
    ]
    checked = []
    for feeds in check_frames(sample_image):
        outputs = [session.run(None, feeds) for session in sessions]
        difference = _first_difference(*outputs)
        if difference:
            raise DeployError(
                f"{path}: onnxslim {onnxslim.__version__} changed the graph's results on a {list(feeds['image'].shape)} "
                f"frame ({difference}); export without simplification (tools/export_model.py --no-simplify, "
                "export_onnx(simplify=False))"
            )
        checked.append(len(outputs[0][0]))
    if not any(checked):
        logger.warning(
            "%s: the simplified graph was checked on frames with no detection (only its empty outputs compared); "
            "an export from a frame with objects (--sample-image) checks its masks and embeddings too", path
        )
    return simplified, traced_nodes


def _export(model, cfg, sample_image, output_size, staging: str, path: str, onnx, class_names, simplify: bool):
    """Trace the frame step into ``staging``, simplify it (``simplify``), record the config
    values the graph holds, check it. ``path``: the file the user asked for, which errors name.
    Returns the graph and the traced graph's node count."""
    detections = {0: "detections"}
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about every Python value it records (detectron2's asserts, the
        # static config); the graph's dynamic behaviour is checked by sgnet's tests instead.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            FrameGraph(model.eval()),
            (sample_image, output_size),
            staging,
            opset_version=OPSET,
            dynamo=False,
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={
                "image": {1: "height", 2: "width"},
                **{name: detections for name in OUTPUT_NAMES if name != "mask_map_size"},
                "mask_probabilities": {0: "detections", 1: "crop_height", 2: "crop_width"},
            },
        )
    if simplify:
        graph, traced_nodes = _simplified(staging, path, sample_image, onnx)
    else:
        graph = onnx.load(staging)
        traced_nodes = len(graph.graph.node)
    graph.metadata_props.add(key=CONFIG_METADATA, value=json.dumps(graph_config(cfg)))
    if class_names is not None:
        graph.metadata_props.add(key=CLASS_NAMES_METADATA, value=json.dumps(list(class_names)))
    onnx.save(graph, staging)
    onnx.checker.check_model(staging, full_check=True)
    return graph, traced_nodes


def export_onnx(
    model,
    cfg,
    path: str,
    sample_image: Optional[torch.Tensor] = None,
    class_names: Optional[List[str]] = None,
    simplify: bool = True,
) -> ExportSummary:
    """Trace ``model`` (an :class:`~sgnet.modeling.SGNet` on the CPU, weights loaded) into
    ``path``, an ONNX file whose frame size and number of detections are dynamic.

    Args:
        cfg: the model's config (its :data:`GRAPH_KEYS` values are recorded in the file).
        sample_image: (3, h, w) uint8 example frame; by default a random frame of
            ``INPUT.MIN_SIZE_TEST`` x (1.5 x that). The graph does not depend on it.
        class_names: the model's class names (e.g. :attr:`sgnet.predictor.VideoPredictor.class_names`),
            recorded in the file when given.
        simplify: write onnxslim's simplification of the traced graph, checked equal in ONNX
            Runtime (:func:`_simplified`); False writes the graph as traced.
    Returns:
        the file, its inputs and outputs ("name: type[dims]"), size, export time and node
        counts (in the file, and as traced).
    """
    onnx = require("onnx")
    if model.device.type != "cpu":
        raise DeployError(f"{path}: export runs on the CPU (MODEL.DEVICE cpu), the model is on {model.device}")
    if sample_image is None:
        sample_image = default_sample_image(cfg)
    output_size = torch.tensor(sample_image.shape[-2:], dtype=torch.int64)
    folders = CreatedFolders()
    try:
        folders.make(os.path.dirname(os.path.abspath(path)))
        # Written and checked under a temporary name, renamed when whole: an interrupted or
        # failed export leaves the previous file (or none), never a half one.
        with atomic_path(path, suffix=".onnx") as staging:
            start = time.perf_counter()
            graph, traced_nodes = _export(model, cfg, sample_image, output_size, staging, path, onnx, class_names, simplify)
    except OSError as e:
        folders.remove_empty()
        raise DeployError(f"{path}: cannot write it ({e})") from e
    except BaseException:
        folders.remove_empty()
        raise
    seconds = time.perf_counter() - start
    return ExportSummary(
        path=os.path.abspath(path),
        inputs=_describe(graph.graph.input, onnx),
        outputs=_describe(graph.graph.output, onnx),
        size_bytes=os.path.getsize(path),
        seconds=seconds,
        nodes=len(graph.graph.node),
        traced_nodes=traced_nodes,
    )
