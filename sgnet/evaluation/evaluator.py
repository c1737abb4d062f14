"""detectron2 evaluator for video instance segmentation on YouTube-VIS-format datasets."""
import itertools
import json
import logging
import os
import zipfile
from typing import Dict, List, Optional

from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm
from detectron2.utils.file_io import PathManager

from ..fileio import atomic_write
from ..formats.rle import encode_masks
from .tracks import load_ground_truth
from .ytvis_metric import evaluate_ytvis

__all__ = ["YTVISEvaluator", "predictions_to_results"]


class YTVISEvaluator(DatasetEvaluator):
    """
    Converts per-video model outputs to YouTube-VIS result records, writes ``results.json`` and
    the benchmark server's ``results.zip``, and computes the official metric when the dataset's
    json has ground truth (:func:`evaluate_ytvis`, which also logs identity switches).

    The dataset's metadata must have ``json_file`` (its YouTube-VIS annotation json) and
    ``thing_dataset_id_to_contiguous_id``; a ``video_split`` (a
    :class:`~sgnet.formats.video_split.VideoSplit`) makes the dataset that part of the file's
    videos, and only their ground truth is scored. They are read from ``MetadataCatalog`` when used,
    not when the evaluator is built: the dataset's loader sets the file's categories when it runs,
    which may be after (``DefaultTrainer.test(cfg, model, evaluators)`` builds them first).
    """

    def __init__(self, dataset_name: str, output_dir: Optional[str] = None, distributed=True):
        """
        Args:
            dataset_name: a registered dataset (see above).
            output_dir: where to write results.json and results.zip; nothing is written if None.
            distributed: gather the predictions of all processes and evaluate on the main one;
                if False, every process evaluates its own predictions.
        """
        self._logger = logging.getLogger(__name__)
        self._dataset_name = dataset_name
        self._output_dir = output_dir
        self._distributed = distributed
        self._predictions = []

    def _dataset_category_id(self) -> Dict[int, int]:
        """Contiguous id -> dataset category id (models predict one, results name the other)."""
        id_map = MetadataCatalog.get(self._dataset_name).thing_dataset_id_to_contiguous_id
        return {contiguous: dataset_id for dataset_id, contiguous in id_map.items()}

    def reset(self):
        self._predictions = []

    def process(self, inputs, outputs):
        """
        Args:
            inputs: video dicts, each with "video_id", "length", "height", "width".
            outputs: one per video, see :func:`predictions_to_results`.
        """
        dataset_category_id = self._dataset_category_id()
        for video, output in zip(inputs, outputs):
            # Encode right away: RLE strings are small, per-frame masks are not.
            self._predictions.extend(predictions_to_results(video, output, dataset_category_id))

    def evaluate(self):
        """
        Returns:
            On the main process, ``{"segm": {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1",
            "AR10"}, "tracking": {"IDSW", "IDSW_per_video"}}`` (AP on 0-100) when the json has
            ground truth, else ``{}``: the files' locations
            are logged, not returned, because detectron2's EvalHook requires numbers. Other
            processes return ``{}``.
        """
        predictions = self._gather_predictions()
        if predictions is None:
            return {}
        if self._output_dir:
            self._write_results(predictions)
        # Loaded from the path, so that a problem in the file is reported with its name.
        metadata = MetadataCatalog.get(self._dataset_name)
        json_file = metadata.json_file
        truth = load_ground_truth(json_file, metadata.get("video_split"))
        if not truth.tracks:
            self._logger.info(
                f"{json_file} has no ground-truth annotations: no metrics for "
                f"'{self._dataset_name}'. {self._submission_hint()}"
            )
            return {}
        return evaluate_ytvis(truth, predictions)

    def _submission_hint(self) -> str:
        if self._output_dir:
            zip_path = os.path.join(self._output_dir, "results.zip")
            return f"Submit {zip_path} to the benchmark server."
        return "Give the evaluator an output_dir to write results.zip for the server."

    def _gather_predictions(self) -> Optional[List[dict]]:
        """All processes' result records on the main process (in rank order), None elsewhere."""
        if not self._distributed:
            return self._predictions
        comm.synchronize()
        per_rank = comm.gather(self._predictions, dst=0)
        if not comm.is_main_process():
            return None
        return list(itertools.chain(*per_rank))

    def _write_results(self, predictions: List[dict]):
        """results.json and results.zip, each whole or (after a failure) as before."""
        PathManager.mkdirs(self._output_dir)
        text = json.dumps(predictions)
        json_path = os.path.join(self._output_dir, "results.json")
        zip_path = os.path.join(self._output_dir, "results.zip")
        # Nested, so that a failure writing either leaves both previous files: neither is renamed
        # into place before both are complete.
        with atomic_write(json_path, "w") as json_file, atomic_write(zip_path, "wb") as zip_file:
            json_file.write(text)
            # The server takes a zip holding a single results.json.
            with zipfile.ZipFile(zip_file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                archive.writestr("results.json", text)
        self._logger.info(f"Wrote {len(predictions)} results (track, category) to {json_path} and {zip_path}.")


def predictions_to_results(
    video: dict, output: dict, dataset_category_id: Dict[int, int]
) -> List[dict]:
    """
    Args:
        video: a video dict with "video_id", "length" (T), "height" and "width" (H, W: the
            original resolution).
        output: the model's output for it, N entries (a track, or a track under one of its
            classes): ``"image_size"`` (H, W), ``"pred_scores"`` (N floats), ``"pred_labels"``
            (N contiguous category ids), ``"pred_masks"`` (N lists of T (H, W) bool/uint8
            tensors or arrays, or compressed RLE dicts already (a stream's, encoded per frame
            by :func:`~sgnet.formats.rle.encode_masks`), None where the track is absent; entries
            of one track may share the same list, which is then encoded once).
        dataset_category_id: contiguous id -> dataset category id.

    Returns:
        N result records ``{"video_id", "category_id", "score", "segmentations"}`` with
        per-frame compressed RLE (counts as str) or None.
    """
    video_id, length = video["video_id"], video["length"]
    size = (video["height"], video["width"])
    if tuple(output["image_size"]) != size:
        raise ValueError(
            f"video {video_id}: results must be at the original resolution {size}, "
            f"got image_size {tuple(output['image_size'])}"
        )
    scores, labels, masks = output["pred_scores"], output["pred_labels"], output["pred_masks"]
    if not len(scores) == len(labels) == len(masks):
        raise ValueError(
            f"video {video_id}: {len(scores)} scores, {len(labels)} labels, "
            f"{len(masks)} mask tracks"
        )
    records, encoded = [], {}
    for score, label, track_masks in zip(scores, labels, masks):
        if int(label) not in dataset_category_id:
            raise ValueError(f"video {video_id}: label {int(label)} is no category of the dataset")
        if id(track_masks) not in encoded:  # `masks` holds every list, so ids are not reused
            _check_track_masks(track_masks, video_id, length, size)
            encoded[id(track_masks)] = _encode_track(track_masks)
        records.append(
            {
                "video_id": video_id,
                "category_id": dataset_category_id[int(label)],
                "score": float(score),
                "segmentations": encoded[id(track_masks)],
            }
        )
    return records


def _encode_track(track_masks) -> List[Optional[dict]]:
    """Compressed RLE per frame: masks encoded, RLE dicts (encoded already) kept."""
    raw = [None if isinstance(mask, dict) else mask for mask in track_masks]
    return [mask if isinstance(mask, dict) else rle for mask, rle in zip(track_masks, encode_masks(raw))]


def _check_track_masks(track_masks, video_id, length, size):
    if len(track_masks) != length:
        raise ValueError(f"video {video_id}: a track has {len(track_masks)} frames, not {length}")
    for t, mask in enumerate(track_masks):
        shape = None if mask is None else tuple(mask["size"] if isinstance(mask, dict) else mask.shape)
        if shape is not None and shape != size:
            raise ValueError(
                f"video {video_id}, frame {t}: mask of shape {shape}, not {size}"
            )
