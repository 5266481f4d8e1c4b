"""The whole Snakemake DAG, end to end, on a tiny dataset in eNTERFACE'05 layout made by the demo generator.

The tree also holds a video ffmpeg cannot read and a video without a face: both must be recorded with their reason
and skipped while the rest of the run completes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]

TINY = {
    "dataset": "enterface05",
    "demo": {"subjects": 3, "sentences": 1, "seconds": 1.2, "fps": 25, "width": 240, "height": 180},
    "folds": {"scheme": "kfold", "k": 3, "val_subjects": 1},
    "frames": {"fps": 10, "height": 180},
    "faces": {"crop_size": 32},
    "cache": {"clip_len": 4},
    "models": ["res_att", "p3d"],
    "model_kwargs": {"res_att": {"width": 4, "layers": [1, 1, 1, 1]}, "p3d": {"width": 4, "layers": [1, 1, 1, 1]}},
    "train": {"epochs": 2, "batch_size": 8},
    "evaluate": {"clips_per_video": 2},
    "metrics": {"bootstrap": 50},
}


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "--directory", str(workdir), "--cores", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def write_no_face_video(path: Path, frames: int = 12) -> None:
    import imageio_ffmpeg

    rng = np.random.default_rng(0)
    writer = imageio_ffmpeg.write_frames(str(path), (240, 180), fps=10, codec="mpeg4", macro_block_size=1)
    writer.send(None)
    for _ in range(frames):
        writer.send(np.ascontiguousarray(rng.integers(0, 255, (180, 240, 3), dtype=np.uint8)))
    writer.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    from video_emotion.demo import make_demo

    work = tmp_path_factory.mktemp("run")
    data = work / "data"
    make_demo(data, **{k: v for k, v in TINY["demo"].items()})
    broken = data / "subject 1" / "anger" / "sentence 2" / "s1_an_2.avi"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"RIFF\x00\x00\x00\x00AVI not really a video")
    noface = data / "subject 2" / "fear" / "sentence 2" / "s2_fe_2.avi"
    noface.parent.mkdir(parents=True)
    write_no_face_video(noface)
    source = data / "subject 3" / "surprise" / "sentence 1" / "s3_su_1.avi"
    videos = [source]
    for folder in ("new videos/a", "new videos/b"):  # same file name twice, spaces and non-ASCII in it
        (work / folder).mkdir(parents=True)
        videos.append(work / folder / "clip été 1.avi")
        shutil.copy(source, videos[-1])
    predict = {"videos": [str(v) for v in videos]}
    (work / "config.yaml").write_text(yaml.safe_dump({**TINY, "dataset_root": str(data), "predict": predict}))
    snakemake(work)
    return work


@pytest.mark.slow
def test_dag_runs_end_to_end(run: Path) -> None:
    report = run / "results" / "report" / "index.html"
    assert report.exists()
    preds = pd.read_parquet(run / "results" / "predictions")
    assert set(preds["fold"].astype(int)) == {0, 1, 2}
    assert set(preds["seed"].astype(int)) == {0}
    assert set(preds["model"].astype(str)) == {"res_att", "p3d"}
    assert isinstance(preds["label"].dtype, pd.CategoricalDtype)
    assert isinstance(preds["pred"].dtype, pd.CategoricalDtype)
    # 3 subjects x 6 emotions, every test video predicted once; the two bad videos are not among them
    assert not preds.duplicated(["model", "video_id"]).any()
    assert len(preds) == 2 * 18


@pytest.mark.slow
def test_bad_videos_are_recorded_and_skipped(run: Path) -> None:
    qc = pd.concat(pd.read_parquet(p) for p in sorted((run / "results" / "faces").glob("*_qc.parquet")))
    rejected = qc[qc["status"] != "ok"].set_index("video_id")
    assert len(rejected) == 2, qc
    reasons = " ".join(rejected["reason"].astype(str)).lower()
    assert "face" in reasons  # the no-face video says why
    manifest = pd.read_parquet(run / "results" / "manifest.parquet")
    assert len(manifest) == 20


@pytest.mark.slow
def test_second_run_does_nothing_and_forcerun_evaluate_skips_training(run: Path) -> None:
    assert "Nothing to be done" in snakemake(run, "-n").stdout
    out = snakemake(run, "-n", "--forcerun", "evaluate").stdout
    assert job_stats(out) == {"evaluate": 6, "metrics": 1, "report": 1, "all": 1}, out


@pytest.mark.slow
def test_tensorboard_runs_are_logs_not_outputs(run: Path) -> None:
    """One TensorBoard run per model, seed and fold, written as training ran; deleting them reruns nothing."""
    logs = run / "results" / "tensorboard"
    runs = {p.parent.relative_to(logs) for p in logs.glob("*/seed*/fold*/events.out.tfevents.*")}
    assert runs == {Path(model, "seed0", f"fold{fold}") for model in TINY["models"] for fold in range(3)}, runs
    shutil.rmtree(logs)
    assert "Nothing to be done" in snakemake(run, "-n").stdout


@pytest.mark.slow
def test_folds_are_not_an_input_of_frames_faces_or_cache(run: Path) -> None:
    # Which runs train again is known once the folds checkpoint has run (a subject that did not move keeps its
    # training); the dry run shows the checkpoint and nothing upstream of it.
    stats = job_stats(snakemake(run, "-n", "--config", "folds={seed: 1}").stdout)
    assert stats["folds"] == 1, stats
    assert not {"manifest", "frames", "faces", "cache"} & set(stats), stats


@pytest.mark.slow
def test_a_training_setting_retrains_every_fold(run: Path) -> None:
    stats = job_stats(snakemake(run, "-n", "--config", "train={lr: 0.0005}").stdout)
    assert stats["train"] == 6 and stats["evaluate"] == 6, stats
    assert not {"manifest", "folds", "frames", "faces", "cache"} & set(stats), stats


@pytest.mark.slow
def test_seeds_multiply_training_and_evaluation_only(run: Path) -> None:
    stats = job_stats(snakemake(run, "-n", "--config", "seeds=[0, 1]").stdout)
    assert stats["train"] == 6 and stats["evaluate"] == 6, stats  # the new seed-1 runs
    assert not {"manifest", "folds", "frames", "faces", "cache"} & set(stats), stats


@pytest.mark.slow
def test_the_resolved_config_is_written(run: Path) -> None:
    resolved = yaml.safe_load((run / "results" / "config.yaml").read_text())
    assert resolved["train"]["epochs"] == TINY["train"]["epochs"]
    assert resolved["train"]["lr"] == 0.001  # the schema default: no demo value in this run


def job_stats(out: str) -> dict[str, int]:
    """The dry run's 'Job stats' table as {rule: count}."""
    stats = {}
    for line in out.split("Job stats:")[1].splitlines()[3:]:
        name, _, count = line.strip().partition(" ")
        if name == "total":
            return stats
        stats[name] = int(count)
    raise AssertionError(f"no job stats in:\n{out}")


