#!/usr/bin/env python
"""Export SG-Net's frame step to ONNX (detectron2's tools/deploy/export_model.py conventions).

    python tools/export_model.py --config-file configs/toy/sgnet_R18_toy.yaml --format onnx \
        --output output/onnx MODEL.WEIGHTS output/toy/sgnet_R18_toy/model_final.pth

Writes ``OUTPUT/model.onnx``: one frame's whole step, from the resized uint8 frame (normalisation
and padding inside) to boxes at the original frame size (a graph input), scores, classes, class
scores, centre embeddings, and each detection's mask probabilities on its crop of the basis map,
with dynamic frame size and number of detections. The paste of the masks onto the frame and
association stay outside (``sgnet.deploy.ONNXRuntimeSGNet`` and ``OpenVINOSGNet`` run them as
PyTorch does).
The traced graph is simplified by onnxslim (checked equal in ONNX Runtime; ``--no-simplify``
writes it as traced) and checked with ``onnx.checker``; its node count, inputs and outputs are
printed.

``--quantize int8 --calibration VIDEO_OR_FRAMES_DIR [...] [--frames N]`` also writes
``OUTPUT/model_int8.onnx``: the file statically quantized to int8 (QDQ; :mod:`sgnet.deploy.quantize`),
its activation ranges calibrated on N frames spread over the given videos or frame folders (frames
like the ones it will see), and prints how its detections agree with float32's on those frames.

``--precision fp16`` also writes ``OUTPUT/model_fp16.onnx`` for GPU runtimes: the network's convolutions
and matmuls in float16, the rest float32 (:mod:`sgnet.deploy.half`), and prints how its detections
agree with float32's on the sample frame and a second, odd-sized one (on the CPU).

Exit status: 0, or 2 on bad input.
"""
import argparse
import os
import sys

import sgnet  # noqa: I001  (first: makes detectron2 importable here and registers SG-Net)

import cv2
from detectron2.utils.logger import setup_logger

from sgnet.config import load_config
from sgnet.deploy import DeployError, export_onnx
from sgnet.deploy.export import check_frames, default_sample_image
from sgnet.deploy.half import convert_fp16
from sgnet.deploy.precision import compare_on
from sgnet.deploy.quantize import DEFAULT_CALIBRATION_FRAMES, calibration_frames, frame_feeds, quantize_int8
from sgnet.deploy.errors import require
from sgnet.errors import run_main
from sgnet.fileio import refuse_overwriting_inputs
from sgnet.predictor import VideoPredictor


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--format", choices=["onnx"], default="onnx", help="export format (ONNX only)")
    parser.add_argument("--output", required=True, help="output folder: the model is written to OUTPUT/model.onnx")
    parser.add_argument(
        "--sample-image", help="an image to trace with (default: a random frame; the graph does not depend on it)"
    )
    parser.add_argument(
        "--no-simplify", action="store_true", help="write the graph as traced (about twice the nodes; OpenVINO runs both)"
    )
    parser.add_argument(
        "--quantize", choices=["int8"], help="also write OUTPUT/model_int8.onnx, calibrated on --calibration frames"
    )
    parser.add_argument(
        "--calibration", nargs="+", metavar="VIDEO_OR_FRAMES_DIR", help="videos or folders of frames to calibrate --quantize on"
    )
    parser.add_argument(
        "--frames", type=int, default=DEFAULT_CALIBRATION_FRAMES,
        help=f"calibration frames, spread over the sources (default {DEFAULT_CALIBRATION_FRAMES})",
    )  # fmt: skip
    parser.add_argument(
        "--precision", choices=["fp16"], help="also write OUTPUT/model_fp16.onnx (float16 network, for GPU runtimes)"
    )
    parser.add_argument("opts", default=[], nargs=argparse.REMAINDER, help="config overrides: KEY VALUE pairs")
    return parser


