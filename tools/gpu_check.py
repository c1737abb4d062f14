#!/usr/bin/env python
"""SG-Net's mixed-precision checks on a CUDA GPU, in one command (a few minutes on one GPU):

    python tools/gpu_check.py [--skip-benchmark]

1. ``amp_training``: train_net's Trainer with ``SOLVER.AMP.ENABLED`` (detectron2's AMPTrainer) for
   a few iterations of the toy and the R50 config on a tiny synthetic dataset, in each
   ``SOLVER.AMP.PRECISION`` the installed detectron2 takes: losses finite, and the GradScaler
   did not skip every step.
2. ``nccl``: the toy config's AMP steps with the model in DistributedDataParallel over a
   one-process NCCL group, as ``launch`` sets up each GPU of a multi-GPU run.
3. ``inference``: the toy model overfit on the tests' two-object pair, then streamed over a short
   video in float32 (TF32 off) and under float16 and bfloat16 autocast: the same detections and
   track ids within the tests' tolerances (``tools/amp_comparison.py``, shared with the CPU tests).
4. ``benchmark``: the latency table of ``tools/benchmark.py --device cuda --amp --quick``.

Prints one JSON line, ``{"ok": ..., "checks": {name: {...}}, ...}``; a check that fails records
its error there (traceback on stderr) and the others still run. Exit status: 0 all passed, 1 a
check failed, 2 no CUDA device or a bad argument (one line on stderr, nothing checked).
"""
import argparse
import json
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tools")]  # train_net; benchmark, the toy scene, the AMP comparison

import detectron2  # noqa: E402
import sgnet  # noqa: E402,F401  (registers SG-Net; detectron2 compatibility)
from detectron2.engine import AMPTrainer, HookBase  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402

from sgnet.compat import amp_trainer_takes_precision, check_amp_precision, set_amp_precision  # noqa: E402
from sgnet.config import load_config  # noqa: E402
from sgnet.data import generate_synthetic_ytvis, register_ytvis_instances  # noqa: E402
from sgnet.errors import run_main  # noqa: E402

TOY_CONFIG = REPO / "configs" / "toy" / "sgnet_R18_toy.yaml"
R50_CONFIG = REPO / "configs" / "ytvis_2019" / "sgnet_R50_FPN_1x.yaml"
ITERATIONS = {TOY_CONFIG: 20, R50_CONFIG: 10}
OVERFIT_ITERATIONS = 200  # as the CPU tests' overfit fixture
DATASET = "gpu_check_train"  # synthetic videos of the toy dataset's 3 classes


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def supported_precisions() -> list:
    precisions = []
    for precision in ("float16", "bfloat16"):
        try:
            check_amp_precision(precision)
            precisions.append(precision)
        except ValueError as refusal:
            log(f"skipping {precision}: {refusal}")
    return precisions


def amp_cfg(config: Path, precision: str, iterations: int, output_dir: str):
    """``config`` for AMP training on the synthetic :data:`DATASET` at 96 x 160, batch 2."""
    return load_config(str(config), [
        "SOLVER.AMP.ENABLED", True, "SOLVER.AMP.PRECISION", precision, "MODEL.DEVICE", "cuda",
        "MODEL.WEIGHTS", "", "MODEL.SGNET.NUM_CLASSES", 3, "DATASETS.TRAIN", (DATASET,),
        "DATASETS.TEST", (), "INPUT.MIN_SIZE_TRAIN", (96,), "INPUT.MIN_SIZE_TRAIN_SAMPLING", "choice",
        "INPUT.MAX_SIZE_TRAIN", 160,
        "SOLVER.IMS_PER_BATCH", 2, "DATALOADER.NUM_WORKERS", 0, "SOLVER.MAX_ITER", iterations,
        "SOLVER.CHECKPOINT_PERIOD", 10 * iterations, "TEST.EVAL_PERIOD", 0, "OUTPUT_DIR", output_dir,
    ])  # fmt: skip


class GradScaleRecorder(HookBase):
    """The AMP trainer's GradScaler scale after each step: GradScaler halves it exactly when it
    skips a step (an inf or NaN gradient), so the skipped steps are the drops."""

    def __init__(self, amp_trainer):
        self.grad_scaler = amp_trainer.grad_scaler
        self.scales = [self.grad_scaler.get_scale()]

    def after_step(self):
        self.scales.append(self.grad_scaler.get_scale())

    def skipped_steps(self) -> int:
        return sum(after < before for before, after in zip(self.scales, self.scales[1:]))


def amp_steps_summary(amp_trainer, storage, recorder: GradScaleRecorder) -> dict:
    losses = [value for value, _ in storage.history("total_loss").values()]
    steps = len(recorder.scales) - 1
    summary = {"iterations": steps, "first_loss": losses[0], "last_loss": losses[-1],
               "skipped_steps": recorder.skipped_steps(), "final_scale": recorder.scales[-1],
               "precision": str(amp_trainer.precision if amp_trainer_takes_precision() else torch.float16)}  # fmt: skip
    if not all(torch.isfinite(torch.tensor(losses))):
        raise RuntimeError(f"non-finite total loss: {losses}")
    if summary["skipped_steps"] == steps:
        raise RuntimeError(f"the GradScaler skipped all {steps} steps (scales {recorder.scales})")
    return summary


