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


def box_pixels(boxes: Tensor, granularity: Tensor, map_size) -> BoxPixels:
    """Enumerate the basis pixels whose centres fall inside each box, with their grid cell.

    Args:
        boxes: (N, 4) x0, y0, x1, y1 in basis-map pixels (continuous, pixel centres at +0.5).
        granularity: (N,) int64 g per box.
        map_size: (H, W) of the basis map; boxes are clipped to it.
    Returns:
        BoxPixels over all boxes; a box covering no pixel centre contributes nothing.
    """
    height, width = map_size
    x0, y0, x1, y1 = boxes.unbind(dim=1)
    # Pixel u is inside when x0 <= u + 0.5 < x1.
    col_start = torch.ceil(x0 - 0.5).clamp(0, width).long()
    col_end = torch.ceil(x1 - 0.5).clamp(0, width).long()
    row_start = torch.ceil(y0 - 0.5).clamp(0, height).long()
    row_end = torch.ceil(y1 - 0.5).clamp(0, height).long()
    box_w = (col_end - col_start).clamp(min=0)
    box_h = (row_end - row_start).clamp(min=0)
    counts = box_w * box_h

    instance = torch.repeat_interleave(torch.arange(len(boxes), device=boxes.device), counts)
    first_pixel = torch.cumsum(counts, 0) - counts
    offset = torch.arange(len(instance), device=boxes.device) - first_pixel[instance]
    ys = row_start[instance] + offset // box_w[instance]
    xs = col_start[instance] + offset % box_w[instance]

    g = granularity[instance]
    # Cells split the (continuous) box evenly; clamp covers centres on the far edge.
    row_cell = ((ys + 0.5 - y0[instance]) / (y1 - y0)[instance] * g).floor().long()
    col_cell = ((xs + 0.5 - x0[instance]) / (x1 - x0)[instance] * g).floor().long()
    row_cell = torch.minimum(row_cell.clamp(min=0), g - 1)
    col_cell = torch.minimum(col_cell.clamp(min=0), g - 1)
    return BoxPixels(instance, ys, xs, row_cell * g + col_cell)


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
        basis_upsample: int = 4,
    ):
        super().__init__()
        if list(granularities) != sorted(set(granularities)) or len(granularity_areas) != len(granularities) - 1:
            raise ValueError(
                "MODEL.SGNET.MASK.GRANULARITIES must be ascending and unique, with one "
                f"GRANULARITY_AREAS threshold between each pair; got {granularities} / {granularity_areas}"
            )
        self.num_bases = num_bases
        self.basis_upsample = basis_upsample
        self.granularity_per_image = granularity_per_image
        self.basis_branch = nn.Sequential(
            nn.Conv2d(in_channels * num_basis_levels, hidden_dim, kernel_size=1),
            nn.ReLU(),
            nn.Conv2d(hidden_dim, num_bases, kernel_size=3, padding=1),
            nn.ReLU(),
        )
        cells = [g * g for g in granularities]
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
        }

    def bases(self, box_features: List[Tensor]) -> Tensor:
        """(N, F, H_l, W_l) regression-tower maps, finest first -> (N, K, 4*H_0, 4*W_0) bases."""
        bases = self.basis_branch(upsample_concat(box_features))
        return F.interpolate(bases, scale_factor=self.basis_upsample, mode="bilinear", align_corners=False)

    def coefficients(self, aligned_features: Tensor, batch_idx: Tensor, ys: Tensor, xs: Tensor) -> Tensor:
        """Coefficients of every granularity at P locations of one level: (P, K * sum g^2)."""
        return gather_conv3x3(aligned_features, self.coef_weight, self.coef_bias, batch_idx, ys, xs)

    def select_granularity(self, areas: Tensor, image_idx: Tensor) -> Tensor:
        """g per instance from its box area in basis pixels (paper); or, in the release's
        per-image mode, from the mean area of the instances of its image. (N,) -> (N,) int64."""
        if self.granularity_per_image and len(areas):
            totals = torch.zeros(int(image_idx.max()) + 1, device=areas.device).index_add_(0, image_idx, areas)
            counts = torch.bincount(image_idx, minlength=len(totals)).clamp(min=1)
            areas = (totals / counts)[image_idx]
        return self.granularities[torch.bucketize(areas, self.granularity_areas)]

    def box_granularity(self, boxes: Tensor, image_idx: Tensor) -> Tensor:
        """(N,) g of N boxes (N, 4) in basis-map pixels, see :meth:`select_granularity`."""
        areas = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
        return self.select_granularity(areas, image_idx)

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
            (BoxPixels, logits (P,)): the logit of pixel p is <bases at p, coefficients of p's cell>.
        """
        if granularity is None:
            granularity = self.box_granularity(boxes, image_idx)
        pixels = box_pixels(boxes, granularity, bases.shape[-2:])
        group = torch.bucketize(granularity, self.granularities)  # index of g in the list
        # Coefficients as rows of K: instance n's cell c of granularity group j is row
        # n * rows + offset_j / K + c. Gathering whole rows (index_select) instead of (P, K)
        # element indices keeps large instances cheap.
        rows = coefficients.shape[1] // self.num_bases
        coefficient_rows = coefficients.reshape(-1, self.num_bases)
        row = pixels.instance * rows + (self.coef_offsets[group] // self.num_bases)[pixels.instance] + pixels.cells
        pixel_coefficients = coefficient_rows.index_select(0, row)  # (P, K)
        batch, _, height, width = bases.shape
        basis_rows = bases.permute(0, 2, 3, 1).reshape(batch * height * width, self.num_bases)
        flat_pixel = (image_idx[pixels.instance] * height + pixels.ys) * width + pixels.xs
        pixel_bases = basis_rows.index_select(0, flat_pixel)  # (P, K)
        # A batched dot product: ~4x faster on CPU than multiplying then summing (P, K) tensors.
        return pixels, torch.einsum("pk,pk->p", pixel_coefficients, pixel_bases)
