"""Live sources in demo/demo.py (sgnet.data.live): an mp4 served over HTTP gives the file's frames
and tracks; --realtime drops the frames a slow model cannot keep up with and tells the tracker
the gaps; a camera (a stand-in: no camera here) goes through the same path; an unreachable URL,
a camera that cannot open, a server that never answers and a source that stalls end in one
line; a local file read as a stream is never overwritten; Ctrl-C / SIGTERM ends a live run
between two frames, with a playable video of the frames seen and outputs that agree."""
import functools
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

from sgnet.config import load_config
from sgnet.data import FrameFeed, StreamReader, StripFrames, VideoFrameReader, VideoReadError, write_synthetic_video
from sgnet.data import live
from sgnet.predictor import VideoPredictor

from app_fixtures import REPO, load_script, one_error_line
from test_apps import TOY_CONFIG, demo_args, read_frames

# A generated live source (FFmpeg's lavfi), delivered at its frame rate, as a camera would.
LIVE_PATTERN = "testsrc2=size=160x96:rate={rate}{duration},realtime"


@pytest.fixture(scope="module")
def demo():
    return load_script("demo/demo.py", "sgnet_demo_live")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_synthetic_video(str(tmp_path_factory.mktemp("clip") / "clip.mp4"), num_frames=6, height=96, width=160, seed=3)


@pytest.fixture(scope="module")
def file_run(demo, clip, random_weights, tmp_path_factory):
    """The demo on the clip as a file: (its drawn frames, its result records)."""
    out = tmp_path_factory.mktemp("file_run")
    assert demo.main(demo_args(clip, out / "drawn.mp4", random_weights, "--save-results", str(out / "r.json"))) == 0
    return read_frames(out / "drawn.mp4"), json.loads((out / "r.json").read_text())


@pytest.fixture(scope="module")
def http_url(clip):
    """The clip served over HTTP from 127.0.0.1 (Python's http.server)."""
    handler = functools.partial(QuietHandler, directory=str(clip.rsplit("/", 1)[0]))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/clip.mp4"
    server.shutdown()
    server.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def live_args(source, output, weights, *extra):
    """demo_args with ``source`` in place of the video file: ``["--webcam", "0"]`` or
    ``["--video-input", URL, ...]``."""
    args = demo_args("SOURCE", output, weights, *extra)
    at = args.index("--video-input")
    return args[:at] + list(source) + args[at + 2 :]


def test_an_http_stream_gives_the_files_frames_and_tracks(demo, clip, http_url, file_run, random_weights, tmp_path, capsys):
    streamed = list(StreamReader(http_url))
    assert len(streamed) == 6
    for frame, from_file in zip(streamed, VideoFrameReader(clip)):
        np.testing.assert_array_equal(frame, from_file)
    argv = live_args(["--video-input", http_url], tmp_path / "drawn.mp4", random_weights, "--save-results", str(tmp_path / "r.json"))
    assert demo.main(argv) == 0
    assert "Wrote 6 frames (0 of 6 received dropped)" in capsys.readouterr().out
    drawn, records = file_run
    assert json.loads((tmp_path / "r.json").read_text()) == records and len(records) > 0
    for frame, expected in zip(read_frames(tmp_path / "drawn.mp4"), drawn, strict=True):
        np.testing.assert_array_equal(frame, expected)


