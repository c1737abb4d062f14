#!/usr/bin/env python
"""Train and evaluate SG-Net with detectron2's engine.

    python train_net.py --config-file configs/ytvis_2019/sgnet_R50_FPN_1x.yaml --num-gpus 8
    python train_net.py --config-file ... --resume                       # continue the last run
    python train_net.py --config-file ... --eval-only MODEL.WEIGHTS model_final.pth
    python train_net.py --config-file ... --eval-only --onnx model_int8.onnx --runtime openvino
    python train_net.py --config-file ... --start-over                   # train anew over an old run

An OUTPUT_DIR that holds checkpoints is never overwritten silently: train with ``--resume`` (which
also finds checkpoints of a copied run folder that lacks ``last_checkpoint``) or ``--start-over``.
A mistake in the config, the datasets or a checkpoint ends in one line and exit status 2.

All of detectron2's ``default_argument_parser`` flags work (multi-node: ``--num-machines``,
``--machine-rank``, ``--dist-url``); trailing ``KEY VALUE`` pairs override the config.
``--eval-only --onnx FILE`` evaluates an exported frame step (``tools/export_model.py``, float32 or
int8) in ``--runtime`` (onnxruntime, the default, or openvino) with the same loader, tracker and
evaluator, on one process. Mixed precision: ``SOLVER.AMP.ENABLED True`` (CUDA only;
``SOLVER.AMP.PRECISION`` float16 or, with a detectron2 newer than 0.6, bfloat16).
"""
import os
import sys

import sgnet  # noqa: F401  (registers SG-Net, its datasets and config keys)
from detectron2.data import build_detection_test_loader
from detectron2.engine import default_argument_parser, default_setup, launch
from detectron2.evaluation import verify_results
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from sgnet.checkpoint import SGNetCheckpointer, build_checkpointer, checkpoint_class_names
from sgnet.compat import default_trainer, set_amp_precision
from sgnet.config import load_config
from sgnet.config_checks import check_dataset_classes, check_model_classes, training_classes
from sgnet.data import (
    YTVISVideoTestMapper,
    build_sgnet_train_loader,
    dataset_class_names,
    get_ytvis_dataset_dicts,
    register_config_datasets,
)
from sgnet.errors import InvalidInput, MissingInput, run_main
from sgnet.evaluation import YTVISEvaluator
from sgnet.solver import build_optimizer, check_amp


class Trainer(default_trainer()):
    """detectron2's DefaultTrainer with SG-Net's loaders, evaluator and ``SOLVER.OPTIMIZER``
    (SGD or AdamW).

    Everything else is detectron2's: parameter groups with ``SOLVER.BIAS_LR_FACTOR`` /
    ``WEIGHT_DECAY_BIAS`` (``get_default_optimizer_params``), warm-up + step schedule,
    ``SOLVER.AMP.ENABLED``, ``SOLVER.CLIP_GRADIENTS``, periodic checkpoints, console / JSON /
    TensorBoard writers, DDP. ``SOLVER.AMP.PRECISION`` is given to detectron2's AMPTrainer.
    Checkpoints hold the optimizer's state on every detectron2 version (:func:`default_trainer`).
    """

    def __init__(self, cfg):
        if cfg.SOLVER.AMP.ENABLED:
            check_amp(cfg)  # before anything is built
        super().__init__(cfg)
        if cfg.SOLVER.AMP.ENABLED:
            set_amp_precision(self._trainer, cfg.SOLVER.AMP.PRECISION)

    def build_hooks(self):
        # detectron2's __init__ builds the hooks right after its own checkpointer: replaced
        # first, so that the periodic checkpoints too are SG-Net's (atomic saves, the training
        # set's classes recorded; the train loader, built before, has set them) and loading
        # (resume_or_load) initialises from detectron2 FCOS checkpoints.
        self.checkpointer = build_checkpointer(
            self.cfg,
            self.checkpointer.model,
            self.cfg.OUTPUT_DIR,
            classes=training_classes(self.cfg),
            **self.checkpointer.checkpointables,
        )
        return super().build_hooks()

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_optimizer(cfg, model)

    @classmethod
    def build_train_loader(cls, cfg):
        # Frame pairs of video datasets, or pseudo clip pairs of image datasets (coco_* splits).
        return build_sgnet_train_loader(cfg)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        # One video per batch: the model tracks through every frame of it. The dataset comes from
        # sgnet.data, as detectron2's per-image dataset helpers cannot read video dicts.
        dataset = get_ytvis_dataset_dicts(dataset_name, filter_empty=False)
        check_dataset_classes(cfg, required=())  # its annotation file has set its classes now
        return build_detection_test_loader(
            dataset=dataset,
            mapper=YTVISVideoTestMapper(cfg, is_train=False),
            num_workers=cfg.DATALOADER.NUM_WORKERS,
        )

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return YTVISEvaluator(dataset_name, output_dir=output_folder)


