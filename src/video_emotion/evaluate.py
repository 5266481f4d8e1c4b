"""Predict the test fold with a trained checkpoint: clip scores averaged to one prediction per video.

Writes ``predictions.parquet`` (one row per test video) and ``_clips.parquet`` beside it (one row per clip); their
columns and metadata are in the data-contract table of docs/ARCHITECTURE.md. The clip table's leading underscore
keeps it out of ``pd.read_parquet("results/predictions")``, which returns every model, seed and fold.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from video_emotion.cache import read_index
from video_emotion.clips import ClipDataset, sampling_of
from video_emotion.device_data import make_loader
from video_emotion.inference import load_checkpoint, predict_clips, resolve_device, video_scores
from video_emotion.io import file_sha256, write_parquet
from video_emotion.metrics import scores
from video_emotion.observers import write_test_metrics

log = logging.getLogger(__name__)

EVALUATE_DEFAULTS = {"clips_per_video": 3, "batch_size": 16, "num_workers": 0, "device": "auto", "amp": True,
                     "data": "auto", "data_budget": 0.5}


def evaluate(
    cache_h5: str | os.PathLike,
    checkpoint: str | os.PathLike,
    fold: int,
    out_path: str | os.PathLike,
    params: dict,
    clips_path: str | os.PathLike | None = None,
    folds_table: str | os.PathLike | None = None,
    tensorboard: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Predict every video of test fold ``fold`` in ``cache_h5``; write and return the predictions table.

    ``params`` is the config's ``evaluate`` section. ``clips_path`` defaults to ``_clips.parquet`` beside
    ``out_path``. ``tensorboard``: the training run's TensorBoard folder, which gets the test UAR and WAR
    (:func:`video_emotion.observers.write_test_metrics`).
    """
    p = {**EVALUATE_DEFAULTS, **(params or {})}
    out_path = Path(out_path)
    clips_path = Path(clips_path) if clips_path else out_path.with_name("_clips.parquet")
    device = resolve_device(p["device"])
    model, ckpt = load_checkpoint(checkpoint, device)
    index, attrs = read_index(cache_h5, folds_table, need_folds=True)
    classes = list(ckpt["classes"])
    if attrs["classes"] != classes:
        raise ValueError(f"{checkpoint} predicts {classes} but {cache_h5} holds {attrs['classes']}; "
                         "retrain (the cache was rebuilt with other classes)")
    if int(ckpt.get("fold", fold)) != int(fold):
        raise ValueError(f"{checkpoint} was trained for fold {ckpt['fold']}, not fold {fold}")
    rows = index[index["fold"] == int(fold)]
    if rows.empty:
        raise ValueError(f"{cache_h5} has no video in test fold {fold}")

    dataset = ClipDataset(cache_h5, rows, int(ckpt["clip_len"]), train=False, clips_per_video=p["clips_per_video"],
                          sampling=sampling_of(ckpt))
    loader = make_loader(dataset, device, p, batch_size=p["batch_size"])
    out = predict_clips(model, loader, device, p["amp"], ckpt.get("input_norm"))
    probs, n_clips = video_scores(out["probs"], out["videos"], len(dataset.index))

    def categorical(values) -> pd.Categorical:
        return pd.Categorical(values, categories=classes)

    videos = dataset.index
    table = pd.DataFrame({
        "video_id": videos["video_id"].astype(str),
        "subject": videos["subject"].astype(str),
        "label": categorical([classes[i] for i in videos["label"]]),
        "pred": categorical([classes[i] for i in probs.argmax(1)]),
        **{f"p_{c}": probs[:, i] for i, c in enumerate(classes)},
        "n_clips": n_clips.astype(np.int64),
    })
    clips = pd.DataFrame({
        "video_id": videos["video_id"].to_numpy()[out["videos"]],
        "clip": np.arange(len(out["videos"])) % p["clips_per_video"],
        "start": dataset.draw(np.arange(len(dataset)))[0][:, 0],
        "label": categorical([classes[i] for i in out["labels"]]),
        "pred": categorical([classes[i] for i in out["probs"].argmax(1)]),
        **{f"p_{c}": out["probs"][:, i].astype(np.float32) for i, c in enumerate(classes)},
    })
    meta = {"model": ckpt["model_name"], "checkpoint": str(checkpoint), "checkpoint_sha256": file_sha256(checkpoint),
            "fold": int(fold), "epoch": int(ckpt["epoch"]), "classes": classes,
            "config": {**ckpt["config"], "evaluate": p}, "torch": torch.__version__}
    write_parquet(clips, clips_path, meta)
    write_parquet(table, out_path, meta)
    log.info("%s fold %d: %d videos, %d clips, accuracy %.3f", ckpt["model_name"], fold, len(table),
             len(clips), float((table["label"] == table["pred"]).mean()))
    if tensorboard:
        s = scores(videos["label"].to_numpy(), probs.argmax(1), len(classes))
        write_test_metrics(tensorboard, s["uar"], s["accuracy"])
    return table
