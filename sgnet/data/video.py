"""Streaming frame reading for inference: a video file, a folder of frames, a glob pattern, or a
list of image files (e.g. a YouTube-VIS video's ``file_names``)."""

import glob
import logging
import os
import re
from typing import Iterator, Optional, Sequence, Union

import cv2
import numpy as np
from detectron2.data.detection_utils import convert_PIL_to_numpy, read_image
from PIL import Image

from ..errors import InvalidInput, MissingInput, UserError

__all__ = ["VideoFrameReader", "VideoReadError", "read_frame_image", "IMAGE_EXTENSIONS"]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# YouTube-VIS frames are every 5th frame of 30 fps videos.
DEFAULT_FPS = 6.0


class VideoReadError(UserError, RuntimeError):
    """A video or frame exists but cannot be decoded (corrupt, truncated, no frames, ...)."""


def read_frame_image(path: str, image_format: str = "BGR", *, where: str = "") -> np.ndarray:
    """Read one image file with detectron2's ``read_image`` (EXIF orientation applied).

    Returns an HxWxC uint8 array in ``image_format``. Errors name ``where`` (e.g. "video 3
    frame 5") and the path.
    """
    prefix = f"{where}: " if where else ""
    if not os.path.isfile(path):
        raise MissingInput(f"{prefix}frame file not found: {path}")
    try:
        return read_image(path, format=image_format)
    except (OSError, ValueError, SyntaxError) as e:
        raise VideoReadError(f"{prefix}cannot decode image {path}: {e}") from e


