"""Live frame sources for inference: streams FFmpeg opens (``rtsp://``, ``http(s)://``, ``udp://``,
an input format such as ``lavfi`` or ``v4l2``: :class:`StreamReader`, through PyAV) and cameras
(:class:`CameraReader`, through OpenCV), and :class:`FrameFeed`, which reads any source in a
thread of its own so that a slow consumer drops frames instead of queueing them without bound,
and a source that stops delivering is noticed.

Live readers have the attributes of :class:`~sgnet.data.VideoFrameReader` that the demo uses
(``fps``, ``height``, ``width``, ``num_frames`` None, ``input_paths`` empty, ``source``), and
``live`` True. They are read once: the frames a camera delivered cannot be read again.
"""
import logging
import os
import threading
import time
from collections import deque
from typing import Callable, Iterable, Iterator, Optional, Tuple

import av
import cv2
import numpy as np

from .video import VideoReadError

__all__ = ["CameraReader", "FrameFeed", "StreamReader", "is_stream"]

logger = logging.getLogger(__name__)

# The frame rate assumed for a live source that declares none (most cameras deliver 30).
LIVE_DEFAULT_FPS = 30.0


def is_stream(source: str) -> bool:
    """Whether a --video-input names a stream (a URL, ``scheme://...``) rather than a file."""
    return "://" in source


class _LiveReader:
    """The first frame is read at construction (a source that cannot deliver one fails there,
    naming it); iteration yields it, then the rest as (H, W, 3) BGR uint8 arrays, once."""

    live = True
    num_frames = None
    input_paths: list = []

    def __init__(self, source: str, fps: Optional[float]):
        self.source = source
        self.fps = fps or LIVE_DEFAULT_FPS
        self._frames = self._read()
        try:
            self._first = next(self._frames)
        except StopIteration:
            raise VideoReadError(f"{source} delivered no frame") from None
        self.height, self.width = self._first.shape[:2]
        self._iterated = False

    def _read(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._iterated:
            raise RuntimeError(f"{self.source} is live: its frames can be read only once")
        self._iterated = True
        yield self._first
        yield from self._frames

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r}, fps={self.fps}, size={self.height}x{self.width})"


class StreamReader(_LiveReader):
    """A stream FFmpeg opens, decoded by PyAV: a URL (``rtsp://``, ``http(s)://``, ...) or, with
    ``input_format`` (FFmpeg's ``-f``), a device or generator (``v4l2`` and ``/dev/video0``,
    ``lavfi`` and ``testsrc2=rate=30``). ``timeout`` (seconds) bounds opening a network stream and
    each read from it. Errors: :class:`~sgnet.data.VideoReadError` naming the source."""

    def __init__(self, url: str, *, input_format: Optional[str] = None, timeout: float = 10.0):
        self.input_format = input_format
        # A local file or device read as a stream is still an input that outputs must not replace.
        local = url[len("file://"):] if url.startswith("file://") else url[len("file:"):] if url.startswith("file:") else url
        self.input_paths = [local] if os.path.exists(local) else []
        try:
            self.container = av.open(url, format=input_format, timeout=(timeout, timeout))
        except av.ExitError as e:  # FFmpeg gave up waiting: the server accepted but never answered
            raise VideoReadError(f"cannot open the stream {url}: no answer within {timeout:g} s") from e
        except (av.FFmpegError, OSError, ValueError) as e:
            raise VideoReadError(f"cannot open the stream {url}: {e}") from e
        if not self.container.streams.video:
            self.container.close()
            raise VideoReadError(f"the stream {url} has no video")
        stream = self.container.streams.video[0]
        # Threaded decoding: a stream is decoded while the model runs.
        stream.thread_type = "AUTO"
        super().__init__(url, float(stream.average_rate or stream.guessed_rate or 0) or None)

    def _read(self) -> Iterator[np.ndarray]:
        try:
            for frame in self.container.decode(video=0):
                yield frame.to_ndarray(format="bgr24")
        except av.FFmpegError as e:
            raise VideoReadError(f"the stream {self.source} failed: {e}") from e
        finally:
            self.container.close()


def open_camera(index: int) -> cv2.VideoCapture:
    """OpenCV's capture of camera ``index`` (``/dev/video<index>`` on Linux)."""
    return cv2.VideoCapture(index)


