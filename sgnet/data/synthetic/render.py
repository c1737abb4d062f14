"""The scene model of the synthetic data and its rendering: textured shapes over a background,
drawn into frames with their visible masks, and frames written as JPEG files."""

from dataclasses import dataclass
from typing import List, Tuple

import cv2
import numpy as np

__all__ = ["SYNTHETIC_CLASSES", "TEXTURES", "Track", "Scene", "write_jpeg"]

# The shapes drawn (category ids 1, 2, 3 in the written files).
SYNTHETIC_CLASSES = ("disc", "square", "triangle")
TEXTURES = ("solid", "stripes", "checker", "rings")
# Polygon shapes: (number of vertices, circumradius / extent); a disc's diameter is its extent.
_POLYGONS = {"square": (4, 0.8 / np.sqrt(2)), "triangle": (3, 0.58)}
_JPEG_QUALITY = 90


@dataclass(frozen=True)
class Track:
    """One object: its appearance and its motion, as functions of the frame index t."""

    category: int  # index into SYNTHETIC_CLASSES
    color: Tuple[float, float, float]  # BGR
    secondary_color: Tuple[float, float, float]
    texture: str  # one of TEXTURES
    texture_period: float
    start: Tuple[float, float]  # centre (x, y) at t = 0, before reflection
    velocity: Tuple[float, float]  # px / frame
    extent: float  # base size in px (disc diameter, about the side of squares and triangles)
    scale_amplitude: float
    scale_frequency: float  # rad / frame
    scale_phase: float
    angle: float  # rad at t = 0
    angular_velocity: float  # rad / frame

    def unreflected_centre(self, t: float) -> np.ndarray:
        return np.asarray(self.start) + t * np.asarray(self.velocity)

    def size_at(self, t: int) -> float:
        return self.extent * (
            1 + self.scale_amplitude * np.sin(self.scale_frequency * t + self.scale_phase)
        )


@dataclass(frozen=True)
class Scene:
    height: int
    width: int
    background: np.ndarray  # (H, W, 3) float32 BGR
    tracks: List[Track]  # in depth order, farthest first
    margin: float  # centres are reflected inside the frame grown by this margin
    sensor_noise: np.ndarray  # (K, H, W, 3) float32, frame t adds sensor_noise[t % K]

    def centre_at(self, track: Track, t: int) -> np.ndarray:
        lows = np.array([-self.margin, -self.margin])
        spans = np.array([self.width, self.height]) + 2 * self.margin
        # Reflection (a triangle wave) keeps every object within reach in arbitrarily long videos.
        phase = np.mod(track.unreflected_centre(t) - lows, 2 * spans)
        return lows + spans - np.abs(phase - spans)

    def render(self, t: int) -> Tuple[np.ndarray, List[np.ndarray]]:
        """Frame t: (H, W, 3) uint8 BGR image and, per track, its (H, W) bool visible mask."""
        image = self.background.copy()
        shape_masks = [self._shape_mask(track, t) for track in self.tracks]
        for track, mask in zip(self.tracks, shape_masks):
            self._paint(image, track, t, mask)
        visible, occluders = [None] * len(self.tracks), np.zeros((self.height, self.width), bool)
        for i in reversed(range(len(self.tracks))):  # nearest first
            visible[i] = shape_masks[i] & ~occluders
            occluders |= shape_masks[i]
        image += self.sensor_noise[t % len(self.sensor_noise)]
        return np.clip(image, 0, 255).astype(np.uint8), visible

    def _shape_mask(self, track: Track, t: int) -> np.ndarray:
        """(H, W) bool mask of the whole shape (before occlusion) at frame t."""
        mask = np.zeros((self.height, self.width), np.uint8)
        centre, size = self.centre_at(track, t), track.size_at(t)
        subpixel = 16  # cv2 rasterises coordinates given in 1/16 px (shift=4)
        shape = SYNTHETIC_CLASSES[track.category]
        if shape == "disc":
            centre_px = tuple(int(v) for v in np.round(centre * subpixel))
            radius = int(round(size / 2 * subpixel))
            cv2.circle(mask, centre_px, radius, 1, thickness=-1, lineType=cv2.LINE_8, shift=4)
        else:
            num_vertices, circumradius = _POLYGONS[shape]
            angles = track.angle + t * track.angular_velocity
            angles = angles + 2 * np.pi * np.arange(num_vertices) / num_vertices
            vertices = centre + circumradius * size * np.stack([np.cos(angles), np.sin(angles)], 1)
            polygon = np.round(vertices * subpixel).astype(np.int32)
            cv2.fillPoly(mask, [polygon], 1, lineType=cv2.LINE_8, shift=4)
        return mask.astype(bool)

    def _paint(self, image: np.ndarray, track: Track, t: int, mask: np.ndarray) -> None:
        ys, xs = np.nonzero(mask)
        cx, cy = self.centre_at(track, t)
        # Texture coordinates move and rotate with the object.
        angle = track.angle + t * track.angular_velocity
        u = (xs - cx) * np.cos(angle) + (ys - cy) * np.sin(angle)
        v = -(xs - cx) * np.sin(angle) + (ys - cy) * np.cos(angle)
        period = track.texture_period
        if track.texture == "stripes":
            secondary = np.floor(u / period) % 2 == 1
        elif track.texture == "checker":
            secondary = (np.floor(u / period) + np.floor(v / period)) % 2 == 1
        elif track.texture == "rings":
            secondary = np.floor(np.hypot(u, v) / period) % 2 == 1
        else:
            secondary = np.zeros(len(xs), bool)
        image[ys, xs] = np.where(secondary[:, None], track.secondary_color, track.color)


def write_jpeg(path: str, image: np.ndarray) -> None:
    """A rendered frame as a JPEG file, at the quality all synthetic data uses."""
    cv2.imwrite(path, image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
