"""Spatial-granularity mask head (SG-Net section 4): shared basis maps, and per instance a g x g
grid of coefficient vectors over its box, each cell combining the bases on its own sub-region.

No RoIAlign: a mask is assembled directly on the basis maps inside the instance's box; its cost is
one K-dim dot product per basis pixel of the box.
"""
from dataclasses import dataclass
from typing import List

import torch
from detectron2.config import configurable
from torch import Tensor, nn
from torch.nn import functional as F

from .layers import gather_conv3x3, upsample_concat
from .postprocessing import bilinear_sources, resample_crops, resize_windows


@dataclass
class BoxPixels:
    """The basis pixels covered by a set of boxes, flattened over instances (P pixels in all).

    instance, ys, xs, cells: (P,) int64 — owning instance, basis-map row / column, and the
    pixel's grid cell ``i * g + j`` within its instance's g x g grid.
    """

    instance: Tensor
    ys: Tensor
    xs: Tensor
    cells: Tensor


def box_pixel_ranges(boxes: Tensor, map_size):
    """Rows [row_start, row_end) and columns [col_start, col_end) of the basis pixels whose
    centres fall inside each box, clipped to the map.

    Args:
        boxes: (N, 4) x0, y0, x1, y1 in basis-map pixels (continuous, pixel centres at +0.5).
        map_size: (H, W) of the basis map.
    Returns:
        row_start, row_end, col_start, col_end: (N,) int64; empty ranges have end == start.
    """
    height, width = map_size
    x0, y0, x1, y1 = boxes.unbind(dim=1)
    # Pixel u is inside when x0 <= u + 0.5 < x1.
    col_start = torch.ceil(x0 - 0.5).clamp(0, width).long()
    col_end = torch.maximum(torch.ceil(x1 - 0.5).clamp(0, width).long(), col_start)
    row_start = torch.ceil(y0 - 0.5).clamp(0, height).long()
    row_end = torch.maximum(torch.ceil(y1 - 0.5).clamp(0, height).long(), row_start)
    return row_start, row_end, col_start, col_end


def grid_bands(pixels: Tensor, start: Tensor, end: Tensor, granularity: Tensor) -> Tensor:
    """Band (0..g-1) of the g x g grid over a box that pixels fall in along one axis.

    Bands split the continuous box [start, end) evenly; the clamp covers centres on the far edge.
    pixels: (N, ...) int64; start, end, granularity: (N,) broadcast over the trailing dims.
    """
    shape = (-1,) + (1,) * (pixels.dim() - 1)
    start, end, granularity = start.view(shape), end.view(shape), granularity.view(shape)
    band = ((pixels + 0.5 - start) / (end - start) * granularity).floor().long()
    return torch.minimum(band.clamp(min=0), granularity - 1)


def box_pixels(boxes: Tensor, granularity: Tensor, map_size) -> BoxPixels:
    """Enumerate the basis pixels whose centres fall inside each box, with their grid cell.

    Args:
        boxes: (N, 4) x0, y0, x1, y1 in basis-map pixels (continuous, pixel centres at +0.5).
        granularity: (N,) int64 g per box.
        map_size: (H, W) of the basis map; boxes are clipped to it.
    Returns:
        BoxPixels over all boxes; a box covering no pixel centre contributes nothing.
    """
    row_start, row_end, col_start, col_end = box_pixel_ranges(boxes, map_size)
    box_w = col_end - col_start
    counts = box_w * (row_end - row_start)

    instance = torch.repeat_interleave(torch.arange(len(boxes), device=boxes.device), counts)
    first_pixel = torch.cumsum(counts, 0) - counts
    offset = torch.arange(len(instance), device=boxes.device) - first_pixel[instance]
    ys = row_start[instance] + offset // box_w[instance]
    xs = col_start[instance] + offset % box_w[instance]

    x0, y0, x1, y1 = boxes[instance].unbind(dim=1)
    g = granularity[instance]
    cells = grid_bands(ys, y0, y1, g) * g + grid_bands(xs, x0, x1, g)
    return BoxPixels(instance, ys, xs, cells)


def interpolate_taps(first: Tensor, second: Tensor, weight: Tensor) -> Tensor:
    """Linear interpolation between two taps, ``first * (1 - weight) + second * weight``
    (``torch.lerp`` has no ONNX export)."""
    return first * (1 - weight) + second * weight


