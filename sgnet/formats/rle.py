"""Per-frame masks in the encodings YouTube-VIS files use (pycocotools run-length encoding).

A frame's segmentation in a YouTube-VIS file is one of
- compressed RLE: ``{"size": [H, W], "counts": str}`` (results files; bytes in memory too),
- uncompressed RLE: ``{"size": [H, W], "counts": [int, ...]}`` (the official annotation files),
- polygons: ``[[x0, y0, x1, y1, ...], ...]`` (some custom annotation files),
- ``None`` where the object is absent.
"""
import re
from typing import List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util
import torch

__all__ = [
    "encode_masks",
    "segmentation_to_rle",
    "segmentation_to_mask",
    "mask_to_uncompressed_rle",
    "mask_box_xywh",
    "find_rle_problem",
]

# pycocotools' compressed RLE: per run, up to 6 characters with the continuation bit ('P'..'o')
# then one without ('0'..'O'). Longer values overflow its decoder; a trailing continuation
# character makes it read past the end of the string.
_COMPRESSED_COUNTS = re.compile(r"(?:[P-o]{0,6}[0-O])*")


def encode_masks(masks: Sequence) -> List[Optional[dict]]:
    """
    Encode one track's per-frame masks as compressed RLE, the results-file format.

    Args:
        masks: T entries, each an (H, W) torch tensor or numpy array (nonzero = object), or None
            where the track is absent.

    Returns:
        T entries: ``{"size": [H, W], "counts": str}``, or None where the input is None.
    """
    present = [t for t, mask in enumerate(masks) if mask is not None]
    encoded = [None] * len(masks)
    if not present:
        return encoded
    # One pycocotools call per track: it takes an (H, W, N) Fortran-ordered uint8 array.
    stacked = np.stack([_to_binary_array(masks[t]) for t in present], axis=-1)
    rles = mask_util.encode(np.asfortranarray(stacked, dtype=np.uint8))
    for t, rle in zip(present, rles):
        # str, not bytes: the results file is json.
        encoded[t] = {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode()}
    return encoded


def _to_binary_array(mask) -> np.ndarray:
    # pycocotools' encoder treats any value other than 0/1 as a run break, so binarize first.
    if isinstance(mask, torch.Tensor):
        return (mask != 0).cpu().numpy()
    return np.asarray(mask) != 0


def segmentation_to_rle(segmentation, height: int, width: int) -> dict:
    """
    Convert a frame's segmentation (any of the module's encodings except None) to compressed RLE
    (``counts`` as str or bytes, both accepted by pycocotools).
    """
    if isinstance(segmentation, list):  # polygons
        return mask_util.merge(mask_util.frPyObjects(segmentation, height, width))
    if isinstance(segmentation["counts"], list):  # uncompressed RLE
        return mask_util.frPyObjects(segmentation, height, width)
    return segmentation


def segmentation_to_mask(segmentation, height: int, width: int) -> np.ndarray:
    """Decode any of the module's encodings (except None) to a (height, width) uint8 {0, 1} mask."""
    return mask_util.decode(segmentation_to_rle(segmentation, height, width))


def mask_to_uncompressed_rle(mask: np.ndarray) -> dict:
    """(H, W) binary mask -> ``{"counts": [int, ...], "size": [H, W]}`` as the official files
    store it: run lengths in column-major order, the first run counting zeros (possibly 0)."""
    mask = np.asarray(mask, dtype=bool)
    flat = mask.ravel(order="F")
    change_points = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate([[0], change_points, [flat.size]]))
    if flat.size and flat[0]:
        counts = np.concatenate([[0], counts])
    return {"counts": [int(c) for c in counts], "size": [int(mask.shape[0]), int(mask.shape[1])]}


