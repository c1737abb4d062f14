"""Deployment: SG-Net's frame step exported to ONNX, and run in ONNX Runtime or OpenVINO.

Not imported by the core package: the applications (``tools/export_model.py``,
``demo/demo.py --onnx``, ``train_net.py --eval-only --onnx``, ``tools/benchmark.py``) and the
tests import it. Derived precisions: int8, :mod:`sgnet.deploy.quantize`
(``tools/export_model.py --quantize int8``); float16 for GPU runtimes, :mod:`sgnet.deploy.half`
(``--precision fp16``). It needs the ``deploy`` extra (``pip install sgnet[deploy]``: onnx,
onnxslim, onnxruntime, openvino).

In the graph: the frame's normalisation and padding, backbone, FPN, heads with their deformable
alignment (the sampled formulation: ``GridSample``), candidate selection, NMS, each detection's
mask probabilities on its crop of the basis map, and the centre embeddings. Outside it, in
Python: resizing the frame (the test mapper's), the masks' paste onto the frame
(:func:`~sgnet.modeling.mask_paste.paste_masks`) and association with the video's tracks
(:class:`~sgnet.tracking.OnlineTracker`), which :class:`ONNXRuntimeSGNet` and
:class:`OpenVINOSGNet` run exactly as :class:`~sgnet.modeling.SGNet` does.
"""
from .errors import DeployError
from .export import export_onnx
from .runtime import RUNTIMES, ExportedSGNet, ONNXRuntimeSGNet, OpenVINOSGNet, load_exported

__all__ = ["DeployError", "ExportedSGNet", "ONNXRuntimeSGNet", "OpenVINOSGNet", "RUNTIMES", "export_onnx", "load_exported"]
