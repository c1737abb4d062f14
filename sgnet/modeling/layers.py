"""Building blocks shared by SG-Net's heads."""
import math
from typing import List

import torch
from detectron2.layers import Conv2d, get_norm
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.ops import deform_conv2d


def build_conv_tower(channels: int, num_convs: int, norm: str) -> nn.Sequential:
    """``num_convs`` x (3x3 conv, norm, ReLU), channels preserved; FCOS initialisation."""
    layers = []
    for _ in range(num_convs):
        conv = Conv2d(channels, channels, kernel_size=3, padding=1, bias=not norm)
        nn.init.normal_(conv.weight, std=0.01)
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)
        layers += [conv] + ([get_norm(norm, channels)] if norm else []) + [nn.ReLU()]
    return nn.Sequential(*layers)


class Scale(nn.Module):
    """A learnable scalar multiplier (one per FPN level for box regression)."""

    def __init__(self, init_value: float = 1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(init_value)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class FeatureAlign(nn.Module):
    """Deformable 3x3 re-sampling of features, offsets predicted from box regression.

    The classification features at a location are re-sampled where the location's predicted box
    is, so that classification (and the mask coefficients computed from the same features) see the
    object rather than a fixed 3x3 window. Offsets come from a 1x1 conv over the *detached*
    (l, t, r, b) predictions, so alignment does not push gradients into box regression.
    """

    def __init__(self, channels: int, deform_groups: int, norm: str):
        super().__init__()
        self.deform_groups = deform_groups
        self.offset = nn.Conv2d(4, deform_groups * 2 * 9, kernel_size=1, bias=False)
        self.weight = nn.Parameter(torch.empty(channels, channels, 3, 3))
        self.bias = None if norm else nn.Parameter(torch.zeros(channels))
        self.norm = get_norm(norm, channels) if norm else nn.Identity()
        nn.init.normal_(self.offset.weight, std=0.01)
        nn.init.normal_(self.weight, std=0.01)

    def forward(self, features: Tensor, box_deltas: Tensor) -> Tensor:
        """
        Args:
            features: (N, C, H, W) classification-tower output.
            box_deltas: (N, 4, H, W) box regression output of the same level.
        Returns:
            (N, C, H, W) aligned features.
        """
        offsets = self.offset(box_deltas.detach())
        # torchvision's CPU kernel is slow, its backward especially (measured: 40% of a toy
        # training step); the sampled form computes the same values with grid_sample + matmul.
        deform_conv = deform_conv2d if features.is_cuda else sampled_deform_conv3x3
        aligned = deform_conv(features, offsets, self.weight, self.bias, padding=1)
        return F.relu(self.norm(aligned))


def sampled_deform_conv3x3(features: Tensor, offsets: Tensor, weight: Tensor, bias=None, padding: int = 1) -> Tensor:
    """Deformable 3x3 convolution (stride 1, padding 1, DCNv1) as bilinear sampling of the 9 taps
    of every deformable group followed by one matrix product. Same values as
    ``torchvision.ops.deform_conv2d`` (zeros outside the map); faster on CPU, forward and backward.

    Args:
        features: (N, C, H, W); offsets: (N, 2 * G * 9, H, W), per group and tap (dy, dx);
        weight: (O, C, 3, 3); bias: (O,) or None.
    Returns:
        (N, O, H, W).
    """
    assert padding == 1 and weight.shape[-2:] == (3, 3), "only the 3x3, padding-1 case is implemented"
    batch, channels, height, width = features.shape
    groups = offsets.shape[1] // 18
    # Sampling positions in at least float32 whatever the features' dtype: under autocast,
    # half-precision positions would move the samples (bfloat16 rounds row 100 + offset to 0.5 px).
    dtype = torch.promote_types(features.dtype, torch.float32)
    taps = torch.arange(-1, 2, device=features.device, dtype=dtype)
    tap_y, tap_x = torch.meshgrid(taps, taps, indexing="ij")  # (3, 3), row-major like the kernel
    rows = torch.arange(height, device=features.device, dtype=dtype)
    cols = torch.arange(width, device=features.device, dtype=dtype)
    offsets = offsets.to(dtype).view(batch, groups, 9, 2, height, width)
    sample_y = rows[:, None] + tap_y.reshape(9, 1, 1) + offsets[:, :, :, 0]  # (N, G, 9, H, W)
    sample_x = cols[None, :] + tap_x.reshape(9, 1, 1) + offsets[:, :, :, 1]
    # Pixel coordinates -> grid_sample's [-1, 1] (align_corners=False: pixel i at (2i+1)/size - 1).
    grid = torch.stack([(2 * sample_x + 1) / width - 1, (2 * sample_y + 1) / height - 1], dim=-1)
    grid = grid.view(batch * groups, 9 * height, width, 2)
    sampled = F.grid_sample(
        features.reshape(batch * groups, channels // groups, height, width).to(dtype),
        grid,
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )  # (N * G, C / G, 9 * H, W)
    columns = sampled.view(batch, channels * 9, height * width)  # channel-major, then tap
    output = weight.reshape(weight.shape[0], -1) @ columns
    if bias is not None:
        output = output + bias[:, None]
    return output.view(batch, -1, height, width)


def gather_conv3x3(
    features: List[Tensor], weight: Tensor, bias, batch_idx: Tensor, level: Tensor, ys: Tensor, xs: Tensor
) -> Tensor:
    """A 3x3, padding-1 convolution shared by several maps, evaluated only at given locations.

    Equal to ``F.conv2d(features[l], weight, bias, padding=1)[b, :, y, x]`` at each location
    (b, l, y, x) (the conv is linear, so its value at a location only needs that location's 3x3
    neighbourhood) at a fraction of the cost when few locations are needed (training positives,
    kept detections). Every location's neighbourhood is read from each of the L maps (clamped
    inside it) and the right one chosen: L gathers of (P, 9C), small next to the (P, 9C) x (9C, O)
    product, and traceable (no boolean indexing).

    Args:
        features: L maps (N, C, H_l, W_l).
        weight: (O, C, 3, 3); bias: (O,) or None.
        batch_idx, level, ys, xs: (P,) int64 location indices.
    Returns:
        (P, O).
    """
    taps = torch.arange(3, device=weight.device)
    neighbourhoods = None
    for index, level_features in enumerate(features):
        padded = F.pad(level_features, (1, 1, 1, 1)).permute(0, 2, 3, 1)  # (N, H+2, W+2, C)
        rows = ys.clamp(max=level_features.shape[-2] - 1)[:, None, None] + taps[None, :, None]
        cols = xs.clamp(max=level_features.shape[-1] - 1)[:, None, None] + taps
        at_level = padded[batch_idx[:, None, None], rows, cols].flatten(1)  # (P, 3*3*C)
        neighbourhoods = at_level if index == 0 else torch.where((level == index)[:, None], at_level, neighbourhoods)
    flat_weight = weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)  # (O, 3*3*C)
    return F.linear(neighbourhoods, flat_weight, bias)


def upsample_concat(features: List[Tensor]) -> Tensor:
    """Bilinearly upsample every map to the first (finest) one's size and concatenate channels.

    Args:
        features: L maps (N, C_l, H_l, W_l), finest first.
    Returns:
        (N, sum C_l, H_0, W_0).
    """
    size = features[0].shape[-2:]
    resized = [features[0]] + [
        F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in features[1:]
    ]
    return torch.cat(resized, dim=1)


def prior_bias(prior_prob: float) -> float:
    """Logit bias making sigmoid output ``prior_prob`` at initialisation (focal-loss prior)."""
    return -math.log((1 - prior_prob) / prior_prob)
