"""SOLVER.OPTIMIZER: detectron2's SGD unchanged, or AdamW over the same parameter groups."""
import pytest
import torch
from detectron2.solver import build_optimizer as detectron2_build_optimizer

from sgnet.solver import build_optimizer

from model_fixtures import tiny_cfg


class TwoLayers(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.norm = torch.nn.GroupNorm(2, 4)


def groups_by_shape(optimizer):
    return sorted((tuple(group["params"][0].shape), group["lr"], group["weight_decay"]) for group in optimizer.param_groups)


def test_sgd_is_detectron2s_optimizer():
    cfg = tiny_cfg()
    cfg.SOLVER.OPTIMIZER = "SGD"
    model = TwoLayers()
    ours, theirs = build_optimizer(cfg, model), detectron2_build_optimizer(cfg, model)
    assert isinstance(ours, torch.optim.SGD)
    assert groups_by_shape(ours) == groups_by_shape(theirs)
    assert ours.defaults["momentum"] == theirs.defaults["momentum"] == cfg.SOLVER.MOMENTUM


def test_adamw_uses_the_same_groups_betas_and_clipping():
    cfg = tiny_cfg()
    cfg.SOLVER.OPTIMIZER, cfg.SOLVER.BASE_LR, cfg.SOLVER.ADAM_BETAS = "AdamW", 0.001, (0.8, 0.99)
    cfg.SOLVER.BIAS_LR_FACTOR, cfg.SOLVER.WEIGHT_DECAY, cfg.SOLVER.WEIGHT_DECAY_BIAS = 2.0, 1e-4, 0.0
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED, cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = True, 0.5
    model = TwoLayers()
    optimizer = build_optimizer(cfg, model)
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["betas"] == (0.8, 0.99)
    # detectron2's groups: conv weight (base LR, decay); the two biases, conv's and the norm's
    # (LR x2, no decay); the norm weight (base LR, no decay).
    assert groups_by_shape(optimizer) == [((4,), 0.001, 0.0), ((4,), 0.002, 0.0), ((4, 3, 3, 3), 0.001, 1e-4)]
    assert sorted(len(group["params"]) for group in optimizer.param_groups) == [1, 1, 2]
    # detectron2's clipping wraps the step: gradients are clipped (in place) to CLIP_VALUE first.
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)
    model.conv.weight.grad.fill_(1e6)
    optimizer.step()
    assert torch.all(model.conv.weight.grad == 0.5)


def test_unknown_optimizer_is_named():
    cfg = tiny_cfg()
    cfg.SOLVER.OPTIMIZER = "LAMB"
    with pytest.raises(ValueError, match="SOLVER.OPTIMIZER.*LAMB"):
        build_optimizer(cfg, TwoLayers())
