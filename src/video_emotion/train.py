"""Train one model on one fold of the clip cache: resumable state, final outputs written once, torchrun DDP.

The loop follows nanoGPT and timm: ``train_one_epoch`` and ``validate`` are separate functions, DDP is detected
from torchrun's environment (gloo on the CPU, nccl on CUDA), and only rank 0 logs and writes. :func:`train` reads as
set-up (:func:`set_up` -> :class:`Run`), epochs (:func:`train_epoch`), finish; everything it shows or writes on the
way goes through its observers (:mod:`video_emotion.observers`: the log and progress bar, TensorBoard, and
:class:`Checkpoints`, the files below), each called with the same history row at the end of an epoch.

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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

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
from video_emotion.observers import Console, Observer, TensorBoard, notify
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
    "sampling": "windows",  # windows | segments: how a clip's frames are taken (clips.ClipDataset)
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
    "tensorboard": True,  # TensorBoard event files, where train() is given their folder (observers.TensorBoard)
}
# Settings that change how fast training runs or what it reports, never a number it computes: left out of the
# fingerprint.
SPEED_ONLY = ("num_workers", "checkpoint_every", "tensorboard")
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


def train_one_epoch(model, loader, criterion, optimizer, scheduler, device, p: dict,
                    on_step: Callable[[float], None] = lambda loss: None, watch: Callable[[], None] = lambda: None,
                    norm: dict | None = None) -> dict:
    """One pass over ``loader``, ``on_step(loss)`` after each optimizer step; the mean loss and accuracy of every
    rank's clips."""
    model.train()
    totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, clips
    for frames, y, _, jitter in loader:
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
        value = loss.item()
        totals += torch.tensor([value * len(y), (logits.argmax(1) == y).sum().item(), len(y)], dtype=torch.float64)
        on_step(value)
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


@dataclass
class Run:
    """One training run on this rank: what the loop works on, and what its observers read
    (:mod:`video_emotion.observers`). ``history`` and ``best`` are kept on rank 0."""

    model_name: str
    arch: str
    fold: int
    out_dir: Path
    p: dict  # the train settings, defaults filled in
    device: torch.device
    rank: int
    world: int
    local_rank: int
    watch: Callable[[], None]
    split: dict  # the subjects: train, val, test
    validation: bool  # inner validation subjects exist; else the last epoch is kept
    num_classes: int
    train_set: ClipDataset
    sampler: DistributedSampler
    train_loader: DataLoader
    val_loader: DataLoader | None
    model: nn.Module  # the model itself, never wrapped
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    criterion: nn.Module
    finetune: object | None  # models.pretrained.FineTuning of a model with an init
    norm: dict  # the input convention of the weights
    meta: dict  # what every checkpoint holds besides weights and training state
    lock: object = None  # out_dir/.lock on rank 0, held while the run lives
    start_epoch: int = 0
    finished: bool = False  # continued from a finished last.pt: nothing left to train
    history: list[dict] = field(default_factory=list)  # one row per epoch done
    best: dict = field(default_factory=lambda: {"val_uar": -1.0, "val_loss": float("inf"), "epoch": 0})
    best_state: dict | None = None
    step: int = 0  # optimizer steps done (the global step of the curves)
    net: nn.Module | None = None  # what trains: the model, or its DDP wrapper

    @property
    def master(self) -> bool:
        return self.rank == 0

    @property
    def ddp(self) -> bool:
        return self.world > 1

    @property
    def epoch(self) -> int:
        """Epochs done."""
        return len(self.history)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_loader)

    def wrap(self) -> None:
        """Train through DDP (made again when the parameters that require gradients change)."""
        ids = [self.local_rank] if self.device.type == "cuda" else None
        self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids) if self.ddp else self.model

    def state(self, finished: bool) -> dict:
        """The checkpoint of the run as it stands (last.pt)."""
        ckpt = {**self.meta, "model": self.model.state_dict(), "best_model": self.best_state, "epoch": self.epoch,
                "best_metric": self.best, "history": self.history, "finished": finished}
        if not finished:  # what continuing needs; a finished run never continues (epochs are in the fingerprint)
            ckpt.update(optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(), rng=rng_state())
        return ckpt


