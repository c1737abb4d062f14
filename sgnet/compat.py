"""Bridge the detectron2 versions that sgnet meets, without touching a complete detectron2.

Applied once by ``import sgnet``, before anything imports detectron2's engine. The detectron2 v0.6
that ``make install`` puts in place (``tools/install_detectron2.py``) works on its own: the
installer writes its ``_C`` placeholder and replaces ``Image.LINEAR``, so neither accommodation
below acts on it. They remain for the other python-only detectron2s a user may bring, each
applied only when that detectron2 needs it, so that a detectron2 built from source (0.6 up to
current main) is left exactly as it is:

1. ``detectron2._C`` (the compiled extension) is absent from detectron2's python sources used
   without a build (for example detectron2 main's on ``PYTHONPATH``, as the test suite's second
   leg runs), yet ``layers.deform_conv``, ``layers.rotated_boxes``,
   ``layers.roi_align_rotated`` and ``evaluation.fast_eval_api`` import it at module import time.
   The placeholder module that the installer also copies (``sgnet/_detectron2_c_placeholder.py``)
   is registered as ``detectron2._C``: its ops raise a clear error naming the op when called.
   SG-Net calls none of them (NMS and deformable convolution come from torchvision).
2. Pillow >= 10 removed ``PIL.Image.LINEAR``, which detectron2 0.6's own transforms use as a
   default argument at import time: for a user's own v0.6 source build (not the installer's
   patched copy), ``Image.LINEAR`` is aliased to ``BILINEAR`` (the same filter) when missing.

It also bridges the differences between detectron2 versions that sgnet meets, here only:
main's ``AMPTrainer`` autocasts to a ``precision`` (float16 or bfloat16), v0.6's to float16 only
(:func:`set_amp_precision`); main's ``DefaultTrainer`` checkpoints its inner trainer's state
(optimizer, grad scaler), v0.6's does not (:func:`default_trainer`); main's ``launch`` starts
processes on a machine without CUDA (gloo), v0.6's requires CUDA (:func:`launch`).
"""
import functools
import importlib.util
import inspect
import os
import re
import sys

__all__ = ["apply", "PLACEHOLDER_EXTENSION", "applied", "amp_trainer_takes_precision", "check_amp_precision", "set_amp_precision", "default_trainer", "launch"]

# Which accommodations `apply` has made in this process, for environment reports and tests.
applied = []

# The `detectron2._C` placeholder: one file, registered here and copied by the installer.
PLACEHOLDER_EXTENSION = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_detectron2_c_placeholder.py")


def _extension_module_present() -> bool:
    """Whether detectron2 has a ``_C`` module of its own: the compiled extension, or the
    placeholder that ``tools/install_detectron2.py`` wrote into the copy it installed."""
    if "detectron2._C" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("detectron2._C") is not None
    except ModuleNotFoundError:  # detectron2 itself missing: reported by sgnet.__init__
        return False


def _register_extension_placeholder() -> bool:
    if _extension_module_present():
        return False
    import detectron2

    spec = importlib.util.spec_from_file_location("detectron2._C", PLACEHOLDER_EXTENSION)
    placeholder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(placeholder)
    sys.modules["detectron2._C"] = placeholder
    # `from detectron2 import _C` reads the attribute on the package.
    detectron2._C = placeholder
    return True


def _detectron2_uses_pillow_linear() -> bool:
    """Whether the detectron2 in use names ``Image.LINEAR`` in its transforms (v0.6 as released
    does; the installer's copy and main do not). Read from the source: importing it is what fails."""
    import detectron2

    for root in getattr(detectron2, "__path__", []):
        try:
            with open(os.path.join(root, "data", "transforms", "transform.py"), encoding="utf-8") as f:
                return re.search(r"\bImage\.LINEAR\b", f.read()) is not None
        except OSError:
            continue
    return True  # sources not readable as files (e.g. zipped): alias, as before


def _alias_pillow_linear() -> bool:
    from PIL import Image

    if hasattr(Image, "LINEAR") or not _detectron2_uses_pillow_linear():
        return False
    Image.LINEAR = Image.BILINEAR
    return True


def apply() -> list:
    """Apply what is missing; idempotent. Returns the names of the accommodations in force."""
    if _register_extension_placeholder():
        applied.append("detectron2._C placeholder")
    if _alias_pillow_linear():
        applied.append("PIL.Image.LINEAR alias")
    return list(applied)


def amp_trainer_takes_precision() -> bool:
    """Whether this detectron2's ``AMPTrainer`` autocasts to a ``precision`` (main) or to float16
    only (v0.6)."""
    from detectron2.engine import AMPTrainer

    return "precision" in inspect.signature(AMPTrainer.__init__).parameters


def check_amp_precision(precision: str) -> None:
    """Raise ValueError naming the detectron2 version when its ``AMPTrainer`` cannot train in
    ``precision`` ("float16" or "bfloat16"): main's takes a ``precision``, v0.6's autocasts to
    float16 only."""
    if precision != "float16" and not amp_trainer_takes_precision():
        import detectron2

        raise ValueError(
            f"SOLVER.AMP.PRECISION {precision}: the AMPTrainer of this detectron2 ({detectron2.__version__}, "
            f"{os.path.dirname(detectron2.__file__)}) trains in float16 only; bfloat16 needs detectron2 main"
        )


