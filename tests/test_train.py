"""Training: checkpoints, resume after SIGKILL, torchrun DDP on gloo, and no subject leakage."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_cache import make_cache

import video_emotion.train as train_module
from video_emotion.cache import read_index
from video_emotion.clips import ClipDataset
from video_emotion.inference import load_checkpoint
from video_emotion.io import read_parquet_metadata
from video_emotion.splits import LeakageError
from video_emotion.train import HISTORY_COLUMNS, train

TINY = {"width": 4, "layers": [1, 1, 1, 1], "heads": 2}


def params(epochs: int = 2, **train_kw) -> dict:
    return {
        "train": {"epochs": epochs, "batch_size": 8, "lr": 3e-3, "seed": 0, "clips_per_video": 1, **train_kw},
        "model_kwargs": TINY,
        "folds": {"val_subjects": 1, "seed": 0},
        "faces": {"crop_size": 16},
    }


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return make_cache(tmp_path_factory.mktemp("cache"), clip_len=4, subjects=6, n_frames=8)


def _same_states(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_train_writes_checkpoints_history_config(cache, tmp_path):
    out = tmp_path / "fold1"
    p = {**params(epochs=2, class_weighting="balanced", optimizer="sgd"), "arch": "res_att"}
    summary = train(cache, "res_att_small", 1, out, p)
    assert {p.name for p in out.iterdir()} == {"best.pt", "last.pt", "history.parquet", "config.yaml", ".lock"}
    history = pd.read_parquet(out / "history.parquet")
    assert list(history.columns) == list(HISTORY_COLUMNS) and history["epoch"].tolist() == [1, 2]
    assert history[["train_loss", "val_loss", "val_acc", "val_uar", "lr", "clips_per_s"]].notna().all().all()
    assert read_parquet_metadata(out / "history.parquet")["validation"] is True
    _, attrs = read_index(cache)
    # last.pt: the finished state (no optimizer state: a finished run never continues).
    last = torch.load(out / "last.pt", weights_only=True)
    assert last["finished"] and last["epoch"] == 2 and "optimizer" not in last and "best_model" in last
    # best.pt: weights and what evaluate and predict need, nothing to continue training with.
    best = torch.load(out / "best.pt", weights_only=True)
    for key in ("model", "model_name", "arch", "model_kwargs", "classes", "clip_len", "crop_size", "epoch",
                "best_metric", "config", "dataset", "cache_hash", "validation"):
        assert key in best, key
    assert not {"optimizer", "scheduler", "rng", "best_model"} & set(best)
    assert best["model_name"] == "res_att_small" and best["arch"] == "res_att"
    assert best["cache_hash"] == attrs["content_hash"] and best["dataset"] == "test"
    assert best["clip_len"] == 4 and best["crop_size"] == 16
    assert best["config"]["faces"] == {"crop_size": 16} and best["config"]["train"]["optimizer"] == "sgd"
    model, ckpt = load_checkpoint(out / "best.pt")
    assert not model.training and ckpt["epoch"] == summary["best"]["epoch"]
    assert model(torch.zeros(1, 3, 4, 16, 16)).shape == (1, 6)
    # A finished run started again trains nothing more and writes the same outputs.
    before = best["model"]
    (out / "best.pt").unlink()
    (out / "history.parquet").unlink()
    again = train(cache, "res_att_small", 1, out, p)
    assert again["epochs"] == 2 and len(pd.read_parquet(out / "history.parquet")) == 2
    _same_states(before, torch.load(out / "best.pt", weights_only=True)["model"])


def test_a_changed_setting_starts_afresh_and_sets_the_old_state_aside(cache, tmp_path, caplog):
    out = tmp_path / "m"
    train(cache, "res_att", 0, out, params(epochs=2))
    old_last = (out / "last.pt").read_bytes()
    with caplog.at_level("WARNING"):
        train(cache, "res_att", 0, out, params(epochs=2, lr=1e-3))
    assert "train.lr 0.003 -> 0.001" in caplog.text and "training starts at epoch 1" in caplog.text
    assert (out / "last.old.pt").read_bytes() == old_last
    fresh = tmp_path / "fresh"
    train(cache, "res_att", 0, fresh, params(epochs=2, lr=1e-3))
    cols = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_uar", "lr"]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "history.parquet")[cols],
                                  pd.read_parquet(fresh / "history.parquet")[cols], check_exact=True)
    # Settings that change no number (workers, checkpoint interval) keep the state.
    caplog.clear()
    with caplog.at_level("INFO"):
        train(cache, "res_att", 0, out, params(epochs=2, lr=1e-3, checkpoint_every=5))
    assert "continuing" in caplog.text and "set aside" not in caplog.text


def test_another_cache_content_starts_afresh(tmp_path, caplog):
    a = make_cache(tmp_path / "a", clip_len=4, subjects=3, n_frames=8)
    b = make_cache(tmp_path / "b", clip_len=4, subjects=3, n_frames=8, seed=1)
    out = tmp_path / "m"
    train(a, "res_att", 0, out, params(epochs=1))
    with caplog.at_level("WARNING"):
        train(b, "res_att", 0, out, params(epochs=1))
    assert "cache " in caplog.text and (out / "last.old.pt").exists()


def test_no_validation_subjects_keeps_the_last_epoch(tmp_path):
    cache = make_cache(tmp_path, clip_len=4, subjects=2, n_frames=8, folds=2)  # the smallest splittable dataset
    p = params(epochs=3)
    p["folds"]["val_subjects"] = 0
    summary = train(cache, "res_att", 1, tmp_path / "m", p)
    assert summary["best"]["epoch"] == 3 and summary["validation"] is False
    assert summary["subjects"]["val"] == [] and len(summary["subjects"]["train"]) == 1
    history = pd.read_parquet(tmp_path / "m" / "history.parquet")
    assert history["val_uar"].isna().all()
    meta = read_parquet_metadata(tmp_path / "m" / "history.parquet")
    assert meta["validation"] is False and meta["selection"].startswith("last epoch")
    assert torch.load(tmp_path / "m" / "best.pt", weights_only=True)["validation"] is False
    # One validation subject out of two leaves none to train on: the message says what to do.
    with pytest.raises(ValueError, match="val_subjects: 0"):
        train(cache, "res_att", 1, tmp_path / "m1", params(epochs=1))


def test_a_fold_whose_videos_were_all_lost_names_them(tmp_path):
    lost = tuple(f"s0_{e}_0" for e in ("anger", "disgust", "fear", "happiness", "sadness", "surprise"))
    cache = make_cache(tmp_path, clip_len=4, subjects=3, n_frames=8, rejected=lost)
    with pytest.raises(ValueError, match=r"fold 0 has no video left.*s0_anger_0 \(subject 0: faces: no face found\)"
                                         r".*skipped\.parquet"):
        train(cache, "res_att", 0, tmp_path / "m", params(epochs=1))


def test_test_fold_never_read_and_no_subject_leak(cache, tmp_path, monkeypatch):
    index, _ = read_index(cache)
    read = set()
    original = ClipDataset.read

    def spy(self, video, start):
        read.add(self.index["video_id"][video])
        return original(self, video, start)

    monkeypatch.setattr(ClipDataset, "read", spy)
    summary = train(cache, "res_att", 2, tmp_path / "m", params(epochs=1))
    subjects = summary["subjects"]
    test = set(index.loc[index["fold"] == 2, "subject"])
    assert set(subjects["test"]) == test
    assert not (set(subjects["train"]) | set(subjects["val"])) & test
    assert read and not read & set(index.loc[index["fold"] == 2, "video_id"])


def test_subject_in_two_folds_is_refused(tmp_path):
    import h5py

    cache = make_cache(tmp_path, clip_len=4, subjects=3, n_frames=6)
    with h5py.File(cache, "r+") as f:
        folds = f["index/fold"][()]
        folds[0] = (folds[0] + 1) % 3  # one video of subject 0 moves to another fold
        f["index/fold"][...] = folds
    with pytest.raises(LeakageError, match="more than one test fold"):
        train(cache, "res_att", 0, tmp_path / "m", params(epochs=1))
    assert not (tmp_path / "m" / "last.pt").exists()


def test_unreadable_last_checkpoint_is_set_aside(cache, tmp_path, caplog):
    out = tmp_path / "m"
    out.mkdir()
    (out / "last.pt").write_bytes(b"garbage")
    with caplog.at_level("WARNING"):
        summary = train(cache, "res_att", 0, out, params(epochs=1))
    assert summary["epochs"] == 1 and "cannot be read" in caplog.text
    assert (out / "last.old.pt").read_bytes() == b"garbage"


RUN = """
import json, logging, sys
logging.basicConfig(level=logging.INFO)
from video_emotion.train import train
summary = train(sys.argv[1], "res_att", 0, sys.argv[2], json.loads(sys.argv[3]),
                tensorboard=sys.argv[4] if len(sys.argv) > 4 else None)