def _natural_key(name: str) -> list:
    # "frame2" sorts before "frame10"; zero-padded names (YouTube-VIS) sort as usual.
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _is_image_file(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


class VideoFrameReader:
    """
    The frames of one video, decoded one at a time: memory stays flat in the video's length.

    ``source`` is one of:

    * a video file, decoded with OpenCV;
    * a folder: its image files (``IMAGE_EXTENSIONS``; other files are ignored) in name order,
      numbers in names compared as numbers (``2.jpg`` before ``10.jpg``);
    * a glob pattern (``"frames/*.png"``), matches in the same order;
    * a list of image paths, in the given order (a YouTube-VIS video's ``file_names``).

    Iterating yields HxWx3 uint8 arrays in ``image_format`` ("BGR" by default, like
    ``cv2.imread``; any format of detectron2's ``read_image``). The source can be iterated again.

    Attributes:
        fps: the ``fps`` argument if given, else the video file's frame rate, else 6 (image
            sequences: YouTube-VIS frames are every 5th frame of 30 fps videos).
        height, width: size of the first frame (read at construction, so a source without a
            readable first frame fails here).
        num_frames: frame count: exact for image sequences; for a video file the count its
            container declares, or None when it declares none. ``len(reader)`` returns it, and
            raises TypeError when it is None.
        live: False (the live readers of :mod:`sgnet.data.live` have True).

    Errors (naming the path and frame index): FileNotFoundError for missing sources and
    frames, VideoReadError for undecodable files, videos without frames, and frames whose size
    differs from the first frame's. A video file whose stream ends before its declared count is
    reported with a warning (containers often declare estimates).
    """

    live = False

    def __init__(
        self,
        source: Union[str, os.PathLike, Sequence[str]],
        *,
        fps: Optional[float] = None,
        image_format: str = "BGR",
    ):
        self.image_format = image_format
        self._video_file, self._image_files = self._resolve(source)
        if self._video_file is not None:
            self.num_frames, file_fps = self._video_file_properties(self._video_file)
        else:
            self.num_frames, file_fps = len(self._image_files), None
        self.fps = fps or file_fps or DEFAULT_FPS
        frames = iter(self)
        try:
            self.height, self.width = next(frames).shape[:2]
        finally:
            frames.close()

    @property
    def input_paths(self) -> list:
        """The files read: the video file, or every frame file."""
        return [self._video_file] if self._video_file is not None else list(self._image_files)

    @property
    def source(self) -> str:
        """A description of what is read, for messages."""
        if self._video_file is not None:
            return self._video_file
        return f"{len(self._image_files)} image files starting with {self._image_files[0]}"

    def __len__(self) -> int:
        if self.num_frames is None:
            raise TypeError(f"The frame count of {self.source} is unknown")
        return self.num_frames

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._video_file is not None:
            return self._iter_video_file()
        return self._iter_image_files()

    def __repr__(self) -> str:
        return (
            f"VideoFrameReader({self.source!r}, frames={self.num_frames}, fps={self.fps}, "
            f"size={self.height}x{self.width})"
        )

    # -- sources -------------------------------------------------------------------------------
    @staticmethod
    def _resolve(source):
        """Returns (video file path or None, list of image files or None)."""
        if isinstance(source, (list, tuple)):
            if not source:
                raise InvalidInput("VideoFrameReader got an empty list of frame files")
            return None, [os.fspath(p) for p in source]
        path = os.fspath(source)
        if os.path.isfile(path):
            return (None, [path]) if _is_image_file(path) else (path, None)
        if os.path.isdir(path):
            names = sorted((n for n in os.listdir(path) if _is_image_file(n)), key=_natural_key)
            if not names:
                raise VideoReadError(
                    f"Folder {path} holds no image files (extensions {', '.join(IMAGE_EXTENSIONS)})"
                )
            return None, [os.path.join(path, n) for n in names]
        if any(c in path for c in "*?["):
            matches = sorted(glob.glob(path), key=_natural_key)
            if not matches:
                raise MissingInput(f"No file matches the pattern {path}")
            return None, matches
        raise MissingInput(
            f"Video source not found: {path} (expected a video file, a folder of frames, a glob "
            "pattern or a list of image files)"
        )

    @staticmethod
    def _video_file_properties(path: str):
        capture = cv2.VideoCapture(path)
        try:
            declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            fps = capture.get(cv2.CAP_PROP_FPS)
        finally:
            capture.release()
        return (declared if declared > 0 else None), (fps if fps > 0 else None)

    # -- iteration -----------------------------------------------------------------------------
    def _iter_image_files(self) -> Iterator[np.ndarray]:
        first_shape = None
        for index, path in enumerate(self._image_files):
            frame = read_frame_image(path, self.image_format, where=f"frame {index}")
            first_shape = first_shape or frame.shape
            if frame.shape != first_shape:
                raise VideoReadError(
                    f"frame {index} ({path}) is {frame.shape[0]}x{frame.shape[1]}x"
                    f"{frame.shape[2]} but frame 0 ({self._image_files[0]}) is "
                    f"{first_shape[0]}x{first_shape[1]}x{first_shape[2]}: the frames of one "
                    "video must have one size"
                )
            yield frame

    def _iter_video_file(self) -> Iterator[np.ndarray]:
        path = self._video_file
        capture = cv2.VideoCapture(path)
        if not capture.isOpened():
            raise VideoReadError(
                f"OpenCV cannot open the video file {path} (not a video, corrupt, or a codec "
                "missing from this OpenCV build)"
            )
        decoded = 0
        try:
            # grab() fails at the end of the stream; retrieve() fails on an undecodable frame.
            while capture.grab():
                ok, frame = capture.retrieve()
                if not ok or frame is None:
                    raise VideoReadError(f"Cannot decode frame {decoded} of the video file {path}")
                yield self._convert_bgr(frame)
                decoded += 1
        finally:
            capture.release()
        if decoded == 0:
            raise VideoReadError(f"The video file {path} has no decodable frames")
        if self.num_frames is not None and decoded < self.num_frames:
            logger.warning(
                f"The video file {path} ended after {decoded} frames; its container declares "
                f"{self.num_frames} (truncated file?)"
            )

    def _convert_bgr(self, frame: np.ndarray) -> np.ndarray:
        if self.image_format == "BGR":
            return frame
        return convert_PIL_to_numpy(Image.fromarray(frame[:, :, ::-1]), self.image_format)
