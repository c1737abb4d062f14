"""SG-Net's exported frame step in ONNX Runtime or OpenVINO, tracked by the same online
inference as PyTorch's."""
import functools
import json
import os
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from detectron2.structures import Instances

from ..modeling.meta_arch import FrameOutputs
from ..modeling.online import OnlineVideoInference
from ..tracking import OnlineTracker
from .errors import DeployError, require
from .export import CLASS_NAMES_METADATA, CONFIG_METADATA, INPUT_NAMES, OUTPUT_NAMES, PRECISION_METADATA, graph_config


def _first_line(error: Exception) -> str:
    """The error's first line that says what went wrong (OpenVINO's first ones name its source)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    meaningful = [line for line in lines if not line.startswith(("Exception from", "Check "))]
    return (meaningful or lines or [type(error).__name__])[0]


class ExportedSGNet(OnlineVideoInference):
    """An exported frame step (``tools/export_model.py``) in a runtime, with :meth:`detect_frame`
    as :class:`~sgnet.modeling.SGNet`'s, so that ``inference_frame``, ``inference_video`` and
    :class:`~sgnet.predictor.VideoPredictor` run on it unchanged. A runtime implements
    :meth:`_load` and :meth:`_run`.

    ``cfg`` is the config the file was exported with: it names the tracker's settings and the
    classes, and must agree with the values the graph holds (:data:`~sgnet.deploy.export.GRAPH_KEYS`:
    input format, class count, thresholds, ...); the tracker's keys and the mask threshold
    (applied by the paste, outside the graph) are free.
    ``num_threads``: the runtime's threads (default: torch's, so that it and PyTorch compare on
    equal terms).
    """

    #: The runtime's name, as ``demo.py --runtime`` spells it, and as errors name it.
    runtime = ""
    display_name = ""

    def __init__(self, path: str, cfg, num_threads: int = 0):
        self.path = os.path.abspath(path)
        if not os.path.isfile(self.path):
            raise DeployError(f"{self.path}: no such ONNX model file")
        inputs, outputs, metadata = self._load(num_threads or torch.get_num_threads())
        self._check(inputs, outputs, metadata, cfg)
        self.num_classes = cfg.MODEL.SGNET.NUM_CLASSES
        self.mask_threshold = cfg.MODEL.SGNET.MASK.THRESHOLD  # applied by the paste, outside the graph
        recorded = metadata.get(CLASS_NAMES_METADATA)
        # The class names it was exported with (None for a file exported without them).
        self.class_names = None if recorded is None else json.loads(recorded)
        # "float32"; "int8" or "float16" for a file of tools/export_model.py --quantize / --precision.
        self.precision = json.loads(metadata.get(PRECISION_METADATA, '{"precision": "float32"}'))["precision"]
        self.init_video_inference(
            tracker=OnlineTracker(cfg),
            track_label_rule=cfg.TEST.TRACK_LABEL_RULE,
            classes_per_track=cfg.TEST.CLASSES_PER_TRACK,
            nms_class_agnostic=cfg.MODEL.SGNET.NMS_CLASS_AGNOSTIC,
        )

    def _load(self, num_threads: int) -> Tuple[Tuple[str, ...], Tuple[str, ...], Dict[str, str]]:
        """Load :attr:`path` into the runtime; its input names, output names and metadata."""
        raise NotImplementedError

    def _run(self, feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
        """The graph's outputs (in :data:`OUTPUT_NAMES` order) for ``feeds``, as arrays the
        caller owns."""
        raise NotImplementedError

    def _check(self, inputs, outputs, metadata, cfg) -> None:
        if CONFIG_METADATA not in metadata:
            raise DeployError(
                f"{self.path}: not an SG-Net frame step exported by tools/export_model.py "
                f"(inputs {list(inputs)}, outputs {list(outputs)})"
            )
        if inputs != INPUT_NAMES or outputs != OUTPUT_NAMES:
            raise DeployError(
                f"{self.path}: exported by an older sgnet (inputs {list(inputs)}, outputs {list(outputs)}): export it again"
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
            outputs = self._run(feeds)
        except Exception as e:  # the runtimes' own error types, multi-line
            raise DeployError(f"{self.path}: {self.display_name} failed on a {tuple(image.shape)} frame ({_first_line(e)})") from e
        return FrameOutputs(*(torch.from_numpy(x) for x in outputs)).to_instances(output_size, self.mask_threshold)

    def __call__(self, batched_inputs: List[dict]) -> List[dict]:
        """As :class:`~sgnet.modeling.SGNet` in eval mode: per video dict (the test mapper's),
        its tracks (:meth:`inference_video`), so that detectron2's ``inference_on_dataset`` and
        the evaluator run on the exported model (``train_net.py --eval-only --onnx``)."""
        return [self.inference_video(video) for video in batched_inputs]


class ONNXRuntimeSGNet(ExportedSGNet):
    """:class:`ExportedSGNet` in ONNX Runtime's CPU provider. Its threads do not spin after a
    run, which would slow the PyTorch work (association) that follows in the same process."""

    runtime, display_name = "onnxruntime", "ONNX Runtime"

    def _load(self, num_threads):
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only: a bad file is reported below, in one line
        try:
            self.session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types for unreadable or invalid files
            raise DeployError(f"{self.path}: not a model {self.display_name} can load ({_first_line(e)})") from e
        inputs = tuple(x.name for x in self.session.get_inputs())
        outputs = tuple(x.name for x in self.session.get_outputs())
        return inputs, outputs, self.session.get_modelmeta().custom_metadata_map

    def _run(self, feeds):
        return self.session.run(None, feeds)


@functools.lru_cache(maxsize=None)
def _openvino_core():
    """The process's one OpenVINO Core. Kept for the process's life: a Core's destruction unloads
    the CPU plugin, whose threading library's fork handlers then point into unmapped code, and
    the process's next fork (a DataLoader worker, a subprocess) crashes with SIGSEGV."""
    return require("openvino").Core()


class OpenVINOSGNet(ExportedSGNet):
    """:class:`ExportedSGNet` in OpenVINO's CPU plugin, from the same ONNX file (OpenVINO reads
    ONNX itself: no conversion step). Computed in float32: on CPUs with bfloat16 units the
    plugin would otherwise compute in bfloat16, whose results are not PyTorch's."""

    runtime, display_name = "openvino", "OpenVINO"

    def _load(self, num_threads):
        core = _openvino_core()
        try:
            model = core.read_model(self.path)
            self.compiled = core.compile_model(
                model,
                "CPU",
                {"INFERENCE_NUM_THREADS": num_threads, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"},
            )
        except Exception as e:  # OpenVINO raises RuntimeError with its C++ trace for bad files
            raise DeployError(f"{self.path}: not a model {self.display_name} can load ({_first_line(e)})") from e
        self.request = self.compiled.create_infer_request()
        # The ONNX file's metadata, as OpenVINO keeps it.
        metadata = {
            key: model.get_rt_info(["framework", key]).astype(str)
            for key in (CONFIG_METADATA, CLASS_NAMES_METADATA, PRECISION_METADATA)
            if model.has_rt_info(["framework", key])
        }
        inputs = tuple(x.get_any_name() for x in model.inputs)
        outputs = tuple(x.get_any_name() for x in model.outputs)
        return inputs, outputs, metadata

    def _run(self, feeds):
        results = self.request.infer(feeds)  # copies of the outputs, not the request's buffers
        return [np.asarray(results[output]) for output in self.compiled.outputs]


#: The runtimes, by :attr:`ExportedSGNet.runtime` name.
RUNTIMES = {cls.runtime: cls for cls in (ONNXRuntimeSGNet, OpenVINOSGNet)}


def load_exported(path: str, cfg, runtime: Optional[str] = None, num_threads: int = 0) -> ExportedSGNet:
    """The exported frame step ``path`` in ``runtime`` (a :data:`RUNTIMES` name; None: ONNX Runtime)."""
    runtime = runtime or ONNXRuntimeSGNet.runtime
    if runtime not in RUNTIMES:
        raise DeployError(f"{path}: unknown runtime {runtime!r} (choose from {', '.join(RUNTIMES)})")
    return RUNTIMES[runtime](path, cfg, num_threads)
