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
import os
import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

import torch
from detectron2.checkpoint import DetectionCheckpointer
from torch import Tensor

from .config_checks import check_config_values
from .errors import InvalidInput, MissingInput, one_line
from .fileio import atomic_write

__all__ = [
    "SGNetCheckpointer",
    "CheckpointLoadError",
    "build_checkpointer",
    "checkpoint_category_ids",
    "checkpoint_class_names",
    "convert_fcos_checkpoint",
    "is_detectron2_fcos",
    "FCOSInitReport",
]

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
        raise InvalidInput(
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
        InvalidInput: the backbone does not fit, or ``class_map`` names a class either side lacks.
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
            raise InvalidInput(
                f"{source}: MODEL.SGNET.FCOS_CLASS_MAP maps class {target} to checkpoint class {source_class}, "
                f"but SG-Net has {len(model_rows)} classes and the checkpoint's cls_score {len(checkpoint_rows)}"
            )
    if checkpoint_rows.shape[1:] != model_rows.shape[1:]:
        raise InvalidInput(
            f"{source}: cls_score is {tuple(checkpoint_rows.shape)} in the checkpoint, {tuple(model_rows.shape)} "
            "in SG-Net: rows of different shapes cannot be mapped (MODEL.SGNET.FCOS_CLASS_MAP)"
        )
    rows = model_rows.clone()
    targets = list(class_map)
    # .to(rows): the model may be on a GPU already, the checkpoint is on the CPU.
    rows[targets] = checkpoint_rows[[class_map[t] for t in targets]].to(rows)
    return rows


class CheckpointLoadError(InvalidInput):
    """A checkpoint file that torch / detectron2 cannot read (truncated, empty, not a checkpoint)."""


class SGNetCheckpointer(DetectionCheckpointer):
    """detectron2's ``DetectionCheckpointer`` that

    - initialises SG-Net from a detectron2 FCOS checkpoint (model-zoo ``.pkl`` or ``.pth``) by
      :func:`convert_fcos_checkpoint`, logging what it loaded, mapped and left at initialisation
      (``fcos_init_report`` keeps it); every other checkpoint loads as with detectron2's;
    - reports a missing or unreadable file in one line naming it (:class:`CheckpointLoadError`),
      and refuses to resume (restore the optimizer and schedule too) from a checkpoint whose
      model differs from the config's, which would fail in the first optimizer step;
    - saves atomically: a checkpoint and the ``last_checkpoint`` tag are written under a
      temporary name and renamed when complete, so a killed save leaves the previous files;
    - resumes without losing work (:meth:`resume_or_load`): without a ``last_checkpoint`` tag
      (a copied or synced run folder) from the newest checkpoint that loads, skipping truncated
      ones with a warning;
    - records the model's classes (``classes``: :func:`sgnet.config_checks.training_classes`) in
      every checkpoint it saves, under ``"classes"``; :meth:`load` returns them with the rest
      (:func:`checkpoint_class_names`).
    """

    def __init__(
        self,
        model,
        save_dir: str = "",
        *,
        fcos_class_map: Optional[Dict[int, int]] = None,
        classes: Optional[dict] = None,
        **kwargs,
    ):
        super().__init__(model, save_dir, **kwargs)
        self.fcos_class_map = dict(fcos_class_map or {})
        self.classes = classes
        self.fcos_init_report: Optional[FCOSInitReport] = None
        self._loading = None
        self._restoring = False

    # -- loading ---------------------------------------------------------------------------------
    def load(self, path, checkpointables=None):
        if path and "://" not in path and not os.path.isfile(path):
            raise MissingInput(f"{path}: no such checkpoint file (MODEL.WEIGHTS or the run's last_checkpoint)")
        # _load_model is not told the file nor what else is restored: kept here for it.
        wanted = self.checkpointables if checkpointables is None else checkpointables
        self._loading, self._restoring, self.fcos_init_report = path, bool(wanted), None
        try:
            return super().load(path, checkpointables=checkpointables)
        finally:
            self._loading, self._restoring = None, False
            # detectron2 main's load sets this and clears it only on success; a failed load (a
            # truncated candidate while resuming) would make every later load assert.
            if hasattr(self, "_parsed_url_during_load"):
                self._parsed_url_during_load = None

    def _load_file(self, filename):
        try:
            checkpoint = super()._load_file(filename)
        except Exception as e:  # noqa: BLE001
            # torch.load / pickle fail on a truncated, empty or foreign file with whatever error
            # the bytes lead to (EOFError, UnpicklingError, IndexError, OSError, ...): all say
            # the file is not a checkpoint. The cause stays chained.
            raise CheckpointLoadError(
                f"{filename}: not a checkpoint torch or detectron2 can read ({type(e).__name__}: {one_line(e) or 'no data'})"
            ) from e
        if not isinstance(checkpoint.get("model"), dict):
            raise CheckpointLoadError(f"{filename}: not a model checkpoint (no 'model' state dict)")
        return checkpoint

    def _load_model(self, checkpoint):
        if is_detectron2_fcos(checkpoint["model"]):
            self._convert_ndarray_to_tensor(checkpoint["model"])  # model-zoo .pkl hold numpy arrays
            checkpoint["model"], self.fcos_init_report = convert_fcos_checkpoint(
                checkpoint["model"], self.model.state_dict(), self.fcos_class_map, self._loading
            )
            self.logger.info(self.fcos_init_report.summary(self._loading))
        elif self._restoring and any(key in checkpoint for key in self.checkpointables):
            self._check_same_model(checkpoint["model"])
        return super()._load_model(checkpoint)

    def _check_same_model(self, state: Dict[str, Tensor]) -> None:
        """Resuming restores the optimizer's per-parameter state: the checkpoint's model must be
        the config's exactly (another class count would fail in the first optimizer step)."""
        model = self.model.state_dict()
        differences = [
            f"{key} {tuple(state[key].shape)} in the checkpoint, {tuple(model[key].shape)} in the model"
            for key in model
            if key in state and hasattr(state[key], "shape") and tuple(state[key].shape) != tuple(model[key].shape)
        ]
        differences += [f"{key} missing from the checkpoint" for key in model if key not in state]
        if differences:
            more = f" (and {len(differences) - _MISMATCHES_SHOWN} more)" if len(differences) > _MISMATCHES_SHOWN else ""
            raise InvalidInput(
                f"{self._loading}: cannot resume from this checkpoint, its model differs from the config's "
                f"({'; '.join(differences[:_MISMATCHES_SHOWN])}{more}): resume with the config it was trained "
                "with, or train into a new OUTPUT_DIR with MODEL.WEIGHTS set to it"
            )

    # -- resuming --------------------------------------------------------------------------------
    def checkpoint_files(self) -> List[str]:
        """The run's checkpoints in ``save_dir``, newest first: the one ``last_checkpoint`` names,
        then ``model_final.pth``, then ``model_<iteration>.pth`` by iteration, descending."""
        if not self.save_dir or not os.path.isdir(self.save_dir):
            return []
        tagged = self.get_checkpoint_file() if super().has_checkpoint() else ""

        def age(name: str):
            match = _ITERATION_NAME.fullmatch(name)
            return (name == os.path.basename(tagged), name == "model_final.pth", int(match.group(1)) if match else -1)

        names = [n for n in os.listdir(self.save_dir) if n == "model_final.pth" or _ITERATION_NAME.fullmatch(n)]
        return [os.path.join(self.save_dir, n) for n in sorted(names, key=age, reverse=True)]

    def has_checkpoint(self) -> bool:
        """Whether ``save_dir`` holds a checkpoint to resume from, tagged or not (detectron2's
        trainer then starts at the iteration after the restored one)."""
        return bool(self.checkpoint_files())

    def resume_or_load(self, path: str, *, resume: bool = True):
        """With ``resume``, restore the newest checkpoint of ``save_dir`` that loads (model,
        optimizer, scheduler, iteration), trying older ones when one is truncated or unreadable
        (each skipped with a warning); without a ``last_checkpoint`` tag, say which file was taken.
        Without ``resume`` or any checkpoint: load ``path``'s model weights only.

        Raises:
            CheckpointLoadError: every checkpoint of ``save_dir`` fails to load.
        """
        candidates = self.checkpoint_files() if resume else []
        if not candidates:
            return self.load(path, checkpointables=[])
        if not super().has_checkpoint():
            self.logger.warning(
                f"{self.save_dir} has checkpoints but no last_checkpoint tag: resuming from the newest that loads"
            )
        failures = []
        for candidate in candidates:
            try:
                loaded = self.load(candidate)
            except CheckpointLoadError as e:
                self.logger.warning(f"Skipping {candidate}: {e}")
                failures.append(candidate)
                continue
            self.logger.info(f"Resumed from {candidate} (iteration {loaded.get('iteration', 'unknown')})")
            return loaded
        raise CheckpointLoadError(
            f"{self.save_dir}: none of its {len(failures)} checkpoints loads ({', '.join(map(os.path.basename, failures))}); "
            "start over in a new OUTPUT_DIR"
        )

    # -- saving ----------------------------------------------------------------------------------
    def save(self, name: str, **kwargs) -> None:
        """detectron2's ``save`` (same file, same content), written atomically."""
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        data.update({key: obj.state_dict() for key, obj in self.checkpointables.items()})
        if self.classes is not None:
            data["classes"] = self.classes
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {save_file}")
        with atomic_write(save_file, "wb") as f:
            torch.save(data, f)
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        with atomic_write(os.path.join(self.save_dir, "last_checkpoint"), "w") as f:
            f.write(last_filename_basename)


# Periodic checkpoints of detectron2's hook: model_0000099.pth.
_ITERATION_NAME = re.compile(r"model_(\d+)\.pth")


def build_checkpointer(cfg, model, save_dir: str = "", classes: Optional[dict] = None, **checkpointables) -> SGNetCheckpointer:
    """An :class:`SGNetCheckpointer` with ``MODEL.SGNET.FCOS_CLASS_MAP`` (one entry per class,
    the checkpoint class or -1 for none, or empty) that records ``classes`` in what it saves."""
    check_config_values(cfg)
    fcos_classes = list(cfg.MODEL.SGNET.FCOS_CLASS_MAP)
    class_map = {target: source for target, source in enumerate(fcos_classes) if source >= 0}
    return SGNetCheckpointer(model, save_dir, fcos_class_map=class_map, classes=classes, **checkpointables)


def checkpoint_class_names(loaded: dict) -> Optional[List[str]]:
    """The class names a loaded checkpoint (what :meth:`SGNetCheckpointer.load` returns) records,
    in label order; None for checkpoints without them (older runs, other models)."""
    return _recorded_classes(loaded, "names")


def checkpoint_category_ids(loaded: dict) -> Optional[List[int]]:
    """The dataset category ids of the classes a loaded checkpoint records, in label order; None
    for checkpoints without them, or with an id unknown (None) for some class."""
    ids = _recorded_classes(loaded, "dataset_ids")
    return None if ids is None or None in ids else [int(i) for i in ids]


def _recorded_classes(loaded: dict, key: str) -> Optional[list]:
    """The list ``key`` ("names", "dataset_ids") of the checkpoint's ``classes``, or None."""
    classes = loaded.get("classes") if isinstance(loaded, dict) else None
    return list(classes[key]) if isinstance(classes, dict) and classes.get(key) is not None else None
