"""Chunk shape and compression of the clip cache's ``frames``, measured: size, write time, random clip reads.

Frames are face-like (a photographed face with head motion, lighting drift and noise: random noise would not
compress, flat colour too well), or the real cache with ``--cache results/cache/clips.h5``. Each layout is read
the way ClipDataset reads it: a fresh file handle with a chunk cache sized to one clip, random clip starts.

    python benchmarks/cache_layout.py [--videos 70] [--frames 20] [--size 64] [--clip-len 8] [--cache PATH]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from skimage import data, transform


def face_videos(n_videos: int, n_frames: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """``n_videos`` uint8 arrays (n_frames, size, size, 3) cut from scikit-image's astronaut portrait."""
    face = data.astronaut()[20:220, 150:350].astype(np.float32) / 255  # 200 x 200 around the face
    rng = np.random.default_rng(seed)
    videos = []
    for _ in range(n_videos):
        dx, dy, rot, gain = rng.normal(0, 1, 4)
        frames = []
        for t in np.linspace(0, 1, n_frames):
            tf = transform.SimilarityTransform(scale=200 / size, rotation=0.05 * rot * t,
                                               translation=(4 * dx * t, 4 * dy * t))
            img = transform.warp(face, tf, output_shape=(size, size), mode="edge")
            img = img * (1 + 0.05 * gain * t) + rng.normal(0, 0.01, img.shape)
            frames.append(np.clip(img * 255, 0, 255).astype(np.uint8))
        videos.append(np.stack(frames))
    return videos


def read_rate(path: Path, clip_len: int, lengths: np.ndarray, starts: np.ndarray, n: int = 400) -> float:
    """Random clips per second read with h5py, chunk cache sized to one clip read."""
    with h5py.File(path, "r") as f:
        chunk = f["frames"].chunks[0]
        row = int(np.prod(f["frames"].shape[1:]))
    rdcc = (math.ceil(max(clip_len, chunk) / chunk) + 1) * chunk * row
    rng = np.random.default_rng(0)
    videos = rng.integers(0, len(lengths), n)
    offsets = [int(rng.integers(0, max(lengths[v] - clip_len, 0) + 1)) for v in videos]
    with h5py.File(path, "r", rdcc_nbytes=rdcc) as f:
        frames = f["frames"]
        t0 = time.perf_counter()
        for v, o in zip(videos, offsets, strict=True):
            s = int(starts[v]) + o
            frames[s:s + clip_len]
        return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=70)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--clip-len", type=int, default=8)
    ap.add_argument("--cache", type=Path, help="take the frames of an existing clip cache instead")
    args = ap.parse_args()

    if args.cache:
        with h5py.File(args.cache, "r") as f:
            frames = f["frames"][()]
            lengths = f["index/length"][()]
    else:
        videos = face_videos(args.videos, args.frames, args.size)
        frames, lengths = np.concatenate(videos), np.array([len(v) for v in videos])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    clip_len = args.clip_len
    row_kib = frames[0].nbytes / 1024
    print(f"{len(lengths)} videos, {len(frames)} frames of {frames.shape[1:]}, clip {clip_len} frames "
          f"({clip_len * row_kib:.0f} KiB); h5py chunks should be 10 KiB - 1 MiB")
    print(f"{'compression':>11} {'chunk (frames)':>14} {'chunk KiB':>9} {'MiB':>7} {'write s':>7} {'clips/s':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for compression in (None, "lzf", "gzip"):
            for chunk in (1, clip_len // 2, clip_len, 2 * clip_len):
                path = Path(tmp) / f"{compression}_{chunk}.h5"
                t0 = time.perf_counter()
                with h5py.File(path, "w") as f:
                    f.create_dataset("frames", data=frames, chunks=(chunk, *frames.shape[1:]),
                                     compression=compression)
                write = time.perf_counter() - t0
                rate = read_rate(path, clip_len, lengths, starts)
                print(f"{compression or 'none':>11} {chunk:>14} {chunk * row_kib:>9.0f} "
                      f"{path.stat().st_size / 2**20:>7.1f} {write:>7.2f} {rate:>8.0f}")
                path.unlink()
    print("chosen (the cache defaults): no compression, chunk = one clip: the fastest reads; at most two chunks "
          "per random clip; compression saves little on noisy face crops and costs decode time in every worker")


if __name__ == "__main__":
    main()
