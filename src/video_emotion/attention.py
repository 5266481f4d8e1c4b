"""Attention maps of test clips, computed once into an HDF5 file that the report draws.

For ``attention_per_class`` test videos of each class (from different folds where possible), the evaluation's own
middle clip is scored by the checkpoint of the fold that tests it, and the map of
:func:`models.explain.attention_map` is kept at the clip's middle frame, with its raw values (no stretching). The file holds::

    frames    uint8 (N, S, S, 3)   the middle frame of each clip
    maps      float32 (N, S, S)    the map at that frame (spatial attention: mean sigmoid gate in [0, 1];
                                   grad-CAM: its own units)
    video_id, label, pred (strings), fold (int)
    attrs     model, seed, kind ("spatial attention" | "grad-CAM"), modules (maps averaged), clip_len

``attention_per_class = 0`` or no checkpoint writes an empty file (N = 0), which the report shows as such.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from video_emotion.io import atomic_path

log = logging.getLogger(__name__)

# The config's report section keys this stage reads (defaults as in the schema).
ATTENTION_DEFAULTS = {"attention_per_class": 2, "attention_device": "cpu"}


def compute_attention(cache_h5: str | os.PathLike, checkpoints, out_path: str | os.PathLike,
                      params: dict | None = None, folds_table: str | os.PathLike | None = None) -> int:
    """Write the attention file of one model's ``checkpoints`` (one per fold, of one seed); return the panel count.

    ``params`` is the config's ``report`` section (``attention_per_class``, ``attention_device``); ``folds_table``
    the workflow's folds.parquet (default: the cache's own fold column).
    """
    import h5py
    import torch

    from video_emotion.cache import read_index
    from video_emotion.clips import ClipDataset, normalize_clip, sampling_of
    from video_emotion.inference import load_checkpoint
    from video_emotion.metrics import run_keys
    from video_emotion.models.explain import attention_map, map_kind

    p = {**ATTENTION_DEFAULTS, **(params or {})}
    device, per_class = str(p["attention_device"]), int(p["attention_per_class"])
    index, attrs = read_index(cache_h5, folds_table, need_folds=True)
    classes = list(attrs["classes"])
    by_fold = {}
    for path in map(Path, checkpoints):
        keys = run_keys(path)
        by_fold.setdefault(int(keys.get("fold", -1)), (path, keys))
    chosen = (index[index["fold"].isin(by_fold)].sort_values(["label", "fold", "video_id"])
              .groupby(["label", "fold"]).head(1).groupby("label").head(per_class))
    rows, info = [], {"model": "", "seed": -1, "kind": "", "modules": 0, "clip_len": 0}
    for fold, videos in chosen.groupby("fold"):
        path, keys = by_fold[int(fold)]
        model, ckpt = load_checkpoint(path, device)
        kind, modules = map_kind(model)
        info = {"model": str(ckpt.get("model_name", keys.get("model", ""))), "seed": int(keys.get("seed", 0)),
                "kind": kind, "modules": modules, "clip_len": int(ckpt["clip_len"])}
        data = ClipDataset(cache_h5, videos["video_id"].tolist(), clip_len=int(ckpt["clip_len"]),
                           sampling=sampling_of(ckpt))
        for i, video_id in enumerate(data.index["video_id"]):
            frames = data.read(i, data.clip_frames(i))
            clip = normalize_clip(frames, norm=ckpt.get("input_norm")).unsqueeze(0).to(device)
            with torch.no_grad():
                pred = int(model(clip).argmax(1))
            heat = attention_map(model, clip, normalise=False)
            middle = len(frames) // 2
            rows.append({"video_id": str(video_id), "label": classes[int(data.index.at[i, "label"])],
                         "pred": classes[pred], "fold": int(fold), "frame": frames[middle],
                         "map": heat[middle * heat.shape[0] // len(frames)]})
        log.info("fold %d: %d maps from %s (%s)", fold, len(videos), path, kind)
    rows.sort(key=lambda r: (classes.index(r["label"]), r["video_id"]))
    size = int(attrs.get("crop_size", 0))
    strings = h5py.string_dtype()
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as f:
        f["frames"] = np.stack([r["frame"] for r in rows]) if rows else np.zeros((0, size, size, 3), np.uint8)
        f["maps"] = np.stack([r["map"] for r in rows]).astype(np.float32) if rows else np.zeros((0, size, size),
                                                                                                   np.float32)
        for key in ("video_id", "label", "pred"):
            f.create_dataset(key, data=[r[key] for r in rows], dtype=strings)
        f["fold"] = np.array([r["fold"] for r in rows], dtype=np.int64)
        f.attrs.update(info)
    log.info("wrote %d attention maps of %s to %s", len(rows), info["model"] or "no model", out_path)
    return len(rows)


def read_attention(path: str | os.PathLike) -> dict:
    """The attention file as a dict: arrays, string lists and the attributes (see the module docstring)."""
    import h5py

    with h5py.File(path, "r") as f:
        out = {key: f[key][:] for key in ("frames", "maps", "fold")}
        out.update({key: [v.decode() for v in f[key][:]] for key in ("video_id", "label", "pred")})
        out.update({k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()})
    return out
