#!/usr/bin/env python
"""SG-Net against detectron2's Mask R-CNN (and torchvision's FCOS), side by side in one process.

    python tools/benchmark.py [--quick] [--json] [--device cpu|cuda] [--amp] [--threads N]
                              [--report docs/benchmarks.md]

Peers are built from config in code with random weights (timing needs no download): detectron2's
Mask R-CNN R50-FPN (the COCO 1x architecture, 40 classes as YouTube-VIS), torchvision's FCOS
R50-FPN (detection only) and SG-Net R50-FPN (``configs/ytvis_2019/sgnet_R50_FPN_1x.yaml``). Same
input (360 x 640), device, dtype and thread count. Figures are medians over repeats after warm-up:

1. per-frame latency with N = 1, 10, 100 detections. SG-Net runs its whole VIS step (detect,
   masks, association against a tracker memory that already holds N tracks) with NMS off and N
   detections per frame. Mask R-CNN runs backbone, RPN and box head, then its mask head on the
   same N boxes (``forward_with_given_boxes``) and pastes the masks at the frame's resolution, as
   its inference does. SG-Net's time is broken down by stage.
2. streaming memory: peak RSS of ``demo/demo.py`` (toy config) on 100 and on 1000 frames, whole
   and anonymous (the ratio target is on the latter, see :func:`peak_rss_mib`).
3. training step (forward, backward, SGD step) on one clip pair at 360 x 640, SG-Net vs Mask R-CNN
   on the same two frames and objects.
4. the YouTube-VIS evaluator on 300 videos x 30 frames x 10 tracks.
5. (``--device cpu``) the same VIS step with its frame step exported to ONNX (``sgnet.deploy``)
   and run in ONNX Runtime's CPU provider and OpenVINO, interleaved with eager PyTorch, at each
   N, and at N = 10 the file quantized to int8 in both; export time and file size; ONNX
   Runtime's own operator profile in the report.

Mask R-CNN's RPN proposes its anchors (random deltas would collapse the proposals to a handful,
see :func:`build_mask_rcnn`), so its box head runs on 1000 proposals as after training.
Random weights would give SG-Net zero-size boxes (its distances start at relu(~0)) and no score
above the threshold. So the box regression bias is set to 3 strides per side (boxes 6 strides wide
at their level: 48 px on P3 to the whole frame on P7) and one class's bias to probability 0.5, so
every location is a candidate of one class, as near an object (the per-level top-k bounds them);
Mask R-CNN's mask head gets SG-Net's boxes.

``--json``: the last line of stdout is one JSON object (schema in :func:`summary`). ``--report``
writes the markdown report (tables, command, machine, profile, plot) next to a PNG plot.
"""
import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch

import sgnet  # noqa: F401  (registers SG-Net; detectron2 compatibility)
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from sgnet.config import load_config
from sgnet.data import YTVISPairDatasetMapper, generate_synthetic_ytvis, get_ytvis_dataset_dicts, register_ytvis_instances
from sgnet.data import write_synthetic_video
from sgnet.errors import InvalidInput, run_main
from sgnet.evaluation import evaluate_ytvis
from sgnet.modeling.online import STAGES
from sgnet.tracking import TrackMemory

REPO = Path(__file__).resolve().parents[1]
SGNET_CONFIG = REPO / "configs" / "ytvis_2019" / "sgnet_R50_FPN_1x.yaml"
TOY_CONFIG = REPO / "configs" / "toy" / "sgnet_R18_toy.yaml"
NUM_CLASSES = 40  # YouTube-VIS 2019
BOX_BIAS_STRIDES = 3.0
INSTANCE_COUNTS = (1, 10, 100)
STREAM_FRAMES = (100, 1000)
EVAL_SIZES = {"videos": 300, "frames": 30, "tracks": 10}
# Frames the benchmark's int8 file is calibrated on (random blobs, as the timed frame).
CALIBRATION_FRAMES = 8
# The output size the step's peak memory is measured at (tools/benchmark_step_memory.py), with the
# most instances of INSTANCE_COUNTS; and that peak (MiB) before the masks left the graph (sgnet
# 09db1de, which assembled every mask on the whole output frame; AMD EPYC, 2 cores, measured
# with this benchmark's model and helper), the target being a quarter of ONNX Runtime's.
STEP_MEMORY_OUTPUT = (1080, 1920)
WHOLE_FRAME_GRAPH_STEP_MIB = {"eager": 429, "onnxruntime": 1945, "openvino": 3153}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------- models


def mask_rcnn_cfg(device: str):
    """detectron2's COCO Mask R-CNN R50-FPN 1x (Base-RCNN-FPN.yaml + mask_rcnn_R_50_FPN_1x.yaml),
    written out as keys: detectron2 0.6 on PyPI ships without its model-zoo configs."""
    cfg = get_cfg()
    m = cfg.MODEL
    m.DEVICE, m.WEIGHTS, m.MASK_ON = device, "", True
    m.BACKBONE.NAME = "build_resnet_fpn_backbone"
    m.RESNETS.DEPTH = 50
    m.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    m.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    m.ANCHOR_GENERATOR.SIZES = [[32], [64], [128], [256], [512]]
    m.ANCHOR_GENERATOR.ASPECT_RATIOS = [[0.5, 1.0, 2.0]]
    m.RPN.IN_FEATURES = ["p2", "p3", "p4", "p5", "p6"]
    m.RPN.PRE_NMS_TOPK_TRAIN, m.RPN.PRE_NMS_TOPK_TEST = 2000, 1000
    m.RPN.POST_NMS_TOPK_TRAIN, m.RPN.POST_NMS_TOPK_TEST = 1000, 1000
    m.ROI_HEADS.NAME = "StandardROIHeads"
    m.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    m.ROI_HEADS.NUM_CLASSES = NUM_CLASSES
    m.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    m.ROI_BOX_HEAD.NUM_FC, m.ROI_BOX_HEAD.POOLER_RESOLUTION = 2, 7
    m.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
    m.ROI_MASK_HEAD.NUM_CONV, m.ROI_MASK_HEAD.POOLER_RESOLUTION = 4, 14
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 360, 640
    return cfg


