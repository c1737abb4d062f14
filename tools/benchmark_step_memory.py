#!/usr/bin/env python
"""Peak memory of one SG-Net frame step, in a process of its own (for tools/benchmark.py).

    python tools/benchmark_step_memory.py --weights W.pth --detections 100 --output-size 1080 1920 \
        [--onnx FILE --runtime {onnxruntime,openvino}]

Loads the R50 benchmark model (random weights saved by the benchmark, NMS off, ``--detections``
kept) in eager PyTorch or the exported file in a runtime, then runs the first step on a 360 x 640
frame with its masks at ``--output-size``, and prints one JSON line: the resident set size before
the step (MiB), its peak during the step (the kernel's high-water mark, reset just before), and
the difference, the memory the step needs. The first step, as a user's first frame: it includes
what the runtimes allocate once and keep (ONNX Runtime's arena grows to the step's peak).
"""
import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import SGNET_CONFIG, random_frame, sgnet_cfg  # noqa: E402


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="the model's weights (eager PyTorch; the exported file holds its own)")
    parser.add_argument("--detections", type=int, required=True)
    parser.add_argument("--output-size", type=int, nargs=2, required=True, metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--onnx", help="the exported file (default: eager PyTorch)")
    parser.add_argument("--runtime", default="onnxruntime")
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--width", type=int, default=640)
    args = parser.parse_args(argv)

    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    import sgnet  # noqa: F401 (registers SG-Net)

    cfg = sgnet_cfg(SGNET_CONFIG, "cpu", args.detections)
    if not args.onnx and not args.weights:
        parser.error("--weights is needed for eager PyTorch (or --onnx FILE)")
    if args.onnx:
        from sgnet.deploy import load_exported

        model = load_exported(args.onnx, cfg, args.runtime)
    else:
        model = build_model(cfg).eval()
        DetectionCheckpointer(model).load(args.weights)
    frame = random_frame(args.height, args.width)
    with torch.inference_mode():
        before = rss_kib("VmRSS")
        # Writing 5 to clear_refs resets the high-water mark VmHWM to the current RSS.
        Path("/proc/self/clear_refs").write_text("5")
        instances = model.detect_frame(frame, tuple(args.output_size))
        peak = rss_kib("VmHWM")
    if len(instances) != args.detections or tuple(instances.pred_masks.shape[-2:]) != tuple(args.output_size):
        raise RuntimeError(f"{len(instances)} detections of masks {tuple(instances.pred_masks.shape)}, "
                           f"not {args.detections} at {tuple(args.output_size)}")
    print(json.dumps({"before_mib": before / 1024, "peak_mib": peak / 1024, "step_mib": (peak - before) / 1024}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
