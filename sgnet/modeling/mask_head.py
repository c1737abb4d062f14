"""Spatial-granularity mask head (SG-Net section 4): shared basis maps, and per instance a g x g
grid of coefficient vectors over its box, each cell combining the bases on its own sub-region.

No RoIAlign: a mask is assembled directly on the basis maps inside the instance's box. One
formulation serves training, inference and export (:meth:`SpatialGranularityMaskHead.crop_logits`):
each instance's logits on a crop of the basis map over its box, whose cost follows the box.
Inference pastes the crops onto the frame outside the network (:mod:`.mask_paste`).
"""
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
from detectron2.config import configurable
from torch import Tensor, nn

from .layers import gather_conv3x3, upsample_concat
from .postprocessing import resample_crops, source_coordinates


@dataclass
class BoxCrops:
    """Crops of a basis map over N boxes: rows [row_start, row_end) and columns
    [col_start, col_end) hold the basis pixels whose centres fall inside each box, clipped to the
    map; (N,) int64 each, empty ranges have end == start."""

    row_start: Tensor
    row_end: Tensor
    col_start: Tensor
    col_end: Tensor

    @classmethod
    def of(cls, boxes: Tensor, map_size) -> "BoxCrops":
        """The crops of (N, 4) boxes x0, y0, x1, y1 in basis-map pixels (continuous, pixel centres
        at +0.5) on a map of ``map_size`` (H, W): ints, or 0-d tensors when traced."""
        height, width = map_size
        x0, y0, x1, y1 = boxes.unbind(dim=1)
        # Pixel u is inside when x0 <= u + 0.5 < x1.
        col_start = torch.ceil(x0 - 0.5).clamp(0, width).long()
        col_end = torch.maximum(torch.ceil(x1 - 0.5).clamp(0, width).long(), col_start)
        row_start = torch.ceil(y0 - 0.5).clamp(0, height).long()
        row_end = torch.maximum(torch.ceil(y1 - 0.5).clamp(0, height).long(), row_start)
        return cls(row_start, row_end, col_start, col_end)

    def __getitem__(self, index) -> "BoxCrops":
        return BoxCrops(self.row_start[index], self.row_end[index], self.col_start[index], self.col_end[index])

    @property
    def heights(self) -> Tensor:
        return self.row_end - self.row_start

    @property
    def widths(self) -> Tensor:
        return self.col_end - self.col_start

    def inside(self, crop_size) -> Tensor:
        """(N, crop_h, crop_w) bool: which pixels of crops of ``crop_size`` (at least as large as
        each box's extent; ints or 0-d tensors) are the box's, not padding."""
        crop_h, crop_w = crop_size
        rows = torch.arange(crop_h, device=self.row_start.device) < self.heights[:, None]
        cols = torch.arange(crop_w, device=self.row_start.device) < self.widths[:, None]
        return rows[:, :, None] & cols[:, None, :]

    def regions(self) -> Tensor:
        """(N, 4) int64 row_start, col_start, row_end, col_end (what :func:`.mask_paste.paste_masks` reads)."""
        return torch.stack([self.row_start, self.col_start, self.row_end, self.col_end], dim=1)


@dataclass
class BoxPixels:
    """The basis pixels inside a set of boxes, flattened over instances (P pixels in all).

    instance, ys, xs: (P,) int64 — owning instance, basis-map row and column.
    """

    instance: Tensor
    ys: Tensor
    xs: Tensor


def grid_bands(pixels: Tensor, start: Tensor, end: Tensor, granularity: Tensor) -> Tensor:
    """Band (0..g-1) of the g x g grid over a box that pixels fall in along one axis.

    Bands split the continuous box [start, end) evenly; the clamp covers centres on the far edge.
    pixels: (N, ...) int64; start, end, granularity: (N,) broadcast over the trailing dims.
    """
    shape = (-1,) + (1,) * (pixels.dim() - 1)
    start, end, granularity = start.view(shape), end.view(shape), granularity.view(shape)
    band = ((pixels + 0.5 - start) / (end - start) * granularity).floor().long()
    return torch.minimum(band.clamp(min=0), granularity - 1)