def build_mask_rcnn(device: str):
    """Mask R-CNN with random weights whose RPN proposes its anchors (box deltas zeroed): random
    deltas blow every proposal up to the whole frame, NMS then leaves a handful, and the box head
    would do a fraction of its real work. So it runs on RPN.POST_NMS_TOPK_TEST (1000) proposals,
    as after training."""
    model = build_model(mask_rcnn_cfg(device))
    with torch.no_grad():
        model.proposal_generator.rpn_head.anchor_deltas.weight.zero_()
        model.proposal_generator.rpn_head.anchor_deltas.bias.zero_()
    return model


def sgnet_cfg(config_file: Path, device: str, num_detections: int = 100):
    """The config of :func:`build_sgnet`: random weights, NMS off, ``num_detections`` kept."""
    return load_config(
        str(config_file),
        ["MODEL.DEVICE", device, "MODEL.WEIGHTS", "", "MODEL.SGNET.NMS_THRESH_TEST", 1.0,
         "MODEL.SGNET.DETECTIONS_PER_IMAGE", num_detections],
    )


def build_sgnet(config_file: Path, device: str, num_detections: int = 100):
    """SG-Net with random weights made to look like a trained model's output (boxes of a
    realistic size; one class above the score threshold at every location, as near an object),
    NMS off and ``num_detections`` detections kept."""
    model = build_model(sgnet_cfg(config_file, device, num_detections))
    with torch.no_grad():
        model.head.box_pred.bias.fill_(BOX_BIAS_STRIDES)
        # Class 0 at probability 0.5 (score 0.25 with centerness 0.5), the others at the 0.01 prior.
        model.head.cls_score.bias[0] = 0.0
    return model


def build_fcos_torchvision(device: str):
    from torchvision.models.detection import fcos_resnet50_fpn

    # min/max size = the input's, so torchvision's transform does not rescale the frame.
    model = fcos_resnet50_fpn(weights=None, weights_backbone=None, num_classes=NUM_CLASSES, min_size=360, max_size=640)
    return model.to(device)


# ------------------------------------------------------------------------------------- timing


class Timer:
    """Median wall time of a callable, with CUDA synchronisation, under optional autocast."""

    def __init__(self, device: str, amp: bool, warmup: int, repeats: int):
        self.device, self.amp, self.warmup, self.repeats = device, amp, warmup, repeats

    def autocast(self):
        if not self.amp:
            return nullcontext()
        dtype = torch.float16 if self.device == "cuda" else torch.bfloat16
        return torch.autocast(self.device, dtype=dtype)

    def sync(self):
        if self.device == "cuda":
            torch.cuda.synchronize()

    def medians_ms(self, cases: dict) -> dict:
        """{key: median ms} of ``cases`` {key: (function, setup)}: ``function(setup())`` with
        ``setup`` untimed (a fresh argument for each call). Each round calls every case once, so
        that drifts in the machine's speed affect all cases alike (ratios between cases are what
        the targets are about); ``warmup`` rounds, then the medians of ``repeats`` rounds."""
        times = {key: [] for key in cases}
        for i in range(self.warmup + self.repeats):
            for key, (function, setup) in cases.items():
                argument = setup()
                self.sync()
                start = time.perf_counter()
                with self.autocast():
                    function(argument)
                self.sync()
                if i >= self.warmup:
                    times[key].append((time.perf_counter() - start) * 1000)
        return {key: statistics.median(values) for key, values in times.items()}

    def median_ms(self, function, setup=lambda: None) -> float:
        """Median ms of ``function(setup())``, see :meth:`medians_ms`."""
        return self.medians_ms({None: (function, setup)})[None]


class StageClock:
    """SG-Net's ``stage_timer``: the wall ms of each of its stages (:data:`STAGES`), summed over a
    step, one dict per step (:meth:`start_step`), with the timer's CUDA synchronisation."""

    def __init__(self, timer: Timer):
        self.timer = timer
        self.steps = []

    def start_step(self):
        self.steps.append(dict.fromkeys(STAGES, 0.0))

    @contextmanager
    def __call__(self, stage: str):
        self.timer.sync()
        start = time.perf_counter()
        yield
        self.timer.sync()
        self.steps[-1][stage] += (time.perf_counter() - start) * 1000


