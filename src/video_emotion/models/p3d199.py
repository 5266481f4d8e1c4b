"""P3D-199: the network of the P3D authors' Kinetics release (Qiu et al., "Learning Spatio-Temporal Representation
with Pseudo-3D Residual Networks", ICCV 2017), in the layout of its widely used PyTorch conversion
(``p3d_rgb_199.checkpoint.pth.tar``, ``{"state_dict": ...}``), so that file loads as it is::

    clip (B,3,16,160,160) -> conv1_custom 1x7x7 /2, bn1, ReLU -> max pool 2x3x3 /2 (time too)
      -> layer1 (3 blocks)  -> temporal max pool /2        3D bottlenecks cycling P3D-A, -B, -C
      -> layer2 (8 blocks)  -> temporal max pool /2        (one kind per block, across layers 1-3)
      -> layer3 (36 blocks) -> temporal max pool /2
      -> layer4 (3 blocks, 2D, frame by frame) -> average pool -> dropout -> fc

A 3D bottleneck: ``conv1`` 1x1x1 (stride 1x2x2 in a stage's first block but layer1's), ``bn1``, ReLU; S = ``conv2``
1x3x3, ``bn2``, ReLU and T = ``conv3`` 3x1x1, ``bn3``, ReLU, combined as P3D-A (T(S(x))), -B (S(x) + T(x)) or -C
(S(x) + T(S(x))); ``conv4`` 1x1x1 to 4x the planes, ``bn4``; the residual (``downsample``: 1x1x1 conv and BN in a
stage's first block); ReLU. A 2D bottleneck (layer4) has ``conv_normal`` 3x3 and ``bn_normal`` in place of S and T,
2D convs and norms, stride 2 in its first block. 199 layers: 3 x (3 + 8 + 36 + 3) + conv1_custom + fc.

Where the conversion can only run 16-frame 160x160 clips, this one runs others: layer4 runs on every frame that
is left (the conversion reshapes a 1-frame map), the average pool is global (the conversion's 5x5 pool is global at
160x160) and the temporal max pools keep a last odd frame (at 16 frames none is odd). At 16x160x160 the computation
is the conversion's. ``sa_stages`` and ``mhsa`` add 3Res-att's attention (docs/MODEL.md) after layers 2 and 3 and
after layer4 (``create_model("res_att", n, trunk="p3d199")``); the file leaves them random.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._registry import register_model
from .attention import ResidualMHSA, SpatialAttention3d
from .blocks import P3D_KINDS, TemporalConv, VideoNet, init_weights

LAYERS = (3, 8, 36, 3)


class P3D199Bottleneck(nn.Module):
    """A P3D-199 bottleneck: 3D of P3D ``kind`` "A", "B" or "C", or 2D (``kind=None``, layer4)."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, kind: str | None, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.kind = kind
        if kind is None:
            conv, bn = nn.Conv2d, nn.BatchNorm2d
            self.conv1 = nn.Conv2d(in_planes, planes, 1, stride, bias=False)
            self.conv_normal = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn_normal = nn.BatchNorm2d(planes)
        else:
            conv, bn = nn.Conv3d, nn.BatchNorm3d
            self.conv1 = nn.Conv3d(in_planes, planes, 1, (1, stride, stride), bias=False)
            self.conv2 = nn.Conv3d(planes, planes, (1, 3, 3), 1, (0, 1, 1), bias=False)
            self.bn2 = nn.BatchNorm3d(planes)
            self.conv3 = TemporalConv(planes, planes, (3, 1, 1), 1, (1, 0, 0), bias=False)
            self.bn3 = nn.BatchNorm3d(planes)
        self.bn1 = bn(planes)
        self.conv4 = conv(planes, out, 1, bias=False)
        self.bn4 = bn(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_planes != out:
            s = stride if kind is None else (1, stride, stride)
            self.downsample = nn.Sequential(conv(in_planes, out, 1, s, bias=False), bn(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        if self.kind is None:
            out = self.relu(self.bn_normal(self.conv_normal(out)))
        elif self.kind == "B":
            out = self.relu(self.bn2(self.conv2(out))) + self.relu(self.bn3(self.conv3(out)))
        else:
            s = self.relu(self.bn2(self.conv2(out)))
            t = self.relu(self.bn3(self.conv3(s)))
            out = t if self.kind == "A" else s + t
        out = self.bn4(self.conv4(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class FrameByFrame(nn.Sequential):
    """2D modules run on every frame of a (B, C, T, H, W) map: (B*T, C, H, W) in, (B, C', T, H', W') out."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t = x.shape[:3]
        y = super().forward(x.transpose(1, 2).flatten(0, 1))
        return y.unflatten(0, (b, t)).transpose(1, 2)


class P3D199(VideoNet):
    """P3D-199 (layers (3, 8, 36, 3), width 64 by default: the release), optionally with 3Res-att's spatial attention
    and self-attention."""

    def __init__(
        self,
        num_classes: int,
        *,
        layers: Sequence[int] = LAYERS,
        width: int = 64,
        p3d_kinds: str = "ABC",
        in_channels: int = 3,
        sa_stages: Sequence[int] = (),
        sa_kernel: Sequence[int] = (3, 7, 7),
        sa_residual: bool = False,
        mhsa: bool = False,
        heads: int = 8,
        attn_dropout: float = 0.1,
        pos: str = "sincos",
        mlp_ratio: float = 0.0,
        mhsa_residual: bool = True,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if len(layers) != 4:
            raise ValueError(f"P3D-199 has four stages (three 3D, one 2D), got layers {tuple(layers)}")
        if not p3d_kinds or any(k not in P3D_KINDS for k in p3d_kinds):
            raise ValueError(f"p3d_kinds must be letters from {P3D_KINDS}, got {p3d_kinds!r}")
        if any(not 1 <= s <= 3 for s in sa_stages):
            raise ValueError(f"sa_stages of P3D-199 are its 3D stages 1-3, got {tuple(sa_stages)}")
        self.num_classes = num_classes
        self.conv1_custom = nn.Conv3d(in_channels, width, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d((2, 3, 3), 2, (0, 1, 1))
        self.maxpool_2 = nn.MaxPool3d((2, 1, 1), (2, 1, 1), ceil_mode=True)
        in_planes, index = width, 0
        for i, n in enumerate(layers):
            planes = width * 2**i
            blocks = []
            for j in range(n):
                kind = None if i == 3 else p3d_kinds[index % len(p3d_kinds)]
                blocks.append(P3D199Bottleneck(in_planes, planes, kind, 2 if i and not j else 1))
                in_planes, index = planes * P3D199Bottleneck.expansion, index + 1
            if i + 1 in sa_stages:
                blocks.append(SpatialAttention3d(tuple(sa_kernel), residual=sa_residual))
            self.add_module(f"layer{i + 1}", (FrameByFrame if i == 3 else nn.Sequential)(*blocks))
        self.num_features = in_planes
        self.mhsa = ResidualMHSA(in_planes, heads, dropout=attn_dropout, pos=pos, mlp_ratio=mlp_ratio,
                                 residual=mhsa_residual) if mhsa else nn.Identity()
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.head_drop = nn.Dropout(dropout)
        self.fc = nn.Linear(in_planes, num_classes)
        init_weights(self)

    @property
    def stem(self) -> nn.ModuleList:
        """conv1_custom and bn1 (the first of ``trunk_stages``)."""
        return nn.ModuleList([self.conv1_custom, self.bn1])

    @property
    def stages(self) -> list[nn.Module]:
        """layer1 ... layer4 (layer4, grad-CAM's ``cam_layer``, gives its frames back as a 3D map)."""
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, 2048, T/16, H/32, W/32) (at least one frame), after attention."""
        x = self.maxpool(self.relu(self.bn1(self.conv1_custom(x))))
        for layer in self.stages[:3]:
            x = self.maxpool_2(layer(x))
        return self.mhsa(self.layer4(x))


@register_model
def p3d199(num_classes: int, **kwargs) -> P3D199:
    """P3D-199 as released by its authors (Kinetics), converted to PyTorch; no attention."""
    return P3D199(num_classes, **kwargs)