class SpatialGranularityMaskHead(nn.Module):
    """Basis maps from the regression towers of P3-P5; coefficients from the aligned features.

    The coefficient convs of all granularities are one conv whose output channels are grouped per
    granularity (g*g cells x K each). That equals separate per-g convs, and keeps every parameter
    in each step's graph (a g no instance picked would otherwise break DistributedDataParallel).
    """

    @configurable
    def __init__(
        self,
        *,
        in_channels: int,
        num_basis_levels: int,
        hidden_dim: int,
        num_bases: int,
        granularities: List[int],
        granularity_areas: List[float],
        granularity_per_image: bool,
        test_box_expansion: float = 1.0,
        basis_upsample: int = 4,
    ):
        super().__init__()
        if list(granularities) != sorted(set(granularities)) or len(granularity_areas) != len(granularities) - 1:
            raise ValueError(
                "MODEL.SGNET.MASK.GRANULARITIES must be ascending and unique, with one "
                f"GRANULARITY_AREAS threshold between each pair; got {granularities} / {granularity_areas}"
            )
        if test_box_expansion < 1.0:
            raise ValueError(f"MODEL.SGNET.MASK.TEST_BOX_EXPANSION must be >= 1.0; got {test_box_expansion}")
        self.num_bases = num_bases
        self.max_granularity = max(granularities)
        self.test_box_expansion = test_box_expansion
        self.basis_upsample = basis_upsample
        self.granularity_per_image = granularity_per_image
        self.basis_branch = nn.Sequential(
            nn.Conv2d(in_channels * num_basis_levels, hidden_dim, kernel_size=1),
            nn.ReLU(),
            nn.Conv2d(hidden_dim, num_bases, kernel_size=3, padding=1),
            nn.ReLU(),
        )
        cells = [g * g for g in granularities]
        self.cells_per_instance = sum(cells)
        self.coef_weight = nn.Parameter(torch.empty(num_bases * sum(cells), in_channels, 3, 3))
        self.coef_bias = nn.Parameter(torch.zeros(num_bases * sum(cells)))
        nn.init.normal_(self.coef_weight, std=0.01)
        self.register_buffer("granularities", torch.tensor(granularities), persistent=False)
        self.register_buffer("granularity_areas", torch.tensor(granularity_areas, dtype=torch.float32), persistent=False)
        # First coefficient channel of each granularity's group.
        self.register_buffer(
            "coef_offsets", num_bases * (torch.cumsum(torch.tensor(cells), 0) - torch.tensor(cells)), persistent=False
        )
        for layer in self.basis_branch:
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)

    @classmethod
    def from_config(cls, cfg, in_channels: int):
        mask = cfg.MODEL.SGNET.MASK
        return {
            "in_channels": in_channels,
            "num_basis_levels": len(mask.BASIS_IN_FEATURES),
            "hidden_dim": mask.BASIS_HIDDEN_DIM,
            "num_bases": mask.NUM_BASES,
            "granularities": list(mask.GRANULARITIES),
            "granularity_areas": list(mask.GRANULARITY_AREAS),
            "granularity_per_image": mask.GRANULARITY_PER_IMAGE,
            "test_box_expansion": mask.TEST_BOX_EXPANSION,
        }

    def coarse_bases(self, box_features: List[Tensor]) -> Tensor:
        """(N, F, H_l, W_l) regression-tower maps, finest first -> (N, K, H_0, W_0) bases before
        their upsampling (at the finest level's stride)."""
        return self.basis_branch(upsample_concat(box_features))

    def bases(self, box_features: List[Tensor]) -> Tensor:
        """(N, F, H_l, W_l) regression-tower maps, finest first -> (N, K, 4*H_0, 4*W_0) bases."""
        return F.interpolate(
            self.coarse_bases(box_features), scale_factor=self.basis_upsample, mode="bilinear", align_corners=False
        )

    def coefficients(self, aligned_features: List[Tensor], batch_idx: Tensor, level: Tensor, ys: Tensor, xs: Tensor) -> Tensor:
        """Coefficients of every granularity at P FPN locations (image, level, row, column,
        each (P,)) of the aligned feature maps (per level (N, F, H_l, W_l)): (P, K * sum g^2),
        float32 (under autocast too: they leave the network here)."""
        return gather_conv3x3(aligned_features, self.coef_weight, self.coef_bias, batch_idx, level, ys, xs).float()

    def select_granularity(self, areas: Tensor, image_idx: Tensor) -> Tensor:
        """g per instance from its box area in basis pixels (paper); or, in the release's
        per-image mode, from the mean area of the instances of its image. (N,) -> (N,) int64.

        Traceable (no host-side sizes): the per-image means go through ``unique``'s inverse, and
        the thresholds are compared directly (``bucketize`` has no ONNX export)."""
        if self.granularity_per_image:
            _, image_group = torch.unique(image_idx, return_inverse=True)
            totals = torch.zeros_like(areas).scatter_add(0, image_group, areas)
            counts = torch.zeros_like(areas).scatter_add(0, image_group, torch.ones_like(areas))
            areas = (totals / counts.clamp(min=1))[image_group]
        # bucketize(areas, thresholds): how many thresholds lie strictly below each area.
        return self.granularities[(areas[:, None] > self.granularity_areas).sum(dim=1)]

    def first_cells(self, granularity: Tensor) -> Tensor:
        """(N,) g per instance -> (N,) row of its cell (0, 0) among the K-wide rows of its
        coefficients (its granularity's group starts there)."""
        group = (granularity[:, None] > self.granularities).sum(dim=1)  # index of g in the list
        return self.coef_offsets[group] // self.num_bases

    def cell_coefficients(self, coefficients: Tensor, granularity: Tensor) -> Tensor:
        """(N, K * sum g^2) coefficients and (N,) g -> (N, G*G, K) the coefficients of each
        instance's cell (i, j) at i * G + j, G the largest granularity; zero where i or j >= its g."""
        num_instances, num_bases, max_g = coefficients.shape[0], self.num_bases, self.max_granularity
        # Row count as a Python int: a traced one (from the shape) exports as -1, which ONNX
        # cannot resolve with zero instances.
        rows = coefficients.reshape(num_instances, self.cells_per_instance, num_bases)
        rows = torch.cat([rows, rows.new_zeros(num_instances, 1, num_bases)], dim=1)  # the zero row last
        i = torch.arange(max_g, device=coefficients.device)
        g = granularity[:, None, None]
        cell_rows = torch.where(
            (i[:, None] < g) & (i[None, :] < g),
            self.first_cells(granularity)[:, None, None] + i[:, None] * g + i[None, :],
            rows.shape[1] - 1,
        )
        return torch.gather(rows, 1, cell_rows.reshape(num_instances, max_g * max_g, 1).expand(-1, -1, num_bases))

    def box_granularity(self, boxes: Tensor, image_idx: Tensor) -> Tensor:
        """(N,) g of N boxes (N, 4) in basis-map pixels, see :meth:`select_granularity`."""
        areas = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
        return self.select_granularity(areas, image_idx)

    def test_mask_boxes(self, boxes: Tensor) -> Tensor:
        """(N, 4) detected boxes -> the (N, 4) regions their masks are assembled on at inference:
        the boxes scaled by ``test_box_expansion`` about their centres, so that a mask can reach
        past a box that is a little too tight (its g x g grid spans the scaled box)."""
        if self.test_box_expansion == 1.0:
            return boxes
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        half_sizes = (boxes[:, 2:] - boxes[:, :2]) / 2 * self.test_box_expansion
        return torch.cat([centres - half_sizes, centres + half_sizes], dim=1)

    def assemble(self, bases: Tensor, image_idx: Tensor, boxes: Tensor, coefficients: Tensor, granularity=None):
        """Mask logits of N instances at the basis pixels inside their boxes.

        Args:
            bases: (B, K, H, W) basis maps of the batch.
            image_idx: (N,) image of each instance.
            boxes: (N, 4) boxes in basis-map pixels.
            coefficients: (N, K * sum g^2) from :meth:`coefficients`.
            granularity: (N,) g per instance; by default :meth:`box_granularity` of these N
                (pass it when assembling a subset, as the per-image rule looks at all of them).
        Returns:
            (BoxPixels, logits (P,)): the logit of pixel p is <bases at p, coefficients of p's cell>;
            float32 (under autocast, the product runs in its dtype and the logits leave here).
        """
        if granularity is None:
            granularity = self.box_granularity(boxes, image_idx)
        pixels = box_pixels(boxes, granularity, bases.shape[-2:])
        # Coefficients as rows of K: instance n's cell c of granularity group j is row
        # n * rows + offset_j / K + c. Gathering whole rows (index_select) instead of (P, K)
        # element indices keeps large instances cheap.
        rows = coefficients.shape[1] // self.num_bases
        coefficient_rows = coefficients.reshape(-1, self.num_bases)
        row = pixels.instance * rows + self.first_cells(granularity)[pixels.instance] + pixels.cells
        pixel_coefficients = coefficient_rows.index_select(0, row)  # (P, K)
        batch, _, height, width = bases.shape
        basis_rows = bases.permute(0, 2, 3, 1).reshape(batch * height * width, self.num_bases)
        flat_pixel = (image_idx[pixels.instance] * height + pixels.ys) * width + pixels.xs
        pixel_bases = basis_rows.index_select(0, flat_pixel)  # (P, K)
        # A batched dot product: ~4x faster on CPU than multiplying then summing (P, K) tensors.
        return pixels, torch.einsum("pk,pk->p", pixel_coefficients, pixel_bases).float()

    def output_masks(
        self,
        coarse_bases: Tensor,
        boxes: Tensor,
        coefficients: Tensor,
        granularity: Tensor,
        valid_size,
        output_size,
        threshold: float,
        chunk_size: int = 8,
    ) -> Tensor:
        """Thresholded masks of one image's N instances at the output resolution (inference).

        The result equals the straightforward computation: logits of the pixels of the scaled
        boxes (:meth:`test_mask_boxes`) on the bases (:meth:`assemble`), probabilities 0 outside
        them, the part of the map covering the unpadded input (``valid_size``) resized bilinearly
        to ``output_size``, thresholded. But no step works on the whole image per instance:

        - the bases are the coarse bases upsampled x4 (bilinear, linear), so a cell's logits are
          the upsampled logits of the coarse map, ``<coarse bases, cell coefficients>``: those
          are one small batched matmul on each box's coarse crop (16x fewer pixels);
        - the x4 upsampling, where each basis pixel reads its own cell's coarse logits, and the
          resize to the output run on box-sized crops (``grid_sample`` at the source coordinates
          of ``F.interpolate``).

        Instances go in chunks of ``chunk_size`` of similar box size, padded to the largest.

        Args:
            coarse_bases: (K, h, w) of the image, from :meth:`coarse_bases`.
            boxes: (N, 4) detected boxes in basis-map pixels (scaled here by :meth:`test_mask_boxes`).
            coefficients: (N, K * sum g^2) from :meth:`coefficients`.
            granularity: (N,) g per instance (:meth:`box_granularity` of the unscaled boxes).
            valid_size: (H_b, W_b) part of the basis map covering the unpadded input.
            output_size: (H, W) of the masks.
        Returns:
            (N, H, W) bool.
        """
        num_bases, coarse_h, coarse_w = coarse_bases.shape
        device = coarse_bases.device
        boxes = self.test_mask_boxes(boxes)
        masks = torch.zeros(len(boxes), *output_size, dtype=torch.bool, device=device)
        if len(boxes) == 0:
            return masks
        cells = self.cell_coefficients(coefficients, granularity).view(
            len(boxes), self.max_granularity, self.max_granularity, num_bases
        )
        # Instances sorted by box size, so that chunks need little padding; every per-instance
        # tensor is permuted once, and a chunk is a slice of them.
        row_start, row_end, col_start, col_end = box_pixel_ranges(boxes, valid_size)
        order = torch.argsort((row_end - row_start) * (col_end - col_start))
        boxes, granularity, cells = boxes[order], granularity[order], cells[order]
        row_start, row_end, col_start, col_end = row_start[order], row_end[order], col_start[order], col_end[order]
        # Source coordinates: basis pixels in the coarse map, output pixels in the basis map.
        coarse_ys = bilinear_sources(coarse_h * self.basis_upsample, coarse_h, 1 / self.basis_upsample, device)
        coarse_xs = bilinear_sources(coarse_w * self.basis_upsample, coarse_w, 1 / self.basis_upsample, device)
        out_ys = bilinear_sources(output_size[0], valid_size[0], valid_size[0] / output_size[0], device)
        out_xs = bilinear_sources(output_size[1], valid_size[1], valid_size[1] / output_size[1], device)
        out_row, out_height = resize_windows(row_start, row_end, out_ys)
        out_col, out_width = resize_windows(col_start, col_end, out_xs)
        # Chunk extents on the host at once (one transfer, no per-chunk synchronisation).
        extents = torch.stack([row_end - row_start, col_end - col_start, out_height, out_width, granularity], 1).cpu()

        for start in range(0, len(boxes), chunk_size):
            chunk = slice(start, start + chunk_size)
            crop_h, crop_w, window_h, window_w, max_g = extents[chunk].amax(dim=0).tolist()
            if min(crop_h, crop_w, window_h, window_w) == 0:
                continue
            # Basis pixels of the crops, (n, crop_h) / (n, crop_w): the chunk's padding runs past
            # the box (masked by ``inside``), clamped at the valid edge.
            ys = (row_start[chunk, None] + torch.arange(crop_h, device=device)).clamp(max=valid_size[0] - 1)
            xs = (col_start[chunk, None] + torch.arange(crop_w, device=device)).clamp(max=valid_size[1] - 1)
            x0, y0, x1, y1 = boxes[chunk].unbind(dim=1)
            g = granularity[chunk]
            # The chunk's cells up to its largest g: (n, max_g * max_g, K).
            chunk_cells = cells[chunk, :max_g, :max_g].reshape(len(g), max_g * max_g, num_bases)
            logits = self._cell_logits(
                coarse_bases, chunk_cells, max_g,
                coarse_ys[ys], coarse_xs[xs], grid_bands(ys, y0, y1, g), grid_bands(xs, x0, x1, g),
            )
            heights, widths = row_end[chunk] - row_start[chunk], col_end[chunk] - col_start[chunk]
            inside = (torch.arange(crop_h, device=device) < heights[:, None])[:, :, None] & (
                torch.arange(crop_w, device=device) < widths[:, None]
            )[:, None, :]
            probabilities = logits.sigmoid() * inside
            # Windows of the output that read the crops, moved inside the image if they overhang
            # (the moved-over part reads zeros).
            rows = out_row[chunk].clamp(max=output_size[0] - window_h)
            cols = out_col[chunk].clamp(max=output_size[1] - window_w)
            window_ys = out_ys[rows[:, None] + torch.arange(window_h, device=device)] - row_start[chunk, None]
            window_xs = out_xs[cols[:, None] + torch.arange(window_w, device=device)] - col_start[chunk, None]
            resized = resample_crops(probabilities[:, None], window_ys, window_xs)[:, 0]
            # One window per instance of the (N, H, W) masks: a write through a view, no indices.
            # (The windows never overlap, but the view does: not for deterministic-algorithms mode,
            # whose CUDA index_put copies the whole view.)
            masks.unfold(1, window_h, 1).unfold(2, window_w, 1)[order[chunk], rows, cols] = resized > threshold
        return masks

    def dense_output_masks(
        self,
        coarse_bases: Tensor,
        boxes: Tensor,
        coefficients: Tensor,
        granularity: Tensor,
        valid_size,
        output_size,
        threshold: float,
    ) -> Tensor:
        """The masks of :meth:`output_masks`, computed on the whole map for every instance with
        ops whose sizes follow the inputs': the formulation exported to ONNX, where the chunked
        one's host-side crop sizes would freeze the example's.

        Per instance, each cell's coarse logits on the whole coarse map (one batched matmul);
        the x4 upsampling as two separable bilinear passes, each basis pixel gathering the taps of
        its own row band, then column band; the logits outside the scaled box zeroed as
        probabilities; the valid part resized to the output, thresholded. Cost grows with
        N x map size (the chunked form's with N x box size).

        Args: as :meth:`output_masks`; ``valid_size`` and ``output_size`` may be (2,) int64
            tensors (traced). Returns: (N, H, W) bool.
        """
        num_bases, coarse_h, coarse_w = coarse_bases.shape
        num_instances = boxes.shape[0]
        max_g = self.max_granularity
        boxes = self.test_mask_boxes(boxes)
        cell_coefficients = self.cell_coefficients(coefficients, granularity)
        cell_logits = (cell_coefficients @ coarse_bases.reshape(num_bases, -1)).reshape(
            num_instances, max_g, max_g, coarse_h, coarse_w
        )  # (N, G_i, G_j, h, w): cell (i, j)'s logits on the coarse map
        valid_h, valid_w = valid_size[0], valid_size[1]
        x0, y0, x1, y1 = boxes.unbind(dim=1)
        rows = torch.arange(valid_h, device=boxes.device)
        cols = torch.arange(valid_w, device=boxes.device)
        row_bands = grid_bands(rows.expand(num_instances, -1), y0, y1, granularity)  # (N, H_b)
        col_bands = grid_bands(cols.expand(num_instances, -1), x0, x1, granularity)  # (N, W_b)

        def upsample_taps(bands, sources, size, table_rows):
            """Rows of a table holding, per instance, ``table_rows`` rows of which band b's start
            at b * size: the rows of both bilinear taps of each output index, (N, n) each, and
            the second tap's weight (n,)."""
            first = sources.floor()
            weight = sources - first
            first = first.long()
            second = (first + 1).clamp(max=size - 1)
            start = torch.arange(num_instances, device=boxes.device)[:, None] * table_rows + bands * size
            return start + first, start + second, weight

        # Both passes read whole rows of a table (a plain gather, no per-element indices):
        # rows: each coarse row of each row band, holding its G_j cells side by side.
        row_table = cell_logits.permute(0, 1, 3, 2, 4).reshape(-1, max_g * coarse_w)  # (N * G_i * h, G_j * w)
        top, bottom, row_weight = upsample_taps(
            row_bands, bilinear_sources(valid_h, coarse_h, 1 / self.basis_upsample, boxes.device), coarse_h, max_g * coarse_h
        )
        row_logits = interpolate_taps(row_table[top], row_table[bottom], row_weight[:, None])  # (N, H_b, G_j * w)
        # columns: each coarse column of each column band, along the basis rows.
        column_table = row_logits.transpose(1, 2).reshape(-1, rows.shape[0])  # (N * G_j * w, H_b)
        left, right, col_weight = upsample_taps(
            col_bands, bilinear_sources(valid_w, coarse_w, 1 / self.basis_upsample, boxes.device), coarse_w, max_g * coarse_w
        )
        logits = interpolate_taps(column_table[left], column_table[right], col_weight[:, None]).transpose(1, 2)  # (N, H_b, W_b)
        row_start, row_end, col_start, col_end = box_pixel_ranges(boxes, (valid_h, valid_w))
        inside = ((rows >= row_start[:, None]) & (rows < row_end[:, None]))[:, :, None] & (
            (cols >= col_start[:, None]) & (cols < col_end[:, None])
        )[:, None, :]
        probabilities = logits.sigmoid() * inside
        resized = F.interpolate(
            probabilities[:, None], size=(output_size[0], output_size[1]), mode="bilinear", align_corners=False
        )
        return resized[:, 0] > threshold

    def _cell_logits(
        self,
        coarse_bases: Tensor,
        cell_coefficients: Tensor,
        max_g: int,
        src_ys: Tensor,
        src_xs: Tensor,
        row_bands: Tensor,
        col_bands: Tensor,
    ) -> Tensor:
        """Logits of a chunk's n crops of basis pixels, each pixel read from its own cell's map.

        Args:
            coarse_bases: (K, h, w); cell_coefficients: (n, G*G, K) of cells (i, j), i, j < G
            (:meth:`cell_coefficients`); max_g: G.
            src_ys: (n, crop_h), src_xs: (n, crop_w) the crop pixels' coordinates in the coarse map.
            row_bands: (n, crop_h), col_bands: (n, crop_w) their grid cell along each axis.
        Returns:
            (n, crop_h, crop_w) logits.
        """
        num_bases, coarse_h, coarse_w = coarse_bases.shape
        # Coarse windows covering both bilinear taps of every crop pixel, moved inside the map
        # where they overhang (coordinates are relative to the window).
        # n crop pixels span at most ceil((n - 1) / upsample) + 1 coarse taps (sizes known on the
        # host: no synchronisation).
        top, left = src_ys[:, 0].floor().long(), src_xs[:, 0].floor().long()
        tile_h = min(-(-(src_ys.shape[1] - 1) // self.basis_upsample) + 2, coarse_h)
        tile_w = min(-(-(src_xs.shape[1] - 1) // self.basis_upsample) + 2, coarse_w)
        top, left = top.clamp(max=coarse_h - tile_h), left.clamp(max=coarse_w - tile_w)
        windows = coarse_bases.unfold(1, tile_h, 1).unfold(2, tile_w, 1)[:, top, left]  # (K, n, tile_h, tile_w)
        crops = windows.transpose(0, 1).reshape(len(top), num_bases, tile_h * tile_w)
        # Each cell's coarse logits as one tile of a (G*tile_h, G*tile_w) mosaic per instance.
        tiles = torch.bmm(cell_coefficients, crops).reshape(-1, max_g, max_g, tile_h, tile_w)
        mosaic = tiles.transpose(2, 3).reshape(-1, 1, max_g * tile_h, max_g * tile_w)
        mosaic_ys = row_bands * tile_h + (src_ys - top[:, None])
        mosaic_xs = col_bands * tile_w + (src_xs - left[:, None])
        return resample_crops(mosaic, mosaic_ys, mosaic_xs)[:, 0]