def random_frame(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """(3, H, W) uint8: smooth random blobs, so the frame is not white noise."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(3, height // 16 + 1, width // 16 + 1)).astype(np.float32)
    frame = torch.nn.functional.interpolate(torch.from_numpy(small)[None], size=(height, width), mode="bilinear")
    return frame[0].round().clamp(0, 255).to(torch.uint8)


def sgnet_latencies(model, frame, counts, timer: Timer):
    """SG-Net's full VIS step with N detections for each N of ``counts``, against a tracker
    memory that already holds the N tracks of a previous frame: ({N: median ms}, {N: {stage:
    median ms}}, {N: the (N, 4) boxes}). The totals are timed interleaved (:meth:`Timer.medians_ms`);
    the stage breakdown, N by N, from SG-Net's ``stage_timer`` (:class:`StageClock`)."""
    size = tuple(frame.shape[-2:])
    frame = frame.to(model.device)
    memories, boxes, breakdowns = {}, {}, {}

    def step(n):
        def run(memory):
            model.max_detections_per_image = n
            model.inference_frame(frame, size, memory)

        return run, lambda: copy.deepcopy(memories[n])

    with torch.inference_mode():
        for n in counts:
            model.max_detections_per_image = n
            memories[n] = TrackMemory()
            with timer.autocast():
                instances = model.inference_frame(frame, size, memories[n])  # the tracks of a previous frame
            if len(instances) != n:
                raise RuntimeError(f"SG-Net gave {len(instances)} detections, not {n}")
            boxes[n] = instances.pred_boxes.tensor
        totals = timer.medians_ms({n: step(n) for n in counts})
        for n in counts:
            run, setup = step(n)
            clock = model.stage_timer = StageClock(timer)
            try:
                timer.median_ms(run, lambda: clock.start_step() or setup())  # a step begins untimed
            finally:
                del model.stage_timer  # back to SG-Net's no-op default
            measured = clock.steps[timer.warmup:]
            breakdowns[n] = {stage: statistics.median(times[stage] for times in measured) for stage in STAGES}
            breakdowns[n]["other"] = max(totals[n] - sum(breakdowns[n].values()), 0.0)
    return totals, breakdowns, boxes


def mask_rcnn_latency(model, frame, boxes: torch.Tensor, timer: Timer):
    """(median ms, number of RPN proposals): Mask R-CNN's inference with its mask head run on the
    given (N, 4) boxes. The proposal count shows that the box head does its full work (1000)."""
    inputs = [{"image": frame.to(model.device), "height": frame.shape[-2], "width": frame.shape[-1]}]
    given = Instances(tuple(frame.shape[-2:]), pred_boxes=Boxes(boxes.to(model.device)),
                      scores=torch.ones(len(boxes), device=model.device),
                      pred_classes=torch.zeros(len(boxes), dtype=torch.long, device=model.device))

    def step(_):
        images = model.preprocess_image(inputs)
        features = model.backbone(images.tensor)
        proposals, _ = model.proposal_generator(images, features)
        num_proposals.append(len(proposals[0]))
        model.roi_heads._forward_box(features, proposals)  # the detections are replaced by ``given``
        detections = model.roi_heads.forward_with_given_boxes(features, [given])
        return model._postprocess(detections, inputs, images.image_sizes)

    num_proposals = []
    with torch.inference_mode():
        return timer.median_ms(step), num_proposals[-1]


def latency_section(args, timer: Timer) -> dict:
    frame = random_frame(args.height, args.width)
    sgnet_model = build_sgnet(SGNET_CONFIG, args.device).eval()
    mask_rcnn = build_mask_rcnn(args.device).eval()
    fcos = build_fcos_torchvision(args.device).eval()
    result = {"sgnet": {}, "mask_rcnn": {}, "sgnet_breakdown": {}, "mean_box_area_fraction": {}}
    totals, breakdowns, boxes = sgnet_latencies(sgnet_model, frame, INSTANCE_COUNTS, timer)
    for n in INSTANCE_COUNTS:
        result["sgnet"][str(n)], result["sgnet_breakdown"][str(n)] = totals[n], breakdowns[n]
        area = ((boxes[n][:, 2] - boxes[n][:, 0]) * (boxes[n][:, 3] - boxes[n][:, 1])).mean() / (args.height * args.width)
        result["mean_box_area_fraction"][str(n)] = float(area)
        result["mask_rcnn"][str(n)], result["mask_rcnn_proposals"] = mask_rcnn_latency(mask_rcnn, frame, boxes[n], timer)
        log(f"latency N={n}: SG-Net {totals[n]:.0f} ms, Mask R-CNN {result['mask_rcnn'][str(n)]:.0f} ms")
    fcos_input = [frame.to(args.device).float() / 255]
    with torch.inference_mode():
        result["fcos_torchvision"] = timer.median_ms(lambda _: fcos(fcos_input))
    log(f"latency: torchvision FCOS {result['fcos_torchvision']:.0f} ms")
    if args.profile_rows:
        result["profile"] = sgnet_profile(sgnet_model, frame.to(args.device), timer, args.profile_rows)
    if args.device == "cpu":
        result["onnx"] = onnx_section(args, sgnet_model, frame, timer)
    else:
        log("ONNX Runtime: skipped (its figures are for the CPU provider, --device cpu)")
    return result


def sgnet_profile(model, frame, timer: Timer, rows: int) -> str:
    """torch.profiler's top operators of SG-Net's VIS step at 10 detections."""
    from torch.profiler import ProfilerActivity, profile

    model.max_detections_per_image = 10
    size = tuple(frame.shape[-2:])
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if timer.device == "cuda" else [])
    with torch.inference_mode():
        memory = TrackMemory()
        model.inference_frame(frame, size, memory)
        with profile(activities=activities) as profiler:
            for _ in range(timer.repeats):
                model.inference_frame(frame, size, copy.deepcopy(memory))
    sort_by = "self_cuda_time_total" if timer.device == "cuda" else "self_cpu_time_total"
    return profiler.key_averages().table(sort_by=sort_by, row_limit=rows)


# ---------------------------------------------------------------------------- ONNX Runtime


# Mask pixels whose eager probability lies this close to the threshold may go either way in
# another runtime (random weights put many there).
MASK_MARGIN = 1e-3


def deployed_difference(model, frame, deployed) -> dict:
    """How far a runtime's detections of ``frame`` are from eager PyTorch's, matched by box
    IoU and score: the largest box coordinate difference (px), and the mask pixels that differ other than
    those within :data:`MASK_MARGIN` of the mask threshold."""
    from detectron2.structures import pairwise_iou

    size = tuple(frame.shape[-2:])
    threshold = model.mask_threshold
    eager = model.detect_frame(frame, size)
    try:
        # Pixels above the threshold - margin but not above + margin: the ones near it.
        bounds = []
        for shifted in (threshold - MASK_MARGIN, threshold + MASK_MARGIN):
            model.mask_threshold = shifted
            bounds.append(model.detect_frame(frame, size).pred_masks)
    finally:
        model.mask_threshold = threshold
    got = deployed.detect_frame(frame, size)
    if len(eager) != len(got):
        raise RuntimeError(f"{deployed.runtime}: {len(got)} detections where eager PyTorch gave {len(eager)}")
    # Boxes clipped to the frame repeat: among the boxes of IoU > 0.99, the closest score.
    same_box = pairwise_iou(eager.pred_boxes, got.pred_boxes) > 0.99
    score_gap = (eager.scores[:, None] - got.scores[None]).abs()
    got = got[torch.where(same_box, score_gap, torch.inf).argmin(dim=1)]
    differ = got.pred_masks != eager.pred_masks
    return {
        "max_box_px": float((got.pred_boxes.tensor - eager.pred_boxes.tensor).abs().max()),
        "mask_pixels_differ": int((differ & ~(bounds[0] & ~bounds[1])).sum()),
        "mask_pixels_near_threshold_differ": int((differ & bounds[0] & ~bounds[1]).sum()),
        "mask_pixels": int(eager.pred_masks.numel()),
    }