def test_realtime_drops_what_a_slow_model_cannot_keep_up_with_and_tells_the_tracker(demo, random_weights, tmp_path, monkeypatch, capsys):
    # A source of 40 frames at 20 frames/s, and a model held to at most 10 frames/s.
    to_model_input = VideoPredictor.to_model_input
    monkeypatch.setattr(VideoPredictor, "to_model_input", lambda self, frame: (sleep(0.1), to_model_input(self, frame))[1])
    indices = []
    track_indexed = VideoPredictor.track_indexed

    def recording(self, indexed_frames):
        for index, frame, instances in track_indexed(self, indexed_frames):
            indices.append(index)
            yield index, frame, instances

    monkeypatch.setattr(VideoPredictor, "track_indexed", recording)
    source = ["--video-input", LIVE_PATTERN.format(rate=20, duration=":d=2"), "--input-format", "lavfi", "--realtime"]
    assert demo.main(live_args(source, tmp_path / "drawn.mp4", random_weights, "--save-results", str(tmp_path / "r.json"))) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    processed, dropped = len(indices), 40 - len(indices)
    assert f"Wrote {processed} frames ({dropped} of 40 received dropped)" in line
    assert 0 < processed < 30 and dropped > 10
    # The processed frames keep their places in the source: increasing, with gaps, the newest last.
    assert indices == sorted(set(indices)) and indices[0] == 0 and indices[-1] == 39
    assert max(np.diff(indices)) > 1
    assert len(read_frames(tmp_path / "drawn.mp4")) == processed
    records = json.loads((tmp_path / "r.json").read_text())
    assert records and all(len(r["segmentations"]) == processed for r in records)


def sleep(seconds):
    threading.Event().wait(seconds)


def test_the_tracker_ages_tracks_in_source_frames(clip, random_weights):
    """A gap longer than MODEL.SGNET.TRACKER.MAX_AGE forgets the tracks; the same frames without
    the gap keep them."""
    cfg = load_config(str(TOY_CONFIG), [
        "MODEL.WEIGHTS", str(random_weights), "MODEL.SGNET.SCORE_THRESH_TEST", "0.0", "INPUT.MIN_SIZE_TEST", "96",
        "INPUT.MAX_SIZE_TEST", "160", "MODEL.SGNET.TRACKER.MAX_AGE", "3",
    ])  # fmt: skip
    predictor = VideoPredictor(cfg)
    frame = next(iter(VideoFrameReader(clip)))

    def ids(indices):
        return [set(instances.track_ids.tolist()) for _, _, instances in predictor.track_indexed((i, frame) for i in indices)]

    steady, after_gap = ids([0, 1, 2]), ids([0, 1, 10])
    assert steady[0] and steady[2] <= steady[0] | steady[1]  # the same frame: the same tracks
    assert after_gap[1] == steady[1] and not after_gap[2] & (after_gap[0] | after_gap[1])  # all new
    with pytest.raises(ValueError, match="indices must increase"):
        ids([0, 2, 1])


def test_a_webcam_reads_through_the_live_path(demo, clip, file_run, random_weights, tmp_path, monkeypatch, capsys):
    """No camera here: a stand-in device (OpenCV's capture of the clip) behind the camera opener."""
    opened = []
    monkeypatch.setattr(live, "open_camera", lambda index: opened.append(index) or cv2.VideoCapture(clip))
    argv = live_args(["--webcam", "2"], tmp_path / "drawn.mp4", random_weights, "--save-results", str(tmp_path / "r.json"))
    assert demo.main(argv) == 0
    assert opened == [2]
    out = capsys.readouterr().out
    assert "Reading camera 2 (160x96" in out and "Wrote 6 frames" in out
    drawn, records = file_run
    assert json.loads((tmp_path / "r.json").read_text()) == records
    assert len(read_frames(tmp_path / "drawn.mp4")) == len(drawn)


class StallingCamera:
    """A stand-in camera delivering ``frames`` frames, then nothing until released."""

    def __init__(self, frames: int):
        self.left, self.released = frames, threading.Event()

    def isOpened(self):
        return True

    def get(self, prop):
        return 5.0

    def read(self):
        if self.left == 0:
            self.released.wait(60)
            return False, None
        self.left -= 1
        return True, np.full((96, 160, 3), 40 * self.left, np.uint8)

    def release(self):
        self.released.set()


