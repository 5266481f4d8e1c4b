"""P3D building blocks: factorised conv builders, residual blocks, the stem, and weight initialisation.

Pseudo-3D convolutions follow Qiu et al., "Learning Spatio-Temporal Representation with Pseudo-3D Residual
Networks", ICCV 2017: a 3x3x3 kernel is replaced by a spatial 1x3x3 conv S and a temporal 3x1x1 conv T, combined
in one of three ways::

    P3D-A (serial)      P3D-B (parallel)      P3D-C (serial + shortcut)
      x -> S -> T         x -> S --+            x -> S ---------+
                          x -> T --+-> sum             +-> T ---+-> sum

The builders play the role of torchvision's ``Conv2Plus1D``: a block takes a ``kind`` and asks ``p3d_conv`` for
its convolution, so the factorisation is swappable in one place.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

P3D_KINDS = ("A", "B", "C")


def _bn_relu(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm3d(channels), nn.ReLU(inplace=True))


class TemporalConv(nn.Conv3d):
    """A (k, 1, 1) Conv3d: the same module, weights and state-dict keys, computed on the CPU as a 2D conv over
    (time, height x width). oneDNN's 3D path handles kernels with no spatial extent poorly: at paper size this runs
    the temporal convs about 3x faster (benchmarks/models.py). On CUDA, cuDNN's 3D conv runs as before."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda:
            return super().forward(x)
        st, sh, sw = self.stride
        x = x[..., ::sh, ::sw]  # a 1x1 spatial kernel with a spatial stride only samples
        b, c, t, h, w = x.shape
        y = F.conv2d(x.reshape(b, c, t, h * w), self.weight.squeeze(-1), self.bias, (st, 1), (self.padding[0], 0))
        return y.reshape(b, y.shape[1], y.shape[2], h, w)


class P3DConv(nn.Module):
    """A 3x3x3-equivalent convolution factorised into S (1x3x3) and T (3x1x1), combined as P3D-A, -B or -C.

    The output is not normalised: the enclosing block applies BatchNorm and ReLU, as it would after a plain
    3x3x3 conv. ``stride`` is (temporal, spatial); the spatial stride sits on S and the temporal one on T
    (P3D-B, where T sees the input directly, carries both).
    """

    def __init__(self, in_planes: int, out_planes: int, kind: str, stride: tuple[int, int] = (1, 1)) -> None:
        super().__init__()
        if kind not in P3D_KINDS:
            raise ValueError(f"P3D kind must be one of {P3D_KINDS}, got {kind!r}")
        st, ss = stride
        self.kind = kind
        if kind == "B":
            self.spatial = nn.Conv3d(in_planes, out_planes, (1, 3, 3), (st, ss, ss), (0, 1, 1), bias=False)
            self.temporal = TemporalConv(in_planes, out_planes, (3, 1, 1), (st, ss, ss), (1, 0, 0), bias=False)
            self.mid = nn.Identity()
        else:
            self.spatial = nn.Conv3d(in_planes, out_planes, (1, 3, 3), (1, ss, ss), (0, 1, 1), bias=False)
            self.mid = _bn_relu(out_planes)
            self.temporal = TemporalConv(out_planes, out_planes, (3, 1, 1), (st, 1, 1), (1, 0, 0), bias=False)
        self.temporal_stride = st

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "B":
            return self.spatial(x) + self.temporal(x)
        s = self.spatial(x)
        t = self.temporal(self.mid(s))
        if self.kind == "C":
            # S's shortcut takes every st-th frame, the frames T's strided conv is centred on.
            return s[:, :, :: self.temporal_stride] + t
        return t


def conv1x1(in_planes: int, out_planes: int, stride: tuple[int, int] = (1, 1)) -> nn.Conv3d:
    st, ss = stride
    return nn.Conv3d(in_planes, out_planes, 1, (st, ss, ss), bias=False)


def _shortcut(in_planes: int, out_planes: int, stride: tuple[int, int]) -> nn.Module:
    if in_planes == out_planes and stride == (1, 1):
        return nn.Identity()
    return nn.Sequential(conv1x1(in_planes, out_planes, stride), nn.BatchNorm3d(out_planes))


class BasicBlock(nn.Module):
    """Two P3D convs of the block's ``kind`` with a residual shortcut (the ResNet-18/34 unit)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, kind: str, stride: tuple[int, int] = (1, 1)) -> None:
        super().__init__()
        self.conv1 = P3DConv(in_planes, planes, kind, stride)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = P3DConv(planes, planes, kind)
        self.bn2 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(in_planes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1x1 reduce, a P3D conv, 1x1x1 expand (x4): the P3D ResNet unit."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, kind: str, stride: tuple[int, int] = (1, 1)) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = conv1x1(in_planes, planes)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = P3DConv(planes, planes, kind, stride)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = conv1x1(planes, out_planes)
        self.bn3 = nn.BatchNorm3d(out_planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(in_planes, out_planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


class P3DStem(nn.Module):
    """Spatial 1x7x7 conv (stride 2), BN, ReLU, then an optional 1x3x3 max pool (stride 2), as in P3D ResNet."""

    def __init__(self, out_planes: int, *, in_channels: int = 3, pool: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_planes, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False)
        self.bn = nn.BatchNorm3d(out_planes)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.relu(self.bn(self.conv(x))))


class VideoNet(nn.Module):
    """What every ResNet-like network here shares after its trunk: ``forward_head`` (global average pool, dropout
    ``head_drop``, linear ``fc``), ``forward`` and grad-CAM's ``cam_layer`` (the last of ``stages``). A subclass
    defines ``stages``, ``forward_features``, ``pool``, ``head_drop`` and ``fc``."""

    @property
    def cam_layer(self) -> nn.Module:
        """The module whose output grad-CAM weighs: the last stage."""
        return self.stages[-1]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Feature map -> pooled features (``pre_logits``) or logits (B, num_classes)."""
        x = self.head_drop(self.pool(x).flatten(1))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def init_weights(model: nn.Module) -> None:
    """Initialise every layer of ``model`` (the one place where initial weights are chosen).

    Convs: Kaiming normal (fan_out, ReLU), as torchvision's video ResNet; norms: weight 1, bias 0;
    linear layers: truncated normal (std 0.02), bias 0, as timm.
    """
    for m in model.modules():
        if isinstance(m, (nn.Conv3d, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm3d, nn.BatchNorm2d, nn.LayerNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
