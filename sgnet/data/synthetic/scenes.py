"""Sampling the synthetic scenes: how many objects, their appearance and their motion.

Every scene comes from its own random stream, ``scene_rng(seed, stream, *index)``: the splits,
the demo video and the COCO images draw from distinct streams, so that none repeats another's
scenes and each is a pure function of its seed.
"""

import colorsys
from typing import Tuple

import cv2
import numpy as np

from .render import SYNTHETIC_CLASSES, TEXTURES, Scene, Track

__all__ = ["scene_rng", "sample_scene"]

_STREAMS = {"train": 0, "valid": 1, "video": 2, "coco": 3}
# Scene sizes are given for a 192 x 320 frame and scaled with the frame.
_REFERENCE_SIZE = (192, 320)
_MIN_EXTENT, _MAX_EXTENT = 24.0, 110.0
_MAX_SCALE_AMPLITUDE = 0.25


def scene_rng(seed: int, stream: str, *index: int) -> np.random.Generator:
    """The random generator of one scene: ``stream`` is "train", "valid", "video" or "coco"."""
    return np.random.default_rng([seed, _STREAMS[stream], *index])


def _hsv_to_bgr(hue: float, saturation: float, value: float) -> Tuple[float, float, float]:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return (255 * b, 255 * g, 255 * r)


def _sample_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Low-saturation gradient plus blotchy low-frequency noise, (H, W, 3) float32 BGR."""
    colors = np.array(
        [_hsv_to_bgr(rng.uniform(), rng.uniform(0, 0.25), rng.uniform(0.3, 0.75)) for _ in range(2)]
    )
    direction = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = xs * np.cos(direction) + ys * np.sin(direction)
    ramp = (ramp - ramp.min()) / max(ramp.max() - ramp.min(), 1e-6)
    gradient = colors[0] + ramp[..., None] * (colors[1] - colors[0])
    coarse = rng.normal(0, 14, (height // 16 + 2, width // 16 + 2, 3)).astype(np.float32)
    blotches = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return (gradient + blotches).astype(np.float32)


def _sample_appearances(rng: np.random.Generator, count: int, scale: float) -> list:
    """Distinct, saturated colours (evenly spread hues) and a texture per object."""
    hues = (rng.uniform() + np.arange(count) / count + rng.uniform(-0.04, 0.04, count)) % 1.0
    appearances = []
    for hue in rng.permutation(hues):
        color = _hsv_to_bgr(hue, rng.uniform(0.6, 1.0), rng.uniform(0.65, 1.0))
        darkening = rng.uniform(0.4, 0.65)
        appearances.append(
            {
                "color": color,
                "secondary_color": tuple(c * darkening for c in color),
                "texture": TEXTURES[rng.integers(len(TEXTURES))],
                "texture_period": rng.uniform(4, 9) * scale,
            }
        )
    return appearances


def _unit(angle: float) -> np.ndarray:
    return np.array([np.cos(angle), np.sin(angle)])


def _sample_motion(rng, scenario, tracks, extent, num_frames, height, width, scale):
    """(category or None, start, velocity) for one new object following ``scenario``."""
    speed = rng.uniform(1.5, 6.0) * scale
    if scenario == "cross":
        # Meet an earlier object mid-video with a partial overlap, coming from another direction.
        partner = tracks[rng.integers(len(tracks))]
        meet = rng.uniform(0.3, 0.7) * (num_frames - 1)
        partner_direction = np.arctan2(partner.velocity[1], partner.velocity[0])
        velocity = speed * _unit(partner_direction + rng.uniform(np.pi / 3, 5 * np.pi / 3))
        overlap_offset = (
            _unit(rng.uniform(0, 2 * np.pi)) * rng.uniform(0.3, 0.6) * (extent + partner.extent) / 2
        )
        return None, partner.unreflected_centre(meet) + overlap_offset - meet * velocity, velocity
    if scenario == "pair":
        # Same class, same motion, next to an earlier object (just not touching).
        partner = tracks[rng.integers(len(tracks))]
        side = _unit(rng.uniform(0, 2 * np.pi))
        gap = (extent + partner.extent) / 2 * (1 + _MAX_SCALE_AMPLITUDE) * rng.uniform(1.05, 1.25)
        velocity = np.asarray(partner.velocity) + rng.normal(0, 0.2 * scale, 2)
        return partner.category, np.asarray(partner.start) + gap * side, velocity
    inside = np.array(
        [rng.uniform(extent / 2, width - extent / 2), rng.uniform(extent / 2, height - extent / 2)]
    )
    if scenario != "border":
        return None, inside, speed * _unit(rng.uniform(0, 2 * np.pi))
    # Enter through (or, run backwards, leave through) a random side of the frame.
    side = rng.integers(4)
    inward = np.pi / 2 * side  # 0: from the left, pi/2: from the top, pi: right, 3pi/2: bottom
    outside = inside.copy()
    axis = side % 2
    outside[axis] = -0.55 * extent if side < 2 else (width, height)[axis] + 0.55 * extent
    velocity = max(speed, 3.0 * scale) * _unit(inward + rng.uniform(-np.pi / 4, np.pi / 4))
    if rng.uniform() < 0.5:
        return None, outside, velocity
    return None, outside + (num_frames - 1) * velocity, -velocity


def sample_scene(rng: np.random.Generator, num_frames: int, height: int, width: int) -> Scene:
    """A scene of 1-4 objects for ``num_frames`` frames of ``height`` x ``width``: some cross
    an earlier object's path, some move beside one of the same class, some enter or leave
    through the border."""
    scale = min(height / _REFERENCE_SIZE[0], width / _REFERENCE_SIZE[1])
    num_objects = int(rng.choice([1, 2, 3, 4], p=[0.15, 0.35, 0.3, 0.2]))
    appearances = _sample_appearances(rng, num_objects, scale)
    tracks = []
    for appearance in appearances:
        base = _MIN_EXTENT / (1 - _MAX_SCALE_AMPLITUDE)
        extent = rng.uniform(base, _MAX_EXTENT / (1 + _MAX_SCALE_AMPLITUDE)) * scale
        scenario = (
            rng.choice(["free", "cross", "pair", "border"], p=[0.3, 0.35, 0.15, 0.2])
            if tracks
            else rng.choice(["free", "border"], p=[0.8, 0.2])
        )
        category, start, velocity = _sample_motion(
            rng, scenario, tracks, extent, num_frames, height, width, scale
        )
        if category is None:
            category = int(rng.integers(len(SYNTHETIC_CLASSES)))
        is_disc = SYNTHETIC_CLASSES[category] == "disc"
        tracks.append(
            Track(
                category=category,
                start=tuple(float(v) for v in start),
                velocity=tuple(float(v) for v in velocity),
                extent=float(extent),
                scale_amplitude=float(rng.uniform(0, _MAX_SCALE_AMPLITUDE)),
                scale_frequency=float(rng.uniform(0.1, 0.35)),
                scale_phase=float(rng.uniform(0, 2 * np.pi)),
                angle=float(rng.uniform(0, 2 * np.pi)),
                angular_velocity=0.0 if is_disc else float(rng.uniform(-0.1, 0.1)),
                **appearance,
            )
        )
    depth_order = rng.permutation(len(tracks))
    return Scene(
        height=height,
        width=width,
        background=_sample_background(rng, height, width),
        tracks=[tracks[i] for i in depth_order],
        margin=80.0 * scale,
        sensor_noise=3 * rng.standard_normal((3, height, width, 3), np.float32),
    )