class CameraReader(_LiveReader):
    """Camera ``index``, read with OpenCV (:func:`open_camera`). Errors:
    :class:`~sgnet.data.VideoReadError` naming the camera."""

    def __init__(self, index: int = 0, *, opener: Callable[[int], cv2.VideoCapture] = None):
        name = f"camera {index}"
        self.capture = (opener or open_camera)(index)
        if not self.capture.isOpened():
            raise VideoReadError(f"cannot open {name} (no such camera, in use, or not permitted)")
        super().__init__(name, self.capture.get(cv2.CAP_PROP_FPS) or None)

    def _read(self) -> Iterator[np.ndarray]:
        try:
            while True:
                ok, frame = self.capture.read()
                if not ok:
                    return  # unplugged, or a stand-in that ended
                yield frame
        finally:
            self.capture.release()


class FrameFeed:
    """Frames of ``frames`` (an iterable of (H, W, 3) arrays, e.g. a reader; read in a thread of
    its own), iterated as (index in the source, frame) pairs.

    ``drop_late``: keep only the newest frame not yet taken; the older one is dropped (counted in
    :attr:`dropped`): a consumer slower than the source always gets the newest frame, and memory
    stays at one frame. Else a few frames wait (the source is read at the consumer's pace).
    ``pace_fps``: deliver the frames no faster than this rate (a file played as a live source).
    ``timeout``: a source that delivers nothing for this long (seconds) raises
    :class:`~sgnet.data.VideoReadError` naming ``name``. The source's own errors are raised in
    the consumer. Leaving the iteration, or :meth:`close` (e.g. from a signal handler), stops
    the reading thread.

    Counters: :attr:`received` (frames read from the source), :attr:`dropped`.
    """

    QUEUE = 4
    # How long leaving the iteration waits for the reading thread to close the source (a source
    # blocked in a read is left to its own timeout: the thread is a daemon).
    JOIN_TIMEOUT = 2.0

    def __init__(
        self,
        frames: Iterable[np.ndarray],
        name: str,
        *,
        drop_late: bool,
        timeout: Optional[float] = None,
        pace_fps: Optional[float] = None,
    ):
        self.frames, self.name = frames, name
        self.drop_late, self.timeout, self.pace_fps = drop_late, timeout, pace_fps
        self.received = self.dropped = 0
        self._waiting: deque = deque()
        self._changed = threading.Condition()
        self._ended = self._stopped = False
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._read, name=f"FrameFeed({name})", daemon=True)

    def _read(self) -> None:
        frames = iter(self.frames)
        start = time.monotonic()
        try:
            for index, frame in enumerate(frames):
                if self.pace_fps:
                    time.sleep(max(0.0, start + index / self.pace_fps - time.monotonic()))
                with self._changed:
                    if self._stopped:
                        return
                    if self.drop_late:
                        self.dropped += len(self._waiting)
                        self._waiting.clear()
                    else:
                        self._changed.wait_for(lambda: len(self._waiting) < self.QUEUE or self._stopped)
                    self._waiting.append((index, frame))
                    self.received += 1
                    self._changed.notify_all()
        except BaseException as e:  # handed to the consumer
            self._error = e
        finally:
            close = getattr(frames, "close", None)
            if close:
                close()
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def __iter__(self) -> Iterator[Tuple[int, np.ndarray]]:
        self._thread.start()
        try:
            while True:
                with self._changed:
                    if not self._changed.wait_for(lambda: self._waiting or self._ended or self._stopped, self.timeout):
                        raise VideoReadError(f"{self.name} delivered no frame for {self.timeout:g} s")
                    if self._stopped:
                        return
                    if not self._waiting:
                        if self._error is not None:
                            raise self._error
                        return
                    item = self._waiting.popleft()
                    self._changed.notify_all()
                yield item
        finally:
            self.close()
            self._thread.join(self.JOIN_TIMEOUT)

    def close(self) -> None:
        """Stop: the iteration ends before its next frame (frames waiting then are counted as
        dropped) and the thread at its next frame. Safe in a signal handler (no waiting)."""
        with self._changed:
            if not self._stopped:
                self._stopped = True
                self.dropped += len(self._waiting)
                self._waiting.clear()
            self._changed.notify_all()