@pytest.mark.slow
def test_an_evaluation_setting_reruns_evaluation_only(run: Path) -> None:
    out = snakemake(run, "-n", "--config", "evaluate={clips_per_video: 3}").stdout
    assert job_stats(out) == {"resolved_config": 1, "evaluate": 6, "metrics": 1, "report": 1, "all": 1}, out


@pytest.mark.slow
def test_predict_rule_writes_a_timeline_for_each_listed_video(run: Path) -> None:
    timeline = pd.read_parquet(run / "results" / "predict" / "s3_su_1.timeline.parquet")
    assert (run / "results" / "predict" / "s3_su_1.timeline.png").exists()
    names = sorted(p.name for p in (run / "results" / "predict").glob("*.timeline.parquet"))
    assert names == ["a_clip_ete_1.timeline.parquet", "b_clip_ete_1.timeline.parquet", "s3_su_1.timeline.parquet"]
    assert {"time_s", "pred", "face_found", "p_surprise"} <= set(timeline.columns)
    assert timeline["face_found"].all()
    assert (run / "results" / "predict" / "s3_su_1.timeline.png").stat().st_size > 0


def test_a_wrong_config_value_is_refused_with_its_name(tmp_path: Path) -> None:
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    proc = snakemake(tmp_path, "-n", "--config", "frames={'fps': -3}", check=False)
    assert proc.returncode != 0
    assert "fps" in proc.stderr + proc.stdout


def test_a_real_dataset_without_a_root_is_refused(tmp_path: Path) -> None:
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    proc = snakemake(tmp_path, "-n", "--config", "dataset=enterface05", check=False)
    assert proc.returncode != 0
    assert "dataset_root" in proc.stderr + proc.stdout


HISTORY_SAME = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_uar", "lr"]


@pytest.mark.slow
def test_changed_settings_after_a_run_retrain_fresh_and_drop_old_tables(run: Path, tmp_path: Path) -> None:
    """Last in this module: it changes the finished run. A new lr retrains from epoch 1 (the history equals a clean
    run's with that lr); the dropped model's tables leave metrics and the report."""
    args = ["--config", "train={lr: 0.0005}", "models=[res_att]"]
    snakemake(run, *args)
    clean = tmp_path / "clean"
    shutil.copytree(run, clean, ignore=shutil.ignore_patterns("models", "predictions", ".snakemake", "metrics",
                                                              "report", "attention"), symlinks=True)
    snakemake(clean, *args)
    for fold in range(3):
        got = pd.read_parquet(run / f"results/models/res_att/seed0/fold{fold}/history.parquet")
        want = pd.read_parquet(clean / f"results/models/res_att/seed0/fold{fold}/history.parquet")
        assert got["epoch"].tolist() == [1, 2]
        pd.testing.assert_frame_equal(got[HISTORY_SAME], want[HISTORY_SAME])
    summary = pd.read_parquet(run / "results" / "metrics" / "summary.parquet")
    assert set(summary["model"].astype(str)) == {"res_att"}
    assert "p3d" not in (run / "results" / "report" / "headline.html").read_text()

@pytest.mark.parametrize("rule, ran", [
    ("frames", {"demo_videos", "manifest", "frames", "frames_index"}),
    ("faces", {"demo_videos", "manifest", "frames", "faces", "faces_qc"}),
])
def test_until_a_stage_runs_up_to_it(tmp_path: Path, rule: str, ran: set[str]) -> None:
    config = {**TINY, "dataset": "demo", "demo": {**TINY["demo"], "subjects": 2}, "folds": {"k": 2, "val_subjects": 0}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    out = snakemake(tmp_path, "--until", rule).stdout
    assert (tmp_path / "results" / "frames").is_dir()
    stats = job_stats(snakemake(tmp_path, "-n").stdout)
    assert not ran & set(stats) and "cache" in stats, (stats, out)
