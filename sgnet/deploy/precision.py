"""What the derived precisions of an exported frame step share (int8: :mod:`.quantize`, float16:
:mod:`.half`): reading the float32 original, writing the derived file with its metadata, and
measuring how the two files' detections agree."""
import json
import os
import re
from dataclasses import dataclass
from typing import Dict, List

import numpy as np
import torch
from detectron2.structures import Boxes, pairwise_iou

from .errors import DeployError, require
from .export import CONFIG_METADATA, OUTPUT_NAMES, PRECISION_METADATA, map_probabilities

#: The network's modules, as the exporter names their nodes (``/head/cls_tower/cls_tower.0_2/Conv``:
#: module path, ``_k`` for the k-th call): what the derived precisions change. The mask assembly's
#: matmul, outside them, stays float32 with the rest of the post-processing.
NETWORK_SCOPES = re.compile(r"^/(backbone|head|track_head|basis_branch)/")


def read_float_export(float_path: str, path: str, precision: str):
    """The float32 file ``float_path`` (``tools/export_model.py``) that the ``precision`` file
    ``path`` is made from: (its onnx model, its metadata). Refuses a path that would replace the
    original, a file onnx cannot read, one that is not an SG-Net export (or one of an older
    sgnet, whose outputs differ), or one already derived."""
    onnx = require("onnx")
    if os.path.realpath(path) == os.path.realpath(float_path):
        raise DeployError(f"{path}: the {precision} file would replace its float32 original: choose another path")
    try:
        model = onnx.load(float_path)
    except Exception as e:  # onnx's own errors for missing or corrupt files
        raise DeployError(f"{float_path}: not an ONNX file onnx can read ({type(e).__name__}: {e})") from e
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    if CONFIG_METADATA not in metadata:
        raise DeployError(f"{float_path}: not an SG-Net frame step exported by tools/export_model.py")
    outputs = tuple(output.name for output in model.graph.output)
    if outputs != OUTPUT_NAMES:
        raise DeployError(f"{float_path}: exported by an older sgnet (outputs {list(outputs)}): export it again")
    if PRECISION_METADATA in metadata:
        made = json.loads(metadata[PRECISION_METADATA]).get("precision", "derived")
        raise DeployError(f"{float_path}: already a {made} file; make the {precision} file from the float32 export")
    return model, metadata


def save_derived_export(model, metadata: Dict[str, str], precision: dict, staging: str) -> None:
    """Write ``model`` to ``staging`` with the float32 original's ``metadata`` and
    :data:`PRECISION_METADATA` ``precision``; check that ONNX Runtime loads it."""
    onnx, ort = require("onnx"), require("onnxruntime")
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    model.metadata_props.add(key=PRECISION_METADATA, value=json.dumps(precision))
    onnx.save(model, staging)
    ort.InferenceSession(staging, providers=["CPUExecutionProvider"])  # loads, or fails here


# The probability at which masks are compared (the config's MODEL.SGNET.MASK.THRESHOLD default:
# the threshold is applied outside the graph, so the files do not hold it).
AGREEMENT_MASK_THRESHOLD = 0.5


@dataclass
class Agreement:
    """How far a derived file's detections are from its float32 original's on some frames:
    detections of each, those paired (same class, box IoU > 0.5, greedily by score), and over
    the pairs the mean box IoU, mean mask IoU (on the basis map, at probability
    :data:`AGREEMENT_MASK_THRESHOLD`) and largest score difference."""

    precision: str
    frames: int
    float_detections: int
    derived_detections: int
    paired: int
    mean_box_iou: float
    mean_mask_iou: float
    max_score_difference: float

    def __str__(self) -> str:
        return (
            f"{self.paired} of {self.float_detections} float32 detections paired with the "
            f"{self.derived_detections} of {self.precision} on {self.frames} frames (same class, box IoU > 0.5): "
            f"mean box IoU {self.mean_box_iou:.3f}, mean mask IoU {self.mean_mask_iou:.3f}, "
            f"scores within {self.max_score_difference:.3f}"
        )


def agreement(float_outputs: List[List[np.ndarray]], derived_outputs: List[List[np.ndarray]], precision: str) -> Agreement:
    """:class:`Agreement` of two runs' outputs (per frame, the graph's outputs in
    :data:`~sgnet.deploy.export.OUTPUT_NAMES` order), the second of a ``precision`` file."""
    box_ious, mask_ious, score_differences = [], [], []
    totals = [0, 0]
    for float_frame, derived_frame in zip(float_outputs, derived_outputs):
        (boxes, scores, classes), (q_boxes, q_scores, q_classes) = float_frame[:3], derived_frame[:3]
        # Thresholded where they lie on the basis map (no resize).
        masks, q_masks = (map_probabilities(outputs) > AGREEMENT_MASK_THRESHOLD for outputs in (float_frame, derived_frame))
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
        precision=precision,
        frames=len(float_outputs),
        float_detections=totals[0],
        derived_detections=totals[1],
        paired=len(box_ious),
        mean_box_iou=float(np.mean(box_ious)) if box_ious else float("nan"),
        mean_mask_iou=float(np.mean(mask_ious)) if mask_ious else float("nan"),
        max_score_difference=max(score_differences) if score_differences else float("nan"),
    )


def compare_on(float_path: str, derived_path: str, feeds: List[Dict[str, np.ndarray]]) -> Agreement:
    """:func:`agreement` of the two files in ONNX Runtime on ``feeds``."""
    ort = require("onnxruntime")
    sessions = [ort.InferenceSession(p, providers=["CPUExecutionProvider"]) for p in (float_path, derived_path)]
    made = json.loads(sessions[1].get_modelmeta().custom_metadata_map.get(PRECISION_METADATA, "{}"))
    outputs = [[session.run(None, frame) for frame in feeds] for session in sessions]
    return agreement(*outputs, precision=made.get("precision", "float32"))
