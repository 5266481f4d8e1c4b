"""Faces stage speed, memory and storage against their limits, at eNTERFACE size (dlib backend, CPU, one thread).

    python benchmarks/faces.py [--videos 29] [--seconds 3]

Input: ``--videos`` videos (default 29, one eNTERFACE'05 subject's shard) of 720x576 at 25 fps made from the demo's
real photos (a face about 200 px wide panning slowly), put through the real frames stage at the workflow's defaults
(10 fps, 240 lines of JPEG).

- in-process: the pipeline over the JPEG frames vs the time spent inside the detector and landmark calls it makes
  (same frames, same schedule): CPU time, <= 1.2x;
- the faces JOB as the workflow runs it (`video-emotion faces ...` in a new process: start-up, imports, model
  loading, JPEG reads, HDF5 and QC writing) vs the same detector + landmark CPU time: <= 1.2x;
- the pipeline vs a naive loop that detects and landmarks every frame (first 3 videos): >= 3x faster, landmarks
  within 2 px of it;
- memory: traced peak (tracemalloc: every numpy and Python allocation, model loading excluded) of a faces job on
  one video and on one 10x longer: < 1.5x (a job holding the whole video would read ~10x);
- storage: bytes of the faces HDF5 file / bytes of the arrays it holds: <= 1.2x;
- a dlib faces job does not import torch.

Prints measured, limit and verdict per row, records them in benchmarks/out/faces.jsonl; exits 1 when a limit is
missed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench import Table  # noqa: E402

from video_emotion.faces import FacePipeline  # noqa: E402
from video_emotion.faces.backends import DlibBackend  # noqa: E402
from video_emotion.faces.pipeline import read_frames, source_ratio  # noqa: E402
from video_emotion.frames import extract_frames  # noqa: E402
from video_emotion.io import read_json  # noqa: E402

PARAMS = {"backend": "dlib"}  # every other setting at its default
LIMIT = 1.2  # the stage's CPU over the detector and landmark calls it makes


class Timed:
    """A backend wrapper adding up the CPU time spent in detect, the fallback detector and landmarks."""

    def __init__(self, backend):
        self.backend, self.name, self.versions, self.seconds = backend, backend.name, backend.versions, 0.0
        self.min_face, self.upsample, self.batched = backend.min_face, backend.upsample, False

    def _timed(self, method, *args):
        start = time.process_time()
        out = getattr(self.backend, method)(*args)
        self.seconds += time.process_time() - start
        return out

    def detect(self, image):
        return self._timed("detect", image)

    def detect_fallback(self, image):
        return self._timed("detect_fallback", image)

    def landmarks(self, images, boxes):
        return self._timed("landmarks", images, boxes)


def make_videos(folder: Path, n: int, seconds: float) -> list[tuple[str, Path]]:
    """``n`` eNTERFACE-size videos of a real face, through the frames stage; ``(video_id, frames folder)`` each."""
    from video_emotion.faces.scenes import encode, pan, photos

    items = []
    for i in range(n):
        photo = photos()[i % len(photos())]
        frames, _ = pan(576, 720, [(photo, 190 + 4 * (i % 5), (300 + 10 * (i % 7), 270), 0, False)],
                        n=round(25 * seconds), step=0.6)
        video = encode(folder / f"v{i:02d}.avi", frames)
        extract_frames(video, folder / "frames" / f"v{i:02d}", fps=10, height=240)
        items.append((f"v{i:02d}", folder / "frames" / f"v{i:02d}"))
    return items


def naive(backend: DlibBackend, frames, scale: float) -> np.ndarray:
    """Detect (at the pipeline's detector scale) on every frame, landmark the largest face."""
    import cv2

    out = np.full((len(frames), 68, 2), np.nan, np.float32)
    for i, frame in enumerate(frames):
        boxes, _ = backend.detect(cv2.resize(frame, None, fx=scale, fy=scale))
        if len(boxes):
            box = boxes[np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))] / scale
            out[i] = backend.landmarks([frame], box[None])[0]
    return out


def job(items: list[tuple[str, Path]], folder: Path) -> tuple[float, float, Path]:
    """Run the faces job as the rule does; its ``(wall s, CPU s, h5 path)``."""
    import pandas as pd

    manifest = folder / "manifest.parquet"
    pd.DataFrame({"video_id": [v for v, _ in items], "shard": "s1"}).to_parquet(manifest)
    h5 = folder / "s1.h5"
    args = ["video-emotion", "--threads", "1", "faces", "--manifest", str(manifest), "--shard", "s1",
            "--frames-root", str(folder / "frames"), "--out", str(h5), "--qc", str(folder / "s1_qc.parquet"),
            "--params", json.dumps(PARAMS)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), h5


