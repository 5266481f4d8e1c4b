"""C3D, the baseline of the seed paper: Tran et al., "Learning Spatiotemporal Features with 3D Convolutional
Networks", ICCV 2015.

Exactly the published network for a 16x112x112 clip::

    conv1a 64  -> pool1 1x2x2
    conv2a 128 -> pool2 2x2x2
    conv3a 256, conv3b 256 -> pool3 2x2x2
    conv4a 512, conv4b 512 -> pool4 2x2x2
    conv5a 512, conv5b 512 -> pool5 2x2x2 -> 512x1x4x4 = 8192
    fc6 4096 -> fc7 4096 -> fc8 num_classes       (3x3x3 convs, stride 1, padding 1; ReLU; dropout 0.5)

Pools use ``ceil_mode=True``, as Caffe's pooling (the original implementation) does: it only matters at pool5,
where 7x7 becomes 4x4. For clips of another size, and only when pool5's output is not 1x4x4 (the fixed flatten
of fc6 would break), the map is adaptively max-pooled to 1x4x4; a 16x112x112 clip never takes that path.
``width`` and ``fc_dim`` default to the paper's 64 and 4096; smaller values exist for fast tests only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._registry import register_model
from .blocks import init_weights

POOL5_SIZE = (1, 4, 4)


def _conv(in_planes: int, out_planes: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(in_planes, out_planes, 3, padding=1), nn.ReLU(inplace=True))


def _pool(kernel: tuple[int, int, int]) -> nn.MaxPool3d:
    return nn.MaxPool3d(kernel, kernel, ceil_mode=True)


class C3D(nn.Module):
    def __init__(
        self, num_classes: int, *, width: int = 64, fc_dim: int = 4096, dropout: float = 0.5, in_channels: int = 3
    ) -> None:
        super().__init__()
        w = width
        self.num_classes = num_classes
        self.features = nn.Sequential()
        for name, module in [
            ("conv1a", _conv(in_channels, w)),
            ("pool1", _pool((1, 2, 2))),
            ("conv2a", _conv(w, 2 * w)),
            ("pool2", _pool((2, 2, 2))),
            ("conv3a", _conv(2 * w, 4 * w)),
            ("conv3b", _conv(4 * w, 4 * w)),
            ("pool3", _pool((2, 2, 2))),
            ("conv4a", _conv(4 * w, 8 * w)),
            ("conv4b", _conv(8 * w, 8 * w)),
            ("pool4", _pool((2, 2, 2))),
            ("conv5a", _conv(8 * w, 8 * w)),
            ("conv5b", _conv(8 * w, 8 * w)),
        ]:
            self.features.add_module(name, module)
        self.pool5 = _pool((2, 2, 2))
        self.num_features = fc_dim
        self.fc6 = nn.Linear(8 * w * POOL5_SIZE[0] * POOL5_SIZE[1] * POOL5_SIZE[2], fc_dim)
        self.fc7 = nn.Linear(fc_dim, fc_dim)
        self.fc8 = nn.Linear(fc_dim, num_classes)
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout)
        init_weights(self)

    @property
    def cam_layer(self) -> nn.Module:
        """The module whose output grad-CAM weighs: conv5b."""
        return self.features.conv5b

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> conv5b feature map (B, 8*width, t, h, w)."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """conv5b map -> pool5 -> fc6 -> fc7 (``pre_logits``) -> fc8 logits."""
        x = self.pool5(x)
        if x.shape[2:] != POOL5_SIZE:
            x = F.adaptive_max_pool3d(x, POOL5_SIZE)
        x = self.drop(self.relu(self.fc6(x.flatten(1))))
        x = self.drop(self.relu(self.fc7(x)))
        return x if pre_logits else self.fc8(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model
def c3d(num_classes: int, **kwargs) -> C3D:
    """C3D (Tran et al. 2015) as published."""
    return C3D(num_classes, **kwargs)
