"""Bytes on disk: per video for frames, faces and the clip cache, per model for checkpoints, at the demo's and
eNTERFACE'05's size, against the bytes of the arrays they hold.

    python benchmarks/storage.py [--videos 3] [--seconds 3] [--sizes demo enterface] [--no-checkpoints]

Frames, faces and cache files are made by the stages' own code on generated face videos (a real face photo, found by
the real detector): ``extract_many``, ``process_shard`` (dlib), ``build_cache``. Bytes on disk are allocated blocks
(``st_blocks``), as ``du`` counts them. Checkpoints: a short real training run writes best.pt and last.pt for the
demo's model; for the enterface05 preset's models (paper width), the weights alone and the full state (weights +
AdamW moments) are saved as training saves them, and the preset's total (6 models x 5 folds) follows.
Limits: faces HDF5 <= 1.2x its arrays; clip cache <= 1.1x its frames; best.pt <= 1.1x the weights.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench import Table, make_video, resolved_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FACES_LIMIT, CACHE_LIMIT, BEST_LIMIT = 1.2, 1.1, 1.1
SETTINGS = {  # size: (frames section, faces crop size, clip length), from config.yaml and the enterface05 preset
    "demo": ({"fps": 10, "height": 240}, 64, 8),
    "enterface": ({"fps": 10, "height": 240}, 112, 16),
}


def disk_bytes(path: Path) -> int:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_blocks * 512 for p in files)


def h5_array_bytes(path: Path) -> int:
    total = 0

    def visit(_, obj) -> None:
        nonlocal total
        if isinstance(obj, h5py.Dataset):
            total += obj.size * obj.dtype.itemsize

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return total


def stage_files(table: Table, size: str, n: int, seconds: float, tmp: Path) -> None:
    """Frames, faces and cache of ``n`` videos at ``size``, made by the stages' code."""
    import pandas as pd

    from video_emotion.cache import build_cache
    from video_emotion.faces import process_shard
    from video_emotion.frames import extract_many
    from video_emotion.io import write_parquet

    frames_cfg, crop, clip_len = SETTINGS[size]
    root = tmp / size
    root.mkdir()
    videos = [(make_video(root / f"v{i}.avi", size, seconds, seed=i), f"v{i}") for i in range(n)]
    metas = extract_many(videos, root / "frames", frames_cfg["fps"], frames_cfg["height"], workers=2)
    ok = [m for m in metas if m["status"] == "ok"]
    frame_arrays = sum(m["n_frames"] * m["width"] * m["height"] * 3 for m in ok)
    files = sum(1 for _ in (root / "frames").rglob("*") if _.is_file())
    on_disk = disk_bytes(root / "frames")
    table.row(f"[{size}] frames per video", on_disk / n / 1e3, unit="kB",
              note=f"{files / n:.0f} files; {on_disk / frame_arrays:.3f}x the decoded RGB frames "
                   f"({metas[0]['width']}x{metas[0]['height']}, {metas[0]['n_frames']} frames)")

    faces = root / "faces" / "s0.h5"
    faces.parent.mkdir()
    qc = process_shard([(vid, root / "frames" / vid) for _, vid in videos], faces, root / "faces" / "s0_qc.parquet",
                       {"backend": "dlib", "crop_size": crop}, progress=False)
    kept = int((qc["status"] == "ok").sum())
    ratio = disk_bytes(faces) / h5_array_bytes(faces)
    table.row(f"[{size}] faces HDF5 per video", disk_bytes(faces) / max(kept, 1) / 1e3, unit="kB",
              note=f"{kept} of {n} videos kept, crops {crop} px")
    table.row(f"[{size}] faces HDF5 / its arrays", ratio, f"<= {FACES_LIMIT}", ok=ratio <= FACES_LIMIT)

    manifest = pd.DataFrame({"video_id": [vid for _, vid in videos], "path": [p.name for p, _ in videos],
                             "subject": "0", "label": pd.Categorical(["anger"] * n, categories=["anger", "fear"]),
                             "fold": 0, "shard": "s0"})
    write_parquet(manifest, root / "manifest.parquet")
    cache = root / "cache" / "clips.h5"
    build_cache(root / "manifest.parquet", [faces], cache, {"clip_len": clip_len})
    with h5py.File(cache, "r") as f:
        frames_bytes = f["frames"].size
    ratio = disk_bytes(cache) / frames_bytes
    table.row(f"[{size}] clip cache per video", disk_bytes(cache) / max(kept, 1) / 1e3, unit="kB")
    table.row(f"[{size}] clip cache / its frames", ratio, f"<= {CACHE_LIMIT}", ok=ratio <= CACHE_LIMIT)


def saved_bytes(obj) -> int:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.tell()


def full_state(model) -> dict:
    """Weights and AdamW state as training holds them after a step (moments for every parameter)."""
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    return {"model": model.state_dict(), "optimizer": opt.state_dict()}


def checkpoints(table: Table, tmp: Path) -> None:
    import torch

    from video_emotion.models import create_model

    # The demo model, trained for real: best.pt and last.pt as train() writes them.
    sys.path.insert(0, str(REPO / "tests"))
    from test_cache import make_cache

    from video_emotion.train import train

    kwargs = resolved_config("demo")["specs"]["res_att"]["kwargs"]
    cache = make_cache(tmp / "ckpt", clip_len=4, subjects=4, n_frames=8)
    out = tmp / "ckpt" / "run"
    torch.set_num_threads(1)
    train(cache, "res_att", 1, out, {"train": {"epochs": 1, "batch_size": 8, "clips_per_video": 1},
                                     "model_kwargs": kwargs, "folds": {"val_subjects": 1}})
    weights = saved_bytes(create_model("res_att", 6, **kwargs).state_dict())
    best, last = disk_bytes(out / "best.pt"), disk_bytes(out / "last.pt")
    table.row("[demo] res_att best.pt / its weights", best / weights, f"<= {BEST_LIMIT}", ok=best / weights <= BEST_LIMIT,
              note=f"best.pt {best / 1e6:.2f} MB, last.pt {last / 1e6:.2f} MB, weights {weights / 1e6:.2f} MB")

    preset = resolved_config("enterface05")
    folds = len(preset["folds"]["fixed"])
    total_weights = total_full = 0
    for name in preset["models"]:
        model = create_model(preset["specs"][name]["arch"], 6, **preset["specs"][name]["kwargs"])
        w = saved_bytes(model.state_dict())
        full = saved_bytes(full_state(model))
        total_weights += w * folds
        total_full += full * folds
        table.row(f"[enterface05] {name}: weights / full state", f"{w / 1e6:.0f} / {full / 1e6:.0f}", unit="MB")
        del model
    table.row("[enterface05] preset checkpoints: best.pt and last.pt both full state",
              2 * total_full / 1e9, unit="GB", note=f"{len(preset['models'])} models x {folds} folds")
    table.row("[enterface05] preset checkpoints: best.pt weights, last.pt full state",
              (total_weights + total_full) / 1e9, unit="GB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--sizes", nargs="+", default=["demo", "enterface"], choices=list(SETTINGS))
    parser.add_argument("--no-checkpoints", action="store_true")
    args = parser.parse_args()
    table = Table("storage", f"bytes on disk (allocated blocks); {args.videos} generated videos of "
                             f"{args.seconds:g} s per size")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            stage_files(table, size, args.videos, args.seconds, Path(tmp))
        if not args.no_checkpoints:
            checkpoints(table, Path(tmp))
    table.extra(videos=args.videos, seconds=args.seconds)
    sys.exit(table.finish())


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
