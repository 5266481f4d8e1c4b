"""predict: the emotion timeline of a new video with the training's own preprocessing and a sliding window."""

from __future__ import annotations

import subprocess
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

import video_emotion.predict as predict_module
from video_emotion.demo import make_demo
from video_emotion.faces import process_shard
from video_emotion.frames import extract_frames, ffmpeg_exe
from video_emotion.io import read_parquet_metadata
from video_emotion.labels import EMOTIONS
from video_emotion.models import create_model
from video_emotion.predict import overall_emotion, predict, predict_many, window_indices, window_starts

FRAMES = {"fps": 10, "height": 240}
FACES = {"backend": "dlib", "crop_size": 32}
TINY = {"width": 4, "layers": [1, 1, 1, 1], "heads": 2}
CLIP = 8


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> list[Path]:
    """Six 2-second demo videos (one subject, one per emotion) at 25 fps: 20 frames each at the training's 10 fps."""
    return make_demo(tmp_path_factory.mktemp("demo"), subjects=1, sentences=1, seconds=2.0, fps=25, seed=0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained tiny 3Res-att in the checkpoint layout train.py writes (preprocessing settings included)."""
    torch.manual_seed(0)
    model = create_model("res_att", len(EMOTIONS), **TINY)
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    torch.save({"model": model.state_dict(), "model_name": "res_att", "model_kwargs": TINY,
                "classes": list(EMOTIONS), "clip_len": CLIP, "crop_size": FACES["crop_size"], "epoch": 1, "fold": 0,
                "config": {"frames": FRAMES, "faces": FACES, "cache": {"clip_len": CLIP}}}, path)
    return path


def _no_face_video(path: Path, seconds: float = 2.0) -> Path:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc=size=320x240:rate=25:duration={seconds}", "-c:v", "mjpeg", "-q:v", "3", str(path)],
                   check=True)
    return path


def test_window_starts_and_indices():
    assert window_starts(20, 8, 4) == [0, 4, 8, 12]
    assert window_starts(21, 8, 4) == [0, 4, 8, 12, 13]  # a last window reaches the end
    assert window_starts(5, 8, 4) == [0]
    assert window_indices(8, 8).tolist() == list(range(8))
    assert window_indices(16, 8).tolist() == [0, 2, 4, 6, 9, 11, 13, 15]
    assert window_indices(3, 8).tolist() == [0, 1, 2, 0, 1, 2, 0, 1]


def test_timeline_of_a_face_video(demo, checkpoint, tmp_path, capsys):
    video = demo[3]  # happiness
    timeline = predict(video, checkpoint, tmp_path)
    parquet, png = tmp_path / f"{video.stem}.timeline.parquet", tmp_path / f"{video.stem}.timeline.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = pd.read_parquet(parquet)
    assert list(saved.columns) == ["time_s", *(f"p_{c}" for c in EMOTIONS), "pred", "face_found"]
    assert list(saved["pred"].cat.categories) == list(EMOTIONS)
    # 20 frames at 10 fps, windows of 8 every 4 frames: starts 0, 4, 8, 12, centres 0.4 ... 1.6 s.
    np.testing.assert_allclose(saved["time_s"], [0.4, 0.8, 1.2, 1.6])
    assert saved["face_found"].all()
    probs = saved[[f"p_{c}" for c in EMOTIONS]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert (saved["pred"].astype(str).to_numpy() == np.asarray(EMOTIONS)[probs.argmax(1)]).all()
    overall, _ = overall_emotion(saved, list(EMOTIONS))
    meta = read_parquet_metadata(parquet)
    assert meta["overall"] == overall == timeline.attrs["overall"]
    assert meta["frames"] == FRAMES and meta["faces"]["crop_size"] == FACES["crop_size"]
    assert f"overall emotion {overall}" in capsys.readouterr().out


def test_video_without_a_face_says_so(checkpoint, tmp_path, capsys):
    video = _no_face_video(tmp_path / "pattern.avi")
    timeline = predict(video, checkpoint, tmp_path / "out", stride=2)
    out = capsys.readouterr().out
    assert "no face found" in out and "pattern.avi" in out
    assert len(timeline) == len(window_starts(20, CLIP, 2)) and not timeline["face_found"].any()
    assert timeline[[f"p_{c}" for c in EMOTIONS]].isna().all().all() and timeline["pred"].isna().all()
    assert read_parquet_metadata(tmp_path / "out" / "pattern.timeline.parquet")["overall"] is None
    assert (tmp_path / "out" / "pattern.timeline.png").exists()


def test_unreadable_video_names_the_file(checkpoint, tmp_path):
    bad = tmp_path / "broken.avi"
    bad.write_bytes(b"not a video at all" * 100)
    with pytest.raises(Exception, match="broken.avi"):
        predict(bad, checkpoint, tmp_path / "out")
    assert not (tmp_path / "out" / "broken.timeline.parquet").exists()


def test_many_videos_in_one_process_equal_one_at_a_time_and_a_broken_one_is_recorded(demo, checkpoint, tmp_path):
    bad = tmp_path / "broken.avi"
    bad.write_bytes(b"not a video at all" * 100)
    videos = [demo[0], bad, demo[3]]
    failed = predict_many(videos, checkpoint, tmp_path / "many", names=["a", "b", "c"])
    assert list(failed) == [str(bad)] and "broken.avi" not in failed[str(bad)] and failed[str(bad)]
    for name, video in (("a", demo[0]), ("c", demo[3])):
        one = predict(video, checkpoint, tmp_path / "one", name=name)
        many = pd.read_parquet(tmp_path / "many" / f"{name}.timeline.parquet")
        pd.testing.assert_frame_equal(many, one.reset_index(drop=True), check_like=False)
        assert read_parquet_metadata(tmp_path / "many" / f"{name}.timeline.parquet")["error"] is None
    empty = pd.read_parquet(tmp_path / "many" / "b.timeline.parquet")
    assert empty.empty and list(empty.columns) == list(one.columns)
    assert read_parquet_metadata(tmp_path / "many" / "b.timeline.parquet")["error"] == failed[str(bad)]
    assert (tmp_path / "many" / "b.timeline.png").exists()


def test_checkpoint_without_preprocessing_settings_is_refused(checkpoint, demo, tmp_path):
    ckpt = torch.load(checkpoint, weights_only=True)
    del ckpt["config"]["faces"]
    torch.save(ckpt, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="old.pt.*retrain"):
        predict(demo[0], tmp_path / "old.pt", tmp_path / "out")


def test_clips_are_the_training_crops(demo, checkpoint, tmp_path, monkeypatch):
    """The clips predict scores are the faces stage's crops of the same frames (the cache's clips), window by window."""
    video = demo[0]
    frames_dir = tmp_path / "frames" / video.stem
    assert extract_frames(video, frames_dir, **FRAMES)["status"] == "ok"
    process_shard([(video.stem, frames_dir)], tmp_path / "s.h5", tmp_path / "s_qc.parquet", FACES, progress=False)
    with h5py.File(tmp_path / "s.h5") as f:
        stage = f[video.stem]["crops"][()].astype(np.float32)

    seen = []
    score = predict_module._score
    monkeypatch.setattr(predict_module, "_score", lambda model, clips, dev, norm: seen.extend(clips) or
                        score(model, clips, dev, norm))
    predict(video, checkpoint, tmp_path / "out", stride=4)
    assert len(seen) == 4 and len(stage) == 20
    for start, clip in zip(window_starts(20, CLIP, 4), seen, strict=True):
        same = np.abs(clip.astype(np.float32) - stage[start:start + CLIP]).mean()
        shifted = (start + 8) % 16  # a window 8 frames away
        other = np.abs(clip.astype(np.float32) - stage[shifted:shifted + CLIP]).mean()
        assert same < 6, f"window {start}: crops differ by {same:.1f} grey levels from the faces stage's"
        assert same < other


def test_clips_are_normalised_by_the_checkpoints_input_convention(demo, checkpoint, tmp_path, monkeypatch):
    """A model fine-tuned from C3D's Sports-1M weights sees 0-255 BGR minus their mean, as in training."""
    from video_emotion.clips import InputNorm
    from video_emotion.models.pretrained import INPUT_NORMS

    c3d = INPUT_NORMS["c3d"]
    ckpt = torch.load(checkpoint, weights_only=True)
    path = tmp_path / "c3d_norm.pt"
    torch.save({**ckpt, "input_norm": c3d.as_dict()}, path)
    seen = []
    original = predict_module.normalize_clip
    monkeypatch.setattr(predict_module, "normalize_clip", lambda x, norm=None: seen.append((x, InputNorm.of(norm)))
                        or original(x, norm=norm))
    ours = predict(demo[0], path, tmp_path / "c3d")
    assert seen and all(norm == c3d for _, norm in seen)
    model = create_model("res_att", len(EMOTIONS), **TINY).eval()
    model.load_state_dict(ckpt["model"])
    with torch.no_grad():
        expected = torch.cat([model(original(x, norm=c3d)).softmax(-1) for x, _ in seen]).numpy()
    np.testing.assert_allclose(ours[[f"p_{c}" for c in EMOTIONS]].to_numpy(), expected, rtol=1e-4, atol=1e-6)
    default = predict(demo[0], checkpoint, tmp_path / "default")  # the same model with the default convention
    assert not np.allclose(default[[f"p_{c}" for c in EMOTIONS]].to_numpy(), expected, atol=1e-3)