def onnx_section(args, model, frame, timer: Timer) -> dict:
    """SG-Net's VIS step with its frame step exported (``sgnet.deploy``, one file per N: the
    detection count is part of the graph) and run in each runtime (ONNX Runtime's CPU provider,
    OpenVINO's CPU plugin) with torch's thread count, against the same step in eager PyTorch;
    all time the same association. They run interleaved (:meth:`Timer.medians_ms`; ONNX Runtime's
    threads do not spin between runs; OpenVINO has no such setting, so its threads may slow the
    case that follows it in a round). At the reported N (10, or the last), the file quantized to
    int8 (:mod:`sgnet.deploy.quantize`, calibrated on :data:`CALIBRATION_FRAMES` other frames)
    runs in both runtimes in the same rounds. Also the export and quantization times, file sizes
    and node counts, each float32 runtime's difference from eager PyTorch at that N, and ONNX
    Runtime's top operators at that N when a report is written."""
    import onnxruntime
    import openvino

    from sgnet.deploy import RUNTIMES, export_onnx, load_exported
    from sgnet.deploy.quantize import frame_feeds, quantize_int8

    size = tuple(frame.shape[-2:])
    versions = {"onnxruntime": onnxruntime.__version__, "openvino": openvino.__version__.split("-")[0]}
    result = {"eager_latency_ms": {}, "versions": versions, "difference": {}}
    result.update({f"{runtime}{precision}_latency_ms": {} for runtime in RUNTIMES for precision in ("", "_int8")})
    with tempfile.TemporaryDirectory() as tmp:
        for n in INSTANCE_COUNTS:
            model.max_detections_per_image = n
            cfg = sgnet_cfg(SGNET_CONFIG, "cpu", n)
            exported = export_onnx(model, cfg, str(Path(tmp) / str(n) / "model.onnx"), sample_image=frame)
            deployed = {runtime: load_exported(exported.path, cfg, runtime) for runtime in RUNTIMES}
            reported = n == 10 or n == INSTANCE_COUNTS[-1] and "nodes" not in result
            if reported:
                calibration = [random_frame(*size, seed) for seed in range(1, CALIBRATION_FRAMES + 1)]
                quantized = quantize_int8(exported.path, str(Path(tmp) / str(n) / "model_int8.onnx"),
                                          frame_feeds(calibration, lambda image: image), "random frames")
                result.update(export_seconds=exported.seconds, file_mib=exported.size_bytes / 2**20,
                              nodes=exported.nodes, traced_nodes=exported.traced_nodes, int8_instances=n,
                              int8_seconds=quantized.seconds, int8_file_mib=quantized.size_bytes / 2**20)
            memory = TrackMemory()
            with torch.inference_mode():
                for runtime, frame_model in deployed.items():
                    difference = deployed_difference(model, frame, frame_model)  # raises on another count
                    if reported:
                        result["difference"][runtime] = {"instances": n, **difference}
                if reported:
                    deployed.update({f"{runtime}_int8": load_exported(quantized.path, cfg, runtime) for runtime in RUNTIMES})
                model.inference_frame(frame, size, memory)  # the tracks of a previous frame
                medians = timer.medians_ms(
                    {
                        backend: (lambda m, frame_model=frame_model: frame_model.inference_frame(frame, size, m),
                                  lambda: copy.deepcopy(memory))
                        for backend, frame_model in (("eager", model), *deployed.items())
                    }
                )
            result["eager_latency_ms"][str(n)] = medians["eager"]
            for backend in deployed:
                result[f"{backend}_latency_ms"][str(n)] = medians[backend]
            log(f"N={n}: eager {medians['eager']:.0f} ms, "
                + ", ".join(f"{backend} {medians[backend]:.0f} ms" for backend in deployed)
                + f" (export {exported.seconds:.1f} s, {exported.size_bytes / 2**20:.0f} MiB, {exported.nodes} nodes)")
            if args.profile_rows and reported:
                result["profile"] = onnx_profile(exported.path, frame, size, timer.repeats, args.profile_rows)
            if n == INSTANCE_COUNTS[-1]:
                result["step_memory_mib"] = step_memory_mib(model, exported.path, n, size, Path(tmp))
    return result


def step_memory_mib(model, onnx_path: str, detections: int, size, workdir: Path) -> dict:
    """Peak memory (MiB) of the first frame step at ``detections`` with masks at
    :data:`STEP_MEMORY_OUTPUT`, in eager PyTorch and each runtime, each in a fresh process
    (tools/benchmark_step_memory.py: the RSS high-water mark during the step less the RSS before)."""
    weights = workdir / "step_memory.pth"
    torch.save({"model": model.state_dict()}, weights)
    result = {}
    for backend in ("eager", "onnxruntime", "openvino"):
        command = [sys.executable, str(REPO / "tools" / "benchmark_step_memory.py"),
                   "--detections", str(detections), "--output-size", *map(str, STEP_MEMORY_OUTPUT),
                   "--height", str(size[0]), "--width", str(size[1])]
        command += ["--weights", str(weights)] if backend == "eager" else ["--onnx", onnx_path, "--runtime", backend]
        finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        if finished.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{finished.stderr[-2000:]}")
        result[backend] = json.loads(finished.stdout.strip().splitlines()[-1])["step_mib"]
    log(f"step memory at {detections} detections, masks at {STEP_MEMORY_OUTPUT[0]} x {STEP_MEMORY_OUTPUT[1]}: "
        + ", ".join(f"{backend} {mib:.0f} MiB" for backend, mib in result.items()))
    return result


