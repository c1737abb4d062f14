"""Loading ``MODEL.WEIGHTS`` into SG-Net, including initialisation from a detectron2 FCOS detector.

SG-Net's own checkpoints (``--resume``, ``--eval-only``) and ImageNet backbones load as detectron2
loads them. A checkpoint of detectron2's ``FCOS`` (``meta_arch/fcos.py``, e.g. trained on COCO
with detectron2's ``COCO-Detection/fcos_R_50_FPN_1x.py``) is recognised by its head's names and
converted on load (:func:`convert_fcos_checkpoint`):

- ``backbone.*`` (ResNet + FPN + P6/P7): taken as they are. Both models build P6/P7 from P5
  (``LastLevelP6P7(256, 256, in_feature="p5")``), so every name and shape must agree; a
  checkpoint whose backbone differs in anything is refused.
- the head's towers: the first layers (conv, norm) of its ``cls_subnet`` / ``bbox_subnet``
  (4 each in detectron2) onto SG-Net's ``cls_tower`` / ``box_tower`` (2 and 3), ``bbox_pred``
  onto ``box_pred``, ``ctrness`` onto ``centerness``, where shapes agree (under GN, SG-Net's
  tower convs have no bias: the checkpoint's tower conv biases stay unused);
- ``cls_score``: row by row through a class map {SG-Net class: checkpoint class}
  (``MODEL.SGNET.FCOS_CLASS_MAP``), since the two label spaces differ.

The rest of SG-Net keeps its initialisation: the feature alignment, the mask and track heads,
``cls_score`` rows without a counterpart, and the per-level ``scales`` (detectron2's FCOS has
none: its regression is unscaled, which SG-Net's scales reproduce at their initial 1.0).
"""
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

from detectron2.checkpoint import DetectionCheckpointer
from torch import Tensor

__all__ = ["SGNetCheckpointer", "build_checkpointer", "convert_fcos_checkpoint", "is_detectron2_fcos", "FCOSInitReport"]

# Module prefixes that only detectron2's FCOSHead has (RetinaNet's head lacks ctrness, SG-Net's
# towers are named cls_tower / box_tower).
_FCOS_HEAD_PREFIXES = ("head.cls_subnet.", "head.bbox_subnet.", "head.ctrness.")
# (detectron2 FCOS tower, SG-Net tower), both nn.Sequential of (conv[, norm], ReLU) layers.
_TOWERS = (("head.cls_subnet.", "head.cls_tower."), ("head.bbox_subnet.", "head.box_tower."))
# detectron2 FCOS module -> SG-Net module, taken as they are.
_PREDICTORS = {"head.bbox_pred": "head.box_pred", "head.ctrness": "head.centerness"}
_CLS_SCORE = "head.cls_score"
# How many mismatching backbone tensors a refusal names.
_MISMATCHES_SHOWN = 3


@dataclass
class FCOSInitReport:
    """What :func:`convert_fcos_checkpoint` took from a detectron2 FCOS checkpoint.

    loaded: SG-Net keys taken as they are (backbone and FPN); mapped: SG-Net key -> checkpoint key
    (``head.cls_score.*``: only the rows of ``class_rows``); class_rows: SG-Net class ->
    checkpoint class; left_at_init: SG-Net keys not set from the checkpoint; unused: checkpoint
    keys not used.
    """

    loaded: List[str]
    mapped: Dict[str, str]
    class_rows: Dict[int, int]
    left_at_init: List[str]
    unused: List[str]

    def summary(self, source: str) -> str:
        modules: Dict[Tuple[str, str], List[str]] = {}
        for target, key in self.mapped.items():
            if not target.startswith(_CLS_SCORE):
                (target_module, _, name), source_module = target.rpartition("."), key.rpartition(".")[0]
                modules.setdefault((target_module, source_module), []).append(name)
        mapped = [f"{_grouped(f'{target}.{name}' for name in names)} <- {source}" for (target, source), names in modules.items()]
        if self.class_rows:
            mapped.append(f"{_CLS_SCORE}.{{weight, bias}} <- its rows by the class map ({len(self.class_rows)} classes)")
        return "\n".join(
            [
                f"Initialising SG-Net from the detectron2 FCOS checkpoint {source}:",
                f"  loaded as they are: {len(self.loaded)} backbone and FPN tensors",
                f"  mapped ({len(self.mapped)} tensors): " + ", ".join(mapped),
                f"  left at their initialisation ({len(self.left_at_init)} tensors): " + _grouped(self.left_at_init),
                f"  unused from the checkpoint ({len(self.unused)} tensors): " + _grouped(self.unused),
            ]
        )


