"""float16 export of an exported frame step, for GPU runtimes (ONNX Runtime's CUDA and TensorRT
providers, TensorRT itself).

The network's convolutions and matmuls (:data:`HALF_OPS` in the network's modules,
:data:`~sgnet.deploy.precision.NETWORK_SCOPES`) compute in float16 on float16 weights, with
explicit Casts where their inputs come from float32 work and their outputs go to it; everything
else (normalisation layers, resizing, deformable sampling coordinates, candidate selection, NMS,
mask assembly) stays float32. That is the split ``torch.autocast`` makes when SG-Net trains or
runs with AMP, which the model is built for (sampling coordinates and box arithmetic in float32).
A converter that turns every float tensor to float16 (onnxconverter-common's) writes a file ONNX
Runtime refuses (its Casts from the uint8 frame keep float32 types) and would put coordinates in
float16, pixels off.
"""
import os
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from .errors import DeployError, require
from .precision import NETWORK_SCOPES, read_float_export, save_derived_export
from .runtime import _first_line
from ..fileio import atomic_path

#: The op types computed in float16 (autocast's float16 ops among the graph's).
HALF_OPS = ("Conv", "MatMul", "Gemm")
#: Ops that commute with rounding to float16 (clamping at 0, taking maxima): between two float16
#: ops they stay in float16 with no change to any value, instead of a Cast back and forth.
ROUNDING_EXACT_OPS = ("Relu", "MaxPool")


@dataclass
class HalfSummary:
    """A float16 file: its absolute path, size, the time conversion took, the nodes computing
    in float16, and the Casts added between float16 and float32 work."""

    path: str
    size_bytes: int
    seconds: float
    half_node_count: int
    cast_count: int


def half_graph(graph, onnx) -> HalfSummary:
    """Turn ``graph`` (an exported float32 frame step) to float16 in place, as the module says.
    Returns a summary with the counts (path, size and time left empty)."""
    numpy_helper, helper = onnx.numpy_helper, onnx.helper
    half_type, float_type = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT

    if any(attribute.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for node in graph.node
           for attribute in node.attribute):
        # Subgraphs (If, Loop) read outer tensors implicitly: their types are not followed here.
        raise ValueError("the graph has subgraphs (If / Loop), which the float16 conversion does not follow")

    def computes_half(node) -> bool:
        return node.op_type in HALF_OPS and bool(NETWORK_SCOPES.match(node.name))

    initializers = {tensor.name: tensor for tensor in graph.initializer}
    consumers = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    half = set()  # tensors that are float16 now (names kept)
    copies = {}  # (tensor, elem type) -> the name of its copy in that type
    nodes = []

    def converted(name: str, elem_type: int) -> str:
        """The tensor ``name`` in ``elem_type``: itself, a copy made earlier, an initializer
        converted in place (if only float16 work reads it) or copied, or a new Cast."""
        if (name in half) == (elem_type == half_type):
            return name
        if (name, elem_type) not in copies:
            suffix = "/float16" if elem_type == half_type else "/float32"
            if name in initializers and elem_type == half_type:
                values = numpy_helper.to_array(initializers[name]).astype("float16")
                if not np.isfinite(values).all():
                    raise ValueError(f"weights {name} exceed float16's range (65504)")
                if all(computes_half(reader) for reader in consumers[name]):
                    initializers[name].CopyFrom(numpy_helper.from_array(values, name))
                    half.add(name)
                    return name
                graph.initializer.append(numpy_helper.from_array(values, name + suffix))
            else:
                nodes.append(helper.make_node("Cast", [name], [name + suffix], name=name + suffix, to=elem_type))
            copies[name, elem_type] = name + suffix
        return copies[name, elem_type]

    half_nodes = 0
    for node in list(graph.node):
        if computes_half(node):
            half_nodes += 1
            node.input[:] = [converted(name, half_type) if name else name for name in node.input]
            half.update(node.output)
        elif node.op_type in ROUNDING_EXACT_OPS and node.input[0] in half and len(node.output) == 1:
            half.update(node.output)
        else:
            node.input[:] = [converted(name, float_type) if name else name for name in node.input]
        nodes.append(node)
    if any(output.name in half for output in graph.output):
        raise ValueError("a graph output would be float16: not an SG-Net frame step of this version")
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]  # the float32 types inferred at export; runtimes infer them again
    casts = sum(1 for node in nodes if node.op_type == "Cast" and node.name.endswith(("/float16", "/float32")))
    return HalfSummary(path="", size_bytes=0, seconds=0.0, half_node_count=half_nodes, cast_count=casts)


def convert_fp16(float_path: str, path: str) -> HalfSummary:
    """Write ``path``: the exported float32 file ``float_path`` with the network's convolutions
    and matmuls in float16 (:func:`half_graph`). Its metadata are the float file's, plus
    ``sgnet.precision`` ``{"precision": "float16"}``. Written under a temporary name and renamed
    when whole, after ONNX Runtime's CPU provider has loaded it."""
    onnx = require("onnx")
    start = time.perf_counter()
    model, metadata = read_float_export(float_path, path, "float16")
    try:
        summary = half_graph(model.graph, onnx)
    except ValueError as e:
        raise DeployError(f"{float_path}: {e}") from e
    if not summary.half_node_count:  # the exporter named its nodes otherwise
        raise DeployError(f"{float_path}: no convolution under {NETWORK_SCOPES.pattern} to compute in float16")
    try:
        with atomic_path(path, suffix=".onnx") as staging:
            save_derived_export(model, metadata, {"precision": "float16"}, staging)
    except OSError as e:
        raise DeployError(f"{path}: cannot write it ({e})") from e
    except Exception as e:  # onnx's and ONNX Runtime's own error types
        raise DeployError(f"{path}: the float16 graph of {float_path} does not load ({type(e).__name__}: {_first_line(e)})") from e
    summary.path, summary.size_bytes = os.path.abspath(path), os.path.getsize(path)
    summary.seconds = time.perf_counter() - start
    return summary
