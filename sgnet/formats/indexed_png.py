"""Indexed mask PNGs, the per-frame format of video object segmentation (DAVIS, YouTube-VOS, MOSE):
one single-channel PNG per frame whose pixel value is an object id, 0 the background.

- :func:`write_indexed_png`: 8-bit palette ('P', the datasets' own colours) when the ids fit
  below 255, which DAVIS-style readers take as "void", else 16-bit grayscale ('I;16');
- :func:`read_indexed_png`: the ids back from either (palette indices, not colours);
- :func:`paint_ids`: one frame's possibly overlapping masks as such an id map.
"""
import numpy as np
from PIL import Image

from ..errors import InvalidInput

__all__ = ["EIGHT_BIT_MODES", "read_indexed_png", "write_indexed_png", "paint_ids"]

EIGHT_BIT_MODES = ("P", "L")  # PIL's 8-bit single-channel modes: palette indices, grayscale values
# PIL opens a 16-bit grayscale PNG as 'I;16' (as 'I' before Pillow 10).
_SIXTEEN_BIT_MODES = ("I;16", "I")
_VOID = 255  # what DAVIS-style readers of 8-bit masks take for "not annotated"


def _voc_palette() -> list:
    """PASCAL VOC's colour map, which DAVIS and YouTube-VOS masks use: id i's RGB spreads the bits
    of i over the channels, most significant first (1 dark red, 2 dark green, 3 olive, ...)."""
    palette = []
    for index in range(256):
        rgb, bits = [0, 0, 0], index
        for shift in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((bits >> channel) & 1) << shift
            bits >>= 3
        palette += rgb
    return palette


_PALETTE = _voc_palette()


def write_indexed_png(path: str, ids: np.ndarray) -> None:
    """Write an (H, W) array of non-negative object ids (0 = background) as an indexed PNG: 8-bit
    palette when its largest id is below 255, else 16-bit grayscale (ids up to 65535)."""
    ids = np.asarray(ids)
    largest = int(ids.max(initial=0))
    if ids.ndim != 2 or int(ids.min(initial=0)) < 0 or largest > np.iinfo(np.uint16).max:
        raise ValueError(f"an indexed PNG holds an (H, W) array of ids in [0, 65535], got shape {ids.shape}, max {largest}")
    if largest < _VOID:
        image = Image.fromarray(ids.astype(np.uint8))
        image.putpalette(_PALETTE)  # 'L' -> 'P', the values becoming palette indices
    else:
        image = Image.fromarray(ids.astype(np.uint16))  # 'I;16'
    image.save(path, format="PNG")


def read_indexed_png(path: str, allow_16_bit: bool = True) -> np.ndarray:
    """The (H, W) object ids of the mask PNG ``path``: uint8 for an 8-bit palette or grayscale
    image (palette indices for 'P': converting to RGB would turn the ids into colours), uint16 for
    a 16-bit grayscale one (refused without ``allow_16_bit``). Anything else is refused in one
    line naming the file."""
    modes = EIGHT_BIT_MODES + (_SIXTEEN_BIT_MODES if allow_16_bit else ())
    try:
        image = Image.open(path)
    except OSError as e:
        raise InvalidInput(f"{path}: cannot be read as a PNG ({e})") from e
    with image:
        if image.format != "PNG" or image.mode not in modes:
            expected = "8-bit single-channel (palette or grayscale)" + (" or 16-bit grayscale" if allow_16_bit else "")
            raise InvalidInput(f"{path}: is a {image.format} image of mode {image.mode}, not an {expected} PNG of object ids")
        try:
            ids = np.array(image)
        except (OSError, SyntaxError) as e:  # PIL reports a damaged PNG chunk as SyntaxError
            raise InvalidInput(f"{path}: cannot be read as a PNG ({e})") from e
    return ids if image.mode in EIGHT_BIT_MODES else ids.astype(np.uint16)


def paint_ids(masks: np.ndarray, ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """One frame's N masks (N, H, W) bool as an (H, W) int64 id map: each pixel the id (N,) of the
    highest-scoring (scores (N,)) mask covering it, 0 where none does."""
    painted = np.zeros(masks.shape[1:], dtype=np.int64)
    # Lowest score first, so that where masks overlap the higher-scoring one is painted last.
    for index in np.argsort(scores, kind="stable"):
        painted[masks[index]] = ids[index]
    return painted
