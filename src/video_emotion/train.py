"""Train one model on one fold of the clip cache: resumable state, final outputs written once, torchrun DDP.

The loop follows nanoGPT and timm: ``train_one_epoch`` and ``validate`` are separate functions, DDP is detected
from torchrun's environment (gloo on the CPU, nccl on CUDA), and only rank 0 logs and writes.

Model selection uses the inner validation subjects, drawn from the training subjects of the fold
(:func:`video_emotion.splits.fold_subjects`); the test fold is never read here. Without validation subjects
(``folds.val_subjects: 0``) the last epoch is kept. With ``train.patience`` > 0 training stops early once the
validation UAR has not improved for that many epochs (the best epoch is kept, as always).

Files in ``out_dir``:

- ``best.pt`` (weights and what evaluate/predict need, no optimizer state) and ``history.parquet``: the declared
  outputs, written once, when training is done, so that a half-trained model never looks complete;
- ``last.pt``: the state to continue from (model, best weights so far, optimizer, scheduler, RNG states, history),
  written every ``train.checkpoint_every`` epochs and at the end (then without the optimizer state, which nothing
  needs any more), and a ``fingerprint`` of everything the run depends on. A run started again continues from it
  only when the fingerprint is the same; otherwise it is set aside as ``last.old.pt`` and training starts afresh.
  On the CPU with a fixed seed a resumed run ends with the weights and metrics of an uninterrupted one, because
  every source of randomness is restored from the checkpoint (torch, numpy, python) or derived from
  ``(seed, epoch)`` (the sampler order and the augmentations);
- ``config.yaml`` (the resolved settings) and ``.lock`` (held while a process trains this folder).

A training process started by Snakemake stops by itself when that Snakemake process dies (checked every few
seconds), and a second process for the same folder waits for the first to stop, then continues its work.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable
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

from video_emotion.cache import read_index
from video_emotion.clips import ClipDataset, InputNorm
from video_emotion.device_data import make_loader
from video_emotion.inference import (
    autocast,
    model_input,
    predict_clips,
    read_checkpoint,
    resolve_device,
    video_scores,
)
from video_emotion.io import atomic_path, read_parquet, remove_stale_temporaries, write_parquet
from video_emotion.metrics import scores
from video_emotion.parent import orphan_watch, snakemake_ancestor
from video_emotion.splits import LeakageError, check_no_leak, fold_subjects

log = logging.getLogger(__name__)

TRAIN_DEFAULTS = {
    "epochs": 30,
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
    "checkpoint_every": 1,  # epochs between writes of last.pt (and always at the end)
    "patience": 0,  # stop when validation UAR has not improved for this many epochs (0 = run every epoch)
}
# Settings that change how fast training runs, never a number it computes: left out of the fingerprint.
SPEED_ONLY = ("num_workers", "checkpoint_every")
# What the checkpoint holds besides weights and training state (best.pt has only these and the weights).
DECLARED = ("best.pt", "history.parquet")
HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_uar", "lr", "seconds", "clips_per_s")


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Linear warmup to 1, then cosine decay to ``min_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def make_optimizer(model: nn.Module, p: dict, loaded: list[str] | None = None) -> torch.optim.Optimizer:
    # No weight decay on biases and norm parameters (nanoGPT, timm).
    decay = [q for q in model.parameters() if q.requires_grad and q.ndim >= 2]
    no_decay = [q for q in model.parameters() if q.requires_grad and q.ndim < 2]
    groups = [{"params": decay, "weight_decay": p["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]
    if loaded:  # a model with an init: its loaded weights learn at lr * pretrained_lr_mult (models.pretrained)
        from video_emotion.models.pretrained import param_groups

        groups = param_groups(model, loaded, p["weight_decay"], p["lr"], p.get("pretrained_lr_mult", 1.0))
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


def validate(model: nn.Module, loader: DataLoader, device: torch.device, amp: bool, num_classes: int,
             norm: dict | None = None) -> dict:
    """Clip-level loss, video-level accuracy and UAR on the validation videos (clips normalised by ``norm``)."""
    out = predict_clips(model, loader, device, amp, norm)
    dataset: ClipDataset = loader.dataset
    video_probs, _ = video_scores(out["probs"], out["videos"], len(dataset.index))
    s = scores(dataset.index["label"].to_numpy(), video_probs.argmax(1), num_classes)
    return {"val_loss": out["loss"] / max(len(out["labels"]), 1), "val_acc": s["accuracy"], "val_uar": s["uar"]}


def train_one_epoch(model, loader, criterion, optimizer, scheduler, device, p: dict, desc: str, master: bool,
                    watch: Callable[[], None] = lambda: None, norm: dict | None = None) -> dict:
    model.train()
    totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, clips
    bar = tqdm(loader, desc=desc, disable=not master, file=sys.stderr, mininterval=2.0, leave=False)
    for frames, y, _, jitter in bar:
        watch()
        x, y = model_input(frames, jitter, device, norm), y.to(device, non_blocking=True)
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


def stopped_early(history: list[dict], best: dict, p: dict, validation: bool) -> bool:
    """Whether the validation UAR has not improved for ``train.patience`` epochs (never without validation)."""
    return bool(p["patience"]) and validation and len(history) - best["epoch"] >= p["patience"]


def save_checkpoint(ckpt: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def _plain(obj):
    """JSON-safe copy (tuples to lists, paths to strings) for YAML and the checkpoint."""
    return json.loads(json.dumps(obj, default=str))


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``key old -> new`` for every leaf that differs between two fingerprints."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k} {json.dumps(a)[:60]} -> {json.dumps(b)[:60]}")
    return out


def lock_folder(out_dir: Path):
    """Hold ``out_dir/.lock`` while training: a second process for the folder waits until the first stops."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    f = open(out_dir / ".lock", "a+")  # noqa: SIM115 (held until the process ends)
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        log.warning("another process (pid %s) is still training %s; waiting for it to stop", f.read().strip() or "?",
                    out_dir)
        fcntl.flock(f, fcntl.LOCK_EX)
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def empty_fold_message(cache_h5: Path, index: pd.DataFrame, fold: int) -> str:
    """Why test fold ``fold`` has no video in the cache: the videos lost upstream, named with their reasons."""
    skipped_path = Path(cache_h5).with_name("skipped.parquet")
    lost = read_parquet(skipped_path) if skipped_path.exists() else pd.DataFrame(columns=["video_id", "subject"])
    if "fold" in lost.columns:
        lost = lost[lost["fold"] == int(fold)]
    else:  # subjects left with no video at all
        lost = lost[~lost["subject"].astype(str).isin(set(index["subject"].astype(str)))]
    folds = sorted({int(f) for f in index["fold"] if int(f) >= 0})
    if lost.empty:
        return (f"fold {fold} has no video in {cache_h5} (its test folds: {folds}); the cache was built for other "
                "folds: rebuild it with: snakemake --cores all --forcerun cache")
    examples = "; ".join(f"{r.video_id} (subject {r.subject}: {r.reason})" for r in lost.head(4).itertuples())
    return (f"fold {fold} has no video left: all {len(lost)} videos of its test subject(s) "
            f"{sorted(set(lost['subject'].astype(str)))} were left out upstream: {examples}"
            f"{'; ...' if len(lost) > 4 else ''} (listed in {skipped_path}; face QC in results/faces/*_qc.parquet). "
            "Fix those videos, or drop the subject(s) (folds.scheme: fixed) or lower folds.k")


