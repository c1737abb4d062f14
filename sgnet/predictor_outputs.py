"""Machine-readable files of a video tracked by :class:`~sgnet.predictor.VideoPredictor` (the demo's
``--save-results`` and ``--save-masks``), built as the frames stream by:

- :class:`VideoTracks`: the video's tracks as YouTube-VIS result records, accumulated and encoded
  as train_net's evaluation does (the model's ``video_accumulator``, then
  :func:`~sgnet.evaluation.predictions_to_results`), each frame's masks compressed as it comes;
  :func:`write_results` writes them, atomically;
- :class:`MaskFolder`: one indexed PNG per frame (:mod:`sgnet.formats.indexed_png`: pixel = track
  id, 0 = background) and ``tracks.json``, staged and moved into place whole;
- :class:`VideoOutputs`: all of these and the drawn video (:func:`draw_instances`) and its strip,
  as the demo and ``tools/predict_videos.py`` write a video, whole or not at all.

::

    predictor = VideoPredictor(cfg)
    reader = VideoFrameReader("my_video.mp4")
    tracks, masks = VideoTracks(predictor, (reader.height, reader.width)), MaskFolder("out/masks")
    for index, (frame, instances) in enumerate(predictor.track(reader)):
        tracks.add(index, instances)
        masks.write(index, instances[instances.scores >= 0.3])
    masks.commit(tracks.track_classes())
    write_results("out/results.json", tracks.results())
"""
import json
import os
import shutil
import tempfile
from typing import Dict, List, Optional, Sequence

import numpy as np
from detectron2.structures import Instances

from .data import FrameSink, StripFrames, draw_tracks, write_strip
from .errors import InvalidInput
from .evaluation import predictions_to_results
from .fileio import CreatedFolders, atomic_write
from .formats.indexed_png import paint_ids, write_indexed_png
from .formats.rle import encode_masks

__all__ = [
    "TRACKS_FILE",
    "MaskFolder",
    "VideoOutputs",
    "VideoTracks",
    "check_mask_folder",
    "draw_instances",
    "mask_png_names",
    "shown",
    "write_results",
]

TRACKS_FILE = "tracks.json"


class VideoTracks:
    """One video's tracks from :meth:`VideoPredictor.track <sgnet.predictor.VideoPredictor.track>`
    (``image_size``: its frames' (H, W)), as result records of video ``video_id``: every track
    (the predictor's score threshold, ``MODEL.SGNET.SCORE_THRESH_TEST``, is the only filter, as
    in the evaluation), scored and labelled by ``TEST.TRACK_LABEL_RULE`` / ``CLASSES_PER_TRACK``.
    Memory: a compressed RLE string per detection, not its (H, W) mask."""

    def __init__(self, predictor, image_size, video_id: int = 1):
        self.accumulator = predictor.model.video_accumulator(None, image_size)
        self.video_id = video_id
        self.class_names = predictor.class_names
        self.category_ids = predictor.category_ids

    def add(self, frame_index: int, instances: Instances) -> None:
        """All N instances of frame ``frame_index`` as the predictor yields them (track_ids (N,),
        class_scores (N, C), pred_classes (N,), pred_masks (N, H, W)); call it for every frame."""
        rles = encode_masks(instances.pred_masks)
        self.accumulator.add(frame_index, instances.track_ids, instances.class_scores, instances.pred_classes, rles)

    def results(self) -> List[dict]:
        """The YouTube-VIS result records (per track, or per track and class:
        ``{"video_id", "category_id", "score", "segmentations"}``, compressed RLE or None per frame)."""
        height, width = self.accumulator.image_size
        video = {"video_id": self.video_id, "length": self.accumulator.length, "height": height, "width": width}
        return predictions_to_results(video, self.accumulator.result(), dict(enumerate(self.category_ids)))

    def track_classes(self) -> Dict[int, dict]:
        """Per track id, ``{"class_name" (None when unknown), "category_id", "score"}``: its first
        entry of :meth:`results` (its best class)."""
        return {
            track_id: {
                "class_name": self.class_names[label] if self.class_names else None,
                "category_id": self.category_ids[label],
                "score": score,
            }
            for track_id, (score, label) in self.accumulator.best_entries().items()
        }


def write_results(path: str, records: List[dict], what: str = "--save-results") -> str:
    """``records`` as a json file at ``path`` (with the folders it needs), whole or not at all;
    returns its absolute path. ``what`` names the path in messages."""
    folders = CreatedFolders()
    try:
        folders.make(os.path.dirname(os.path.abspath(path)))
        with atomic_write(path, "w") as f:
            json.dump(records, f)
    except OSError as e:
        folders.remove_empty()
        raise InvalidInput(f"{what} {path}: cannot write it ({e})") from e
    return os.path.abspath(path)


