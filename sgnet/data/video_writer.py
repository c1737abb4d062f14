"""Writing drawn videos: the counterpart of :mod:`sgnet.data.video`'s reader, shared by the demo
(predicted tracks) and ``tools/visualize_data.py`` (ground-truth tracks).

- :func:`draw_tracks`: masks, boxes and labels over a frame, one colour per track id
  (:func:`track_color`, stable over a video and across runs); :func:`draw_tracks_and_crowds`
  also greys and hatches crowd regions (:func:`hatch_region`), as ground truth is shown;
- :class:`FrameSink`: frames into an H.264 video or a folder of PNGs, whole or not at all;
- :func:`write_strip`: a few frames side by side as one image, written atomically;
  :func:`write_video_and_strip`: a video's every frame and a strip of a few, both or neither;
- :func:`output_kind`, :class:`StripFrames`: what an output path is, which frames a strip shows.
"""
import itertools
import os
import shutil
import tempfile
from typing import Dict, Iterable, List, Optional, Sequence

import av
import cv2
import numpy as np
from detectron2.utils.colormap import colormap

from ..errors import InvalidInput
from ..fileio import CreatedFolders, atomic_write

__all__ = [
    "FrameSink",
    "STRIP_SUFFIXES",
    "StripFrames",
    "VIDEO_SUFFIXES",
    "draw_tracks",
    "draw_tracks_and_crowds",
    "hatch_region",
    "output_kind",
        "track_color",
    "write_strip",
    "write_video_and_strip",
]

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi")
# What cv2.imencode writes for a strip.
STRIP_SUFFIXES = (".png", ".jpg", ".jpeg")
_TRACK_PALETTE = colormap(rgb=True, maximum=1)
# Crowd regions: diagonal stripes of this period (pixels), half of them dark, over the greyed frame.
HATCH_PERIOD = 6
HATCH_STRIPE_BGR = (40, 40, 40)


def track_color(track_id: int) -> np.ndarray:
    """The RGB colour (3 floats in [0, 1]) of a track id: the same in every frame and every run."""
    return _TRACK_PALETTE[track_id % len(_TRACK_PALETTE)]


def draw_tracks(
    frame_bgr: np.ndarray, masks: np.ndarray, boxes: np.ndarray, labels: Sequence[str], track_ids: Sequence[int]
) -> np.ndarray:
    """An (H, W, 3) BGR frame with N objects drawn by detectron2's ``Visualizer``: ``masks``
    (N, H, W) bool at half opacity, ``boxes`` (N, 4) XYXY, ``labels`` (N strings), each object in
    the colour of its track id. Returns a new (H, W, 3) BGR uint8 array."""
    # Imported here: it brings matplotlib, which ``import sgnet`` (every training process) would
    # otherwise load without drawing anything.
    from detectron2.utils.visualizer import ColorMode, Visualizer

    visualizer = Visualizer(frame_bgr[:, :, ::-1], instance_mode=ColorMode.IMAGE)
    drawn = visualizer.overlay_instances(
        masks=masks,
        boxes=boxes,
        labels=list(labels),
        assigned_colors=[track_color(t) for t in track_ids],
        alpha=0.5,
    )
    return drawn.get_image()[:, :, ::-1]


