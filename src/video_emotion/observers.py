"""The training loop's observers: what watches a run and reports it, behind one small interface.

:func:`video_emotion.train.train` sets a run up, runs its epochs and finishes; all it shows or keeps on the way goes
through the hooks of its observers (Lightning's callbacks, in small). Only rank 0 has observers. The hooks, in order:

    start(run)             the run is set up, fresh or continued from last.pt; run.epoch epochs are done
    epoch_start(run)       before the first batch of epoch run.epoch + 1
    step(run, loss)        after each optimizer step: that batch's training loss; run.step is the global step
    epoch_end(run, row)    the epoch is trained, validated and the best epoch chosen: ``row`` is its history row,
                           the one source of every per-epoch figure (history.parquet and the report's training
                           curves, the log line, TensorBoard)
    finish(run)            training is done: every epoch, an early stop, or nothing was left to do
    close()                always, last, also when the run stops on an error

``run`` is the loop's state (:class:`video_emotion.train.Run`): observers read it and never change it. Another
logger (MLflow, W&B) is one more class with the hooks it needs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm import tqdm

if TYPE_CHECKING:
    from video_emotion.train import Run

log = logging.getLogger(__name__)

LOSS_EVERY = 5  # every this many steps, that step's training loss goes to TensorBoard (train/loss_step)
# The HParams view's metrics (each run's latest value): the best epoch's validation figures, the test fold's.
HPARAM_METRICS = ("val/best_uar", "val/best_war", "test/uar", "test/war")


class Observer:
    """Watches a training run; every hook does nothing unless a subclass says otherwise."""

    def start(self, run: Run) -> None:
        pass

    def epoch_start(self, run: Run) -> None:
        pass

    def step(self, run: Run, loss: float) -> None:
        pass

    def epoch_end(self, run: Run, row: dict) -> None:
        pass

    def finish(self, run: Run) -> None:
        pass

    def close(self) -> None:
        pass


def notify(observers: Iterable[Observer], hook: str, *args) -> None:
    """Call ``hook`` of each observer, in order."""
    for observer in observers:
        getattr(observer, hook)(*args)


class Console(Observer):
    """The job's log: a tqdm bar per epoch (stderr) with the batch loss, one line per epoch, one when done."""

    def __init__(self) -> None:
        self.bar = None

    def epoch_start(self, run: Run) -> None:
        self.bar = tqdm(total=run.steps_per_epoch, file=sys.stderr, mininterval=2.0, leave=False,
                        desc=f"{run.model_name} fold {run.fold} epoch {run.epoch + 1}/{run.p['epochs']}")

    def step(self, run: Run, loss: float) -> None:
        self.bar.update()
        self.bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    def epoch_end(self, run: Run, row: dict) -> None:
        self.close()
        log.info("epoch %d/%d train loss %.4f acc %.3f | val loss %.4f acc %.3f UAR %.3f | lr %.2e %.1fs "
                 "%.1f clips/s%s", row["epoch"], run.p["epochs"], row["train_loss"], row["train_acc"],
                 row["val_loss"], row["val_acc"], row["val_uar"], row["lr"], row["seconds"], row["clips_per_s"],
                 " *best" if run.best["epoch"] == row["epoch"] else "")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def fingerprint_id(fingerprint: dict) -> str:
    """A short name for a training fingerprint (the first 12 hex digits of its JSON's sha256)."""
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()[:12]


def run_hparams(run: Run) -> dict:
    """The settings that tell runs apart in TensorBoard's HParams view."""
    init = run.meta["init"]
    return {"model": run.model_name, "arch": run.arch, "init": f"{init['kind']}: {Path(init['path']).name}" if init
            else "random", "seed": int(run.p["seed"]), "fold": run.fold,
            "fingerprint": fingerprint_id(run.meta["fingerprint"]), "lr": float(run.p["lr"]),
            "batch_size": int(run.p["batch_size"]), "epochs": int(run.p["epochs"])}


def summary_writer(log_dir: Path, purge_step: int | None = None, filename_suffix: str = ""):
    """TensorBoard's SummaryWriter on ``log_dir``; None, with one warning line, when tensorboard is not installed."""
    try:
        import tensorboard  # noqa: F401 (torch.utils.tensorboard writes through it)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("tensorboard is not installed: no curves in %s (pip install tensorboard); training goes on",
                    log_dir)
        return None
    return SummaryWriter(str(log_dir), purge_step=purge_step, flush_secs=10, filename_suffix=filename_suffix)