def checked_config(args):
    """The run's config, its ``DATASETS.REGISTER`` datasets registered, checked by :func:`check_run`."""
    cfg = load_config(args.config_file, args.opts)
    register_config_datasets(cfg)
    check_run(cfg, args)
    return cfg


def setup(args):
    cfg = checked_config(args)
    default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="sgnet")
    return cfg


def check_run(cfg, args) -> None:
    """What can be checked before anything is built, as one-line user errors: mixed precision
    available, the datasets registered with the class count the model has, and an OUTPUT_DIR whose
    checkpoints this run would overwrite."""
    if cfg.SOLVER.AMP.ENABLED and not args.eval_only:
        try:
            check_amp(cfg)
        except ValueError as error:
            raise InvalidInput(f"{args.config_file}: {error}") from error
    if (args.onnx and not args.eval_only) or (args.runtime and not args.onnx):
        raise InvalidInput("--onnx FILE evaluates an exported model with --eval-only; --runtime goes with --onnx")
    if args.onnx and not os.path.isfile(args.onnx):
        raise MissingInput(f"--onnx {args.onnx}: no such file")
    if args.onnx and args.num_gpus * args.num_machines > 1:
        raise InvalidInput("--onnx runs the exported model on one process: leave out --num-gpus / --num-machines")
    check_dataset_classes(cfg, ("TEST",) if args.eval_only else ("TRAIN", "TEST"))
    if args.eval_only or args.resume or args.start_over:
        return
    existing = SGNetCheckpointer(None, cfg.OUTPUT_DIR).checkpoint_files()
    if existing:
        raise InvalidInput(
            f"OUTPUT_DIR {cfg.OUTPUT_DIR} holds checkpoints of an earlier run ({os.path.basename(existing[0])}, "
            f"{len(existing)} in all), which training would overwrite: add --resume to continue that run, "
            "--start-over to train anew over it, or choose another OUTPUT_DIR"
        )


def evaluated_model(cfg, args):
    """The model ``--eval-only`` evaluates: the checkpoint's, or the exported file ``--onnx`` in
    ``--runtime``; refused where its classes are not the test datasets'."""
    tests = {name: dataset_class_names(name) for name in cfg.DATASETS.TEST}
    hint = "evaluate it on a dataset of its classes"
    if args.onnx:
        from sgnet.deploy import load_exported  # the deploy extra, only when asked for

        model = load_exported(args.onnx, cfg, args.runtime)
        check_model_classes(model.class_names, model.path, None, tests, hint)
        return model
    model = Trainer.build_model(cfg)
    loaded = build_checkpointer(cfg, model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
    check_model_classes(checkpoint_class_names(loaded), cfg.MODEL.WEIGHTS, cfg.MODEL.SGNET.NUM_CLASSES, tests, hint)
    return model


def main(args):
    cfg = setup(args)
    if args.eval_only:
        results = Trainer.test(cfg, evaluated_model(cfg, args))
        if comm.is_main_process():
            verify_results(cfg, results)
        return results
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def get_parser():
    parser = default_argument_parser()
    parser.add_argument(
        "--start-over",
        action="store_true",
        help="train from MODEL.WEIGHTS even though OUTPUT_DIR holds checkpoints of an earlier run (they are overwritten)",
    )
    parser.add_argument(
        "--onnx", metavar="FILE", help="with --eval-only: evaluate this exported model (tools/export_model.py) instead"
    )
    parser.add_argument(
        "--runtime", choices=["onnxruntime", "openvino"], help="the runtime --onnx runs in (default: onnxruntime)"
    )
    return parser


def launch_from_command_line(argv=None) -> None:
    args = get_parser().parse_args(argv)
    # Checked here, before workers are spawned: a mistake is one line, not one traceback per GPU.
    checked_config(args)
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


def cli(argv=None) -> int:
    """The command line; returns the exit status (2: a user's mistake, reported in one line)."""
    return run_main("train_net.py", launch_from_command_line, argv)


if __name__ == "__main__":
    sys.exit(cli())
