"""TensorBoard: the event files a training run writes, read back with TensorBoard's own reader and its own server.

Every per-epoch scalar is the history row's value (one source), a killed and resumed run writes one curve (no step
twice, none backwards, the uninterrupted run's values), a fresh training sets an earlier curve aside, and a run
without tensorboard installed still trains.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins.hparams import plugin_data_pb2
from test_cache import make_cache
from test_train import params

from video_emotion.evaluate import evaluate
from video_emotion.metrics import scores
from video_emotion.observers import LOSS_EVERY
from video_emotion.train import train

pytestmark = pytest.mark.usefixtures("one_thread")

EPOCH_TAGS = ("train/loss", "train/acc", "val/loss", "val/uar", "val/war", "val/best_epoch", "val/best_uar",
              "val/best_war", "lr/group0", "lr/group1", "progress/epoch", "progress/epoch_seconds",
              "progress/clips_per_s")
FROM_HISTORY = {"train/loss": "train_loss", "train/acc": "train_acc", "val/loss": "val_loss", "val/uar": "val_uar",
                "val/war": "val_acc", "lr/group0": "lr", "progress/epoch": "epoch", "progress/epoch_seconds": "seconds",
                "progress/clips_per_s": "clips_per_s"}
# Tags whose values a resumed run repeats exactly (fixed seed on the CPU); times differ from run to run.
DETERMINISTIC = ("train/loss", "train/acc", "val/loss", "val/uar", "val/war", "val/best_epoch", "val/best_uar",
                 "val/best_war", "lr/group0", "lr/group1", "progress/epoch", "train/loss_step")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return make_cache(tmp_path_factory.mktemp("cache"), clip_len=4, subjects=6, n_frames=8)


def read_run(log_dir: Path) -> EventAccumulator:
    """TensorBoard's reader on one run folder, every event kept (its purge of a restarted run's orphans applied)."""
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def series(acc: EventAccumulator) -> dict[str, list[tuple[int, float]]]:
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def as_float32(values) -> list[float]:
    return [float(np.float32(v)) for v in values]  # event files hold scalars as float32


def test_every_scalar_of_every_epoch_is_the_history_row(cache, tmp_path):
    out, tb = tmp_path / "m", tmp_path / "tb" / "res_att" / "seed0" / "fold0"
    train(cache, "res_att", 0, out, params(epochs=3), tensorboard=tb)
    history = pd.read_parquet(out / "history.parquet")
    acc = read_run(tb)
    found = series(acc)
    assert set(EPOCH_TAGS) <= set(found), sorted(found)
    steps = [s for s, _ in found["progress/epoch"]]
    per_epoch = steps[0]
    assert steps == [per_epoch * e for e in (1, 2, 3)]  # the global step at each epoch's end
    for tag in EPOCH_TAGS:
        assert [s for s, _ in found[tag]] == steps, tag
    for tag, column in FROM_HISTORY.items():  # the report's curves read history.parquet: the same numbers
        assert [v for _, v in found[tag]] == as_float32(history[column]), tag
    best = torch.load(out / "best.pt", weights_only=True)["epoch"]
    assert found["val/best_epoch"][-1] == (3 * per_epoch, best)
    assert found["val/best_uar"][-1][1] == float(np.float32(history["val_uar"][best - 1]))
    assert found["val/best_war"][-1][1] == float(np.float32(history["val_acc"][best - 1]))
    assert [s for s, _ in found["train/loss_step"]] == list(range(LOSS_EVERY, 3 * per_epoch + 1, LOSS_EVERY))
    # The HParams view: the run's settings, and the metrics it compares runs by.
    start = acc.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    hparams = plugin_data_pb2.HParamsPluginData.FromString(start).session_start_info.hparams
    assert hparams["arch"].string_value == "res_att" and hparams["init"].string_value == "random"
    assert hparams["fold"].number_value == 0 and hparams["seed"].number_value == 0
    assert len(hparams["fingerprint"].string_value) == 12
    experiment = acc.SummaryMetadata("_hparams_/experiment").plugin_data.content
    metrics = plugin_data_pb2.HParamsPluginData.FromString(experiment).experiment.metric_infos
    assert {m.name.tag for m in metrics} == {"val/best_uar", "val/best_war", "test/uar", "test/war"}

    # Evaluation adds the test fold's UAR and WAR at the last step; evaluated again, it replaces them.
    predictions = tmp_path / "predictions.parquet"
    for _ in range(2):
        table = evaluate(cache, out / "best.pt", 0, predictions, {"clips_per_video": 2}, tensorboard=tb)
    test = scores(table["label"].cat.codes.to_numpy(), table["pred"].cat.codes.to_numpy(), 6)
    found = series(read_run(tb))
    assert found["test/uar"] == [(3 * per_epoch, float(np.float32(test["uar"])))]
    assert found["test/war"] == [(3 * per_epoch, float(np.float32(test["accuracy"])))]

    # A finished run started again (e.g. best.pt deleted) trains nothing and leaves its curves as they are.
    files = sorted(tb.iterdir())
    sizes = [f.stat().st_size for f in files]
    (out / "best.pt").unlink()
    train(cache, "res_att", 0, out, params(epochs=3), tensorboard=tb)
    assert sorted(tb.iterdir()) == files and [f.stat().st_size for f in files] == sizes


def test_a_fresh_training_sets_the_earlier_curve_aside(cache, tmp_path, caplog):
    out, tb = tmp_path / "m", tmp_path / "tb" / "fold0"
    train(cache, "res_att", 0, out, params(epochs=2), tensorboard=tb)
    old_files = sorted(f.name for f in tb.iterdir())
    with caplog.at_level("WARNING"):
        train(cache, "res_att", 0, out, params(epochs=3, lr=1e-3), tensorboard=tb)  # another fingerprint
    assert "set aside as" in caplog.text
    assert sorted(f.name for f in (tmp_path / "tb" / "fold0.old").iterdir()) == old_files
    found = series(read_run(tb))
    assert [v for _, v in found["progress/epoch"]] == [1, 2, 3]
    history = pd.read_parquet(out / "history.parquet")
    assert [v for _, v in found["val/uar"]] == as_float32(history["val_uar"])


def test_without_tensorboard_installed_training_goes_on_with_one_warning(cache, tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` raises ImportError
    with caplog.at_level("WARNING"):
        summary = train(cache, "res_att", 0, tmp_path / "m", params(epochs=1), tensorboard=tmp_path / "tb")
    assert summary["epochs"] == 1 and (tmp_path / "m" / "best.pt").exists()
    warnings = [r for r in caplog.records if "tensorboard" in r.getMessage()]
    assert len(warnings) == 1 and "not installed" in warnings[0].getMessage()
    assert not (tmp_path / "tb").exists()


def test_the_switch_off_writes_no_event_file(cache, tmp_path):
    train(cache, "res_att", 0, tmp_path / "m", params(epochs=1, tensorboard=False), tensorboard=tmp_path / "tb")
    assert not (tmp_path / "tb").exists()


# ---- kill and resume ---------------------------------------------------------------------------------------------

# The training job, slowed to 0.2 s a batch (train() calls watch before each) so that a kill can hit a moment.
RUN = """
import json, sys, time
from video_emotion.train import train
train(sys.argv[1], "res_att", 0, sys.argv[2], json.loads(sys.argv[3]), tensorboard=sys.argv[4],
      watch=lambda: time.sleep(0.2))
