"""SG-Net's frame step in ONNX Runtime, tracked by the same online inference as PyTorch's."""
import os

import numpy as np
import torch
from detectron2.structures import Instances

from ..modeling.meta_arch import FrameOutputs
from ..modeling.online import OnlineVideoInference
from ..tracking import OnlineTracker, VideoTrackAccumulator
from .errors import DeployError, require
from .export import INPUT_NAMES, METADATA_KEYS, OUTPUT_NAMES, model_metadata


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


class ONNXRuntimeSGNet(OnlineVideoInference):
    """An exported frame step (``tools/export_model.py``) in ONNX Runtime's CPU provider, with
    :meth:`detect_frame` as :class:`~sgnet.modeling.SGNet`'s, so that ``inference_frame``,
    ``inference_video`` and :class:`~sgnet.predictor.VideoPredictor` run on it unchanged.

    ``cfg`` is the config the file was exported with: it names the tracker's settings and the
    classes, and must agree with the file (class count, embedding size, input format).
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
        self.tracker = OnlineTracker(cfg)
        self.num_classes = cfg.MODEL.SGNET.NUM_CLASSES
        self.track_label_rule = cfg.TEST.TRACK_LABEL_RULE
        VideoTrackAccumulator.check_classes_per_track(cfg.TEST.CLASSES_PER_TRACK, self.num_classes)
        self.classes_per_track = cfg.TEST.CLASSES_PER_TRACK

    def _check(self, session, cfg) -> None:
        inputs = tuple(x.name for x in session.get_inputs())
        outputs = tuple(x.name for x in session.get_outputs())
        metadata = session.get_modelmeta().custom_metadata_map
        if inputs != INPUT_NAMES or outputs != OUTPUT_NAMES or not set(METADATA_KEYS) <= set(metadata):
            raise DeployError(
                f"{self.path}: not an SG-Net frame step exported by tools/export_model.py "
                f"(inputs {list(inputs)}, outputs {list(outputs)})"
            )
        for key, expected in model_metadata(cfg).items():
            if metadata[key] != expected:
                raise DeployError(
                    f"{self.path} was exported with {key.split('.', 1)[1]} = {metadata[key]}, but the config has "
                    f"{expected}: export it again with this config (tools/export_model.py)"
                )

    def detect_frame(self, image: torch.Tensor, output_size) -> Instances:
        """As :meth:`sgnet.modeling.SGNet.detect_frame`: (3, h, w) uint8 resized frame ->
        Instances at ``output_size`` (height, width), on the CPU."""
        if image.dtype != torch.uint8:
            raise DeployError(f"{self.path}: frames go in as uint8 (the test mapper's), got {image.dtype}")
        outputs = self.session.run(
            None,
            {
                "image": np.ascontiguousarray(image.cpu().numpy()),
                "output_size": np.asarray(output_size, dtype=np.int64),
            },
        )
        return FrameOutputs(*(torch.from_numpy(x) for x in outputs)).to_instances(output_size)