def _grouped(keys: Iterable[str]) -> str:
    """``a.b.weight, a.b.bias, c.scale`` -> ``a.b.{weight, bias}, c.scale``, in the keys' order."""
    modules: Dict[str, List[str]] = {}
    for key in keys:
        module, _, name = key.rpartition(".")
        modules.setdefault(module, []).append(name)
    parts = [f"{m}.{n[0]}" if len(n) == 1 else f"{m}.{{{', '.join(n)}}}" for m, n in modules.items()]
    return ", ".join(parts) or "none"


def is_detectron2_fcos(state_dict: Dict[str, Tensor]) -> bool:
    """Whether a model state dict is one of detectron2's ``FCOS`` (by its head's module names)."""
    return all(any(key.startswith(prefix) for key in state_dict) for prefix in _FCOS_HEAD_PREFIXES)


def _check_backbone_fits(checkpoint: Dict[str, Tensor], model: Dict[str, Tensor], source: str) -> List[str]:
    """The model's ``backbone.*`` keys; raises ValueError naming the first mismatching tensors
    unless the checkpoint has exactly these keys with the same shapes."""
    backbone = [key for key in model if key.startswith("backbone.")]
    problems = []
    for key in backbone:
        if key not in checkpoint:
            problems.append(f"{key} missing from the checkpoint")
        elif checkpoint[key].shape != model[key].shape:
            shapes = f"{tuple(checkpoint[key].shape)} in the checkpoint, {tuple(model[key].shape)} in SG-Net"
            problems.append(f"{key} {shapes}")
    problems += [f"{key} not in SG-Net" for key in checkpoint if key.startswith("backbone.") and key not in model]
    if problems:
        more = f" (and {len(problems) - _MISMATCHES_SHOWN} more)" if len(problems) > _MISMATCHES_SHOWN else ""
        raise ValueError(
            f"{source}: the backbone of this detectron2 FCOS checkpoint does not fit SG-Net's "
            f"(MODEL.RESNETS / MODEL.FPN): {'; '.join(problems[:_MISMATCHES_SHOWN])}{more}"
        )
    return backbone


def _tower_layers(state_dict: Dict[str, Tensor], prefix: str) -> List[Tuple[str, Optional[str]]]:
    """(conv, norm or None) module names of the layers of a conv tower, in order, from its keys:
    a module with a 4-D weight is a conv starting a layer, one with a 1-D weight its norm."""
    indices = sorted({int(key[len(prefix) :].split(".")[0]) for key in state_dict if key.startswith(prefix)})
    layers = []
    for index in indices:
        module = f"{prefix}{index}"
        if state_dict[f"{module}.weight"].dim() == 4:
            layers.append((module, None))
        else:
            layers[-1] = (layers[-1][0], module)
    return layers


def _module_pairs(checkpoint: Dict[str, Tensor], model: Dict[str, Tensor]) -> Dict[str, str]:
    """SG-Net head module -> detectron2 FCOS head module, for the towers' leading layers and the
    box and centerness predictors."""
    pairs = {}
    for source_prefix, target_prefix in _TOWERS:
        for (source_conv, source_norm), (target_conv, target_norm) in zip(
            _tower_layers(checkpoint, source_prefix), _tower_layers(model, target_prefix)
        ):
            pairs[target_conv] = source_conv
            if source_norm and target_norm:
                pairs[target_norm] = source_norm
    pairs.update({target: source for source, target in _PREDICTORS.items()})
    return pairs


def convert_fcos_checkpoint(
    checkpoint: Dict[str, Tensor], model: Dict[str, Tensor], class_map: Dict[int, int], source: str
) -> Tuple[Dict[str, Tensor], FCOSInitReport]:
    """SG-Net's state dict, as far as a detectron2 FCOS checkpoint gives it (see the module's
    docstring), and what was loaded, mapped, left at initialisation and unused.

    Args:
        checkpoint: detectron2 ``FCOS`` state dict (tensors).
        model: SG-Net's current state dict (its initialisation: kept where the checkpoint has
            nothing, including ``cls_score`` rows outside ``class_map``).
        class_map: {SG-Net class: checkpoint class}, contiguous indices; empty = ``cls_score``
            left at its initialisation.
        source: the checkpoint's file, for error messages.
    Raises:
        ValueError: the backbone does not fit, or ``class_map`` names a class either side lacks.
    """
    loaded = _check_backbone_fits(checkpoint, model, source)
    converted = {key: checkpoint[key] for key in loaded}
    mapped = {}
    for target, source_module in _module_pairs(checkpoint, model).items():
        for name in ("weight", "bias"):
            target_key, source_key = f"{target}.{name}", f"{source_module}.{name}"
            both = target_key in model and source_key in checkpoint
            if both and checkpoint[source_key].shape == model[target_key].shape:
                converted[target_key] = checkpoint[source_key]
                mapped[target_key] = source_key
    if class_map:
        for name in ("weight", "bias"):
            key = f"{_CLS_SCORE}.{name}"
            converted[key] = _class_rows(checkpoint[key], model[key], class_map, source)
            mapped[key] = key
    used = set(loaded) | set(mapped.values())
    report = FCOSInitReport(
        loaded=loaded,
        mapped=mapped,
        class_rows=dict(class_map),
        left_at_init=[key for key in model if key not in converted],
        unused=[key for key in checkpoint if key not in used],
    )
    return converted, report


