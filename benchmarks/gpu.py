"""One GPU, under 5 minutes: bf16 training step rate of every model of the enterface05 preset, the device-resident data
path's rate, and peak memory, in one table.

Each model plain and in channels_last_3d; res_att also channels_last_3d + torch.compile (every model with
--compile-all: compiling costs about a minute per model).

    python benchmarks/gpu.py [--models res_att c3d] [--batch 16] [--seconds 3] [--no-compile | --compile-all]

Paper-size clips (16 x 112 x 112), the preset's model widths, bf16 autocast, AdamW. The data path: a clip cache of
paper-size face-like frames held on the GPU (device_data.DeviceLoader) with normalisation, as train() runs it with
``data: auto``; its rate is compared with the fastest model's step rate (limit: >= 2x, so the GPU never waits for
data). The step rate is compared with what 35% of the H200's dense bf16 peak would give (a note, no limit: other
GPUs differ). On a machine without CUDA it says so and exits 0.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench import Table, resolved_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
H200_BF16 = 989e12
DATA_FACTOR = 2.0


def data_rate(device: torch.device, batch: int, clip_len: int, size: int, seconds: float) -> tuple[float, int]:
    """Clips/s of the device path (gather + normalisation on the GPU) and the bytes of frames it holds."""
    from loader import write_cache

    from video_emotion.clips import ClipDataset, normalize_clip
    from video_emotion.device_data import DeviceClips, DeviceLoader

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "clips.h5"
        write_cache(cache, 60, 32, size, clip_len)
        ds = ClipDataset(cache, clip_len=clip_len, train=True, clips_per_video=8)
        clips = DeviceClips(ds, device)
    loader = DeviceLoader(clips, batch, drop_last=True)
    n, epoch, t0 = 0, 0, time.perf_counter()
    while n == 0 or time.perf_counter() - t0 < seconds:
        ds.set_epoch(epoch)
        for frames, _, _, jitter in loader:
            x = normalize_clip(frames, jitter[:, 0], jitter[:, 1])
            n += len(x)
        epoch += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return n / (time.perf_counter() - t0), clips.nbytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", help="default: every model of the enterface05 preset")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3.0, help="time each variant at least this long")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    parser.add_argument("--compile-all", action="store_true",
                        help="torch.compile every model (default: res_att only; compiling costs ~1 min per model)")
    parser.add_argument("--device", default="cuda", help="cpu: check the script itself on a machine without a GPU")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA device here (torch.cuda.is_available() is False); nothing measured. "
              "Run it on a machine with a GPU.")
        return
    from models import step_rate

    from video_emotion.models.table import count_flops

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    preset = resolved_config("enterface05")
    size, clip_len = preset["faces"]["crop_size"], preset["cache"]["clip_len"]
    clip = (clip_len, size, size)
    table = Table("gpu", f"{torch.cuda.get_device_name(device) if cuda else device}; bf16 autocast, AdamW, batch {args.batch}, clips "
                         f"{'x'.join(map(str, clip))}; median step over >= {args.seconds:g} s after 2 warm-up steps")
    variants = [("plain", False, False), ("channels_last_3d", True, False)]
    if not args.no_compile:
        variants.append(("channels_last_3d + compile", True, True))
    best = 0.0
    start = time.perf_counter()
    for name in args.models or preset["models"]:
        kwargs = preset["specs"][name]["kwargs"] if name in preset["specs"] else {}
        _, flops = count_flops(name, kwargs, 1, clip, backward=True)
        for label, channels_last, compile_ in variants:
            if compile_ and name != "res_att" and not args.compile_all:
                continue
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            try:
                rate = step_rate(name, kwargs, args.batch, clip, device, bf16=True, channels_last=channels_last,
                                 compile=compile_, min_seconds=args.seconds)["wall"]
            except Exception as err:  # a compiler tool chain missing, out of memory: say so, go on
                table.row(f"{name}, {label}", "failed", note=f"{type(err).__name__}: {str(err).splitlines()[0][:80]}")
                continue
            peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else float("nan")
            best = max(best, rate)
            table.row(f"{name}, {label}", rate, unit="clips/s",
                      note=f"{rate * flops / 1e12:.0f} TFLOP/s = {rate * flops / H200_BF16:.0%} of H200 bf16 peak; "
                           f"peak memory {peak:.1f} GiB")
    rate, held = data_rate(device, args.batch, clip_len, size, args.seconds)
    table.row("device data path (gather + normalise)", rate, f">= {DATA_FACTOR:g} x fastest step",
              ok=rate >= DATA_FACTOR * best, unit="clips/s", note=f"{held / 2**20:.0f} MiB of frames held")
    table.row("wall time of this script", time.perf_counter() - start, "<= 300", ok=time.perf_counter() - start <= 300,
              unit="s")
    table.extra(batch=args.batch, clip=clip, device=torch.cuda.get_device_name(device) if cuda else str(device))
    sys.exit(table.finish())


if __name__ == "__main__":
    main()