def _smaller(size, bound):
    """min of two sizes: ints, or 0-d tensors when traced (where a Python min would freeze the
    example's values into the graph)."""
    if isinstance(size, Tensor) or isinstance(bound, Tensor):
        return torch.minimum(torch.as_tensor(size), torch.as_tensor(bound))
    return min(size, bound)


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
        """(N, K * sum g^2) coefficients and (N,) g -> (N, G, G, K) the coefficients of each
        instance's cell (i, j), G the largest granularity; zero where i or j >= its g."""
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
        cells = torch.gather(rows, 1, cell_rows.reshape(num_instances, max_g * max_g, 1).expand(-1, -1, num_bases))
        return cells.reshape(num_instances, max_g, max_g, num_bases)

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

    def crop_logits(
        self,
        coarse_bases: Tensor,
        image_idx: Tensor,
        boxes: Tensor,
        granularity: Tensor,
        cells: Tensor,
        crops: BoxCrops,
        crop_size,
    ) -> Tensor:
        """Mask logits of n instances on crops of the basis map: the one formulation of the masks
        (training, inference, export).

        Pixel (y, x) of instance k's crop is basis pixel (row_start[k] + y, col_start[k] + x); its
        logit is <bases at the pixel, the coefficients of the pixel's cell>. The bases are the
        coarse bases upsampled x4 (bilinear, a linear map), so that logit is the cell's *coarse*
        logits <coarse bases, cell coefficients> upsampled at the pixel: those are one small
        batched matmul on the coarse window under each crop (16x fewer pixels than the crop), each
        cell's logits a tile of a mosaic, and each crop pixel samples its own cell's tile.

        Args:
            coarse_bases: (B, K, h, w) from :meth:`coarse_bases`.
            image_idx: (n,) image of each instance.
            boxes: (n, 4) the regions the g x g grids span, in basis-map pixels.
            granularity: (n,) g per instance.
            cells: (n, G, G, K) coefficients of cells (i, j) (:meth:`cell_coefficients`), G at
                least the largest g of the n.
            crops: the n crops (their starts place them; pixels past their ends are padding,
                computed but meaningless).
            crop_size: (crop_h, crop_w), ints, or 0-d int64 tensors when traced.
        Returns:
            (n, crop_h, crop_w) float32 logits.
        """
        batch, num_bases, coarse_h, coarse_w = coarse_bases.shape
        num_instances, max_g = boxes.shape[0], cells.shape[1]
        upsample, device = self.basis_upsample, boxes.device
        x0, y0, x1, y1 = boxes.unbind(dim=1)

        def axis(start, size, coarse_size, band_start, band_end):
            """Along one axis: the coarse window of each crop ((n, tile) coarse indices) and its
            pixels' coordinates in the mosaic (n, size)."""
            # The crop's basis pixels, clamped to the map in the padding past the box.
            pixels = (start[:, None] + torch.arange(size, device=device)).clamp(max=coarse_size * upsample - 1)
            # Where F.interpolate(scale_factor=upsample, bilinear) reads them in the coarse map.
            sources = source_coordinates(pixels, coarse_size, 1 / upsample)
            # s pixels span at most ceil((s - 1) / upsample) + 1 coarse taps; the window is moved
            # inside the map where it overhangs. From the start, not sources[:, 0]: s may be 0.
            tile = _smaller((size + upsample - 2) // upsample + 2, coarse_size)
            first = source_coordinates(start, coarse_size, 1 / upsample).floor().long().clamp(max=coarse_size - tile)
            taps = first[:, None] + torch.arange(tile, device=device)
            bands = grid_bands(pixels, band_start, band_end, granularity)
            return taps, bands * tile + (sources - first[:, None])

        row_taps, mosaic_ys = axis(crops.row_start, crop_size[0], coarse_h, y0, y1)
        col_taps, mosaic_xs = axis(crops.col_start, crop_size[1], coarse_w, x0, x1)
        tile_h, tile_w = row_taps.shape[1], col_taps.shape[1]
        # The windows as rows of K (one plain gather, which every runtime runs): (n, tile_h * tile_w, K).
        basis_rows = coarse_bases.permute(0, 2, 3, 1).reshape(batch * coarse_h * coarse_w, num_bases)
        window_rows = (image_idx[:, None, None] * coarse_h + row_taps[:, :, None]) * coarse_w + col_taps[:, None, :]
        windows = basis_rows[window_rows.reshape(-1)].reshape(num_instances, tile_h * tile_w, num_bases)
        # In float32 under autocast too: the logits leave here in float32, and float16 sums of K
        # terms put the mask loss a few percent off float32's (the toy's autocast test).
        with torch.autocast(device_type=boxes.device.type, enabled=False):
            tiles = torch.bmm(
                cells.float().reshape(num_instances, max_g * max_g, num_bases), windows.float().transpose(1, 2)
            )
        mosaic = tiles.reshape(num_instances, max_g, max_g, tile_h, tile_w).transpose(2, 3)
        mosaic = mosaic.reshape(num_instances, 1, max_g * tile_h, max_g * tile_w)
        return resample_crops(mosaic, mosaic_ys, mosaic_xs)[:, 0]

    @staticmethod
    def _chunks(crops: BoxCrops, granularity: Tensor, chunk_size: int):
        """Instances in chunks of ``chunk_size`` of similar crop size (little padding), from one
        transfer of their sizes to the host: ([per chunk, its instances (n,), crop size (the
        largest of its crops) and largest g], the largest crop size of all). Chunks of empty
        crops are left out."""
        order = torch.argsort(crops.heights * crops.widths)
        extents = torch.stack([crops.heights, crops.widths, granularity], dim=1)[order].cpu()
        chunks = []
        for start in range(0, len(order), chunk_size):
            crop_h, crop_w, max_g = extents[start : start + chunk_size].amax(dim=0).tolist()
            if crop_h and crop_w:
                chunks.append((order[start : start + chunk_size], (crop_h, crop_w), max_g))
        largest = tuple(extents[:, :2].amax(dim=0).tolist()) if len(extents) else (0, 0)
        return chunks, largest

    def assemble(self, coarse_bases: Tensor, image_idx: Tensor, boxes: Tensor, coefficients: Tensor, granularity=None,
                 chunk_size: int = 32):
        """Mask logits of N instances at the basis pixels inside their boxes (training), by
        :meth:`crop_logits` in chunks of ``chunk_size``.

        Args:
            coarse_bases: (B, K, h, w) coarse bases of the batch (the basis map is 4h x 4w).
            image_idx: (N,) image of each instance.
            boxes: (N, 4) boxes in basis-map pixels.
            coefficients: (N, K * sum g^2) from :meth:`coefficients`.
            granularity: (N,) g per instance; by default :meth:`box_granularity` of these N
                (pass it when assembling a subset, as the per-image rule looks at all of them).
        Returns:
            (BoxPixels in instance order, each box's pixels row-major; logits (P,) float32).
            With no pixel at all, the logits still depend on the coefficients and bases (so
            every parameter of the head gets a gradient, as DistributedDataParallel needs).
        """
        if granularity is None:
            granularity = self.box_granularity(boxes, image_idx)
        map_size = [size * self.basis_upsample for size in coarse_bases.shape[-2:]]
        crops = BoxCrops.of(boxes, map_size)
        cells = self.cell_coefficients(coefficients, granularity)
        chunks, _ = self._chunks(crops, granularity, chunk_size)
        # The chunks' padded logits end to end; where instance k's crop starts there, and its
        # chunk's crop width.
        connected_empty = (cells.flatten()[:0] + coarse_bases.flatten()[:0]).float()
        flat_logits = [connected_empty]
        starts = torch.zeros(len(boxes), dtype=torch.long, device=boxes.device)
        crop_widths = torch.zeros_like(starts)
        offset = 0
        for index, (crop_h, crop_w), max_g in chunks:
            logits = self.crop_logits(
                coarse_bases, image_idx[index], boxes[index], granularity[index], cells[index, :max_g, :max_g], crops[index],
                (crop_h, crop_w),
            )  # fmt: skip
            flat_logits.append(logits.flatten())
            starts[index] = offset + torch.arange(len(index), device=boxes.device) * (crop_h * crop_w)
            crop_widths[index] = crop_w
            offset += logits.numel()
        # Every box pixel, instance by instance, row-major.
        counts = crops.heights * crops.widths
        instance = torch.repeat_interleave(torch.arange(len(boxes), device=boxes.device), counts)
        offset_in_box = torch.arange(len(instance), device=boxes.device) - (torch.cumsum(counts, 0) - counts)[instance]
        dy, dx = offset_in_box // crops.widths[instance], offset_in_box % crops.widths[instance]
        logits = torch.cat(flat_logits)[starts[instance] + dy * crop_widths[instance] + dx]
        pixels = BoxPixels(instance, crops.row_start[instance] + dy, crops.col_start[instance] + dx)
        return pixels, logits

    def mask_probabilities(
        self,
        coarse_bases: Tensor,
        boxes: Tensor,
        coefficients: Tensor,
        granularity: Tensor,
        valid_size,
        chunk_size: Optional[int] = 8,
    ) -> Tuple[Tensor, BoxCrops]:
        """Mask probabilities of one image's N detections on crops of the basis map over their
        scaled boxes (:meth:`test_mask_boxes`), for :func:`.mask_paste.paste_masks` (inference).

        ``chunk_size``: instances go through :meth:`crop_logits` in chunks of similar box size;
        None: all in one pass with sizes as tensors, the traceable form (export), whose cost
        follows N x the largest box.

        Args:
            coarse_bases: (1, K, h, w) of the image, from :meth:`coarse_bases`.
            boxes: (N, 4) detected boxes in basis-map pixels.
            coefficients: (N, K * sum g^2) from :meth:`coefficients`.
            granularity: (N,) g per instance (:meth:`box_granularity` of the unscaled boxes).
            valid_size: (H_b, W_b) part of the basis map covering the unpadded input (ints, or
                0-d tensors when traced); crops are clipped to it.
        Returns:
            (N, crop_h, crop_w) float32 probabilities, 0 past each box's pixels, crop_h x crop_w
            the largest box's extent (at least 1 x 1 in the one-pass form); and the N crops.
        """
        boxes = self.test_mask_boxes(boxes)
        crops = BoxCrops.of(boxes, valid_size)
        cells = self.cell_coefficients(coefficients, granularity)
        image_idx = torch.zeros_like(granularity)
        if chunk_size is None:
            # The largest extent, at least 1: a reduction over no detection has no value, and
            # crops of no pixel would leave runtimes resampling empty inputs.
            crop_size = [torch.cat([extent, extent.new_ones(1)]).max() for extent in (crops.heights, crops.widths)]
            logits = self.crop_logits(coarse_bases, image_idx, boxes, granularity, cells, crops, crop_size)
            return logits.sigmoid() * crops.inside(crop_size), crops
        chunks, crop_size = self._chunks(crops, granularity, chunk_size)
        probabilities = coarse_bases.new_zeros(len(boxes), *crop_size, dtype=torch.float32)
        for index, (crop_h, crop_w), max_g in chunks:
            logits = self.crop_logits(
                coarse_bases, image_idx[index], boxes[index], granularity[index], cells[index, :max_g, :max_g],
                crops[index], (crop_h, crop_w),
            )  # fmt: skip
            probabilities[index, :crop_h, :crop_w] = logits.sigmoid() * crops[index].inside((crop_h, crop_w))
        return probabilities, crops