def hatch_region(frame_bgr: np.ndarray, region: np.ndarray) -> np.ndarray:
    """A copy of the (H, W, 3) BGR frame with the (H, W) bool ``region`` in grey, crossed by
    diagonal stripes: unlike any object's colour overlay, and without an identity."""
    hatched = frame_bgr.copy()
    rows, columns = np.indices(region.shape)
    stripes = region & ((rows + columns) % HATCH_PERIOD < HATCH_PERIOD // 2)
    hatched[region] = frame_bgr[region].mean(axis=1, keepdims=True).astype(np.uint8)
    hatched[stripes] = HATCH_STRIPE_BGR
    return hatched


def draw_tracks_and_crowds(
    frame_bgr: np.ndarray,
    masks: np.ndarray,
    boxes: np.ndarray,
    labels: Sequence[str],
    track_ids: Sequence[int],
    crowd: Sequence[bool],
) -> np.ndarray:
    """:func:`draw_tracks` of N objects, except that those marked ``crowd`` (N bools) are drawn
    as one hatched region without label (:func:`hatch_region`): areas that training and the
    metric ignore. ``masks`` (N, H, W) bool, ``boxes`` (N, 4) XYXY. Returns (H, W, 3) BGR."""
    crowd = np.asarray(crowd, dtype=bool).reshape(-1)
    frame_bgr = hatch_region(frame_bgr, masks[crowd].any(axis=0))
    objects = np.flatnonzero(~crowd)
    return draw_tracks(
        frame_bgr, masks[objects], boxes[objects], [labels[i] for i in objects], [track_ids[i] for i in objects]
    )


def output_kind(output: str) -> str:
    """"video" or "frames" (a folder of PNGs) for an ``--output`` path; an extension the writer
    cannot produce (``out.webm``) is refused rather than silently becoming a folder."""
    suffix = os.path.splitext(output.rstrip("/" + os.sep))[1].lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix and not os.path.isdir(output):
        raise InvalidInput(
            f"--output {output}: frames are written as H.264 video ({', '.join(VIDEO_SUFFIXES)}) or as PNG frames "
            f"into a folder (a path without an extension), not {suffix}"
        )
    return "frames"


class FrameSink:
    """Writes frames to an H.264 video or to a folder of PNGs (:func:`output_kind` of
    ``output``), into a temporary place that :meth:`commit` moves to the destination;
    :meth:`discard` removes it and the folders it made (no partial output)."""

    def __init__(self, output: str, fps: float, height: int, width: int):
        self.output = os.path.abspath(output)
        self.is_video = output_kind(output) == "video"
        self.folders = CreatedFolders()
        try:
            parent = self.folders.make(os.path.dirname(self.output) if self.is_video else self.output)
            if self.is_video:
                suffix = os.path.splitext(self.output)[1]
                handle, self.staging = tempfile.mkstemp(suffix=suffix, prefix=".partial-", dir=parent)
                os.close(handle)
                self.container = av.open(self.staging, "w")
                self.stream = self.container.add_stream("libx264", rate=round(fps) or 6)
                # yuv420p needs even sizes; the encoder pads by one pixel where needed.
                self.stream.width, self.stream.height = width + width % 2, height + height % 2
                self.stream.pix_fmt = "yuv420p"
            else:
                self.staging = tempfile.mkdtemp(prefix=".partial-", dir=parent)
        except OSError as e:
            self.folders.remove_empty()
            raise InvalidInput(f"cannot write the output {self.output}: {e}") from e
        self.count = 0

    def write(self, frame_bgr: np.ndarray) -> None:
        """Append one (H, W, 3) BGR uint8 frame of the size given at construction."""
        if self.is_video:
            padded = np.pad(frame_bgr, ((0, frame_bgr.shape[0] % 2), (0, frame_bgr.shape[1] % 2), (0, 0)), mode="edge")
            for packet in self.stream.encode(av.VideoFrame.from_ndarray(padded, format="bgr24")):
                self.container.mux(packet)
        else:
            path = os.path.join(self.staging, f"{self.count:06d}.png")
            if not cv2.imwrite(path, frame_bgr):
                raise OSError(f"OpenCV could not write {path}")
        self.count += 1

    def commit(self) -> str:
        """Finish the output and move it to its destination; returns its absolute path."""
        if self.is_video:
            for packet in self.stream.encode():
                self.container.mux(packet)
            self.container.close()
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.staging, 0o666 & ~umask)  # mkstemp creates it private
            os.replace(self.staging, self.output)
        else:
            for name in sorted(os.listdir(self.staging)):
                os.replace(os.path.join(self.staging, name), os.path.join(self.output, name))
            os.rmdir(self.staging)
        return self.output

    def discard(self) -> None:
        """Remove the partial output and the folders this sink made."""
        if self.is_video:
            self.container.close()
            os.remove(self.staging)
        else:
            shutil.rmtree(self.staging, ignore_errors=True)
        self.folders.remove_empty()