def _class_rows(checkpoint_rows: Tensor, model_rows: Tensor, class_map: Dict[int, int], source: str) -> Tensor:
    """``model_rows`` (C, ...) with row t replaced by ``checkpoint_rows`` (C', ...) row
    ``class_map[t]``."""
    for target, source_class in class_map.items():
        if not (0 <= target < len(model_rows) and 0 <= source_class < len(checkpoint_rows)):
            raise ValueError(
                f"{source}: MODEL.SGNET.FCOS_CLASS_MAP maps class {target} to checkpoint class {source_class}, "
                f"but SG-Net has {len(model_rows)} classes and the checkpoint's cls_score {len(checkpoint_rows)}"
            )
    if checkpoint_rows.shape[1:] != model_rows.shape[1:]:
        raise ValueError(
            f"{source}: cls_score is {tuple(checkpoint_rows.shape)} in the checkpoint, {tuple(model_rows.shape)} "
            "in SG-Net: rows of different shapes cannot be mapped (MODEL.SGNET.FCOS_CLASS_MAP)"
        )
    rows = model_rows.clone()
    targets = list(class_map)
    # .to(rows): the model may be on a GPU already, the checkpoint is on the CPU.
    rows[targets] = checkpoint_rows[[class_map[t] for t in targets]].to(rows)
    return rows


class SGNetCheckpointer(DetectionCheckpointer):
    """detectron2's ``DetectionCheckpointer`` that initialises SG-Net from a detectron2 FCOS
    checkpoint (model-zoo ``.pkl`` or ``.pth``) by :func:`convert_fcos_checkpoint`, logging what
    it loaded, mapped and left at initialisation (``fcos_init_report`` keeps it). Every other
    checkpoint loads exactly as with ``DetectionCheckpointer``; saving is unchanged.
    """

    def __init__(self, model, save_dir: str = "", *, fcos_class_map: Optional[Dict[int, int]] = None, **kwargs):
        super().__init__(model, save_dir, **kwargs)
        self.fcos_class_map = dict(fcos_class_map or {})
        self.fcos_init_report: Optional[FCOSInitReport] = None
        self._loading = None

    def load(self, path, *args, **kwargs):
        # _load_model is not told the file: kept here for its error messages and log.
        self._loading, self.fcos_init_report = path, None
        try:
            return super().load(path, *args, **kwargs)
        finally:
            self._loading = None

    def _load_model(self, checkpoint):
        if is_detectron2_fcos(checkpoint["model"]):
            self._convert_ndarray_to_tensor(checkpoint["model"])  # model-zoo .pkl hold numpy arrays
            checkpoint["model"], self.fcos_init_report = convert_fcos_checkpoint(
                checkpoint["model"], self.model.state_dict(), self.fcos_class_map, self._loading
            )
            self.logger.info(self.fcos_init_report.summary(self._loading))
        return super()._load_model(checkpoint)


def build_checkpointer(cfg, model, save_dir: str = "", **checkpointables) -> SGNetCheckpointer:
    """An :class:`SGNetCheckpointer` with ``MODEL.SGNET.FCOS_CLASS_MAP`` (one entry per class,
    the checkpoint class or -1 for none, or empty)."""
    classes = list(cfg.MODEL.SGNET.FCOS_CLASS_MAP)
    if classes and (len(classes) != cfg.MODEL.SGNET.NUM_CLASSES or min(classes) < -1):
        raise ValueError(
            f"MODEL.SGNET.FCOS_CLASS_MAP needs one entry per class (MODEL.SGNET.NUM_CLASSES "
            f"{cfg.MODEL.SGNET.NUM_CLASSES}), each a checkpoint class index or -1; got {classes}"
        )
    class_map = {target: source for target, source in enumerate(classes) if source >= 0}
    return SGNetCheckpointer(model, save_dir, fcos_class_map=class_map, **checkpointables)
