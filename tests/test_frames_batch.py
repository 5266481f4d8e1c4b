"""Many videos per frames job: the batched outputs equal one-video-at-a-time outputs, the CLI reads a manifest shard,
and the per-shard DAG of a 16,000-video placeholder tree builds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from video_emotion.cli import main
from video_emotion.frames import extract_frames, extract_many, ffmpeg_exe
from video_emotion.io import read_json

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from dag import placeholder_csv  # noqa: E402  (the benchmark's placeholder tree)


def encode(path: Path, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n, 120, 160, 3), dtype=np.uint8)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "160x120",
                    "-r", "25", "-i", "-", "-c:v", "mpeg4", "-q:v", "3", str(path)],
                   input=frames.tobytes(), check=True)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[tuple[Path, str]]:
    folder = tmp_path_factory.mktemp("videos")
    bad = folder / "bad.avi"
    bad.write_bytes(b"not a video" * 50)
    return [(encode(folder / f"v{i}.avi", 20 + 5 * i, i), f"v{i}") for i in range(3)] + [(bad, "bad")]


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != "meta.json"}


def test_batched_outputs_equal_one_video_at_a_time(videos, tmp_path):
    metas = extract_many(videos, tmp_path / "shard", fps=10, height=60, workers=3)
    assert [m["video_id"] for m in metas] == [vid for _, vid in videos]
    assert sorted(p.name for p in (tmp_path / "shard").iterdir()) == sorted(vid for _, vid in videos)
    for (path, vid), meta in zip(videos, metas, strict=True):
        one = extract_frames(path, tmp_path / "one" / vid, fps=10, height=60)
        assert meta == one == read_json(tmp_path / "shard" / vid / "meta.json")
        assert folder_bytes(tmp_path / "shard" / vid) == folder_bytes(tmp_path / "one" / vid)
    assert [m["status"] for m in metas] == ["ok", "ok", "ok", "rejected"]
    assert metas[2]["n_frames"] == 12  # 30 frames at 25 fps -> 12 at 10 fps


def test_repeated_video_ids_are_refused_before_any_work(videos, tmp_path):
    with pytest.raises(ValueError, match="repeat"):
        extract_many([videos[0], videos[0]], tmp_path / "shard", fps=10, height=60)
    assert not (tmp_path / "shard").exists()


def test_cli_extracts_many_videos_in_one_process(videos, tmp_path):
    paths = [str(path) for path, _ in videos[:3]]
    main(["frames", *paths, "--ids", "a", "b", "c", "--out", str(tmp_path / "s1"), "--workers", "2",
          "--params", '{"fps": 10, "height": 60}'])
    assert sorted(p.name for p in (tmp_path / "s1").iterdir()) == ["a", "b", "c"]
    assert read_json(tmp_path / "s1" / "b" / "meta.json")["n_frames"] == 10
    with pytest.raises(SystemExit, match="3 videos but 2 --ids"):
        main(["frames", *paths, "--ids", "a", "b", "--out", str(tmp_path / "s2")])


def test_dag_of_a_16000_video_placeholder_tree_packs_subjects_into_shards(tmp_path):
    n_videos, per_subject, shard_videos = 16000, 30, 64
    csv = placeholder_csv(tmp_path / "data", n_videos, per_subject)
    work = tmp_path / "work"
    work.mkdir()
    config = {"dataset": "csv", "dataset_root": str(csv), "folds": {"scheme": "kfold", "k": 5},
              "models": ["res_att", "c3d"], "shard_videos": shard_videos}
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    base = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work), "--cores", "1"]
    subprocess.run([*base, "results/manifest.parquet", "results/folds.parquet"], check=True, capture_output=True)
    manifest = pd.read_parquet(work / "results/manifest.parquet", columns=["subject", "shard"])
    assert (manifest.groupby("subject")["shard"].nunique() == 1).all()  # a subject is never split
    sizes = manifest.groupby("shard").size()
    assert len(sizes) == -(-n_videos // (3 * per_subject))  # three 30-video subjects reach 64
    assert (sizes.sort_values().iloc[1:] >= shard_videos).all(), sizes.describe()  # all but the last one
    dry = subprocess.run([base[0], "-X", "importtime", *base[1:], "-n", "--quiet", "rules"], capture_output=True,
                         text=True)
    assert dry.returncode == 0, dry.stderr[-3000:]
    imported = {line.split("|")[-1].strip() for line in dry.stderr.splitlines() if line.startswith("import time:")}
    assert not imported & {"torch", "matplotlib"}, "reading the workflow must not import torch or matplotlib"
    stats = dict(line.split() for line in dry.stdout.split("Job stats:")[-1].splitlines() if len(line.split()) == 2)
    assert int(stats["frames"]) == int(stats["faces"]) == len(sizes), stats
    assert int(stats["train"]) == 2 * 5, stats