def set_amp_precision(amp_trainer, precision: str) -> None:
    """Make an ``AMPTrainer`` built by ``DefaultTrainer`` (without a precision, on every version:
    float16) autocast to ``precision``; see :func:`check_amp_precision`."""
    check_amp_precision(precision)
    if amp_trainer_takes_precision():  # main: run_step autocasts to this attribute
        import torch

        amp_trainer.precision = getattr(torch, precision)


def default_trainer():
    """detectron2's ``DefaultTrainer``, with checkpoints that hold the inner trainer's state
    (optimizer momentum, AMP grad scaler) under ``"_trainer"``. Main's does so itself; v0.6's
    leaves it out, so ``--resume`` would restart SGD cold: there a subclass adds it under the same
    key, so checkpoints move between versions."""
    from detectron2.engine import DefaultTrainer

    if "state_dict" in vars(DefaultTrainer):
        return DefaultTrainer

    class DefaultTrainerWithTrainerState(DefaultTrainer):
        def state_dict(self):
            state = super().state_dict()
            state["_trainer"] = self._trainer.state_dict()
            return state

        def load_state_dict(self, state_dict):
            super().load_state_dict(state_dict)
            if "_trainer" in state_dict:
                self._trainer.load_state_dict(state_dict["_trainer"])

    return DefaultTrainerWithTrainerState


def launch(main_func, num_processes_per_machine: int, *, num_machines: int = 1, machine_rank: int = 0, dist_url: str = "auto", args=()):
    """detectron2's ``launch``: ``main_func(*args)`` in ``num_processes_per_machine`` processes on
    each of ``num_machines`` machines (one process: in this one), each with its rank in
    ``detectron2.utils.comm``; ``dist_url`` "auto" picks a free local port (one machine only).

    On a machine without CUDA, main's ``launch`` starts gloo processes itself; v0.6's requires
    CUDA (NCCL), so there the processes are started here, with gloo, as detectron2 does. Every
    worker process ends as soon as all ranks have returned from ``main_func``
    (:func:`_run_then_leave`).
    """
    from detectron2.engine import launch as detectron2_launch

    task = functools.partial(_run_then_leave, main_func)
    world_size = num_processes_per_machine * num_machines
    if world_size == 1 or _launch_runs_without_cuda():
        detectron2_launch(task, num_processes_per_machine, num_machines=num_machines, machine_rank=machine_rank, dist_url=dist_url, args=args)
        return
    import torch.multiprocessing as mp

    if dist_url == "auto":
        if num_machines > 1:
            raise ValueError("dist_url 'auto' works on one machine only: give machine 0's tcp://HOST:PORT")
        dist_url = f"tcp://127.0.0.1:{_free_port()}"
    mp.spawn(_gloo_worker, nprocs=num_processes_per_machine, args=(task, num_processes_per_machine, num_machines, machine_rank, dist_url, args), daemon=False)


def _launch_runs_without_cuda() -> bool:
    """Whether detectron2's ``launch`` can start its processes here: with CUDA always; without,
    when its worker falls back to gloo (main does, v0.6 asserts CUDA). Read from the source."""
    import torch
    from detectron2.engine.launch import _distributed_worker

    if torch.cuda.is_available():
        return True
    try:
        return "gloo" in inspect.getsource(_distributed_worker).lower()
    except (OSError, TypeError):  # sources not readable: trust detectron2
        return True


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gloo_worker(local_rank: int, main_func, per_machine: int, num_machines: int, machine_rank: int, dist_url: str, args) -> None:
    """One CPU process of :func:`launch`, set up as detectron2's own worker sets up its GPU ones:
    the global process group, every machine's local group (each rank must create every group),
    then ``main_func(*args)``."""
    import torch.distributed as dist
    from detectron2.engine.launch import DEFAULT_TIMEOUT
    from detectron2.utils import comm

    rank = machine_rank * per_machine + local_rank
    dist.init_process_group("gloo", init_method=dist_url, world_size=per_machine * num_machines, rank=rank, timeout=DEFAULT_TIMEOUT)
    for machine in range(num_machines):
        group = dist.new_group(list(range(machine * per_machine, (machine + 1) * per_machine)))
        if machine == machine_rank:
            comm._LOCAL_PROCESS_GROUP = group
    comm.synchronize()
    main_func(*args)


def _run_then_leave(main_func, *args) -> None:
    """``main_func(*args)``; in a worker process of :func:`launch`, then wait for every rank, tear
    the process group down and end the process without interpreter finalisation: with torch
    2.13, gloo threads outliving ``destroy_process_group`` can abort a finalising interpreter
    (SIGABRT) after all the work was done, which the launcher would report as a failure."""
    import torch.distributed as dist
    from detectron2.utils import comm

    main_func(*args)
    if not dist.is_initialized():  # one process: this is the caller's process
        return
    comm.synchronize()
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