def test_a_source_that_stops_delivering_ends_in_one_line_keeping_the_frames_seen(demo, random_weights, tmp_path, monkeypatch, capsys):
    camera = StallingCamera(frames=3)
    monkeypatch.setattr(live, "open_camera", lambda index: camera)
    argv = live_args(["--webcam"], tmp_path / "drawn.mp4", random_weights, "--timeout", "1")
    try:
        assert demo.main(argv) == 2
    finally:
        camera.release()
    line = one_error_line(capsys.readouterr().err, "demo.py", "SG-Net demo")
    assert line == f"demo.py: error: camera 0 delivered no frame for 1 s (the 3 frames before it were written to {tmp_path / 'drawn.mp4'})"
    assert len(read_frames(tmp_path / "drawn.mp4")) == 3


@pytest.mark.parametrize(
    "source, message",
    [
        (["--video-input", "http://127.0.0.1:{port}/clip.mp4"], "cannot open the stream http://127.0.0.1:{port}/clip.mp4: "),
        (["--video-input", "nosuchfilter", "--input-format", "lavfi"], "cannot open the stream nosuchfilter: "),
        (["--webcam", "63"], "cannot open camera 63 (no such camera, in use, or not permitted)"),
        (["--input-format", "lavfi", "--webcam", "0"], "--input-format reads --video-input"),
        (["--webcam", "0", "--timeout", "0"], "--timeout 0: must be more than 0 seconds"),
    ],
)
def test_a_source_that_cannot_open_ends_in_one_line(demo, random_weights, tmp_path, capsys, source, message):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    source = [part.format(port=port) for part in source]
    assert demo.main(live_args(source, tmp_path / "drawn.mp4", random_weights)) == 2
    line = one_error_line(capsys.readouterr().err, "demo.py", "SG-Net demo")
    assert line.startswith(f"demo.py: error: {message.format(port=port)}"), line
    assert list(tmp_path.iterdir()) == []


def test_a_server_that_never_answers_ends_in_one_line(demo, random_weights, tmp_path, capsys):
    with socket.socket() as server:  # accepts connections (the kernel's backlog), never answers
        server.bind(("127.0.0.1", 0))
        server.listen()
        url = f"http://127.0.0.1:{server.getsockname()[1]}/clip.mp4"
        assert demo.main(live_args(["--video-input", url, "--timeout", "1"], tmp_path / "drawn.mp4", random_weights)) == 2
    line = one_error_line(capsys.readouterr().err, "demo.py", "SG-Net demo")
    assert line == f"demo.py: error: cannot open the stream {url}: no answer within 1 s"
    assert list(tmp_path.iterdir()) == []


def test_a_file_read_as_a_stream_is_not_overwritten(demo, clip, random_weights, tmp_path, capsys):
    target = tmp_path / "clip.mp4"
    target.write_bytes(open(clip, "rb").read())
    for source in (["--video-input", f"file://{target}"], ["--video-input", str(target), "--input-format", "mov"]):
        assert demo.main(live_args(source, target, random_weights)) == 2
        line = one_error_line(capsys.readouterr().err, "demo.py", "SG-Net demo")
        assert "would overwrite" in line and str(target) in line, line
    assert target.read_bytes() == open(clip, "rb").read()


def test_realtime_on_a_file_refuses_outputs_that_need_every_frame(demo, clip, random_weights, tmp_path, capsys):
    for option, path in (("--save-results", tmp_path / "r.json"), ("--save-masks", tmp_path / "masks")):
        assert demo.main(demo_args(clip, tmp_path / "drawn.mp4", random_weights, "--realtime", option, str(path))) == 2
        line = one_error_line(capsys.readouterr().err, "demo.py", "SG-Net demo")
        assert line == f"demo.py: error: --realtime drops frames of {clip}: --save-masks and --save-results of a file need every frame (leave out --realtime)"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("signum, name", [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "signal 15")])
