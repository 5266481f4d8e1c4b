"""Placing a model on its device: channels_last_3d memory format on CUDA, cuDNN autotuning, optional torch.compile.

The same call serves CPU and GPU, so training code has one path. bf16 autocast is the training loop's business
(``torch.autocast(device.type, dtype=torch.bfloat16)``); nothing here changes the model's numbers.
"""

from __future__ import annotations

import torch
from torch import nn

from video_emotion.clips import uses_channels_last  # the models' layout is their inputs'


def optimize_for_device(
    model: nn.Module, device: str | torch.device, *, channels_last: bool | None = None, compile: bool = False
) -> nn.Module:
    """Move ``model`` to ``device`` and make it fast there; returns the model to use (compiled when asked).

    ``channels_last``: store conv weights as channels_last_3d (NDHWC), so that convs produce NDHWC activations;
    by default where :func:`uses_channels_last` says so (CUDA). On CUDA, cuDNN benchmark mode picks the fastest conv
    algorithms for the fixed clip size. ``compile``: wrap in ``torch.compile`` (needs a working compiler tool chain).
    """
    device = torch.device(device)
    model = model.to(device)
    if uses_channels_last(device) if channels_last is None else channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if compile:
        model = torch.compile(model)
    return model
