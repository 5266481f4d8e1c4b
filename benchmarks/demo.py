"""Benchmark the demo generator: wall time of the default demo and how often dlib finds the face in its frames.

    python benchmarks/demo.py [--out DIR] [--detect-every N]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from video_emotion import demo
from video_emotion.faces import load_dlib_models

TIME_LIMIT_S = 60.0
DETECTION_LIMIT = 0.95


def decode(path: Path, width: int = 320, height: int = 240) -> np.ndarray:
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(out, np.uint8).reshape(-1, height, width, 3)


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the worker pool)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="where to write the demo (default: a temporary folder)")
    parser.add_argument("--detect-every", type=int, default=5, help="run dlib on every N-th frame")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "demo"
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        paths = demo.make_demo(out)
        seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start

        detector, _ = load_dlib_models()
        found = [len(detector(f, 0)) > 0 for p in paths for f in decode(p)[:: args.detect_every]]

    rate = float(np.mean(found))
    rows = [
        ("default demo, wall time (s)", f"{seconds:.1f}", f"<= {TIME_LIMIT_S:.0f}", seconds <= TIME_LIMIT_S),
        ("  CPU time, all processes (s)", f"{cpu:.1f}", "-", True),
        ("videos written", str(len(paths)), "== 108", len(paths) == 108),
        (f"dlib HOG detection rate ({len(found)} frames)", f"{rate:.2%}", f">= {DETECTION_LIMIT:.0%}",
         rate >= DETECTION_LIMIT),
    ]  # fmt: skip
    print(f"{'figure':<40} {'measured':>10} {'limit':>10}  ok")
    for name, value, limit, ok in rows:
        print(f"{name:<40} {value:>10} {limit:>10}  {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    main()
