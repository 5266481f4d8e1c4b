"""P3D residual networks with optional 3D spatial attention and residual multi-head self-attention (3Res-att).

Trunk after Qiu et al., "Learning Spatio-Temporal Representation with Pseudo-3D Residual Networks" (ICCV 2017);
attention after the seed paper "Research on Video Emotion Recognition Method Based on Deep Learning" (IJCSIT 5(2),
2025), whose body is not public: our reading is written down in docs/MODEL.md. One class, ``P3DNet``, serves every
variant; the registered builders only change its defaults::

    clip (B,3,T,H,W) -> stem -> layer1 -> layer2 [-> SA] -> layer3 [-> SA] -> layer4 [-> MHSA] -> pool -> fc

    p3d        no attention                      p3d_mhsa   self-attention only
    p3d_sa     spatial attention only            res_att    both (3Res-att)
    res_att2   both, self-attention without its residual path (our reading of the paper's "3Res att2")

Each builder takes ``trunk="p3d199"`` for the same attention on the P3D authors' released P3D-199 (``p3d199``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._registry import register_model
from .attention import ResidualMHSA, SpatialAttention3d
from .blocks import BLOCKS, P3D_KINDS, P3DStem, VideoNet, init_weights
from .p3d199 import P3D199


class P3DNet(VideoNet):
    """A P3D ResNet whose blocks cycle through ``p3d_kinds`` (A, B, C, A, ...) across the whole network."""

    def __init__(
        self,
        num_classes: int,
        *,
        # trunk
        width: int = 64,
        layers: Sequence[int] = (3, 4, 6, 3),
        block: str = "bottleneck",
        p3d_kinds: str = "ABC",
        temporal_strides: Sequence[int] = (1, 2, 2, 2),
        stem_pool: bool = True,
        in_channels: int = 3,
        # 3D spatial attention
        sa_stages: Sequence[int] = (),
        sa_kernel: Sequence[int] = (3, 7, 7),
        sa_residual: bool = False,
        # multi-head self-attention on the last stage
        mhsa: bool = False,
        heads: int = 8,
        attn_dropout: float = 0.1,
        pos: str = "sincos",
        mlp_ratio: float = 0.0,
        mhsa_residual: bool = True,
        # head
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {sorted(BLOCKS)}, got {block!r}")
        if not p3d_kinds or any(k not in P3D_KINDS for k in p3d_kinds):
            raise ValueError(f"p3d_kinds must be letters from {P3D_KINDS}, got {p3d_kinds!r}")
        if len(temporal_strides) != len(layers):
            raise ValueError("temporal_strides needs one entry per stage")
        if any(not 1 <= s <= len(layers) for s in sa_stages):
            raise ValueError(f"sa_stages are 1-based stage numbers up to {len(layers)}, got {tuple(sa_stages)}")
        block_cls = BLOCKS[block]
        self.num_classes = num_classes
        self.stem = P3DStem(width, in_channels=in_channels, pool=stem_pool)

        self.in_planes = width
        self.block_index = 0
        self.stages = nn.ModuleList()
        for i, (n_blocks, t_stride) in enumerate(zip(layers, temporal_strides, strict=True)):
            stride = (t_stride, 1 if i == 0 else 2)
            stage = self._make_layer(block_cls, width * 2**i, n_blocks, stride, p3d_kinds)
            if i + 1 in sa_stages:
                stage.append(SpatialAttention3d(tuple(sa_kernel), residual=sa_residual))
            self.stages.append(stage)
        self.num_features = self.in_planes

        self.mhsa = (
            ResidualMHSA(
                self.num_features,
                heads,
                dropout=attn_dropout,
                pos=pos,
                mlp_ratio=mlp_ratio,
                residual=mhsa_residual,
            )
            if mhsa
            else nn.Identity()
        )
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.head_drop = nn.Dropout(dropout)
        self.fc = nn.Linear(self.num_features, num_classes)
        init_weights(self)

    def _make_layer(
        self, block_cls, planes: int, n_blocks: int, stride: tuple[int, int], kinds: str
    ) -> nn.Sequential:
        blocks = []
        for j in range(n_blocks):
            kind = kinds[self.block_index % len(kinds)]
            blocks.append(block_cls(self.in_planes, planes, kind, stride if j == 0 else (1, 1)))
            self.in_planes = planes * block_cls.expansion
            self.block_index += 1
        return nn.Sequential(*blocks)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, C, t, h, w) feature map, after attention."""
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.mhsa(x)


TRUNKS = ("p3d", "p3d199")


def _build(num_classes: int, defaults: dict, kwargs: dict) -> nn.Module:
    """``trunk="p3d"`` (default): a ``P3DNet``; ``trunk="p3d199"``: the released P3D-199 (``p3d199.P3D199``) with the
    variant's attention, taking its keywords but those its fixed layout does not have (``block``,
    ``temporal_strides``, ``stem_pool``)."""
    kwargs = dict(kwargs)
    trunk = kwargs.pop("trunk", "p3d")
    if trunk not in TRUNKS:
        raise ValueError(f"trunk must be one of {TRUNKS}, got {trunk!r}")
    if trunk == "p3d":
        return P3DNet(num_classes, **{**defaults, **kwargs})
    fixed = sorted(set(kwargs) & {"block", "temporal_strides", "stem_pool"})
    if fixed:
        raise ValueError(f"the p3d199 trunk is the released network: it takes no {', '.join(fixed)}")
    return P3D199(num_classes, **{**defaults, **kwargs})


@register_model
def p3d(num_classes: int, **kwargs) -> P3DNet:
    """P3D ResNet without attention."""
    return _build(num_classes, {}, kwargs)


@register_model
def p3d_sa(num_classes: int, **kwargs) -> P3DNet:
    """P3D ResNet with 3D spatial attention after stages 2 and 3."""
    return _build(num_classes, {"sa_stages": (2, 3)}, kwargs)


@register_model
def p3d_mhsa(num_classes: int, **kwargs) -> P3DNet:
    """P3D ResNet with residual multi-head self-attention on the last stage."""
    return _build(num_classes, {"mhsa": True}, kwargs)


@register_model
def res_att(num_classes: int, **kwargs) -> P3DNet:
    """3Res-att: P3D ResNet, 3D spatial attention after stages 2 and 3, residual MHSA on the last stage."""
    return _build(num_classes, {"sa_stages": (2, 3), "mhsa": True}, kwargs)


@register_model
def res_att2(num_classes: int, **kwargs) -> P3DNet:
    """3Res-att2 (our reading): as res_att, but the self-attention output replaces its input (no residual path)."""
    return _build(num_classes, {"sa_stages": (2, 3), "mhsa": True, "mhsa_residual": False}, kwargs)