def test_ctrl_c_ends_a_live_run_with_a_playable_video_of_the_frames_seen(random_weights, tmp_path, signum, name):
    source = ["--video-input", LIVE_PATTERN.format(rate=10, duration=""), "--input-format", "lavfi"]
    argv = live_args(source, tmp_path / "drawn.mp4", random_weights, "--save-masks", str(tmp_path / "masks"), "--save-results", str(tmp_path / "r.json"))
    process = subprocess.Popen(
        [sys.executable, "demo/demo.py", *map(str, argv)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        # the source is open once the demo says so (detectron2's log lines come before that)
        assert any(line.startswith("Reading testsrc2=") for line in process.stdout)
        sleep(3)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stderr[-2000:]
    frames = int(stdout.split(f"Stopped by {name}. Wrote ")[1].split()[0])
    assert frames > 0
    assert len(read_frames(tmp_path / "drawn.mp4")) == frames
    # Stopped between two frames: every output holds the same frames.
    assert len([p for p in (tmp_path / "masks").iterdir() if p.suffix == ".png"]) == frames
    records = json.loads((tmp_path / "r.json").read_text())
    assert all(len(record["segmentations"]) == frames for record in records)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drawn.mp4", "masks", "r.json"]


# -- the pieces ----------------------------------------------------------------------------------
def numbered_frames(count: int, delay: float = 0.0):
    for index in range(count):
        sleep(delay)
        yield np.full((2, 2, 3), index, np.uint8)


def test_a_feed_that_drops_late_frames_always_hands_over_the_newest():
    feed = FrameFeed(numbered_frames(30), "source", drop_late=True)
    taken = []
    for index, frame in feed:
        assert frame[0, 0, 0] == index
        taken.append(index)
        sleep(0.02)  # slower than the source
    assert feed.received == 30 and feed.dropped == 30 - len(taken) > 0
    assert taken == sorted(taken) and taken[-1] == 29


def test_a_paced_feed_delivers_a_file_no_faster_than_its_frame_rate():
    """--realtime on a file: its frames arrive as a camera at the file's rate would deliver them
    (a lower bound only: a slow machine may be slower, never faster)."""
    feed = FrameFeed(numbered_frames(11), "source", drop_late=False, pace_fps=50)
    started = time.monotonic()
    arrivals = [time.monotonic() - started for _ in feed]
    assert len(arrivals) == 11
    assert all(arrival >= index / 50 - 0.005 for index, arrival in enumerate(arrivals)), arrivals
    assert arrivals[-1] >= 0.195


def test_a_feed_that_keeps_frames_hands_over_each_in_order_and_raises_the_sources_error():
    feed = FrameFeed(numbered_frames(12), "source", drop_late=False)
    assert [index for index, _ in feed] == list(range(12)) and feed.dropped == 0

    def failing():
        yield from numbered_frames(2)
        raise VideoReadError("frame 2 is broken")

    taken = []
    with pytest.raises(VideoReadError, match="frame 2 is broken"):
        for index, _ in FrameFeed(failing(), "source", drop_late=False):
            taken.append(index)
    assert taken == [0, 1]


def test_a_feed_whose_source_stalls_says_so_and_stops_reading():
    stalled = threading.Event()

    def stalling():
        yield from numbered_frames(1)
        stalled.wait(30)
        yield np.zeros((2, 2, 3), np.uint8)

    feed = FrameFeed(stalling(), "rtsp://camera/1", drop_late=True, timeout=0.3)
    with pytest.raises(VideoReadError, match=r"^rtsp://camera/1 delivered no frame for 0.3 s$"):
        for _ in feed:
            pass
    stalled.set()
    feed._thread.join(5)
    assert not feed._thread.is_alive() and feed.received <= 2


def test_a_strip_of_a_video_of_unknown_length_spans_it():
    for length in (1, 3, 4, 5, 17, 100, 1001):
        strip = StripFrames(4, None)
        for index in range(length):
            strip.add(index, index)
        picked = strip.frames()
        assert picked == sorted(set(picked)) and len(picked) == min(4, length)
        assert picked[0] == 0 and picked[-1] == length - 1
        if length >= 100:  # spread over the video: no two picks closer than a sixth of it
            assert min(np.diff(picked)) > length / 6
        assert len(strip.kept) <= 2 * 4 + 1
    known = StripFrames(4, 10)
    for index in range(10):
        known.add(index, index)
    assert known.frames() == [0, 3, 6, 9]
