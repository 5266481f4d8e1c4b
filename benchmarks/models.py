"""Training speed of every registered model: forward+backward clips/s and the share of the machine's matmul rate.

    python benchmarks/models.py            # all models (a few minutes on 2 CPU cores)
    python benchmarks/models.py --quick    # the demo model and res_att only

FLOPs per step are counted with torch.utils.flop_counter.FlopCounterMode on the meta device (2 FLOPs per
multiply-add, backward included, the optimizer's elementwise update not); the reference rate is the best of a few square fp32 matmuls measured in the same run. Models run in
channels_last_3d (``optimize_for_device``). On a CUDA device the same is measured in bf16 autocast against the bf16
matmul rate. Sizes: the demo model at batch 16 on 8x64x64 clips, and the paper-width models (width 64, one block
per stage for the P3D family; C3D as published) at batch 8 on 16x112x112 clips.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import torch

from video_emotion.models import create_model, list_models, optimize_for_device
from video_emotion.models.table import count_flops

NUM_CLASSES = 6
DEMO = {"width": 8, "layers": (1, 1, 1, 1)}
PAPER_WIDTH = {"width": 64, "layers": (1, 1, 1, 1)}
DEMO_LIMIT = 150 * 5 / 60  # clips/s to train 5 epochs of 150 clips in a minute
RES_ATT_TARGET = 0.30


def cases(quick: bool) -> list[tuple[str, str, dict, int, tuple[int, int, int]]]:
    """(label, model, kwargs, batch, clip T x H x W)."""
    rows = [("demo", "res_att", DEMO, 16, (8, 64, 64))]
    names = ["res_att"] if quick else list_models()
    for name in names:
        rows.append(("paper-width", name, {} if name == "c3d" else PAPER_WIDTH, 8, (16, 112, 112)))
    return rows


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device, dtype: torch.dtype, n: int) -> float:
    """Best FLOP/s of an n x n matmul."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(5):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def measure(name: str, kwargs: dict, batch: int, clip, device: torch.device, bf16: bool, min_seconds: float):
    """(GFLOP per step, clips/s) of forward+backward+AdamW steps: the median of steps timed for min_seconds."""
    torch.manual_seed(0)
    model = optimize_for_device(create_model(name, NUM_CLASSES, **kwargs), device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, *clip, device=device)
    y = torch.randint(0, NUM_CLASSES, (batch,), device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    step()  # warm-up
    times: list[float] = []
    while len(times) < 3 or sum(times) < min_seconds:
        sync(device)
        t = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t)
    _, flops = count_flops(name, kwargs, batch, clip, backward=True, num_classes=NUM_CLASSES)
    return flops / 1e9, batch / statistics.median(times)


def run(device: torch.device, bf16: bool, quick: bool, min_seconds: float) -> None:
    dtype = torch.bfloat16 if bf16 else torch.float32
    n = 8192 if device.type == "cuda" else 2048
    print(f"\n{device.type}, {'bf16 autocast' if bf16 else 'fp32'}, {torch.get_num_threads()} threads; "
          f"matmul: best {n}x{n} {'bf16' if bf16 else 'fp32'} matmul rate, measured just before each model")
    header = f"{'size':<12}{'model':<10}{'batch':>6}{'clip':>11}{'GFLOP/step':>12}{'clips/s':>9}" \
             f"{'GFLOP/s':>9}{'matmul':>8}{'share':>7}  limit"
    print(header)
    print("-" * (len(header) + 24))
    for label, name, kwargs, batch, clip in cases(quick):
        rate = matmul_rate(device, dtype, n) / 1e9  # the machine is shared: measure next to each model
        gflop, clips_s = measure(name, kwargs, batch, clip, device, bf16, min_seconds)
        achieved = gflop * clips_s / batch
        share = achieved / rate
        if label == "demo":
            limit = f">= {DEMO_LIMIT:.1f} clips/s: {'ok' if clips_s >= DEMO_LIMIT else 'MISSED'}"
        elif name == "res_att":
            limit = f">= {RES_ATT_TARGET:.0%} of matmul: {'ok' if share >= RES_ATT_TARGET else 'MISSED'}"
        else:
            limit = "-"
        print(f"{label:<12}{name:<10}{batch:>6}{'x'.join(map(str, clip)):>11}{gflop:>12.1f}{clips_s:>9.1f}"
              f"{achieved:>9.1f}{rate:>8.0f}{share:>7.0%}  {limit}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the demo model and res_att only")
    parser.add_argument("--seconds", type=float, default=5.0, help="time each model at least this long (median step)")
    args = parser.parse_args()
    run(torch.device("cpu"), bf16=False, quick=args.quick, min_seconds=args.seconds)
    if torch.cuda.is_available():
        run(torch.device("cuda"), bf16=True, quick=args.quick, min_seconds=args.seconds)


if __name__ == "__main__":
    main()