def export(argv=None) -> int:
    args = get_parser().parse_args(argv)
    logger = setup_logger(name="sgnet")
    if bool(args.quantize) != bool(args.calibration):
        raise DeployError("--quantize int8 needs --calibration VIDEO_OR_FRAMES_DIR (and --calibration needs --quantize)")
    if args.frames < 1:
        raise DeployError(f"--frames must be at least 1; got {args.frames}")
    require("onnx")  # before any work: says how to install it
    # Traced on the CPU: the deformable alignment's sampled formulation is the CPU one.
    cfg = load_config(args.config_file, list(args.opts) + ["MODEL.DEVICE", "cpu"])
    output = os.path.join(args.output, "model.onnx")
    # The derived files this run writes, and those of other precisions, by the flag that makes them.
    derived = {"--quantize int8": os.path.join(args.output, "model_int8.onnx"),
               "--precision fp16": os.path.join(args.output, "model_fp16.onnx")}  # fmt: skip
    written = {flag: path for flag, path in derived.items() if flag.split()[1] in (args.quantize, args.precision)}
    inputs = [args.config_file] + [p for p in (cfg.MODEL.WEIGHTS, args.sample_image) if p] + list(args.calibration or [])
    for path in (output, *written.values()):
        refuse_overwriting_inputs(path, inputs)
    if not cfg.MODEL.WEIGHTS:
        logger.warning("MODEL.WEIGHTS is empty: exporting randomly initialised weights")
    predictor = VideoPredictor(cfg)  # a missing or unreadable MODEL.WEIGHTS: one line naming it
    # Read before the export's minute of work: a bad calibration source fails first.
    feeds = frame_feeds(calibration_frames(args.calibration, args.frames), predictor.to_model_input) if args.quantize else None
    sample = None
    if args.sample_image:
        image = cv2.imread(args.sample_image, cv2.IMREAD_COLOR)
        if image is None:
            raise DeployError(f"{args.sample_image}: not an image file OpenCV can read")
        sample = predictor.to_model_input(image)
    summary = export_onnx(
        predictor.model, cfg, output, sample, class_names=predictor.class_names, simplify=not args.no_simplify
    )
    print(f"Exported {summary.path} ({summary.size_bytes / 2**20:.1f} MiB, {summary.seconds:.1f} s), checked by onnx.checker")
    simplified = " (as traced)" if args.no_simplify else f", simplified from {summary.traced_nodes} traced"
    print(f"graph: {summary.nodes} nodes{simplified}")
    print("inputs:\n  " + "\n  ".join(summary.inputs))
    print("outputs:\n  " + "\n  ".join(summary.outputs))
    if args.quantize:
        quantize(args, feeds, summary.path, written["--quantize int8"])
    if args.precision:
        half(summary.path, written["--precision fp16"], sample if sample is not None else default_sample_image(cfg))
    for flag, path in derived.items():
        if flag not in written and os.path.exists(path):
            logger.warning("%s is from an earlier export, not of this one's weights: run again with %s or remove it", path, flag)
    return 0


def quantize(args, feeds, float_path: str, path: str) -> None:
    """Calibrate on ``feeds`` (``--calibration``'s frames) and write the int8 file ``path``;
    print it, and how it agrees with the float32 file on those frames."""
    fewer = f" (--frames {args.frames}: the sources hold no more)" if len(feeds) < args.frames else ""
    print(f"calibrating on {len(feeds)} frames of {', '.join(args.calibration)}{fewer} ...", flush=True)
    # The sources' names, not their paths: the file is meant to be shared.
    description = ", ".join(os.path.basename(os.path.normpath(source)) for source in args.calibration)
    summary = quantize_int8(float_path, path, feeds, description=description)
    print(
        f"Quantized {summary.path} ({summary.size_bytes / 2**20:.1f} MiB, {summary.seconds:.1f} s): int8 "
        f"{summary.quantized_node_count} convs/matmuls, float32 {len(summary.float_node_names)} "
        "(the prediction convs and the alignment's offsets)"
    )
    print("int8 vs float32: " + str(compare_on(float_path, summary.path, feeds)))


def half(float_path: str, path: str, sample) -> None:
    """Write the float16 file ``path``; print it, and how it agrees with the float32 file on the
    sample frame and a second, odd-sized one."""
    summary = convert_fp16(float_path, path)
    print(
        f"Converted {summary.path} ({summary.size_bytes / 2**20:.1f} MiB, {summary.seconds:.1f} s): float16 "
        f"{summary.half_node_count} convs/matmuls, {summary.cast_count} casts to and from float32 work"
    )
    print("float16 vs float32: " + str(compare_on(float_path, summary.path, check_frames(sample))))


def main(argv=None) -> int:
    """The command line; returns the exit status (2: a user's mistake, reported in one line)."""
    return run_main("export_model.py", export, argv)


if __name__ == "__main__":
    sys.exit(main())
