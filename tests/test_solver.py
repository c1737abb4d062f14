"""SOLVER.OPTIMIZER: detectron2's SGD unchanged, or AdamW over the same parameter groups. SOLVER.AMP:
refused at once where it cannot run; its precision given to detectron2's AMPTrainer."""
import re
import warnings

import pytest
import torch
from detectron2.solver import build_optimizer as detectron2_build_optimizer

from sgnet.compat import amp_trainer_takes_precision, set_amp_precision
from sgnet.solver import build_optimizer, check_amp

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


def amp_cfg(**settings):
    return tiny_cfg(**{"SOLVER.AMP.ENABLED": True, "MODEL.DEVICE": "cuda", **settings})


@pytest.mark.parametrize(
    "settings, cuda, problem",
    [
        ({"SOLVER.AMP.PRECISION": "half"}, True, "SOLVER.AMP.PRECISION must be float16 or bfloat16, got 'half'"),
        ({}, False, "AMP training needs a CUDA device, and torch sees none"),
        ({"MODEL.DEVICE": "cpu"}, True, "AMP training needs MODEL.DEVICE cuda, got 'cpu'"),
    ],
)
def test_amp_training_that_cannot_run_is_refused_with_the_reason(settings, cuda, problem, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    with pytest.raises(ValueError, match=re.escape(problem)):
        check_amp(amp_cfg(**settings))


def test_amp_precision_reaches_detectron2s_amp_trainer_where_it_takes_one(monkeypatch):
    """detectron2 main's AMPTrainer takes a precision (DefaultTrainer passes none: float16); v0.6's
    autocasts to float16 only, so bfloat16 is refused there before anything is built."""
    from detectron2.engine import AMPTrainer

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    model = TwoLayers()
    with warnings.catch_warnings():  # GradScaler without CUDA: disabled, with a warning
        warnings.simplefilter("ignore")
        trainer = AMPTrainer(model, [], torch.optim.SGD(model.parameters(), lr=0.1))
    check_amp(amp_cfg())
    set_amp_precision(trainer, "float16")
    if amp_trainer_takes_precision():
        check_amp(amp_cfg(**{"SOLVER.AMP.PRECISION": "bfloat16"}))
        assert trainer.precision == torch.float16
        set_amp_precision(trainer, "bfloat16")
        assert trainer.precision == torch.bfloat16
    else:
        refusal = r"SOLVER.AMP.PRECISION bfloat16: the AMPTrainer of this detectron2 .* trains in float16 only"
        with pytest.raises(ValueError, match=refusal):
            check_amp(amp_cfg(**{"SOLVER.AMP.PRECISION": "bfloat16"}))
        with pytest.raises(ValueError, match=refusal):
            set_amp_precision(trainer, "bfloat16")