def _is_previous_output(names: Sequence[str]) -> bool:
    """Whether a folder's entries are those of a :class:`MaskFolder` output (or none)."""
    return not names or (TRACKS_FILE in names and all(n == TRACKS_FILE or n.endswith(".png") for n in names))


def check_mask_folder(folder: str, what: str = "--save-masks") -> None:
    """Refuse ``folder`` unless it is new, empty, or an earlier :class:`MaskFolder` output (PNGs
    and tracks.json), which is replaced whole: anything else in it would be lost."""
    if not os.path.exists(folder):
        return
    if not os.path.isdir(folder):
        raise InvalidInput(f"{what} {folder}: is a file, not a folder")
    names = sorted(os.listdir(folder))
    if not _is_previous_output(names):
        raise InvalidInput(
            f"{what} {folder}: holds files that are no earlier mask output ({names[0]}, {len(names)} in all), "
            "which it would replace: choose a new or empty folder"
        )


def mask_png_names(frame_files: Sequence[str]) -> Optional[List[str]]:
    """The ``frame_names`` of a :class:`MaskFolder` for a video read from image files: the files'
    names without extension (so that VOS tools pair masks with frames); None (frame indices)
    when two of them differ only in their extension."""
    stems = [os.path.splitext(os.path.basename(path))[0] for path in frame_files]
    return stems if stems and len(set(stems)) == len(stems) else None


class MaskFolder:
    """Per frame, an indexed PNG of its instances' track ids (:meth:`write`), then ``tracks.json``
    (:meth:`commit`), in a temporary folder beside ``folder`` that :meth:`commit` moves to it
    (replacing an earlier output whole: no frame of a longer earlier video stays) and
    :meth:`discard` removes, with the folders it made. See :func:`check_mask_folder`.

    ``frame_names``: each frame's PNG name without ".png" (its frame file's, so that VOS tools
    pair masks with frames); default its index, ``000000``.
    """

    def __init__(self, folder: str, frame_names: Optional[Sequence[str]] = None):
        self.folder = os.path.abspath(folder)
        self.frame_names = frame_names
        check_mask_folder(self.folder)
        self.folders = CreatedFolders()
        try:
            parent = self.folders.make(os.path.dirname(self.folder))
            self.staging = tempfile.mkdtemp(prefix=f".partial-{os.path.basename(self.folder)}.", dir=parent)
        except OSError as e:
            self.folders.remove_empty()
            raise InvalidInput(f"--save-masks {self.folder}: cannot write it ({e})") from e
        self.frame_spans: Dict[int, List[int]] = {}  # track id -> [first, last] frame it is in

    def write(self, frame_index: int, instances: Instances) -> None:
        """Frame ``frame_index``'s PNG of its N instances (pred_masks (N, H, W), track_ids (N,),
        scores (N,)): where masks overlap, the higher-scoring instance's id."""
        ids = paint_ids(instances.pred_masks.numpy(), instances.track_ids.numpy(), instances.scores.numpy())
        name = self.frame_names[frame_index] if self.frame_names else f"{frame_index:06d}"
        write_indexed_png(os.path.join(self.staging, f"{name}.png"), ids)
        for track_id in instances.track_ids.tolist():
            self.frame_spans.setdefault(track_id, [frame_index, frame_index])[1] = frame_index

    def commit(self, track_classes: Dict[int, dict]) -> str:
        """Write tracks.json (per track id in the PNGs: its ``track_classes`` entry, e.g.
        :meth:`VideoTracks.track_classes`, and ``first_frame`` / ``last_frame``, the frame
        indices it is written in) and move the folder into place; returns its absolute path."""
        tracks = {
            str(track_id): {**track_classes[track_id], "first_frame": first, "last_frame": last}
            for track_id, (first, last) in sorted(self.frame_spans.items())
        }
        with open(os.path.join(self.staging, TRACKS_FILE), "w") as f:
            json.dump(tracks, f, indent=1)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.staging, 0o777 & ~umask)  # mkdtemp creates it private
        self._replace_folder()
        return self.folder

    def _replace_folder(self) -> None:
        """The staged folder to ``folder``; an earlier output there is renamed away first and
        removed after, so that ``folder`` is never half old, half new."""
        if not os.path.exists(self.folder):
            os.rename(self.staging, self.folder)
            return
        check_mask_folder(self.folder)  # again: files may have been put there meanwhile
        previous = tempfile.mkdtemp(prefix=f".previous-{os.path.basename(self.folder)}.", dir=os.path.dirname(self.folder))
        os.rename(self.folder, previous)  # over the empty folder mkdtemp made
        try:
            os.rename(self.staging, self.folder)
        except BaseException:
            os.rename(previous, self.folder)
            raise
        shutil.rmtree(previous)

    def discard(self) -> None:
        """Remove the staged folder and the folders this output made."""
        shutil.rmtree(self.staging, ignore_errors=True)
        self.folders.remove_empty()


