"""Train one model on one fold of the clip cache: checkpoint every epoch, resume, torchrun DDP.

The loop follows nanoGPT and timm: ``train_one_epoch`` and ``validate`` are separate functions, DDP is detected
from torchrun's environment (gloo on the CPU, nccl on CUDA), only rank 0 logs and writes, and the checkpoint holds
everything needed to continue: model, optimizer, scheduler, epoch, best metric, RNG states and the resolved config.

Model selection uses the inner validation subjects, drawn from the training subjects of the fold
(:func:`video_emotion.splits.fold_subjects`); the test fold is never read here. A run that is killed (even by
SIGKILL) and started again continues from ``last.pt``; on the CPU with a fixed seed its final weights and
metrics equal those of an uninterrupted run, because every source of randomness is either restored from the
checkpoint (torch, numpy, python) or derived from ``(seed, epoch)`` (the sampler order and the augmentations).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from video_emotion.cache import ClipDataset, read_index
from video_emotion.device_data import make_loader
from video_emotion.inference import autocast, model_input, predict_clips, read_checkpoint, resolve_device, video_scores
from video_emotion.io import atomic_path, write_parquet
from video_emotion.metrics import scores
from video_emotion.splits import LeakageError, check_no_leak, fold_subjects

log = logging.getLogger(__name__)

TRAIN_DEFAULTS = {
    "epochs": 12,
    "batch_size": 16,
    "lr": 1e-3,
    "optimizer": "adamw",  # adamw | sgd
    "momentum": 0.9,  # sgd only
    "weight_decay": 0.05,
    "warmup_epochs": 1,  # linear warmup, then cosine decay to min_lr, per step
    "min_lr": 0.0,
    "label_smoothing": 0.1,
    "class_weighting": "none",  # none | balanced (inverse class frequency of the training videos)
    "grad_clip": 1.0,  # max gradient norm; 0 = off
    "clips_per_video": 2,  # training clips drawn per video per epoch
    "val_clips": 2,  # evenly spaced clips per validation video
    "crop_scale": 0.8,
    "jitter": 0.1,
    "seed": 0,
    "num_workers": 0,
    "data": "auto",  # auto | device | loader: frames on the training device when they fit (device_data.py)
    "data_budget": 0.5,  # auto: the share of the device's free memory the frames may take
    "amp": True,  # bf16 autocast on CUDA; ignored on the CPU
    "device": "auto",  # auto | cpu | cuda
    "compile": False,  # torch.compile the model in place (state dict keys unchanged)
}
HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_uar", "lr", "seconds", "clips_per_s")


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Linear warmup to 1, then cosine decay to ``min_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def make_optimizer(model: nn.Module, p: dict) -> torch.optim.Optimizer:
    # No weight decay on biases and norm parameters (nanoGPT, timm).
    decay = [q for q in model.parameters() if q.requires_grad and q.ndim >= 2]
    no_decay = [q for q in model.parameters() if q.requires_grad and q.ndim < 2]
    groups = [{"params": decay, "weight_decay": p["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]
    if p["optimizer"] == "adamw":
        return torch.optim.AdamW(groups, lr=p["lr"])
    if p["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=p["lr"], momentum=p["momentum"], nesterov=True)
    raise ValueError(f"unknown train.optimizer {p['optimizer']!r}; use adamw or sgd")


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": [int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    pos, has_gauss, gauss = state["numpy_pos"]
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), int(pos), int(has_gauss), gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def validate(model: nn.Module, loader: DataLoader, device: torch.device, amp: bool, num_classes: int) -> dict:
    """Clip-level loss, video-level accuracy and UAR on the validation videos."""
    out = predict_clips(model, loader, device, amp)
    dataset: ClipDataset = loader.dataset
    video_probs, _ = video_scores(out["probs"], out["videos"], len(dataset.index))
    s = scores(dataset.index["label"].to_numpy(), video_probs.argmax(1), num_classes)
    return {"val_loss": out["loss"] / max(len(out["labels"]), 1), "val_acc": s["accuracy"], "val_uar": s["uar"]}


def train_one_epoch(model, loader, criterion, optimizer, scheduler, device, p: dict, desc: str, master: bool) -> dict:
    model.train()
    totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, clips
    bar = tqdm(loader, desc=desc, disable=not master, file=sys.stderr, mininterval=2.0, leave=False)
    for frames, y, _, jitter in bar:
        x, y = model_input(frames, jitter, device), y.to(device, non_blocking=True)
        with autocast(device, p["amp"]):
            logits = model(x)
        loss = criterion(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if p["grad_clip"]:
            nn.utils.clip_grad_norm_(model.parameters(), p["grad_clip"])
        optimizer.step()
        scheduler.step()
        totals += torch.tensor([loss.item() * len(y), (logits.argmax(1) == y).sum().item(), len(y)],
                               dtype=torch.float64)
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    if dist.is_initialized():
        dist.all_reduce(totals)
    return {"train_loss": (totals[0] / totals[2]).item(), "train_acc": (totals[1] / totals[2]).item(),
            "clips": int(totals[2])}


def save_checkpoint(ckpt: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def _plain(obj):
    """JSON-safe copy (tuples to lists, paths to strings) for YAML and the checkpoint."""
    return json.loads(json.dumps(obj, default=str))


def train(cache_h5: str | os.PathLike, model_name: str, fold: int, out_dir: str | os.PathLike, params: dict) -> dict:
    """Train ``model_name`` on fold ``fold`` of ``cache_h5``; write best.pt, last.pt, history.parquet, config.yaml.

    ``params``: ``train`` (the config's train section), ``model_kwargs`` (for ``create_model``), ``folds``
    (``val_subjects``, ``seed``), plus anything else worth keeping in the checkpoint (faces, frames, cache).
    Resumes from ``out_dir/last.pt`` when it exists. Returns a summary of the run.
    """
    from video_emotion.models import create_model, optimize_for_device

    p = {**TRAIN_DEFAULTS, **(params.get("train") or {})}
    model_kwargs = dict(params.get("model_kwargs") or {})
    folds_cfg = params.get("folds") or {}
    out_dir = Path(out_dir)
    config = _plain({**params, "train": p, "model": model_name, "fold": int(fold), "cache_h5": str(cache_h5)})

    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank, world, local_rank = 0, 1, 0
    device = resolve_device(p["device"])
    if ddp:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        device = resolve_device(p["device"], local_rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        else:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    master = rank == 0

    # Subjects: the test fold is only used to exclude its subjects; its videos are never loaded.
    index, attrs = read_index(cache_h5)
    classes, clip_len = attrs["classes"], int(attrs["clip_len"])
    split = fold_subjects(index, int(fold), folds_cfg.get("val_subjects", 1), folds_cfg.get("seed", 0))
    train_rows = index[index["subject"].isin(split["train"])]
    val_rows = index[index["subject"].isin(split["val"])]
    check_no_leak(train_rows["subject"], split["test"], val_rows["subject"])
    if (train_rows["fold"] == int(fold)).any() or (val_rows["fold"] == int(fold)).any():
        raise LeakageError(f"a training or validation video of {cache_h5} belongs to test fold {fold}")
    if train_rows.empty:
        raise ValueError(f"fold {fold} of {cache_h5} leaves no training video")

    torch.manual_seed(p["seed"])
    np.random.seed(p["seed"])
    random.seed(p["seed"])
    train_set = ClipDataset(cache_h5, train_rows, clip_len, train=True, clips_per_video=p["clips_per_video"],
                            crop_scale=p["crop_scale"], jitter=p["jitter"], seed=p["seed"])
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=p["seed"])
    # Full batches only (as timm): a last batch of one clip would break batch norm on small feature maps.
    # The frames go on the device when they fit (device_data), else a DataLoader reads them: the same batches.
    train_loader = make_loader(train_set, device, p, batch_size=p["batch_size"], sampler=sampler,
                               drop_last=len(sampler) >= p["batch_size"])
    val_loader = None
    if not val_rows.empty:
        val_set = ClipDataset(cache_h5, val_rows, clip_len, train=False, clips_per_video=p["val_clips"])
        val_loader = make_loader(val_set, device, p, batch_size=p["batch_size"])

    model = optimize_for_device(create_model(model_name, len(classes), **model_kwargs), device)
    if p["compile"]:
        model.compile()
    optimizer = make_optimizer(model, p)
    steps_per_epoch = len(train_loader)
    total_steps = p["epochs"] * steps_per_epoch
    warmup = int(p["warmup_epochs"] * steps_per_epoch)
    min_ratio = p["min_lr"] / p["lr"] if p["lr"] else 0.0
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup, total_steps, min_ratio))
    weight = None
    if p["class_weighting"] == "balanced":
        counts = np.bincount(train_rows["label"], minlength=len(classes)).astype(float)
        weight = torch.tensor(np.where(counts > 0, counts.sum() / (len(classes) * np.maximum(counts, 1)), 0.0),
                              dtype=torch.float32, device=device)
    elif p["class_weighting"] != "none":
        raise ValueError(f"unknown train.class_weighting {p['class_weighting']!r}; use none or balanced")
    criterion = nn.CrossEntropyLoss(weight=weight, label_smoothing=p["label_smoothing"])

    start_epoch, history = 0, []
    best = {"val_uar": -1.0, "val_loss": float("inf"), "epoch": 0}
    last_path = out_dir / "last.pt"
    if last_path.exists():
        ckpt = read_checkpoint(last_path)
        same = {"model_name": model_name, "model_kwargs": _plain(model_kwargs), "classes": classes, "fold": int(fold)}
        differs = [k for k, v in same.items() if _plain(ckpt.get(k)) != v]
        if differs:
            raise RuntimeError(f"{last_path} was trained with other {', '.join(differs)}; delete {out_dir} to "
                               "start this model and fold again")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start_epoch, history, best = ckpt["epoch"], list(ckpt["history"]), dict(ckpt["best_metric"])
        set_rng_state(ckpt["rng"])
        if master:
            log.info("resuming %s from epoch %d", last_path, start_epoch)
    raw_model = model
    if ddp:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None)

    if master:
        out_dir.mkdir(parents=True, exist_ok=True)
        for stale in out_dir.glob(".*.tmp*"):  # temporaries of a run killed while writing
            stale.unlink(missing_ok=True)
        with atomic_path(out_dir / "config.yaml") as tmp:
            tmp.write_text(yaml.safe_dump(config, sort_keys=False))
        log.info("%s fold %d: %d train videos (%d subjects), %d val videos (%d subjects), %d clips/epoch on %s x%d",
                 model_name, fold, len(train_rows), len(split["train"]), len(val_rows), len(split["val"]),
                 len(train_set), device, world)

    for epoch in range(start_epoch, p["epochs"]):
        sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        t0 = time.perf_counter()
        stats = train_one_epoch(model, train_loader, criterion, optimizer, scheduler, device, p,
                                f"{model_name} fold {fold} epoch {epoch + 1}/{p['epochs']}", master)
        seconds = time.perf_counter() - t0
        if master:
            nan = float("nan")
            val = validate(raw_model, val_loader, device, p["amp"], len(classes)) if val_loader else \
                {"val_loss": nan, "val_acc": nan, "val_uar": nan}
            row = {"epoch": epoch + 1, "train_loss": stats["train_loss"], "train_acc": stats["train_acc"], **val,
                   "lr": optimizer.param_groups[0]["lr"], "seconds": seconds, "clips_per_s": stats["clips"] / seconds}
            history.append(row)
            # Select on validation UAR, ties to the lower loss; without validation subjects, the last epoch.
            improved = val_loader is None or val["val_uar"] > best["val_uar"] or (
                val["val_uar"] == best["val_uar"] and val["val_loss"] < best["val_loss"])
            if improved:
                best = {"val_uar": val["val_uar"], "val_loss": val["val_loss"], "epoch": epoch + 1}
            ckpt = {
                "model": raw_model.state_dict(), "model_name": model_name, "model_kwargs": _plain(model_kwargs),
                "classes": classes, "clip_len": clip_len, "crop_size": int(attrs["crop_size"]), "fold": int(fold),
                "epoch": epoch + 1, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "best_metric": best, "rng": rng_state(), "config": config, "history": history, "subjects": split,
            }
            if improved:
                save_checkpoint(ckpt, out_dir / "best.pt")
            save_checkpoint(ckpt, last_path)
            write_parquet(pd.DataFrame(history, columns=HISTORY_COLUMNS), out_dir / "history.parquet")
            log.info("epoch %d/%d train loss %.4f acc %.3f | val loss %.4f acc %.3f UAR %.3f | lr %.2e %.1fs "
                     "%.1f clips/s%s", epoch + 1, p["epochs"], row["train_loss"], row["train_acc"], row["val_loss"],
                     row["val_acc"], row["val_uar"], row["lr"], seconds, row["clips_per_s"],
                     " *best" if improved else "")

    if master and not (out_dir / "best.pt").exists():
        raise RuntimeError(f"{out_dir} has last.pt but no best.pt; delete {out_dir} and rerun the train rule")
    if master:
        write_parquet(pd.DataFrame(history, columns=HISTORY_COLUMNS), out_dir / "history.parquet")
    if ddp:
        dist.barrier()
        dist.destroy_process_group()
    return {"out_dir": str(out_dir), "epochs": len(history), "best": best, "subjects": split,
            "final": history[-1] if history else None, "rank": rank}