def mask_box_xywh(mask: np.ndarray) -> List[float]:
    """XYWH box of a non-empty (H, W) mask, pixel-inclusive like pycocotools' toBbox: the
    ``bboxes`` entry the official files give a frame."""
    mask = np.asarray(mask, dtype=bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    x0, y0 = cols[0], rows[0]
    return [float(x0), float(y0), float(cols[-1] - x0 + 1), float(rows[-1] - y0 + 1)]


def find_rle_problem(segmentations: Sequence, height: int, width: int) -> Optional[Tuple[int, str]]:
    """
    Check a track's per-frame RLEs (compressed or uncompressed, or None) against its video's
    frame size, completely: pycocotools itself does not validate, and reads past the end of a
    truncated compressed string.

    Returns:
        None when all are valid, else (frame index, a sentence naming the problem) of the first
        invalid one.
    """
    compressed = []  # (frame, counts) to check together
    for t, segmentation in enumerate(segmentations):
        if segmentation is None:
            continue
        problem = _rle_structure_problem(segmentation, height, width)
        if problem:
            return t, problem
        counts = segmentation["counts"]
        if not isinstance(counts, list):
            compressed.append((t, counts.decode("ascii") if isinstance(counts, bytes) else counts))
    if compressed:
        totals, negative = _compressed_run_totals([counts for _, counts in compressed])
        for (t, _), total, has_negative in zip(compressed, totals, negative):
            if has_negative:
                return t, "malformed compressed RLE: a run is negative"
            if total != height * width:
                return t, f"malformed compressed RLE: runs add up to {total}, not {height}*{width}"
    return None


def _rle_structure_problem(segmentation, height: int, width: int) -> Optional[str]:
    if not isinstance(segmentation, dict) or not {"size", "counts"} <= segmentation.keys():
        return (
            "a segmentation must be None or an RLE dict with 'size' and 'counts', "
            f"got {_short(segmentation)}"
        )
    size = segmentation["size"]
    if not isinstance(size, (list, tuple)) or list(size) != [height, width]:
        return f"RLE size {_short(size)} differs from the video's [{height}, {width}]"
    counts = segmentation["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", errors="replace")
    if isinstance(counts, str):
        if not _COMPRESSED_COUNTS.fullmatch(counts):
            return "malformed compressed RLE: 'counts' is not a sequence of pycocotools' run codes"
        return None
    if isinstance(counts, list):
        if not all(isinstance(c, (int, np.integer)) and c >= 0 for c in counts):
            return "malformed uncompressed RLE: 'counts' must be non-negative integers"
        if sum(counts) != height * width:
            return f"malformed uncompressed RLE: runs add up to {sum(counts)}, not {height}*{width}"
        return None
    return f"RLE 'counts' must be a str, bytes or a list of int, got {type(counts).__name__}"


def _compressed_run_totals(strings: List[str]) -> Tuple[np.ndarray, np.ndarray]:
    """
    Decode grammatical compressed RLE strings (see _COMPRESSED_COUNTS) just enough to check them,
    in one vectorised pass over all their characters instead of a mask decode per string.

    pycocotools' code: each run is a signed value in 5-bit groups, least significant first,
    character = 48 + group (+ 0x20 when more groups follow); bit 0x10 of the last group is the
    sign. From the fourth value on, a value is the difference to the run two before.

    Returns:
        (n,) int64 sums of the runs, (n,) bool whether any run is negative.
    """
    n = len(strings)
    string_of_char = np.repeat(np.arange(n), [len(s) for s in strings])
    groups = np.frombuffer("".join(strings).encode("ascii"), dtype=np.uint8).astype(np.int64) - 48
    if groups.size == 0:
        return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    ends = np.flatnonzero((groups & 0x20) == 0)  # the last group of each value
    starts = np.concatenate([[0], ends[:-1] + 1])
    value_of_group = np.repeat(np.arange(len(ends)), ends - starts + 1)
    shifts = 5 * (np.arange(len(groups)) - starts[value_of_group])
    values = np.add.reduceat((groups & 0x1F) << shifts, starts)
    values -= np.where(groups[ends] & 0x10, 1 << (shifts[ends] + 5), 0)  # two's complement

    # Undo the delta coding: run m is the sum of values m, m-2, ... down to value 1 (odd m) or 2
    # (even m); run 0 is value 0. A cumulative sum per (string, chain), chains made contiguous.
    string_of_value = string_of_char[ends]
    first_value = np.searchsorted(string_of_value, np.arange(n))
    m = np.arange(len(values)) - first_value[string_of_value]
    chain = np.where(m == 0, 0, 2 - m % 2)
    order = np.argsort(string_of_value * 3 + chain, kind="stable")
    keys = (string_of_value * 3 + chain)[order]
    sums = np.cumsum(values[order])
    chain_start = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    before_chain = sums[chain_start] - values[order][chain_start]
    runs = np.empty_like(values)
    runs[order] = sums - np.repeat(before_chain, np.diff(np.append(chain_start, len(keys))))

    totals = np.bincount(string_of_value, weights=runs, minlength=n).astype(np.int64)
    negative = np.bincount(string_of_value, weights=runs < 0, minlength=n) > 0
    return totals, negative


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
