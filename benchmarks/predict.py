"""Peak memory of ``predict`` on a demo video and on one 10x longer: it must stay under 1.5x.

Each run is a fresh process, so its peak resident set (``ru_maxrss``) is predict's own (imports and model
included); the traced peak (tracemalloc, which sees numpy's buffers) is what predict allocates after start-up,
the part that would grow if frames were held. Usage: ``python benchmarks/predict.py [--seconds 3]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

LIMIT = 1.5  # longer / shorter peak memory


def make_inputs(folder: Path, seconds: float) -> tuple[Path, Path, Path]:
    """A short and a 10x longer demo video of one subject, and an untrained demo-size 3Res-att checkpoint."""
    import torch

    from video_emotion.demo import make_demo
    from video_emotion.labels import EMOTIONS
    from video_emotion.models import create_model

    short = make_demo(folder / "short", subjects=1, sentences=1, seconds=seconds, seed=0)[3]
    long = make_demo(folder / "long", subjects=1, sentences=1, seconds=10 * seconds, seed=0)[3]
    kwargs = {"width": 8, "layers": [1, 1, 1, 1]}  # the demo config's model
    torch.manual_seed(0)
    model = create_model("res_att", len(EMOTIONS), **kwargs)
    checkpoint = folder / "best.pt"
    torch.save({"model": model.state_dict(), "model_name": "res_att", "model_kwargs": kwargs,
                "classes": list(EMOTIONS), "clip_len": 8, "crop_size": 64, "epoch": 1, "fold": 0,
                "config": {"frames": {"fps": 10, "height": 240}, "faces": {"backend": "dlib", "crop_size": 64}}},
               checkpoint)
    return short, long, checkpoint


def measure_one(video: str, checkpoint: str, out_dir: str) -> dict:
    """Run predict once in this process; its peaks and timing."""
    import torch

    from video_emotion.predict import predict

    torch.set_num_threads(1)
    tracemalloc.start()
    start = time.perf_counter()
    timeline = predict(video, checkpoint, out_dir, device="cpu")
    seconds = time.perf_counter() - start
    _, traced = tracemalloc.get_traced_memory()
    return {"frames": int(timeline.attrs["n_frames"]), "windows": len(timeline), "seconds": seconds,
            "traced_mib": traced / 2**20, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of the short video")
    parser.add_argument("--one", nargs=3, metavar=("VIDEO", "CHECKPOINT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT", json.dumps(measure_one(*args.one)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        short, long, checkpoint = make_inputs(Path(tmp), args.seconds)
        results = {}
        for name, video in (("short", short), ("10x longer", long)):
            proc = subprocess.run([sys.executable, __file__, "--one", str(video), str(checkpoint), tmp],
                                  capture_output=True, text=True, check=True)
            line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
            results[name] = json.loads(line.removeprefix("RESULT "))
    print(f"{'video':<12}{'frames':>8}{'windows':>9}{'seconds':>9}{'traced MiB':>12}{'peak RSS MiB':>14}")
    for name, r in results.items():
        print(f"{name:<12}{r['frames']:>8}{r['windows']:>9}{r['seconds']:>9.1f}{r['traced_mib']:>12.1f}"
              f"{r['rss_mib']:>14.1f}")
    a, b = results["short"], results["10x longer"]
    print(f"\n{'ratio (longer / short)':<28}{'measured':>10}{'limit':>8}")
    for key, label in (("rss_mib", "peak RSS"), ("traced_mib", "traced peak")):
        ratio = b[key] / a[key]
        print(f"{label:<28}{ratio:>10.2f}{LIMIT:>8.2f}  {'ok' if ratio < LIMIT else 'OVER'}")


if __name__ == "__main__":
    main()