def shown(instances: Instances, threshold: float) -> Instances:
    """The instances that are drawn and written into mask PNGs: those scoring at least ``threshold``."""
    return instances[instances.scores >= threshold]


def draw_instances(frame_bgr: np.ndarray, instances: Instances, class_names, threshold: float) -> np.ndarray:
    """Masks, "#id class score" labels (the class by name when ``class_names`` is known, else its
    index) and boxes of the :func:`shown` instances over an (H, W, 3) BGR frame, coloured by
    track id. Returns a new (H, W, 3) BGR frame."""
    instances = shown(instances, threshold)
    labels = [
        f"#{track_id} {class_names[c] if class_names else c} {score:.0%}"
        for track_id, c, score in zip(instances.track_ids.tolist(), instances.pred_classes.tolist(), instances.scores.tolist())
    ]
    masks, boxes = instances.pred_masks.numpy(), instances.pred_boxes.tensor.numpy()
    return draw_tracks(frame_bgr, masks, boxes, labels, instances.track_ids.tolist())


class VideoOutputs:
    """What is written of one video tracked by a predictor, a frame at a time (:meth:`add`), each
    output optional (None: not written): ``video`` the drawn frames (an H.264 file or a folder of
    PNGs, :class:`~sgnet.data.FrameSink`) and ``strip`` a few of them side by side
    (``strip_frames``; of ``num_frames``, or unknown: :class:`~sgnet.data.StripFrames`),
    ``masks`` a :class:`MaskFolder` (``frame_names`` its PNGs' names), ``results`` the
    :class:`VideoTracks` records of ``video_id`` (a .json file). Drawn and mask PNGs show the
    instances scoring at least ``threshold``; the results hold every track.

    ``frame_size`` (H, W) and ``fps`` are the source's. :meth:`commit` finishes each output in
    turn; :meth:`discard` removes those not committed yet (call it on any failure).
    """

    def __init__(
        self,
        predictor,
        frame_size,
        fps: float,
        *,
        threshold: float,
        video: Optional[str] = None,
        strip: Optional[str] = None,
        strip_frames: int = 4,
        num_frames: Optional[int] = None,
        masks: Optional[str] = None,
        frame_names: Optional[Sequence[str]] = None,
        results: Optional[str] = None,
        video_id: int = 1,
    ):
        self.class_names = predictor.class_names
        self.threshold = threshold
        self.results_path, self.strip_path = results, strip
        self.pending: list = []
        try:
            self.sink = FrameSink(video, fps, *frame_size) if video else None
            self.pending += [self.sink] if self.sink else []
            self.masks = MaskFolder(masks, frame_names) if masks else None
            self.pending += [self.masks] if self.masks else []
        except BaseException:
            self.discard()
            raise
        self.tracks = VideoTracks(predictor, frame_size, video_id) if masks or results else None
        self.strip = StripFrames(strip_frames, num_frames) if strip else None
        self.frames = 0
        self.shown_track_ids: set = set()

    def add(self, instances: Instances, frame: Optional[np.ndarray] = None) -> None:
        """The next frame's tracked instances (all of them, as the predictor yields them) and the
        (H, W, 3) BGR frame (needed when drawing)."""
        visible = shown(instances, self.threshold)
        self.shown_track_ids.update(visible.track_ids.tolist())
        if self.sink or self.strip:
            drawn = draw_instances(frame, instances, self.class_names, self.threshold)
            if self.sink:
                self.sink.write(drawn)
            if self.strip:
                self.strip.add(self.frames, drawn)
        if self.tracks:
            self.tracks.add(self.frames, instances)  # all of them, as the evaluation takes them
        if self.masks:
            self.masks.write(self.frames, visible)
        self.frames += 1

    def commit(self, source: str) -> Dict[str, str]:
        """Finish every output (``source`` names the video in messages); returns their absolute
        paths by kind ("video", "masks", "results", "strip")."""
        if self.frames == 0:
            raise InvalidInput(f"{source} has no frames")
        paths = {}
        if self.sink:
            paths["video"] = self._commit(self.sink)
        if self.masks:
            paths["masks"] = self._commit(self.masks, self.tracks.track_classes())
        if self.results_path:
            paths["results"] = write_results(self.results_path, self.tracks.results())
        if self.strip:
            paths["strip"] = write_strip(self.strip_path, self.strip.frames())
        return paths

    def _commit(self, output, *args) -> str:
        path = output.commit(*args)
        self.pending.remove(output)
        return path

    def discard(self) -> None:
        for output in self.pending:
            output.discard()
        self.pending = []