def onnx_profile(path: str, frame, size, repeats: int, rows: int) -> str:
    """ONNX Runtime's own profile of the frame step: total ms per operator type, top ``rows``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(path).with_name("profile"))
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feeds = {"image": frame.numpy(), "output_size": np.asarray(size, dtype=np.int64)}
    for _ in range(repeats):
        session.run(None, feeds)
    with open(session.end_profiling()) as f:
        events = json.load(f)
    totals = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"]["op_name"]
            totals[op] = totals.get(op, 0.0) + event["dur"] / 1000 / repeats
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:rows]
    everything = sum(totals.values())
    return "\n".join(f"{op:<24} {ms:8.1f} ms  {ms / everything:6.1%}" for op, ms in ranked)


# ------------------------------------------------------------------------------ streaming memory


def peak_rss_mib(command: list, poll_seconds: float = 0.05) -> dict:
    """Run ``command``; its peak resident set size in MiB, read from /proc while it runs:

    - ``"total"``: ``VmHWM``, the kernel's high-water mark of the process's RSS. Not rusage's
      ru_maxrss, which also counts this (large) parent process's RSS inherited across fork + exec.
    - ``"anonymous"``: the largest ``RssAnon`` seen at the polls (sampled: a peak shorter than
      ``poll_seconds`` can be missed), the process's own (heap, tensors) memory.
      The total also counts shared-library pages mapped in, which vary by tens of MiB between
      identical runs with the page cache (the kernel maps cached neighbours of a faulted page):
      that noise is as large as the growth the streaming target is about.

    Read every ``poll_seconds``: growth in a child's last moments would be missed (the demo's
    memory is flat after start-up)."""
    peak_kib = {"VmHWM": 0, "RssAnon": 0}
    # stderr goes to a file, not a pipe: a child writing more than the pipe holds would block.
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr)
        status_file = f"/proc/{process.pid}/status"
        while True:
            finished = process.poll() is not None
            try:
                with open(status_file) as f:
                    for line in f:
                        key, _, value = line.partition(":")
                        if key in peak_kib:
                            peak_kib[key] = max(peak_kib[key], int(value.split()[0]))
            except (FileNotFoundError, ProcessLookupError):
                pass
            if finished:
                break
            time.sleep(poll_seconds)
        if process.returncode != 0:
            stderr.seek(0)
            message = stderr.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(command)} failed (exit status {process.returncode}):\n{message}")
    return {"total": peak_kib["VmHWM"] / 1024, "anonymous": peak_kib["RssAnon"] / 1024}


def memory_section(args, workdir: Path) -> dict:
    """Peak RSS of the demo (read, infer, track, draw, write) on 100 and 1000 frames: a toy SG-Net
    with random weights, boxes of a realistic size, 5 tracked detections per frame. Frames are the
    synthetic dataset's 192 x 320, or 96 x 160 with ``--quick`` (drawing is most of the demo's time).
    The allocator's settling over the first few hundred frames grows with the frame size, so the
    quick run's ratio is the lower one (1.02 against 1.04 on 2 cores)."""
    weights = workdir / "toy_random.pth"
    model = build_sgnet(TOY_CONFIG, "cpu", num_detections=5)
    torch.save({"model": model.state_dict()}, weights)
    height, width = (96, 160) if args.quick else (192, 320)
    result = {}
    for frames in STREAM_FRAMES:
        video = write_synthetic_video(
            str(workdir / f"stream_{frames}.mp4"), num_frames=frames, height=height, width=width, seed=frames
        )
        command = [sys.executable, "demo/demo.py", "--config-file", str(TOY_CONFIG), "--video-input", video,
                   "--output", str(workdir / f"stream_{frames}_out.mp4"), "--confidence-threshold", "0",
                   "--opts", "MODEL.WEIGHTS", str(weights), "MODEL.DEVICE", args.device,
                   "MODEL.SGNET.DETECTIONS_PER_IMAGE", "5", "INPUT.MIN_SIZE_TEST", height, "INPUT.MAX_SIZE_TEST", width]
        command = [str(part) for part in command]
        start = time.perf_counter()
        result[str(frames)] = peak = peak_rss_mib(command)
        log(f"streaming: {frames} frames, peak RSS {peak['total']:.0f} MiB, anonymous {peak['anonymous']:.0f} MiB "
            f"({time.perf_counter() - start:.0f} s)")
    return result


# --------------------------------------------------------------------------------- training step


def training_pair(workdir: Path, height: int, width: int) -> dict:
    """One clip pair of a synthetic video at ``height`` x ``width``, through SG-Net's mapper."""
    paths = generate_synthetic_ytvis(str(workdir / "train_pair"), num_train_videos=1, num_val_videos=0,
                                     num_frames=2, height=height, width=width, seed=3)
    name = "benchmark_train_pair"
    if name not in DatasetCatalog.list():
        register_ytvis_instances(name, {}, paths["train_json"], paths["train_root"])
    cfg = load_config(str(SGNET_CONFIG), ["INPUT.MIN_SIZE_TRAIN", (height,), "INPUT.MIN_SIZE_TRAIN_SAMPLING", "choice",
                                          "INPUT.MAX_SIZE_TRAIN", width, "INPUT.RANDOM_FLIP", "none",
                                          "DATASETS.TRAIN", (name,)])
    (video,) = get_ytvis_dataset_dicts((name,))
    return YTVISPairDatasetMapper(cfg, is_train=True)(video)


def train_step_ms(model, batched_inputs, timer: Timer) -> float:
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.9)

    def step(_):
        losses = model(batched_inputs)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()

    with EventStorage():  # both models log training statistics
        return timer.median_ms(step)


def train_section(args, timer: Timer, workdir: Path) -> dict:
    pair = training_pair(workdir, args.height, args.width)
    sgnet_ms = train_step_ms(build_sgnet(SGNET_CONFIG, args.device), [pair], timer)
    log(f"training step: SG-Net {sgnet_ms:.0f} ms")
    frames = [{"image": image, "instances": instances} for image, instances in zip(pair["image"], pair["instances"])]
    mask_rcnn_ms = train_step_ms(build_mask_rcnn(args.device), frames, timer)
    log(f"training step: Mask R-CNN {mask_rcnn_ms:.0f} ms")
    return {"sgnet": sgnet_ms, "mask_rcnn": mask_rcnn_ms}