class Checkpoints(Observer):
    """The run folder: last.pt every ``train.checkpoint_every`` epochs; when training is done last.pt (finished),
    then the declared outputs, each written once: best.pt and history.parquet (a kill in between loses nothing)."""

    def epoch_end(self, run: Run, row: dict) -> None:
        if run.epoch % max(1, int(run.p["checkpoint_every"])) == 0 and run.epoch < run.p["epochs"]:
            save_checkpoint(run.state(finished=False), run.out_dir / "last.pt")

    def finish(self, run: Run) -> None:
        if not run.finished:
            save_checkpoint(run.state(finished=True), run.out_dir / "last.pt")
        best_ckpt = {**run.meta, "model": run.best_state, "epoch": run.best["epoch"], "best_metric": run.best}
        save_checkpoint(best_ckpt, run.out_dir / "best.pt")
        p = run.p
        selection = "validation UAR" if run.validation else "last epoch (no validation subjects)"
        if run.epoch < p["epochs"]:
            selection += f"; stopped early after {run.epoch} of {p['epochs']} epochs (patience {p['patience']})"
        write_parquet(pd.DataFrame(run.history, columns=HISTORY_COLUMNS), run.out_dir / "history.parquet",
                      metadata={"model": run.model_name, "arch": run.arch, "fold": run.fold,
                                "validation": run.validation, "selection": selection, "best_epoch": run.best["epoch"],
                                "subjects": run.split, "init": _init_meta(run.meta["init"]),
                                "input_norm": InputNorm.of(run.norm).describe(),
                                "parameters": sum(q.numel() for q in run.model.parameters())})
        log.info("%s fold %d done: best epoch %d of %d (%s); wrote %s and %s", run.model_name, run.fold,
                 run.best["epoch"], run.epoch, selection, run.out_dir / "best.pt", run.out_dir / "history.parquet")


def train(cache_h5: str | os.PathLike, model_name: str, fold: int, out_dir: str | os.PathLike, params: dict,
          folds_table: str | os.PathLike | None = None, watch: Callable[[], None] | None = None,
          tensorboard: str | os.PathLike | None = None, observers: Sequence[Observer] = ()) -> dict:
    """Train ``model_name`` on fold ``fold`` of ``cache_h5``; write best.pt and history.parquet when done.

    ``params``: ``train`` (the config's train section), ``arch`` (the architecture of the variant ``model_name``;
    default ``model_name`` itself), ``model_kwargs`` (for ``create_model``), ``folds`` (``val_subjects``,
    ``seed``), ``init`` (optional: the pretrained weights to start from, ``models.pretrained.load_init``; the
    fine-tuning keys of ``models.pretrained.FINETUNE_DEFAULTS`` in ``train`` apply to such a model only), plus
    anything else worth keeping in the checkpoint (faces, frames, cache). Continues from ``out_dir/last.pt`` when
    its fingerprint matches (the init file's content hash is part of it). ``watch`` is called every few batches and
    stops the run by raising (default: :func:`video_emotion.parent.orphan_watch` of the Snakemake process above this one).
    ``tensorboard``: the folder of the run's TensorBoard event files (none without it, or with
    ``train.tensorboard`` false). ``observers``: more observers of the run (:mod:`video_emotion.observers`), called
    after the log and TensorBoard, before the checkpoints, on rank 0. Returns a summary of the run.
    """
    run = set_up(cache_h5, model_name, fold, out_dir, params, folds_table, watch)
    if run.master:  # the checkpoints last: what last.pt holds is in the event files (and any other log) already
        board = [TensorBoard(tensorboard)] if tensorboard and run.p["tensorboard"] else []
        observers = [Console(), *board, *observers, Checkpoints()]
    else:
        observers = []
    try:
        notify(observers, "start", run)
        for epoch in range(run.start_epoch, run.p["epochs"]):
            if should_stop(run):
                break
            row = train_epoch(run, epoch, observers)
            notify(observers, "epoch_end", run, row)  # observers: rank 0 only
            run.watch()
        notify(observers, "finish", run)
    finally:
        notify(observers, "close")
    if run.ddp:
        dist.barrier()
        dist.destroy_process_group()
    return {"out_dir": str(run.out_dir), "epochs": run.epoch, "best": run.best, "subjects": run.split,
            "final": run.history[-1] if run.history else None, "rank": run.rank, "validation": run.validation}


def should_stop(run: Run) -> bool:
    """Early stopping (:func:`stopped_early`), decided on rank 0 for every rank."""
    stop = torch.tensor([stopped_early(run.history, run.best, run.p, run.validation)], dtype=torch.int32,
                        device=run.device)
    if run.ddp:  # rank 0 keeps the history: its decision holds for every rank
        dist.broadcast(stop, 0)
    return bool(stop.item())


