"""Inference: device and autocast choice, checkpoint loading, clip scoring and video aggregation.

Used by training (validation), evaluation, ``predict`` and the attention maps; it knows nothing of training.
Checkpoints load with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from video_emotion.clips import InputNorm, normalize_clip
from video_emotion.io import DamagedFileError


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def model_input(frames: torch.Tensor, jitter: torch.Tensor, device: torch.device,
                norm: InputNorm | dict | None = None) -> torch.Tensor:
    """A ClipDataset batch (uint8 frames, per-clip jitter) -> the clips normalised by the model's input convention
    ``norm`` (a checkpoint's ``input_norm``; None: the default), computed on ``device``."""
    return normalize_clip(frames.to(device, non_blocking=True), jitter[:, 0], jitter[:, 1], norm)


def predict_clips(model: nn.Module, loader: DataLoader, device: torch.device, amp: bool,
                  norm: InputNorm | dict | None = None) -> dict:
    """Softmax scores of every clip in ``loader`` (no augmentation), its clips normalised by ``norm``: probs (n, K),
    video positions, labels, loss."""
    model.eval()
    probs, videos, labels, loss = [], [], [], 0.0
    with torch.no_grad():
        for frames, y, v, jitter in loader:
            x, y = model_input(frames, jitter, device, norm), y.to(device)
            with autocast(device, amp):
                logits = model(x)
            logits = logits.float()
            loss += F.cross_entropy(logits, y, reduction="sum").item()
            probs.append(logits.softmax(-1).cpu())
            videos.append(v)
            labels.append(y.cpu())
    return {"probs": torch.cat(probs).numpy(), "videos": torch.cat(videos).numpy(),
            "labels": torch.cat(labels).numpy(), "loss": loss}


def video_scores(probs: np.ndarray, videos: np.ndarray, n_videos: int) -> tuple[np.ndarray, np.ndarray]:
    """Average clip probabilities per video: (n_videos, K) scores and the clip count of each video."""
    sums = np.zeros((n_videos, probs.shape[1]), dtype=np.float64)
    np.add.at(sums, videos, probs)
    counts = np.bincount(videos, minlength=n_videos)
    return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32), counts


def read_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict:
    """A checkpoint dict; a missing file or a damaged one raises with the file named and what to do."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint {path} not found; train it first (snakemake --cores all) "
                                "or give another one with --model")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        raise DamagedFileError(path, e) from e


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """The trained model (in eval mode, on ``device`` in its layout there: ``optimize_for_device``) and the checkpoint
    dict it came from; its clips are normalised by ``ckpt["input_norm"]`` (absent in older checkpoints: the default).

    The network is built from ``ckpt["arch"]`` (a named variant's architecture; older checkpoints: ``model_name``).
    """
    from video_emotion.models import create_model, optimize_for_device

    ckpt = read_checkpoint(path, device)
    try:
        arch = ckpt.get("arch", ckpt["model_name"])
        model = create_model(arch, len(ckpt["classes"]), **ckpt["model_kwargs"])
        model.load_state_dict(ckpt["model"])
    except (KeyError, TypeError, RuntimeError) as e:
        raise DamagedFileError(path, f"not a checkpoint of this version of video-emotion: {type(e).__name__}: "
                                     f"{str(e).splitlines()[0][:200] if str(e) else ''}") from e
    return optimize_for_device(model, device).eval(), ckpt
