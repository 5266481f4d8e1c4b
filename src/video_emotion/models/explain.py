"""Where a model looks: its 3D spatial-attention map, or grad-CAM (Selvaraju et al., ICCV 2017) when it has none.

``attention_map(model, clip)`` returns a (T, H, W) float array aligned with the input clip. Models with
``SpatialAttention3d`` modules give the mean of their sigmoid gates (each upsampled to the clip; raw values in
[0, 1]); other models give grad-CAM on ``model.cam_layer`` (the last stage) for the predicted class (or ``target``),
in arbitrary units. ``normalise=True`` stretches either to span [0, 1]; :func:`map_kind` says which map a model gives.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .attention import SpatialAttention3d


def _normalise(m: torch.Tensor) -> torch.Tensor:
    lo, hi = m.min(), m.max()
    return (m - lo) / (hi - lo) if hi > lo else torch.zeros_like(m)


def _upsample(m: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    """(1, 1, t, h, w) -> (T, H, W)."""
    return F.interpolate(m.float(), size=size, mode="trilinear", align_corners=False)[0, 0]


def spatial_attention_maps(model: nn.Module, clip: torch.Tensor) -> list[torch.Tensor]:
    """Run ``clip`` (1, 3, T, H, W) through ``model`` and return each spatial-attention map, (1, 1, t, h, w)."""
    maps: list[torch.Tensor] = []
    hooks = [
        m.gate.register_forward_hook(lambda _m, _i, out: maps.append(out.detach()))
        for m in model.modules()
        if isinstance(m, SpatialAttention3d)
    ]
    try:
        with torch.no_grad():
            model(clip)
    finally:
        for h in hooks:
            h.remove()
    return maps


def grad_cam(model: nn.Module, clip: torch.Tensor, target: int | None = None) -> torch.Tensor:
    """Grad-CAM of ``model.cam_layer`` for class ``target`` (default: the predicted one), (1, 1, t, h, w)."""
    saved: dict[str, torch.Tensor] = {}
    hook = model.cam_layer.register_forward_hook(lambda _m, _i, out: saved.__setitem__("act", out))
    try:
        with torch.enable_grad():
            logits = model(clip)
            cls = int(logits.argmax(1)[0]) if target is None else target
            act = saved["act"]
            (grad,) = torch.autograd.grad(logits[0, cls], act)  # leaves the parameters' .grad untouched
    finally:
        hook.remove()
    act = act.detach()
    weights = grad.mean(dim=(2, 3, 4), keepdim=True)  # one weight per channel
    return F.relu((weights * act).sum(dim=1, keepdim=True))


def map_kind(model: nn.Module) -> tuple[str, int]:
    """("spatial attention", number of modules) when ``model`` has spatial attention, else ("grad-CAM", 1)."""
    n = sum(isinstance(m, SpatialAttention3d) for m in model.modules())
    return ("spatial attention", n) if n else ("grad-CAM", 1)


def attention_map(
    model: nn.Module, clip: torch.Tensor, *, target: int | None = None, normalise: bool = True
) -> np.ndarray:
    """A (T, H, W) map of where ``model`` looks in ``clip`` ((3, T, H, W) or (1, 3, T, H, W)).

    The model is run in eval mode and left in the mode it came in. ``normalise`` stretches the map to span
    [0, 1]; without it, spatial-attention maps are the gates' own values (in [0, 1]) and grad-CAM is in its own units.
    """
    if clip.dim() == 4:
        clip = clip.unsqueeze(0)
    if clip.shape[0] != 1:
        raise ValueError(f"attention_map takes one clip, got a batch of {clip.shape[0]}")
    param = next(model.parameters())
    clip = clip.detach().to(param.device, param.dtype)
    size = tuple(clip.shape[2:])
    was_training = model.training
    model.eval()
    try:
        maps = spatial_attention_maps(model, clip)
        if maps:
            out = torch.stack([_upsample(m, size) for m in maps]).mean(0)
        else:
            out = _upsample(grad_cam(model, clip, target), size).clamp(min=0)
        if normalise:
            out = _normalise(out)
    finally:
        model.train(was_training)
    return out.cpu().numpy().astype(np.float32)
