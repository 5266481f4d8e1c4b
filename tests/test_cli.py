"""The `video-emotion` command line: what the workflow's rules call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from test_cache import make_cache

from video_emotion.datasets.placeholder import make_enterface_tree

CLI = [sys.executable, "-m", "video_emotion.cli"]


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed:\n{proc.stdout}\n{proc.stderr[-4000:]}")
    return proc


def test_train_with_nproc_2_relaunches_under_torchrun_and_writes_once(tmp_path: Path) -> None:
    cache = make_cache(tmp_path, clip_len=4)
    out = tmp_path / "model"
    params = {"train": {"epochs": 2, "batch_size": 4}, "model_kwargs": {"width": 4, "layers": [1, 1, 1, 1]},
              "folds": {"val_subjects": 1}}
    proc = run("--threads", "1", "train", "--cache", str(cache), "--model", "res_att", "--fold", "0",
               "--out", str(out), "--nproc", "2", "--params", json.dumps(params))
    assert "torchrun" in proc.stderr
    assert "on cpu x2" in proc.stderr  # both processes joined one DDP group
    history = pd.read_parquet(out / "history.parquet")
    assert list(history["epoch"]) == [1, 2]
    assert (out / "best.pt").exists() and (out / "last.pt").exists()


def test_manifest_without_out_prints_the_summary_only(tmp_path: Path) -> None:
    root = tmp_path / "data"
    make_enterface_tree(root, subjects=2, sentences=1, emotions=["anger"])
    proc = run("manifest", str(root), "--dataset", "enterface05")
    assert "anger" in proc.stdout
    assert not list(tmp_path.rglob("*.parquet"))


def test_bad_input_exits_with_a_message_naming_it(tmp_path: Path) -> None:
    proc = run("manifest", str(tmp_path / "missing"), "--dataset", "enterface05", check=False)
    assert proc.returncode != 0
    assert "missing" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("frames", str(tmp_path / "x.avi"), str(tmp_path / "f"), "--params", "{not json", check=False)
    assert proc.returncode != 0 and "--params" in proc.stderr


def test_faces_takes_a_raw_video_for_a_quick_look(tmp_path: Path) -> None:
    import h5py
    import pytest

    from video_emotion.cli import main
    from video_emotion.demo import make_demo

    video = make_demo(tmp_path / "demo", subjects=2, sentences=1, seconds=1.0, fps=25, width=240, height=180)[0]
    out = tmp_path / "look" / "faces.h5"
    main(["faces", "--video", str(video), "--out", str(out), "--params", '{"crop_size": 32}'])
    qc = pd.read_parquet(out.with_suffix(".qc.parquet"))
    assert qc.loc[0, "status"] == "ok" and qc.loc[0, "detection_rate"] > 0.9
    with h5py.File(out) as h5:
        assert h5[qc.loc[0, "video_id"]]["crops"].shape[1:] == (32, 32, 3)
    assert out.with_suffix(".strip.png").stat().st_size > 0
    with pytest.raises(SystemExit, match="--manifest, --shard and --qc"):
        main(["faces", "--out", str(out)])
