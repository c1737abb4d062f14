"""Masks on the frame from mask probabilities on crops of the basis map: the last step of
inference, outside the exported graph (as detectron2's Mask R-CNN export leaves its
``paste_masks_in_image`` outside), shared by PyTorch and the runtimes of :mod:`sgnet.deploy`."""
import torch
from torch import Tensor

from .postprocessing import bilinear_sources, resample_crops, resize_windows


# Output pixels resampled at once, at most (unless one window is larger): with grid_sample's grid,
# its broadcast parts and the result, about 25 bytes a pixel, so a chunk needs ~50 MB however
# large the frame.
CHUNK_PIXELS = 2**21


def paste_masks(
    probabilities: Tensor, regions: Tensor, map_size, output_size, threshold: float, chunk_pixels: int = CHUNK_PIXELS
) -> Tensor:
    """Threshold the valid part of a basis map, resized bilinearly to the output, per instance.

    Equals placing each instance's crop on a map of zeros, resizing the map's ``map_size`` part
    to ``output_size`` (``F.interpolate``, bilinear) and thresholding; but only the output window
    that reads each crop is resampled (everywhere else reads zeros, below any threshold in (0, 1)).
    Windows go in chunks of similar size, padded to the largest, of at most ``chunk_pixels``
    padded pixels (or one window).

    Args:
        probabilities: (N, h, w) on each instance's crop, 0 past its region's extent.
        regions: (N, 4) int64 row_start, col_start, row_end, col_end of each crop in the map
            (:meth:`~sgnet.modeling.mask_head.BoxCrops.regions`), inside ``map_size``.
        map_size: (H_b, W_b) the part of the basis map the output covers.
        output_size: (H, W) of the masks.
    Returns:
        (N, H, W) bool.
    """
    height, width = (int(size) for size in output_size)
    map_h, map_w = (int(size) for size in map_size)
    device = probabilities.device
    masks = torch.zeros(len(probabilities), height, width, dtype=torch.bool, device=device)
    if min(*probabilities.shape, height, width, map_h, map_w) == 0:
        return masks  # no mask, or crops of no pixel (a window may still read their edge: zeros)
    row_start, col_start, row_end, col_end = regions.unbind(dim=1)
    # Where each output pixel reads the map.
    out_ys = bilinear_sources(height, map_h, map_h / height, device)
    out_xs = bilinear_sources(width, map_w, map_w / width, device)
    out_row, out_height = resize_windows(row_start, row_end, out_ys)
    out_col, out_width = resize_windows(col_start, col_end, out_xs)
    order = torch.argsort(out_height * out_width)
    extents = torch.stack([out_height, out_width], dim=1)[order].cpu()  # one transfer for all chunks
    for start, end in _chunks(extents.tolist(), chunk_pixels):
        window_h, window_w = extents[start:end].amax(dim=0).tolist()
        if window_h == 0 or window_w == 0:
            continue
        chunk = order[start:end]
        # Windows moved inside the output where they overhang (the moved-over part reads zeros).
        rows = out_row[chunk].clamp(max=height - window_h)
        cols = out_col[chunk].clamp(max=width - window_w)
        window_ys = out_ys[rows[:, None] + torch.arange(window_h, device=device)] - row_start[chunk, None]
        window_xs = out_xs[cols[:, None] + torch.arange(window_w, device=device)] - col_start[chunk, None]
        resized = resample_crops(probabilities[chunk, None], window_ys, window_xs)[:, 0]
        # One window per instance of the (N, H, W) masks: a write through a view, no indices.
        # (The windows never overlap, but the view does: not for deterministic-algorithms mode,
        # whose CUDA index_put copies the whole view.)
        masks.unfold(1, window_h, 1).unfold(2, window_w, 1)[chunk, rows, cols] = resized > threshold
    return masks


def _chunks(extents, chunk_pixels: int):
    """[start, end) ranges over (height, width) ``extents`` sorted by area: each as long as its
    windows, padded to their largest height and width, stay within ``chunk_pixels`` (one at least)."""
    start, max_h, max_w = 0, 0, 0
    for index, (height, width) in enumerate(extents):
        max_h, max_w = max(max_h, height), max(max_w, width)
        if index > start and (index + 1 - start) * max_h * max_w > chunk_pixels:
            yield start, index
            start, max_h, max_w = index, height, width
    if start < len(extents):
        yield start, len(extents)
