"""The 18-layer video ResNets of Tran et al., "A Closer Look at Spatiotemporal Convolutions for Action Recognition"
(CVPR 2018), with torchvision's state-dict key names and shapes, so that its Kinetics-400 files load as they are::

    r3d_18        3x3x3 convs everywhere (R3D)
    mc3_18        3x3x3 convs in stage 1, 1x3x3 in stages 2-4 (MC3: mixed convolutions)
    r2plus1d_18   every 3x3x3 conv factorised into 1x3x3 (to M "mid-planes"), BN, ReLU, 3x1x1 (R(2+1)D)

    clip (B,3,T,H,W) -> stem -> layer1 -> layer2 -> layer3 -> layer4 -> pool -> fc

The stem is a 3x7x7 conv, stride (1, 2, 2) (R(2+1)D: 1x7x7 to 45 channels, BN, ReLU, 3x1x1 to 64); stages 2-4 halve
time and space (MC3: space only), through their first block's convs and the 1x1x1 ``downsample`` shortcut. R(2+1)D's
mid-planes give the factorised conv the parameters of the 3x3x3 conv it replaces:
``M = (27 * c_in * c_out) // (9 * c_in + 3 * c_out)``, one M per block (from its input and output channels), used by
both of its convs. Keys: ``stem.{0,1}`` (R(2+1)D ``stem.{0,1,3,4}``), ``layer{1-4}.{0,1}.conv{1,2}.0`` (the conv;
R(2+1)D ``.0.{0,1,3}``), ``.conv{1,2}.1`` (BN), ``.downsample.{0,1}``, ``fc``. torchvision itself does not import
beside this project's torch, hence this copy of its layout; the computation is the paper's.
"""

from __future__ import annotations

import torch
from torch import nn

from ._registry import register_model
from .blocks import TemporalConv, VideoNet, init_weights

STEMS = ("r3d", "r2plus1d")
CONVS = ("3d", "2d", "2plus1d")  # per stage: 3x3x3, 1x3x3 (no temporal extent), (2+1)D


def mid_planes(in_planes: int, out_planes: int) -> int:
    """R(2+1)D's mid-planes: the (2+1)D conv has (about) the parameters of the 3x3x3 conv it replaces."""
    return (in_planes * out_planes * 27) // (in_planes * 9 + 3 * out_planes)


def _conv(kind: str, in_planes: int, out_planes: int, mid: int, stride: int) -> nn.Module:
    if kind == "3d":
        return nn.Conv3d(in_planes, out_planes, 3, stride, 1, bias=False)
    if kind == "2d":
        return nn.Conv3d(in_planes, out_planes, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False)
    return nn.Sequential(
        nn.Conv3d(in_planes, mid, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False),
        nn.BatchNorm3d(mid),
        nn.ReLU(inplace=True),
        TemporalConv(mid, out_planes, (3, 1, 1), (stride, 1, 1), (1, 0, 0), bias=False),
    )


class VideoBasicBlock(nn.Module):
    """Two convs of the stage's kind, each followed by BN (the first by ReLU too), and a residual shortcut."""

    def __init__(self, in_planes: int, planes: int, kind: str, stride: int = 1) -> None:
        super().__init__()
        mid = mid_planes(in_planes, planes)
        self.conv1 = nn.Sequential(_conv(kind, in_planes, planes, mid, stride), nn.BatchNorm3d(planes),
                                   nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(_conv(kind, planes, planes, mid, 1), nn.BatchNorm3d(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            t = 1 if kind == "2d" else stride
            self.downsample = nn.Sequential(nn.Conv3d(in_planes, planes, 1, (t, stride, stride), bias=False),
                                            nn.BatchNorm3d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


def _stem(kind: str, in_channels: int, width: int) -> nn.Sequential:
    if kind == "r3d":
        return nn.Sequential(nn.Conv3d(in_channels, width, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
                             nn.BatchNorm3d(width), nn.ReLU(inplace=True))
    mid = 45 * width // 64
    return nn.Sequential(nn.Conv3d(in_channels, mid, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False),
                         nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
                         TemporalConv(mid, width, (3, 1, 1), 1, (1, 0, 0), bias=False),
                         nn.BatchNorm3d(width), nn.ReLU(inplace=True))


class VideoResNet(VideoNet):
    """An 18-layer video ResNet: ``stem`` and ``convs`` (one kind per stage) choose R3D, MC3 or R(2+1)D."""

    def __init__(
        self,
        num_classes: int,
        stem: str = "r3d",
        convs: tuple[str, ...] = ("3d",) * 4,
        *,
        layers: tuple[int, ...] = (2, 2, 2, 2),
        width: int = 64,
        in_channels: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if stem not in STEMS or len(convs) != len(layers) or any(c not in CONVS for c in convs):
            raise ValueError(f"stem must be one of {STEMS} and convs one of {CONVS} per stage")
        self.num_classes = num_classes
        self.stem = _stem(stem, in_channels, width)
        in_planes = width
        for i, (kind, n) in enumerate(zip(convs, layers, strict=True)):
            planes = width * 2**i
            blocks = [VideoBasicBlock(in_planes if j == 0 else planes, planes, kind, 1 if i == 0 or j else 2)
                      for j in range(n)]
            in_planes = planes
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.num_features = in_planes
        self.stages = [getattr(self, f"layer{i + 1}") for i in range(len(layers))]  # not registered twice
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.head_drop = nn.Dropout(dropout)
        self.fc = nn.Linear(in_planes, num_classes)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, 512, t, h, w): the last stage's map (t = T/8, h = H/16 for R3D and R(2+1)D)."""
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x


@register_model
def r3d_18(num_classes: int, **kwargs) -> VideoResNet:
    """R3D-18 (Tran et al. 2018), torchvision's ``r3d_18`` layout."""
    return VideoResNet(num_classes, **{"stem": "r3d", "convs": ("3d",) * 4, **kwargs})


@register_model
def mc3_18(num_classes: int, **kwargs) -> VideoResNet:
    """MC3-18 (Tran et al. 2018): 3D convs in stage 1, 2D (1x3x3) in stages 2-4; torchvision's ``mc3_18`` layout."""
    return VideoResNet(num_classes, **{"stem": "r3d", "convs": ("3d", "2d", "2d", "2d"), **kwargs})


@register_model
def r2plus1d_18(num_classes: int, **kwargs) -> VideoResNet:
    """R(2+1)D-18 (Tran et al. 2018), torchvision's ``r2plus1d_18`` layout."""
    return VideoResNet(num_classes, **{"stem": "r2plus1d", "convs": ("2plus1d",) * 4, **kwargs})
