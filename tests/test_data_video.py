"""Streaming frame reader (sgnet.data.video)."""

import logging
import tracemalloc

import cv2
import numpy as np
import pytest

import sgnet  # noqa: F401
from sgnet.data import VideoFrameReader, VideoReadError, write_synthetic_video


def write_frames(folder, names, height=24, width=32):
    """Frames whose pixel value is 10 x their position in ``names``; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, name in enumerate(names):
        path = folder / name
        cv2.imwrite(str(path), np.full((height, width, 3), 10 * i, np.uint8))
        paths.append(str(path))
    return paths


def frame_values(reader):
    return [int(round(frame.mean() / 10)) for frame in reader]


def write_avi(path, num_frames, height=48, width=64):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 6, (width, height))
    for i in range(num_frames):
        writer.write(np.full((height, width, 3), 10 * i % 250, np.uint8))
    writer.release()
    return str(path)


@pytest.fixture(scope="module")
def mp4(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "scene.mp4"
    return write_synthetic_video(str(path), num_frames=15, height=64, width=96, seed=3, fps=10.0)


def test_video_file(mp4):
    reader = VideoFrameReader(mp4)
    assert (len(reader), reader.num_frames, reader.fps) == (15, 15, 10.0)
    assert (reader.height, reader.width) == (64, 96)
    frames = list(reader)
    assert len(frames) == 15
    assert all(f.shape == (64, 96, 3) and f.dtype == np.uint8 for f in frames)
    assert len(list(reader)) == 15  # iterable again
    rgb = next(iter(VideoFrameReader(mp4, image_format="RGB")))
    np.testing.assert_array_equal(rgb, frames[0][:, :, ::-1])


def test_folder_is_read_in_natural_name_order(tmp_path):
    write_frames(tmp_path / "frames", ["f1.png", "f2.png", "f10.png"])
    (tmp_path / "frames" / "notes.txt").write_text("not a frame")
    reader = VideoFrameReader(tmp_path / "frames")
    assert (len(reader), reader.fps, reader.height, reader.width) == (3, 6.0, 24, 32)
    assert frame_values(reader) == [0, 1, 2]


def test_glob_pattern_and_file_list(tmp_path):
    paths = write_frames(tmp_path / "clip", ["00000.jpg", "00005.jpg", "00010.jpg", "00015.jpg"])
    assert frame_values(VideoFrameReader(str(tmp_path / "clip" / "*.jpg"))) == [0, 1, 2, 3]
    assert frame_values(VideoFrameReader(paths[::-1], fps=30)) == [3, 2, 1, 0]
    assert VideoFrameReader(paths, fps=30).fps == 30
    assert frame_values(VideoFrameReader(paths[2])) == [2]  # one image file


def test_memory_stays_flat_over_a_long_video(tmp_path):
    path = write_avi(tmp_path / "long.avi", num_frames=150, height=96, width=128)
    frame_bytes = 96 * 128 * 3
    tracemalloc.start()
    try:
        count = sum(1 for _ in VideoFrameReader(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 150
    assert peak < 10 * frame_bytes, f"peak {peak} bytes while reading 150 frames of {frame_bytes}"


def test_missing_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"Video source not found: {tmp_path / 'nope.mp4'}"):
        VideoFrameReader(tmp_path / "nope.mp4")
    with pytest.raises(FileNotFoundError, match="No file matches the pattern .*nothing-\\*.png"):
        VideoFrameReader(str(tmp_path / "nothing-*.png"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoReadError, match=f"Folder {tmp_path / 'empty'} holds no image files"):
        VideoFrameReader(tmp_path / "empty")
    with pytest.raises(ValueError, match="empty list of frame files"):
        VideoFrameReader([])


def test_missing_and_corrupt_frames_name_index_and_path(tmp_path):
    paths = write_frames(tmp_path, ["a.jpg", "b.jpg", "c.jpg"])
    missing = paths[:1] + [str(tmp_path / "gone.jpg")] + paths[2:]
    reader = VideoFrameReader(missing)  # only the first frame is read up front
    with pytest.raises(
        FileNotFoundError, match=f"frame 1: frame file not found: {tmp_path / 'gone.jpg'}"
    ):
        list(reader)
    (tmp_path / "c.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    with pytest.raises(VideoReadError, match=f"frame 2: cannot decode image {tmp_path / 'c.jpg'}"):
        list(VideoFrameReader(paths))


def test_frames_of_different_sizes(tmp_path):
    paths = write_frames(tmp_path, ["0.png"]) + write_frames(tmp_path / "big", ["1.png"], height=30)
    with pytest.raises(
        VideoReadError, match=r"frame 1 \(.*1.png\) is 30x32x3 but frame 0 \(.*0.png\) is 24x32x3"
    ):
        list(VideoFrameReader(paths))


def test_undecodable_video_files(tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00" * 2048)
    with pytest.raises(VideoReadError, match=f"OpenCV cannot open the video file {garbage}"):
        VideoFrameReader(garbage)
    empty = write_avi(tmp_path / "empty.avi", num_frames=0)
    with pytest.raises(VideoReadError, match=f"The video file {empty} has no decodable frames"):
        VideoFrameReader(empty)


def test_truncated_video_warns_with_the_frame_count(tmp_path, caplog):
    full = write_avi(tmp_path / "full.avi", num_frames=20)
    data = open(full, "rb").read()
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(data[: len(data) * 6 // 10])
    reader = VideoFrameReader(truncated)
    assert len(reader) == 20  # what the container declares
    with caplog.at_level(logging.WARNING):
        decoded = len(list(reader))
    assert 0 < decoded < 20
    assert f"{truncated} ended after {decoded} frames; its container declares 20" in caplog.text
