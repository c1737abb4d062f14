"""SG-Net's frame step in ONNX Runtime, tracked by the same online inference as PyTorch's."""
import json
import os

import numpy as np
import torch
from detectron2.structures import Instances

from ..modeling.meta_arch import FrameOutputs
from ..modeling.online import OnlineVideoInference
from ..tracking import OnlineTracker
from .errors import DeployError, require
from .export import CLASS_NAMES_METADATA, CONFIG_METADATA, INPUT_NAMES, OUTPUT_NAMES, graph_config


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


class ONNXRuntimeSGNet(OnlineVideoInference):
    """An exported frame step (``tools/export_model.py``) in ONNX Runtime's CPU provider, with
    :meth:`detect_frame` as :class:`~sgnet.modeling.SGNet`'s, so that ``inference_frame``,
    ``inference_video`` and :class:`~sgnet.predictor.VideoPredictor` run on it unchanged.

    ``cfg`` is the config the file was exported with: it names the tracker's settings and the
    classes, and must agree with the values the graph holds (:data:`~sgnet.deploy.export.GRAPH_KEYS`:
    input format, class count, thresholds, ...); the tracker's keys are free.
    ``num_threads``: ONNX Runtime's intra-op threads (default: torch's, so the two backends
    compare on equal terms). Its threads do not spin after a run, which would slow the PyTorch
    work (association) that follows in the same process.
    """

    def __init__(self, path: str, cfg, num_threads: int = 0):
        ort = require("onnxruntime")
        self.path = os.path.abspath(path)
        if not os.path.isfile(self.path):
            raise DeployError(f"{self.path}: no such ONNX model file")
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads or torch.get_num_threads()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only: a bad file is reported below, in one line
        try:
            self.session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types for unreadable or invalid files
            raise DeployError(f"{self.path}: not a model ONNX Runtime can load ({_first_line(e)})") from e
        self._check(self.session, cfg)
        self.num_classes = cfg.MODEL.SGNET.NUM_CLASSES
        recorded = self.session.get_modelmeta().custom_metadata_map.get(CLASS_NAMES_METADATA)
        # The class names it was exported with (None for a file exported without them).
        self.class_names = None if recorded is None else json.loads(recorded)
        self.init_video_inference(
            tracker=OnlineTracker(cfg),
            track_label_rule=cfg.TEST.TRACK_LABEL_RULE,
            classes_per_track=cfg.TEST.CLASSES_PER_TRACK,
            nms_class_agnostic=cfg.MODEL.SGNET.NMS_CLASS_AGNOSTIC,
        )

    def _check(self, session, cfg) -> None:
        inputs = tuple(x.name for x in session.get_inputs())
        outputs = tuple(x.name for x in session.get_outputs())
        metadata = session.get_modelmeta().custom_metadata_map
        if inputs != INPUT_NAMES or outputs != OUTPUT_NAMES or CONFIG_METADATA not in metadata:
            raise DeployError(
                f"{self.path}: not an SG-Net frame step exported by tools/export_model.py "
                f"(inputs {list(inputs)}, outputs {list(outputs)})"
            )
        exported, current = json.loads(metadata[CONFIG_METADATA]), graph_config(cfg)
        differ = [key for key in current if exported.get(key) != current[key]]
        if differ:
            key = differ[0]
            more = f" (and {len(differ) - 1} more key(s): {', '.join(differ[1:])})" if len(differ) > 1 else ""
            raise DeployError(
                f"{self.path} was exported with {key} = {exported.get(key)}, but the config has {current[key]}{more}: "
                "export it again with this config (tools/export_model.py)"
            )

    def detect_frame(self, image: torch.Tensor, output_size) -> Instances:
        """As :meth:`sgnet.modeling.SGNet.detect_frame`: (3, h, w) uint8 resized frame ->
        Instances at ``output_size`` (height, width), on the CPU."""
        if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] != 3 or len(output_size) != 2:
            raise DeployError(
                f"{self.path}: frames go in as (3, h, w) uint8 tensors (the test mapper's) with an output size "
                f"(height, width); got a {tuple(image.shape)} {image.dtype} tensor and {tuple(output_size)}"
            )
        feeds = {
            "image": np.ascontiguousarray(image.cpu().numpy()),
            "output_size": np.asarray(output_size, dtype=np.int64),
        }
        try:
            outputs = self.session.run(None, feeds)
        except Exception as e:  # onnxruntime's own error types, multi-line
            raise DeployError(f"{self.path}: ONNX Runtime failed on a {tuple(image.shape)} frame ({_first_line(e)})") from e
        return FrameOutputs(*(torch.from_numpy(x) for x in outputs)).to_instances(output_size)
