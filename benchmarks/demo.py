"""Benchmark the demo generator: wall time of the default demo and how often dlib finds the face in its frames.

    python benchmarks/demo.py [--out DIR] [--detect-every N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import imageio_ffmpeg
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench import Clock, Table  # noqa: E402

from video_emotion import demo  # noqa: E402
from video_emotion.faces import load_dlib_models  # noqa: E402

TIME_LIMIT_S = 60.0
DETECTION_LIMIT = 0.95


def decode(path: Path, width: int = 320, height: int = 240) -> np.ndarray:
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(out, np.uint8).reshape(-1, height, width, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="where to write the demo (default: a temporary folder)")
    parser.add_argument("--detect-every", type=int, default=5, help="run dlib on every N-th frame")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "demo"
        with Clock() as clock:
            paths = demo.make_demo(out)
        seconds, cpu = clock.wall, clock.cpu

        detector, _ = load_dlib_models()
        found = [len(detector(f, 0)) > 0 for p in paths for f in decode(p)[:: args.detect_every]]

    rate = float(np.mean(found))
    table = Table("demo", "the default demo dataset, generated once")
    table.row("default demo, wall time", seconds, f"<= {TIME_LIMIT_S:.0f}", ok=seconds <= TIME_LIMIT_S, unit="s")
    table.row("  CPU time, all processes", cpu, unit="s")
    table.row("videos written", len(paths), "== 108", ok=len(paths) == 108)
    table.row(f"dlib HOG detection rate ({len(found)} frames)", rate, f">= {DETECTION_LIMIT}",
              ok=rate >= DETECTION_LIMIT)
    sys.exit(table.finish())


if __name__ == "__main__":
    main()