class StripFrames:
    """``count`` evenly spaced frames of a video seen one frame at a time (:meth:`add`), first and
    last included (fewer when the video is shorter), for :func:`write_strip`.

    With ``num_frames`` known, those at evenly spaced indices. Unknown (a live source, a container
    that declares no length): the frames at a stride that doubles whenever more than
    ``2 * count`` are kept, and the latest; :meth:`frames` picks ``count`` evenly spaced among
    them, so memory stays at ``2 * count + 1`` frames however long the source runs.
    """

    def __init__(self, count: int, num_frames: Optional[int] = None):
        self.count = count
        self.indices = set(np.linspace(0, num_frames - 1, count).round().astype(int).tolist()) if num_frames else None
        self.kept: Dict[int, np.ndarray] = {}
        self.stride = 1
        self.latest = None

    def add(self, index: int, frame: np.ndarray) -> None:
        """Frame ``index`` (counted from 0, every frame of the video in turn)."""
        if self.indices is not None:
            if index in self.indices:
                self.kept[index] = frame
            return
        self.latest = (index, frame)
        if index % self.stride == 0:
            self.kept[index] = frame
        if len(self.kept) > 2 * self.count:
            self.stride *= 2
            self.kept = {i: f for i, f in self.kept.items() if i % self.stride == 0}

    def frames(self) -> List[np.ndarray]:
        """The strip's frames, in video order."""
        kept = dict(self.kept)
        if self.indices is None and self.latest is not None:
            kept[self.latest[0]] = self.latest[1]
            chosen = np.linspace(0, len(kept) - 1, self.count).round().astype(int) if kept else []
            order = sorted(kept)
            kept = {order[i]: kept[order[i]] for i in set(chosen)}
        return [kept[i] for i in sorted(kept)]


def write_strip(path: str, frames: List[np.ndarray], what: str = "--strip") -> str:
    """(H, W_i, 3) frames side by side as one image at ``path`` (its extension, one of
    ``STRIP_SUFFIXES``, picks the format), written atomically and checked; returns its absolute
    path. ``what`` names the path in messages (the option it came from)."""
    ok, encoded = cv2.imencode(os.path.splitext(path)[1], np.concatenate(frames, axis=1))
    if not ok:
        raise InvalidInput(f"{what} {path}: OpenCV could not encode the strip")
    folders = CreatedFolders()
    try:
        folders.make(os.path.dirname(os.path.abspath(path)))
        with atomic_write(path, "wb") as f:
            f.write(encoded.tobytes())
    except OSError as e:
        folders.remove_empty()
        raise InvalidInput(f"{what} {path}: cannot write it ({e})") from e
    return os.path.abspath(path)


def write_video_and_strip(
    video_path: str,
    strip_path: str,
    frames: Iterable[np.ndarray],
    num_frames: int,
    fps: float,
    strip_frames: int,
    what: str = "--output",
) -> List[str]:
    """The ``num_frames`` (H, W, 3) BGR ``frames`` (all of one size; read one at a time) as an
    H.264 video at ``video_path``, and ``strip_frames`` evenly spaced ones side by side at
    ``strip_path`` (:func:`write_strip`). Both are written or neither: a failure midway removes
    the video. Returns their absolute paths."""
    frames = iter(frames)
    first = next(frames)
    strip = StripFrames(strip_frames, num_frames)
    sink = FrameSink(video_path, fps, *first.shape[:2])
    try:
        for index, frame in enumerate(itertools.chain([first], frames)):
            sink.write(frame)
            strip.add(index, frame)
        video = sink.commit()
    except BaseException:
        sink.discard()
        raise
    try:
        return [video, write_strip(strip_path, strip.frames(), what)]
    except BaseException:
        os.remove(video)
        raise