# ------------------------------------------------------------------------------------ evaluation


def eval_section(workdir: Path) -> float:
    sys.path.insert(0, str(Path(__file__).parent))
    from benchmark_eval import make_files

    sizes = argparse.Namespace(**EVAL_SIZES, height=360, width=640)
    gt_path, results_path = make_files(str(workdir), sizes, np.random.default_rng(0))
    start = time.perf_counter()
    evaluate_ytvis(gt_path, results_path)
    seconds = time.perf_counter() - start
    log("evaluation of {videos} videos x {frames} frames x {tracks} tracks: ".format(**EVAL_SIZES) + f"{seconds:.1f} s")
    return seconds


# --------------------------------------------------------------------------------------- report


def summary(args, latency, memory, train, eval_seconds) -> dict:
    """The JSON object of ``--json`` (times in ms, ratios SG-Net / Mask R-CNN)."""
    ratios = {n: latency["sgnet"][n] / latency["mask_rcnn"][n] for n in latency["sgnet"]}
    short, long = (str(frames) for frames in STREAM_FRAMES)
    return {
        "device": device_name(args.device),
        "threads": torch.get_num_threads(),
        "amp": args.amp,
        "input": [args.height, args.width],
        "latency_ms": {k: latency[k] for k in ("sgnet", "mask_rcnn", "fcos_torchvision")},
        "latency_ratio": ratios,
        "sgnet_100_over_1": latency["sgnet"][str(INSTANCE_COUNTS[-1])] / latency["sgnet"][str(INSTANCE_COUNTS[0])],
        "sgnet_breakdown_ms": latency["sgnet_breakdown"],
        "mean_box_area_fraction": latency["mean_box_area_fraction"],
        "mask_rcnn_proposals": latency["mask_rcnn_proposals"],
        # The target ratio is of the anonymous peaks (see peak_rss_mib); the total's is beside it.
        "peak_rss_mib": {n: peak["total"] for n, peak in memory.items()},
        "peak_anonymous_rss_mib": {n: peak["anonymous"] for n, peak in memory.items()},
        "rss_1000_over_100": memory[long]["anonymous"] / memory[short]["anonymous"],
        "total_rss_1000_over_100": memory[long]["total"] / memory[short]["total"],
        # The exported step in ONNX Runtime and OpenVINO (CPU) against eager PyTorch in the same
        # rounds; absent on CUDA.
        **(deploy_summary(latency["onnx"]) if "onnx" in latency else {}),
        "train_step_ms": train,
        "train_step_ratio": train["sgnet"] / train["mask_rcnn"],
        "eval_seconds": eval_seconds,
    }


def deploy_summary(deploy: dict) -> dict:
    """The ``--json`` keys of :func:`onnx_section`: ``onnx_*`` (ONNX Runtime), ``openvino_*``."""
    eager = deploy["eager_latency_ms"]
    result = {"onnx_eager_latency_ms": eager}
    for runtime, prefix in (("onnxruntime", "onnx"), ("openvino", "openvino")):
        latency, int8 = deploy[f"{runtime}_latency_ms"], deploy[f"{runtime}_int8_latency_ms"]
        result.update({
            f"{prefix}_latency_ms": latency,
            f"{prefix}_over_eager": {n: latency[n] / eager[n] for n in latency},
            f"{prefix}_int8_latency_ms": int8,
            f"{prefix}_int8_over_eager": {n: int8[n] / eager[n] for n in int8},
            f"{prefix}_runtime_version": deploy["versions"][runtime],
            f"{prefix}_difference": deploy["difference"][runtime],
        })  # fmt: skip
    keys = ("export_seconds", "file_mib", "nodes", "traced_nodes", "int8_instances", "int8_seconds", "int8_file_mib")
    result.update({f"onnx_{key}": deploy[key] for key in keys})
    first, last = (str(n) for n in (INSTANCE_COUNTS[0], INSTANCE_COUNTS[-1]))
    result["onnx_100_over_1"] = result["onnx_latency_ms"][last] / result["onnx_latency_ms"][first]
    result["step_memory_mib"] = deploy["step_memory_mib"]
    result["step_memory_output"] = list(STEP_MEMORY_OUTPUT)
    return result


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    model = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        model = names[0] if names else model
    return f"{model}, {os.cpu_count()} cores"


def target_checks(result: dict, device: str) -> list:
    """(figure, measured, target, met) for each of the benchmark issue's targets."""
    ratio = result["latency_ratio"]
    checks = [("SG-Net / Mask R-CNN latency, 10 instances", ratio.get("10"), 0.67 if device == "cuda" else 0.85)]
    if device == "cpu":
        checks += [
            ("SG-Net / Mask R-CNN latency, 100 instances", ratio.get("100"), 0.50),
            ("SG-Net latency, 100 / 1 instances", result["sgnet_100_over_1"], 1.10),
        ]
    if "onnx_over_eager" in result:
        checks += [
            ("ONNX Runtime / eager PyTorch SG-Net step, 10 instances", result["onnx_over_eager"].get("10"), 0.75),
            ("OpenVINO int8 / eager PyTorch SG-Net step, 10 instances", result["openvino_int8_over_eager"].get("10"), 0.45),
            ("ONNX Runtime SG-Net step, 100 / 1 instances", result["onnx_100_over_1"], 1.10),
            (f"ONNX Runtime step's peak memory, {INSTANCE_COUNTS[-1]} detections at {STEP_MEMORY_OUTPUT[0]}p (MiB)",
             result["step_memory_mib"]["onnxruntime"], WHOLE_FRAME_GRAPH_STEP_MIB["onnxruntime"] / 4),
        ]
    checks += [
        ("demo peak anonymous RSS, 1000 / 100 frames", result["rss_1000_over_100"], 1.05),
        ("training step, SG-Net / Mask R-CNN", result["train_step_ratio"], 1.0),
        ("evaluation of 300 x 30 x 10 (s)", result["eval_seconds"], 60.0),
    ]
    # (A run with other instance counts, as the tests make, has no 10 / 100 figures to check.)
    return [(name, value, target, value <= target) for name, value, target in checks if value is not None]