def storage(h5_path: Path) -> float:
    import h5py

    with h5py.File(h5_path) as h5:
        data = sum(h5[v][name].nbytes for v in h5 for name in h5[v])
    return h5_path.stat().st_size / data


def memory_child(frames_dir: str, repeats: int) -> None:
    """Print the traced peak (MiB) of the faces stage over ``frames_dir`` looped ``repeats`` times (streamed; model
    loading before tracing), and whether torch was imported."""
    import tracemalloc

    from video_emotion.faces import process_shard

    pipeline_backend = DlibBackend()  # noqa: F841  (models loaded, cached for process_shard)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "f"
        folder.mkdir()
        frames = sorted(Path(frames_dir).glob("*.jpg"))
        (folder / "meta.json").write_bytes((Path(frames_dir) / "meta.json").read_bytes())
        for r in range(repeats):
            for k, src in enumerate(frames):
                (folder / f"{r * len(frames) + k + 1:06d}.jpg").symlink_to(src)
        tracemalloc.start()
        process_shard([("v", folder)], Path(tmp) / "s.h5", Path(tmp) / "s_qc.parquet", PARAMS, progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    print(peak / 2**20, "torch" in sys.modules)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=29)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--memory-child", nargs=2, metavar=("FRAMES_DIR", "REPEATS"))
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]))
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        items = make_videos(folder, args.videos, args.seconds)
        n = sum(len(list(d.glob("*.jpg"))) for _, d in items)
        timed = Timed(DlibBackend())
        pipe = FacePipeline(PARAMS, backend=timed)
        start_cpu, start = time.process_time(), time.perf_counter()
        results = [pipe.process(read_frames(d), source_ratio(read_json(d / "meta.json"))) for _, d in items]
        stage_cpu, stage_wall = time.process_time() - start_cpu, time.perf_counter() - start
        forward = timed.seconds
        job_wall, job_cpu, h5 = job(items, folder)
        few = items[:3]
        clips = [list(read_frames(d)) for _, d in few]
        start_cpu = time.process_time()
        pipe_few = [FacePipeline(PARAMS, backend=timed.backend).process(c, source_ratio(read_json(d / "meta.json")))
                    for c, (_, d) in zip(clips, few, strict=True)]
        few_cpu = time.process_time() - start_cpu
        scale = pipe_few[0].stats["detect_scale"]
        start_cpu = time.process_time()
        reference = [naive(timed.backend, c, scale) for c in clips]
        loop_cpu = time.process_time() - start_cpu
        both = [(r.landmarks[r.detected], ref[r.detected]) for r, ref in zip(pipe_few, reference, strict=True)]
        diff = float(np.nanmean(np.concatenate([np.linalg.norm(a - b, axis=-1).ravel() for a, b in both])))
        mem, torch_loaded = [], False
        for repeats in (1, 10):
            out = subprocess.run([sys.executable, __file__, "--memory-child", str(items[0][1]), str(repeats)],
                                 capture_output=True, text=True, check=True)
            peak, torch_flag = out.stdout.split()[-2:]
            mem.append(float(peak))
            torch_loaded |= torch_flag == "True"
        ratio = storage(h5)
    detected = float(np.mean(np.concatenate([r.detected for r in results])))
    table = Table("faces", f"{len(items)} videos 720x576 25 fps, {args.seconds:g} s, {n} frames at 10 fps / 240 "
                           "lines; dlib, one thread; CPU time")
    table.row("detection rate", detected)
    table.row("detector + landmark, in the calls", forward, unit="s CPU")
    table.row("in-process stage / detector+landmark", stage_cpu / forward, f"<= {LIMIT}",
              ok=stage_cpu / forward <= LIMIT, note=f"{stage_cpu:.1f} s CPU, {stage_wall:.1f} s wall")
    table.row("faces job (CLI, 1 thread) / detector+landmark", job_cpu / forward, f"<= {LIMIT}",
              ok=job_cpu / forward <= LIMIT, note=f"{job_cpu:.1f} s CPU, {job_wall:.1f} s wall")
    table.row("naive every-frame loop / stage (3 videos)", loop_cpu / few_cpu, ">= 3", ok=loop_cpu / few_cpu >= 3)
    table.row("landmark difference to naive", diff, "< 2", ok=diff < 2, unit="px")
    table.row("traced peak, 1x video", mem[0], unit="MiB")
    table.row("traced peak, 10x video / 1x", mem[1] / mem[0], "< 1.5", ok=mem[1] / mem[0] < 1.5)
    table.row("faces HDF5 bytes / array bytes", ratio, "<= 1.2", ok=ratio <= 1.2)
    table.row("torch imported by a dlib faces job", str(torch_loaded), "False", ok=not torch_loaded)
    table.extra(videos=args.videos, seconds=args.seconds)
    sys.exit(table.finish())

if __name__ == "__main__":
    main()
