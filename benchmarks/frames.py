"""Frames stage vs a bare ffmpeg command doing the same decode, resample and JPEG encode on the same videos.

    python benchmarks/frames.py [--videos 6] [--seconds 4] [--repeats 3]

Limit: our stage takes at most 1.15x the bare ffmpeg time (best of ``repeats`` rounds, interleaved).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import skimage.data

from video_emotion.frames import extract_frames, ffmpeg_exe

FPS, HEIGHT = 10, 240


def make_videos(folder: Path, n: int, seconds: float) -> list[Path]:
    face = skimage.data.astronaut()
    paths = []
    for i in range(n):
        t = np.arange(int(seconds * 25))
        frames = np.stack([np.roll(face, int(8 * np.sin(k / 5 + i)), axis=1)[:480, :640] for k in t])
        path = folder / f"v{i}.avi"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "512x480",
                        "-r", "25", "-i", "-", "-c:v", "mjpeg", "-q:v", "3", str(path)],
                       input=frames.tobytes(), check=True)
        paths.append(path)
    return paths


def bare(path: Path, out: Path) -> None:
    out.mkdir(parents=True)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-vf", f"fps={FPS},scale=-2:{HEIGHT}",
                    "-q:v", "2", str(out / "%06d.jpg")], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos = make_videos(tmp, args.videos, args.seconds)
        best = {"ours": float("inf"), "bare": float("inf")}
        for r in range(args.repeats):
            for name in ("bare", "ours"):
                out = tmp / f"{name}{r}"
                start = time.perf_counter()
                for i, video in enumerate(videos):
                    if name == "ours":
                        assert extract_frames(video, out / str(i), FPS, HEIGHT)["status"] == "ok"
                    else:
                        bare(video, out / str(i))
                best[name] = min(best[name], time.perf_counter() - start)
                shutil.rmtree(out)
    ratio = best["ours"] / best["bare"]
    print(f"{'measure':<34}{'value':>10}{'limit':>10}")
    print(f"{'bare ffmpeg (s, best of ' + str(args.repeats) + ')':<34}{best['bare']:>10.3f}{'':>10}")
    print(f"{'extract_frames (s)':<34}{best['ours']:>10.3f}{'':>10}")
    print(f"{'ratio ours / bare':<34}{ratio:>10.3f}{'<= 1.15':>10}  {'ok' if ratio <= 1.15 else 'OVER'}")


if __name__ == "__main__":
    main()
