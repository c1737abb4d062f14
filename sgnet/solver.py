"""The optimizer: detectron2's SGD, or AdamW, over detectron2's parameter groups; and the checks
of mixed-precision training."""
import torch
from detectron2.solver import get_default_optimizer_params
from detectron2.solver.build import maybe_add_gradient_clipping

from .compat import check_amp_precision

__all__ = ["build_optimizer", "check_amp"]


def build_optimizer(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    """``SOLVER.OPTIMIZER`` ("SGD" or "ADAMW") over ``get_default_optimizer_params`` groups (bias
    LR x ``BIAS_LR_FACTOR``, ``WEIGHT_DECAY_BIAS`` / ``WEIGHT_DECAY_NORM``), with detectron2's
    ``SOLVER.CLIP_GRADIENTS``. "SGD" is exactly detectron2's own ``build_optimizer``."""
    params = get_default_optimizer_params(
        model,
        base_lr=cfg.SOLVER.BASE_LR,
        weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
        bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR,
        weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
    )
    name = cfg.SOLVER.OPTIMIZER.upper()
    if name == "SGD":
        return maybe_add_gradient_clipping(cfg, torch.optim.SGD)(
            params,
            lr=cfg.SOLVER.BASE_LR,
            momentum=cfg.SOLVER.MOMENTUM,
            nesterov=cfg.SOLVER.NESTEROV,
            weight_decay=cfg.SOLVER.WEIGHT_DECAY,
        )
    if name == "ADAMW":
        return maybe_add_gradient_clipping(cfg, torch.optim.AdamW)(
            params, lr=cfg.SOLVER.BASE_LR, betas=tuple(cfg.SOLVER.ADAM_BETAS), weight_decay=cfg.SOLVER.WEIGHT_DECAY
        )
    raise ValueError(f"SOLVER.OPTIMIZER must be 'SGD' or 'ADAMW', got {cfg.SOLVER.OPTIMIZER!r}")


def check_amp(cfg) -> None:
    """Raise ValueError (one line) when ``SOLVER.AMP`` training cannot run here: detectron2's
    AMPTrainer autocasts CUDA only (it asserts so at its first step, after everything is built),
    and its ``SOLVER.AMP.PRECISION`` must be one the installed detectron2 takes."""
    precision = cfg.SOLVER.AMP.PRECISION
    if precision not in ("float16", "bfloat16"):
        raise ValueError(f"SOLVER.AMP.PRECISION must be float16 or bfloat16, got {precision!r}")
    if not torch.cuda.is_available():
        raise ValueError("SOLVER.AMP.ENABLED: AMP training needs a CUDA device, and torch sees none (train without it on CPU)")
    if not cfg.MODEL.DEVICE.startswith("cuda"):
        raise ValueError(f"SOLVER.AMP.ENABLED: AMP training needs MODEL.DEVICE cuda, got {cfg.MODEL.DEVICE!r}")
    check_amp_precision(precision)