def onnx_report_lines(result: dict, counts, profile: str) -> list:
    """The report's ONNX Runtime section (none on CUDA)."""
    if "onnx_latency_ms" not in result:
        return []
    eager_ms = result["onnx_eager_latency_ms"]
    ort_ms, ort_ratio = result["onnx_latency_ms"], result["onnx_over_eager"]
    ov_ms, ov_ratio = result["openvino_latency_ms"], result["openvino_over_eager"]
    differences = [
        f"{name}: boxes within {result[f'{prefix}_difference']['max_box_px']:.2g} px of eager PyTorch's, "
        f"{result[f'{prefix}_difference']['mask_pixels_differ']} of {result[f'{prefix}_difference']['mask_pixels']} "
        f"mask pixels differ (and {result[f'{prefix}_difference']['mask_pixels_near_threshold_differ']} within "
        f"{MASK_MARGIN:g} of the threshold)"
        for name, prefix in (("ONNX Runtime", "onnx"), ("OpenVINO", "openvino"))
    ]
    return [
        "## ONNX Runtime and OpenVINO (CPU)",
        "",
        "SG-Net's frame step exported by `sgnet.deploy` (`tools/export_model.py`) and run in ONNX Runtime",
        f"{result['onnx_runtime_version']} (CPU provider) and OpenVINO {result['openvino_runtime_version']} (CPU plugin, "
        "float32) with the same threads,",
        "against eager PyTorch in the same rounds; all steps include the same association (PyTorch)",
        "against N existing tracks.",
        "",
        "| N instances | eager PyTorch (ms) | ONNX Runtime (ms) | OpenVINO (ms) | ONNX Runtime / eager | OpenVINO / eager |",
        "|---|---|---|---|---|---|",
        *(f"| {n} | {eager_ms[str(n)]:.0f} | {ort_ms[str(n)]:.0f} | {ov_ms[str(n)]:.0f} | {ort_ratio[str(n)]:.2f} "
          f"| {ov_ratio[str(n)]:.2f} |" for n in counts),
        "",
        f"Export: {result['onnx_export_seconds']:.1f} s, file {result['onnx_file_mib']:.0f} MiB, "
        f"{result['onnx_nodes']} nodes (simplified from {result['onnx_traced_nodes']} traced). At "
        f"{result['onnx_difference']['instances']} instances, " + "; ".join(differences) + ".",
        "",
        f"int8 (`tools/export_model.py --quantize int8`: static QDQ, calibrated on {CALIBRATION_FRAMES} other random "
        f"frames, {result['onnx_int8_seconds']:.0f} s, file {result['onnx_int8_file_mib']:.0f} MiB) at "
        f"{result['onnx_int8_instances']} instances, in the same rounds:",
        "",
        "| N instances | ONNX Runtime int8 (ms) | OpenVINO int8 (ms) | ONNX Runtime int8 / eager | OpenVINO int8 / eager |",
        "|---|---|---|---|---|",
        *(f"| {n} | {result['onnx_int8_latency_ms'][n]:.0f} | {result['openvino_int8_latency_ms'][n]:.0f} "
          f"| {result['onnx_int8_over_eager'][n]:.2f} | {result['openvino_int8_over_eager'][n]:.2f} |"
          for n in result["onnx_int8_latency_ms"]),
        "",
        "Random weights say nothing of int8's accuracy: its cost in video AP, measured on the trained toy model, is in",
        "the README's Deploy section.",
        "",
        f"Peak memory of one step at {counts[-1]} detections with masks at {result['step_memory_output'][0]} x "
        f"{result['step_memory_output'][1]} (each in a fresh process, `tools/benchmark_step_memory.py`: RSS high-water "
        "mark during the step less the RSS before; the (N, H, W) bool masks themselves are "
        f"{counts[-1] * result['step_memory_output'][0] * result['step_memory_output'][1] / 2**20:.0f} MiB), "
        "against the graph that assembled every mask on the whole frame (sgnet 09db1de, AMD EPYC):",
        "",
        "| | eager PyTorch | ONNX Runtime | OpenVINO |",
        "|---|---|---|---|",
        "| this run (MiB) | " + " | ".join(f"{result['step_memory_mib'][b]:.0f}" for b in ("eager", "onnxruntime", "openvino")) + " |",
        "| whole-frame graph (MiB) | " + " | ".join(f"{WHOLE_FRAME_GRAPH_STEP_MIB[b]}" for b in ("eager", "onnxruntime", "openvino")) + " |",
        "",
        "ONNX Runtime's own profile of the frame step (operator types, ms per frame):",
        "",
        "```",
        profile.rstrip(),
        "```",
        "",
    ]


