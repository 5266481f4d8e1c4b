"""Training speed of the models a run trains: forward + backward + AdamW clips/s and the share of the machine's
matmul rate, one torch thread per process (as the rules run jobs side by side on a CPU).

    python benchmarks/models.py                   # the demo's model, every model of the enterface05 preset, then the
                                                  # video-pretrained baselines at their published size
    python benchmarks/models.py --quick           # the demo's model and the preset's res_att only
    python benchmarks/models.py --only published  # one group: demo, enterface05 or published
    python benchmarks/models.py --threads 2       # another thread count (said in the output)
    python benchmarks/models.py --channels-last   # channels_last_3d, as on CUDA (on the CPU training runs plain)

The models and their keyword arguments are the resolved configs of the demo and the enterface05 preset
(the paper's setup, e.g. res_att at width 64 with [3, 4, 6, 3] blocks), so the figures follow the configs; the
video-pretrained baselines (r3d_18, mc3_18, r2plus1d_18 on 16x112x112, p3d199 and res_att on its trunk on 16x160x160,
the size of their published weights) follow. FLOPs
per step are counted with FlopCounterMode on the meta device (2 per multiply-add, backward included, the
optimizer's update not). The reference is the best of 5 square fp32 matmuls (1024 x 1024) with the same threads,
taken just before and just after each model; the share is against their mean, and both are printed, so a load
change during a model shows. Limits: the demo model >= 12.5 clips/s (5 epochs of 150 clips in a minute); every
paper-size model >= 30% of the matmul rate (FLOP-bound, as a conv net should be).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench import Table, matmul_gflops, resolved_config  # noqa: E402

from video_emotion.models import create_model, optimize_for_device  # noqa: E402
from video_emotion.models.device import uses_channels_last  # noqa: E402
from video_emotion.models.table import PUBLISHED_CLIPS, count_flops  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NUM_CLASSES = 6
DEMO_LIMIT = 150 * 5 / 60
SHARE_LIMIT = 0.30


def configured_models(quick: bool) -> list[tuple[str, str, dict, int, tuple[int, int, int]]]:
    """(label, architecture, kwargs, batch, clip T x H x W) of the demo's and the enterface05 preset's models."""
    rows = []
    for label, batch, preset in (("demo", 16, "demo"), ("enterface05", 2, "enterface05")):
        config = resolved_config(preset)
        size, clip_len = config["faces"]["crop_size"], config["cache"]["clip_len"]
        names = ["res_att"] if quick and label == "enterface05" else config["models"]
        rows += [(label, config["specs"][m]["arch"], config["specs"][m]["kwargs"], batch, (clip_len, size, size))
                 for m in names]
    if not quick:  # the video-pretrained baselines as their files have them
        rows += [("published", name, kwargs, 2, PUBLISHED_CLIPS.get(kwargs.get("trunk", name), (16, 112, 112)))
                 for name, kwargs in (("r3d_18", {}), ("mc3_18", {}), ("r2plus1d_18", {}), ("p3d199", {}),
                                      ("res_att", {"trunk": "p3d199"}))]
    return rows


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_rate(name: str, kwargs: dict, batch: int, clip, device: torch.device, *, bf16: bool = False,
              channels_last: bool | None = None, compile: bool = False, min_seconds: float = 5.0, min_steps: int = 2,
              x: torch.Tensor | None = None) -> dict[str, float]:
    """Clips per second of forward + backward + AdamW steps, per wall second (``wall``) and per CPU second of this
    process (``cpu``; on a shared machine the work done, whatever the load): medians of the steps timed for
    ``min_seconds`` (at least ``min_steps``), after two warm-up steps (compilation, autotuning). ``channels_last``:
    model and input in channels_last_3d or not; by default as training lays them out on ``device``."""
    torch.manual_seed(0)
    model = optimize_for_device(create_model(name, NUM_CLASSES, **kwargs), device, channels_last=channels_last,
                                compile=compile)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    if x is None:
        x = torch.randn(batch, 3, *clip, device=device)
        if uses_channels_last(device) if channels_last is None else channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)  # as normalize_clip gives it
    y = torch.randint(0, NUM_CLASSES, (batch,), device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    times: list[float] = []
    cpu: list[float] = []
    while len(times) < min_steps or sum(times) < min_seconds:
        sync(device)
        t, c = time.perf_counter(), time.process_time()
        step()
        sync(device)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {"wall": batch / statistics.median(times), "cpu": batch / statistics.median(cpu)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the demo model and the preset's res_att only")
    parser.add_argument("--only", choices=("demo", "enterface05", "published"), help="one group of models only")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: one per process)")
    parser.add_argument("--seconds", type=float, default=5.0, help="time each model at least this long")
    parser.add_argument("--channels-last", action="store_true",
                        help="models and inputs in channels_last_3d (training uses it on CUDA, the plain layout here)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    layout = "channels_last_3d" if args.channels_last else "plain layout (as training on the CPU)"
    table = Table("models", f"CPU fp32, {layout}, {args.threads} torch thread(s); reference: best of 5 fp32 1024x1024 "
                            "matmuls, same threads, before and after each model; rates per CPU second of this "
                            "process (the machine is shared), wall rates in the notes")
    for label, name, kwargs, batch, clip in configured_models(args.quick):
        if args.only and label != args.only:
            continue
        before = matmul_gflops()
        rate = step_rate(name, kwargs, batch, clip, device, min_seconds=args.seconds,
                         channels_last=args.channels_last or None)
        after = matmul_gflops()
        clips_s = rate["cpu"]
        _, flops = count_flops(name, kwargs, batch, clip, backward=True, num_classes=NUM_CLASSES)
        gflop_clip = flops / batch / 1e9
        achieved = gflop_clip * clips_s
        share = achieved / ((before + after) / 2)
        note = (f"batch {batch}, {'x'.join(map(str, clip))}, {gflop_clip:.1f} GFLOP/clip, {achieved:.1f} GFLOP per "
                f"CPU s; matmul {before:.1f} -> {after:.1f}; {rate['wall']:.2f} clips per wall s")
        if label == "demo":
            table.row(f"{label} {name} clips/s", clips_s, f">= {DEMO_LIMIT:.1f}", ok=clips_s >= DEMO_LIMIT, note=note)
            table.row(f"{label} {name} share of matmul", share)
        else:
            name += "".join(f" ({k} {v})" for k, v in kwargs.items()) if label == "published" else ""
            table.row(f"{label} {name} clips/s", clips_s, note=note)
            table.row(f"{label} {name} share of matmul", share, f">= {SHARE_LIMIT}", ok=share >= SHARE_LIMIT)
        print(table.rows[-2].name, table.rows[-2].measured, table.rows[-1].measured, note, flush=True)
    table.extra(threads=args.threads, device="cpu", layout=layout, reference="fp32 1024x1024 matmul, best of 5, before+after")
    sys.exit(table.finish())


if __name__ == "__main__":
    main()
