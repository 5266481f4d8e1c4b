"""Does the data path keep up with training? Clips/s of both data paths against the model's step rate, at the demo's
size and the paper's (16 x 112 x 112 clips), on this CPU; then, on paper, for one H200.

  raw h5py     random clip reads of the same bytes, nothing else (the ceiling of the loader path)
  loader       ClipDataset(train=True) through a DataLoader (0, 1, 2 workers): read, random crop + resize, flip,
               jitter draw, collate; then normalize_clip on the batch (where training runs it)
  device       the device-resident path (device_data.DeviceLoader): frames held in memory, clips drawn by one
               gather per batch, normalize_clip on the batch; here the "device" is this CPU
  host side    the part of the device path that stays on the CPU with a GPU: ClipDataset.draw for the batch (the
               epoch's seeded draws, drawn once per epoch) and the batch's index arrays, timed per CPU second with
               the frames on torch's meta device (whose shape inference, in Python, stands in for the GPU's launch)
  step         the configured model's forward + backward + AdamW step, one torch thread (benchmarks/models.py)

    python benchmarks/loader.py [--sizes demo paper] [--cache results/cache/clips.h5]

Limits: on this CPU, each data path >= 10x the model's step rate; on paper, the device path's host-side rate
>= 2x the clip rate one H200 needs for the preset's res_att (at 35% of its dense bf16 peak): one host core then
keeps the GPU fed with room for the training loop's own work.
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
from bench import Table, resolved_config  # noqa: E402
from cache_layout import face_videos, read_rate  # noqa: E402
from models import step_rate  # noqa: E402

from video_emotion.cache import read_index  # noqa: E402
from video_emotion.clips import ClipDataset, normalize_clip  # noqa: E402
from video_emotion.device_data import DeviceClips, DeviceLoader  # noqa: E402
from video_emotion.models.table import count_flops  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
H200_BF16, MFU = 989e12, 0.35  # dense bf16 tensor-core peak; a fair utilisation for 3D convolutions
FACTOR = 10
HOST_FACTOR = 2


def sizes() -> dict:
    """size: (videos, frames per video, crop, clip_len, batch, model, model kwargs, step batch) from the configs."""
    demo, preset = resolved_config("demo"), resolved_config("enterface05")
    return {
        "demo": (70, 20, demo["faces"]["crop_size"], demo["cache"]["clip_len"], 16, "res_att",
                 demo["specs"]["res_att"]["kwargs"], 16),
        "paper": (40, 32, preset["faces"]["crop_size"], preset["cache"]["clip_len"], 16, "res_att",
                  preset["specs"]["res_att"]["kwargs"], 2),
    }


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


def device_rate(cache: Path, clip_len: int, batch: int, epochs: int = 2) -> float:
    """Clips/s of the device path on this CPU, normalisation included (the copy into memory not counted)."""
    ds = ClipDataset(cache, clip_len=clip_len, train=True, clips_per_video=2)
    loader = DeviceLoader(DeviceClips(ds, "cpu"), batch, drop_last=True)
    n, t0 = 0, time.perf_counter()
    for epoch in range(epochs):
        ds.set_epoch(epoch)
        for frames, _, _, jitter in loader:
            normalize_clip(frames, jitter[:, 0], jitter[:, 1])
            n += len(frames)
    return n / (time.perf_counter() - t0)


def host_rate(cache: Path, clip_len: int, batch: int, seconds: float = 2.0) -> tuple[float, float]:
    """Clips per CPU second and per wall second of the device path's host-side work alone (draws, index arrays,
    the batch's small tensors): the device path with its frames on torch's meta device, where the gather is shape
    inference only; epoch after epoch (each draws its clips anew) for ``seconds`` of CPU time."""
    ds = ClipDataset(cache, clip_len=clip_len, train=True, clips_per_video=2)
    loader = DeviceLoader(DeviceClips(ds, "meta"), batch, drop_last=True)
    next(iter(loader))  # first-call overheads
    n, epoch, t0, c0 = 0, 0, time.perf_counter(), time.process_time()
    while time.process_time() - c0 < seconds:
        epoch += 1
        ds.set_epoch(epoch)
        for frames, _, _, _ in loader:
            n += len(frames)
    return n / (time.process_time() - c0), n / (time.perf_counter() - t0)


def loader_rate(cache: Path, clip_len: int, workers: int, batch: int, epochs: int = 3) -> float:
    """Steady-state clips/s: workers kept alive and warmed up by one epoch (start-up is ~1 s per worker)."""
    ds = ClipDataset(cache, clip_len=clip_len, train=True, clips_per_video=2)
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=workers > 0)
    for _ in loader:
        pass
    n, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for x, _, _, jitter in loader:
            normalize_clip(x, jitter[:, 0], jitter[:, 1])
            n += len(x)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["demo", "paper"], choices=["demo", "paper"])
    ap.add_argument("--cache", type=Path, help="an existing clip cache instead of the demo-size one made here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    table = Table("loader", "clips/s on this CPU, one torch thread; batch 16; the step: forward + backward + AdamW")
    for size in args.sizes:
        n_videos, n_frames, crop, clip_len, batch, model, kwargs, step_batch = sizes()[size]
        with tempfile.TemporaryDirectory() as tmp:
            cache = args.cache if args.cache and size == "demo" else Path(tmp) / "clips.h5"
            if cache == Path(tmp) / "clips.h5":
                write_cache(cache, n_videos, n_frames, crop, clip_len)
            index, attrs = read_index(cache)
            crop, clip = int(attrs["crop_size"]), (clip_len, int(attrs["crop_size"]), int(attrs["crop_size"]))
            raw = read_rate(cache, clip_len, index["length"].to_numpy(), index["start"].to_numpy(), n=1000)
            loaders = {w: loader_rate(cache, clip_len, w, batch, epochs=2) for w in (0, 1, 2)}
            device = device_rate(cache, clip_len, batch)
            draws, draws_wall = host_rate(cache, clip_len, batch)
        step = step_rate(model, kwargs, step_batch, clip, torch.device("cpu"), min_seconds=3)["wall"]
        what = f"{len(index)} videos, clips {'x'.join(map(str, clip))}"
        table.row(f"[{size}] model step ({model})", step, unit="clips/s", note=f"{what}; batch {step_batch}")
        table.row(f"[{size}] raw h5py clip reads", raw, unit="clips/s")
        for w, rate in loaders.items():
            table.row(f"[{size}] loader, {w} worker(s)", rate, f">= {FACTOR} x step", ok=rate >= FACTOR * step,
                      unit="clips/s")
        table.row(f"[{size}] device path (on this CPU)", device, f">= {FACTOR} x step", ok=device >= FACTOR * step,
                  unit="clips/s")
        table.row(f"[{size}] device path, host-side work alone", draws, unit="clips/s",
                  note=f"per CPU second; {draws_wall:,.0f} per wall s; what stays on the CPU with a GPU: draws, "
                       "index arrays (frames on the meta device)")
        if size == "paper":
            _, flops = count_flops(model, kwargs, 1, clip, backward=True)
            need = H200_BF16 * MFU / flops
            clip_mb = math.prod(clip) * 3 / 1e6
            table.row("[paper] one H200 needs (on paper)", need, unit="clips/s",
                      note=f"{flops / 1e9:.0f} GFLOP per training clip at {MFU:.0%} of {H200_BF16 / 1e12:.0f} "
                           f"TFLOP/s; {need * clip_mb / 1e3:.1f} GB/s of uint8 frames")
            table.row("[paper] H200, device path: host-side rate / need", draws / need, f">= {HOST_FACTOR}",
                      ok=draws >= HOST_FACTOR * need,
                      note="the gather and normalisation run on the GPU (~5 MB of memory traffic per clip)")
            table.row("[paper] H200, loader path: workers needed", math.ceil(need / max(loaders[0], 1e-9)),
                      note=f"at {loaders[0]:.0f} clips/s per loader process (0 workers, here)")
    sys.exit(table.finish())


if __name__ == "__main__":
    main()
