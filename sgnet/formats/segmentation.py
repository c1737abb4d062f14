"""The one check of segmentations (RLE or polygons, see :mod:`.rle`) for every reader: YouTube-VIS
annotation and results files, COCO instances files.

pycocotools validates neither: it decodes an RLE whose runs do not cover the frame, and takes a
polygon of 2 points (4 numbers) for a box, failing later with ``TypeError: Argument 'bb'``.
"""
from typing import Optional, Sequence, Tuple

from .records import is_number, short_repr
from .rle import find_rle_problem

__all__ = ["find_polygon_problem", "find_segmentation_problem"]


def find_polygon_problem(polygons: list) -> Optional[str]:
    """None if ``polygons`` is a non-empty list of polygons, each a list of at least 3 (x, y)
    points (an even number >= 6 of finite numbers); else a sentence naming the problem."""
    if not polygons:
        return "empty list of polygons (an absent object is null)"
    for k, polygon in enumerate(polygons):
        if not (
            isinstance(polygon, list)
            and len(polygon) >= 6
            and len(polygon) % 2 == 0
            and all(is_number(v) for v in polygon)
        ):
            return (
                f"polygon {k} is not a list of at least 3 (x, y) points (an even number >= 6 of "
                f"numbers): {short_repr(polygon)}"
            )
    return None


def find_segmentation_problem(
    segmentations: Sequence, height: int, width: int, *, polygons: bool = True
) -> Optional[Tuple[int, str]]:
    """
    Check per-frame segmentations (None, RLE dicts, and polygons if ``polygons``) against the
    frame size, completely.

    Returns:
        None when all are valid, else (frame index, a sentence naming the problem) of the first
        invalid one.
    """
    problems = []
    if polygons:
        polygon_problems = (
            (t, find_polygon_problem(s)) for t, s in enumerate(segmentations) if isinstance(s, list)
        )
        problems.append(next(((t, p) for t, p in polygon_problems if p), None))
        segmentations = [None if isinstance(s, list) else s for s in segmentations]
    # RLEs are checked together: compressed ones are decoded in one vectorised pass.
    problems.append(find_rle_problem(segmentations, height, width))
    found = [problem for problem in problems if problem]
    return min(found, key=lambda problem: problem[0]) if found else None