@pytest.mark.slow
def test_overall_emotion_agrees_with_evaluation(tmp_path):
    """A tiny run (demo -> frames -> faces -> cache -> train -> evaluate), then predict on the test subject's videos.

    Evaluation reads the faces stage's crops of the frames stage's JPEGs; predict aligns the decoded frames
    directly, so the two agree up to that JPEG round trip: mean probabilities within 0.05, and the same emotion
    wherever evaluation's top two classes are further apart than that.
    """
    from video_emotion.cache import build_cache
    from video_emotion.evaluate import evaluate
    from video_emotion.io import write_parquet
    from video_emotion.train import train

    videos = make_demo(tmp_path / "demo", subjects=4, sentences=2, seconds=2.0, fps=25, seed=0)
    rows, faces = [], []
    for subject in range(1, 5):
        items = []
        for video in [v for v in videos if v.stem.startswith(f"s{subject}_")]:
            extract_frames(video, tmp_path / "frames" / video.stem, **FRAMES)
            items.append((video.stem, tmp_path / "frames" / video.stem))
            rows.append({"video_id": video.stem, "path": str(video), "subject": str(subject),
                         "label": video.parent.parent.name, "fold": int(subject != 1)})
        faces.append(tmp_path / "faces" / f"s{subject}.h5")
        process_shard(items, faces[-1], tmp_path / "faces" / f"s{subject}_qc.parquet", FACES, progress=False)
    manifest = pd.DataFrame(rows)
    manifest["label"] = pd.Categorical(manifest["label"], categories=list(EMOTIONS))
    write_parquet(manifest, tmp_path / "manifest.parquet")
    cache = tmp_path / "cache" / "clips.h5"
    build_cache(tmp_path / "manifest.parquet", faces, cache, {"clip_len": CLIP})
    params = {"train": {"epochs": 40, "batch_size": 8, "lr": 3e-3, "seed": 0, "clips_per_video": 2},
              "model_kwargs": {**TINY, "width": 8}, "folds": {"val_subjects": 1, "seed": 0}, "frames": FRAMES,
              "faces": FACES, "cache": {"clip_len": CLIP}}
    train(cache, "res_att", 0, tmp_path / "model", params)
    checkpoint = tmp_path / "model" / "best.pt"
    # Evaluation's 4 evenly spaced clips of a 20-frame video start at 0, 4, 8, 12: predict's windows at stride 4.
    table = evaluate(cache, checkpoint, 0, tmp_path / "predictions.parquet", {"clips_per_video": 4, "device": "cpu"})
    paths = manifest.set_index("video_id")["path"]
    agree = []
    for row in table.itertuples():
        timeline = predict(paths[row.video_id], checkpoint, tmp_path / "predict", stride=4, device="cpu")
        evaluated = np.array([getattr(row, f"p_{c}") for c in EMOTIONS])
        np.testing.assert_allclose(timeline.attrs["overall_probs"], evaluated, atol=0.05, err_msg=row.video_id)
        top2 = np.sort(evaluated)[-2:]
        if top2[1] - top2[0] > 0.1:
            assert timeline.attrs["overall"] == row.pred, row.video_id
        agree.append(timeline.attrs["overall"] == row.pred)
    assert np.mean(agree) >= 0.75, f"{sum(agree)} of {len(agree)} videos agree"
