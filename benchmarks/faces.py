"""Faces stage speed and memory against its limits, on demo videos (dlib backend, CPU; synthetic videos of a real
face photo when the demo generator fails).

    python benchmarks/faces.py [--videos 3]

- stage fps vs the detector + landmark forward time it spends (stage <= 1.3x that time);
- stage vs a naive loop that detects and landmarks every full frame (stage >= 3x faster), and the mean landmark
  difference between the two (< 2 px);
- peak memory of a faces job on a video and on one 10x longer (< 1.5x).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from video_emotion.faces import FacePipeline
from video_emotion.faces.backends import DlibBackend
from video_emotion.frames import extract_frames, ffmpeg_exe, iter_frames


class Timed:
    """A backend wrapper adding up the time spent in detect and landmarks."""

    def __init__(self, backend):
        self.backend, self.name, self.versions, self.seconds = backend, backend.name, backend.versions, 0.0

    def detect(self, image):
        start = time.perf_counter()
        out = self.backend.detect(image)
        self.seconds += time.perf_counter() - start
        return out

    def landmarks(self, images, boxes):
        start = time.perf_counter()
        out = self.backend.landmarks(images, boxes)
        self.seconds += time.perf_counter() - start
        return out


def demo_videos(folder: Path, n: int) -> tuple[list[Path], str]:
    """``n`` demo videos spread over two subjects and the emotions when the demo generator runs, else short videos
    of a real face photo drifting sideways; and which of the two they are."""
    try:
        from video_emotion.demo import make_demo

        paths = make_demo(folder, subjects=2 if n > 1 else 1, sentences=1, seconds=2.0, fps=25, width=320,
                          height=240, seed=0)
        step = max(1, len(paths) // n)  # sorted by subject, then emotion: every step-th one mixes both
        return [paths[(i * step + i) % len(paths)] for i in range(n)], "demo"
    except Exception as err:  # the generator is optional here
        print(f"demo generator unavailable ({type(err).__name__}: {err}); using synthetic face videos",
              file=sys.stderr)
    import skimage.data

    face = np.ascontiguousarray(skimage.data.astronaut()[:256, 96:416])  # a face about 90 px wide
    paths = []
    for i in range(n):
        frames = np.stack([np.roll(face, int(6 * np.sin(k / 5 + i)), axis=1) for k in range(50)])
        path = folder / f"v{i}.avi"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "320x256",
                        "-r", "25", "-i", "-", "-c:v", "mjpeg", "-q:v", "3", str(path)],
                       input=np.ascontiguousarray(frames).tobytes(), check=True)
        paths.append(path)
    return paths, "synthetic"


def naive(backend: DlibBackend, frames) -> np.ndarray:
    """Detect on every full frame, landmark the largest face."""
    out = np.full((len(frames), 68, 2), np.nan, np.float32)
    for i, frame in enumerate(frames):
        boxes, _ = backend.detect(frame)
        if len(boxes):
            box = boxes[np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))]
            out[i] = backend.landmarks([frame], box[None])[0]
    return out


def peak_memory_child(video: str, repeats: int) -> None:
    """Run the faces job on ``video`` looped ``repeats`` times (streamed) and print the peak RSS in MiB."""
    from video_emotion.faces import process_shard

    with tempfile.TemporaryDirectory() as tmp:
        meta = extract_frames(video, Path(tmp) / "f", fps=25, height=240)
        assert meta["status"] == "ok"
        frames = sorted((Path(tmp) / "f").glob("*.jpg"))
        for r in range(1, repeats):  # a longer video: the same frames again, renumbered
            for k, src in enumerate(frames):
                (Path(tmp) / "f" / f"{r * len(frames) + k + 1:06d}.jpg").symlink_to(src)
        process_shard([("v", Path(tmp) / "f")], Path(tmp) / "s.h5", Path(tmp) / "s_qc.parquet",
                      {"backend": "dlib"}, progress=False)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--memory-child", nargs=2, metavar=("VIDEO", "REPEATS"))
    args = parser.parse_args()
    if args.memory_child:
        peak_memory_child(args.memory_child[0], int(args.memory_child[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        videos, source = demo_videos(Path(tmp), args.videos)
        clips = [list(iter_frames(v, height=240)) for v in videos]
        n = sum(len(c) for c in clips)
        backend = Timed(DlibBackend())
        pipe = FacePipeline({"backend": "dlib"}, backend=backend)
        start = time.perf_counter()
        results = [pipe.process(c) for c in clips]
        stage = time.perf_counter() - start
        start = time.perf_counter()
        reference = [naive(backend.backend, c) for c in clips]
        loop = time.perf_counter() - start
        both = [(r.landmarks[r.detected], ref[r.detected]) for r, ref in zip(results, reference, strict=True)]
        diff = float(np.nanmean(np.concatenate([np.linalg.norm(a - b, axis=-1).ravel() for a, b in both])))
        mem = []
        for repeats in (1, 10):
            out = subprocess.run([sys.executable, __file__, "--memory-child", str(videos[0]), str(repeats)],
                                 capture_output=True, text=True, check=True)
            mem.append(float(out.stdout.strip().splitlines()[-1]))
    rows = [
        (f"frames ({len(clips)} {source} videos, 240p)", f"{n}", ""),
        ("stage fps", f"{n / stage:.1f}", ""),
        ("stage / detector+landmark forward", f"{stage / backend.seconds:.2f}", "<= 1.3"),
        ("naive loop / stage (speed-up)", f"{loop / stage:.2f}", ">= 3"),
        ("landmark difference to naive (px)", f"{diff:.2f}", "< 2"),
        ("peak RSS 1x video (MiB)", f"{mem[0]:.0f}", ""),
        ("peak RSS 10x video / 1x", f"{mem[1] / mem[0]:.2f}", "< 1.5"),
    ]
    print(f"{'measure':<40}{'value':>10}{'limit':>10}")
    for name, value, limit in rows:
        print(f"{name:<40}{value:>10}{limit:>10}")


if __name__ == "__main__":
    main()