def train_epoch(run: Run, epoch: int, observers: list[Observer]) -> dict | None:
    """Epoch ``epoch`` (from 0): train, then on rank 0 validate and keep the best; its history row (rank 0)."""
    if run.finetune and run.finetune.set_epoch(epoch) and run.ddp:
        run.wrap()  # DDP reduces the gradients of the parameters that required them when it was made
    run.sampler.set_epoch(epoch)
    run.train_set.set_epoch(epoch)
    notify(observers, "epoch_start", run)

    def on_step(loss: float) -> None:
        run.step += 1
        notify(observers, "step", run, loss)

    t0 = time.perf_counter()
    stats = train_one_epoch(run.net, run.train_loader, run.criterion, run.optimizer, run.scheduler, run.device,
                            run.p, on_step, run.watch, run.norm)
    seconds = time.perf_counter() - t0
    if not run.master:
        return None
    nan = float("nan")
    val = validate(run.model, run.val_loader, run.device, run.p["amp"], run.num_classes, run.norm) \
        if run.val_loader else {"val_loss": nan, "val_acc": nan, "val_uar": nan}
    row = {"epoch": epoch + 1, "train_loss": stats["train_loss"], "train_acc": stats["train_acc"], **val,
           "lr": run.optimizer.param_groups[0]["lr"], "seconds": seconds, "clips_per_s": stats["clips"] / seconds}
    # Select on validation UAR, ties to the lower loss; without validation subjects, the last epoch.
    best = run.best
    if run.val_loader is None or val["val_uar"] > best["val_uar"] or (
            val["val_uar"] == best["val_uar"] and val["val_loss"] < best["val_loss"]):
        run.best = {"val_uar": val["val_uar"], "val_loss": val["val_loss"], "epoch": epoch + 1}
        run.best_state = {k: v.detach().to("cpu", copy=True) for k, v in run.model.state_dict().items()}
    run.history.append(row)
    return row


def set_up(cache_h5: str | os.PathLike, model_name: str, fold: int, out_dir: str | os.PathLike, params: dict,
           folds_table: str | os.PathLike | None, watch: Callable[[], None] | None) -> Run:
    """Everything before the first epoch: settings, DDP, subjects, data, model (and its init), optimizer, the lock
    on ``out_dir`` and the state continued from last.pt when its fingerprint matches (see :func:`train`)."""
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
                            crop_scale=p["crop_scale"], jitter=p["jitter"], seed=p["seed"], sampling=p["sampling"])
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=p["seed"])
    # Full batches only (as timm): a last batch of one clip would break batch norm on small feature maps.
    # The frames go on the device when they fit (device_data), else a DataLoader reads them: the same batches.
    train_loader = make_loader(train_set, device, p, batch_size=p["batch_size"], sampler=sampler,
                               drop_last=len(sampler) >= p["batch_size"])
    val_loader = None
    if validation:
        val_set = ClipDataset(cache_h5, val_rows, clip_len, train=False, clips_per_video=p["val_clips"],
                              sampling=p["sampling"])
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
    ckpt, lock = None, None
    if master:
        lock = lock_folder(out_dir)
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

    meta = {"model_name": model_name, "arch": arch, "model_kwargs": _plain(model_kwargs),
            "classes": classes, "clip_len": clip_len, "crop_size": int(attrs["crop_size"]), "fold": int(fold),
            "config": config, "subjects": split, "validation": validation, "dataset": str(attrs.get("dataset", "")),
            "cache_hash": attrs.get("content_hash"), "fingerprint": fingerprint, "init": init_report,
            "input_norm": norm}
    run = Run(model_name=model_name, arch=arch, fold=int(fold), out_dir=out_dir, p=p, device=device, rank=rank,
              world=world, local_rank=local_rank, watch=watch, split=split, validation=validation,
              num_classes=len(classes), train_set=train_set, sampler=sampler, train_loader=train_loader,
              val_loader=val_loader, model=model, optimizer=optimizer, scheduler=scheduler, criterion=criterion,
              finetune=finetune, norm=norm, meta=meta, lock=lock)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        if not ckpt.get("finished"):
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            set_rng_state(ckpt["rng"])
        run.start_epoch, run.history, run.best = ckpt["epoch"], list(ckpt["history"]), dict(ckpt["best_metric"])
        run.best_state, run.finished = ckpt["best_model"], bool(ckpt.get("finished"))
        run.step = run.start_epoch * steps_per_epoch
        if master:
            log.info("continuing %s from epoch %d", last_path, run.start_epoch)
    if finetune:
        finetune.set_epoch(run.start_epoch)
    run.wrap()
    if master:
        log.info("%s (%s) fold %d: %d train videos (%d subjects), %d val videos (%d subjects%s), %d clips/epoch on "
                 "%s x%d, pid %d", model_name, arch, fold, len(train_rows), len(split["train"]), len(val_rows),
                 len(split["val"]), "" if validation else ": the last epoch is kept", len(train_set), device, world,
                 os.getpid())
    return run