def check_amp_training(workdir: Path) -> dict:
    from train_net import Trainer

    results = {}
    for precision in supported_precisions():
        for config, iterations in ITERATIONS.items():
            name = f"{config.stem}/{precision}"
            log(f"amp_training: {name}, {iterations} iterations")
            trainer = Trainer(amp_cfg(config, precision, iterations, str(workdir / name.replace("/", "_"))))
            recorder = GradScaleRecorder(trainer._trainer)
            trainer.register_hooks([recorder])
            trainer.train()
            results[name] = amp_steps_summary(trainer._trainer, trainer.storage, recorder)
    return results


def check_nccl(workdir: Path) -> dict:
    """What ``launch`` sets up on each GPU (NCCL group, local group, DDP), here with one process."""
    import torch.distributed as dist
    from detectron2.utils import comm
    from torch.nn.parallel import DistributedDataParallel

    from train_net import Trainer

    cfg = amp_cfg(TOY_CONFIG, "float16", 5, str(workdir / "nccl"))
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    torch.cuda.set_device(0)
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        comm._LOCAL_PROCESS_GROUP = dist.new_group([0])
        model = Trainer.build_model(cfg)
        optimizer = Trainer.build_optimizer(cfg, model)
        ddp_model = DistributedDataParallel(model, device_ids=[0], broadcast_buffers=False)
        trainer = AMPTrainer(ddp_model, Trainer.build_train_loader(cfg), optimizer)
        set_amp_precision(trainer, "float16")
        recorder = GradScaleRecorder(trainer)
        trainer.register_hooks([recorder])
        trainer.train(0, cfg.SOLVER.MAX_ITER)
        return {"backend": dist.get_backend(), **amp_steps_summary(trainer, trainer.storage, recorder)}
    finally:
        comm._LOCAL_PROCESS_GROUP = None
        dist.destroy_process_group()


def check_inference() -> dict:
    from amp_comparison import TOLERANCES, compare_streams, stream
    from toy_scene import pair_sample, tiny_cfg, train, two_object_scene

    torch.manual_seed(0)
    model = build_model(tiny_cfg(**{"MODEL.DEVICE": "cuda"}))
    log(f"inference: overfitting the toy model, {OVERFIT_ITERATIONS} iterations")
    train(model, [pair_sample(key_shift=0, ref_shift=6)], OVERFIT_ITERATIONS, lr=0.005)
    model.eval()
    frames = [two_object_scene(shift)[0] for shift in (0, 4, 8)]
    # The float32 reference in float32 indeed: TF32 would round convolutions as float16 does.
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        reference = stream(model, frames, (128, 160))
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    results = {}
    for dtype, tolerance in TOLERANCES.items():
        summary = compare_streams(model, reference, stream(model, frames, (128, 160), dtype), tolerance)
        if summary["problems"] or summary["matched"] < 2 * len(frames):
            raise RuntimeError(f"{dtype} against float32: {summary}")
        results[str(dtype)] = summary
    return results


def check_benchmark() -> dict:
    import benchmark

    args = benchmark.parse_args(["--device", "cuda", "--amp", "--quick"])
    timer = benchmark.Timer(args.device, args.amp, args.warmup, args.repeats)
    latency = benchmark.latency_section(args, timer)
    return {key: latency[key] for key in ("sgnet", "mask_rcnn", "fcos_torchvision", "sgnet_breakdown") if key in latency}


def run_checks(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-benchmark", action="store_true", help="leave out the benchmark's latency table")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        log(f"gpu_check.py: no CUDA device (torch {torch.__version__} sees none); these checks need one, nothing was checked")
        return 2
    start = time.perf_counter()
    results, failed = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        paths = generate_synthetic_ytvis(str(workdir / "data"), num_train_videos=4, num_val_videos=0, num_frames=4, height=96, width=160)
        register_ytvis_instances(DATASET, {}, paths["train_json"], paths["train_root"])
        checks = {"amp_training": lambda: check_amp_training(workdir), "nccl": lambda: check_nccl(workdir),
                  "inference": check_inference}  # fmt: skip
        if not args.skip_benchmark:
            checks["benchmark"] = check_benchmark
        for name, check in checks.items():
            try:
                results[name] = check()
            except Exception as error:  # noqa: BLE001  (recorded; the other checks still run)
                traceback.print_exc()
                results[name] = {"error": f"{type(error).__name__}: {error}"}
                failed.append(name)
    print(json.dumps({
        "ok": not failed, "failed": failed, "device": torch.cuda.get_device_name(), "torch": torch.__version__,
        "detectron2": f"{detectron2.__version__} ({Path(detectron2.__file__).parent})",
        "seconds": round(time.perf_counter() - start, 1), "checks": results,
    }))  # fmt: skip
    return 1 if failed else 0


def main(argv=None) -> int:
    """The command line; returns the exit status (see the module's docstring)."""
    return run_main("gpu_check.py", run_checks, argv)


if __name__ == "__main__":
    sys.exit(main())
