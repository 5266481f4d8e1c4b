"""Does the clip loader keep up with training? Loader clips/s (0, 1, 2 workers) vs the demo model's step rate.

Measures, on the demo's shapes (70 training videos of 20 frames, 8 x 64 x 64 clips, batch 16):
  raw h5py    random clip reads of the same bytes, no decoding or augmentation (the ceiling);
  loader      ClipDataset(train=True) through a DataLoader: read, random crop + resize, flip, draw the jitter;
              items are uint8 clips (a quarter of float32's bytes to move between processes);
  step        normalize_clip on the uint8 batch (jitter + normalisation, where training runs it), then res_att (the
              demo size) forward + backward + AdamW step on the CPU;
and prints the limit beside each figure (loader >= 10x step rate), then an on-paper estimate of the loader rate
one H200 needs for the paper-size model.

    python benchmarks/loader.py [--cache results/cache/clips.h5] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).parent))
from cache_layout import face_videos, read_rate  # noqa: E402

from video_emotion.cache import ClipDataset, normalize_clip, read_index  # noqa: E402
from video_emotion.models import create_model  # noqa: E402

DEMO_MODEL = {"width": 8, "layers": (1, 1, 1, 1)}
PAPER_MODEL = {}  # the P3D-ResNet-50 trunk with attention: the model's defaults
PAPER_CLIP = (16, 112, 112)


def write_cache(path: Path, n_videos: int, n_frames: int, size: int, clip_len: int) -> None:
    """A clip cache in build_cache's layout, from face-like frames."""
    videos = face_videos(n_videos, n_frames, size)
    lengths = np.array([len(v) for v in videos])
    with h5py.File(path, "w") as f:
        f.create_dataset("frames", data=np.concatenate(videos), chunks=(clip_len, size, size, 3))
        g = f.create_group("index")
        g["video_id"] = np.array([f"v{i}" for i in range(n_videos)], dtype=h5py.string_dtype())
        g["label"] = np.arange(n_videos) % 6
        g["subject"] = np.array([str(i % 7) for i in range(n_videos)], dtype=h5py.string_dtype())
        g["fold"] = np.arange(n_videos) % 3
        g["start"] = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        g["length"] = lengths
        f.attrs.update(classes=json.dumps(["a", "b", "c", "d", "e", "f"]), crop_size=size, clip_len=clip_len,
                       chunk_frames=clip_len, compression="None")


def loader_rate(cache: Path, clip_len: int, workers: int, batch: int, epochs: int = 3) -> float:
    """Steady-state clips/s: workers kept alive and warmed up by one epoch (start-up is ~1 s per worker)."""
    ds = ClipDataset(cache, clip_len=clip_len, train=True, clips_per_video=2)
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=workers > 0)
    for _ in loader:
        pass
    n, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for x, _, _, _ in loader:
            n += len(x)
    return n / (time.perf_counter() - t0)


def step_rate(model_kwargs: dict, clip: tuple[int, int, int], batch: int, steps: int = 5) -> float:
    torch.manual_seed(0)
    model = create_model("res_att", 6, **model_kwargs)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    frames = torch.randint(0, 256, (batch, *clip, 3), dtype=torch.uint8)
    gain, bias = 1 + 0.1 * torch.rand(batch, dtype=torch.float64), 0.1 * torch.rand(batch, dtype=torch.float64)
    y = torch.randint(0, 6, (batch,))
    for i in range(steps + 1):
        if i == 1:
            t0 = time.perf_counter()  # the first step warms up
        loss = torch.nn.functional.cross_entropy(model(normalize_clip(frames, gain, bias)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batch * steps / (time.perf_counter() - t0)


def train_flops_per_clip(model_kwargs: dict, clip: tuple[int, int, int]) -> float:
    """Forward + backward FLOPs of one clip (3x the forward FLOPs, counted by torch)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = create_model("res_att", 6, **model_kwargs).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, *clip))
    return 3.0 * counter.get_total_flops()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, help="an existing clip cache (default: a demo-size one made here)")
    ap.add_argument("--clip-len", type=int, default=8)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads for the step")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache
        if cache is None:
            cache = Path(tmp) / "clips.h5"
            write_cache(cache, 70, 20, 64, args.clip_len)
        index, attrs = read_index(cache)
        size = int(attrs["crop_size"])
        raw = read_rate(cache, args.clip_len, index["length"].to_numpy(), index["start"].to_numpy(), n=2000)
        loaders = {w: loader_rate(cache, args.clip_len, w, args.batch) for w in (0, 1, 2)}
    step = step_rate(DEMO_MODEL, (args.clip_len, size, size), args.batch)

    print(f"{len(index)} videos, clips {args.clip_len}x{size}x{size}, batch {args.batch}, "
          f"{args.threads} torch thread(s) for the step")
    print(f"{'what':<28} {'clips/s':>9} {'limit':>22} {'ok':>3}")
    print(f"{'demo model train step':<28} {step:>9.1f} {'':>22}")
    print(f"{'raw h5py clip reads':<28} {raw:>9.0f} {'>= loader':>22} {'yes' if raw >= max(loaders.values()) else 'NO':>3}")
    for w, rate in loaders.items():
        ok = "yes" if rate >= 10 * step else "NO"
        print(f"{f'loader, {w} worker(s)':<28} {rate:>9.0f} {f'>= 10 x step = {10 * step:.0f}':>22} {ok:>3}")

    # On paper: the paper-size model on one H200.
    flops = train_flops_per_clip(PAPER_MODEL, PAPER_CLIP)
    peak, mfu = 989e12, 0.35  # H200 dense bf16 tensor-core peak; a fair utilisation for 3D convolutions
    gpu = peak * mfu / flops
    clip_mb = math.prod(PAPER_CLIP) * 3 / 1e6
    per_worker = loaders[0]  # one process' read + crop/flip rate at demo size; scale by pixels for 112 x 112
    per_worker_paper = per_worker * (args.clip_len * size * size) / math.prod(PAPER_CLIP)
    print(f"\nOn paper, one H200, paper-size res_att (P3D-ResNet-50 trunk + attention), clips {PAPER_CLIP}:")
    print(f"  {flops / 1e9:.0f} GFLOP per training clip (3x forward); at {mfu:.0%} of {peak / 1e12:.0f} TFLOP/s "
          f"bf16 -> about {gpu:.0f} clips/s")
    print(f"  the loader must deliver >= {gpu:.0f} clips/s = {gpu * clip_mb:.0f} MB/s of uint8 frames from the cache")
    print(f"  one CPU loader process here does ~{per_worker_paper:.0f} paper-size clips/s (scaled by pixels) -> "
          f"about {math.ceil(gpu / max(per_worker_paper, 1e-9))} workers")
    print("  jitter + normalisation already run on the training device (normalize_clip on the uint8 batch); "
          "crop/flip could follow")


if __name__ == "__main__":
    main()
