"""Frames stage on real videos made with the real ffmpeg: resampling, streaming, and bad-video records."""

import subprocess

import numpy as np
import pytest

from video_emotion.frames import VideoError, extract_frames, ffmpeg_exe, iter_frames, probe
from video_emotion.io import read_json


def encode(path, frames, fps=25, codec="mjpeg"):
    t, h, w, _ = frames.shape
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                    "-r", str(fps), "-i", "-", "-c:v", codec, "-q:v", "3", str(path)],
                   input=frames.tobytes(), check=True)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    # 50 frames at 25 fps, 320x240; the frame index is written into the brightness so order can be checked.
    frames = np.zeros((50, 240, 320, 3), np.uint8)
    frames += np.arange(50, dtype=np.uint8)[:, None, None, None] * 5
    return encode(tmp_path_factory.mktemp("v") / "ramp.avi", frames)


def test_probe_reads_the_header_without_ffprobe(video):
    info = probe(video)
    assert info == {"fps": 25.0, "width": 320, "height": 240, "duration": 2.0, "n_frames": 50}


def test_extract_frames_resamples_in_ffmpeg_and_writes_meta(video, tmp_path):
    meta = extract_frames(video, tmp_path / "ramp", fps=10, height=120)
    names = sorted(p.name for p in (tmp_path / "ramp").iterdir())
    assert names[0] == "000001.jpg" and names[-1] == "meta.json" and len(names) == 21
    assert read_json(tmp_path / "ramp" / "meta.json") == meta
    assert meta["status"] == "ok" and meta["n_frames"] == 20
    assert (meta["width"], meta["height"], meta["source_width"], meta["source_fps"]) == (160, 120, 320, 25.0)
    assert not list(tmp_path.glob(".*tmp"))  # no temporary folder left behind


def test_iter_frames_streams_the_same_resampled_frames(video):
    frames = list(iter_frames(video, fps=10, height=120))
    assert len(frames) == 20 and frames[0].shape == (120, 160, 3) and frames[0].dtype == np.uint8
    brightness = [f.mean() for f in frames]
    assert brightness == sorted(brightness) and brightness[-1] > brightness[0] + 100


def test_iter_frames_keeps_the_source_size_by_default(video):
    assert next(iter(iter_frames(video))).shape == (240, 320, 3)


@pytest.mark.parametrize("kind", ["zero", "truncated", "garbage", "one_frame", "missing"])
def test_bad_videos_are_recorded_not_raised(video, tmp_path, kind):
    bad = tmp_path / f"{kind}.avi"
    if kind == "zero":
        bad.write_bytes(b"")
    elif kind == "truncated":
        bad.write_bytes(video.read_bytes()[: video.stat().st_size // 3])
    elif kind == "garbage":
        bad.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    elif kind == "one_frame":
        encode(bad, np.zeros((1, 240, 320, 3), np.uint8))
    meta = extract_frames(bad, tmp_path / "out", fps=10, height=120)
    assert meta["status"] == "rejected" and meta["reason"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["meta.json"]
    assert read_json(tmp_path / "out" / "meta.json")["status"] == "rejected"


def test_library_callers_get_video_error(tmp_path):
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    with pytest.raises(VideoError, match="empty.avi.*0 bytes"):
        probe(empty)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 100)
    with pytest.raises(VideoError, match="garbage.mp4"):
        list(iter_frames(garbage))


def test_rerun_replaces_the_old_folder(video, tmp_path):
    out = tmp_path / "v"
    extract_frames(video, out, fps=10, height=120)
    (out / "stale.jpg").write_bytes(b"x")
    extract_frames(video, out, fps=5, height=120)
    assert not (out / "stale.jpg").exists() and len(list(out.glob("*.jpg"))) == 10
