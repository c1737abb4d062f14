"""One synthetic scene as a video file, input for the demo and the video reader."""

import os

import cv2

from .scenes import sample_scene, scene_rng

__all__ = ["write_synthetic_video"]


def write_synthetic_video(
    path: str,
    *,
    num_frames: int = 12,
    height: int = 192,
    width: int = 320,
    seed: int = 0,
    fps: float = 6.0,
) -> str:
    """Render one synthetic scene (as in the dataset) into a video file with ``cv2.VideoWriter``
    (.mp4: MPEG-4 part 2, which every OpenCV build writes). Returns ``path``."""
    scene = sample_scene(scene_rng(seed, "video"), num_frames, height, width)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write the video file {path}")
    try:
        for t in range(num_frames):
            writer.write(scene.render(t)[0])
    finally:
        writer.release()
    return path
