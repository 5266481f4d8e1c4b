"""Attention modules of 3Res-att: 3D spatial attention and residual multi-head self-attention.

The seed paper (abstract only) names a "3D Spatial Attention mechanism to dynamically focus on emotionally
significant areas" and "residual connections with multi head attention". How each is computed is our reading,
documented in docs/MODEL.md: spatial attention is CBAM's spatial branch (Woo et al., ECCV 2018) lifted to 3D;
self-attention is a pre-norm transformer block over the spatio-temporal tokens of the last stage.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SpatialAttention3d(nn.Module):
    """A learned (T, H, W) map in [0, 1] that reweights every channel of a feature map::

        x -> [mean_c(x), max_c(x)] -> Conv3d(2 -> 1, kernel) -> sigmoid -> m
        out = x * m            (residual=False, CBAM)
        out = x * (1 + m)      (residual=True, residual attention of Wang et al. 2017)

    The map is the output of ``self.gate``; a forward hook there reads it (see ``explain.attention_map``).
    """

    def __init__(self, kernel: tuple[int, int, int] = (3, 7, 7), *, residual: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv3d(2, 1, kernel, padding=tuple(k // 2 for k in kernel), bias=True)
        self.gate = nn.Sigmoid()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        m = self.gate(self.conv(pooled))
        return x * (1 + m) if self.residual else x * m


def sincos_position_3d(t: int, h: int, w: int, dim: int, *, device=None, dtype=None) -> torch.Tensor:
    """Fixed 3D sine-cosine position codes, shape (t*h*w, dim): a third of the channels per axis, rest zero."""
    per_axis = (dim // 6) * 2  # an even number of channels for each of t, h, w
    codes = []
    for size, axis in ((t, 0), (h, 1), (w, 2)):
        pos = torch.arange(size, device=device, dtype=torch.float32)
        freq = torch.exp(
            -math.log(10000.0) * torch.arange(per_axis // 2, device=device, dtype=torch.float32) / max(per_axis // 2, 1)
        )
        angles = pos[:, None] * freq[None, :]
        code = torch.cat([angles.sin(), angles.cos()], dim=1)  # (size, per_axis)
        shape = [1, 1, 1, per_axis]
        shape[axis] = size
        codes.append(code.view(shape).expand(t, h, w, per_axis))
    out = torch.cat(codes, dim=-1).reshape(t * h * w, 3 * per_axis)
    out = F.pad(out, (0, dim - 3 * per_axis))
    return out.to(dtype) if dtype is not None else out


class ResidualMHSA(nn.Module):
    """Multi-head self-attention over the (T*H*W) tokens of a feature map, with a residual path::

        z = tokens(x) + pos
        a = Dropout(Proj(MHSA(LayerNorm(z))))
        y = z + a   (residual=True)   or   y = a   (residual=False)
        y = y + MLP(LayerNorm(y))     (when mlp_ratio > 0)

    ``pos``: "sincos" (fixed 3D sine-cosine, any clip size), "conv" (a depthwise 3x3x3 conv of the map, the
    conditional position encoding of Chu et al. 2021) or "none". Input and output are (B, C, T, H, W).
    """

    def __init__(
        self,
        dim: int,
        heads: int = 8,
        *,
        dropout: float = 0.0,
        pos: str = "sincos",
        mlp_ratio: float = 0.0,
        residual: bool = True,
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by heads={heads}")
        if pos not in ("sincos", "conv", "none"):
            raise ValueError(f"pos must be 'sincos', 'conv' or 'none', got {pos!r}")
        self.heads = heads
        self.pos = pos
        self.residual = residual
        self.dropout = dropout
        self.pos_conv = nn.Conv3d(dim, dim, 3, padding=1, groups=dim) if pos == "conv" else None
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)
        hidden = int(dim * mlp_ratio)
        self.mlp = None
        if hidden > 0:
            self.norm2 = nn.LayerNorm(dim)
            self.mlp = nn.Sequential(
                nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        if self.pos_conv is not None:
            x = x + self.pos_conv(x)
        z = x.flatten(2).transpose(1, 2)  # (B, N, C)
        if self.pos == "sincos":
            z = z + sincos_position_3d(t, h, w, c, device=z.device, dtype=z.dtype)
        q, k, v = self.qkv(self.norm1(z)).view(b, -1, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        a = self.proj_drop(self.proj(a.transpose(1, 2).reshape(b, -1, c)))
        y = z + a if self.residual else a
        if self.mlp is not None:
            y = y + self.mlp(self.norm2(y))
        return y.transpose(1, 2).reshape(b, c, t, h, w)