result = json.dumps({"rank": summary["rank"], "epochs": summary["epochs"]})
print("RESULT", result, flush=True)
with open(f"{sys.argv[2]}.rank{summary['rank']}.json", "w") as f:  # beside the output folder, one file per rank
    f.write(result)
"""


@pytest.mark.parametrize("every", [1, 3])
def test_resume_after_sigkill_gives_identical_results(cache, tmp_path, every):
    epochs = 8
    p = params(epochs=epochs, checkpoint_every=every)
    reference = train(cache, "res_att", 0, tmp_path / "ref", p)

    out = tmp_path / "killed"
    script = tmp_path / "run.py"
    script.write_text(RUN)
    proc = subprocess.Popen([sys.executable, str(script), str(cache), str(out), json.dumps(p)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 120
        while not (out / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    done = torch.load(out / "last.pt", weights_only=True)["epoch"]
    assert 1 <= done < epochs, f"the run was not killed mid-training (epoch {done})"
    assert done % every == 0
    # Nothing declared exists before the end: a half-trained model never looks complete.
    assert not (out / "best.pt").exists() and not (out / "history.parquet").exists()

    resumed = train(cache, "res_att", 0, out, p)
    assert resumed["epochs"] == epochs
    ref_h = pd.read_parquet(tmp_path / "ref" / "history.parquet")
    new_h = pd.read_parquet(out / "history.parquet")
    cols = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_uar", "lr"]
    pd.testing.assert_frame_equal(ref_h[cols], new_h[cols], check_exact=True)
    assert resumed["best"] == reference["best"]
    for name in ("last.pt", "best.pt"):
        _same_states(torch.load(tmp_path / "ref" / name, weights_only=True)["model"],
                     torch.load(out / name, weights_only=True)["model"])
    assert not list(out.glob(".*tmp*"))


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not installed")
def test_ddp_two_gloo_processes_train_and_write_once(cache, tmp_path):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    out = tmp_path / "ddp"
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(RUN))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [torchrun, "--standalone", "--nproc-per-node", "2", str(script), str(cache), str(out),
         json.dumps(params(epochs=2, device="cpu")), str(tmp_path / "tb")],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = sorted(json.loads(p.read_text())["rank"] for p in tmp_path.glob("ddp.rank*.json"))
    assert ranks == [0, 1], result.stdout[-3000:]
    # Only rank 0 logs and writes: one line per epoch, one history row per epoch, no stray files.
    log = result.stdout + result.stderr
    assert log.count("epoch 1/2 train loss") == 1 and log.count("epoch 2/2 train loss") == 1
    assert sorted(p.name for p in out.iterdir()) == [".lock", "best.pt", "config.yaml", "history.parquet", "last.pt"]
    assert pd.read_parquet(out / "history.parquet")["epoch"].tolist() == [1, 2]
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 1  # one TensorBoard writer
    model, ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["epoch"] == 2 and not any(k.startswith("module.") for k in ckpt["model"])


# Early stopping on the validation subjects: training stops once validation UAR has not improved for
# train.patience epochs, keeps the best epoch, and a finished early-stopped run is never continued.

def scripted_validation(monkeypatch, uars: list[float]) -> list[int]:
    """Replace validation by a scripted sequence of UARs (losses fall, so ties would count as improvements)."""
    calls = []

    def validate(*args, **kwargs):
        calls.append(1)
        i = min(len(calls), len(uars)) - 1
        return {"val_loss": 1.0 / len(calls), "val_acc": uars[i], "val_uar": uars[i]}

    monkeypatch.setattr(train_module, "validate", validate)
    return calls


@pytest.mark.usefixtures("one_thread")
def test_patience_stops_training_keeps_the_best_epoch_and_is_not_continued(tmp_path, monkeypatch):
    torch.manual_seed(0)
    cache = make_cache(tmp_path / "c", clip_len=4, subjects=3, n_frames=8)
    run = {"train": {"epochs": 10, "batch_size": 8, "clips_per_video": 1, "patience": 2},
              "folds": {"val_subjects": 1}, "model_kwargs": TINY}
    calls = scripted_validation(monkeypatch, [0.3, 0.5, 0.4, 0.4, 0.9, 0.9])
    out = tmp_path / "m"
    result = train(cache, "res_att", 0, out, run, watch=lambda: None)
    # best at epoch 2 (0.5); epochs 3 and 4 do not beat it: stop after 4, before the 0.9 of epoch 5
    assert [round(v, 1) for v in pd.read_parquet(out / "history.parquet")["val_uar"]] == [0.3, 0.5, 0.4, 0.4]
    assert result["epochs"] == 4 and len(calls) == 4
    assert torch.load(out / "best.pt", weights_only=True)["epoch"] == 2
    assert "stopped early after 4 of 10 epochs" in read_parquet_metadata(out / "history.parquet")["selection"]

    # the same run again (e.g. after a kill between last.pt and best.pt): nothing more is trained
    calls.clear()
    (out / "best.pt").unlink()
    again = train(cache, "res_att", 0, out, run, watch=lambda: None)
    assert again["epochs"] == 4 and not calls and (out / "best.pt").exists()

    # without patience every epoch runs
    calls = scripted_validation(monkeypatch, [0.3, 0.5, 0.4, 0.4, 0.9, 0.9])
    full = train(cache, "res_att", 0, tmp_path / "full", {**run, "train": {**run["train"], "patience": 0,
                                                                                "epochs": 6}}, watch=lambda: None)
    assert full["epochs"] == 6 and full["best"]["epoch"] == 6  # the tie at 0.9 with a lower loss


def test_observers_see_each_hook_in_order_and_the_history_rows(cache, tmp_path):
    from video_emotion.observers import Observer

    class Recorder(Observer):  # what another logger (MLflow, W&B) would be: one class
        def __init__(self):
            self.calls, self.rows, self.steps = [], [], []

        def start(self, run):
            self.calls.append(("start", run.epoch))

        def epoch_start(self, run):
            self.calls.append(("epoch_start", run.epoch))

        def step(self, run, loss):
            self.steps.append(run.step)

        def epoch_end(self, run, row):
            self.calls.append(("epoch_end", run.epoch))
            self.rows.append(dict(row))

        def finish(self, run):
            self.calls.append(("finish", run.epoch))

        def close(self):
            self.calls.append(("close", None))

    recorder = Recorder()
    out = tmp_path / "m"
    train(cache, "res_att", 0, out, params(epochs=2), observers=[recorder])
    assert recorder.calls == [("start", 0), ("epoch_start", 0), ("epoch_end", 1), ("epoch_start", 1),
                              ("epoch_end", 2), ("finish", 2), ("close", None)]
    per_epoch = len(recorder.steps) // 2
    assert recorder.steps == list(range(1, 2 * per_epoch + 1))  # the global step, one call per optimizer step
    pd.testing.assert_frame_equal(pd.DataFrame(recorder.rows, columns=HISTORY_COLUMNS),
                                  pd.read_parquet(out / "history.parquet"), check_exact=True)

    # An observer that fails stops the run; close is still called and nothing declared is written.
    class Failing(Recorder):
        def epoch_end(self, run, row):
            raise RuntimeError("the logger is gone")

    failing = Failing()
    with pytest.raises(RuntimeError, match="the logger is gone"):
        train(cache, "res_att", 0, tmp_path / "f", params(epochs=2), observers=[failing])
    assert failing.calls[-1] == ("close", None) and not (tmp_path / "f" / "best.pt").exists()
