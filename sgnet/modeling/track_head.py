"""Centre-embedding tracking head (SG-Net section 5).

An instance's identity embedding is read from a stride-8 embedding map at its box centre, so
identity follows the movement of the object's centre between frames.
"""
from typing import List

import torch
from detectron2.config import configurable
from torch import Tensor, nn
from torch.nn import functional as F

from .layers import build_conv_tower, upsample_concat


class CenterTrackHead(nn.Module):
    """Track tower (shared across P3-P5) -> upsample + concat -> 1x1 conv to D channels.

    The 1x1 conv is only ever needed at box centres, so :meth:`embeddings_at` evaluates it at
    those points (identical to the dense map there, without computing it everywhere).
    """

    @configurable
    def __init__(self, *, in_channels: int, num_levels: int, num_convs: int, norm: str, embed_dim: int, stride: int):
        super().__init__()
        self.stride = stride
        self.tower = build_conv_tower(in_channels, num_convs, norm)
        self.embed = nn.Conv2d(in_channels * num_levels, embed_dim, kernel_size=1)
        nn.init.normal_(self.embed.weight, std=0.01)
        nn.init.zeros_(self.embed.bias)

    @classmethod
    def from_config(cls, cfg, in_channels: int, stride: int):
        track = cfg.MODEL.SGNET.TRACK
        return {
            "in_channels": in_channels,
            "num_levels": len(track.IN_FEATURES),
            "num_convs": track.NUM_CONVS,
            "norm": cfg.MODEL.SGNET.HEAD_NORM,
            "embed_dim": track.EMBED_DIM,
            "stride": stride,
        }

    def forward(self, features: List[Tensor]) -> Tensor:
        """(N, F, H_l, W_l) maps, finest first -> (N, L*F, H_0, W_0) fused track features."""
        return upsample_concat([self.tower(f) for f in features])

    def embedding_map(self, fused: Tensor) -> Tensor:
        """Dense (N, D, H_0, W_0) embedding map (for visualisation and tests)."""
        return self.embed(fused)

    def embeddings_at(self, fused: Tensor, image_idx: Tensor, centres: Tensor) -> Tensor:
        """Embeddings at box centres.

        Args:
            fused: (N, L*F, H, W) from :meth:`forward`.
            image_idx: (P,) image of each point.
            centres: (P, 2) x, y in input-image pixels; cell = floor(centre / stride), clamped.
        Returns:
            (P, D) float32 (under autocast too: the embeddings leave the network here).
        """
        height, width = fused.shape[-2:]
        cells = torch.div(centres, self.stride, rounding_mode="floor").long()
        xs = cells[:, 0].clamp(0, width - 1)
        ys = cells[:, 1].clamp(0, height - 1)
        features = fused.permute(0, 2, 3, 1)[image_idx, ys, xs]  # (P, L*F)
        return F.linear(features, self.embed.weight.flatten(1), self.embed.bias).float()
