"""Peak memory of ``predict`` on a demo video and on one 10x longer: it must not grow with the video.

Each run is a fresh process. Two checks that a regression (holding the frames) would fail:
- the traced peak (tracemalloc, which sees numpy's buffers: what predict allocates after start-up) of the longer
  video within 1.5x of the short one's;
- the peak resident set's growth from the short to the longer video under half the bytes of the longer video's
  decoded frames. (The ratio of the two resident sets could not fail: the ~400 MiB of imports and model dwarf a
  whole video.) Usage: ``python benchmarks/predict.py [--seconds 3]``.
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

sys.path.insert(0, str(Path(__file__).parent))
from bench import Table  # noqa: E402

LIMIT = 1.5  # longer / shorter traced peak
GROWTH_LIMIT = 0.5  # resident set growth / the longer video's decoded frames


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
    from video_emotion.frames import probe

    info = probe(video)
    return {"frames": int(timeline.attrs["n_frames"]), "windows": len(timeline), "seconds": seconds,
            "video_bytes": int(timeline.attrs["n_frames"]) * info["width"] * info["height"] * 3,  # as decoded
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
    table = Table("predict", f"a demo video of {args.seconds:g} s and one 10x longer, each in a fresh process")
    for name, r in results.items():
        table.row(f"{name}: seconds", r["seconds"], note=f"{r['frames']} frames, {r['windows']} windows")
        table.row(f"{name}: traced peak", r["traced_mib"], unit="MiB", note=f"peak RSS {r['rss_mib']:.1f} MiB")
    a, b = results["short"], results["10x longer"]
    ratio = b["traced_mib"] / a["traced_mib"]
    table.row("traced peak, longer / short", ratio, f"<= {LIMIT}", ok=ratio <= LIMIT)
    growth = (b["rss_mib"] - a["rss_mib"]) * 2**20 / b["video_bytes"]
    table.row("peak RSS growth / the longer video's decoded frames", growth, f"< {GROWTH_LIMIT}",
              ok=growth < GROWTH_LIMIT, note=f"{b['rss_mib'] - a['rss_mib']:.1f} MiB of "
                                             f"{b['video_bytes'] / 2**20:.0f} MiB")
    sys.exit(table.finish())


if __name__ == "__main__":
    main()