def set_aside(log_dir: Path) -> None:
    """A fresh training's event folder: an earlier run's files move to ``<name>.old`` (one kept, as last.old.pt)."""
    if log_dir.is_dir() and any(log_dir.iterdir()):
        old = log_dir.with_name(log_dir.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(log_dir, old)
        log.warning("training starts afresh: the earlier TensorBoard run of %s is set aside as %s", log_dir, old)


class TensorBoard(Observer):
    """One TensorBoard run in ``log_dir``: the scalars of every epoch (flushed at its end), the loss of every
    :data:`LOSS_EVERY`-th step, and the run's settings as HParams. Groups (sorted as TensorBoard shows them): lr,
    progress (epoch, seconds, clips/s, peak GPU memory), test (from evaluate), train, val (with the best epoch so far).

    Every scalar is at the global step (optimizer steps since epoch 1). A continued run starts its writer with
    ``purge_step`` one past the checkpoint's step: TensorBoard drops what the killed process wrote after it, so the
    curve goes on without a repeated or backward step. A fresh training (nothing to continue from) sets the folder's
    earlier files aside first (:func:`set_aside`): two trainings never share a curve.
    """

    def __init__(self, log_dir: str | os.PathLike) -> None:
        self.log_dir = Path(log_dir)
        self.writer = None

    def start(self, run: Run) -> None:
        if run.finished:  # nothing left to train: its curves are written
            return
        if run.epoch == 0:
            set_aside(self.log_dir)
        self.writer = summary_writer(self.log_dir, purge_step=run.step + 1 if run.epoch else None)
        if self.writer is None:
            return
        from torch.utils.tensorboard.summary import hparams

        experiment, start, self.end = hparams(run_hparams(run), dict.fromkeys(HPARAM_METRICS, 0.0))
        for summary in (experiment, start):
            self.writer.file_writer.add_summary(summary, run.step)

    def epoch_start(self, run: Run) -> None:
        if self.writer is not None and run.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(run.device)

    def step(self, run: Run, loss: float) -> None:
        if self.writer is not None and run.step % LOSS_EVERY == 0:
            self.writer.add_scalar("train/loss_step", loss, run.step)

    def epoch_end(self, run: Run, row: dict) -> None:
        if self.writer is None:
            return
        scalars = {"train/loss": row["train_loss"], "train/acc": row["train_acc"], "val/uar": row["val_uar"],
                   "val/war": row["val_acc"], "val/loss": row["val_loss"], "progress/epoch": row["epoch"],
                   "progress/epoch_seconds": row["seconds"], "progress/clips_per_s": row["clips_per_s"]}
        for i, group in enumerate(run.optimizer.param_groups):  # a pretrained group shows its multiplier
            scalars[f"lr/group{i}{'_pretrained' if group.get('pretrained') else ''}"] = group["lr"]
        if run.validation:
            best = run.history[run.best["epoch"] - 1]
            scalars.update({"val/best_epoch": best["epoch"], "val/best_uar": best["val_uar"],
                            "val/best_war": best["val_acc"]})
        if run.device.type == "cuda":
            scalars["progress/gpu_peak_memory_gib"] = torch.cuda.max_memory_allocated(run.device) / 2**30
        for tag, value in scalars.items():
            if math.isfinite(value):  # no validation: no validation figures
                self.writer.add_scalar(tag, value, run.step)
        self.writer.flush()

    def finish(self, run: Run) -> None:
        if self.writer is not None:
            self.writer.file_writer.add_summary(self.end, run.step)  # the HParams view: the run ended
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def write_test_metrics(log_dir: str | os.PathLike, uar: float, war: float) -> None:
    """The test fold's UAR and WAR (``test/uar``, ``test/war``: HParams metrics) into the TensorBoard run
    of the trained model, at its last step, in place of an earlier evaluation's. Nothing where that run has no
    folder (no event files were written) or tensorboard is not installed."""
    log_dir = Path(log_dir)
    if not log_dir.is_dir():
        return
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        return
    for old in log_dir.glob("events.out.tfevents.*.test"):
        old.unlink()
    run = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    run.Reload()
    step = run.Scalars("progress/epoch")[-1].step if "progress/epoch" in run.Tags()["scalars"] else 0
    writer = summary_writer(log_dir, filename_suffix=".test")
    with writer:
        writer.add_scalar("test/uar", uar, step)
        writer.add_scalar("test/war", war, step)