def _init_meta(report: dict | None) -> dict | None:
    """The init report without its key lists, for the history's metadata."""
    return {k: v for k, v in report.items() if not isinstance(v, list)} if report else None


def _resume_state(last_path: Path, fingerprint: dict) -> tuple[dict | None, str]:
    """The checkpoint to continue from, or None and why it cannot be used."""
    try:
        ckpt = read_checkpoint(last_path)
    except (ValueError, OSError) as err:
        return None, f"it cannot be read ({str(err)[:200]})"
    old = _plain(ckpt.get("fingerprint") or {})
    if old != _plain(fingerprint):
        return None, "what the run depends on changed: " + "; ".join(_differences(old, _plain(fingerprint)))
    if not ckpt.get("finished") and "optimizer" not in ckpt:
        return None, "it holds no optimizer state"
    return ckpt, ""


def train(cache_h5: str | os.PathLike, model_name: str, fold: int, out_dir: str | os.PathLike, params: dict,
          folds_table: str | os.PathLike | None = None, watch: Callable[[], None] | None = None) -> dict:
    """Train ``model_name`` on fold ``fold`` of ``cache_h5``; write best.pt and history.parquet when done.

    ``params``: ``train`` (the config's train section), ``arch`` (the architecture of the variant ``model_name``;
    default ``model_name`` itself), ``model_kwargs`` (for ``create_model``), ``folds`` (``val_subjects``,
    ``seed``), ``init`` (optional: the pretrained weights to start from, ``models.pretrained.load_init``; the
    fine-tuning keys of ``models.pretrained.FINETUNE_DEFAULTS`` in ``train`` apply to such a model only), plus
    anything else worth keeping in the checkpoint (faces, frames, cache). Continues from ``out_dir/last.pt`` when
    its fingerprint matches (the init file's content hash is part of it). ``watch`` is called every few batches and
    stops the run by raising (default: :func:`video_emotion.parent.orphan_watch` of the Snakemake process above this one).
    Returns a summary of the run.
    """
    from video_emotion.models import create_model, optimize_for_device
    from video_emotion.models.pretrained import (
        FINETUNE_DEFAULTS,
        FineTuning,
        load_init,
        summary,
    )

    init = dict(params.get("init") or {})
    p = {**TRAIN_DEFAULTS, **(FINETUNE_DEFAULTS if init else {}), **(params.get("train") or {})}
    if not init:  # the fine-tuning controls act on loaded weights only
        p = {k: v for k, v in p.items() if k not in FINETUNE_DEFAULTS}
    arch = str(params.get("arch") or model_name)
    model_kwargs = dict(params.get("model_kwargs") or {})
    folds_cfg = params.get("folds") or {}
    out_dir = Path(out_dir)
    config = _plain({**params, "train": p, "model": model_name, "arch": arch, "fold": int(fold),
                     "cache_h5": str(cache_h5)})
    every = max(1, int(p["checkpoint_every"]))

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
    watch = watch or orphan_watch(snakemake_ancestor())

    # Subjects: the test fold is only used to exclude its subjects; its videos are never loaded.
    index, attrs = read_index(cache_h5, folds_table, need_folds=True)
    classes, clip_len = attrs["classes"], int(attrs["clip_len"])
    if not (index["fold"] == int(fold)).any():
        raise ValueError(empty_fold_message(Path(cache_h5), index, int(fold)))
    split = fold_subjects(index, int(fold), folds_cfg.get("val_subjects", 1), folds_cfg.get("seed", 0))
    train_rows = index[index["subject"].isin(split["train"])]
    val_rows = index[index["subject"].isin(split["val"])]
    check_no_leak(train_rows["subject"], split["test"], val_rows["subject"])
    if (train_rows["fold"] == int(fold)).any() or (val_rows["fold"] == int(fold)).any():
        raise LeakageError(f"a training or validation video of {cache_h5} belongs to test fold {fold}")
    if train_rows.empty:
        raise ValueError(f"fold {fold} of {cache_h5} leaves no training video")
    validation = not val_rows.empty
    fingerprint = _plain({
        "train": {k: v for k, v in p.items() if k not in SPEED_ONLY}, "device": device.type, "world_size": world,
        "arch": arch, "model_kwargs": model_kwargs, "fold": int(fold), "subjects": split, "classes": classes,
        "clip_len": clip_len, "cache": attrs.get("content_hash"),
    })

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
    if validation:
        val_set = ClipDataset(cache_h5, val_rows, clip_len, train=False, clips_per_video=p["val_clips"])
        val_loader = make_loader(val_set, device, p, batch_size=p["batch_size"])

    model = create_model(arch, len(classes), **model_kwargs)
    init_report = None
    if init:  # on a resume the weights then come from last.pt; the report says which weights were loaded
        init_report = load_init(model, init, classes=list(classes))
        if master:
            log.info("%s", summary(init_report))
        # other weights train afresh, the same ones continue (whatever the file's name and bytes)
        fingerprint["init"] = _plain({**{k: v for k, v in init.items() if k != "path"},
                                      "weights_sha256": init_report["weights_sha256"]})
    # the input convention of the init's weights (from scratch: the default, which leaves the fingerprint as it
    # was); another one trains afresh
    norm = (init_report or {}).get("input_norm") or InputNorm().as_dict()
    if InputNorm.of(norm) != InputNorm():
        fingerprint["input_norm"] = norm
    finetune = FineTuning(model, p) if init else None
    model = optimize_for_device(model, device)
    if p["compile"]:
        model.compile()
    optimizer = make_optimizer(model, p, init_report["loaded"] if init_report else None)
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

    last_path = out_dir / "last.pt"
    lock, ckpt = None, None
    if master:
        lock = lock_folder(out_dir)  # noqa: F841 (held until the process ends)
        for name in ("last.pt", "config.yaml", *DECLARED):  # temporaries of a run killed while writing
            remove_stale_temporaries(out_dir / name)
        if last_path.exists():
            ckpt, why = _resume_state(last_path, fingerprint)
            if ckpt is None:
                os.replace(last_path, out_dir / "last.old.pt")
                log.warning("not continuing from %s: %s. It is set aside as last.old.pt; training starts at epoch 1",
                            last_path, why)
        with atomic_path(out_dir / "config.yaml") as tmp:
            tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    if ddp:
        dist.barrier()  # every rank sees the same last.pt: the one rank 0 kept, or none
        if not master and last_path.exists():
            ckpt = read_checkpoint(last_path)

    start_epoch, history, best_state = 0, [], None
    best = {"val_uar": -1.0, "val_loss": float("inf"), "epoch": 0}
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        if not ckpt.get("finished"):
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            set_rng_state(ckpt["rng"])
        start_epoch, history, best = ckpt["epoch"], list(ckpt["history"]), dict(ckpt["best_metric"])
        best_state = ckpt["best_model"]
        if master:
            log.info("continuing %s from epoch %d", last_path, start_epoch)
    raw_model = model

    def wrap() -> nn.Module:
        ids = [local_rank] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(raw_model, device_ids=ids)

    if finetune:
        finetune.set_epoch(start_epoch)
    if ddp:
        model = wrap()

    if master:
        log.info("%s (%s) fold %d: %d train videos (%d subjects), %d val videos (%d subjects%s), %d clips/epoch on "
                 "%s x%d, pid %d", model_name, arch, fold, len(train_rows), len(split["train"]), len(val_rows),
                 len(split["val"]), "" if validation else ": the last epoch is kept", len(train_set), device, world,
                 os.getpid())

    meta = {"model_name": model_name, "arch": arch, "model_kwargs": _plain(model_kwargs),
            "classes": classes, "clip_len": clip_len, "crop_size": int(attrs["crop_size"]), "fold": int(fold),
            "config": config, "subjects": split, "validation": validation, "dataset": str(attrs.get("dataset", "")),
            "cache_hash": attrs.get("content_hash"), "fingerprint": fingerprint, "init": init_report,
            "input_norm": norm}

    def state(finished: bool) -> dict:
        ckpt = {**meta, "model": raw_model.state_dict(), "best_model": best_state, "epoch": len(history),
                "best_metric": best, "history": history, "finished": finished}
        if not finished:  # what continuing needs; a finished run never continues (epochs are in the fingerprint)
            ckpt.update(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(), rng=rng_state())
        return ckpt

    for epoch in range(start_epoch, p["epochs"]):
        stop = torch.tensor([stopped_early(history, best, p, validation)], dtype=torch.int32, device=device)
        if ddp:  # rank 0 keeps the history: its decision holds for every rank
            dist.broadcast(stop, 0)
        if stop.item():
            break
        if finetune and finetune.set_epoch(epoch) and ddp:
            model = wrap()  # DDP reduces the gradients of the parameters that required them when it was made
        sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        t0 = time.perf_counter()
        stats = train_one_epoch(model, train_loader, criterion, optimizer, scheduler, device, p,
                                f"{model_name} fold {fold} epoch {epoch + 1}/{p['epochs']}", master, watch, norm)
        seconds = time.perf_counter() - t0
        if master:
            nan = float("nan")
            val = validate(raw_model, val_loader, device, p["amp"], len(classes), norm) if val_loader else \
                {"val_loss": nan, "val_acc": nan, "val_uar": nan}
            row = {"epoch": epoch + 1, "train_loss": stats["train_loss"], "train_acc": stats["train_acc"], **val,
                   "lr": optimizer.param_groups[0]["lr"], "seconds": seconds, "clips_per_s": stats["clips"] / seconds}
            history.append(row)
            # Select on validation UAR, ties to the lower loss; without validation subjects, the last epoch.
            improved = val_loader is None or val["val_uar"] > best["val_uar"] or (
                val["val_uar"] == best["val_uar"] and val["val_loss"] < best["val_loss"])
            if improved:
                best = {"val_uar": val["val_uar"], "val_loss": val["val_loss"], "epoch": epoch + 1}
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in raw_model.state_dict().items()}
            if (epoch + 1) % every == 0 and epoch + 1 < p["epochs"]:
                save_checkpoint(state(finished=False), last_path)
            log.info("epoch %d/%d train loss %.4f acc %.3f | val loss %.4f acc %.3f UAR %.3f | lr %.2e %.1fs "
                     "%.1f clips/s%s", epoch + 1, p["epochs"], row["train_loss"], row["train_acc"], row["val_loss"],
                     row["val_acc"], row["val_uar"], row["lr"], seconds, row["clips_per_s"],
                     " *best" if improved else "")
        watch()

    if master:
        # The declared outputs last, each written once: last.pt first, so that a kill in between loses nothing.
        if ckpt is None or not ckpt.get("finished"):
            save_checkpoint(state(finished=True), last_path)
        best_ckpt = {**meta, "model": best_state, "epoch": best["epoch"], "best_metric": best}
        save_checkpoint(best_ckpt, out_dir / "best.pt")
        selection = "validation UAR" if validation else "last epoch (no validation subjects)"
        if len(history) < p["epochs"]:
            selection += f"; stopped early after {len(history)} of {p['epochs']} epochs (patience {p['patience']})"
        write_parquet(pd.DataFrame(history, columns=HISTORY_COLUMNS), out_dir / "history.parquet",
                      metadata={"model": model_name, "arch": arch, "fold": int(fold), "validation": validation,
                                "selection": selection, "best_epoch": best["epoch"], "subjects": split,
                                "init": _init_meta(init_report), "input_norm": InputNorm.of(norm).describe(),
                                "parameters": sum(q.numel() for q in raw_model.parameters())})
        log.info("%s fold %d done: best epoch %d of %d (%s); wrote %s and %s", model_name, fold, best["epoch"],
                 len(history), selection, out_dir / "best.pt", out_dir / "history.parquet")
    if ddp:
        dist.barrier()
        dist.destroy_process_group()
    return {"out_dir": str(out_dir), "epochs": len(history), "best": best, "subjects": split,
            "final": history[-1] if history else None, "rank": rank, "validation": validation}
