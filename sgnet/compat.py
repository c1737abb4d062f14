"""Make detectron2 v0.6's python sources work on current torch / Pillow, without touching a
complete detectron2.

Applied once by ``import sgnet``, before anything imports detectron2's engine. Two accommodations,
each applied only when needed, so that a detectron2 built from source (0.6 up to current main)
is left exactly as it is:

1. ``detectron2._C`` (the compiled extension) is absent in a python-only install, yet
   ``layers.deform_conv``, ``layers.rotated_boxes``, ``layers.roi_align_rotated`` and
   ``evaluation.fast_eval_api`` import it at module import time. A placeholder module is registered
   whose functions raise a clear error naming the op. SG-Net calls none of them (NMS and
   deformable convolution come from torchvision).
2. Pillow >= 10 removed ``PIL.Image.LINEAR``, which detectron2 0.6 uses as a default argument at
   import time; it is aliased to ``BILINEAR`` (the same filter) when missing.

It also bridges the differences between detectron2 versions that sgnet meets, here only:
main's ``AMPTrainer`` autocasts to a ``precision`` (float16 or bfloat16), v0.6's to float16 only
(:func:`set_amp_precision`); main's ``DefaultTrainer`` checkpoints its inner trainer's state
(optimizer, grad scaler), v0.6's does not (:func:`default_trainer`).
"""
import importlib.util
import inspect
import os
import sys
import types

__all__ = ["apply", "MissingExtensionModule", "applied", "amp_trainer_takes_precision", "check_amp_precision", "set_amp_precision", "default_trainer"]

# Which accommodations `apply` has made in this process, for environment reports and tests.
applied = []


# Build-information queries (detectron2's `collect_env_info`, called by `default_setup`) answer
# truthfully instead of raising: they describe the build, they are not ops.
_BUILD_INFO = {
    "get_compiler_version": "none (python-only detectron2, no compiled extension)",
    "get_cuda_version": "none (python-only detectron2, no compiled extension)",
    "has_cuda": False,
}


class MissingExtensionModule(types.ModuleType):
    """Stands in for ``detectron2._C``: importable, but every op raises when called."""

    def __getattr__(self, name):
        # Dunders must stay missing: torch's `inspect.getmodule` walks sys.modules and reads
        # `__file__` etc., and a callable answer there crashes `import torchvision`.
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        if name in _BUILD_INFO:
            return lambda: _BUILD_INFO[name]

        def missing_op(*args, **kwargs):
            raise RuntimeError(
                f"detectron2._C.{name} was called, but this detectron2 has no compiled C++ "
                "extension (python-only install). SG-Net does not need it; the caller does. "
                "Build detectron2 from source to use this op: "
                "https://detectron2.readthedocs.io/en/latest/tutorials/install.html"
            )

        missing_op.__name__ = name
        return missing_op


def _compiled_extension_present() -> bool:
    if "detectron2._C" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("detectron2._C") is not None
    except ModuleNotFoundError:  # detectron2 itself missing: reported by sgnet.__init__
        return False


def _register_extension_placeholder() -> bool:
    if _compiled_extension_present():
        return False
    import detectron2

    placeholder = MissingExtensionModule("detectron2._C")
    sys.modules["detectron2._C"] = placeholder
    # `from detectron2 import _C` reads the attribute on the package.
    detectron2._C = placeholder
    return True


def _alias_pillow_linear() -> bool:
    from PIL import Image

    if hasattr(Image, "LINEAR"):
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