"""


def written_epochs(log_dir: Path) -> list[int]:
    """The ``progress/epoch`` scalars in the event files as they are on disk (TensorBoard's purge not applied)."""
    epochs = []
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            epochs += [int(v.tensor.float_val[0]) for v in event.summary.value if v.tag == "progress/epoch"]
    return epochs


def last_epoch(out: Path) -> int:
    try:
        return torch.load(out / "last.pt", weights_only=True)["epoch"]
    except Exception:  # not there yet, or being replaced
        return 0


def run_until(script: Path, args: list[str], condition, timeout: float = 180) -> None:
    """Start the training script, SIGKILL it once ``condition()`` holds (it must not finish first)."""
    proc = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + timeout
        while not condition() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the training ended before the moment of the kill"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def served_scalars(logdir: Path, run: str, tag: str) -> list[list[float]]:
    """The real TensorBoard server on 127.0.0.1: [wall time, step, value] of ``tag`` in ``run``, then stopped."""
    port = free_port()
    tensorboard = Path(sys.executable).with_name("tensorboard")
    server = subprocess.Popen([str(tensorboard), "--logdir", str(logdir), "--host", "127.0.0.1", "--port",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:  # ready once it lists the run's scalar tags
            assert server.poll() is None, server.stderr.read()[-3000:]
            assert time.time() < deadline, "TensorBoard did not serve the run within 120 s"
            try:
                if tag in get_json(f"{base}/data/plugin/scalars/tags").get(run, {}):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        query = urllib.parse.urlencode({"run": run, "tag": tag})
        return get_json(f"{base}/data/plugin/scalars/scalars?{query}")
    finally:
        server.kill()
        server.wait()


def test_a_killed_and_resumed_run_writes_one_curve_and_the_server_shows_the_history(cache, tmp_path):
    p = params(epochs=8, checkpoint_every=3)
    reference = tmp_path / "tb" / "reference"
    train(cache, "res_att", 0, tmp_path / "ref", p, tensorboard=reference)

    out, tb = tmp_path / "m", tmp_path / "tb" / "killed"
    script = tmp_path / "run.py"
    script.write_text(RUN)
    args = [str(cache), str(out), json.dumps(p), str(tb)]
    # 1. killed after epoch 4 reached the event file, one epoch past the checkpoint of epoch 3: TensorBoard must
    #    drop what followed that checkpoint when the run continues from it.
    run_until(script, args, lambda: 4 in written_epochs(tb))
    assert last_epoch(out) == 3
    # 2. killed the moment the next checkpoint (epoch 6) is there, whatever the event file holds by then.
    run_until(script, args, lambda: last_epoch(out) == 6)
    # 3. continued to the end.
    train(cache, "res_att", 0, out, p, tensorboard=tb)
    assert written_epochs(tb).count(4) == 2  # on disk epoch 4 was written twice; the reader keeps one

    found, expected = series(read_run(tb)), series(read_run(reference))
    assert set(found) == set(expected)
    for tag, points in found.items():
        steps = [s for s, _ in points]
        assert all(a < b for a, b in zip(steps, steps[1:], strict=False)), f"{tag}: steps {steps}"
        assert steps == [s for s, _ in expected[tag]], tag
        if tag in DETERMINISTIC:
            assert points == expected[tag], tag
    history = pd.read_parquet(out / "history.parquet")
    assert [v for _, v in found["val/uar"]] == as_float32(history["val_uar"])

    # TensorBoard's own server: the validation UAR of the resumed run, as history.parquet has it.
    served = served_scalars(tmp_path / "tb", "killed", "val/uar")
    assert [step for _, step, _ in served] == [s for s, _ in found["val/uar"]]
    assert [value for _, _, value in served] == pytest.approx(as_float32(history["val_uar"]), abs=0)