def write_report(path: Path, result: dict, profile: str, command: str, device: str, onnx_profile_text: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = [int(n) for n in result["latency_ms"]["sgnet"]]
    plot_path = path.with_name(path.stem + "_latency.png")
    figure, axes = plt.subplots(figsize=(5, 3.5))
    for key, label in (("sgnet", "SG-Net R50-FPN (full VIS step)"), ("mask_rcnn", "Mask R-CNN R50-FPN")):
        axes.plot(counts, [result["latency_ms"][key][str(n)] for n in counts], marker="o", label=label)
    axes.set_xscale("log")
    axes.set_xlabel("instances per frame")
    axes.set_ylabel("latency per frame (ms)")
    axes.set_ylim(bottom=0)
    axes.set_title(f"{result['input'][0]} x {result['input'][1]}, {result['device']}", fontsize=9)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(plot_path, dpi=120)

    latency, ratio = result["latency_ms"], result["latency_ratio"]
    breakdown = result["sgnet_breakdown_ms"]
    stages = list(breakdown[str(counts[0])])
    (short, long), rss, anonymous = STREAM_FRAMES, result["peak_rss_mib"], result["peak_anonymous_rss_mib"]
    lines = [
        "# Benchmarks: SG-Net against Mask R-CNN",
        "",
        "Written by `tools/benchmark.py --report` (see its docstring for the method): detectron2's",
        "Mask R-CNN R50-FPN, torchvision's FCOS R50-FPN and SG-Net R50-FPN with random weights, in one",
        "process, same input, device and threads; medians over repeats after warm-up (SG-Net's N",
        "interleaved, one call each per round). SG-Net's",
        "latency is its whole VIS step (detection, masks, association with N existing tracks);",
        "Mask R-CNN's is its inference with the mask head run on the same N boxes.",
        "",
        f"- Machine: {result['device']}, {result['threads']} torch threads, torch {torch.__version__}"
        f"{', autocast' if result['amp'] else ''}. Input {result['input'][0]} x {result['input'][1]}, batch 1.",
        f"- Command: `{command}`",
        "",
        "| target | measured | target | met |",
        "|---|---|---|---|",
        *(f"| {name} | {value:.3g} | <= {target:g} | {'yes' if met else '**no**'} |"
          for name, value, target, met in target_checks(result, device)),
        "",
        "| N instances | SG-Net (ms) | Mask R-CNN (ms) | SG-Net / Mask R-CNN |",
        "|---|---|---|---|",
        *(f"| {n} | {latency['sgnet'][str(n)]:.0f} | {latency['mask_rcnn'][str(n)]:.0f} | {ratio[str(n)]:.2f} |" for n in counts),
        "",
        f"torchvision FCOS R50-FPN (detection only): {latency['fcos_torchvision']:.0f} ms. "
        f"SG-Net at {counts[-1]} / at {counts[0]} instance: {result['sgnet_100_over_1']:.2f}. Mask R-CNN's box head "
        f"ran on {result['mask_rcnn_proposals']} RPN proposals. Mean SG-Net box area, fraction of the frame: "
        + ", ".join(f"{area:.2f} (N = {n})" for n, area in result["mean_box_area_fraction"].items()) + ".",
        "",
        "SG-Net's step by stage (ms):",
        "",
        "| stage | " + " | ".join(f"N = {n}" for n in counts) + " |",
        "|---|" + "---|" * len(counts),
        *(f"| {s} | " + " | ".join(f"{breakdown[str(n)][s]:.1f}" for n in counts) + " |" for s in stages),
        "",
        "| other figure | value |",
        "|---|---|",
        f"| demo peak anonymous RSS, {short} / {long} frames (MiB) | {anonymous[str(short)]:.0f} / {anonymous[str(long)]:.0f} |",
        f"| peak anonymous RSS ratio, {long} / {short} frames | {result['rss_1000_over_100']:.3f} |",
        f"| demo peak total RSS (VmHWM), {short} / {long} frames (MiB) | {rss[str(short)]:.0f} / {rss[str(long)]:.0f} |",
        f"| peak total RSS ratio, {long} / {short} frames | {result['total_rss_1000_over_100']:.3f} |",
        f"| training step, SG-Net / Mask R-CNN (ms) | {result['train_step_ms']['sgnet']:.0f} / {result['train_step_ms']['mask_rcnn']:.0f} |",
        f"| training step ratio | {result['train_step_ratio']:.2f} |",
        "| evaluation, {videos} videos x {frames} frames x {tracks} tracks (s) | ".format(**EVAL_SIZES)
        + f"{result['eval_seconds']:.1f} |",
        "",
        f"![latency vs instances]({plot_path.name})",
        "",
        "Top operators of SG-Net's step at 10 instances (torch.profiler):",
        "",
        "```",
        profile.rstrip(),
        "```",
        "",
        *onnx_report_lines(result, counts, onnx_profile_text),
    ]
    path.write_text("\n".join(lines).rstrip() + "\n")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--amp", action="store_true", help="autocast: fp16 on CUDA, bf16 on CPU")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (under 3 minutes on 2 CPU cores)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object on the last line")
    parser.add_argument("--report", type=Path, help="write the markdown report here (and a PNG plot beside it)")
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--width", type=int, default=640)
    args = parser.parse_args(argv)
    if args.threads < 0:
        raise InvalidInput(f"--threads {args.threads}: must be 0 (torch's default) or more")
    if min(args.height, args.width) < 1:
        raise InvalidInput(f"--height {args.height} --width {args.width}: the frame needs at least one pixel")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise InvalidInput("--device cuda, but torch sees no CUDA device")
    args.warmup, args.repeats = (1, 3) if args.quick else (2, 7)
    args.profile_rows = 15 if args.report else 0
    return args


def run_benchmark(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    timer = Timer(args.device, args.amp, args.warmup, args.repeats)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        latency = latency_section(args, timer)
        memory = memory_section(args, workdir)
        train = train_section(args, timer, workdir)
        eval_seconds = eval_section(workdir)
    result = summary(args, latency, memory, train, eval_seconds)
    log(f"benchmark finished in {time.perf_counter() - start:.0f} s")
    if args.report:
        command = "python tools/benchmark.py " + " ".join(sys.argv[1:] if argv is None else argv)
        write_report(
            args.report, result, latency.get("profile", ""), command, args.device, latency.get("onnx", {}).get("profile", "")
        )
        log(f"report: {args.report}")
    if not args.json:
        print(json.dumps(result, indent=2))
        for name, value, target, met in target_checks(result, args.device):
            print(f"{name}: {value:.3g} (target <= {target:g}) {'met' if met else 'MISSED'}")
    else:
        print(json.dumps(result))


def main(argv=None) -> int:
    """The command line; returns the exit status (2: a bad argument, reported in one line)."""
    return run_main("benchmark.py", run_benchmark, argv)


if __name__ == "__main__":
    sys.exit(main())
